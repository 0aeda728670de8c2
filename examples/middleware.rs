//! Middlewares: Panini's four hooks (`send_publish`, `send_request`, `listen_publish`,
//! `listen_request`) and the catch-all `listen_any`, as async closures that get the
//! message and `next`, the rest of the chain. Calling `next.run(..)` goes on; not calling
//! it short-circuits. The middleware added last runs first (it is the outermost).
//!
//! Here `send_request` adds a header, `listen_publish` refuses `mw.admin.*` subjects, and
//! every hook prints "before" and "after". The app talks to itself, then stops.
//!
//! `cargo run --example middleware` beside a nats-server on 127.0.0.1:4222.

use std::time::Duration;

use panini::{App, AppHandle, Headers, Msg};
use serde_json::{json, Value};

fn main() {
    let mut app = App::new("middleware_app").banner(false);

    // Endpoints (indented output: the receiving side).
    app.listen("mw.event", |msg: Msg<Value>| async move {
        println!("      handler: event {}", msg.data);
    });
    app.listen("mw.request", |msg: Msg<Value>| async move {
        let headers = msg.headers.unwrap_or_default();
        let trace = headers.get("X-Trace-Id").unwrap_or("none");
        println!(
            "      handler: request {} with X-Trace-Id {trace}",
            msg.data
        );
        json!({"success": true})
    });
    app.listen("mw.admin.reset", |_: Msg<Value>| async move {
        println!("      handler: reset! (never printed: the middleware refuses it)");
    });

    // Around every app.publish(...).
    app.send_publish(|out, next| async move {
        println!("send_publish before: {}", out.subject);
        let result = next.run(out).await;
        println!("send_publish after");
        result
    });

    // Around every app.request(...): this one changes the message, adding a header.
    app.send_request(|mut out, next| async move {
        println!("send_request before: {} (adds X-Trace-Id)", out.subject);
        let headers = out.headers.get_or_insert_with(Headers::new);
        headers.insert("X-Trace-Id", "trace-42");
        let response = next.run(out).await;
        println!("send_request after");
        response
    });

    // Around handlers of published messages (no reply subject): refuses admin subjects
    // by not calling `next`, so the handler never runs.
    app.listen_publish(|msg, next| async move {
        if msg.subject.starts_with("mw.admin.") {
            println!("    listen_publish: refused {}", msg.subject);
            return None; // no handler, no reply
        }
        println!("    listen_publish before");
        let reply = next.run(msg).await;
        println!("    listen_publish after");
        reply
    });

    // Around handlers of requests (with a reply subject); it sees the reply too.
    app.listen_request(|msg, next| async move {
        println!("    listen_request before");
        let reply = next.run(msg).await;
        let size = reply.as_ref().map_or(0, |r| r.payload.len());
        println!("    listen_request after: reply of {size} bytes");
        reply
    });

    // Around every handler. Added last, so it runs first (outermost).
    app.listen_any(|msg, next| async move {
        println!("  listen_any before: {}", msg.subject);
        let reply = next.run(msg).await;
        println!("  listen_any after");
        reply
    });

    app.task(|app: AppHandle| async move {
        let pause = || smol::Timer::after(Duration::from_millis(200));

        println!("== publish mw.event");
        app.publish("mw.event", json!({"n": 1})).await?;
        pause().await;

        println!("== publish mw.admin.reset");
        app.publish("mw.admin.reset", json!({})).await?;
        pause().await;

        println!("== request mw.request");
        let response = app.request("mw.request", json!({"n": 2})).await?;
        println!("response: {response}");

        app.shutdown();
        Ok::<(), panini::Error>(())
    });

    app.start();
}
