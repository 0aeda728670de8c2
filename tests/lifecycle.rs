//! How an app stops, in process, against a real nats-server: the order of the graceful stop
//! (HTTP requests in flight finish before `on_stop` and before NATS closes), the drain
//! timeout as the one bound of the whole stop, `on_stop` failures, and what a failed start
//! leaves behind (nothing). Signals and exit codes are in `processes.rs`.
//!
//! A test that checks something does *not* happen (an `on_stop` hook while a request is in
//! flight) watches for it during a short window: there is no event to wait for instead.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::app::RunningApp;
use common::{run, within, NatsServer};
use panini::client::{self, Client};
use panini::{App, AppHandle, Msg, StartStage};

/// An `on_start` hook that hands the app's handle to the test.
fn handle_of(app: &mut App) -> smol::channel::Receiver<AppHandle> {
    let (tx, rx) = smol::channel::bounded(1);
    app.on_start(move |handle: AppHandle| {
        let tx = tx.clone();
        async move {
            let _ = tx.try_send(handle);
        }
    });
    rx
}

/// A listen handler on `subject` that says it started, then never finishes.
fn stuck_handler(app: &mut App, subject: &str) -> smol::channel::Receiver<()> {
    let (entered_tx, entered) = smol::channel::unbounded();
    app.listen(subject, move |_: Msg| {
        let entered_tx = entered_tx.clone();
        async move {
            let _ = entered_tx.send(()).await;
            std::future::pending::<()>().await;
        }
    });
    entered
}

/// Publishes a request to `subject` whose reply nobody waits for.
async fn send_request(c: &Client, subject: &str) {
    let inbox = c.new_inbox();
    c.publish_with(subject, Some(&inbox), None, "{}")
        .await
        .unwrap();
    c.flush().await.unwrap();
}

const DRAIN: Duration = Duration::from_millis(300);
/// What the stop may take beyond the drain timeout: the close and a busy machine.
const SLACK: Duration = Duration::from_millis(500);

/// Bug 10: one deadline bounds the whole stop. A handler and an `on_stop` hook that never
/// finish cost the drain timeout once, not once per stage (and not forever).
#[test]
fn a_stop_with_a_stuck_handler_and_a_stuck_on_stop_hook_takes_the_drain_timeout() {
    let server = NatsServer::start();
    run(async {
        let mut app = App::new("bounded_stop").drain_timeout(DRAIN);
        let entered = stuck_handler(&mut app, "lifecycle.stuck");
        app.on_stop(|_| std::future::pending::<()>());
        let running = RunningApp::start(app, &server).await;
        let c = client::connect(server.url()).await.unwrap();
        send_request(&c, "lifecycle.stuck").await;
        within(Duration::from_secs(5), "the handler", entered.recv())
            .await
            .unwrap();

        let asked = Instant::now();
        let result = within(DRAIN + Duration::from_secs(10), "run_until", running.stop()).await;
        let took = asked.elapsed();
        assert!(result.is_ok(), "{result:?}");
        assert!(
            took <= DRAIN + SLACK,
            "the stop took {took:?} with a drain timeout of {DRAIN:?}"
        );
        assert!(
            took >= DRAIN / 2,
            "the stop did not wait for the handler in flight: {took:?}"
        );
    });
}

/// Bug 9: a failing `on_stop` hook does not make the stop a failed start, nor skip the
/// hooks after it.
#[test]
fn a_failing_on_stop_hook_does_not_fail_the_stop_nor_skip_the_other_hooks() {
    let server = NatsServer::start();
    run(async {
        let ran = Arc::new(Mutex::new(Vec::new()));
        let mut app = App::new("failing_stop");
        let r = ran.clone();
        app.on_stop(move |_| {
            r.lock().unwrap().push("first");
            async { Err::<(), _>("the cleanup failed") }
        });
        let r = ran.clone();
        app.on_stop(move |_| {
            r.lock().unwrap().push("second");
            async {}
        });
        let running = RunningApp::start(app, &server).await;
        let result = within(Duration::from_secs(5), "run_until", running.stop()).await;
        assert!(
            result.is_ok(),
            "a failed on_stop hook failed the stop: {result:?}"
        );
        assert_eq!(*ran.lock().unwrap(), ["first", "second"]);
    });
}

