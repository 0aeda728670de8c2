//! Runs through a listen middleware against a real nats-server, many at once: the
//! middleware's future and the handler's reuse their allocations from run to run, so runs
//! that wait (in tasks of their own) must keep their own messages while others finish in
//! the loop; on one thread and on two (where runs of one endpoint start on both threads at
//! once), and with a middleware that runs the handler twice.

mod common;

use std::time::Duration;

use common::app::{RunningApp, REQUEST_TIMEOUT};
use common::{run, NatsServer};
use panini::client::Client;
use panini::{App, Message, Msg};
use smol::stream::StreamExt;

/// Requests sent, at most `IN_FLIGHT` at once.
const N: usize = 300;
const IN_FLIGHT: usize = 32;

/// An echo endpoint behind a middleware that tags the reply; every third request waits
/// in the handler and every fifth in the middleware, so some runs go on in tasks while the
/// next ones start.
fn app(threads: usize) -> App {
    let mut app = App::new("mw_runs").threads(threads);
    app.listen_any(|msg: Message, next| async move {
        let wait = msg.payload.ends_with(b"0") || msg.payload.ends_with(b"5");
        if wait {
            smol::Timer::after(Duration::from_millis(1)).await;
        }
        let mut reply = next.run(msg).await;
        if let Some(r) = reply.as_mut() {
            r.payload.extend_from_slice(b"+mw");
        }
        reply
    });
    app.listen("runs.echo", |msg: Msg<String>| async move {
        let n: usize = msg.data.parse().unwrap_or(0);
        if n % 3 == 0 {
            smol::Timer::after(Duration::from_millis(1)).await;
        }
        msg.data
    })
    .max_concurrency(64);
    // Runs the rest of the chain twice on a clone of `next`: both replies make the answer.
    app.listen_request(|msg: Message, next| async move {
        if msg.subject != "runs.twice" {
            return next.run(msg).await;
        }
        let first = next.clone().run(msg.clone()).await;
        let second = next.run(msg).await;
        let mut payload = Vec::new();
        for r in [first, second].into_iter().flatten() {
            payload.extend_from_slice(&r.payload);
            payload.push(b'|');
        }
        Some(panini::Reply {
            payload,
            headers: None,
        })
    });
    app.listen("runs.twice", |msg: Msg<String>| async move { msg.data });
    app
}

async fn ask(client: &Client, subject: &str, payload: String) -> (String, Vec<u8>) {
    let reply = client
        .request_with(subject, None, payload.clone().into_bytes(), REQUEST_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("request {payload} on {subject}: {e}"));
    (payload, reply.payload)
}

fn every_run_keeps_its_own_message(threads: usize) {
    let server = NatsServer::start();
    run(async {
        let running = RunningApp::start(app(threads), &server).await;
        let client = panini::client::connect(server.url()).await.unwrap();
        let replies: Vec<(String, Vec<u8>)> = smol::stream::iter(0..N)
            .map(|i| ask(&client, "runs.echo", i.to_string()))
            .then(|f| f)
            .collect()
            .await;
        for (sent, got) in &replies {
            assert_eq!(got, format!("{sent}+mw").as_bytes(), "request {sent}");
        }
        // Many at once: the replies may come in any order, each to its own request.
        let mut tasks = Vec::new();
        for chunk in (0..N).collect::<Vec<_>>().chunks(IN_FLIGHT) {
            for &i in chunk {
                let client = client.clone();
                tasks.push(smol::spawn(async move {
                    ask(&client, "runs.echo", i.to_string()).await
                }));
            }
            for task in tasks.drain(..) {
                let (sent, got) = task.await;
                assert_eq!(got, format!("{sent}+mw").as_bytes(), "request {sent}");
            }
        }
        // The middleware added last is the outermost: each of its two runs goes through
        // the tagging one.
        let (_, twice) = ask(&client, "runs.twice", "7".into()).await;
        assert_eq!(twice, b"7+mw|7+mw|");
        running.stop().await.unwrap();
    });
}

#[test]
fn runs_through_a_middleware_keep_their_own_messages() {
    every_run_keeps_its_own_message(1);
}

#[test]
fn runs_through_a_middleware_keep_their_own_messages_on_two_threads() {
    every_run_keeps_its_own_message(2);
}
