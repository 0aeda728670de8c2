//! [`JsContender`]: the JetStream workloads as each client must run them, and what both
//! sides share (the stream of a round, sizes, bounds). Every method connects its own
//! client, makes its own fresh stream (file storage, one replica, the server's defaults
//! otherwise), runs one round, checks the outcome with the server, deletes the stream and
//! returns the figures; nothing is shared between rounds but the server.

use std::time::Duration;

use crate::contender::{Latency, Throughput};
use crate::Result;

/// Size of every message's payload.
pub const PAYLOAD_SIZE: usize = 128;

/// Acks in flight in the windowed publish (and the pre-fill of the consume workload).
pub const WINDOW: usize = 256;

/// Bound on a round's wait for its messages or its acks, so a loss fails the round
/// instead of hanging it.
pub const ROUND_TIMEOUT: Duration = Duration::from_secs(120);

/// The durable pull consumer of the consume workload.
pub const CONSUMER: &str = "bench";

/// Keys the KV workload cycles through.
pub const KV_KEYS: usize = 100;

/// The stream of one round: `JSB_<TAG>` storing `jsb.<tag>`.
#[derive(Clone, Debug)]
pub struct Spec {
    pub stream: String,
    pub subject: String,
}

impl Spec {
    /// `tag` is unique to the workload, the contender and the round.
    pub fn new(tag: &str) -> Spec {
        Spec {
            stream: format!("JSB_{}", tag.to_uppercase()),
            subject: format!("jsb.{tag}"),
        }
    }

    /// The KV bucket of a round (its stream is `KV_<bucket>`).
    pub fn bucket(&self) -> String {
        format!("B{}", self.stream)
    }
}

/// Latency of one KV round: puts then gets, one at a time, in µs.
#[derive(Clone, Copy, Debug)]
pub struct KvLatency {
    pub put_p50_us: f64,
    pub put_p99_us: f64,
    pub get_p50_us: f64,
    pub get_p99_us: f64,
    /// CPU time of the process per operation (puts and gets together).
    pub cpu_ns: f64,
}

impl KvLatency {
    /// From the put and the get rounds' [`Latency`], over `ops` operations in all.
    pub fn of(put: Latency, get: Latency) -> KvLatency {
        KvLatency {
            put_p50_us: put.p50_us,
            put_p99_us: put.p99_us,
            get_p50_us: get.p50_us,
            get_p99_us: get.p99_us,
            cpu_ns: (put.cpu_ns + get.cpu_ns) / 2.0,
        }
    }
}

pub trait JsContender {
    /// `ours` or `async-nats`.
    fn name(&self) -> &'static str;

    /// Makes the stream and the durable consumer of `spec` as the workloads do, and leaves
    /// them, for [`check_same_settings`](crate::check_same_settings) to compare.
    fn prepare(&self, url: &str, spec: &Spec) -> Result<()>;

    /// Makes the KV bucket of `spec` as [`kv`](JsContender::kv) does, and leaves it.
    fn prepare_kv(&self, url: &str, spec: &Spec) -> Result<()>;

    /// `count` publishes, each ack awaited before the next: publishes/s, p50, p99.
    fn publish_sync(&self, url: &str, spec: &Spec, count: usize) -> Result<Latency>;

    /// `count` publishes with at most [`WINDOW`] acks outstanding, every ack awaited and
    /// checked: publishes/s until the last ack.
    fn publish_window(&self, url: &str, spec: &Spec, count: usize) -> Result<Throughput>;

    /// Fills the stream with `count` messages (not timed), then consumes them through a
    /// durable pull consumer's continuous stream, acking each: messages/s until the
    /// server reports all `count` acknowledged.
    fn consume(&self, url: &str, spec: &Spec, count: usize) -> Result<Throughput>;

    /// `count` puts then `count` gets on a KV bucket (history 1, file storage, one
    /// replica), one at a time, over [`KV_KEYS`] keys; every value read is checked.
    fn kv(&self, url: &str, spec: &Spec, count: usize) -> Result<KvLatency>;
}

/// The payload of every message.
pub fn payload() -> Vec<u8> {
    (0..PAYLOAD_SIZE).map(|i| b'a' + (i % 26) as u8).collect()
}

/// The key of operation `i` of the KV workload.
pub fn kv_key(i: usize) -> String {
    format!("k{}", i % KV_KEYS)
}

/// Fails unless the stream holds `want` messages.
pub fn expect_stored(name: &str, stored: u64, want: usize) -> Result<()> {
    if stored != want as u64 {
        return Err(format!("{name}: the stream holds {stored} messages, not {want}").into());
    }
    Ok(())
}
