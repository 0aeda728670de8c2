//! Our NATS client, on smol: connect, publish, subscribe, request/reply, flush, drain,
//! reconnect and cluster failover.
//!
//! [`Client`] is a cheap cloneable handle. Publishing encodes straight into the outbox,
//! a sans-IO buffer shared with one connection task; that task owns the socket (the
//! transport) and does everything else: writing the outbox, reading and dispatching by sid,
//! PING/PONG, reconnecting. The sans-IO parser in `panini-proto` does all parsing.
//!
//! # Across a reconnect
//! Publishes that returned `Ok` and were not yet written go out on the next connection,
//! after its SUBs, in order; those that cannot (the reconnect buffer's cap, or the client
//! closing first) are counted in [`Statistics::lost_publishes`] and reported with
//! [`Event::PublishesLost`]. A request whose bytes were written on a connection that then
//! died may or may not have reached a responder: it still gets a reply that arrives within
//! [`ConnectOptions::reconnect_grace`] of the reconnect, and otherwise fails then with
//! [`Error::ConnectionLost`], instead of waiting out its whole timeout. It is not resent
//! (the responder may have acted on it); the caller decides.
//!
//! # Secure connections
//! With the feature `tls`, a `tls://` URL, [`ConnectOptions::require_tls`], a CA file or a
//! client certificate makes the client upgrade to TLS after the server's INFO (and it does
//! whenever the server requires TLS); with `nkeys`, [`ConnectOptions::nkey_seed`] and
//! [`ConnectOptions::creds_file`] sign the server's nonce. A refusal that retrying
//! cannot fix ([`Error::Tls`], [`Error::Auth`], [`Error::Credentials`],
//! [`Error::FeatureDisabled`]) ends the first connect at once. No secret shows in `Debug`,
//! logs or errors.
//!
//! # Layout
//! - `options`: [`ConnectOptions`] and their defaults.
//! - `outbox`: the outgoing bytes, sans-IO: encoding, the reconnect buffer, batches taken
//!   and given back, the rebuild on reconnect, the PONG queue.
//! - `transport`: the socket (plain TCP, or TLS over it), driven by the connection task;
//!   the one other write is the outbox's direct write of a lone request or reply, through
//!   it (plain TCP only).
//! - `tls` (feature `tls`): the rustls configuration and the sorting of TLS failures.
//! - `auth`: NKey and JWT credentials, turned into CONNECT fields with the server's nonce.
//! - `shared`: what handles and the connection task share: outbox, subscriptions, requests.
//! - `connection`: one connection's transport, read buffer and handshake.
//! - `lifecycle`: connect and reconnect through the pool, go live, disconnect, close.
//! - `task`: the connection task's loop (read, dispatch by sid, write, ping) and the
//!   request sweeper.
//! - `pool`: server URLs, discovered servers.
//! - `reply`: the one-shot wait for a request's reply.
//! - `subscription`: [`Subscription`], a `Stream` of messages.
//! - `events`: [`Event`] and [`Statistics`].
//!
//! ```no_run
//! # panini::rt::block_on(async {
//! use panini::rt::StreamExt; // smol and futures-lite, re-exported
//! let client = panini::client::connect("nats://127.0.0.1:4222").await?;
//! let mut sub = client.subscribe("greet.*").await?;
//! client.publish("greet.joe", "hello").await?;
//! let msg = sub.next().await.unwrap();
//! assert_eq!(msg.payload, b"hello");
//! # Ok::<(), panini::Error>(()) });
//! ```

mod auth;
mod connection;
mod events;
mod lifecycle;
mod options;
mod outbox;
mod pool;
mod reply;
mod shared;
mod subscription;
mod task;
#[cfg(feature = "tls")]
mod tls;
mod transport;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use smol::channel::Sender;
use smol::future::FutureExt;
use smol::lock::SemaphoreGuardArc;

pub use events::{Event, Statistics};
pub use options::ConnectOptions;
pub(crate) use subscription::Lane;
pub use subscription::Subscription;

use connection::timed_out;
use lifecycle::Ctl;
use outbox::State;
pub(crate) use reply::ReplyWait;
pub(crate) use shared::lock;
use shared::{ClientState, Delivery, PubMode, Queue};

