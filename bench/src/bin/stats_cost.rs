//! Where the Service API's per-run cost goes: the operations the endpoint loop adds to
//! every run when it counts (`src/app/endpoint.rs` `EndpointLoop::start`,
//! `src/app/stats.rs` `EndpointStats::record`), each timed alone in a hot loop on one
//! thread (uncontended atomics: a floor, not the figure under load).
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml --bin stats_cost
//! ```
//!
//! The steps are written here in the same shape as there (the crate's types are private),
//! so a change there must be mirrored here to keep the attribution honest.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The latency buckets' upper bounds, as `stats.rs` has them.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0,
];

/// The counters of `EndpointStats`.
#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    errors: AtomicU64,
    processing_ns: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len() + 1],
    last_error: Mutex<String>,
}

impl Stats {
    /// `EndpointStats::record` for a run that succeeded (no error: the lock is not taken).
    fn record(&self, elapsed: Duration, failed: bool) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.requests.fetch_add(1, Relaxed);
        self.processing_ns.fetch_add(ns, Relaxed);
        let bucket = bucket_of(elapsed);
        self.buckets[bucket].fetch_add(1, Relaxed);
        if failed {
            self.errors.fetch_add(1, Relaxed);
            if let Ok(mut last) = self.last_error.lock() {
                *last = "500:asked to fail".to_string();
            }
        }
    }
}

fn bucket_of(elapsed: Duration) -> usize {
    let secs = elapsed.as_secs_f64();
    BUCKETS
        .iter()
        .position(|&le| secs <= le)
        .unwrap_or(BUCKETS.len())
}

const N: u32 = 20_000_000;

/// ns per call of `step`, best of three runs of `N` calls.
fn time(mut step: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..N {
                step();
            }
            start.elapsed().as_nanos() as f64 / f64::from(N)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let stats = Arc::new(Stats::default());
    let typical = Duration::from_micros(3); // a run of the stream workload: first bucket
    let slow = Duration::from_millis(30); // ninth bucket: a longer scan
    let rows: [(&str, f64); 7] = [
        (
            "Instant::now() + elapsed() (the run's two clock reads)",
            time(|| {
                black_box(Instant::now().elapsed());
            }),
        ),
        (
            "Arc<EndpointStats> clone + drop (start() takes a clone per run)",
            time(|| drop(black_box(stats.clone()))),
        ),
        (
            "record(): 3 relaxed fetch_add + bucket (3 µs run, first bucket)",
            time(|| stats.record(black_box(typical), false)),
        ),
        (
            "record(), 30 ms run (the bucket scan goes to the 9th bound)",
            time(|| stats.record(black_box(slow), false)),
        ),
        (
            "  of which the bucket scan alone (3 µs)",
            time(|| {
                black_box(bucket_of(black_box(typical)));
            }),
        ),
        (
            "record() of a failed run (errors + the Mutex + a String)",
            time(|| stats.record(black_box(typical), true)),
        ),
        (
            "all of a successful run: clone, two clock reads, record()",
            time(|| {
                let stats = black_box(stats.clone());
                let t0 = Instant::now();
                stats.record(black_box(t0.elapsed()), false);
            }),
        ),
    ];
    println!("| step | ns per run |\n|---|---:|");
    for (what, ns) in rows {
        println!("| {what} | {ns:.1} |");
    }
}
