//! Hooks and tasks against a real nats-server (issue #11, "Tests also missing today"):
//! `task_sync` on the thread pool, `on_start` hooks in order before the endpoints serve,
//! and a failing `on_start` hook stopping the start.
//!
//! Each test is written to fail if its feature were broken; the comment above each says how.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::app::{ask, RunningApp};
use common::monitor::wait_until;
use common::{run, within, NatsServer};
use panini::client;
use panini::{App, AppHandle, Msg};
use smol::stream::StreamExt;

/// How long a test waits for something that must happen.
const BOUND: Duration = Duration::from_secs(5);

/// `task_sync` runs a blocking closure once, on the thread pool: while it blocks, the app
/// still answers requests; then it can use `publish_sync`. Run on the executor's thread,
/// it would freeze the app and the request would time out.
#[test]
fn task_sync_runs_once_on_the_thread_pool_and_can_publish_sync() {
    let server = NatsServer::start();
    run(async {
        let runs = Arc::new(AtomicUsize::new(0));
        let (entered_tx, entered) = smol::channel::bounded(1);
        let (go, go_rx) = smol::channel::bounded::<()>(1);
        let mut app = App::new("ts");
        app.listen("ts.ping", |_: Msg| async { "pong" });
        let r = runs.clone();
        app.task_sync(move |app: AppHandle| {
            r.fetch_add(1, Ordering::SeqCst);
            entered_tx.send_blocking(()).unwrap();
            // Blocks this thread until the test says go.
            go_rx.recv_blocking().unwrap();
            app.publish_sync("ts.done", "done")
        });
        let c = client::connect(server.url()).await.unwrap();
        let mut done = c.subscribe("ts.done").await.unwrap();
        c.flush().await.unwrap();
        let running = RunningApp::start(app, &server).await;
        within(BOUND, "the sync task to run", entered.recv())
            .await
            .unwrap();
        // The bound is the test's own timer: a frozen app would freeze its client's
        // request timeouts too.
        let pong = within(
            BOUND,
            "the app to answer while the sync task blocks",
            ask(&c, "ts.ping", b"{}"),
        )
        .await;
        assert_eq!(pong.payload, b"pong");
        go.send(()).await.unwrap();
        let msg = within(BOUND, "the sync task's publish", done.next())
            .await
            .unwrap();
        assert_eq!(msg.payload, b"done");
        running.stop().await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1, "a task_sync runs once");
    });
}

/// `on_start` hooks run one after another in registration order (each finishes, across
/// its awaits, before the next begins), before the endpoints subscribe (a hook's request
/// to the app's own endpoint finds no responder), and all before the start event and the
/// tasks.
#[test]
fn on_start_hooks_run_in_order_before_endpoints_serve_and_before_the_start_event() {
    let server = NatsServer::start();
    run(async {
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut app = App::new("os");
        app.listen("os.echo", |msg: Msg<String>| async move { msg.data });
        for i in 1..=3 {
            let l = log.clone();
            app.on_start(move |app: AppHandle| {
                let l = l.clone();
                async move {
                    l.lock().unwrap().push(format!("{i} begins"));
                    // An await that goes to the server and back: hooks running at once
                    // would interleave here.
                    let r = app.request("os.echo", "x").await;
                    let what = match r {
                        Err(panini::Error::NoResponders) => "no endpoint yet".to_string(),
                        other => format!("unexpected {other:?}"),
                    };
                    l.lock().unwrap().push(format!("{i} {what}"));
                    l.lock().unwrap().push(format!("{i} ends"));
                }
            });
        }
        let (task_ran, ran) = smol::channel::bounded(1);
        let l = log.clone();
        app.task(move |_| {
            l.lock().unwrap().push("task".into());
            let _ = task_ran.try_send(());
            async {}
        });
        let running = RunningApp::start(app, &server).await;
        let at_start_event = log.lock().unwrap().clone();
        let hooks: Vec<String> = (1..=3)
            .flat_map(|i| {
                [
                    format!("{i} begins"),
                    format!("{i} no endpoint yet"),
                    format!("{i} ends"),
                ]
            })
            .collect();
        assert_eq!(
            at_start_event[..hooks.len().min(at_start_event.len())],
            hooks[..],
            "hooks in order, one at a time, all done before the start event"
        );
        let c = client::connect(server.url()).await.unwrap();
        assert_eq!(ask(&c, "os.echo", b"hi").await.payload, b"hi");
        within(BOUND, "the task", ran.recv()).await.unwrap();
        running.stop().await.unwrap();
        let mut want = hooks;
        want.push("task".into());
        assert_eq!(*log.lock().unwrap(), want);
    });
}

/// A failing `on_start` hook stops the start: `run_until` returns its error, the hooks
/// after it and the tasks never run, no endpoint serves, no start event is published, and
/// the app's connection is closed.
#[test]
fn a_failing_on_start_hook_stops_the_start_and_run_until_returns_its_error() {
    let server = NatsServer::start_with_args(&["-m", "-1"]);
    run(async {
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut app = App::new("osf")
            .client_nats_name("osf-conn")
            .servers([server.url()])
            .banner(false);
        app.listen("osf.echo", |msg: Msg<String>| async move { msg.data });
        for (i, fails) in [(1, false), (2, true), (3, false)] {
            let l = log.clone();
            app.on_start(move |_| {
                l.lock().unwrap().push(format!("hook {i}"));
                async move {
                    if fails {
                        return Err("the database is unreachable");
                    }
                    Ok(())
                }
            });
        }
        let l = log.clone();
        app.task(move |_| {
            l.lock().unwrap().push("task".into());
            async {}
        });
        let probe = client::connect(server.url()).await.unwrap();
        let mut started = probe.subscribe("panini_events.>").await.unwrap();
        probe.flush().await.unwrap();

        let result = within(
            BOUND,
            "run_until to return after the failed hook",
            app.run_until(std::future::pending()),
        )
        .await;
        let err = result.expect_err("the start fails");
        let text = err.to_string();
        assert!(
            text.contains("the database is unreachable") && text.contains("on_start"),
            "the error names the hook and its reason: {text}"
        );
        assert_eq!(*log.lock().unwrap(), ["hook 1", "hook 2"]);

        wait_until(&server, "the app's connection to close", |conns| {
            !conns.iter().any(|c| c["name"] == "osf-conn")
        })
        .await;
        let r = probe
            .request_with("osf.echo", None, "x", Duration::from_secs(2))
            .await;
        assert!(matches!(r, Err(panini::Error::NoResponders)), "{r:?}");
        // The app's connection is gone, so anything it published was routed before this
        // round trip's answer.
        probe.flush().await.unwrap();
        let event = smol::future::poll_once(started.next()).await;
        assert!(event.is_none(), "no start event: {event:?}");
    });
}
