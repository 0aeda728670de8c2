//! The outgoing side of a connection, sans-IO: every rule about the bytes we send lives
//! here, and nothing here touches a socket, a clock or a task.
//!
//! Handles encode ops into [`Outbox`] under a short lock; the connection task takes the
//! whole buffer as one batch ([`take`](Outbox::take)), writes it through its transport,
//! and hands it back when done ([`finish`](Outbox::finish)) or when the connection died
//! ([`disconnected`](Outbox::disconnected)), saying how much of it was written. So:
//!
//! - **Nothing taken is lost.** Bytes not yet written when the connection dies go back in
//!   front of newer ones. An op cut mid-write is resent whole: the server never acts on
//!   half an op, so resending it cannot duplicate it.
//! - **Only publishes survive a disconnect.** SUB, UNSUB, PING and PONG belong to the dead
//!   connection; [`reconnected`](Outbox::reconnected) rebuilds what the next one needs:
//!   SUBs first, then the buffered publishes in order, then one PING per flush waiting.
//! - **Bounded.** While connected, a publisher waits past [`SOFT_WRITE_LIMIT`]; while
//!   disconnected the reconnect buffer holds at most its cap, and a publish that does not
//!   fit is refused ([`Refused::Full`]). Publishes that were accepted and still cannot be
//!   kept (more than the cap at a disconnect, or left when the client closes) are returned
//!   as a [`Loss`] for the caller to count and report: never dropped silently.
//! - **PONGs in order.** One entry per PING in flight: a flush waiting, or a keepalive.

use std::collections::VecDeque;
use std::task::Waker;

use panini_proto::{parse_client_op, ClientOp, Limits, Pub, Status};
use smol::channel::Sender;

/// Past this many unwritten bytes while connected, publishers wait for the writer.
pub(crate) const SOFT_WRITE_LIMIT: usize = 4 * 1024 * 1024;

/// A batch buffer larger than this is freed once written, not kept for the next batch.
const KEEP_BATCH: usize = 8 * 1024 * 1024;

/// Where the connection stands, as the handles see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Open,
    Draining,
    Closed,
}

/// Where an accepted publish went.
#[derive(Debug)]
pub(crate) enum Pushed {
    /// Into the live connection's buffer; wake this writer (if it was waiting for bytes).
    Live(Option<Waker>),
    /// Into the reconnect buffer: it is sent after the next connection's SUBs.
    Buffered,
}

/// Why a publish was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The client is closed.
    Closed,
    /// Disconnected, and the reconnect buffer has no room for it.
    Full,
    /// Connected, and the writer is behind: wait for room and try again.
    Busy,
}

/// Publishes that were accepted and are now dropped: the caller reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Loss {
    pub(crate) msgs: u64,
    pub(crate) bytes: u64,
}

/// The outgoing buffer of a client and the state it is sent in.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// Whole ops waiting to be written, oldest first.
    buf: Vec<u8>,
    /// Leading bytes of `buf` already written on the live connection (a direct write that
    /// the socket took only part of).
    written: usize,
    connected: bool,
    state: State,
    /// True while the connection task holds a batch taken from `buf`.
    writing: bool,
    /// The connection task, when it found nothing to write.
    writer: Option<Waker>,
    /// One entry per PING in flight, in order: a flush waiting for its PONG, or a keepalive.
    pongs: VecDeque<Option<Sender<()>>>,
    /// Bytes of publishes kept while disconnected.
    reconnect_cap: usize,
}

/// Limits for reading back our own ops: what we encoded is valid, whatever its size.
const OWN_OPS: Limits = Limits {
    max_control_line: usize::MAX / 4,
    max_info_line: usize::MAX / 4,
    max_payload: usize::MAX / 4,
};

