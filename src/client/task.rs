//! The read side of one connection: it owns the socket's reads, dispatches by sid,
//! answers and sends PINGs, and runs the writer task (a task of its own so that a write
//! blocked on a slow server never stops reading) and the request-timeout sweeper.

use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use async_io::Timer;
use async_net::TcpStream;
use futures_lite::{AsyncWriteExt, FutureExt, StreamExt};
use panini_proto::{parse_server_op, ClientOp, Limits, ServerOp, Status};

use super::connection::{fill, server_error, Connection, READ_CHUNK};
use super::events::{Event, Stats};
use super::lifecycle::{learn_servers, Ctl, Ended};
use super::pool::Pool;
use super::shared::{lock, Shared, State, Target};
use super::ServerInfo;
use crate::error::Error;
use crate::log::log_at;
use crate::message::Message;

/// How often waiting requests are checked for their deadline (so a timeout fires up to
/// this much late).
const SWEEP_EVERY: Duration = Duration::from_millis(10);

/// Times out requests: every `SWEEP_EVERY` while any request waits, asleep otherwise.
/// One timer for all requests costs far less than a timer per request.
pub(crate) async fn sweep_requests(shared: Arc<Shared>) {
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
                let _ = p.tx.try_send(None);
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

/// One wake-up of the serve loop.
enum Wake {
    Read(std::io::Result<usize>),
    Tick,
    Ctl(Option<Ctl>),
}

/// Serves one connection until it ends.
pub(crate) async fn serve(
    shared: &Arc<Shared>,
    pool: &mut Pool,
    conn: &mut Connection,
    ctl: &Receiver<Ctl>,
    ctl_tx: &Sender<Ctl>,
) -> Ended {
    // A failure report of the previous connection's writer must not end this one.
    while let Ok(stale) = ctl.try_recv() {
        if matches!(stale, Ctl::Close) {
            return Ended::Closed;
        }
    }
    let writer = smol::spawn(write_loop(
        shared.clone(),
        conn.stream.clone(),
        ctl_tx.clone(),
    ));
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
            Err(e) => break Ended::Lost(format!("protocol error: {e}")),
        }
        let read = async { Wake::Read(fill(&mut conn.rbuf, &mut conn.stream).await) };
        let tick = async { ticker.next().await.map_or(Wake::Ctl(None), |_| Wake::Tick) };
        let control = async { Wake::Ctl(ctl.recv().await.ok()) };
        match read.or(tick.or(control)).await {
            Wake::Read(Ok(0)) => {
                break Ended::Lost("end of file: the server closed the connection".into())
            }
            Wake::Read(Ok(_)) => {}
            Wake::Read(Err(e)) => break Ended::Lost(e.to_string()),
            Wake::Tick => {
                if pings_out >= shared.opts.max_pings_out {
                    break Ended::Lost("stale connection: pings unanswered".into());
                }
                pings_out += 1;
                let mut out = lock(&shared.out);
                if shared.control(&mut out, ClientOp::Ping) {
                    out.pongs.push_back(None);
                }
            }
            Wake::Ctl(Some(Ctl::WriteFailed(e))) => break Ended::Lost(e),
            Wake::Ctl(Some(Ctl::Close)) | Wake::Ctl(None) => break Ended::Closed,
        }
    };
    if matches!(ended, Ended::Closed) {
        // Let the writer send what handles buffered before the close, briefly.
        lock(&shared.out).state = State::Closed;
        shared.wake_writer.notify(1);
        writer
            .or(async {
                Timer::after(Duration::from_secs(1)).await;
            })
            .await;
    } else {
        writer.cancel().await;
    }
    conn.rbuf.shrink(4 * READ_CHUNK);
    let _ = conn.stream.shutdown(std::net::Shutdown::Both);
    ended
}

