//! [`HttpStats`]: how many requests the server refused, by status, and how many idle
//! connections it closed to make room; and the rate-limited log lines that tell an
//! operator about them (at most one line a second per kind, with the count since the last
//! line, so a flood of bad requests cannot flood the log).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::response::reason;
use crate::log::log_at;

/// The statuses the server answers on its own, refusing a request: a malformed request,
/// a head or body not in time, a body or head too large, an unsupported method or
/// transfer coding, no free connection slot.
const REFUSALS: [u16; 6] = [400, 408, 413, 431, 501, 503];

/// The kinds counted: one per refusal status, then the idle connections closed for room.
const KINDS: usize = REFUSALS.len() + 1;
const IDLE_CLOSED: usize = REFUSALS.len();

/// At most one log line per kind this often.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// A count, and what the log has not told yet.
#[derive(Debug, Default)]
struct Kind {
    total: AtomicU64,
    /// Counted since the last log line of this kind.
    untold: AtomicU64,
    /// When the last line was written, in milliseconds since `Counters::start`, plus one
    /// (0: never).
    told_at: AtomicU64,
}

#[derive(Debug)]
struct Counters {
    start: Instant,
    kinds: [Kind; KINDS],
}

/// Counts of what the HTTP server refused or closed, shared with the running server.
/// Get it from [`Http::stats`](super::Http::stats) before the app starts; it counts from
/// then on, and clones share the counts.
///
/// Each count is also logged (WARN, target `panini::http`), at most once a second per
/// kind, with the number since the last such line, the total and the last peer's address;
/// what is still untold when the server stops is logged then.
///
/// ```no_run
/// let mut app = panini::App::new("web");
/// let stats = app.http().max_connections(512).stats();
/// app.start();
/// // Later, for a metrics endpoint or a test:
/// println!("{} refused for a full server", stats.refused(503));
/// ```
#[derive(Clone, Debug)]
pub struct HttpStats {
    counters: Arc<Counters>,
}

impl Default for HttpStats {
    fn default() -> Self {
        HttpStats {
            counters: Arc::new(Counters {
                start: Instant::now(),
                kinds: Default::default(),
            }),
        }
    }
}

impl HttpStats {
    /// How many requests (or connections, for 503) the server refused with `status`:
    /// 400, 408, 413, 431, 501 or 503; 0 for any other status.
    pub fn refused(&self, status: u16) -> u64 {
        REFUSALS
            .iter()
            .position(|s| *s == status)
            .map_or(0, |at| self.kind(at).total.load(Ordering::Relaxed))
    }

    /// How many idle keep-alive connections the server closed to make room for a new
    /// client at the connection limit.
    pub fn idle_closed(&self) -> u64 {
        self.kind(IDLE_CLOSED).total.load(Ordering::Relaxed)
    }

    /// Counts a refusal with `status` (and logs it, rate-limited); `peer` is asked only
    /// when a line is written.
    pub(crate) fn note_refused(&self, status: u16, peer: impl FnOnce() -> Option<SocketAddr>) {
        let Some(at) = REFUSALS.iter().position(|s| *s == status) else {
            return;
        };
        if let Some(untold) = self.note(at, self.counters.start.elapsed()) {
            self.log_refused(at, untold, peer());
        }
    }

    /// Counts an idle connection closed for room (and logs it, rate-limited).
    pub(crate) fn note_idle_closed(&self, max_connections: usize) {
        if let Some(untold) = self.note(IDLE_CLOSED, self.counters.start.elapsed()) {
            self.log_idle_closed(untold, max_connections);
        }
    }

    /// Logs what is still untold (the server is stopping).
    pub(crate) fn log_untold(&self, max_connections: usize) {
        for at in 0..KINDS {
            let untold = self.kind(at).untold.swap(0, Ordering::Relaxed);
            match (untold, at) {
                (0, _) => {}
                (_, IDLE_CLOSED) => self.log_idle_closed(untold, max_connections),
                _ => self.log_refused(at, untold, None),
            }
        }
    }

    fn kind(&self, at: usize) -> &Kind {
        &self.counters.kinds[at % KINDS]
    }

    /// Counts one of kind `at` at time `now` (since `start`); the count to log if a line
    /// is due.
    fn note(&self, at: usize, now: Duration) -> Option<u64> {
        let kind = self.kind(at);
        kind.total.fetch_add(1, Ordering::Relaxed);
        kind.untold.fetch_add(1, Ordering::Relaxed);
        let now = u64::try_from(now.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let told_at = kind.told_at.load(Ordering::Relaxed);
        let every = LOG_EVERY.as_millis() as u64;
        if told_at != 0 && now < told_at.saturating_add(every) {
            return None;
        }
        // One thread wins the line; the others' counts go into it or the next one.
        kind.told_at
            .compare_exchange(told_at, now, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        Some(kind.untold.swap(0, Ordering::Relaxed))
    }

    fn log_refused(&self, at: usize, untold: u64, peer: Option<SocketAddr>) {
        let status = REFUSALS[at % REFUSALS.len()];
        let total = self.kind(at).total.load(Ordering::Relaxed);
        let peer = peer
            .map(|p| format!(", the last from {p}"))
            .unwrap_or_default();
        log_at!(
            Warn,
            "panini::http",
            "refused {untold} request(s) with {status} {} since the last such line ({total} in all{peer})",
            reason(status)
        );
    }

    fn log_idle_closed(&self, untold: u64, max_connections: usize) {
        let total = self.kind(IDLE_CLOSED).total.load(Ordering::Relaxed);
        log_at!(
            Warn,
            "panini::http",
            "closed {untold} idle keep-alive connection(s) to make room for new clients since the last such line ({total} in all; the limit is {max_connections} connections)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first refusal of a kind is told at once; the next ones within a second are
    /// counted and told together by the first line after it; kinds are apart.
    #[test]
    fn lines_are_one_a_second_per_kind_with_the_count_since_the_last() {
        let stats = HttpStats::default();
        let ms = Duration::from_millis;
        assert_eq!(stats.note(0, ms(0)), Some(1), "the first at once");
        assert_eq!(stats.note(0, ms(10)), None);
        assert_eq!(stats.note(0, ms(999)), None);
        assert_eq!(stats.note(5, ms(999)), Some(1), "another kind");
        assert_eq!(
            stats.note(0, ms(1000)),
            Some(3),
            "three since the last line"
        );
        assert_eq!(stats.note(0, ms(1500)), None);
        assert_eq!(stats.refused(REFUSALS[0]), 5);
        assert_eq!(stats.refused(REFUSALS[5]), 1);
        assert_eq!(stats.refused(200), 0);
        assert_eq!(stats.idle_closed(), 0);
        assert_eq!(
            stats.kind(0).untold.load(Ordering::Relaxed),
            1,
            "told at stop"
        );
    }
}
