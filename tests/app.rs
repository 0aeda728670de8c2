//! The framework against a real nats-server: data types, replies, failures, tasks,
//! the sync API, queue groups, runtime subscriptions, start and stop. Middlewares are in
//! `app_middleware.rs`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::app::{ask, RunningApp};
use common::{run, NatsServer};
use panini::client;
use panini::{App, AppHandle, Json, Msg};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use smol::stream::StreamExt;

/// Starts `app` against `server`; its start event carries an empty JSON object.
async fn start(app: App, server: &NatsServer) -> RunningApp {
    let running = RunningApp::start(app, server).await;
    assert_eq!(running.start_event().payload, b"{}");
    running
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Order {
    id: u32,
    item: String,
}

#[test]
fn data_types_both_ways_on_the_wire() {
    let server = NatsServer::start();
    run(async {
        let mut app = App::new("types");
        app.listen("t.json", |msg: Msg| async move {
            json!({"got": msg.data, "n": 1})
        });
        app.listen("t.str", |msg: Msg<String>| async move {
            format!("hello {}", msg.data)
        });
        app.listen("t.bytes", |msg: Msg<Vec<u8>>| async move {
            msg.data.iter().rev().copied().collect::<Vec<u8>>()
        });
        app.listen("t.typed", |msg: Msg<Json<Order>>| async move {
            Json(Order {
                id: msg.data.id + 1,
                item: msg.data.item.to_uppercase(),
            })
        });
        app.listen("t.bare", |data: Value| async move { data });
        let running = start(app, &server).await;
        let c = client::connect(server.url()).await.unwrap();

        let r = ask(&c, "t.json", br#"{"x": [1, 2]}"#).await;
        assert_eq!(
            r.payload, br#"{"got":{"x":[1,2]},"n":1}"#,
            "compact JSON, key order kept"
        );
        assert_eq!(
            ask(&c, "t.str", b"joe").await.payload,
            b"hello joe",
            "str raw, not quoted"
        );
        assert_eq!(
            ask(&c, "t.bytes", b"\x00\x01\xff").await.payload,
            b"\xff\x01\x00"
        );
        let r = ask(&c, "t.typed", br#"{"id":1,"item":"tea"}"#).await;
        assert_eq!(r.payload, br#"{"id":2,"item":"TEA"}"#);
        assert_eq!(ask(&c, "t.bare", b"[1,true]").await.payload, b"[1,true]");
        running.stop().await.unwrap();
    });
}

#[test]
fn a_payload_that_does_not_decode_gets_the_message_schema_error_reply() {
    let server = NatsServer::start();
    run(async {
        let mut app = App::new("schema");
        let called = Arc::new(AtomicUsize::new(0));
        let seen = called.clone();
        app.listen("s.typed", move |_: Msg<Json<Order>>| {
            seen.fetch_add(1, Ordering::SeqCst);
            async {}
        });
        app.listen("s.str", |_: Msg<String>| async {});
        let running = start(app, &server).await;
        let c = client::connect(server.url()).await.unwrap();
        for (subject, bad) in [
            ("s.typed", &b"not json"[..]),
            ("s.typed", br#"{"id":"x"}"#),
            ("s.str", b"\xff\xfe"),
        ] {
            let r = ask(&c, subject, bad).await;
            assert_eq!(
                r.payload,
                br#"{"success":false,"error":"MessageSchemaError"}"#
            );
            let h = r.headers.unwrap();
            assert_eq!(h.get("Nats-Service-Error"), Some("MessageSchemaError"));
            assert_eq!(h.get("Nats-Service-Error-Code"), Some("400"));
        }
        assert_eq!(
            called.load(Ordering::SeqCst),
            0,
            "the handler is not called"
        );
        running.stop().await.unwrap();
    });
}

#[test]
fn handler_errors_and_panics_get_error_replies_and_nothing_else_breaks() {
    let server = NatsServer::start();
    run(async {
        let mut app = App::new("failing");
        app.listen("f.err", |_: Msg| async {
            Err::<Value, _>("database is down")
        });
        app.listen("f.panic", |_: Msg| async {
            if true {
                panic!("boom");
            }
        });
        app.listen("f.stream", |_: Msg| async {
            Err::<(), _>("ignored: no reply subject")
        });
        app.listen("f.ok", |_: Msg| async { "fine" });
        let running = start(app, &server).await;
        let c = client::connect(server.url()).await.unwrap();

        let r = ask(&c, "f.err", b"{}").await;
        let h = r.headers.clone().unwrap();
        assert_eq!(h.get("Nats-Service-Error"), Some("database is down"));
        assert_eq!(h.get("Nats-Service-Error-Code"), Some("500"));
        assert_eq!(
            r.payload,
            br#"{"success":false,"error":"database is down"}"#
        );

        let r = ask(&c, "f.panic", b"{}").await;
        assert_eq!(
            r.headers.unwrap().get("Nats-Service-Error"),
            Some("handler panicked")
        );

        c.publish("f.stream", "{}").await.unwrap();
        for _ in 0..3 {
            assert_eq!(ask(&c, "f.ok", b"{}").await.payload, b"fine");
            assert!(ask(&c, "f.panic", b"{}").await.headers.is_some());
        }
        // The app-side API sees service errors as errors.
        let (tx, rx) = smol::channel::bounded(1);
        let mut caller = App::new("caller");
        caller.task(move |app: AppHandle| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(app.request("f.err", json!({})).await).await;
            }
        });
        let caller = start(caller, &server).await;
        let err = rx.recv().await.unwrap().unwrap_err();
        assert!(
            matches!(&err, panini::Error::Service { code: 500, description } if description == "database is down"),
            "{err:?}"
        );
        caller.stop().await.unwrap();
        running.stop().await.unwrap();
    });
}

/// A handler's run is polled once where its message is taken; a run that waits goes on in
/// a task of its own. Runs that finish at once and runs that wait, interleaved on one
/// endpoint, must each answer their own request, and a panic after an await must still
/// become an error reply.
#[test]
fn handlers_that_sometimes_wait_answer_each_request_and_late_panics_are_caught() {
    let server = NatsServer::start();
    run(async {
        let mut app = App::new("mixed");
        app.listen("m.echo", |msg: Msg<String>| async move {
            let n: u32 = msg.data.parse().unwrap_or(0);
            if n % 3 == 0 {
                // Pending at the first poll: this run moves to a task of its own.
                smol::future::yield_now().await;
            }
            format!("re:{}", msg.data)
        });
        app.listen("m.late_panic", |msg: Msg<String>| async move {
            smol::future::yield_now().await;
            if msg.data == "boom" {
                panic!("late boom");
            }
            msg.data
        });
        let running = start(app, &server).await;
        let c = client::connect(server.url()).await.unwrap();

        let asks = (0..60u32).map(|n| {
            let c = c.clone();
            smol::spawn(async move { (n, ask(&c, "m.echo", n.to_string().as_bytes()).await) })
        });
        for task in asks.collect::<Vec<_>>() {
            let (n, r) = task.await;
            assert_eq!(r.payload, format!("re:{n}").into_bytes());
        }

        let r = ask(&c, "m.late_panic", b"boom").await;
        assert_eq!(
            r.headers.unwrap().get("Nats-Service-Error"),
            Some("handler panicked")
        );
        assert_eq!(ask(&c, "m.late_panic", b"fine").await.payload, b"fine");
        running.stop().await.unwrap();
    });
}

#[test]
fn tasks_run_once_or_on_schedule_and_survive_failures_without_overlap() {
    let server = NatsServer::start();
    run(async {
        let once = Arc::new(AtomicUsize::new(0));
        let ticks = Arc::new(AtomicUsize::new(0));
        let running_now = Arc::new(AtomicUsize::new(0));
        let max_overlap = Arc::new(AtomicUsize::new(0));
        let mut app = App::new("tasks");
        let o = once.clone();
        app.task(move |_| {
            o.fetch_add(1, Ordering::SeqCst);
            async {}
        });
        let (t, r, m) = (ticks.clone(), running_now.clone(), max_overlap.clone());
        app.task_every(Duration::from_millis(20), move |app: AppHandle| {
            let (t, r, m) = (t.clone(), r.clone(), m.clone());
            async move {
                let n = t.fetch_add(1, Ordering::SeqCst) + 1;
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                // Slower than the period, so a naive timer would overlap runs.
                smol::Timer::after(Duration::from_millis(30)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                app.publish("tick", n.to_string()).await?;
                if n % 2 == 1 {
                    return Err(panini::Error::Decode(format!("odd run {n} fails")));
                }
                Ok(())
            }
        });
        let probe = client::connect(server.url()).await.unwrap();
        let mut ticks_seen = probe.subscribe("tick").await.unwrap();
        probe.flush().await.unwrap();
        let running = start(app, &server).await;
        for want in 1..=5 {
            let got = ticks_seen.next().await.unwrap();
            assert_eq!(
                got.text(),
                Some(want.to_string().as_str()),
                "failing runs keep the schedule"
            );
        }
        running.stop().await.unwrap();
        assert_eq!(once.load(Ordering::SeqCst), 1);
        assert_eq!(
            max_overlap.load(Ordering::SeqCst),
            1,
            "two runs never overlap"
        );
    });
}

#[test]
fn sync_handlers_use_publish_sync_and_request_sync() {
    let server = NatsServer::start();
    run(async {
        let mut app = App::new("sync");
        app.listen("double", |msg: Msg| async move {
            json!(msg.data.as_i64().unwrap_or(0) * 2)
        });
        app.listen_sync("quad", |msg: Msg, app: AppHandle| {
            let twice = app.request_sync("double", msg.data).unwrap();
            let four = app.request_sync("double", twice).unwrap();
            app.publish_sync("audit", format!("quad -> {four}"))
                .unwrap();
            four
        });
        app.task_every_sync(Duration::from_millis(50), |app: AppHandle| {
            app.publish_sync("sync.tick", "t")
        });
        let c = client::connect(server.url()).await.unwrap();
        let mut audit = c.subscribe("audit").await.unwrap();
        let mut ticks = c.subscribe("sync.tick").await.unwrap();
        c.flush().await.unwrap();
        let running = start(app, &server).await;
        assert_eq!(ask(&c, "quad", b"5").await.payload, b"20");
        assert_eq!(audit.next().await.unwrap().payload, b"quad -> 20");
        ticks.next().await.unwrap();
        ticks.next().await.unwrap();
        running.stop().await.unwrap();
    });
}

#[test]
fn a_queue_group_handles_each_message_once_across_three_instances() {
    let server = NatsServer::start();
    run(async {
        let seen = Arc::new(Mutex::new(Vec::<(usize, String)>::new()));
        let mut instances = Vec::new();
        for i in 0..3 {
            let s = seen.clone();
            let mut app = App::new("workers").allocation_queue_group("workers");
            app.listen("jobs", move |msg: Msg<String>| {
                s.lock().unwrap().push((i, msg.data));
                async {}
            });
            instances.push(start(app, &server).await);
        }
        let c = client::connect(server.url()).await.unwrap();
        let mut done = c.subscribe("jobs").await.unwrap();
        c.flush().await.unwrap();
        for n in 0..30 {
            c.publish("jobs", n.to_string()).await.unwrap();
        }
        for _ in 0..30 {
            done.next().await.unwrap();
        }
        for app in instances {
            app.stop().await.unwrap(); // waits for handlers in flight
        }
        let seen = seen.lock().unwrap();
        let mut jobs: Vec<u32> = seen.iter().map(|(_, d)| d.parse().unwrap()).collect();
        jobs.sort_unstable();
        assert_eq!(
            jobs,
            (0..30).collect::<Vec<_>>(),
            "each message handled exactly once"
        );
        let busy = (0..3).filter(|i| seen.iter().any(|(w, _)| w == i)).count();
        assert!(busy >= 2, "the group spread the work: {seen:?}");
    });
}

#[test]
fn subjects_can_be_subscribed_and_unsubscribed_at_run_time() {
    let server = NatsServer::start();
    run(async {
        let running = start(App::new("runtime"), &server).await;
        let handle = running.handle();
        let c = client::connect(server.url()).await.unwrap();
        let no = c
            .request_with("late.joiner", None, "x", Duration::from_secs(2))
            .await;
        assert!(matches!(no, Err(panini::Error::NoResponders)));

        handle
            .subscribe_new_subject("late.joiner", |msg: Msg<String>| async move {
                format!("hi {}", msg.data)
            })
            .await
            .unwrap();
        // subscribe_new_subject returns once the server has the SUB.
        assert_eq!(ask(&c, "late.joiner", b"bob").await.payload, b"hi bob");

        handle.unsubscribe_subject("late.joiner").await.unwrap();
        let no = c
            .request_with("late.joiner", None, "x", Duration::from_secs(2))
            .await;
        assert!(matches!(no, Err(panini::Error::NoResponders)), "{no:?}");
        let unknown = handle.unsubscribe_subject("never.subscribed").await;
        assert!(
            matches!(unknown, Err(panini::Error::NotSubscribed(_))),
            "{unknown:?}"
        );
        running.stop().await.unwrap();
    });
}

#[test]
fn stopping_lets_a_request_in_flight_finish_and_runs_on_stop_hooks() {
    let server = NatsServer::start();
    run(async {
        let (entered_tx, entered) = smol::channel::bounded(1);
        let stopped = Arc::new(AtomicUsize::new(0));
        let mut app = App::new("graceful");
        app.listen("slow", move |_: Msg| {
            let entered_tx = entered_tx.clone();
            async move {
                let _ = entered_tx.send(()).await;
                smol::Timer::after(Duration::from_millis(300)).await;
                "finished"
            }
        });
        let s = stopped.clone();
        app.on_stop(move |_| {
            s.fetch_add(1, Ordering::SeqCst);
            async {}
        });
        let running = start(app, &server).await;
        let c = client::connect(server.url()).await.unwrap();
        let asking = {
            let c = c.clone();
            smol::spawn(async move { ask(&c, "slow", b"{}").await })
        };
        entered.recv().await.unwrap();
        running.stop().await.unwrap();
        assert_eq!(
            asking.await.payload,
            b"finished",
            "the request in flight got its reply"
        );
        assert_eq!(stopped.load(Ordering::SeqCst), 1);
        let after = c
            .request_with("slow", None, "{}", Duration::from_secs(2))
            .await;
        assert!(
            matches!(after, Err(panini::Error::NoResponders)),
            "no new messages taken"
        );
    });
}