/// Handles every whole op in the read buffer. `Ok(Some(_))` ends the connection.
fn dispatch_buffered(
    shared: &Shared,
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
                let mut out = lock(&shared.out);
                shared.control(&mut out, ClientOp::Pong);
                None
            }
            ServerOp::Pong => {
                *pings_out = 0;
                if let Some(Some(waiter)) = lock(&shared.out).pongs.pop_front() {
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

fn on_server_error(shared: &Shared, text: &[u8]) -> Option<Ended> {
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
        _ => Some(Ended::Lost(format!("server error: {shown}"))),
    }
}

fn on_info(shared: &Shared, pool: &mut Pool, limits: &mut Limits, json: &[u8]) -> Option<Ended> {
    let info: ServerInfo = match serde_json::from_slice(json) {
        Ok(info) => info,
        Err(e) => {
            shared.emit(Event::ClientError(format!(
                "ignored INFO with invalid JSON: {e}"
            )));
            return None;
        }
    };
    learn_servers(shared, pool, &info);
    if info.max_payload > 0 {
        limits.max_payload = info.max_payload;
        shared
            .max_payload
            .store(info.max_payload, std::sync::atomic::Ordering::Relaxed);
    }
    let ldm = info.ldm;
    *lock(&shared.server_info) = info;
    ldm.then_some(Ended::LameDuck)
}

/// Routes one message to its subscription (or pending request), counting what is dropped.
/// The owned [`Message`] is built only once it has somewhere to go: a message for a
/// subscription just removed, or one dropped because its queue is full, costs no
/// allocation (the latter matters most when the app is already behind).
fn deliver(shared: &Shared, msg: &panini_proto::Msg<'_>) {
    let size = msg.payload.len() + msg.headers.map_or(0, <[u8]>::len);
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
    match &entry.target {
        Target::Mux => {
            if let Some(message) = build(&mut event) {
                route_reply(shared, message);
            }
        }
        // The queue is unbounded in type and bounded here, by count: an unbounded channel
        // grows in small blocks as messages come, where a bounded one would allocate all
        // of its capacity up front (megabytes for an idle subscription).
        Target::Channel(tx) if tx.is_closed() => gone = true,
        Target::Channel(tx) if tx.len() >= shared.opts.subscription_capacity => {
            entry.dropped += 1;
            Stats::add(&shared.stats.dropped_msgs, 1);
            if !entry.slow {
                entry.slow = true;
                event = Some(Event::SlowConsumer {
                    sid: msg.sid,
                    subject: entry.subject.clone(),
                    dropped: entry.dropped,
                });
            }
        }
        Target::Channel(tx) => {
            if let Some(message) = build(&mut event) {
                match tx.try_send(message) {
                    Ok(()) => entry.slow = false,
                    Err(_) => gone = true,
                }
            }
        }
    }
    if done || gone {
        if let Some(Target::Channel(tx)) = subs.map.remove(&msg.sid).map(|e| e.target) {
            tx.close();
        }
    }
    drop(subs);
    if let Some(ev) = event {
        shared.emit(ev);
    }
}

fn route_reply(shared: &Shared, message: Message) {
    let token = message
        .subject
        .strip_prefix(shared.inbox.as_str())
        .and_then(|t| t.strip_prefix('.'))
        .and_then(|t| t.parse::<u64>().ok());
    let waiter = token.and_then(|t| lock(&shared.requests).remove(&t));
    match waiter {
        Some(pending) => {
            let _ = pending.tx.try_send(Some(message));
        }
        None => log_at!(
            Debug,
            "panini::client",
            "late or unknown reply on {}",
            message.subject
        ),
    }
}

/// Writes whatever handles buffer, until cancelled or the socket fails.
async fn write_loop(shared: Arc<Shared>, mut stream: TcpStream, ctl: Sender<Ctl>) {
    let mut local: Vec<u8> = Vec::new();
    // A listener is made only when the buffer is found empty, and the buffer is looked at
    // once more before waiting on it, so a wake in between is not lost (and a busy writer
    // allocates no listener per batch).
    let mut listener = None;
    loop {
        let taken = {
            let mut out = lock(&shared.out);
            if out.state == State::Closed && out.buf.is_empty() {
                return;
            }
            (!out.buf.is_empty()).then(|| {
                std::mem::swap(&mut out.buf, &mut local);
                out.writing = true;
                std::mem::take(&mut out.partial_head)
            })
        };
        let Some(partial_head) = taken else {
            match listener.take() {
                None => listener = Some(shared.wake_writer.listen()),
                Some(listener) => listener.await,
            }
            continue;
        };
        listener = None;
        shared.space.notify(usize::MAX);
        let mut written = 0;
        while written < local.len() {
            match stream.write(&local[written..]).await {
                Ok(0) | Err(_) if written == 0 => {
                    // Nothing of it left: give it back, ahead of anything newer.
                    let mut out = lock(&shared.out);
                    local.append(&mut out.buf);
                    std::mem::swap(&mut out.buf, &mut local);
                    out.partial_head = partial_head;
                    out.writing = false;
                    drop(out);
                    let _ = ctl.try_send(Ctl::WriteFailed("write failed".into()));
                    return;
                }
                Ok(0) | Err(_) => {
                    let lost = local.len() - written;
                    log_at!(
                        Warn,
                        "panini::client",
                        "connection lost mid-write: {lost} bytes may not have reached the server"
                    );
                    lock(&shared.out).writing = false;
                    let _ = ctl.try_send(Ctl::WriteFailed("write failed mid-op".into()));
                    return;
                }
                Ok(n) => written += n,
            }
        }
        lock(&shared.out).writing = false;
        local.clear();
        if local.capacity() > 8 * 1024 * 1024 {
            local = Vec::new();
        }
    }
}