use crate::error::{Error, Result};
use crate::message::{Headers, Message};

/// What the server said about itself in INFO (unknown fields are ignored).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
#[non_exhaustive]
pub struct ServerInfo {
    /// The server's unique id.
    pub server_id: String,
    /// The server's name.
    pub server_name: String,
    /// Its version.
    pub version: String,
    /// Host it listens on.
    pub host: String,
    /// Port it listens on.
    pub port: u16,
    /// Largest message it accepts, headers included.
    pub max_payload: usize,
    /// Protocol level (1: async INFO).
    pub proto: i32,
    /// Whether it supports headers.
    pub headers: bool,
    /// Our client id on that server.
    pub client_id: u64,
    /// Whether it requires authentication.
    pub auth_required: bool,
    /// Whether it requires TLS.
    pub tls_required: bool,
    /// Whether it accepts TLS without requiring it (`allow_non_tls`).
    pub tls_available: bool,
    /// Whether it requires a client certificate (mutual TLS).
    pub tls_verify: bool,
    /// The challenge to sign for NKey and JWT authentication (absent otherwise).
    pub nonce: Option<String>,
    /// Other cluster members clients may use (`host:port`).
    pub connect_urls: Vec<String>,
    /// Lame-duck mode: the server is about to shut down.
    pub ldm: bool,
}

pub(crate) use pool::redact as redact_url;

/// How a reply an endpoint sends is written (see `Client::publish_reply`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplyWrite {
    /// On the caller's thread if the socket takes it: no other message waits behind it.
    Now,
    /// By the connection task, woken for it.
    Wake,
    /// Into the outbox only: more replies follow at once, and the caller calls
    /// [`Client::flush_deferred`] before it waits for anything.
    Later,
}

/// Connects to one URL with default options.
pub async fn connect(url: impl Into<String>) -> Result<Client> {
    ConnectOptions::new([url.into()]).connect().await
}

/// A handle to one NATS connection; clone it freely. When the last handle is dropped the
/// connection is closed (after writing what was buffered).
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<ClientState>,
    ctl: Sender<Ctl>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.ctl.try_send(Ctl::Close);
    }
}

/// Spawns one of the connection's tasks, detached, on `executor` (the App's own, see
/// `ConnectOptions::executor`) or else on smol's global executor.
fn spawn_on(
    executor: Option<&smol::Executor<'static>>,
    task: impl std::future::Future<Output = ()> + Send + 'static,
) {
    match executor {
        Some(ex) => ex.spawn(task).detach(),
        None => smol::spawn(task).detach(),
    }
}

impl Client {
    async fn connect_with(mut opts: ConnectOptions) -> Result<Client> {
        opts.check_features()?;
        // Not kept in the client's state: the executor's tasks hold that state.
        let executor = opts.executor.take();
        let mut pool = pool::Pool::new(&opts.servers)?;
        let shared = Arc::new(ClientState::new(opts));
        let conn = lifecycle::connect_first(&shared, &mut pool).await?;
        shared.emit(Event::Connected(pool.current().url()));
        let (ctl_tx, ctl_rx) = smol::channel::unbounded();
        spawn_on(executor.as_deref(), task::sweep_requests(shared.clone()));
        spawn_on(
            executor.as_deref(),
            lifecycle::run(shared.clone(), pool, conn, ctl_rx),
        );
        Ok(Client {
            inner: Arc::new(Inner {
                shared,
                ctl: ctl_tx,
            }),
        })
    }

    fn shared(&self) -> &ClientState {
        &self.inner.shared
    }

    /// Publishes `payload` to `subject`.
    pub async fn publish(&self, subject: &str, payload: impl AsRef<[u8]>) -> Result<()> {
        self.shared()
            .publish(subject, None, None, payload.as_ref(), PubMode::default())
            .await
    }

