//! [`Contender`]: the workloads, as each client must run them. Every method connects its
//! own clients, runs one round to completion on its own runtime, closes them, and returns
//! the figure; nothing is shared between rounds but the server.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cpu::Threads;
use crate::publisher::Armed;
use crate::report::percentile;
use crate::Result;

/// Where the server is and how to reach it: `nats://` (plain), or `tls://` with the CA
/// that signed the server's certificate (`--tls`). Both clients get the same.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub url: String,
    pub ca_file: Option<PathBuf>,
}

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
    fn publish(
        &self,
        at: &Endpoint,
        subject: &str,
        payload: &[u8],
        count: usize,
    ) -> Result<Throughput>;

    /// Subscribes to `subject`, flushes, starts the shared `publisher` (its own thread,
    /// whose CPU time is not counted) and returns messages per second from the first to
    /// the last of `count` received. Fails unless all `count` arrive (none dropped).
    fn subscribe(
        &self,
        at: &Endpoint,
        subject: &str,
        publisher: Armed,
        count: usize,
    ) -> Result<Throughput>;

    /// A responder on one connection echoes `subject`; another connection makes `count`
    /// requests one after the other. The CPU time is both sides'.
    fn request_sequential(&self, at: &Endpoint, subject: &str, count: usize) -> Result<Latency>;

    /// As above, with `in_flight` futures sharing the requesting client, `total` requests
    /// in all. Returns round trips per second.
    fn request_concurrent(
        &self,
        at: &Endpoint,
        subject: &str,
        total: usize,
        in_flight: usize,
    ) -> Result<Throughput>;
}

/// Wall-clock and CPU time of this process (all its threads) from [`Meter::start`].
#[derive(Debug)]
pub struct Meter {
    wall: Instant,
    cpu: Threads,
}

impl Meter {
    pub fn start() -> Self {
        let cpu = Threads::now();
        Meter {
            wall: Instant::now(),
            cpu,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.wall.elapsed()
    }

    /// CPU ns since the start, per each of `count` messages.
    pub fn cpu_per(&self, count: usize) -> f64 {
        self.cpu.since(None) as f64 / count.max(1) as f64
    }

    /// The same without thread `tid`'s (the publisher's, in the subscribe workload).
    pub fn cpu_per_without(&self, count: usize, tid: u64) -> f64 {
        self.cpu.since(Some(tid)) as f64 / count.max(1) as f64
    }
}

/// One round of a throughput workload: messages (or round trips) per second, and the
/// process's CPU time per message.
#[derive(Clone, Copy, Debug)]
pub struct Throughput {
    pub per_sec: f64,
    pub cpu_ns: f64,
}

impl Throughput {
    /// `count` messages in the meter's time.
    pub fn of(count: usize, meter: &Meter) -> Self {
        Throughput {
            per_sec: count as f64 / meter.elapsed().as_secs_f64(),
            cpu_ns: meter.cpu_per(count),
        }
    }
}

/// One round of the sequential request workload.
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    pub per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub cpu_ns: f64,
}

impl Latency {
    /// From each request's duration and the meter started before the loop.
    pub fn from_samples(mut samples: Vec<Duration>, meter: &Meter) -> Self {
        let (total, cpu_ns) = (meter.elapsed(), meter.cpu_per(samples.len()));
        samples.sort_unstable();
        let micros = |d: Duration| d.as_secs_f64() * 1e6;
        Latency {
            per_sec: samples.len() as f64 / total.as_secs_f64(),
            p50_us: micros(percentile(&samples, 50.0)),
            p99_us: micros(percentile(&samples, 99.0)),
            cpu_ns,
        }
    }
}

/// Messages per second over `elapsed`, counting the intervals between `count` messages.
pub fn rate(count: usize, elapsed: Duration) -> f64 {
    count.saturating_sub(1).max(1) as f64 / elapsed.as_secs_f64()
}
