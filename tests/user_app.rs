//! The first test of an app, written as a user writes it, with the testing kit alone
//! (`panini::testing`): the seed's `listener_app` (`examples/listener_app.rs`) run in the
//! test's process against a `nats-server` of its own, and asked over NATS.

use std::time::Duration;

use panini::testing::{run, NatsServer, TestApp, TestClient};
use panini::{App, Msg};
use serde_json::{json, Value};

/// The seed's listener app: its request endpoint, and its stream endpoint, which here
/// publishes what it processed (the seed's prints it) so that a test can see it.
fn listener_app() -> App {
    let mut app = App::new("listener_app");
    app.listen("some.subject.for.request", |msg: Msg<Value>| async move {
        println!(
            "request {} from {} has been processed",
            msg.data, msg.subject
        );
        json!({"success": true, "message": "request has been processed"})
    });
    app.listen(
        "some.subject.for.stream",
        |msg: Msg<Value>, app: panini::AppHandle| async move {
            let _ = app.publish("some.subject.processed", msg.data).await;
        },
    );
    app
}

#[test]
fn the_request_endpoint_answers() {
    let server = NatsServer::start();
    run(async {
        let app = TestApp::start(listener_app(), &server).await;
        let client = TestClient::connect(&server).await;
        let reply = client
            .request("some.subject.for.request", json!({"id": 1}))
            .await;
        assert_eq!(
            reply,
            json!({"success": true, "message": "request has been processed"})
        );
        app.stop().await.unwrap();
    });
}

#[test]
fn the_stream_endpoint_processes_each_event() {
    let server = NatsServer::start();
    run(async {
        let app = TestApp::start(listener_app(), &server).await;
        let client = TestClient::connect(&server).await;
        let mut processed = client.subscribe("some.subject.processed").await;
        client
            .publish("some.subject.for.stream", json!({"n": 1}))
            .await;
        client
            .publish("some.subject.for.stream", json!({"n": 2}))
            .await;
        let mut got = processed.expect_json(2, Duration::from_secs(5)).await;
        got.sort_by_key(|event| event["n"].as_i64()); // handlers run concurrently
        assert_eq!(got, [json!({"n": 1}), json!({"n": 2})]);
        app.stop().await.unwrap();
    });
}