    /// Publishes with an optional reply subject and optional headers.
    ///
    /// ```no_run
    /// # panini::rt::block_on(async {
    /// use panini::Headers;
    ///
    /// let client = panini::client::connect("nats://127.0.0.1:4222").await?;
    /// let mut headers = Headers::new();
    /// headers.insert("Trace-Id", "4bf92f35");
    /// // Whoever handles `orders.new` answers on `orders.done`.
    /// client
    ///     .publish_with("orders.new", Some("orders.done"), Some(&headers), r#"{"id":7}"#)
    ///     .await?;
    /// client.flush().await?;
    /// # Ok::<(), panini::Error>(()) });
    /// ```
    pub async fn publish_with(
        &self,
        subject: &str,
        reply: Option<&str>,
        headers: Option<&Headers>,
        payload: impl AsRef<[u8]>,
    ) -> Result<()> {
        self.shared()
            .publish(
                subject,
                reply,
                headers,
                payload.as_ref(),
                PubMode::default(),
            )
            .await
    }

    /// Writes what replies sent with [`ReplyWrite::Later`] left in the outbox (at once if
    /// the socket takes it, else by waking the connection task).
    pub(crate) fn flush_deferred(&self) {
        self.shared().flush_deferred();
    }

    /// Publishes the reply of a request served by the app, written as `write` says: the
    /// endpoint asks for [`ReplyWrite::Now`] when no other message waits, so a lone
    /// request gets its answer one task hop sooner, and for [`ReplyWrite::Later`] within
    /// a burst, so that the burst's replies are written in batches.
    pub(crate) async fn publish_reply(
        &self,
        subject: &str,
        headers: Option<&Headers>,
        payload: &[u8],
        write: ReplyWrite,
    ) -> Result<()> {
        let mode = PubMode {
            trusted_reply: false,
            direct: write == ReplyWrite::Now,
            defer: write == ReplyWrite::Later,
        };
        self.shared()
            .publish(subject, None, headers, payload, mode)
            .await
    }

    /// Subscribes to `subject` (wildcards allowed). The subscription is a `Stream` of
    /// [`Message`]s; dropping it unsubscribes.
    ///
    /// ```no_run
    /// # panini::rt::block_on(async {
    /// use panini::rt::StreamExt;
    ///
    /// let client = panini::client::connect("nats://127.0.0.1:4222").await?;
    /// let mut sub = client.subscribe("sensors.*.temperature").await?;
    /// while let Some(msg) = sub.next().await {
    ///     println!("{}: {}", msg.subject, msg.text().unwrap_or("(not text)"));
    /// }
    /// # Ok::<(), panini::Error>(()) });
    /// ```
    pub async fn subscribe(&self, subject: &str) -> Result<Subscription> {
        self.subscribe_inner(subject, None)
    }

    /// Subscribes as a member of a queue group: each message goes to one member.
    pub async fn queue_subscribe(&self, subject: &str, queue: &str) -> Result<Subscription> {
        self.subscribe_inner(subject, Some(queue))
    }

    fn subscribe_inner(&self, subject: &str, queue: Option<&str>) -> Result<Subscription> {
        let (tx, rx) = smol::channel::unbounded();
        let bytes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let delivery = Delivery::Channel(Queue {
            tx,
            bytes: bytes.clone(),
        });
        let sid = self.shared().subscribe(subject, queue, delivery)?;
        Ok(Subscription {
            sid,
            rx: Box::pin(rx),
            bytes,
            shared: self.inner.shared.clone(),
        })
    }

    /// Sends a request and waits for the first reply, up to the default request timeout
    /// ([`ConnectOptions::request_timeout`]). No subscriber on `subject` gives
    /// [`Error::NoResponders`] at once.
    ///
    /// ```no_run
    /// # panini::rt::block_on(async {
    /// use panini::Error;
    ///
    /// let client = panini::client::connect("nats://127.0.0.1:4222").await?;
    /// match client.request("math.double", "21").await {
    ///     Ok(reply) => println!("got {:?}", reply.text()),
    ///     Err(Error::NoResponders) => println!("nobody serves math.double"),
    ///     Err(Error::Timeout) => println!("no answer in time"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok::<(), panini::Error>(()) });
    /// ```
    pub async fn request(&self, subject: &str, payload: impl AsRef<[u8]>) -> Result<Message> {
        let timeout = self.shared().opts.request_timeout;
        self.request_with(subject, None, payload, timeout).await
    }

    /// Sends a request with optional headers and waits for the reply up to `timeout`.
    /// No subscriber on `subject` gives [`Error::NoResponders`] at once, not a timeout.
    pub async fn request_with(
        &self,
        subject: &str,
        headers: Option<&Headers>,
        payload: impl AsRef<[u8]>,
        timeout: Duration,
    ) -> Result<Message> {
        let reply = self
            .send_request(subject, headers, payload.as_ref(), timeout)
            .await?;
        reply.await
    }

