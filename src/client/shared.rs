//! State shared by the client handles and the connection task: the outbox, the
//! subscription table, the pending requests and the counters.
//!
//! Handles do not send a command per publish: they encode the op straight into the
//! [`Outbox`] under a short lock and wake the connection task, which takes the whole buffer
//! at once. That is the coalescing (many publishes, one syscall), and it keeps publish
//! allocation-free. While disconnected the same buffer is the bounded reconnect buffer.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use event_listener::Event as Notify;
use panini_proto::{ClientOp, Pub};
use smol::channel::Sender;
use smol::lock::SemaphoreGuardArc;

use super::events::{Event, Stats};
use super::options::ConnectOptions;
use super::outbox::{Outbox, Pushed, Refused, State};
use super::reply::ReplyTx;
use super::transport::DirectWriter;
use crate::error::{Error, Result};
use crate::log::log_at;
use crate::message::{Headers, Message};
use crate::sync::{wait_until, Latch};

/// A map keyed by our own ids (sids, request tokens): ids we hand out (counters, random
/// tokens), never keys an attacker chooses, so a multiplicative hash is enough and much
/// cheaper than SipHash on the per-message path.
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing of one `u64`.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The outgoing side: the outbox, and the live connection's direct writer (if any).
#[derive(Debug)]
pub(crate) struct Out {
    pub(crate) outbox: Outbox,
    /// For a lone request or reply to skip the hop to the connection task (`PubMode::direct`).
    pub(crate) direct: Option<DirectWriter>,
}

/// A request waiting for its reply (or the error that ends the wait).
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) tx: ReplyTx,
    pub(crate) deadline: Instant,
    /// A place the request holds until it ends (its reply came, it timed out or failed):
    /// JetStream's window of pending acks, given back without a task per request.
    pub(crate) _hold: Option<SemaphoreGuardArc>,
    /// Its bytes may have died with a lost connection: found at the disconnect, settled
    /// when the next connection is up (see `lifecycle::disconnected` and `go_live`).
    pub(crate) at_risk: bool,
    /// Past its (shortened) deadline it fails with `ConnectionLost`, not `Timeout`.
    pub(crate) lost: bool,
}

/// How to publish.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PubMode {
    /// The reply subject is our own inbox: no need to check it.
    pub(crate) trusted_reply: bool,
    /// Latency matters more than batching (a lone request, or a reply with no other
    /// message waiting): when the connection task holds no batch, write the outbox on the
    /// caller's thread (through the transport's `DirectWriter`) instead of waking it.
    pub(crate) direct: bool,
    /// More messages follow at once (a reply with more requests waiting behind it): do
    /// not wake a connection task that waits for bytes; the caller writes or wakes later
    /// with [`ClientState::flush_deferred`], before it waits for anything.
    pub(crate) defer: bool,
}

/// A message in a subscription's queue, with the bytes it counts against the queue's bound.
pub(crate) type Queued = (Message, usize);

/// A subscription's queue as the connection task holds it: the sending end, and the bytes
/// queued (shared with the [`Subscription`](super::Subscription), which takes a message's
/// bytes off as it yields it).
#[derive(Debug)]
pub(crate) struct Queue {
    pub(crate) tx: Sender<Queued>,
    pub(crate) bytes: Arc<AtomicUsize>,
}

/// Where a subscription's messages go.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// The subscription's own queue.
    Channel(Queue),
    /// The request multiplexer: routed by the last token to `ClientState::requests`.
    Mux,
}

