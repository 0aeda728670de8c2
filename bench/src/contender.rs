//! [`Contender`]: the workloads, as each client must run them. Every method connects its
//! own clients, runs one round to completion on its own runtime, closes them, and returns
//! the figure; nothing is shared between rounds but the server.

use std::time::Duration;

use crate::publisher::Armed;
use crate::report::percentile;
use crate::Result;

/// Payload of every request and reply.
pub const REQUEST_PAYLOAD: &[u8] = b"0123456789abcdef";

/// Bound on the wait for the last message of the subscribe workload, so a dropped
/// message fails the run instead of hanging it.
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(60);

pub trait Contender {
    /// `ours` or `async-nats`; also the `--idle` argument of the child process.
    fn name(&self) -> &'static str;

    /// Publishes `count` copies of `payload` to `subject` (nobody subscribes), then waits
    /// until the server has processed them all: `flush()`, then a request to a subject
    /// nobody serves, which the server answers with 503 "no responders" only after every
    /// earlier op of that connection. Returns messages per second.
    fn publish(&self, url: &str, subject: &str, payload: &[u8], count: usize) -> Result<f64>;

    /// Subscribes to `subject`, flushes, starts the shared raw-TCP `publisher` and
    /// returns messages per second from the first to the last of `count` received.
    /// Fails unless all `count` arrive (none dropped).
    fn subscribe(&self, url: &str, subject: &str, publisher: Armed, count: usize) -> Result<f64>;

    /// A responder on one connection echoes `subject`; another connection makes `count`
    /// requests one after the other.
    fn request_sequential(&self, url: &str, subject: &str, count: usize) -> Result<Latency>;

    /// As above, with `in_flight` futures sharing the requesting client, `total` requests
    /// in all. Returns round trips per second.
    fn request_concurrent(
        &self,
        url: &str,
        subject: &str,
        total: usize,
        in_flight: usize,
    ) -> Result<f64>;
}

/// One round of the sequential request workload.
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    pub per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

impl Latency {
    /// From each request's duration and the whole loop's.
    pub fn from_samples(mut samples: Vec<Duration>, total: Duration) -> Self {
        samples.sort_unstable();
        let micros = |d: Duration| d.as_secs_f64() * 1e6;
        Latency {
            per_sec: samples.len() as f64 / total.as_secs_f64(),
            p50_us: micros(percentile(&samples, 50.0)),
            p99_us: micros(percentile(&samples, 99.0)),
        }
    }
}

/// Messages per second over `elapsed`, counting the intervals between `count` messages.
pub fn rate(count: usize, elapsed: Duration) -> f64 {
    count.saturating_sub(1).max(1) as f64 / elapsed.as_secs_f64()
}