/// Bug 11: a start that fails after subscribing unsubscribes what it started and closes
/// the connection: nobody serves the subject afterwards.
#[test]
fn a_start_that_fails_after_subscribing_leaves_nothing_serving() {
    let server = NatsServer::start();
    run(async {
        let mut app = App::new("half_started");
        let handle = handle_of(&mut app);
        app.listen("lifecycle.served", |_: Msg| async { "served" });
        // Subscribed after the first: refused, so the start fails there.
        app.listen("not a subject", |_: Msg| async {});
        let app = app.servers([server.url()]).banner(false);
        let result = within(
            Duration::from_secs(5),
            "run_until",
            app.run_until(std::future::pending()),
        )
        .await;
        let err = result.expect_err("the start fails");
        let at = StartStage::Subscribe("not a subject".into());
        assert!(
            matches!(&err, panini::Error::Start { stage, .. } if *stage == at),
            "{err:?}"
        );
        let refused = cause(&err, |e| matches!(e, panini::Error::InvalidSubject(_)));
        assert!(refused.is_some(), "the refusal is not the source: {err:?}");
        let handle = handle.recv().await.unwrap();
        assert!(
            handle.client().is_closed(),
            "the app's connection is still open after its start failed"
        );
        let c = client::connect(server.url()).await.unwrap();
        let asked = c
            .request_with("lifecycle.served", None, "{}", Duration::from_secs(2))
            .await;
        assert!(
            matches!(asked, Err(panini::Error::NoResponders)),
            "the subject is still served after the start failed: {asked:?}"
        );
    });
}

/// Bug 11: an `on_start` hook that fails closes the connection the app opened.
#[test]
fn an_on_start_failure_closes_the_connection() {
    let server = NatsServer::start();
    run(async {
        let mut app = App::new("bad_hook");
        // on_start hook #1 hands over the handle; #2 fails.
        let handle = handle_of(&mut app);
        app.on_start(|_| async { Err::<(), _>("no database") });
        let app = app.servers([server.url()]).banner(false);
        let result = within(
            Duration::from_secs(5),
            "run_until",
            app.run_until(std::future::pending()),
        )
        .await;
        assert!(
            matches!(
                &result,
                Err(panini::Error::Start { stage: StartStage::OnStart(2), source })
                    if source.to_string() == "no database"
            ),
            "{result:?}"
        );
        let handle = handle.recv().await.unwrap();
        assert!(
            handle.client().is_closed(),
            "the app's connection is still open after its start failed"
        );
    });
}

/// Each error of `err`'s `source()` chain, `err` first.
fn chain(err: &panini::Error) -> Vec<&(dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .collect()
}

/// The first `panini::Error` in `err`'s chain, after `err` itself, that `is` picks.
fn cause(err: &panini::Error, is: impl Fn(&panini::Error) -> bool) -> Option<&panini::Error> {
    chain(err)[1..]
        .iter()
        .filter_map(|e| e.downcast_ref::<panini::Error>())
        .find(|e| is(e))
}

/// The error an `on_start` hook returned.
#[derive(Debug)]
struct NoDatabase;

impl std::fmt::Display for NoDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no database")
    }
}

impl std::error::Error for NoDatabase {}

/// Issue #11: a failed `on_start` hook's own error is the start error's source (not only
/// its text), so a caller can find it by type.
#[test]
fn a_failed_on_start_hook_is_the_source_of_the_start_error() {
    let server = NatsServer::start();
    run(async {
        let mut app = App::new("typed_hook");
        app.on_start(|_| async { Ok::<(), NoDatabase>(()) });
        app.on_start(|_| async { Err::<(), _>(NoDatabase) });
        let app = app.servers([server.url()]).banner(false);
        let err = within(
            Duration::from_secs(5),
            "run_until",
            app.run_until(std::future::pending()),
        )
        .await
        .expect_err("the start fails");
        assert_eq!(
            err.to_string(),
            "cannot start: on_start hook #2 failed: no database"
        );
        assert!(
            matches!(
                err,
                panini::Error::Start {
                    stage: StartStage::OnStart(2),
                    ..
                }
            ),
            "{err:?}"
        );
        let found = chain(&err).iter().any(|e| e.is::<NoDatabase>());
        assert!(
            found,
            "the hook's error is not in the source chain: {err:?}"
        );
    });
}

