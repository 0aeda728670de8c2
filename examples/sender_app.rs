//! The seed's sender app: every second, one request and one publish to the listener app.
//!
//! `cargo run --example sender_app` beside `cargo run --example listener_app`.
//! `SENDER_COUNT=n` stops it after n requests (used by the README's demo and the tests).

use std::time::Duration;

use panini::{App, AppHandle};
use serde_json::json;

fn main() {
    let mut app = App::new("sender_app").host("127.0.0.1").port(4222);

    app.task_every(Duration::from_secs(1), |app: AppHandle| async move {
        let message = json!({"data": "request1234567890"});
        let response = app.request("some.subject.for.request", message).await?;
        println!("{response}");
        stop_if_done(&app);
        Ok::<(), panini::Error>(())
    });

    app.task_every(Duration::from_secs(1), |app: AppHandle| async move {
        let message = json!({"data": "event1234567890"});
        app.publish("some.subject.for.stream", message).await
    });

    app.start();
}

// Demo plumbing, not part of the seed: `SENDER_COUNT=n` stops gracefully after n requests.

fn stop_if_done(app: &AppHandle) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DONE: AtomicU64 = AtomicU64::new(0);
    let limit: Option<u64> = std::env::var("SENDER_COUNT")
        .ok()
        .and_then(|v| v.parse().ok());
    let done = DONE.fetch_add(1, Ordering::SeqCst) + 1;
    if limit.is_some_and(|n| done >= n) {
        app.shutdown();
    }
}