#[derive(Debug)]
pub(crate) struct SubEntry {
    pub(crate) subject: String,
    pub(crate) queue: Option<String>,
    pub(crate) delivery: Delivery,
    pub(crate) max: Option<u64>,
    pub(crate) delivered: u64,
    pub(crate) dropped: u64,
    pub(crate) slow: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Subs {
    pub(crate) map: IdMap<SubEntry>,
    pub(crate) next_sid: u64,
    pub(crate) mux_sid: Option<u64>,
}

/// One client's state, shared by its handles and its connection task.
pub(crate) struct ClientState {
    pub(crate) opts: ConnectOptions,
    pub(crate) out: Mutex<Out>,
    pub(crate) space: Notify,
    pub(crate) subs: Mutex<Subs>,
    pub(crate) requests: Mutex<IdMap<Pending>>,
    /// Whether the request sweeper is awake (it sleeps while no request waits).
    pub(crate) sweep_armed: AtomicBool,
    pub(crate) sweep_wake: Notify,
    /// Counts requests; a request's token is this count hashed under `token_key`.
    pub(crate) next_token: AtomicU64,
    /// The client's own random SipHash key (std's, seeded by the OS) for request tokens.
    pub(crate) token_key: RandomState,
    pub(crate) inbox: String,
    pub(crate) max_payload: AtomicUsize,
    pub(crate) server_info: Mutex<super::ServerInfo>,
    pub(crate) stats: Stats,
    pub(crate) drain_progress: Notify,
    /// Set once the connection task has shut everything down (subscriptions ended,
    /// requests failed, `Event::Closed` emitted): what `close` and `closed` wait for.
    pub(crate) closed: Latch,
    /// Set when draining starts: subscriptions then report progress. An atomic, because
    /// every message a subscription yields checks it (no lock on that path).
    pub(crate) draining: AtomicBool,
    /// Set when the connection task starts shutting everything down (`is_closed`).
    pub(crate) finished: std::sync::atomic::AtomicBool,
    /// The TLS configuration, made from the options at the first TLS connection of each
    /// pass over the pool and kept for that pass: a rotated certificate or CA file is read
    /// at the next reconnect, and a pool of many servers reads them once.
    #[cfg(feature = "tls")]
    pub(crate) tls: Mutex<Option<std::sync::Arc<futures_rustls::rustls::ClientConfig>>>,
}

impl std::fmt::Debug for ClientState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientState")
            .field("inbox", &self.inbox)
            .finish_non_exhaustive()
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it: every critical
/// section here leaves the data consistent, so a poison flag carries no information.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ClientState {
    /// The TLS configuration, made from the options the first time a pass needs it.
    #[cfg(feature = "tls")]
    pub(crate) fn tls_config(
        &self,
    ) -> Result<std::sync::Arc<futures_rustls::rustls::ClientConfig>> {
        let mut cached = lock(&self.tls);
        if let Some(config) = &*cached {
            return Ok(config.clone());
        }
        let config = super::tls::client_config(&self.opts)?;
        *cached = Some(config.clone());
        Ok(config)
    }

    /// A new pass over the pool reads the TLS files again.
    pub(crate) fn forget_tls_config(&self) {
        #[cfg(feature = "tls")]
        lock(&self.tls).take();
    }

    pub(crate) fn new(opts: ConnectOptions) -> Self {
        let inbox = format!("{}.{}", opts.inbox_prefix, super::random_id());
        let reconnect_cap = opts.reconnect_buffer_size;
        ClientState {
            opts,
            out: Mutex::new(Out {
                outbox: Outbox::new(reconnect_cap),
                direct: None,
            }),
            space: Notify::new(),
            subs: Mutex::new(Subs {
                next_sid: 1,
                ..Subs::default()
            }),
            requests: Mutex::new(IdMap::default()),
            sweep_armed: AtomicBool::new(false),
            sweep_wake: Notify::new(),
            next_token: AtomicU64::new(0),
            token_key: RandomState::new(),
            inbox,
            max_payload: AtomicUsize::new(1024 * 1024),
            server_info: Mutex::new(super::ServerInfo::default()),
            stats: Stats::default(),
            drain_progress: Notify::new(),
            closed: Latch::default(),
            finished: std::sync::atomic::AtomicBool::new(false),
            draining: AtomicBool::new(false),
            #[cfg(feature = "tls")]
            tls: Mutex::new(None),
        }
    }

    /// Logs the event and hands it to the user's callback.
    pub(crate) fn emit(&self, event: Event) {
        match &event {
            Event::Disconnected { .. } | Event::SlowConsumer { .. } | Event::ServerError(_) => {
                log_at!(Warn, "panini::client", "{event:?}")
            }
            Event::ClientError(_) => log_at!(Error, "panini::client", "{event:?}"),
            _ => log_at!(Info, "panini::client", "{event:?}"),
        }
        if let Some(cb) = &self.opts.event_callback {
            cb(event);
        }
    }

    pub(crate) fn state(&self) -> State {
        lock(&self.out).outbox.state()
    }

    /// Encodes a publish into the outbox, waiting for room while connected and refusing
    /// when disconnected and the reconnect buffer is full.
    pub(crate) async fn publish(
        &self,
        subject: &str,
        reply: Option<&str>,
        headers: Option<&Headers>,
        payload: &[u8],
        mode: PubMode,
    ) -> Result<()> {
        self.publish_then(subject, reply, headers, payload, mode, || {})
            .await
    }

