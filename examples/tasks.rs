//! Tasks and hooks: Panini's `@app.task()`, `@app.task(interval=..)` and
//! `@app.timer_task(..)`, plus `on_start` / `on_stop` hooks.
//!
//! Unlike Panini, a failing run is logged (to stderr) and an interval task keeps its
//! schedule. The demo stops by itself after the fifth run of the interval task.
//!
//! `cargo run --example tasks` beside a nats-server on 127.0.0.1:4222.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use panini::{App, AppHandle, Msg};
use serde_json::{json, Value};

static RUNS: AtomicU32 = AtomicU32::new(0);
static TICKS: AtomicU32 = AtomicU32::new(0);

fn main() {
    let mut app = App::new("tasks_app").banner(false);

    // Runs once, after connecting and before subscribing (create streams, load config...).
    app.on_start(|app: AppHandle| async move {
        println!("on_start: connected as {}", app.service_name());
    });

    // Something to talk to: the tasks below publish here.
    app.listen("tasks.events", |msg: Msg<Value>| async move {
        println!("  listener got {}", msg.data);
    });

    // @app.task(): runs once, right after start.
    app.task(|app: AppHandle| async move {
        println!("task: runs once at start");
        app.publish("tasks.events", json!({"from": "task"})).await
    });

    // @app.task(interval=0.3): runs every 300 ms; the second run fails on purpose.
    app.task_every(Duration::from_millis(300), |app: AppHandle| async move {
        let run = RUNS.fetch_add(1, Ordering::SeqCst) + 1;
        if run == 2 {
            // Returned errors (and panics) are logged as "task #N failed: ..." and the
            // schedule goes on.
            return Err(format!("run {run} failed on purpose"));
        }
        println!("task_every: run {run}");
        if run == 5 {
            println!("task_every: done, asking the app to stop");
            app.shutdown(); // graceful, as on SIGTERM; on_stop hooks still run
        }
        Ok(())
    });

    // @app.timer_task(interval=0.5): Panini's other name for an interval task.
    app.timer_task(Duration::from_millis(500), |app: AppHandle| async move {
        let tick = TICKS.fetch_add(1, Ordering::SeqCst) + 1;
        println!("timer_task: tick {tick}");
        app.publish("tasks.events", json!({"from": "timer_task", "tick": tick}))
            .await
    });

    // Runs at shutdown, after in-flight handlers finished, before the final flush.
    app.on_stop(|_app: AppHandle| async move {
        let runs = RUNS.load(Ordering::SeqCst);
        println!("on_stop: the interval task ran {runs} times (one failed), bye");
    });

    app.start(); // exits 0 after the graceful stop
}
