//! What the client tells the user: [`Event`]s (also logged) and [`Statistics`] counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Something that happened to the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Connected for the first time, to this server.
    Connected(String),
    /// Lost the connection to this server, for this reason.
    Disconnected {
        /// The server we were on.
        server: String,
        /// Why.
        reason: String,
    },
    /// Connected again, to this server; subscriptions are restored.
    Reconnected(String),
    /// The server entered lame-duck mode; the client moves to another server.
    LameDuck(String),
    /// The server pool gained servers advertised by the cluster.
    DiscoveredServers(Vec<String>),
    /// A subscription's queue was full (its message or byte bound): messages were dropped
    /// (total so far for it). Reported when it starts dropping, and again if it drops after
    /// taking a message since.
    SlowConsumer {
        /// The subscription id.
        sid: u64,
        /// Its subject.
        subject: String,
        /// Messages dropped on it so far.
        dropped: u64,
    },
    /// The server sent `-ERR`.
    ServerError(String),
    /// The client met bad data it could not deliver (a malformed message, bad INFO JSON).
    ClientError(String),
    /// Publishes that had returned `Ok` will never be sent: more than the reconnect buffer
    /// holds were waiting when the connection was lost, or the client closed first.
    PublishesLost {
        /// How many publishes.
        count: u64,
        /// Their size and why.
        reason: String,
    },
    /// Draining started.
    Draining,
    /// The client is closed for good (closed by the user, or reconnecting gave up).
    Closed,
}

/// Counters since the client was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Statistics {
    /// Messages received.
    pub in_msgs: u64,
    /// Payload bytes received (headers included).
    pub in_bytes: u64,
    /// Messages published.
    pub out_msgs: u64,
    /// Payload bytes published (headers included).
    pub out_bytes: u64,
    /// Successful reconnects.
    pub reconnects: u64,
    /// Messages dropped because a subscription was a slow consumer.
    pub dropped_msgs: u64,
    /// Messages that could not be delivered because they were malformed.
    pub bad_msgs: u64,
    /// Publishes that returned `Ok` and were never sent (see [`Event::PublishesLost`]).
    pub lost_publishes: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) in_msgs: AtomicU64,
    pub(crate) in_bytes: AtomicU64,
    pub(crate) out_msgs: AtomicU64,
    pub(crate) out_bytes: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) dropped_msgs: AtomicU64,
    pub(crate) bad_msgs: AtomicU64,
    pub(crate) lost_publishes: AtomicU64,
}

impl Stats {
    pub(crate) fn snapshot(&self) -> Statistics {
        Statistics {
            in_msgs: self.in_msgs.load(Relaxed),
            in_bytes: self.in_bytes.load(Relaxed),
            out_msgs: self.out_msgs.load(Relaxed),
            out_bytes: self.out_bytes.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            dropped_msgs: self.dropped_msgs.load(Relaxed),
            bad_msgs: self.bad_msgs.load(Relaxed),
            lost_publishes: self.lost_publishes.load(Relaxed),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}