    /// [`publish`](ClientState::publish), calling `accepted` under the outbox lock as soon as the
    /// op is in the outbox (before anything of it can be written).
    pub(crate) async fn publish_then(
        &self,
        subject: &str,
        reply: Option<&str>,
        headers: Option<&Headers>,
        payload: &[u8],
        mode: PubMode,
        accepted: impl FnOnce(),
    ) -> Result<()> {
        check_subject(subject, panini_proto::subject::validate_publish)?;
        if let Some(r) = reply.filter(|_| !mode.trusted_reply) {
            check_subject(r, panini_proto::subject::validate_publish)?;
        }
        let mut hbuf = Vec::new();
        if let Some(h) = headers {
            h.encode(&mut hbuf)?;
        }
        let size = hbuf.len() + payload.len();
        let max = self.max_payload.load(Relaxed);
        if size > max {
            return Err(Error::MaxPayload { size, max });
        }
        let op = ClientOp::Pub(Pub {
            subject: subject.as_bytes(),
            reply: reply.map(str::as_bytes),
            headers: headers.map(|_| hbuf.as_slice()),
            payload,
        });
        let mut accepted = Some(accepted);
        let mut on_accepted = || accepted.take().map_or((), |f| f());
        loop {
            let listener = {
                let mut out = lock(&self.out);
                match out.outbox.push_pub(&op) {
                    Ok(Pushed::Buffered) => {
                        on_accepted();
                        break;
                    }
                    Ok(Pushed::Live(wake)) => {
                        on_accepted();
                        if mode.direct {
                            // Written here if the socket takes it: the connection task, if
                            // it waits for bytes, is woken only for what is left (in the
                            // outbox, or records TLS encrypted but the socket did not take).
                            let leftover = out.write_direct();
                            if let Some(w) = wake {
                                if leftover {
                                    drop(out);
                                    w.wake();
                                } else {
                                    out.outbox.park_writer(w);
                                }
                            }
                        } else if let Some(w) = wake {
                            if mode.defer {
                                out.outbox.defer_writer(w);
                            } else {
                                drop(out);
                                w.wake();
                            }
                        }
                        break;
                    }
                    Err(Refused::Closed) => return Err(Error::Closed),
                    Err(Refused::Full) => return Err(Error::ReconnectBufferFull),
                    Err(Refused::Busy) => {
                        // Deferred publishes may have left the writer parked with bytes
                        // waiting: it must run for room to come.
                        let listener = self.space.listen();
                        let writer = out.outbox.take_writer();
                        drop(out);
                        if let Some(w) = writer {
                            w.wake();
                        }
                        listener
                    }
                }
            };
            listener.await;
        }
        Stats::add(&self.stats.out_msgs, 1);
        Stats::add(&self.stats.out_bytes, size as u64);
        Ok(())
    }

    /// Queues a control op (SUB, UNSUB, PONG) for the live connection; while disconnected
    /// the next connection rebuilds what it needs instead.
    pub(crate) fn control(out: &mut Out, op: &ClientOp<'_>) {
        if let Some(w) = out.outbox.push_control(op) {
            w.wake();
        }
    }

    /// Registers a subscription and sends SUB; refused while draining, except the request
    /// inbox (`Delivery::Mux`), which is made once (a second call returns its sid).
    pub(crate) fn subscribe(
        &self,
        subject: &str,
        queue: Option<&str>,
        delivery: Delivery,
    ) -> Result<u64> {
        check_subject(subject, panini_proto::subject::validate_subscribe)?;
        if let Some(q) = queue {
            check_subject(q, panini_proto::subject::validate_queue)?;
        }
        let mux = matches!(delivery, Delivery::Mux);
        // Both locks, as the drain takes them: it sees this subscription whole (and knows
        // the request inbox for what it is) or not at all.
        let mut subs = lock(&self.subs);
        let mut out = lock(&self.out);
        match out.outbox.state() {
            State::Closed => return Err(Error::Closed),
            // The request inbox is no new subscriber: requests work while draining.
            State::Draining if !mux => return Err(Error::Draining),
            State::Draining | State::Open => {}
        }
        if let Some(sid) = subs.mux_sid.filter(|_| mux) {
            return Ok(sid); // another request made it first
        }
        let sid = subs.next_sid;
        subs.next_sid += 1;
        if mux {
            subs.mux_sid = Some(sid);
        }
        let sid_text = sid.to_string();
        Self::control(
            &mut out,
            &ClientOp::Sub {
                subject: subject.as_bytes(),
                queue: queue.map(str::as_bytes),
                sid: sid_text.as_bytes(),
            },
        );
        subs.map.insert(
            sid,
            SubEntry {
                subject: subject.to_string(),
                queue: queue.map(str::to_string),
                delivery,
                max: None,
                delivered: 0,
                dropped: 0,
                slow: false,
            },
        );
        Ok(sid)
    }

