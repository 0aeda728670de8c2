//! `App::threads`: how many threads run the app's endpoints, tasks and HTTP connections.
//! Two CPU-bound handlers (they never await) meet in a bounded spin: with two threads both
//! run at once, on two threads; with one they take turns, on one thread; with two threads
//! and an endpoint's `max_concurrency(1)`, they take turns too. With two threads an
//! endpoint's loops share its one queue: every message is handled once, and every reply
//! goes to its own requester.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::app::RunningApp;
use common::{run, within, NatsServer};
use panini::client::{self, Client};
use panini::rt::StreamExt;
use panini::{App, Msg};

/// Starts `app` (with one endpoint whose handlers spin until two of them run at once, or
/// `alone_after` passed) and sends it two requests at once; returns the two replies as
/// `(met, thread id)`.
fn two_spinning_requests(threads: usize, alone_after: Duration) -> Vec<(bool, String)> {
    two_spinning_requests_at_most(threads, None, alone_after)
}

/// [`two_spinning_requests`] with the endpoint's `max_concurrency` set, if `Some`.
fn two_spinning_requests_at_most(
    threads: usize,
    max_concurrency: Option<usize>,
    alone_after: Duration,
) -> Vec<(bool, String)> {
    let server = NatsServer::start();
    run(async {
        let arrived = Arc::new(AtomicUsize::new(0));
        let mut app = App::new("threads").threads(threads);
        let endpoint = app.listen("spin", move |_: Msg<Vec<u8>>| {
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
        if let Some(n) = max_concurrency {
            endpoint.max_concurrency(n);
        }
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

#[test]
fn with_two_threads_max_concurrency_one_still_runs_one_handler_at_a_time() {
    let replies = two_spinning_requests_at_most(2, Some(1), Duration::from_millis(500));
    assert!(
        replies.iter().any(|(met, _)| !*met),
        "two handlers ran at once under max_concurrency(1): {replies:?}"
    );
}

#[test]
fn with_two_threads_every_message_is_handled_once_and_every_reply_finds_its_requester() {
    const EVENTS: usize = 2_000;
    const REQUESTS: usize = 500;
    let server = NatsServer::start();
    run(async {
        let counts = Arc::new(std::sync::Mutex::new(vec![0u32; EVENTS]));
        let (all_in, all_in_rx) = smol::channel::bounded::<()>(1);
        let mut app = App::new("lanes").threads(2);
        let seen = counts.clone();
        app.listen("lanes.event", move |msg: Msg<String>| {
            let (seen, all_in) = (seen.clone(), all_in.clone());
            async move {
                let i: usize = msg.data.parse().expect("an index");
                let mut seen = seen.lock().unwrap();
                seen[i] += 1;
                if seen.iter().all(|&c| c > 0) {
                    let _ = all_in.try_send(());
                }
            }
        });
        app.listen("lanes.echo", |text: String| async move { text });
        let running = RunningApp::start(app, &server).await;
        let probe = client::connect(server.url()).await.unwrap();
        for i in 0..EVENTS {
            probe.publish("lanes.event", i.to_string()).await.unwrap();
        }
        let asks: Vec<_> = (0..REQUESTS)
            .map(|i| {
                let probe = probe.clone();
                smol::spawn(async move {
                    let sent = i.to_string();
                    let reply = probe
                        .request_with("lanes.echo", None, sent.as_bytes(), Duration::from_secs(20))
                        .await
                        .unwrap_or_else(|e| panic!("request {i}: {e}"));
                    (sent, String::from_utf8(reply.payload.to_vec()).unwrap())
                })
            })
            .collect();
        for ask in asks {
            let (sent, got) = ask.await;
            assert_eq!(got, sent, "a reply went to another requester");
        }
        all_in_rx
            .recv()
            .await
            .expect("the handler keeps the sender");
        running.stop().await.unwrap();
        let counts = counts.lock().unwrap();
        let twice: Vec<usize> = (0..EVENTS).filter(|&i| counts[i] != 1).collect();
        assert!(twice.is_empty(), "handled more than once: {twice:?}");
    })
}

/// Within a burst, an endpoint defers writing its replies; a deferred reply must still go
/// out at once when the loop then waits, here for its one slot (`max_concurrency(1)`),
/// held by a run that only ends once the test has that reply.
fn a_reply_deferred_in_a_burst_goes_out_when_the_loop_waits_for_a_slot(threads: usize) {
    let server = NatsServer::start();
    run(async {
        let (gate_tx, gate) = smol::channel::unbounded::<()>();
        let (started_tx, started) = smol::channel::unbounded::<String>();
        let (marked_tx, marked) = smol::channel::unbounded::<()>();
        let mut app = App::new("burst").threads(threads);
        let (gate2, started2) = (gate.clone(), started_tx.clone());
        app.listen("burst.work", move |text: String| {
            let (gate, started) = (gate2.clone(), started2.clone());
            async move {
                let _ = started.send(text.clone()).await;
                if text.starts_with("slow") {
                    gate.recv().await.expect("the test holds the gate");
                }
                text
            }
        })
        .max_concurrency(1);
        app.listen("burst.marker", move |_: String| {
            let marked = marked_tx.clone();
            async move {
                let _ = marked.send(()).await;
            }
        });
        let running = RunningApp::start(app, &server).await;
        let probe = client::connect(server.url()).await.unwrap();
        let mut replies = probe.subscribe("replies.>").await.unwrap();
        probe.flush().await.unwrap();
        let send = |subject: &'static str, reply: &'static str, text: &'static str| {
            let probe = probe.clone();
            async move {
                probe
                    .publish_with(subject, Some(reply), None, text)
                    .await
                    .unwrap()
            }
        };
        // slow1 (an event: its end writes nothing) takes the one slot; fast and slow2
        // queue behind it. The marker, sent after them on the same connection, is read
        // after them: once it is handled, both are in the endpoint's queue.
        probe.publish("burst.work", "slow1").await.unwrap();
        assert_eq!(started.recv().await.unwrap(), "slow1");
        send("burst.work", "replies.fast", "fast").await;
        send("burst.work", "replies.slow2", "slow2").await;
        send("burst.marker", "replies.marker", "m").await;
        marked.recv().await.unwrap();
        // slow1 ends: fast runs (slow2 still queued, so its reply is deferred), then slow2
        // takes the slot and waits at the gate until the test has fast's reply.
        gate_tx.send(()).await.unwrap();
        // Written at once it comes in well under a millisecond; held back, something
        // else writes it about 2 s later (seen: 2.1 and 2.4 s). 1 s tells them apart.
        let first = within(
            Duration::from_secs(1),
            "the reply to fast, promptly",
            async { replies.next().await.expect("the subscription") },
        )
        .await;
        assert_eq!(first.subject, "replies.fast");
        gate_tx.send(()).await.unwrap();
        let last = within(Duration::from_secs(5), "the reply to slow2", async {
            replies.next().await.expect("the subscription")
        })
        .await;
        assert_eq!(last.subject, "replies.slow2");
        drop(started);
        running.stop().await.unwrap();
    })
}

#[test]
fn a_deferred_reply_goes_out_when_the_loop_waits_for_a_slot_on_one_thread() {
    a_reply_deferred_in_a_burst_goes_out_when_the_loop_waits_for_a_slot(1);
}

#[test]
fn a_deferred_reply_goes_out_when_the_loop_waits_for_a_slot_on_two_threads() {
    a_reply_deferred_in_a_burst_goes_out_when_the_loop_waits_for_a_slot(2);
}

/// With two threads the NATS connection's tasks run on the app's own threads, not on a
/// thread of their own: the connection's `Closed` event, which its task emits at the
/// stop, comes from a `panini-` thread; with one thread, from smol's.
#[test]
fn with_two_threads_the_connection_runs_on_the_apps_threads() {
    for (threads, on_app_threads) in [(2, true), (1, false)] {
        let server = NatsServer::start();
        let closed_on = run(async {
            let (tx, rx) = smol::channel::unbounded::<String>();
            let app = App::new("conn-threads")
                .threads(threads)
                .nats_options(move |opts| {
                    opts.event_callback(move |event| {
                        if matches!(event, client::Event::Closed) {
                            let name = std::thread::current().name().unwrap_or("").to_string();
                            let _ = tx.try_send(name);
                        }
                    })
                });
            let running = RunningApp::start(app, &server).await;
            running.stop().await.unwrap();
            within(Duration::from_secs(5), "the Closed event", rx.recv())
                .await
                .unwrap()
        });
        assert_eq!(
            closed_on.starts_with("panini-"),
            on_app_threads,
            "threads({threads}): Closed emitted on {closed_on:?}"
        );
    }
}
