//! The Service API's counts of a stream endpoint against a real nats-server: runs that
//! finish inside one poll of the endpoint's loop are added to the stats as a batch, runs
//! that wait go on in tasks of their own; with or without a listen middleware, every run
//! and every error is counted exactly, the last error is the last one, and the processing
//! time adds up.

mod common;

use std::time::Duration;

use common::app::{RunningApp, REQUEST_TIMEOUT};
use common::{run, within, NatsServer};
use panini::client::Client;
use panini::{App, Msg};
use serde_json::{json, Value};

/// How long the test waits for the counts to reach the messages sent.
const BOUND: Duration = Duration::from_secs(10);

/// Messages published in one burst (more than a batch holds).
const N: u64 = 300;

/// Every 10th message fails; of the others, every 3rd waits (so its run goes on in a
/// task of its own).
fn app(name: &str, middleware: bool) -> App {
    let mut app = App::new(name);
    if middleware {
        app.listen_any(|msg, next| next.run(msg));
    }
    app.listen("batch.events", |msg: Msg<Value>| async move {
        let i = msg.data["i"].as_u64().unwrap_or(0);
        if i % 10 == 0 {
            return Err(format!("asked to fail {i}"));
        }
        if i % 3 == 1 {
            smol::Timer::after(Duration::from_millis(1)).await;
        }
        Ok(())
    });
    app
}

async fn stats(client: &Client, name: &str) -> Value {
    let subject = format!("$SRV.STATS.{name}");
    let reply = client
        .request_with(&subject, None, b"{}".to_vec(), REQUEST_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{subject}: {e}"));
    let stats: Value = serde_json::from_slice(&reply.payload).unwrap();
    stats["endpoints"][0].clone()
}

fn counts_every_run_of_a_burst(middleware: bool) {
    let server = NatsServer::start();
    run(async {
        let name = if middleware { "batch_mw" } else { "batch" };
        let app = RunningApp::start(app(name, middleware), &server).await;
        let client = panini::client::connect(server.url()).await.unwrap();
        for i in 0..N {
            let payload = serde_json::to_vec(&json!({ "i": i })).unwrap();
            client.publish("batch.events", &payload).await.unwrap();
        }
        client.flush().await.unwrap();

        let ep = within(BOUND, "every message counted", async {
            loop {
                let ep = stats(&client, name).await;
                if ep["num_requests"].as_u64() >= Some(N) {
                    return ep;
                }
                smol::Timer::after(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert_eq!(ep["subject"], "batch.events");
        assert_eq!(
            (ep["num_requests"].as_u64(), ep["num_errors"].as_u64()),
            (Some(N), Some(N / 10)),
            "{ep}"
        );
        // The failing runs finish at their first poll, in the order they came.
        assert_eq!(ep["last_error"], "500:asked to fail 290");
        let total = ep["processing_time"].as_u64().unwrap();
        // A third of the runs waited at least 1 ms each, one after the other or not.
        assert!(total >= 1_000_000, "{ep}");
        assert_eq!(ep["average_processing_time"].as_u64(), Some(total / N));
        app.stop().await.unwrap();
    });
}

#[test]
fn a_burst_of_stream_messages_is_counted_exactly() {
    counts_every_run_of_a_burst(false);
}

#[test]
fn a_burst_through_a_middleware_is_counted_exactly() {
    counts_every_run_of_a_burst(true);
}
