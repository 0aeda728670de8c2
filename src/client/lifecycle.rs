//! The connection's life: the task that serves a connection until it ends, then
//! reconnects through the pool (or gives up), restoring subscriptions and buffered
//! publishes on the new connection; and closing for good.

use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use async_io::Timer;
use async_net::TcpStream;
use futures_lite::FutureExt;
use panini_proto::{ClientOp, Limits, Status};

use super::connection::Connection;
use super::events::{Event, Stats};
use super::pool::Pool;
use super::shared::{lock, Shared, State, Target};
use super::task::serve;
use super::ServerInfo;
use crate::error::Error;
use crate::log::log_at;

/// What the handles (and the writer) tell the connection task.
#[derive(Debug)]
pub(crate) enum Ctl {
    /// Close for good.
    Close,
    /// The writer could not write: the connection is gone.
    WriteFailed(String),
}

/// Why a connection ended.
pub(crate) enum Ended {
    Closed,
    Lost(String),
    LameDuck,
    Auth(String),
}

/// Runs until the client is closed or reconnecting gives up.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut pool: Pool,
    mut conn: Connection,
    ctl: Receiver<Ctl>,
    ctl_tx: Sender<Ctl>,
) {
    let mut auth_failures = 0;
    loop {
        let server = pool.current().url();
        let ended = serve(&shared, &mut pool, &mut conn, &ctl, &ctl_tx).await;
        disconnected(&shared);
        let skip_current = match ended {
            Ended::Closed => break,
            Ended::LameDuck => {
                shared.emit(Event::LameDuck(server.clone()));
                true
            }
            Ended::Lost(reason) | Ended::Auth(reason) => {
                shared.emit(Event::Disconnected {
                    server: server.clone(),
                    reason,
                });
                false
            }
        };
        if !shared.opts.reconnect {
            break;
        }
        match reconnect(&shared, &mut pool, &ctl, skip_current, &mut auth_failures).await {
            Some(next) => {
                conn = next;
                Stats::add(&shared.stats.reconnects, 1);
                shared.emit(Event::Reconnected(pool.current().url()));
            }
            None => break,
        }
    }
    close_now(&shared);
}

/// Marks the client closed and wakes everyone who waits on it.
pub(crate) fn close_now(shared: &Shared) {
    if shared
        .finished
        .swap(true, std::sync::atomic::Ordering::AcqRel)
    {
        return;
    }
    {
        let mut out = lock(&shared.out);
        out.state = State::Closed;
        out.connected = false;
        out.pongs.clear();
    }
    for (_, entry) in lock(&shared.subs).map.drain() {
        if let Target::Channel(tx) = entry.target {
            tx.close();
        }
    }
    lock(&shared.requests).clear();
    shared.sweep_wake.notify(usize::MAX);
    shared.space.notify(usize::MAX);
    shared.wake_writer.notify(usize::MAX);
    shared.drain_progress.notify(usize::MAX);
    shared.emit(Event::Closed);
    shared.closed.notify(usize::MAX);
}

/// The connection is gone: keep the unsent publishes, drop the unsent control ops (SUB,
/// UNSUB, PING, PONG), which `go_live` rebuilds for the next connection (one PING per
/// flush still waiting), so no PONG is ever matched to the wrong flush.
pub(crate) fn disconnected(shared: &Shared) {
    let mut out = lock(&shared.out);
    out.connected = false;
    out.socket = None;
    out.writing = false;
    out.pongs.retain(Option::is_some);
    // The tail of an op whose head went out on the old connection cannot be resent.
    let head = std::mem::take(&mut out.partial_head).min(out.buf.len());
    if head > 0 {
        log_at!(
            Warn,
            "panini::client",
            "connection lost mid-write: {head} bytes of one op were not sent"
        );
    }
    out.buf = keep_publishes(&out.buf[head..]);
    drop(out);
    // Publishers waiting for room go on: while disconnected they fill the reconnect
    // buffer (or get `ReconnectBufferFull`) instead of waiting out the outage.
    shared.space.notify(usize::MAX);
}

