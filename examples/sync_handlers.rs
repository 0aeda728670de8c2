//! Synchronous endpoints and tasks: plain (blocking) functions that use
//! `app.publish_sync(...)` and `app.request_sync(...)`, as Panini's `def` handlers do.
//!
//! Sync handlers and sync tasks run on a thread pool, so blocking there is fine. The demo
//! stops by itself after three orders.
//!
//! `cargo run --example sync_handlers` beside a nats-server on 127.0.0.1:4222.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use panini::{App, AppHandle, Msg};
use serde_json::{json, Value};

static ORDERS: AtomicU32 = AtomicU32::new(0);

fn main() {
    let mut app = App::new("sync_app").banner(false);

    // An ordinary async endpoint that the sync handler asks for a price.
    app.listen("sync.price", |msg: Msg<Value>| async move {
        let qty = msg.data["qty"].as_u64().unwrap_or(0);
        json!({"price": qty * 5})
    });

    // A stream endpoint that the sync handler publishes to.
    app.listen("sync.audit", |msg: Msg<Value>| async move {
        println!("  audit: {}", msg.data);
    });

    // A sync request endpoint: a plain closure, no async. It blocks on a request and a
    // publish, then returns its reply. `?` turns a failure into an error reply.
    app.listen_sync(
        "sync.order",
        |msg: Msg<Value>, app: AppHandle| -> panini::Result<Value> {
            let quote = app.request_sync("sync.price", json!({"qty": msg.data["qty"]}))?;
            app.publish_sync("sync.audit", json!({"order": msg.data, "quote": quote}))?;
            Ok(json!({"success": true, "total": quote["price"]}))
        },
    );

    // @app.task(interval=0.2) with a plain function: place an order every 200 ms.
    app.task_every_sync(Duration::from_millis(200), |app: AppHandle| {
        let n = ORDERS.fetch_add(1, Ordering::SeqCst) + 1;
        let response = app.request_sync("sync.order", json!({"id": n, "qty": n}))?;
        println!("order {n}: {response}");
        if n == 3 {
            app.shutdown();
        }
        Ok::<(), panini::Error>(())
    });

    app.start();
}
