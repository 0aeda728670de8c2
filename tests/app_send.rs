//! Sending through an `AppHandle` against a real nats-server (issue #11, "Tests also
//! missing today"): `publish_with` headers and reply-to, `request_message`, request
//! timeouts from the app and from `SendOptions`, and the `send_any` middleware.
//!
//! Each test is written to fail if its feature were broken; the comment above each says how.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::app::{ask, RunningApp};
use common::{run, within, NatsServer};
use panini::client;
use panini::middleware::{Outgoing, SendKind};
use panini::{App, AppHandle, Headers, Msg, SendOptions};
use serde_json::{json, Value};
use smol::stream::StreamExt;

/// How long a test waits for something that must happen.
const BOUND: Duration = Duration::from_secs(5);

/// `publish_with` through an `AppHandle` sends its headers and reply subject (and a plain
/// `publish` sends neither), with and without a send middleware in the way.
#[test]
fn publish_with_sends_headers_and_reply_to_through_the_app_handle() {
    let server = NatsServer::start();
    run(async {
        let c = client::connect(server.url()).await.unwrap();
        let mut out = c.subscribe("pw.out").await.unwrap();
        c.flush().await.unwrap();
        for with_middleware in [false, true] {
            let mut app = App::new("pw");
            if with_middleware {
                app.send_publish(|out, next| async move { next.run(out).await });
            }
            let (tx, rx) = smol::channel::bounded(1);
            app.task(move |app: AppHandle| {
                let tx = tx.clone();
                async move {
                    let mut headers = Headers::new();
                    headers.insert("X-Trace", "abc-123");
                    headers.append("X-Tag", "one").append("X-Tag", "two");
                    let opts = SendOptions {
                        headers: Some(headers),
                        reply_to: Some("pw.back".into()),
                        ..Default::default()
                    };
                    let first = app.publish_with("pw.out", json!({"k": 1}), opts).await;
                    let second = app.publish("pw.out", "plain").await;
                    let _ = tx.send((first, second)).await;
                }
            });
            let running = RunningApp::start(app, &server).await;
            let (first, second) = within(BOUND, "the task's publishes", rx.recv())
                .await
                .unwrap();
            first.unwrap();
            second.unwrap();
            let msg = within(BOUND, "the published message", out.next())
                .await
                .unwrap();
            assert_eq!(msg.payload, br#"{"k":1}"#, "middleware: {with_middleware}");
            assert_eq!(msg.reply.as_deref(), Some("pw.back"));
            let h = msg.headers.expect("headers sent");
            assert_eq!(h.get("X-Trace"), Some("abc-123"));
            assert_eq!(h.get_all("X-Tag").collect::<Vec<_>>(), ["one", "two"]);
            let plain = within(BOUND, "the plain message", out.next())
                .await
                .unwrap();
            assert_eq!(plain.payload, b"plain");
            assert_eq!(plain.reply, None);
            assert!(plain.headers.is_none(), "{:?}", plain.headers);
            running.stop().await.unwrap();
        }
    });
}

/// `request_message` returns the whole response, headers included, and sends the request's
/// headers; a handler's error reply comes back as a message (where `request` gives
/// `Error::Service`).
#[test]
fn request_message_returns_the_whole_response_and_error_replies_as_messages() {
    let server = NatsServer::start();
    run(async {
        // A responder that echoes a request header back in a response header.
        let c = client::connect(server.url()).await.unwrap();
        let mut asked = c.subscribe("rm.headers").await.unwrap();
        c.flush().await.unwrap();
        let responder = {
            let c = c.clone();
            smol::spawn(async move {
                let req = asked.next().await.unwrap();
                let mut h = Headers::new();
                let got = req.headers.as_ref().and_then(|h| h.get("X-Req"));
                h.insert("X-Echo", got.unwrap_or("none"));
                c.publish_with(req.reply.as_deref().unwrap(), None, Some(&h), "body")
                    .await
                    .unwrap();
            })
        };
        let mut app = App::new("rm");
        app.listen("rm.fails", |_: Msg| async {
            Err::<Value, _>("out of stock")
        });
        let running = RunningApp::start(app, &server).await;
        let app = running.handle();

        let mut headers = Headers::new();
        headers.insert("X-Req", "r-1");
        let opts = SendOptions {
            headers: Some(headers),
            ..Default::default()
        };
        let msg = app.request_message("rm.headers", "q", opts).await.unwrap();
        responder.await;
        assert_eq!(msg.payload, b"body");
        let h = msg.headers.expect("the response's headers");
        assert_eq!(h.get("X-Echo"), Some("r-1"), "request headers went out");

        let msg = app
            .request_message("rm.fails", json!({}), SendOptions::default())
            .await
            .expect("an error reply is a message");
        let h = msg.headers.expect("error headers");
        assert_eq!(h.get("Nats-Service-Error"), Some("out of stock"));
        assert_eq!(h.get("Nats-Service-Error-Code"), Some("500"));
        let err = app.request("rm.fails", json!({})).await.unwrap_err();
        assert!(
            matches!(&err, panini::Error::Service { code: 500, .. }),
            "{err:?}"
        );
        running.stop().await.unwrap();
    });
}

/// Request timeouts through an `AppHandle`: `App::request_timeout` bounds `request` and
/// `request_message` when nobody answers (a subscriber that never replies, so not "no
/// responders"), and `SendOptions::timeout` overrides it both ways: shorter (times out
/// early) and longer (waits for a late reply the app's timeout would have missed).
#[test]
fn request_timeouts_come_from_the_app_and_from_send_options() {
    let server = NatsServer::start();
    run(async {
        let c = client::connect(server.url()).await.unwrap();
        let _silent = c.subscribe("to.silent").await.unwrap();
        let mut slow = c.subscribe("to.slow").await.unwrap();
        c.flush().await.unwrap();
        let late = Duration::from_millis(700);
        let slow_responder = {
            let c = c.clone();
            smol::spawn(async move {
                let req = slow.next().await.unwrap();
                smol::Timer::after(late).await;
                c.publish(req.reply.as_deref().unwrap(), "late")
                    .await
                    .unwrap();
            })
        };
        let app_timeout = Duration::from_millis(300);
        let app = App::new("to").request_timeout(app_timeout);
        let running = RunningApp::start(app, &server).await;
        let app = running.handle();

        let t = Instant::now();
        let r = app.request("to.silent", "x").await;
        let took = t.elapsed();
        assert!(matches!(r, Err(panini::Error::Timeout)), "{r:?}");
        assert!(
            took >= app_timeout && took < BOUND,
            "request timed out after {took:?}, the app's timeout is {app_timeout:?}"
        );
        let t = Instant::now();
        let r = app
            .request_message("to.silent", "x", SendOptions::default())
            .await;
        let took = t.elapsed();
        assert!(matches!(r, Err(panini::Error::Timeout)), "{r:?}");
        assert!(took >= app_timeout && took < BOUND, "{took:?}");

        let shorter = Duration::from_millis(100);
        let opts = SendOptions {
            timeout: Some(shorter),
            ..Default::default()
        };
        let t = Instant::now();
        let r: panini::Result<Value> = app.request_as("to.silent", "x", opts).await;
        let took = t.elapsed();
        assert!(matches!(r, Err(panini::Error::Timeout)), "{r:?}");
        assert!(
            took >= shorter && took < app_timeout,
            "the per-call {shorter:?} timed out after {took:?}"
        );

        let opts = SendOptions {
            timeout: Some(BOUND),
            ..Default::default()
        };
        let r: String = app
            .request_as("to.slow", "x", opts)
            .await
            .expect("a reply after the app's timeout but within the per-call one");
        assert_eq!(r, "late");
        slow_responder.await;
        running.stop().await.unwrap();
    });
}

/// `send_any` wraps both `publish` and `request` (what it adds reaches the wire for both),
/// runs outermost when added after `send_publish` (last added runs first), and does not
/// wrap handler replies or the start event.
#[test]
fn send_any_wraps_every_publish_and_request() {
    let server = NatsServer::start();
    run(async {
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut app = App::new("sa");
        let l = log.clone();
        app.send_publish(move |out: Outgoing, next| {
            l.lock()
                .unwrap()
                .push(format!("send_publish {}", out.subject));
            next.run(out)
        });
        let l = log.clone();
        app.send_any(move |mut out: Outgoing, next| {
            let kind = match out.kind {
                SendKind::Publish => "publish",
                SendKind::Request => "request",
                _ => "other",
            };
            l.lock()
                .unwrap()
                .push(format!("send_any {kind} {}", out.subject));
            out.headers
                .get_or_insert_with(Headers::new)
                .insert("X-Via", "send_any");
            next.run(out)
        });
        app.listen("sa.echo", |msg: Msg<String>| async move { msg.data });
        let (tx, rx) = smol::channel::bounded(1);
        app.task(move |app: AppHandle| {
            let tx = tx.clone();
            async move {
                let mut h = Headers::new();
                h.insert("X-Orig", "1");
                let opts = SendOptions {
                    headers: Some(h),
                    reply_to: Some("sa.r".into()),
                    ..Default::default()
                };
                let published = app.publish_with("sa.pub", "p", opts).await;
                let answered: panini::Result<String> =
                    app.request_as("sa.req", "q", Default::default()).await;
                let _ = tx.send((published, answered)).await;
            }
        });
        let c = client::connect(server.url()).await.unwrap();
        let mut published = c.subscribe("sa.pub").await.unwrap();
        let mut requests = c.subscribe("sa.req").await.unwrap();
        c.flush().await.unwrap();
        let responder = {
            let c = c.clone();
            smol::spawn(async move {
                let req = requests.next().await.unwrap();
                c.publish(req.reply.as_deref().unwrap(), "answer")
                    .await
                    .unwrap();
                req
            })
        };
        let running = RunningApp::start(app, &server).await;
        // A handler's reply is not a send: send_any must not see it.
        assert_eq!(ask(&c, "sa.echo", b"e").await.payload, b"e");
        let (p, a) = within(BOUND, "the task's sends", rx.recv()).await.unwrap();
        p.unwrap();
        assert_eq!(a.unwrap(), "answer");

        let msg = within(BOUND, "the publish", published.next())
            .await
            .unwrap();
        let h = msg.headers.expect("headers");
        assert_eq!(h.get("X-Via"), Some("send_any"), "send_any saw the publish");
        assert_eq!(h.get("X-Orig"), Some("1"), "the caller's headers kept");
        assert_eq!(msg.reply.as_deref(), Some("sa.r"));
        let req = responder.await;
        assert_eq!(
            req.headers.as_ref().and_then(|h| h.get("X-Via")),
            Some("send_any"),
            "send_any saw the request"
        );
        running.stop().await.unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            [
                "send_any publish sa.pub",
                "send_publish sa.pub",
                "send_any request sa.req",
            ]
        );
    });
}