/// The PUB and HPUB ops of a buffer of our own encoded ops, in order.
/// Limits for reading back our own outgoing buffer: what we encoded is valid, whatever
/// its size.
const OWN_OPS: Limits = Limits {
    max_control_line: usize::MAX / 4,
    max_info_line: usize::MAX / 4,
    max_payload: usize::MAX / 4,
};

/// Where the first op that ends at or after byte `n` of our outgoing buffer ends, reading
/// ops from `from` (where the first whole op starts: after the tail of one begun earlier).
/// After a write of `n` bytes, the bytes from `n` to there finish an op already begun on
/// the wire.
pub(crate) fn op_end_at_or_after(buf: &[u8], from: usize, n: usize) -> usize {
    let mut at = from;
    while at < n {
        match panini_proto::parse_client_op(&buf[at..], &OWN_OPS) {
            Ok(Status::Complete((_, used))) => at += used,
            // Cannot happen for bytes we encoded; count the rest as the begun op.
            Ok(Status::Partial) | Err(_) => return buf.len(),
        }
    }
    at
}

pub(crate) fn keep_publishes(buf: &[u8]) -> Vec<u8> {
    let mut kept = Vec::with_capacity(buf.len());
    let mut rest = buf;
    while !rest.is_empty() {
        match panini_proto::parse_client_op(rest, &OWN_OPS) {
            Ok(Status::Complete((op, used))) => {
                if matches!(op, ClientOp::Pub(_)) {
                    kept.extend_from_slice(&rest[..used]);
                }
                rest = &rest[used..];
            }
            Ok(Status::Partial) | Err(_) => {
                log_at!(
                    Error,
                    "panini::client",
                    "dropped {} unparsable buffered bytes",
                    rest.len()
                );
                break;
            }
        }
    }
    kept
}

/// Makes the new connection live: SUB for every subscription first, then what was
/// buffered while disconnected, then a PING for each flush still waiting.
pub(crate) fn go_live(shared: &Shared, info: &ServerInfo, socket: &TcpStream) {
    let subs = lock(&shared.subs);
    let mut out = lock(&shared.out);
    let mut front = Vec::new();
    for (sid, e) in &subs.map {
        let sid_text = sid.to_string();
        ClientOp::Sub {
            subject: e.subject.as_bytes(),
            queue: e.queue.as_deref().map(str::as_bytes),
            sid: sid_text.as_bytes(),
        }
        .encode(&mut front);
        if let Some(left) = e.max.map(|m| m.saturating_sub(e.delivered)) {
            let max = Some(super::shared::unsub_max(left));
            ClientOp::Unsub {
                sid: sid_text.as_bytes(),
                max,
            }
            .encode(&mut front);
        }
    }
    front.append(&mut out.buf);
    for _ in out.pongs.iter() {
        ClientOp::Ping.encode(&mut front);
    }
    out.buf = front;
    out.connected = true;
    out.socket = Some(socket.clone().into());
    if info.max_payload > 0 {
        shared
            .max_payload
            .store(info.max_payload, std::sync::atomic::Ordering::Relaxed);
    }
    *lock(&shared.server_info) = info.clone();
    drop(out);
    shared.wake_writer.notify(1);
}

