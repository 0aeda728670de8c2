//! The connection's life: connecting (the first time and every reconnect, through the same
//! pass over the pool), going live on a new connection, what a lost connection leaves
//! behind (publishes kept, requests at risk), and closing for good.

use std::sync::Arc;
use std::time::{Duration, Instant};

use panini_proto::ClientOp;
use smol::channel::Receiver;
use smol::future::FutureExt;
use smol::Timer;

use super::connection::Connection;
use super::events::{Event, Lost, Stats};
use super::outbox::{Loss, State};
use super::pool::Pool;
use super::shared::{lock, ClientState, Delivery};
use super::task::{flush_out, run_connection, Batch};
use super::ServerInfo;
use crate::error::Error;
use crate::log::log_at;

/// What the handles tell the connection task.
#[derive(Debug)]
pub(crate) enum Ctl {
    /// Close for good.
    Close,
}

/// Why a connection ended.
pub(crate) enum Ended {
    /// The client was closed.
    Closed,
    /// The connection was lost.
    Lost(Lost),
    /// The server is going away (lame-duck mode).
    LameDuck,
    /// The server refused who we are, with this `-ERR` text.
    Auth(String),
}

/// Connects for the first time: one pass over the pool, no waiting. A refusal of who we
/// are (credentials) or of our settings ends the pass at once and is returned as it is; a
/// server whose certificate does not verify is passed over for the next, and when every
/// server refused, the first refusal is returned (retrying cannot help). Otherwise every
/// failure, with its server, is in [`Error::NoServers`].
pub(crate) async fn connect_first(
    shared: &ClientState,
    pool: &mut Pool,
) -> Result<Connection, Error> {
    // Settings that cannot work fail here, before any server is tried.
    #[cfg(feature = "tls")]
    if shared.opts.tls_asked() || pool.servers.iter().any(|s| s.tls) {
        shared.tls_config()?;
    }
    let order = (0..pool.servers.len()).collect();
    match try_servers(shared, pool, order, true).await {
        Ok(conn) => Ok(conn),
        Err(mut failures) => {
            let stopped = failures
                .iter()
                .position(|(_, e)| e.is_refusal() && !matches!(e, Error::Tls(_)));
            let all_refused = failures.iter().all(|(_, e)| e.is_refusal());
            match stopped.or((all_refused && !failures.is_empty()).then_some(0)) {
                Some(at) => Err(failures.swap_remove(at).1),
                None => Err(Error::NoServers(failures)),
            }
        }
    }
}

