//! Per-endpoint statistics, as the NATS Service API reports them (`$SRV.STATS`) and
//! `/metrics` exposes them: messages handled, errors, processing time (total, and a
//! latency histogram), the last error. Recorded by the endpoint loops with atomics: no lock
//! on the path of a message that succeeds.
//!
//! A loop adds the runs that finish inside one of its polls as one batch
//! ([`record_batch`](EndpointStats::record_batch)): the counters may lag by at most one
//! batch, and each run of a batch is taken to have lasted the batch's mean (its time
//! total stays exact; the histogram puts the whole batch in the bucket of the mean).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use super::reply::Reply;
use crate::client::lock;

/// The upper bounds of the latency histogram's buckets, in seconds (the last bucket,
/// `+Inf`, is implied): from 100 µs to 10 s.
pub(crate) const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0,
];

/// The counters of one endpoint.
#[derive(Debug, Default)]
pub(crate) struct EndpointStats {
    requests: AtomicU64,
    errors: AtomicU64,
    processing_ns: AtomicU64,
    /// Runs per latency bucket (`BUCKETS`, then `+Inf`), not cumulative.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    /// `"<code>:<description>"` of the last failed run, as the Service API writes it.
    last_error: Mutex<String>,
}

/// A copy of one endpoint's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) processing_ns: u64,
    /// Cumulative counts per bucket of `BUCKETS` (the `+Inf` bucket is `requests`).
    pub(crate) cumulative: Vec<u64>,
    pub(crate) last_error: String,
}

impl EndpointStats {
    /// Records one run that took `elapsed` and ended in `reply` (a failure is an error
    /// reply: its `Nats-Service-Error-Code` and `Nats-Service-Error` headers).
    pub(crate) fn record(&self, elapsed: Duration, reply: &Option<Reply>) {
        let failed = failure(reply);
        if let Some((code, description)) = failed {
            self.failed(code, description);
        }
        self.record_batch(1, u64::from(failed.is_some()), elapsed);
    }

    /// Records `runs` runs (`errors` of them failed, each already given to
    /// [`failed`](EndpointStats::failed)) that took `elapsed` together: each is taken to
    /// have lasted `elapsed / runs`, the bucket they all go in.
    pub(crate) fn record_batch(&self, runs: u64, errors: u64, elapsed: Duration) {
        if runs == 0 {
            return;
        }
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.requests.fetch_add(runs, Relaxed);
        self.processing_ns.fetch_add(ns, Relaxed);
        let secs = (ns / runs) as f64 / 1e9;
        let bucket = BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(runs, Relaxed);
        if errors > 0 {
            self.errors.fetch_add(errors, Relaxed);
        }
    }

    /// The last error is now `"<code>:<description>"` (the run is counted by
    /// [`record_batch`](EndpointStats::record_batch)).
    pub(crate) fn failed(&self, code: u16, description: &str) {
        *lock(&self.last_error) = format!("{code}:{description}");
    }

    /// The counters now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut running = 0;
        let cumulative = self.buckets[..BUCKETS.len()]
            .iter()
            .map(|b| {
                running += b.load(Relaxed);
                running
            })
            .collect();
        Snapshot {
            requests: self.requests.load(Relaxed),
            errors: self.errors.load(Relaxed),
            processing_ns: self.processing_ns.load(Relaxed),
            cumulative,
            last_error: lock(&self.last_error).clone(),
        }
    }
}

/// The code and description of an error reply, if `reply` is one.
#[inline]
pub(crate) fn failure(reply: &Option<Reply>) -> Option<(u16, &str)> {
    let headers = reply.as_ref()?.headers.as_ref()?;
    let code = headers.get("Nats-Service-Error-Code")?;
    let description = headers.get("Nats-Service-Error").unwrap_or_default();
    Some((code.trim().parse().unwrap_or(500), description))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::reply::error_reply;

    #[test]
    fn runs_errors_time_and_buckets_add_up() {
        let stats = EndpointStats::default();
        stats.record(Duration::from_micros(50), &None);
        stats.record(Duration::from_millis(3), &Some(Reply::default()));
        stats.record(Duration::from_secs(20), &Some(error_reply(500, "boom")));
        let s = stats.snapshot();
        assert_eq!((s.requests, s.errors), (3, 1));
        assert_eq!(s.processing_ns, 20_003_050_000);
        assert_eq!(s.last_error, "500:boom");
        // 50 µs in the first bucket, 3 ms in the 5 ms one, 20 s only in +Inf.
        assert_eq!(s.cumulative[0], 1);
        assert_eq!(
            s.cumulative[BUCKETS.iter().position(|&b| b == 0.005).unwrap()],
            2
        );
        assert_eq!(*s.cumulative.last().unwrap(), 2);
    }

    #[test]
    fn a_batch_counts_every_run_in_the_bucket_of_its_mean() {
        let stats = EndpointStats::default();
        stats.failed(500, "boom");
        // 4 runs in 2 ms: 500 µs each, so all four in the 500 µs bucket.
        stats.record_batch(4, 1, Duration::from_millis(2));
        stats.record_batch(0, 0, Duration::from_secs(1)); // nothing ran: nothing counted
        let s = stats.snapshot();
        assert_eq!((s.requests, s.errors), (4, 1));
        assert_eq!(s.processing_ns, 2_000_000);
        assert_eq!(s.last_error, "500:boom");
        let at = |le: f64| s.cumulative[BUCKETS.iter().position(|&b| b == le).unwrap()];
        assert_eq!((at(0.00025), at(0.0005)), (0, 4));
    }

    #[test]
    fn a_failure_is_read_from_the_error_reply() {
        assert_eq!(failure(&None), None);
        assert_eq!(failure(&Some(Reply::default())), None);
        assert_eq!(
            failure(&Some(error_reply(400, "MessageSchemaError"))),
            Some((400, "MessageSchemaError"))
        );
    }
}
