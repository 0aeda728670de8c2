//! Data types, as Panini's `data_type=`: the handler's argument says how the payload is
//! decoded, and its return value says how the reply is encoded.
//!
//! | Rust type | in (`Msg<T>`) | out (return, publish, request) |
//! |---|---|---|
//! | `serde_json::Value` (default, Panini's `dict`) | JSON | compact JSON |
//! | `String` (Panini's `str`) | UTF-8 text | raw text, not quoted |
//! | `Vec<u8>` (Panini's `bytes`) | raw | raw |
//! | `Json<T>` (Panini's pydantic `data_type`) | JSON into `T` | compact JSON |
//!
//! A task requests each endpoint, prints the replies, sends bad JSON to the typed endpoint
//! (Panini's `{"success":false,"error":"MessageSchemaError"}` reply) and stops.
//!
//! `cargo run --example data_types` beside a nats-server on 127.0.0.1:4222.

use panini::{App, AppHandle, Json, Msg, SendOptions};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u32,
    item: String,
    qty: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Receipt {
    order_id: u32,
    total: u32,
}

fn main() {
    let mut app = App::new("data_types_app").banner(false);

    // Default: JSON in, JSON out (Panini's dict).
    app.listen("types.json", |msg: Msg<Value>| async move {
        json!({"success": true, "got": msg.data})
    });

    // Text in, text out (Panini's data_type=str).
    app.listen("types.text", |msg: Msg<String>| async move {
        format!("hello, {}", msg.data)
    });

    // Bytes in, bytes out (Panini's data_type=bytes): the payload reversed.
    app.listen("types.bytes", |msg: Msg<Vec<u8>>| async move {
        msg.data.into_iter().rev().collect::<Vec<u8>>()
    });

    // A typed struct in, a typed struct out. Bad payloads never reach this handler.
    app.listen("types.order", |msg: Msg<Json<Order>>| async move {
        let order = msg.data.0;
        println!(
            "  handler: order {} for {} x {}",
            order.id, order.qty, order.item
        );
        Json(Receipt {
            order_id: order.id,
            total: order.qty * 3,
        })
    });

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
    let reply: Value = app.request("types.json", json!({"a": 1})).await?;
    println!("types.json  -> {reply}");

    let reply = app
        .request_as::<String>("types.text", "world", SendOptions::default())
        .await?;
    println!("types.text  -> {reply:?}");

    let reply = app
        .request_as::<Vec<u8>>("types.bytes", vec![1u8, 2, 3], SendOptions::default())
        .await?;
    println!("types.bytes -> {reply:?}");

    let order = Order {
        id: 7,
        item: "pen".into(),
        qty: 2,
    };
    let Json(receipt) = app
        .request_as::<Json<Receipt>>("types.order", Json(order), SendOptions::default())
        .await?;
    println!("types.order -> {receipt:?}");

    // Bad JSON to a typed endpoint: the handler is not called and the request gets an
    // error reply (logged on stderr as "Unexpected serialization error").
    // `request` turns that reply into `Error::Service`...
    match app.request("types.order", "not json").await {
        Err(e) => println!("types.order with bad JSON -> Err({e})"),
        Ok(v) => println!("types.order with bad JSON -> unexpected Ok({v})"),
    }
    // ...and so does `request_message`, so the raw client shows what is on the wire.
    let raw = app.client().request("types.order", "not json").await?;
    println!("  wire body:    {}", raw.text().unwrap_or("<not UTF-8>"));
    for (name, value) in raw.headers.iter().flat_map(|h| h.iter()) {
        println!("  wire header:  {name}: {value}");
    }
    Ok(())
}
