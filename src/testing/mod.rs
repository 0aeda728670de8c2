//! A testing kit for the tests of a panini app (feature `testing`, for dev-dependencies):
//! a real `nats-server` per test on a port the OS picks ([`NatsServer`]), the app run in
//! the test's process ([`TestApp`]), and a client that publishes, requests and waits for
//! messages with JSON in and out ([`TestClient`]). [`run`] runs the test's async body on
//! smol with a bound.
//!
//! ```toml
//! [dev-dependencies]
//! panini = { version = "0.1", features = ["testing"] }
//! ```
//!
//! A first test of an app (it needs `nats-server`: `apt-get install nats-server`, or
//! `$NATS_SERVER` set to the binary):
//!
//! ```no_run
//! use panini::testing::{run, NatsServer, TestApp, TestClient};
//! use panini::{App, Msg};
//! use serde_json::{json, Value};
//!
//! # fn main() {} // the test:
//! #[test]
//! fn the_request_endpoint_answers() {
//!     let server = NatsServer::start();
//!     run(async {
//!         let mut app = App::new("listener_app");
//!         app.listen("some.subject.for.request", |msg: Msg<Value>| async move {
//!             json!({"success": true, "got": msg.data})
//!         });
//!         let app = TestApp::start(app, &server).await;
//!         let client = TestClient::connect(&server).await;
//!         let reply = client.request("some.subject.for.request", json!({"id": 1})).await;
//!         assert_eq!(reply, json!({"success": true, "got": {"id": 1}}));
//!         app.stop().await.unwrap();
//!     });
//! }
//! ```
//!
//! The kit panics on failure, as tests want, with a message that says what failed
//! (nats-server missing, an app that did not start, no reply on a subject...); each
//! method says when under `# Panics`. Every wait is bounded.
//!
//! - `temp`: [`TempDir`], a directory removed on `Drop` (server files, test files).
//! - `server`: [`NatsServer`], alone or with JetStream; `cluster`: clusters of them on
//!   loopback.
//! - `app`: [`TestApp`], an [`App`](crate::App) started, waited for, and stopped.
//! - `client`: [`TestClient`] and [`TestSubscription`].

use std::future::Future;
use std::time::Duration;

use smol::future::FutureExt;

mod app;
mod client;
mod cluster;
mod server;
mod temp;

pub use app::{TestApp, START_TIMEOUT, STOP_TIMEOUT};
pub use client::{TestClient, TestSubscription, REQUEST_TIMEOUT};
pub use server::NatsServer;
pub use temp::TempDir;

/// The bound [`run`] puts on a test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a test's async body on smol (the runtime panini runs on) and returns its output.
///
/// # Panics
///
/// If the body takes longer than [`TEST_TIMEOUT`] (a hang fails the test instead of
/// blocking it), or if it panics.
///
/// ```
/// let four = panini::testing::run(async { 2 + 2 });
/// assert_eq!(four, 4);
/// ```
pub fn run<F: Future>(body: F) -> F::Output {
    smol::block_on(body.or(async {
        smol::Timer::after(TEST_TIMEOUT).await;
        panic!("test timed out after {TEST_TIMEOUT:?}");
    }))
}

/// Awaits `fut` for at most `bound`.
///
/// # Panics
///
/// If `fut` takes longer, with `what` in the message (`"{what}: not within {bound:?}"`).
///
/// ```
/// use panini::testing::{run, within};
/// use std::time::Duration;
///
/// run(async {
///     let n = within(Duration::from_secs(1), "the answer", async { 42 }).await;
///     assert_eq!(n, 42);
/// });
/// ```
pub async fn within<T>(bound: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    let bounded = async { Some(fut.await) }.or(async {
        smol::Timer::after(bound).await;
        None
    });
    match bounded.await {
        Some(t) => t,
        None => panic!("{what}: not within {bound:?}"),
    }
}
