//! Endpoints that must always answer, against a real nats-server: handler errors whose
//! text cannot be a header, panicking listen and send middlewares, replies the server
//! would refuse, `*_sync` calls from async code, and a zero-interval task (issue #11, bugs
//! 1, 2, 12, 5 and 8). Each failure here used to be a requester timing out or a frozen app.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::app::RunningApp;
use common::{run, within, NatsServer};
use panini::client::{self, Client};
use panini::{App, AppHandle, Headers, Message, Msg, Reply, SendOptions};
use serde_json::{json, Value};
use smol::stream::StreamExt;

/// How long a reply may take before we call it a timeout: far above a reply's
/// milliseconds, far below the 10 s request timeout a lost reply would wait for.
const PROMPT: Duration = Duration::from_secs(3);

/// A request through the app's own handle, bounded by [`PROMPT`].
async fn ask_app(app: &AppHandle, subject: &str) -> panini::Result<Value> {
    within(PROMPT, subject, app.request(subject, json!({}))).await
}

/// A raw request from a plain client, with a request timeout of [`PROMPT`].
async fn ask(client: &Client, subject: &str, payload: &[u8]) -> panini::Result<Message> {
    client.request_with(subject, None, payload, PROMPT).await
}

fn service_error(msg: &Message) -> Option<&str> {
    msg.headers.as_ref()?.get("Nats-Service-Error")
}

#[test]
fn a_handler_error_with_line_breaks_still_gets_an_error_reply() {
    let server = NatsServer::start();
    run(async {
        let mut app = App::new("multiline");
        app.listen("e.lines", || async {
            Err::<Value, _>("line one\nline two\r\nline three\u{7}".to_string())
        });
        app.listen("e.long", || async { Err::<Value, _>("x".repeat(100_000)) });
        let running = RunningApp::start(app, &server).await;

        let err = ask_app(running.handle(), "e.lines").await.unwrap_err();
        match &err {
            panini::Error::Service { code, description } => {
                assert_eq!(*code, 500);
                assert!(description.starts_with("line one"), "{description:?}");
                assert!(description.contains("line two"), "{description:?}");
                assert!(!description.contains(|c: char| c.is_control()));
            }
            other => panic!("want a service error, got {other:?}"),
        }
        // An error text of any length is cut to a header's size, not refused.
        let err = ask_app(running.handle(), "e.long").await.unwrap_err();
        match &err {
            panini::Error::Service {
                code: 500,
                description,
            } => {
                assert!(description.len() < 2_000, "{}", description.len());
                assert!(description.starts_with("xxxx"));
            }
            other => panic!("want a service error, got {other:?}"),
        }
        running.stop().await.unwrap();
    });
}

#[test]
fn a_panicking_listen_middleware_gets_an_error_reply_and_frees_its_slot() {
    let server = NatsServer::start();
    run(async {
        let mut app = App::new("mw-panic");
        app.listen_request(|msg: Message, next| async move {
            match msg.payload.as_slice() {
                b"now" => panic!("middleware boom at the first poll"),
                b"late" => {
                    smol::future::yield_now().await;
                    panic!("middleware boom after an await");
                }
                _ => next.run(msg).await,
            }
        });
        app.listen("p.echo", |msg: Msg<String>| async move { msg.data })
            .max_concurrency(2);
        let running = RunningApp::start(app, &server).await;
        let c = client::connect(server.url()).await.unwrap();

        // More panics of each kind than the endpoint has slots.
        for round in 0..5 {
            for kind in ["now", "late"] {
                let r = ask(&c, "p.echo", kind.as_bytes()).await;
                let r = r.unwrap_or_else(|e| panic!("{kind} panic, round {round}: {e}"));
                assert_eq!(service_error(&r), Some("handler panicked"), "{kind}");
                let r = ask(&c, "p.echo", b"fine").await;
                let r = r.unwrap_or_else(|e| panic!("after a {kind} panic: {e}"));
                assert_eq!(r.payload, b"fine");
            }
        }
        running.stop().await.unwrap();
    });
}

/// A send middleware runs in the code that publishes or requests, so its panic is that
/// code's panic: a handler's requester gets the same error reply as for a panicking
/// handler, and the endpoint, its slots and both send chains go on.
#[test]
fn a_panicking_send_middleware_fails_the_handler_that_sent_and_nothing_else() {
    let server = NatsServer::start();
    run(async {
        let mut app = App::new("send-mw-panic");
        // Each hook panics at its first poll for `boom.now`, after an await for `boom.late`.
        app.send_publish(|out, next| async move {
            boom(&out.subject).await;
            next.run(out).await
        });
        app.send_request(|out, next| async move {
            boom(&out.subject).await;
            next.run(out).await
        });
        app.listen("s.echo", |msg: Msg<String>| async move { msg.data });
        // "pub boom.now" publishes to boom.now, "req boom.late" requests it; anything else
        // is published to s.seen, then asked of s.echo.
        app.listen("s.relay", |msg: Msg<String>, app: AppHandle| async move {
            let opts = SendOptions::default();
            match msg.data.split_once(' ') {
                Some(("pub", to)) => app.publish(to, "x").await.map(|()| String::new()),
                Some((_, to)) => app.request_as::<String>(to, "x", opts).await,
                None => {
                    app.publish("s.seen", msg.data.as_str()).await?;
                    app.request_as::<String>("s.echo", msg.data, opts).await
                }
            }
        })
        .max_concurrency(1);
        let running = RunningApp::start(app, &server).await;
        let c = client::connect(server.url()).await.unwrap();
        let mut seen = c.subscribe("s.seen").await.unwrap();
        c.flush().await.unwrap();

        // More panics than the endpoint has slots, each followed by a publish and a
        // request through the same chains.
        for round in 0..2 {
            for kind in [
                "pub boom.now",
                "pub boom.late",
                "req boom.now",
                "req boom.late",
            ] {
                let r = ask(&c, "s.relay", kind.as_bytes()).await;
                let r = r.unwrap_or_else(|e| panic!("{kind}, round {round}: {e}"));
                assert_eq!(service_error(&r), Some("handler panicked"), "{kind}");
                let r = ask(&c, "s.relay", b"fine").await;
                let r = r.unwrap_or_else(|e| panic!("after {kind}: {e}"));
                assert_eq!(service_error(&r), None, "after {kind}");
                assert_eq!(r.payload, b"fine", "after {kind}");
                let published = within(PROMPT, "the publish after a panic", seen.next()).await;
                assert_eq!(
                    published.expect("subscribed").payload,
                    b"fine",
                    "after {kind}"
                );
            }
        }
        running.stop().await.unwrap();
    });
}

