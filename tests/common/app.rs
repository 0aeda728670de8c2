//! Runs an [`App`](panini::App) in the test's process against a test `nats-server`: the
//! testing kit's [`TestApp`](panini::testing::TestApp), under the name our tests use, and
//! [`ask`], a bounded request from a plain client.

#![allow(dead_code)]

use std::time::Duration;

use panini::client::Client;
use panini::Message;

#[allow(unused_imports)] // each test binary uses a subset
pub use panini::testing::{TestApp as RunningApp, START_TIMEOUT, STOP_TIMEOUT};

/// How long [`ask`] waits for a reply.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A request from a plain client, answered within [`REQUEST_TIMEOUT`]; panics naming the
/// subject if it is not (an error reply is a reply).
pub async fn ask(client: &Client, subject: &str, payload: &[u8]) -> Message {
    client
        .request_with(subject, None, payload, REQUEST_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("request on {subject}: {e}"))
}
