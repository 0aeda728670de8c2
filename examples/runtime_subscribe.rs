//! Subscribing at run time: Panini's `subscribe_new_subject` / `unsubscribe_subject`
//! (its WebSocket bridge example subscribes per browser client this way).
//!
//! A task subscribes to `news.sport` and `price.btc` while the app runs, publishes and
//! requests, unsubscribes, shows that later messages are not handled (and that a request
//! then finds no responders), shows the error for a subject never subscribed, and stops.
//!
//! `cargo run --example runtime_subscribe` beside a nats-server on 127.0.0.1:4222.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use panini::{App, AppHandle, Msg};
use serde_json::{json, Value};

static HANDLED: AtomicU32 = AtomicU32::new(0);

fn main() {
    let mut app = App::new("runtime_app").banner(false);
    app.task(|app: AppHandle| async move {
        // A failed demo fails the process (and so `scripts/run-examples`).
        if let Err(e) = demo(&app).await {
            eprintln!("demo failed: {e}");
            std::process::exit(1);
        }
        app.shutdown();
    });
    app.start();
}

async fn demo(app: &AppHandle) -> panini::Result<()> {
    let settle = || smol::Timer::after(Duration::from_millis(200));

    // A stream endpoint and a request endpoint, added while the app runs. Handlers are
    // the same as for `app.listen`, and so are the listen middlewares.
    app.subscribe_new_subject("news.sport", |msg: Msg<Value>| async move {
        HANDLED.fetch_add(1, Ordering::SeqCst);
        println!("  news.sport handler got {}", msg.data);
    })
    .await?;
    app.subscribe_new_subject("price.btc", |_: Msg<Value>| async move {
        json!({"price": 64000})
    })
    .await?;
    println!("subscribed to news.sport and price.btc");

    for n in 1..=3 {
        app.publish("news.sport", json!({"headline": n})).await?;
    }
    settle().await;
    let price = app.request("price.btc", json!({})).await?;
    println!("price.btc -> {price}");

    app.unsubscribe_subject("news.sport").await?;
    app.unsubscribe_subject("price.btc").await?;
    println!("unsubscribed from news.sport and price.btc");

    for n in 4..=5 {
        app.publish("news.sport", json!({"headline": n})).await?;
    }
    settle().await;
    let handled = HANDLED.load(Ordering::SeqCst);
    println!("news.sport: {handled} handled of 5 published (4 and 5 came after unsubscribing)");
    match app.request("price.btc", json!({})).await {
        Err(e) => println!("price.btc -> Err({e})"),
        Ok(v) => println!("price.btc -> unexpected Ok({v})"),
    }

    // Unsubscribing from a subject that was never subscribed is an error, as in Panini.
    if let Err(e) = app.unsubscribe_subject("news.weather").await {
        println!("unsubscribe news.weather -> Err({e})");
    }
    Ok(())
}