/// What the send hooks of the test above do before they go on.
async fn boom(subject: &str) {
    match subject {
        "boom.now" => panic!("send middleware boom at the first poll"),
        "boom.late" => {
            smol::future::yield_now().await;
            panic!("send middleware boom after an await");
        }
        _ => {}
    }
}

#[test]
fn a_reply_the_server_would_refuse_becomes_an_error_reply() {
    let server = NatsServer::with_config("max_payload: 1024\n");
    run(async {
        let mut app = App::new("too-big");
        app.listen("b.big", || async { vec![b'x'; 4096] });
        app.listen("b.header", || async {
            let mut headers = Headers::new();
            headers.insert("Bad", "a\r\nb");
            Reply {
                payload: b"ok".to_vec(),
                headers: Some(headers),
            }
        });
        app.listen("b.small", || async { "small" });
        let running = RunningApp::start(app, &server).await;

        for subject in ["b.big", "b.header"] {
            let err = ask_app(running.handle(), subject).await.unwrap_err();
            match &err {
                panini::Error::Service {
                    code: 500,
                    description,
                } => {
                    assert!(
                        description.contains("cannot send the reply"),
                        "{description}"
                    );
                }
                other => panic!("{subject}: want a service error, got {other:?}"),
            }
        }
        let c = client::connect(server.url()).await.unwrap();
        assert_eq!(ask(&c, "b.small", b"").await.unwrap().payload, b"small");
        running.stop().await.unwrap();
    });
}

#[test]
fn a_zero_interval_task_is_clamped_and_does_not_starve_the_app() {
    let server = NatsServer::start();
    run(async {
        let runs = Arc::new(AtomicUsize::new(0));
        let mut app = App::new("zero-interval");
        let counted = runs.clone();
        app.task_every(Duration::ZERO, move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            async {}
        });
        app.listen("z.echo", |msg: Msg<String>| async move { msg.data });
        let running = RunningApp::start(app, &server).await;
        let c = client::connect(server.url()).await.unwrap();
        let r = within(PROMPT, "a reply beside the task", ask(&c, "z.echo", b"hi")).await;
        assert_eq!(r.unwrap().payload, b"hi");

        // At one run per millisecond at most (plus the run at the start of the window).
        let (before, from) = (runs.load(Ordering::SeqCst), Instant::now());
        smol::Timer::after(Duration::from_millis(200)).await;
        let (after, elapsed) = (runs.load(Ordering::SeqCst), from.elapsed());
        let most = elapsed.as_millis() as usize + 2;
        assert!(after > before, "the task still runs");
        assert!(
            after - before <= most,
            "{} runs in {elapsed:?}, want at most {most}",
            after - before
        );
        running.stop().await.unwrap();
    });
}

#[test]
fn request_sync_in_an_async_handler_is_an_error_not_a_freeze() {
    let server = NatsServer::start();
    run(async {
        let mut app = App::new("sync-in-async").request_timeout(Duration::from_secs(5));
        app.listen("s.echo", |msg: Msg| async move { msg.data });
        app.listen("s.request", |app: AppHandle| async move {
            app.request_sync("s.echo", json!({"a": 1}))
        });
        app.listen("s.publish", |app: AppHandle| async move {
            app.publish_sync("s.echo", json!({})).map(|()| "published")
        });
        let (tx, from_task) = smol::channel::bounded(1);
        app.task(move |app: AppHandle| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(app.publish_sync("s.echo", json!({}))).await;
            }
        });
        let running = RunningApp::start(app, &server).await;
        let in_task = within(PROMPT, "publish_sync in a task", from_task.recv()).await;
        assert!(
            matches!(
                in_task,
                Ok(Err(panini::Error::SyncInAsync {
                    method: "publish_sync"
                }))
            ),
            "{in_task:?}"
        );

        for (subject, method) in [("s.request", "request_sync"), ("s.publish", "publish_sync")] {
            let started = Instant::now();
            let err = ask_app(running.handle(), subject).await.unwrap_err();
            match &err {
                panini::Error::Service {
                    code: 500,
                    description,
                } => {
                    assert!(description.contains(method), "{description}");
                }
                other => panic!("{subject}: want a service error, got {other:?}"),
            }
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{subject}: not prompt"
            );
            let echoed = ask_app(running.handle(), "s.echo").await.unwrap();
            assert_eq!(echoed, json!({}), "the app keeps serving");
        }
        running.stop().await.unwrap();
    });
}