impl Outbox {
    /// An empty, disconnected outbox keeping up to `reconnect_cap` bytes while disconnected.
    pub(crate) fn new(reconnect_cap: usize) -> Self {
        Outbox {
            buf: Vec::new(),
            written: 0,
            connected: false,
            state: State::Open,
            writing: false,
            writer: None,
            pongs: VecDeque::new(),
            reconnect_cap,
        }
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    pub(crate) fn set_state(&mut self, state: State) {
        self.state = state;
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.connected
    }

    /// Bytes waiting to be written (not counting a batch the writer holds).
    pub(crate) fn pending(&self) -> usize {
        self.buf.len() - self.written
    }

    /// Encodes a publish (`op` must be a [`ClientOp::Pub`]).
    pub(crate) fn push_pub(&mut self, op: &ClientOp<'_>) -> Result<Pushed, Refused> {
        if self.state == State::Closed {
            return Err(Refused::Closed);
        }
        if !self.connected {
            let before = self.buf.len();
            op.encode(&mut self.buf);
            if self.buf.len() > self.reconnect_cap {
                self.buf.truncate(before);
                return Err(Refused::Full);
            }
            return Ok(Pushed::Buffered);
        }
        if self.pending() >= SOFT_WRITE_LIMIT {
            return Err(Refused::Busy);
        }
        op.encode(&mut self.buf);
        Ok(Pushed::Live(self.writer.take()))
    }

    /// Encodes a control op (SUB, UNSUB, PONG) for the live connection and returns the
    /// writer to wake, if it waits. Disconnected or closed, nothing is queued: the next
    /// connection gets what it needs from [`reconnected`](Outbox::reconnected).
    pub(crate) fn push_control(&mut self, op: &ClientOp<'_>) -> Option<Waker> {
        if !self.connected || self.state == State::Closed {
            return None;
        }
        op.encode(&mut self.buf);
        self.writer.take()
    }

    /// Queues a PING whose PONG `waiter` (a flush) or nobody (`None`, a keepalive) awaits.
    /// Disconnected, a flush's PING is sent by the next connection and a keepalive is
    /// not sent at all. `Err` when closed.
    pub(crate) fn ping(&mut self, waiter: Option<Sender<()>>) -> Result<Option<Waker>, Refused> {
        if self.state == State::Closed {
            return Err(Refused::Closed);
        }
        if !self.connected {
            if waiter.is_some() {
                self.pongs.push_back(waiter);
            }
            return Ok(None);
        }
        ClientOp::Ping.encode(&mut self.buf);
        self.pongs.push_back(waiter);
        Ok(self.writer.take())
    }

    /// A PONG came: the flush it answers, if the PING was a flush's.
    pub(crate) fn pong(&mut self) -> Option<Sender<()>> {
        self.pongs.pop_front().flatten()
    }

    /// For the connection task: swaps the waiting bytes into the empty `batch` and returns
    /// how many of them are already written. With nothing waiting, remembers `waker` to be
    /// woken by the next op and returns `None`.
    pub(crate) fn take(&mut self, batch: &mut Vec<u8>, waker: &Waker) -> Option<usize> {
        debug_assert!(batch.is_empty() && !self.writing);
        if self.buf.len() == self.written || !self.connected {
            if !self.writer.as_ref().is_some_and(|w| w.will_wake(waker)) {
                self.writer = Some(waker.clone());
            }
            return None;
        }
        std::mem::swap(&mut self.buf, batch);
        self.writing = true;
        // Busy with a batch: a push needs not wake the task until it asks again.
        self.writer = None;
        Some(std::mem::take(&mut self.written))
    }

    /// Puts back a writer waker that a push handed out but that has nothing to do after
    /// all (a direct write took every byte): it stays parked, not woken for nothing.
    pub(crate) fn park_writer(&mut self, waker: Waker) {
        if self.buf.len() == self.written && self.writer.is_none() {
            self.writer = Some(waker);
        } else {
            waker.wake();
        }
    }

    /// Puts back a writer waker that a deferred push handed out: it stays parked with the
    /// bytes waiting, until [`take_writer`](Self::take_writer) or the next push wakes it.
    pub(crate) fn defer_writer(&mut self, waker: Waker) {
        self.writer = Some(waker);
    }

    /// The writer's waker, if it waits for bytes.
    pub(crate) fn take_writer(&mut self) -> Option<Waker> {
        self.writer.take()
    }

    /// For the connection task: the whole `batch` was written; it is emptied for reuse.
    pub(crate) fn finish(&mut self, batch: &mut Vec<u8>) {
        self.writing = false;
        batch.clear();
        if batch.capacity() > KEEP_BATCH {
            *batch = Vec::new();
        }
    }

    /// A latency shortcut for a handle: when no batch is being written, writes the waiting
    /// bytes with `write` (a non-blocking write through the transport, which says how much
    /// it took and whether it kept some of it unsent, as TLS may) and keeps the rest.
    /// Returns whether the transport kept bytes: the connection task must then flush them.
    pub(crate) fn write_direct(
        &mut self,
        write: impl FnOnce(&[u8]) -> std::io::Result<(usize, bool)>,
    ) -> bool {
        if self.writing || !self.connected || self.buf.len() == self.written {
            return false;
        }
        let mut leftover = false;
        // An error is left for the connection task, which meets it on its own write.
        if let Ok((n, left)) = write(&self.buf[self.written..]) {
            leftover = left;
            self.written += n;
            if self.written == self.buf.len() {
                self.buf.clear();
                self.written = 0;
            }
        }
        leftover
    }

    /// The connection died. `batch` is what the connection task held (empty if nothing),
    /// of which `batch_written` bytes were written. The publishes not yet written (an op cut
    /// mid-write counts as not written) are kept in order, ahead of newer ones: as many as
    /// fit the reconnect buffer's cap, from the oldest; the rest are the [`Loss`]. `seen`
    /// sees each one, with whether it was kept.
    pub(crate) fn disconnected(
        &mut self,
        batch: &mut Vec<u8>,
        batch_written: usize,
        mut seen: impl FnMut(&Pub<'_>, bool),
    ) -> Loss {
        self.connected = false;
        self.writing = false;
        self.writer = None;
        self.pongs.retain(Option::is_some);
        let mut out = Vec::with_capacity(self.pending().min(self.reconnect_cap));
        let mut full = false;
        let loss = self.unsent(batch, batch_written, |op, raw| {
            full = full || out.len() + raw.len() > self.reconnect_cap;
            if !full {
                out.extend_from_slice(raw);
            }
            seen(op, !full);
            full
        });
        batch.clear();
        self.buf = out;
        self.written = 0;
        loss
    }

    /// A new connection is up: its bytes are `subs` (the SUBs, written by the caller), then
    /// the publishes kept while disconnected, then one PING per flush still waiting.
    pub(crate) fn reconnected(&mut self, subs: impl FnOnce(&mut Vec<u8>)) -> Option<Waker> {
        let mut front = Vec::new();
        subs(&mut front);
        front.append(&mut self.buf);
        for _ in &self.pongs {
            ClientOp::Ping.encode(&mut front);
        }
        self.buf = front;
        self.written = 0;
        self.connected = true;
        self.writer.take()
    }

    /// Closed for good (after the last write was tried): every publish still here, in
    /// `batch` past `batch_written` or waiting, is the [`Loss`]; flushes waiting end.
    pub(crate) fn close(&mut self, batch: &mut Vec<u8>, batch_written: usize) -> Loss {
        let loss = self.unsent(batch, batch_written, |_, _| true);
        batch.clear();
        self.buf = Vec::new();
        self.written = 0;
        self.state = State::Closed;
        self.connected = false;
        self.writing = false;
        self.writer = None;
        self.pongs.clear();
        loss
    }

    /// Goes over the publishes not yet written, in `batch` past `batch_written` then in the
    /// buffer, oldest first; `lost` says of each whether it is dropped. Returns the loss.
    fn unsent(
        &self,
        batch: &[u8],
        batch_written: usize,
        mut lost: impl FnMut(&Pub<'_>, &[u8]) -> bool,
    ) -> Loss {
        let mut loss = Loss::default();
        for (bytes, done) in [(batch, batch_written), (&self.buf[..], self.written)] {
            let rest = &bytes[op_start(bytes, done)..];
            let unparsed = for_each_pub(rest, |op, raw| {
                if lost(op, raw) {
                    loss.msgs += 1;
                    loss.bytes += raw.len() as u64;
                }
            });
            if unparsed > 0 {
                // Cannot happen for bytes we encoded; if it did, say so rather than drop them.
                debug_assert!(false, "{unparsed} unparsable bytes in our own outbox");
                loss.msgs += 1;
                loss.bytes += unparsed as u64;
            }
        }
        loss
    }
}

/// Where the op that byte `n` of our encoded `bytes` falls in begins (`n` itself when it
/// is on a boundary, `bytes.len()` at the end).
fn op_start(bytes: &[u8], n: usize) -> usize {
    let mut at = 0;
    while at < n {
        match parse_client_op(&bytes[at..], &OWN_OPS) {
            Ok(Status::Complete((_, used))) if at + used <= n => at += used,
            // The op containing byte `n` (or, for bytes we did not encode, the rest).
            _ => return at,
        }
    }
    at
}

/// Calls `f` with each PUB/HPUB op of our encoded `bytes` and its raw bytes, in order;
/// returns how many bytes at the end did not parse (none, for bytes we encoded).
fn for_each_pub(bytes: &[u8], mut f: impl FnMut(&Pub<'_>, &[u8])) -> usize {
    let mut rest = bytes;
    while !rest.is_empty() {
        match parse_client_op(rest, &OWN_OPS) {
            Ok(Status::Complete((op, used))) => {
                if let ClientOp::Pub(p) = op {
                    f(&p, &rest[..used]);
                }
                rest = &rest[used..];
            }
            Ok(Status::Partial) | Err(_) => return rest.len(),
        }
    }
    0
}

#[cfg(test)]
mod tests;
