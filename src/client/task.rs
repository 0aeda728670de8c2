//! The connection task's work on one connection: it owns the transport, reads and
//! dispatches by sid, writes the outbox, answers and sends PINGs; and the request-timeout
//! sweeper.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use std::future::poll_fn;
use std::task::{Context, Poll};

use panini_proto::{parse_server_op, ClientOp, Limits, ServerOp, Status};
use smol::channel::Receiver;
use smol::future::FutureExt;
use smol::stream::StreamExt;
use smol::Timer;

use super::connection::{server_error, Connection, READ_CHUNK};
use super::events::{Event, Lost, Stats};
use super::lifecycle::{apply_info, Ctl, Ended};
use super::options::ConnectOptions;
use super::pool::Pool;
use super::shared::{lock, ClientState, Delivery, Queue, SubEntry};
use super::ServerInfo;
use crate::error::Error;
use crate::log::log_at;
use crate::message::Message;

/// How often waiting requests are checked for their deadline (so a timeout fires up to
/// this much late).
const SWEEP_EVERY: Duration = Duration::from_millis(10);

/// Times out requests: every `SWEEP_EVERY` while any request waits, asleep otherwise.
/// One timer for all requests costs far less than a timer per request.
pub(crate) async fn sweep_requests(shared: Arc<ClientState>) {
    loop {
        let listener = shared.sweep_wake.listen();
        if shared.finished.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        if !shared
            .sweep_armed
            .load(std::sync::atomic::Ordering::Acquire)
        {
            listener.await;
            continue;
        }
        drop(listener);
        Timer::after(SWEEP_EVERY).await;
        let now = std::time::Instant::now();
        let mut requests = lock(&shared.requests);
        requests.retain(|_, p| {
            let alive = p.deadline > now;
            if !alive {
                let why = if p.lost {
                    Error::ConnectionLost
                } else {
                    Error::Timeout
                };
                p.tx.send(Err(why));
            }
            alive
        });
        if requests.is_empty() {
            // Disarm; a request registered after this check re-arms (swap in arm_sweeper).
            shared
                .sweep_armed
                .store(false, std::sync::atomic::Ordering::Release);
        }
    }
}

/// What the connection task holds of the outbox: the batch it is writing, and how much of
/// it is written. It goes back to the outbox when the connection ends.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) bytes: Vec<u8>,
    pub(crate) written: usize,
}

/// Batches written per wake-up before the socket's reads get their turn.
const WRITES_PER_TURN: usize = 4;

/// One wake-up of the connection loop.
enum Wake {
    Read(std::io::Result<usize>),
    WriteFailed(std::io::Error),
    Tick,
    Ctl(Option<Ctl>),
}

/// Serves one connection until it ends: reads and dispatches, writes the outbox, pings.
/// The transport is driven from here alone (both directions in one poll, so a write
/// blocked on a slow server never stops reading).
pub(crate) async fn run_connection(
    shared: &Arc<ClientState>,
    pool: &mut Pool,
    conn: &mut Connection,
    ctl: &Receiver<Ctl>,
    batch: &mut Batch,
) -> Ended {
    let mut ticker = Timer::interval(shared.opts.ping_interval);
    let mut pings_out = 0u32;
    let mut limits = Limits {
        max_payload: shared
            .max_payload
            .load(std::sync::atomic::Ordering::Relaxed),
        ..Limits::default()
    };
    let ended = loop {
        match dispatch_buffered(shared, pool, conn, &mut limits, &mut pings_out) {
            Ok(None) => {}
            Ok(Some(ended)) => break ended,
            Err(e) => break Ended::Lost(Lost::Protocol(e)),
        }
        // A close is seen even while the socket is never idle (the I/O below would win).
        match ctl.try_recv() {
            Ok(Ctl::Close) | Err(smol::channel::TryRecvError::Closed) => break Ended::Closed,
            Err(smol::channel::TryRecvError::Empty) => {}
        }
        let io = poll_fn(|cx| poll_io(cx, shared, conn, batch));
        let tick = async { ticker.next().await.map_or(Wake::Ctl(None), |_| Wake::Tick) };
        let control = async { Wake::Ctl(ctl.recv().await.ok()) };
        // The tick first (a clock read): a busy socket must not starve the keepalive.
        match tick.or(io.or(control)).await {
            Wake::Read(Ok(0)) => break Ended::Lost(Lost::Eof),
            Wake::Read(Ok(_)) => {}
            // A server killed under TLS sends no close_notify: that is an end of file too.
            Wake::Read(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break Ended::Lost(Lost::Eof)
            }
            Wake::Read(Err(e)) => break Ended::Lost(Lost::Read(e)),
            Wake::WriteFailed(e) => break Ended::Lost(Lost::Write(e)),
            Wake::Tick => {
                if pings_out >= shared.opts.max_pings_out {
                    break Ended::Lost(Lost::Stale);
                }
                pings_out += 1;
                // The waker it may hand back is this task's own: the next turn writes it.
                let _ = lock(&shared.out).outbox.ping(None);
            }
            Wake::Ctl(Some(Ctl::Close)) | Wake::Ctl(None) => break Ended::Closed,
        }
    };
    conn.rbuf.shrink(4 * READ_CHUNK);
    ended
}