    /// The two halves of [`request_with`](Client::request_with): this sends the request
    /// (in order with the caller's other publishes) and returns the wait for its reply, so a
    /// caller can have many in flight (JetStream's windowed publish). Dropping the wait
    /// forgets the reply; the sweeper removes it at its deadline.
    pub(crate) async fn send_request(
        &self,
        subject: &str,
        headers: Option<&Headers>,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<ReplyWait> {
        self.send_request_holding(subject, headers, payload, timeout, None)
            .await
    }

    /// [`send_request`](Client::send_request) holding `hold` (a place in a window) until the
    /// request ends: when its reply arrives, it times out or fails, awaited or not.
    pub(crate) async fn send_request_holding(
        &self,
        subject: &str,
        headers: Option<&Headers>,
        payload: &[u8],
        timeout: Duration,
        hold: Option<SemaphoreGuardArc>,
    ) -> Result<ReplyWait> {
        let shared = self.shared();
        self.ensure_mux()?;
        let token = shared.new_token();
        let (tx, wait) = reply::slot();
        let deadline = std::time::Instant::now() + timeout;
        let reply = inbox_reply(&shared.inbox, token);
        // A lone request writes at once on this thread (latency); with others in flight
        // the connection task batches them (throughput).
        let mode = PubMode {
            trusted_reply: true,
            direct: lock(&shared.requests).is_empty(),
            defer: false,
        };
        // The request waits for its reply from the moment its PUB is in the outbox (under
        // the same lock): a disconnect finds it at risk exactly when its bytes may have
        // gone out on the dead connection.
        let pending = shared::Pending {
            tx,
            deadline,
            _hold: hold,
            at_risk: false,
            lost: false,
        };
        let register = || {
            lock(&shared.requests).insert(token, pending);
        };
        shared
            .publish_then(subject, Some(&reply), headers, payload, mode, register)
            .await?;
        // The timeout is enforced by the client's sweeper task, not by a timer per request.
        shared.arm_sweeper();
        Ok(wait)
    }

    /// Subscribes the request inbox at the first request (a client that never requests
    /// never sends its SUB). It is made even while draining: it is ours, not a new
    /// subscriber's, and a drain keeps requests working.
    fn ensure_mux(&self) -> Result<()> {
        let shared = self.shared();
        if lock(&shared.subs).mux_sid.is_some() {
            return Ok(());
        }
        let subject = format!("{}.*", shared.inbox);
        shared.subscribe(&subject, None, Delivery::Mux).map(drop)
    }

    /// Unsubscribes subscription `sid`: what is already queued can still be read from
    /// its stream, which then ends.
    pub(crate) fn unsubscribe_sid(&self, sid: u64) {
        self.shared().unsubscribe(sid, None);
    }

    /// Round trip to the server: when it returns, the server has processed everything
    /// sent before it. Waits through a reconnect; bounded by the request timeout.
    pub async fn flush(&self) -> Result<()> {
        let timeout = self.shared().opts.request_timeout;
        self.flush_timeout(timeout).await
    }

    /// [`flush`](Client::flush) with an explicit bound.
    pub async fn flush_timeout(&self, timeout: Duration) -> Result<()> {
        let rx = self.shared().ping()?;
        let pong = async { rx.recv().await.map_err(|_| Error::Closed) };
        pong.or(timed_out(timeout)).await
    }

    /// Stops new deliveries (UNSUB everything), waits until subscribers have taken what
    /// was already delivered (bounded by the drain timeout), flushes, then closes.
    pub async fn drain(&self) -> Result<()> {
        let result = self.drain_subscriptions().await;
        let result = match result {
            Ok(()) => self.flush_timeout(self.shared().opts.drain_timeout).await,
            Err(e) => Err(e),
        };
        self.close().await;
        result
    }

    /// The first half of [`drain`](Client::drain): every subscription but the request inbox
    /// is unsubscribed, what the server had already sent is still delivered, and this returns
    /// once subscribers have taken it (bounded by the drain timeout). The connection stays
    /// open, so handlers can still reply and request (the first request of all included: the
    /// request inbox is made then, draining or not); new subscriptions are refused.
    pub async fn drain_subscriptions(&self) -> Result<()> {
        let shared = self.shared();
        {
            let mut out = lock(&shared.out);
            match out.outbox.state() {
                State::Closed => return Err(Error::Closed),
                State::Draining => return Err(Error::Draining),
                State::Open => {
                    out.outbox.set_state(State::Draining);
                    shared.draining.store(true, Relaxed);
                }
            }
        }
        shared.emit(Event::Draining);
        let deadline = shared.opts.drain_timeout;
        let work = async {
            // What the server sent before it processed the UNSUBs arrives before the PONG.
            let sids = shared.send_unsub_all_but_mux();
            self.flush_timeout(deadline).await?;
            let queues = shared.remove_subs(&sids);
            shared.wait_until_handed_over(&queues).await;
            Ok(())
        };
        work.or(timed_out(deadline)).await
    }

    /// Closes now: writes what is buffered (briefly), then ends every subscription.
    pub async fn close(&self) {
        if self.shared().state() != State::Closed {
            let _ = self.flush_timeout(Duration::from_secs(1)).await;
        }
        if self.is_closed() {
            return;
        }
        let _ = self.inner.ctl.try_send(Ctl::Close);
        self.shared().closed.wait().await;
    }

    /// True once the client is closed for good: its subscriptions ended and its connection
    /// task done (the `Closed` state alone is set earlier, when the close begins).
    pub fn is_closed(&self) -> bool {
        self.shared()
            .finished
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// True while a connection is up.
    pub fn is_connected(&self) -> bool {
        lock(&self.shared().out).outbox.is_connected()
    }

    /// Waits until the client is closed (by the user or because reconnecting gave up).
    pub async fn closed(&self) {
        if self.is_closed() {
            return;
        }
        self.shared().closed.wait().await;
    }

    /// The latest INFO from the server we are on.
    pub fn server_info(&self) -> ServerInfo {
        lock(&self.shared().server_info).clone()
    }

    /// Counters since the client was created.
    pub fn statistics(&self) -> Statistics {
        self.shared().stats.snapshot()
    }

    /// Bytes waiting to be written to the server (while disconnected, what is kept for
    /// the reconnect). For `/metrics`.
    #[cfg(feature = "http")]
    pub(crate) fn pending_bytes(&self) -> usize {
        lock(&self.shared().out).outbox.pending()
    }

    /// A fresh unique subject under the inbox prefix, for replies.
    pub fn new_inbox(&self) -> String {
        format!("{}.{}", self.shared().opts.inbox_prefix, random_id())
    }
}

/// `{inbox}.{token}`, without the formatting machinery (this is on every request).
fn inbox_reply(inbox: &str, token: u64) -> String {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(token);
    let mut reply = String::with_capacity(inbox.len() + 1 + digits.len());
    reply.push_str(inbox);
    reply.push('.');
    reply.push_str(digits);
    reply
}

/// 22 characters of base 62, like a NUID: an inbox name, which must not be any other
/// client's on the cluster. So the generator starts from the OS-seeded key std gives each
/// `RandomState` (fastrand's own seed is only the clock and the thread id), a fresh one
/// per id. Not a secret: a request's token is (see `ClientState::new_token`).
pub(crate) fn random_id() -> String {
    let mut rng = fastrand::Rng::with_seed(RandomState::new().hash_one(0u8));
    std::iter::repeat_with(|| rng.alphanumeric())
        .take(22)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn inbox_reply_subjects() {
        assert_eq!(super::inbox_reply("_INBOX.abc", 0), "_INBOX.abc.0");
        assert_eq!(super::inbox_reply("_INBOX.abc", 1234), "_INBOX.abc.1234");
        assert_eq!(super::inbox_reply("i", u64::MAX), format!("i.{}", u64::MAX));
    }

    #[test]
    fn random_ids_are_22_base62_characters_and_differ() {
        let ids: std::collections::HashSet<String> =
            (0..1000).map(|_| super::random_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids
            .iter()
            .all(|id| id.len() == 22 && id.bytes().all(|b| b.is_ascii_alphanumeric())));
    }
}
