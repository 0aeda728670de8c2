//! What the publisher and subscriber roles share, whichever client runs them: the event
//! and its JSON, the `done` line a role ends with, the process's CPU time, the `end` signal
//! from the parent, and the subscriber's tally.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::Result;

/// Bound on the subscriber's last round trip, which waits behind every message still
/// queued for it: generous, since a profiler can make that a minute's work.
pub const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(600);

/// The `data` of every event.
pub const DATA: &str = "event1234567890";

/// The message body, `{"data":"event1234567890"}` (26 bytes) once serialised.
#[derive(Debug, Serialize, Deserialize)]
pub struct Event {
    /// Always [`DATA`].
    pub data: String,
}

impl Event {
    /// The event every publish serialises.
    pub fn new() -> Self {
        Event { data: DATA.into() }
    }
}

/// Where the publisher's clock stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PubEnd {
    /// When the server has processed every publish: the client's `flush()`, then a request
    /// nobody serves, whose 503 the server sends only after every earlier op of the
    /// connection. The same point for both clients (the default).
    Server,
    /// When the client's own `flush()` returns. Ours is a PING/PONG round trip (the server
    /// has processed everything); async-nats's only writes its buffer to the socket, so
    /// its clock stops while the server may still have megabytes to read.
    Flush,
}

impl PubEnd {
    /// From its name on the command line.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "server" => Some(PubEnd::Server),
            "flush" => Some(PubEnd::Flush),
            _ => None,
        }
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PubEnd::Server => "server",
            PubEnd::Flush => "flush",
        }
    }
}

/// What a role reports when it is done: `done <secs> <cpu secs> <count> <dropped>`.
#[derive(Clone, Copy, Debug)]
pub struct Done {
    /// Wall time: first publish to the end of the flush; or first message to the last.
    pub secs: f64,
    /// CPU time of the whole process (every thread) over the same span.
    pub cpu_secs: f64,
    /// Messages published; or received and decoded.
    pub count: usize,
    /// Messages the subscriber's client says it dropped (0 for a publisher).
    pub dropped: u64,
}

impl Done {
    /// The figures of a span that began at `start`, with `cpu_ns()` then at `cpu_start`.
    pub fn since(start: Instant, cpu_start: u64, count: usize, dropped: u64) -> Self {
        Done {
            secs: start.elapsed().as_secs_f64(),
            cpu_secs: cpu_ns().saturating_sub(cpu_start) as f64 / 1e9,
            count,
            dropped,
        }
    }

    /// The line a role prints last.
    pub fn line(&self) -> String {
        let Done {
            secs,
            cpu_secs,
            count,
            dropped,
        } = self;
        format!("done {secs} {cpu_secs} {count} {dropped}")
    }

    /// Reads a [`line`](Done::line) back.
    pub fn parse(line: &str) -> Result<Self> {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let ["done", secs, cpu_secs, count, dropped] = parts[..] else {
            return Err(format!("expected a done line, got {line:?}").into());
        };
        Ok(Done {
            secs: secs.parse()?,
            cpu_secs: cpu_secs.parse()?,
            count: count.parse()?,
            dropped: dropped.parse()?,
        })
    }
}

/// Messages per second over `secs`, counting the intervals between `count` messages.
pub fn rate(count: usize, secs: f64) -> f64 {
    count.saturating_sub(1).max(1) as f64 / secs
}

pub use crate::cpu::{cpu_ns, cpu_ns_of};

/// The machine's CPU time so far from the `cpu` line of `/proc/stat`, in ticks: (idle,
/// all). Idle counts `iowait` too.
pub fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .take(8) // user nice system idle iowait irq softirq steal (guest is inside user)
        .filter_map(|f| f.parse().ok())
        .collect();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (idle, fields.iter().sum())
}

/// Prints one line on stdout, flushed at once: the parent waits for it.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Resolves once the parent writes `end` on stdin (or stdin closes): the publisher is
/// done and the server has processed all of it. A thread reads stdin, so either runtime
/// can wait on the channel.
pub fn end_signal() -> smol::channel::Receiver<()> {
    let (tx, rx) = smol::channel::bounded(1);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) if l.trim() == "end" => break,
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        let _ = tx.try_send(());
    });
    rx
}

/// The subscriber's count: every payload is deserialised into an [`Event`] and checked.
#[derive(Debug, Default)]
pub struct Tally {
    /// When the first message was taken, and `cpu_ns()` then.
    first: Option<(Instant, u64)>,
    /// When the latest message was taken.
    last: Option<Instant>,
    good: usize,
    bad: usize,
}

impl Tally {
    /// Decodes one payload and counts it.
    pub fn take(&mut self, payload: &[u8]) {
        match serde_json::from_slice::<Event>(payload) {
            Ok(event) if event.data == DATA => self.good += 1,
            _ => self.bad += 1,
        }
        let now = Instant::now();
        self.first.get_or_insert_with(|| (now, cpu_ns()));
        self.last = Some(now);
    }

    /// Messages taken so far, decoded or not.
    pub fn taken(&self) -> usize {
        self.good + self.bad
    }

    /// The subscriber's `done`: first message to the last; fails if a payload was wrong.
    pub fn done(&self, dropped: u64) -> Result<Done> {
        if self.bad != 0 {
            return Err(format!("{} payloads were not the expected event", self.bad).into());
        }
        let Some((first, cpu_first)) = self.first else {
            return Err("no message arrived".into());
        };
        let last = self.last.unwrap_or(first);
        Ok(Done {
            secs: last.duration_since(first).as_secs_f64(),
            cpu_secs: cpu_ns().saturating_sub(cpu_first) as f64 / 1e9,
            count: self.good,
            dropped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_is_the_issue_payload() {
        let json = serde_json::to_vec(&Event::new()).unwrap();
        assert_eq!(json, br#"{"data":"event1234567890"}"#);
        let mut tally = Tally::default();
        tally.take(&json);
        tally.take(b"{}");
        assert_eq!((tally.good, tally.bad, tally.taken()), (1, 1, 2));
    }

    #[test]
    fn a_done_line_reads_back() {
        let done = Done {
            secs: 0.25,
            cpu_secs: 0.125,
            count: 200_000,
            dropped: 3,
        };
        let back = Done::parse(&done.line()).unwrap();
        assert_eq!(
            (back.secs, back.cpu_secs, back.count, back.dropped),
            (0.25, 0.125, 200_000, 3)
        );
        assert!(Done::parse("ready").is_err());
    }
}
