//! `App::threads`: how many threads run the app's endpoints, tasks and HTTP connections.
//! Two CPU-bound handlers (they never await) meet in a bounded spin: with two threads both
//! run at once, on two threads; with one they take turns, on one thread.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::app::RunningApp;
use common::{run, NatsServer};
use panini::client::{self, Client};
use panini::{App, Msg};

/// Starts `app` (with one endpoint whose handlers spin until two of them run at once, or
/// `alone_after` passed) and sends it two requests at once; returns the two replies as
/// `(met, thread id)`.
fn two_spinning_requests(threads: usize, alone_after: Duration) -> Vec<(bool, String)> {
    let server = NatsServer::start();
    run(async {
        let arrived = Arc::new(AtomicUsize::new(0));
        let mut app = App::new("threads").threads(threads);
        app.listen("spin", move |_: Msg<Vec<u8>>| {
            let arrived = arrived.clone();
            async move {
                // CPU-bound: no await, so only another thread can run the other request.
                arrived.fetch_add(1, Ordering::SeqCst);
                let start = Instant::now();
                let mut met = false;
                while start.elapsed() < alone_after {
                    if arrived.load(Ordering::SeqCst) >= 2 {
                        met = true;
                        break;
                    }
                    std::hint::spin_loop();
                }
                format!("{met} {:?}", std::thread::current().id())
            }
        });
        let running = RunningApp::start(app, &server).await;
        let probe = client::connect(server.url()).await.unwrap();
        let replies = smol::future::zip(ask(&probe, "spin"), ask(&probe, "spin")).await;
        running.stop().await.unwrap();
        [replies.0, replies.1]
            .into_iter()
            .map(|text| {
                let (met, id) = text.split_once(' ').unwrap();
                (met == "true", id.to_string())
            })
            .collect()
    })
}

async fn ask(client: &Client, subject: &str) -> String {
    let reply = client
        .request_with(subject, None, b"", Duration::from_secs(20))
        .await
        .unwrap();
    String::from_utf8(reply.payload.to_vec()).unwrap()
}

#[test]
fn with_two_threads_two_cpu_bound_handlers_run_at_once_on_two_threads() {
    let replies = two_spinning_requests(2, Duration::from_secs(10));
    assert!(
        replies.iter().all(|(met, _)| *met),
        "the handlers did not run at once: {replies:?}"
    );
    assert_ne!(
        replies[0].1, replies[1].1,
        "one thread ran both: {replies:?}"
    );
}

#[test]
fn with_one_thread_cpu_bound_handlers_take_turns_on_it() {
    let replies = two_spinning_requests(1, Duration::from_millis(500));
    assert!(
        replies.iter().any(|(met, _)| !*met),
        "the handlers ran at once on one thread: {replies:?}"
    );
    assert_eq!(
        replies[0].1, replies[1].1,
        "two threads ran them: {replies:?}"
    );
}