/// Writes what the outbox holds as far as the socket takes it, then polls a read.
fn poll_io(
    cx: &mut Context<'_>,
    shared: &ClientState,
    conn: &mut Connection,
    batch: &mut Batch,
) -> Poll<Wake> {
    let mut more = false;
    for _ in 0..WRITES_PER_TURN {
        match poll_write_batch(cx, shared, conn, batch) {
            Poll::Ready(Ok(true)) => more = true,
            Poll::Ready(Ok(false)) | Poll::Pending => {
                more = false;
                break;
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Wake::WriteFailed(e)),
        }
    }
    if let Poll::Ready(read) = conn.stream.poll_read(cx, conn.rbuf.room()) {
        if let Ok(n) = read {
            conn.rbuf.filled(n);
        }
        return Poll::Ready(Wake::Read(read));
    }
    if more {
        // Still bytes to write: come back after the other wake-ups had their turn.
        cx.waker().wake_by_ref();
    }
    Poll::Pending
}

/// Writes one batch (taking one from the outbox if none is held). `Ready(Ok(true))`: a
/// batch was finished and there may be more; `Ready(Ok(false))`: nothing to write (the
/// outbox will wake us); `Pending`: the socket is full.
fn poll_write_batch(
    cx: &mut Context<'_>,
    shared: &ClientState,
    conn: &mut Connection,
    batch: &mut Batch,
) -> Poll<std::io::Result<bool>> {
    if batch.bytes.is_empty() {
        let taken = lock(&shared.out).outbox.take(&mut batch.bytes, cx.waker());
        match taken {
            Some(written) => batch.written = written,
            // Nothing new: TLS may still hold encrypted bytes the socket did not take.
            None => return conn.stream.poll_flush(cx).map_ok(|()| false),
        }
        // The outbox has room again.
        shared.space.notify(usize::MAX);
    }
    while batch.written < batch.bytes.len() {
        match conn.stream.poll_write(cx, &batch.bytes[batch.written..]) {
            Poll::Ready(Ok(0)) => {
                let zero = std::io::Error::new(std::io::ErrorKind::WriteZero, "wrote 0 bytes");
                return Poll::Ready(Err(zero));
            }
            Poll::Ready(Ok(n)) => batch.written += n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    }
    lock(&shared.out).outbox.finish(&mut batch.bytes);
    batch.written = 0;
    Poll::Ready(Ok(true))
}

/// On a close: writes what the outbox still holds, for at most `limit`.
pub(crate) async fn flush_out(
    shared: &ClientState,
    conn: &mut Connection,
    batch: &mut Batch,
    limit: Duration,
) {
    let flush = poll_fn(|cx| loop {
        match poll_write_batch(cx, shared, conn, batch) {
            Poll::Ready(Ok(true)) => continue,
            Poll::Ready(Ok(false)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
            Poll::Pending => return Poll::Pending,
        }
    });
    flush
        .or(async {
            Timer::after(limit).await;
        })
        .await;
}

/// Handles every whole op in the read buffer. `Ok(Some(_))` ends the connection.
fn dispatch_buffered(
    shared: &ClientState,
    pool: &mut Pool,
    conn: &mut Connection,
    limits: &mut Limits,
    pings_out: &mut u32,
) -> Result<Option<Ended>, panini_proto::Error> {
    loop {
        let (op, used) = match parse_server_op(conn.rbuf.data(), limits)? {
            Status::Complete(x) => x,
            Status::Partial => return Ok(None),
        };
        let verdict = match op {
            ServerOp::Msg(msg) => {
                deliver(shared, &msg);
                None
            }
            ServerOp::Ping => {
                ClientState::control(&mut lock(&shared.out), &ClientOp::Pong);
                None
            }
            ServerOp::Pong => {
                *pings_out = 0;
                if let Some(waiter) = lock(&shared.out).outbox.pong() {
                    let _ = waiter.try_send(());
                }
                None
            }
            ServerOp::Ok => None,
            ServerOp::Err(text) => on_server_error(shared, text),
            ServerOp::Info(json) => on_info(shared, pool, limits, json),
        };
        conn.rbuf.consume(used);
        if verdict.is_some() {
            return Ok(verdict);
        }
    }
}

fn on_server_error(shared: &ClientState, text: &[u8]) -> Option<Ended> {
    let err = server_error(text);
    let shown = String::from_utf8_lossy(text).into_owned();
    shared.emit(Event::ServerError(shown.clone()));
    let lower = shown.to_ascii_lowercase();
    let keeps_connection = [
        "permissions violation",
        "invalid subject",
        "invalid publish subject",
        "maximum subscriptions exceeded",
    ]
    .iter()
    .any(|p| lower.starts_with(p));
    match err {
        Error::Auth(text) => Some(Ended::Auth(text)),
        _ if keeps_connection => None,
        _ => Some(Ended::Lost(Lost::Server(shown))),
    }
}

fn on_info(
    shared: &ClientState,
    pool: &mut Pool,
    limits: &mut Limits,
    json: &[u8],
) -> Option<Ended> {
    let info: ServerInfo = match serde_json::from_slice(json) {
        Ok(info) => info,
        Err(e) => {
            shared.emit(Event::ClientError(format!(
                "ignored INFO with invalid JSON: {e}"
            )));
            return None;
        }
    };
    if info.max_payload > 0 {
        limits.max_payload = info.max_payload;
    }
    apply_info(shared, pool, &info).then_some(Ended::LameDuck)
}

/// Routes one message to its subscription (or pending request), counting what is dropped.
/// The owned [`Message`] is built only once it has somewhere to go: a message for a
/// subscription just removed, or one dropped because its queue is full, costs no
/// allocation (the latter matters most when the app is already behind).
fn deliver(shared: &ClientState, msg: &panini_proto::MsgFrame<'_>) {
    let size = msg.payload.len() + msg.headers.map_or(0, <[u8]>::len);
    let queued = size + msg.subject.len() + msg.reply.map_or(0, <[u8]>::len);
    Stats::add(&shared.stats.in_msgs, 1);
    Stats::add(&shared.stats.in_bytes, size as u64);
    let mut subs = lock(&shared.subs);
    let Some(entry) = subs.map.get_mut(&msg.sid) else {
        return; // unsubscribed meanwhile: the server may still have sent a few
    };
    // Counted as the server counts for an auto-unsubscribe, even if it cannot be decoded.
    entry.delivered += 1;
    let done = entry.max.is_some_and(|m| entry.delivered >= m);
    let mut event = None;
    let mut gone = false;
    let build = |event: &mut Option<Event>| match Message::from_wire(msg) {
        Ok(m) => Some(m),
        Err(e) => {
            Stats::add(&shared.stats.bad_msgs, 1);
            *event = Some(Event::ClientError(format!(
                "dropped a message on {:?}: {e}",
                String::from_utf8_lossy(msg.subject)
            )));
            None
        }
    };
    match &entry.delivery {
        Delivery::Mux => {
            if let Some(message) = build(&mut event) {
                route_reply(shared, message);
            }
        }
        // The queue is unbounded in type and bounded here, by count and by bytes: an
        // unbounded channel grows in small blocks as messages come, where a bounded one
        // would allocate all of its capacity up front (megabytes for an idle subscription).
        Delivery::Channel(q) if q.tx.is_closed() => gone = true,
        Delivery::Channel(q) if !has_room(q, queued, &shared.opts) => {
            event = overflowed(shared, msg.sid, entry);
        }
        Delivery::Channel(q) => {
            if let Some(message) = build(&mut event) {
                q.bytes.fetch_add(queued, Relaxed);
                match q.tx.try_send((message, queued)) {
                    Ok(()) => entry.slow = false,
                    Err(_) => gone = true,
                }
            }
        }
    }
    if done || gone {
        if let Some(Delivery::Channel(q)) = subs.map.remove(&msg.sid).map(|e| e.delivery) {
            q.tx.close();
        }
    }
    drop(subs);
    if let Some(ev) = event {
        shared.emit(ev);
    }
}

/// Whether a subscription's queue takes one more message of `size` bytes: it is under its
/// count and byte bounds, or empty (a message alone is always taken, however large: one
/// that fits `max_payload` must be deliverable to a reader that keeps up).
fn has_room(q: &Queue, size: usize, opts: &ConnectOptions) -> bool {
    // Empty by the queue's own length, not by the byte count: a reader may give the bytes
    // it took back in bursts (`Subscription::release`; the app's endpoint loops do).
    let queued = q.tx.len();
    queued == 0
        || (queued < opts.subscription_capacity
            && q.bytes.load(Relaxed).saturating_add(size) <= opts.subscription_capacity_bytes)
}

/// A message dropped because its subscription's queue is full: counted, and reported when
/// the subscription starts dropping (again).
fn overflowed(shared: &ClientState, sid: u64, entry: &mut SubEntry) -> Option<Event> {
    entry.dropped += 1;
    Stats::add(&shared.stats.dropped_msgs, 1);
    if entry.slow {
        return None;
    }
    entry.slow = true;
    Some(Event::SlowConsumer {
        sid,
        subject: entry.subject.clone(),
        dropped: entry.dropped,
    })
}

fn route_reply(shared: &ClientState, message: Message) {
    let token = message
        .subject
        .strip_prefix(shared.inbox.as_str())
        .and_then(|t| t.strip_prefix('.'))
        .and_then(|t| t.parse::<u64>().ok());
    let waiter = token.and_then(|t| lock(&shared.requests).remove(&t));
    match waiter {
        Some(pending) => {
            pending.tx.send(Ok(message));
        }
        None => log_at!(
            Debug,
            "panini::client",
            "late or unknown reply on {}",
            message.subject
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A queue whose readers have taken bytes and not given them back yet (an endpoint loop
    /// gives them back per burst): empty, it still takes a message of any size; with a
    /// message in it, the byte bound holds.
    #[test]
    fn an_empty_queue_takes_a_message_whatever_its_byte_count_says() {
        let opts = ConnectOptions::new(["nats://127.0.0.1:4222"]).subscription_capacity_bytes(1024);
        let (tx, _rx) = smol::channel::unbounded();
        let q = Queue {
            tx,
            bytes: Arc::new(AtomicUsize::new(1000)),
        };
        assert!(has_room(&q, 4096, &opts), "empty: taken despite the count");
        let msg = Message {
            subject: "s".into(),
            reply: None,
            headers: None,
            status: None,
            description: None,
            payload: Vec::new(),
        };
        q.tx.try_send((msg, 10)).unwrap();
        assert!(!has_room(&q, 100, &opts), "not empty: 1000 + 100 > 1024");
        q.bytes.store(10, Relaxed);
        assert!(has_room(&q, 100, &opts), "not empty, under the bound");
    }
}
