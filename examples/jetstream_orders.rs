//! An order service on JetStream: orders are accepted on a request endpoint, stored in a
//! stream (`publish_js`, de-duplicated by order id), and fulfilled by a durable endpoint
//! that gets every order at least once, even across restarts and failures.
//!
//! - `orders.place` (request): validates the order, stores it in the stream `ORDERS` on
//!   `orders.created` with the order id as `Nats-Msg-Id` (a retried request stores it once)
//!   and answers with the stream sequence;
//! - the durable endpoint `ORDERS`/`fulfilment`: fulfils each order; an `Err` (here, a
//!   warehouse that fails the first time) naks it and it comes back after the back-off;
//!   a payload that is not an order is terminated, never retried.
//!
//! As a demo it places a few orders itself (one twice), waits until all are fulfilled, and
//! stops. Needs a nats-server with JetStream: `nats-server -js`, then
//! `cargo run --example jetstream_orders` (or with `NATS_URL`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use panini::jetstream::{PublishOptions, StreamConfig};
use panini::{App, AppHandle, Json, Msg, State};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Clone, Debug, Deserialize, Serialize)]
struct Order {
    id: String,
    item: String,
    qty: u32,
}

/// What the service shares between its endpoints: the orders fulfilled so far, and how
/// often the (simulated) warehouse was asked.
#[derive(Clone, Default)]
struct Warehouse {
    fulfilled: Arc<Mutex<BTreeSet<String>>>,
    attempts: Arc<Mutex<u32>>,
}

fn main() {
    let mut app = App::new("orders").banner(false);
    app.state(Warehouse::default());
    app.declare_stream(StreamConfig {
        name: "ORDERS".into(),
        // Not `orders.>`: that would store (and answer) the `orders.place` requests too.
        subjects: vec!["orders.created".into()],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    });

    // Accept an order: store it, once, and answer with where it is in the stream.
    app.listen(
        "orders.place",
        |msg: Msg<Json<Order>>, app: AppHandle| async move {
            let order = msg.data.0;
            if order.qty == 0 {
                return Ok(json!({"accepted": false, "error": "qty must be at least 1"}));
            }
            let opts = PublishOptions::new().msg_id(order.id.clone());
            let ack = app
                .publish_js_with("orders.created", Json(&order), &opts)
                .await?;
            Ok::<_, panini::Error>(json!({
                "accepted": true,
                "seq": ack.seq,
                "duplicate": ack.duplicate,
            }))
        },
    );

    // Fulfil each order at least once. An `Err` naks it: it comes back after the back-off.
    app.listen_stream(
        "ORDERS",
        "fulfilment",
        |msg: Msg<Json<Order>>, State(w): State<Warehouse>| async move {
            let order = msg.data.0;
            let attempt = {
                let mut attempts = w.attempts.lock().unwrap();
                *attempts += 1;
                *attempts
            };
            if order.id == "order-2" && !w.fulfilled.lock().unwrap().contains("order-2-tried") {
                w.fulfilled.lock().unwrap().insert("order-2-tried".into());
                return Err(format!(
                    "warehouse busy for {} (attempt {attempt})",
                    order.id
                ));
            }
            println!("fulfilled {} x {} for {}", order.qty, order.item, order.id);
            w.fulfilled.lock().unwrap().insert(order.id);
            Ok(())
        },
    )
    .filter_subject("orders.created")
    .backoff([Duration::from_millis(200), Duration::from_secs(1)]);

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

async fn demo(app: &AppHandle) -> Result<(), panini::BoxError> {
    let orders = [
        ("order-1", "coffee", 2),
        ("order-2", "tea", 1),
        ("order-3", "cake", 3),
        ("order-1", "coffee", 2), // placed again: stored once
    ];
    for (id, item, qty) in orders {
        let order = json!({"id": id, "item": item, "qty": qty});
        let reply: Value = app.request("orders.place", order).await?;
        println!("orders.place {id} -> {reply}");
    }
    let refused: Value = app
        .request(
            "orders.place",
            json!({"id": "order-4", "item": "x", "qty": 0}),
        )
        .await?;
    println!("orders.place order-4 -> {refused}");

    let warehouse = app.state::<Warehouse>().ok_or("no Warehouse state")?;
    let wanted: BTreeSet<String> = ["order-1", "order-2", "order-3"].map(String::from).into();
    let waited = async {
        loop {
            let done = warehouse.fulfilled.lock().unwrap().clone();
            if wanted.is_subset(&done) {
                return true;
            }
            smol::Timer::after(Duration::from_millis(50)).await;
        }
    };
    let timeout = async {
        smol::Timer::after(Duration::from_secs(20)).await;
        false
    };
    if !smol::future::or(waited, timeout).await {
        return Err("the orders were not all fulfilled within 20 s".into());
    }
    let attempts = *warehouse.attempts.lock().unwrap();
    let js = app.jetstream().ok_or("JetStream is enabled")?;
    let stored = js.stream("ORDERS").info().await?.state.messages;
    println!("all fulfilled: {stored} orders stored, {attempts} fulfilment runs (one retried)");
    Ok(())
}