/// Issue #11: a panicking `on_start` hook fails the start with the panic's message, as an
/// error of its own below the start error.
#[test]
fn a_panicking_on_start_hook_is_the_source_of_the_start_error() {
    let server = NatsServer::start();
    run(async {
        let mut app = App::new("panicking_hook");
        app.on_start(|_| async {
            if true {
                panic!("the schema is missing");
            }
        });
        let app = app.servers([server.url()]).banner(false);
        let err = within(
            Duration::from_secs(5),
            "run_until",
            app.run_until(std::future::pending()),
        )
        .await
        .expect_err("the start fails");
        let source = std::error::Error::source(&err).map(|e| e.to_string());
        assert_eq!(
            source.as_deref(),
            Some("panicked: the schema is missing"),
            "{err:?}"
        );
    });
}

/// Issue #11: an app that cannot reach NATS fails its start with the client's error as the
/// source: `NoServers`, and below it the I/O error of the refused connection.
#[test]
fn an_app_that_cannot_connect_keeps_why_as_the_source_of_the_start_error() {
    let mut server = NatsServer::start();
    let url = server.url();
    server.stop();
    run(async {
        let app = App::new("no_server")
            .reconnect(false)
            .servers([url])
            .banner(false);
        let err = within(
            Duration::from_secs(5),
            "run_until",
            app.run_until(std::future::pending()),
        )
        .await
        .expect_err("no server, no start");
        assert!(
            err.to_string()
                .starts_with("cannot start: cannot connect to NATS: "),
            "{err}"
        );
        assert!(
            matches!(
                err,
                panini::Error::Start {
                    stage: StartStage::Connect,
                    ..
                }
            ),
            "{err:?}"
        );
        let no_servers = cause(&err, |e| matches!(e, panini::Error::NoServers(_)));
        assert!(no_servers.is_some(), "no NoServers in the chain: {err:?}");
        let io = cause(&err, |e| matches!(e, panini::Error::Io(_)));
        assert!(io.is_some(), "no I/O error in the chain: {err:?}");
    });
}

/// Bug 4 (in process): a stop asked for while the app still waits for NATS ends
/// `run_until` at once, cleanly; the connection retries do not hold it.
#[test]
fn a_stop_while_retrying_the_first_connection_returns_at_once() {
    run(async {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let app = App::new("never_connected")
            .servers([format!("nats://127.0.0.1:{port}")])
            .reconnecting_time_sleep(Duration::from_secs(10))
            .banner(false);
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let done = smol::spawn(app.run_until(async move {
            let _ = stopped.recv().await;
        }));
        stop.send(()).await.unwrap();
        let asked = Instant::now();
        let result = within(Duration::from_secs(5), "run_until", done).await;
        assert!(result.is_ok(), "{result:?}");
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "{:?}",
            asked.elapsed()
        );
    });
}

#[cfg(feature = "http")]
#[path = "common/http_app.rs"]
mod http_app;
#[cfg(feature = "http")]
#[path = "common/http_client.rs"]
mod http_client;

/// The graceful stop with HTTP requests in flight.
#[cfg(feature = "http")]
mod with_http {
    use super::*;
    use crate::http_app::{bare, held, start};
    use crate::http_client::Client as HttpClient;
    use panini::client::Event;
    use panini::http::Request;
    use serde_json::Value;
    use smol::future::FutureExt;
    use smol::stream::StreamExt;

