//! Middlewares in an app against a real nats-server: listen and send closures in order
//! (last added runs first), changing or stopping a message, and a middleware class with
//! its four hooks around sync handlers.

mod common;

use std::sync::{Arc, Mutex};

use common::app::{ask, RunningApp};
use common::{run, NatsServer};
use panini::client;
use panini::{App, AppHandle, Message, Msg, Reply};
use smol::stream::StreamExt;

/// Starts `app` against `server`; its start event carries an empty JSON object.
async fn start(app: App, server: &NatsServer) -> RunningApp {
    let running = RunningApp::start(app, server).await;
    assert_eq!(running.start_event().payload, b"{}");
    running
}

#[test]
fn middlewares_run_last_added_first_and_can_change_or_stop_things() {
    let server = NatsServer::start();
    run(async {
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut app = App::new("mw");
        let l = log.clone();
        app.listen("m.echo", move |msg: Msg<String>| {
            l.lock().unwrap().push(format!("handler {}", msg.data));
            let data = msg.data;
            async move { data }
        });
        for name in ["m1", "m2"] {
            let l = log.clone();
            app.listen_any(move |msg, next| {
                let l = l.clone();
                async move {
                    l.lock().unwrap().push(format!("{name} before"));
                    let out = next.run(msg).await;
                    l.lock().unwrap().push(format!("{name} after"));
                    out
                }
            });
        }
        // Changes the incoming message and the response.
        app.listen_request(|mut msg: Message, next| async move {
            msg.payload.extend_from_slice(b"+in");
            let mut out = next.run(msg).await;
            if let Some(reply) = out.as_mut() {
                reply.payload.extend_from_slice(b"+out");
            }
            out
        });
        // Short-circuits one subject: the handler never runs.
        app.listen_request(|msg: Message, next| async move {
            if msg.subject == "m.blocked" {
                return Some(Reply {
                    payload: b"refused".to_vec(),
                    headers: None,
                });
            }
            next.run(msg).await
        });
        let blocked_log = log.clone();
        app.listen("m.blocked", move |_: Msg| {
            blocked_log
                .lock()
                .unwrap()
                .push("never: the blocked handler ran".into());
            async { "never" }
        });
        // Send side: rewrites the subject of publishes, decorates request responses.
        app.send_publish(|mut out, next| async move {
            out.subject = format!("rewritten.{}", out.subject);
            next.run(out).await
        });
        app.send_request(|out, next| async move {
            let mut response = next.run(out).await?;
            if let Some(msg) = response.as_mut() {
                msg.payload.extend_from_slice(b"!");
            }
            Ok(response)
        });
        let (tx, rx) = smol::channel::bounded(1);
        app.task(move |app: AppHandle| {
            let tx = tx.clone();
            async move {
                app.publish("note", "x").await.unwrap();
                let r: String = app
                    .request_as("m.echo", "hi", Default::default())
                    .await
                    .unwrap();
                let _ = tx.send(r).await;
            }
        });
        let c = client::connect(server.url()).await.unwrap();
        let mut rewritten = c.subscribe("rewritten.note").await.unwrap();
        c.flush().await.unwrap();
        let running = start(app, &server).await;

        assert_eq!(rewritten.next().await.unwrap().payload, b"x");
        assert_eq!(rx.recv().await.unwrap(), "hi+in+out!");
        assert_eq!(ask(&c, "m.blocked", b"{}").await.payload, b"refused");
        let seen = log.lock().unwrap().clone();
        assert_eq!(
            &seen[..5],
            [
                "m2 before",
                "m1 before",
                "handler hi+in",
                "m1 after",
                "m2 after"
            ]
        );
        assert!(!seen.iter().any(|l| l.contains("never")));
        running.stop().await.unwrap();
    });
}

/// A Panini-style middleware class recording what its four hooks see.
struct Recorder(Arc<Mutex<Vec<String>>>);

impl panini::middleware::Middleware for Recorder {
    async fn send_publish(
        &self,
        out: panini::middleware::Outgoing,
        next: panini::middleware::Next<
            panini::middleware::Outgoing,
            panini::middleware::SendResult,
        >,
    ) -> panini::middleware::SendResult {
        self.0
            .lock()
            .unwrap()
            .push(format!("send_publish {}", out.subject));
        next.run(out).await
    }

    async fn send_request(
        &self,
        out: panini::middleware::Outgoing,
        next: panini::middleware::Next<
            panini::middleware::Outgoing,
            panini::middleware::SendResult,
        >,
    ) -> panini::middleware::SendResult {
        self.0
            .lock()
            .unwrap()
            .push(format!("send_request {}", out.subject));
        next.run(out).await
    }

    async fn listen_publish(
        &self,
        msg: Message,
        next: panini::middleware::Next<Message, panini::middleware::ListenResult>,
    ) -> panini::middleware::ListenResult {
        self.0
            .lock()
            .unwrap()
            .push(format!("listen_publish {}", msg.subject));
        next.run(msg).await
    }

    async fn listen_request(
        &self,
        msg: Message,
        next: panini::middleware::Next<Message, panini::middleware::ListenResult>,
    ) -> panini::middleware::ListenResult {
        self.0
            .lock()
            .unwrap()
            .push(format!("listen_request {}", msg.subject));
        let mut out = next.run(msg).await;
        if let Some(reply) = out.as_mut() {
            reply.payload.extend_from_slice(b" (seen)");
        }
        out
    }
}

#[test]
fn a_middleware_class_with_four_hooks_works_with_sync_handlers() {
    let server = NatsServer::start();
    run(async {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut app = App::new("mwclass");
        app.add_middleware(Recorder(log.clone()));
        app.listen_sync("c.sync", |msg: Msg<String>| format!("sync {}", msg.data));
        app.listen_sync("c.event", |_: Msg<String>| {});
        let (tx, rx) = smol::channel::bounded(1);
        app.task(move |app: AppHandle| {
            let tx = tx.clone();
            async move {
                app.publish("c.event", "e").await.unwrap();
                let r: String = app
                    .request_as("c.sync", "x", Default::default())
                    .await
                    .unwrap();
                let _ = tx.send(r).await;
            }
        });
        let running = start(app, &server).await;
        assert_eq!(rx.recv().await.unwrap(), "sync x (seen)");
        running.stop().await.unwrap();
        let mut seen = log.lock().unwrap().clone();
        seen.sort();
        assert_eq!(
            seen,
            [
                "listen_publish c.event",
                "listen_request c.sync",
                "send_publish c.event",
                "send_request c.sync"
            ]
        );
    });
}