/// Tries the pool until a server answers, waiting between passes; `None` when closed or
/// out of attempts.
pub(crate) async fn reconnect(
    shared: &Shared,
    pool: &mut Pool,
    ctl: &Receiver<Ctl>,
    skip_current: bool,
    auth_failures: &mut u32,
) -> Option<Connection> {
    let mut passes = 0u32;
    loop {
        let mut order = pool.order_after_current();
        if skip_current && passes == 0 && order.len() > 1 {
            order.pop(); // lame duck: the server we were on comes last, skip it once
        }
        for idx in order {
            if shared.state() == State::Closed {
                return None;
            }
            let server = pool.servers[idx].clone();
            match Connection::open(&server, shared).await {
                Ok(conn) => {
                    pool.current = idx;
                    *auth_failures = 0;
                    learn_servers(shared, pool, &conn.info);
                    go_live(shared, &conn.info, &conn.stream);
                    return Some(conn);
                }
                Err(Error::Auth(text)) => {
                    *auth_failures += 1;
                    log_at!(
                        Error,
                        "panini::client",
                        "{}: authorization failed: {text}",
                        server.url()
                    );
                    if *auth_failures >= 2 {
                        return None;
                    }
                }
                Err(e) => log_at!(Debug, "panini::client", "{}: {e}", server.url()),
            }
        }
        passes += 1;
        if shared
            .opts
            .max_reconnect_attempts
            .is_some_and(|max| passes >= max)
        {
            log_at!(
                Error,
                "panini::client",
                "giving up after {passes} passes over the server pool"
            );
            return None;
        }
        let wait = shared.opts.reconnect_wait + jitter(shared.opts.reconnect_jitter);
        let closed = async {
            while let Ok(msg) = ctl.recv().await {
                if matches!(msg, Ctl::Close) {
                    return true;
                }
            }
            true
        };
        if closed
            .or(async {
                Timer::after(wait).await;
                false
            })
            .await
        {
            return None;
        }
    }
}

pub(crate) fn jitter(max: Duration) -> Duration {
    let nanos = max.as_nanos() as u64;
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(super::random_u64() % nanos)
}

pub(crate) fn learn_servers(shared: &Shared, pool: &mut Pool, info: &ServerInfo) {
    if shared.opts.ignore_discovered_servers || info.connect_urls.is_empty() {
        return;
    }
    let added = pool.add_discovered(&info.connect_urls);
    if !added.is_empty() {
        shared.emit(Event::DiscoveredServers(added));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use panini_proto::Pub;

    #[test]
    fn only_publishes_survive_a_disconnect() {
        let publish = ClientOp::Pub(Pub {
            subject: b"a",
            reply: None,
            headers: None,
            payload: b"1",
        });
        let hpublish = ClientOp::Pub(Pub {
            subject: b"b",
            reply: Some(b"r"),
            headers: Some(b"NATS/1.0\r\n\r\n"),
            payload: b"PING\r\n",
        });
        let mut buf = Vec::new();
        let mut want = Vec::new();
        ClientOp::Sub {
            subject: b"a",
            queue: None,
            sid: b"1",
        }
        .encode(&mut buf);
        publish.encode(&mut buf);
        publish.encode(&mut want);
        ClientOp::Ping.encode(&mut buf);
        hpublish.encode(&mut buf);
        hpublish.encode(&mut want);
        ClientOp::Unsub {
            sid: b"1",
            max: None,
        }
        .encode(&mut buf);
        ClientOp::Pong.encode(&mut buf);
        assert_eq!(keep_publishes(&buf), want);
    }

    #[test]
    fn a_cut_write_knows_where_the_begun_op_ends() {
        let one = b"PUB a 1\r\nx\r\n"; // 12 bytes
        let two = b"PUB bb 2\r\nyy\r\n"; // 14 bytes
        let buf = [&one[..], &two[..]].concat();
        assert_eq!(op_end_at_or_after(&buf, 0, 3), 12, "cut in the first op");
        assert_eq!(op_end_at_or_after(&buf, 0, 12), 12, "cut on a boundary");
        assert_eq!(op_end_at_or_after(&buf, 0, 13), 26, "cut in the second op");
        // The buffer starts with the 5-byte tail of an op begun on the wire earlier.
        let tailed = [&b"y\r\n\r\n"[..], &buf[..]].concat();
        assert_eq!(
            op_end_at_or_after(&tailed, 5, 2),
            5,
            "still in the old tail"
        );
        assert_eq!(
            op_end_at_or_after(&tailed, 5, 6),
            17,
            "in the first whole op"
        );
    }
}