    /// Bug 3: an HTTP request in flight when the stop begins can still use NATS, and
    /// `on_stop` runs only after it is answered.
    #[test]
    fn an_http_request_in_flight_at_the_stop_still_gets_its_nats_reply() {
        let server = NatsServer::start();
        run(async {
            let order = Arc::new(Mutex::new(Vec::new()));
            let (draining_tx, draining) = smol::channel::unbounded();
            let mut app = App::new("http_drain").nats_options(move |o| {
                o.event_callback(move |ev| {
                    if matches!(ev, Event::Draining) {
                        let _ = draining_tx.try_send(());
                    }
                })
            });
            let (entered_tx, entered) = smol::channel::unbounded();
            let (release, released) = smol::channel::unbounded::<()>();
            let o = order.clone();
            app.http().get("/ask", move |req: Request| {
                let (entered_tx, released, o) = (entered_tx.clone(), released.clone(), o.clone());
                async move {
                    let _ = entered_tx.send(()).await;
                    let _ = released.recv().await;
                    let answer: panini::Result<Value> =
                        req.app().request("lifecycle.backend", "{}").await;
                    o.lock().unwrap().push("http answered");
                    answer
                }
            });
            // The app's request inbox exists before the stop: the first request ever made
            // during a drain is bug 6, apart from this one.
            app.on_start(|app: AppHandle| async move {
                app.request("lifecycle.backend", "{}").await.map(drop)
            });
            let (stop_seen_tx, stop_seen) = smol::channel::unbounded();
            let o = order.clone();
            app.on_stop(move |_| {
                o.lock().unwrap().push("on_stop");
                let _ = stop_seen_tx.try_send(());
                async {}
            });
            // The NATS side of the route: another service.
            let backend = client::connect(server.url()).await.unwrap();
            let mut asks = backend.subscribe("lifecycle.backend").await.unwrap();
            backend.flush().await.unwrap();
            let answering = smol::spawn(async move {
                while let Some(m) = asks.next().await {
                    if let Some(reply) = m.reply {
                        backend.publish(&reply, r#"{"answer":42}"#).await.unwrap();
                    }
                }
            });
            let s = start(app, &server).await;
            let mut c = HttpClient::connect(s.http_addr()).await;
            c.send(bare("GET", "/ask")).await;
            within(Duration::from_secs(5), "the route", entered.recv())
                .await
                .unwrap();

            s.request_stop();
            within(Duration::from_secs(5), "the drain", draining.recv())
                .await
                .unwrap();
            // on_stop must not run while the request is in flight (watched for a while).
            let early = async { stop_seen.recv().await.is_ok() }
                .or(async {
                    smol::Timer::after(Duration::from_millis(300)).await;
                    false
                })
                .await;
            release.send(()).await.unwrap();
            let r = c.response().await;
            assert_eq!(
                (r.status, r.text()),
                (200, r#"{"answer":42}"#),
                "the route could not use NATS during the stop"
            );
            assert!(!early, "on_stop ran while an HTTP request was in flight");
            let result = within(Duration::from_secs(5), "run_until", s.join()).await;
            assert!(result.is_ok(), "{result:?}");
            assert_eq!(*order.lock().unwrap(), ["http answered", "on_stop"]);
            answering.cancel().await;
        });
    }

    /// Bug 10: an HTTP request that never finishes does not stretch the stop past the
    /// drain timeout either.
    #[test]
    fn a_stuck_http_request_costs_the_drain_timeout_once() {
        let server = NatsServer::start();
        run(async {
            let mut app = App::new("http_stuck").drain_timeout(DRAIN);
            let (entered, _release) = held(&mut app, "/held");
            let handler_entered = stuck_handler(&mut app, "lifecycle.stuck");
            app.on_stop(|_| std::future::pending::<()>());
            let s = start(app, &server).await;
            let mut c = HttpClient::connect(s.http_addr()).await;
            c.send(bare("GET", "/held")).await;
            within(Duration::from_secs(5), "the route", entered.recv())
                .await
                .unwrap();
            let nc = client::connect(server.url()).await.unwrap();
            send_request(&nc, "lifecycle.stuck").await;
            within(
                Duration::from_secs(5),
                "the handler",
                handler_entered.recv(),
            )
            .await
            .unwrap();

            let asked = Instant::now();
            let result = within(DRAIN + Duration::from_secs(10), "run_until", s.stop()).await;
            let took = asked.elapsed();
            assert!(result.is_ok(), "{result:?}");
            assert!(
                took <= DRAIN + SLACK,
                "the stop took {took:?} with a drain timeout of {DRAIN:?}"
            );
        });
    }
}
