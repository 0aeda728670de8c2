//! An order service on JetStream: orders are accepted on a request endpoint, stored in a
//! stream (`publish_js`, de-duplicated by order id), and fulfilled by a durable endpoint
//! that gets every order at least once, even across restarts and failures; a Key-Value
//! bucket keeps each order's state (`accepted`, then `fulfilled`), with its history.
//!
//! - `orders.place` (request): validates the order, stores it in the stream `ORDERS` on
//!   `orders.created` with the order id as `Nats-Msg-Id` (a retried request stores it once)
//!   and answers with the stream sequence;
//! - the durable endpoint `ORDERS`/`fulfilment`: fulfils each order; an `Err` (here, a
//!   warehouse that fails the first time) naks it and it comes back after the back-off;
//!   a payload that is not an order is terminated, never retried;
//! - `orders.state` (request): the order's state from the bucket `order_states`.
//!
//! As a demo it places a few orders itself (one twice), waits until all are fulfilled, and
//! stops. Needs a nats-server with JetStream: `nats-server -js`, then
//! `cargo run --features jetstream --example jetstream_orders` (or with `NATS_URL`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use panini::jetstream::kv::KvConfig;
use panini::jetstream::{PublishOptions, StreamConfig};
use panini::{App, AppHandle, Json, Msg};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Clone, Debug, Deserialize, Serialize)]
struct Order {
    id: String,
    item: String,
    qty: u32,
}

/// What the service shares between its endpoints: the orders fulfilled so far, the ones
/// the (simulated) warehouse has seen, and how often it was asked.
#[derive(Clone, Default)]
struct Warehouse {
    fulfilled: Arc<Mutex<BTreeSet<String>>>,
    tried: Arc<Mutex<BTreeSet<String>>>,
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
    // Each order's state, with its last 5 changes.
    app.declare_key_value(KvConfig {
        history: 5,
        ..KvConfig::new("order_states")
    });

    // Accept an order: store it, once, and answer with where it is in the stream.
    app.listen(
        "orders.place",
        |msg: Msg<Json<Order>>, app: AppHandle| async move {
            let order = msg.data.0;
            if order.qty == 0 {
                return Ok(json!({"accepted": false, "error": "qty must be at least 1"}));
            }
            // The state first (only if the order is new: a retried request must not undo
            // a fulfilment), then the order into the stream, once per id.
            let states = app.key_value("order_states").await?;
            match states.create(&order.id, "accepted").await {
                Err(e) if e.kv_error().is_some_and(|e| e.is_conflict()) => {} // a retry
                other => drop(other?),
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
        |msg: Msg<Json<Order>>, app: AppHandle| async move {
            let order = msg.data.0;
            let w = app.state::<Warehouse>().ok_or("no Warehouse state")?;
            *w.attempts.lock().unwrap() += 1;
            // The warehouse is busy the first time it sees order-2.
            if order.id == "order-2" && w.tried.lock().unwrap().insert(order.id.clone()) {
                return Err(format!("warehouse busy for {}", order.id).into());
            }
            let states = app.key_value("order_states").await?;
            states.put(&order.id, "fulfilled").await?;
            println!("fulfilled {} x {} for {}", order.qty, order.item, order.id);
            w.fulfilled.lock().unwrap().insert(order.id);
            Ok::<(), panini::BoxError>(())
        },
    )
    .filter_subject("orders.created")
    .backoff([Duration::from_millis(200), Duration::from_secs(1)]);

    // An order's state, from the bucket.
    app.listen(
        "orders.state",
        |msg: Msg<String>, app: AppHandle| async move {
            let states = app.key_value("order_states").await?;
            let state = states.get(&msg.data).await?;
            let state = state.map(|e| String::from_utf8_lossy(&e.value).into_owned());
            Ok::<_, panini::Error>(json!({"id": msg.data, "state": state}))
        },
    );

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
    for id in ["order-1", "order-2", "order-3", "order-9"] {
        let state: Value = app.request("orders.state", id).await?;
        println!("orders.state {id} -> {state}");
    }
    let states = app.key_value("order_states").await?;
    let history: Vec<String> = states
        .history("order-2")
        .await?
        .iter()
        .map(|e| {
            format!(
                "{} (revision {})",
                String::from_utf8_lossy(&e.value),
                e.revision
            )
        })
        .collect();
    println!("order-2 went: {}", history.join(" -> "));
    Ok(())
}