    /// Removes a subscription now (`max: None`) or after `max` messages in total.
    pub(crate) fn unsubscribe(&self, sid: u64, max: Option<u64>) {
        let mut subs = lock(&self.subs);
        let remove_now = match (subs.map.get_mut(&sid), max) {
            (None, _) => return,
            (Some(e), Some(m)) if e.delivered < m => {
                e.max = Some(m);
                false
            }
            _ => true,
        };
        if remove_now {
            subs.map.remove(&sid);
        }
        let mut out = lock(&self.out);
        let sid_text = sid.to_string();
        let max = if remove_now { None } else { max.map(unsub_max) };
        Self::control(
            &mut out,
            &ClientOp::Unsub {
                sid: sid_text.as_bytes(),
                max,
            },
        );
    }

    /// Sends PING and returns the receiver of its PONG (the PING goes out after the
    /// reconnect if we are disconnected).
    pub(crate) fn ping(&self) -> Result<smol::channel::Receiver<()>> {
        let (tx, rx) = smol::channel::bounded(1);
        let wake = lock(&self.out)
            .outbox
            .ping(Some(tx))
            .map_err(|_| Error::Closed)?;
        if let Some(w) = wake {
            w.wake();
        }
        Ok(rx)
    }
}

impl ClientState {
    /// Drain, step one: UNSUB every subscription except the request inbox, keeping the
    /// entries so that messages already on the way are still delivered.
    pub(crate) fn send_unsub_all_but_mux(&self) -> Vec<u64> {
        let subs = lock(&self.subs);
        let sids: Vec<u64> = subs
            .map
            .keys()
            .copied()
            .filter(|sid| Some(*sid) != subs.mux_sid)
            .collect();
        let mut out = lock(&self.out);
        for sid in &sids {
            let sid_text = sid.to_string();
            Self::control(
                &mut out,
                &ClientOp::Unsub {
                    sid: sid_text.as_bytes(),
                    max: None,
                },
            );
        }
        sids
    }

    /// Drain, step two: forget the subscriptions and close their queues (what is queued
    /// can still be read); returns the queues to watch.
    pub(crate) fn remove_subs(&self, sids: &[u64]) -> Vec<Sender<Queued>> {
        let mut subs = lock(&self.subs);
        let mut queues = Vec::new();
        for sid in sids {
            if let Some(Delivery::Channel(q)) = subs.map.remove(sid).map(|e| e.delivery) {
                q.tx.close();
                queues.push(q.tx);
            }
        }
        queues
    }

    /// Drain, step three: wait until every queue is empty or its reader is gone.
    pub(crate) async fn wait_until_handed_over(&self, queues: &[Sender<Queued>]) {
        wait_until(&self.drain_progress, || {
            queues
                .iter()
                .all(|q| q.is_empty() || q.receiver_count() == 0)
        })
        .await;
    }
}

impl ClientState {
    /// Writes what deferred publishes left in the outbox: on the caller's thread if the
    /// connection task holds no batch and the socket takes it all, else by waking the
    /// connection task. Nothing to do if nothing waits.
    pub(crate) fn flush_deferred(&self) {
        let mut out = lock(&self.out);
        if out.outbox.pending() == 0 {
            return;
        }
        let leftover = out.write_direct();
        if leftover || out.outbox.pending() > 0 {
            if let Some(w) = out.outbox.take_writer() {
                drop(out);
                w.wake();
            }
        }
    }
}

impl Out {
    /// Writes the outbox on the caller's thread through the live transport's direct
    /// writer, when the connection task holds no batch; what the socket does not take now
    /// stays for the connection task.
    fn write_direct(&mut self) -> bool {
        match &self.direct {
            Some(direct) => self.outbox.write_direct(|bytes| direct.write(bytes)),
            None => false,
        }
    }
}

/// An UNSUB's `max` on the wire (a `u32`): a larger count is as good as unbounded.
pub(crate) fn unsub_max(max: u64) -> u32 {
    u32::try_from(max).unwrap_or(u32::MAX)
}

impl ClientState {
    /// A new request's token, the last part of its reply subject: unguessable (SipHash-1-3
    /// of a counter under a random key of this client), so one who sees a reply subject
    /// (any responder does) cannot tell the next and answer it first. As nats.go and
    /// async-nats, with random tokens; two requests in flight share one with a
    /// probability of 2^-64 per pair.
    pub(crate) fn new_token(&self) -> u64 {
        self.token_key
            .hash_one(self.next_token.fetch_add(1, Relaxed))
    }

    /// Wakes the request sweeper if it sleeps.
    pub(crate) fn arm_sweeper(&self) {
        if !self
            .sweep_armed
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            self.sweep_wake.notify(1);
        }
    }
}

fn check_subject(s: &str, rule: fn(&[u8]) -> Result<(), panini_proto::Error>) -> Result<()> {
    rule(s.as_bytes()).map_err(|_| Error::InvalidSubject(s.to_string()))
}
