//! Traffic balancing: Panini's `allocation_queue_group`. Every instance of a service in
//! the same queue group subscribes as one group, and NATS hands each message to exactly
//! one of them.
//!
//! Three worker instances run here in one process (in real life: three processes), with
//! a sender app that publishes 30 jobs. Each worker counts what it got; the split varies,
//! the total is always 30. Then everything stops and the process exits 0 (1 if the total
//! is wrong).
//!
//! `cargo run --example queue_groups` beside a nats-server on 127.0.0.1:4222.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use panini::{App, AppHandle, Msg};
use serde_json::{json, Value};

const JOBS: usize = 30;
const WORKERS: usize = 3;

/// One instance of the worker service; `handled` counts the jobs it got.
fn worker(handled: Arc<AtomicUsize>) -> App {
    let mut app = App::new("worker")
        .allocation_queue_group("workers") // every endpoint below joins "workers"
        .banner(false);

    app.listen("jobs.resize", move |_job: Msg<Value>| {
        handled.fetch_add(1, Ordering::SeqCst);
        async {}
    });
    // The same for one endpoint only: `app.listen(...).queue("workers");`
    app
}

/// Jobs handled by all workers together.
fn total(counts: &[Arc<AtomicUsize>]) -> usize {
    counts.iter().map(|c| c.load(Ordering::SeqCst)).sum()
}

fn main() {
    let counts: Vec<Arc<AtomicUsize>> = (0..WORKERS).map(|_| Arc::default()).collect();

    // The sender publishes the jobs, waits until they are all handled, and stops.
    let mut sender = App::new("sender").banner(false);
    let seen = counts.clone();
    sender.task(move |app: AppHandle| {
        let seen = seen.clone();
        async move {
            for n in 1..=JOBS {
                app.publish("jobs.resize", json!({"job": n})).await?;
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while total(&seen) < JOBS && Instant::now() < deadline {
                smol::Timer::after(Duration::from_millis(20)).await;
            }
            app.shutdown();
            Ok::<(), panini::Error>(())
        }
    });

    smol::block_on(async {
        // Start the workers; each stops when `stop` is closed.
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let (ready_tx, ready) = smol::channel::unbounded::<()>();
        let mut running = Vec::new();
        for handled in &counts {
            let mut app = worker(handled.clone());
            // Tasks start once the endpoints are subscribed: a good "ready" signal.
            let ready_tx = ready_tx.clone();
            app.task(move |_| {
                let ready_tx = ready_tx.clone();
                async move { ready_tx.send(()).await }
            });
            let stopped = stopped.clone();
            running.push(smol::spawn(app.run_until(async move {
                stopped.recv().await.ok();
            })));
        }
        drop(ready_tx);
        for _ in 0..WORKERS {
            ready.recv().await.expect("a worker failed to start");
        }

        // Run the sender until it shuts itself down, then stop the workers.
        sender.run_until(std::future::pending()).await?;
        drop(stop);
        for worker in running {
            worker.await?;
        }
        Ok::<(), panini::Error>(())
    })
    .expect("the demo failed");

    let split: Vec<String> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| format!("worker {} got {}", i + 1, c.load(Ordering::SeqCst)))
        .collect();
    println!("{}", split.join(", "));
    let total = total(&counts);
    if total == JOBS {
        println!("total {total} of {JOBS}: each job was handled exactly once");
    } else {
        println!("total {total} of {JOBS}: jobs were lost or handled twice!");
        std::process::exit(1);
    }
}
