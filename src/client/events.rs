//! What the client tells the user: [`Event`]s (also logged) and [`Statistics`] counters;
//! and why a connection was lost, the reason an [`Event::Disconnected`] shows.

use std::fmt;
use std::io;
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

/// Why a connection was lost: kept typed (the I/O or protocol error as its source) until
/// it becomes the text of [`Event::Disconnected`].
#[derive(Debug)]
pub(crate) enum Lost {
    /// The server closed the connection (or died: under TLS, without a close_notify).
    Eof,
    /// `max_pings_out` PINGs went unanswered.
    Stale,
    /// The server sent bytes that break the protocol.
    Protocol(panini_proto::Error),
    /// Reading from the socket failed.
    Read(io::Error),
    /// Writing to the socket failed.
    Write(io::Error),
    /// The server sent an `-ERR` that ends the connection, with this text.
    Server(String),
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lost::Eof => f.write_str("end of file: the server closed the connection"),
            Lost::Stale => f.write_str("stale connection: pings unanswered"),
            Lost::Protocol(e) => write!(f, "protocol error: {e}"),
            Lost::Read(e) => write!(f, "read failed: {e}"),
            Lost::Write(e) => write!(f, "write failed: {e}"),
            Lost::Server(text) => write!(f, "server error: {text}"),
        }
    }
}

impl std::error::Error for Lost {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Lost::Protocol(e) => Some(e),
            Lost::Read(e) | Lost::Write(e) => Some(e),
            Lost::Eof | Lost::Stale | Lost::Server(_) => None,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::Lost;
    use std::error::Error as _;
    use std::io;

    #[test]
    fn a_lost_connection_says_why_and_keeps_the_error_it_wraps() {
        let reset = || io::Error::new(io::ErrorKind::ConnectionReset, "reset by peer");
        let cases = [
            (
                Lost::Eof,
                "end of file: the server closed the connection",
                false,
            ),
            (Lost::Stale, "stale connection: pings unanswered", false),
            (
                Lost::Protocol(panini_proto::Error::InvalidNumber),
                "protocol error: invalid number",
                true,
            ),
            (Lost::Read(reset()), "read failed: reset by peer", true),
            (Lost::Write(reset()), "write failed: reset by peer", true),
            (Lost::Server("'Bad'".into()), "server error: 'Bad'", false),
        ];
        for (lost, text, wraps) in cases {
            assert_eq!(lost.to_string(), text);
            assert_eq!(lost.source().is_some(), wraps, "{lost:?}");
        }
    }
}