/// Runs until the client is closed or reconnecting gives up.
pub(crate) async fn run(
    shared: Arc<ClientState>,
    mut pool: Pool,
    mut conn: Connection,
    ctl: Receiver<Ctl>,
) {
    let mut batch = Batch::default();
    let mut refused_passes = 0;
    let mut why = "the connection was lost for good";
    loop {
        let server = pool.current().url();
        let ended = run_connection(&shared, &mut pool, &mut conn, &ctl, &mut batch).await;
        if matches!(ended, Ended::Closed) {
            // Send what handles buffered before the close, briefly; nothing new is taken.
            lock(&shared.out).outbox.set_state(State::Closed);
            flush_out(&shared, &mut conn, &mut batch, Duration::from_secs(1)).await;
            conn.stream.shutdown();
            why = "the client closed before they could be written";
            break;
        }
        // Nothing more may be written on it, not even directly, before it is shut.
        disconnected(&shared, &mut batch);
        conn.stream.shutdown();
        let skip_current = match ended {
            Ended::Closed => unreachable!("handled above"),
            Ended::LameDuck => {
                shared.emit(Event::LameDuck(server.clone()));
                true
            }
            Ended::Lost(lost) => {
                shared.emit(Event::Disconnected {
                    server: server.clone(),
                    reason: lost.to_string(),
                });
                false
            }
            Ended::Auth(reason) => {
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
        match reconnect(&shared, &mut pool, &ctl, skip_current, &mut refused_passes).await {
            Some(next) => {
                conn = next;
                Stats::add(&shared.stats.reconnects, 1);
                shared.emit(Event::Reconnected(pool.current().url()));
            }
            None => break,
        }
    }
    close_now(&shared, &mut batch, why);
}

/// Marks the client closed and wakes everyone who waits on it. Publishes still unsent
/// are reported lost, for the reason `why`.
pub(crate) fn close_now(shared: &ClientState, batch: &mut Batch, why: &str) {
    if shared
        .finished
        .swap(true, std::sync::atomic::Ordering::AcqRel)
    {
        return;
    }
    let loss = {
        let mut out = lock(&shared.out);
        out.direct = None;
        out.outbox
            .close(&mut batch.bytes, std::mem::take(&mut batch.written))
    };
    report_loss(shared, loss, why);
    for (_, entry) in lock(&shared.subs).map.drain() {
        if let Delivery::Channel(q) = entry.delivery {
            q.tx.close();
        }
    }
    lock(&shared.requests).clear();
    shared.sweep_wake.notify(usize::MAX);
    shared.space.notify(usize::MAX);
    shared.drain_progress.notify(usize::MAX);
    shared.emit(Event::Closed);
    shared.closed.set();
}

/// Counts and reports publishes that were accepted and will never be sent.
fn report_loss(shared: &ClientState, loss: Loss, why: &str) {
    if loss.msgs == 0 {
        return;
    }
    Stats::add(&shared.stats.lost_publishes, loss.msgs);
    shared.emit(Event::PublishesLost {
        count: loss.msgs,
        reason: format!("{} bytes: {why}", loss.bytes),
    });
}

/// The connection is gone. The publishes not yet written go back to the outbox (up to the
/// reconnect buffer's cap; the rest is reported lost, and a request among those fails at
/// once: it was never sent). Every other request waiting may have died with the
/// connection, so it is marked at risk (settled in `go_live`).
pub(crate) fn disconnected(shared: &ClientState, batch: &mut Batch) {
    let (mut kept, mut dropped) = (Vec::new(), Vec::new());
    let mut out = lock(&shared.out);
    out.direct = None;
    let written = std::mem::take(&mut batch.written);
    let loss = out
        .outbox
        .disconnected(&mut batch.bytes, written, |p, was_kept| {
            if let Some(token) = p.reply.and_then(|r| request_token(&shared.inbox, r)) {
                if was_kept { &mut kept } else { &mut dropped }.push(token);
            }
        });
    kept.sort_unstable();
    // Under the outbox lock: a request registers when its PUB enters the outbox (also under
    // it), so exactly the requests pushed before this disconnect are looked at.
    let mut requests = lock(&shared.requests);
    for token in dropped {
        if let Some(pending) = requests.remove(&token) {
            pending.tx.send(Err(Error::ReconnectBufferFull));
        }
    }
    for (token, pending) in requests.iter_mut() {
        if kept.binary_search(token).is_err() {
            pending.at_risk = true;
        }
    }
    drop(requests);
    drop(out);
    report_loss(
        shared,
        loss,
        "more than the reconnect buffer holds at the disconnect",
    );
    // Publishers waiting for room go on: while disconnected they fill the reconnect
    // buffer (or get `ReconnectBufferFull`) instead of waiting out the outage.
    shared.space.notify(usize::MAX);
}

/// The token of a reply subject `{inbox}.{token}` of ours.
pub(crate) fn request_token(inbox: &str, reply: &[u8]) -> Option<u64> {
    let rest = reply.strip_prefix(inbox.as_bytes())?.strip_prefix(b".")?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// Makes a new connection live: the outbox gets SUB for every subscription first, then
/// what was buffered while disconnected, then a PING for each flush still waiting; INFO is
/// applied; requests at risk get a short grace to hear back before `ConnectionLost`.
pub(crate) fn go_live(shared: &ClientState, pool: &mut Pool, conn: &Connection) {
    let wake = {
        let subs = lock(&shared.subs);
        let mut out = lock(&shared.out);
        out.direct = conn.stream.direct_writer();
        out.outbox.reconnected(|front| {
            for (sid, e) in &subs.map {
                let sid_text = sid.to_string();
                ClientOp::Sub {
                    subject: e.subject.as_bytes(),
                    queue: e.queue.as_deref().map(str::as_bytes),
                    sid: sid_text.as_bytes(),
                }
                .encode(front);
                if let Some(left) = e.max.map(|m| m.saturating_sub(e.delivered)) {
                    let max = Some(super::shared::unsub_max(left));
                    ClientOp::Unsub {
                        sid: sid_text.as_bytes(),
                        max,
                    }
                    .encode(front);
                }
            }
        })
    };
    apply_info(shared, pool, &conn.info);
    if let Some(w) = wake {
        w.wake();
    }
    settle_requests_at_risk(shared);
}

/// Requests whose bytes may have died with the last connection: each still gets a reply
/// that comes within the grace, or fails with `ConnectionLost` when it ends (or at its own
/// deadline, if sooner). Resending them is not ours to decide: the request may have been
/// acted on.
fn settle_requests_at_risk(shared: &ClientState) {
    let until = Instant::now() + shared.opts.reconnect_grace;
    let mut any = false;
    for pending in lock(&shared.requests).values_mut() {
        if std::mem::take(&mut pending.at_risk) {
            pending.lost = true;
            pending.deadline = pending.deadline.min(until);
            any = true;
        }
    }
    if any {
        shared.arm_sweeper();
    }
}

/// Applies a server's INFO (at connect or later): the pool learns the servers it
/// advertises, `max_payload` and the stored INFO are updated. Returns whether the server
/// is in lame-duck mode.
pub(crate) fn apply_info(shared: &ClientState, pool: &mut Pool, info: &ServerInfo) -> bool {
    if !shared.opts.ignore_discovered_servers && !info.connect_urls.is_empty() {
        let added = pool.add_discovered(&info.connect_urls);
        if !added.is_empty() {
            shared.emit(Event::DiscoveredServers(added));
        }
    }
    if info.max_payload > 0 {
        shared
            .max_payload
            .store(info.max_payload, std::sync::atomic::Ordering::Relaxed);
    }
    *lock(&shared.server_info) = info.clone();
    info.ldm
}

/// One pass over the servers at `order` (stopping at a refusal that every server would
/// give, if `stop_on_refusal`: not at a certificate, which is one server's): the first
/// connection made, or why each failed.
async fn try_servers(
    shared: &ClientState,
    pool: &mut Pool,
    order: Vec<usize>,
    stop_on_refusal: bool,
) -> Result<Connection, Vec<(String, Error)>> {
    let mut failures = Vec::new();
    for idx in order {
        let server = pool.servers[idx].clone();
        match Connection::open(&server, shared).await {
            Ok(conn) => {
                pool.current = idx;
                // Reached over TLS once, always over TLS: an INFO that later says
                // otherwise (anyone can write plain-text INFO) does not downgrade it.
                if conn.stream.is_tls() {
                    pool.servers[idx].tls = true;
                }
                go_live(shared, pool, &conn);
                return Ok(conn);
            }
            Err(e) => {
                log_at!(Debug, "panini::client", "{}: {e}", server.url());
                let stop = stop_on_refusal && e.is_refusal() && !matches!(e, Error::Tls(_));
                failures.push((server.url(), e));
                if stop {
                    break;
                }
            }
        }
    }
    Err(failures)
}

/// Tries the pool until a server answers, waiting between passes; `None` when closed, out
/// of attempts, or after two passes in a row that met a refusal (credentials or
/// certificates: see [`Error::is_refusal`]).
pub(crate) async fn reconnect(
    shared: &ClientState,
    pool: &mut Pool,
    ctl: &Receiver<Ctl>,
    skip_current: bool,
    refused_passes: &mut u32,
) -> Option<Connection> {
    let mut passes = 0u32;
    if shared.opts.max_reconnect_attempts == Some(0) {
        log_at!(
            Error,
            "panini::client",
            "reconnecting is not allowed: no attempts"
        );
        return None;
    }
    loop {
        let mut order = pool.order_after_current();
        if skip_current && passes == 0 && order.len() > 1 {
            order.pop(); // lame duck: the server we were on comes last, skip it once
        }
        // Each pass reads the TLS files again (a rotated certificate); the first connect
        // keeps what it read to check the settings.
        shared.forget_tls_config();
        // A close ends the pass at once, not after every server's connect timeout.
        let pass = async { Some(try_servers(shared, pool, order, false).await) };
        let closed = async {
            let _ = ctl.recv().await;
            None
        };
        match pass.or(closed).await? {
            Ok(conn) => {
                *refused_passes = 0;
                return Some(conn);
            }
            Err(failures) => {
                let mut refused = false;
                for (url, e) in failures.iter().filter(|(_, e)| e.is_refusal()) {
                    refused = true;
                    log_at!(Error, "panini::client", "{url}: {e}");
                }
                *refused_passes = if refused { *refused_passes + 1 } else { 0 };
                if *refused_passes >= 2 {
                    log_at!(
                        Error,
                        "panini::client",
                        "giving up: refused in two passes over the pool in a row"
                    );
                    return None;
                }
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
        if closed_within(ctl, wait).await {
            return None;
        }
    }
}

/// Waits `wait`, or less if the client is closed meanwhile (then true).
async fn closed_within(ctl: &Receiver<Ctl>, wait: Duration) -> bool {
    let closed = async {
        // Any message is a close; a closed channel means every handle is gone.
        let _ = ctl.recv().await;
        true
    };
    closed
        .or(async {
            Timer::after(wait).await;
            false
        })
        .await
}

/// A random wait in `[0, max)` (zero for zero), so clients do not reconnect in step.
pub(crate) fn jitter(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(..nanos.max(1)))
}

#[cfg(test)]
mod tests {
    use super::{jitter, request_token};
    use std::time::Duration;

    #[test]
    fn jitter_stays_under_its_bound() {
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
        assert_eq!(jitter(Duration::from_nanos(1)), Duration::ZERO);
        let max = Duration::from_millis(100);
        assert!((0..1000).map(|_| jitter(max)).all(|j| j < max));
        assert!(
            jitter(Duration::MAX) < Duration::MAX,
            "no overflow on a huge bound"
        );
    }

    #[test]
    fn reply_subjects_of_our_requests_give_their_token() {
        assert_eq!(request_token("_INBOX.ab", b"_INBOX.ab.17"), Some(17));
        assert_eq!(request_token("_INBOX.ab", b"_INBOX.abc.17"), None);
        assert_eq!(request_token("_INBOX.ab", b"_INBOX.ab."), None);
        assert_eq!(request_token("_INBOX.ab", b"other.17"), None);
    }
}
