//! The seed's listener app: one request endpoint and one stream endpoint.
//!
//! Run a NATS server on 127.0.0.1:4222, then `cargo run --example listener_app`, and the
//! sender beside it: `cargo run --example sender_app`.

use panini::{App, Msg};
use serde_json::{json, Value};

fn main() {
    let mut app = App::new("listener_app").host("127.0.0.1").port(4222);

    // request endpoint
    app.listen("some.subject.for.request", |msg: Msg<Value>| async move {
        println!(
            "request {} from {} has been processed",
            msg.data, msg.subject
        );
        json!({"success": true, "message": "request has been processed"})
    });

    // stream endpoint
    app.listen("some.subject.for.stream", |msg: Msg<Value>| async move {
        println!("event {} from {} has been processed", msg.data, msg.subject);
    });

    app.start();
}
