//! [`Consumer::messages`]: a continuous stream of messages. The stream reads its pull inbox
//! itself (status messages sorted as they come); one side task per stream sends the pulls
//! (a new one when half the batch has been read), watches the idle heartbeats, and pulls
//! afresh after a reconnect or a missed heartbeat, so the stream resumes by itself after a
//! server restart. The two share counters (`PullCounters`), not the messages. It ends with an
//! error only when pulling cannot work: the consumer or its stream was deleted, or the
//! consumer refuses the pulls.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use smol::channel::{Receiver, Sender};
use smol::future::FutureExt;
use smol::stream::{Stream, StreamExt};
use smol::{Task, Timer};

use super::message::Message;
use super::pull::{classify, is_gone, Incoming, PullRequest};
use super::{Consumer, JetStreamError};
use crate::client::{lock, Client, Subscription};
use crate::error::{Error, Result};
use crate::log::log_at;

/// Messages asked for per pull unless told ([`Consume::batch`]).
pub const DEFAULT_CONSUME_BATCH: usize = 200;
/// How long each pull stays open unless told ([`Consume::expires`]).
pub const DEFAULT_CONSUME_EXPIRES: Duration = Duration::from_secs(30);
/// The idle heartbeat asked for unless told ([`Consume::heartbeat`]).
pub const DEFAULT_CONSUME_HEARTBEAT: Duration = Duration::from_secs(15);

const TARGET: &str = "panini::jetstream";

/// A continuous consume being set up ([`Consumer::messages`]); await it to start it.
#[derive(Debug)]
#[must_use = "nothing is pulled until it is awaited"]
pub struct Consume<'a> {
    consumer: &'a Consumer,
    batch: usize,
    expires: Duration,
    heartbeat: Duration,
}

impl Consumer {
    /// A stream of this consumer's messages that does not end by itself: see
    /// [`Messages`]. Settings (batch, expires, heartbeat) on the returned builder.
    ///
    /// ```no_run
    /// # panini::rt::block_on(async {
    /// # let js = panini::jetstream::Context::new(panini::client::connect("nats://127.0.0.1:4222").await?);
    /// use panini::rt::StreamExt;
    /// let consumer = js.consumer("ORDERS", "billing");
    /// let mut messages = consumer.messages().batch(100).await?;
    /// while let Some(msg) = messages.next().await {
    ///     let msg = msg?;
    ///     println!("{}", msg.subject);
    ///     msg.ack().await?;
    /// }
    /// # Ok::<(), panini::Error>(()) });
    /// ```
    pub fn messages(&self) -> Consume<'_> {
        Consume {
            consumer: self,
            batch: DEFAULT_CONSUME_BATCH,
            expires: DEFAULT_CONSUME_EXPIRES,
            heartbeat: DEFAULT_CONSUME_HEARTBEAT,
        }
    }
}

impl Consume<'_> {
    /// Messages asked for per pull request; a new request is sent when half of them have
    /// come. Also the number of messages buffered ahead of the reader.
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// How long each pull request stays open.
    pub fn expires(mut self, expires: Duration) -> Self {
        self.expires = expires;
        self
    }

    /// How often the server sends a heartbeat while there is nothing to deliver; two
    /// missed in a row make the stream check the consumer and pull afresh (at most half
    /// of `expires`, and at least 100 ms, the server's bounds).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }
}

impl<'a> IntoFuture for Consume<'a> {
    type Output = Result<Messages>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Messages>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let expires = self.expires.max(Duration::from_millis(200));
            let heartbeat = self
                .heartbeat
                .min(expires / 2)
                .max(Duration::from_millis(100));
            let settings = Settings {
                subject: self.consumer.next_subject()?,
                batch: self.batch,
                expires,
                heartbeat,
            };
            let ctx = self.consumer.context();
            let inbox = ctx.client.new_inbox();
            let sub = ctx.client.subscribe(&inbox).await?;
            let shared = Arc::new(PullCounters::default());
            let (wake, woken) = smol::channel::bounded(1);
            let subject = settings.subject.clone();
            let puller = Puller {
                consumer: self.consumer.clone(),
                settings,
                inbox,
                shared: shared.clone(),
                woken,
            };
            Ok(Messages {
                sub,
                client: ctx.client.clone(),
                timeout: ctx.timeout,
                subject,
                half: self.batch / 2,
                shared,
                wake,
                read: 0,
                task: Some(smol::spawn(puller.run())),
            })
        })
    }
}

/// A consumer's messages, pulled continuously ([`Consumer::messages`]).
///
/// Pull requests are kept topped up; status messages never show. After a reconnect, or
/// when two idle heartbeats are missed while the stream waits (the server died, or the
/// consumer's leader moved), it checks the consumer and pulls afresh: a missed heartbeat is
/// counted ([`missed_heartbeats`](Messages::missed_heartbeats)) and logged, not an error.
/// The stream yields an error and ends only when pulling cannot work:
/// [`JetStreamError::ConsumerDeleted`] (the consumer or its stream is gone),
/// [`JetStreamError::PullRefused`] (the consumer refuses these pulls), or
/// [`Error::Closed`]. Dropping it stops the pulls; messages
/// delivered and not yet read are redelivered after their ack wait.
pub struct Messages {
    sub: Subscription,
    client: Client,
    timeout: Duration,
    /// The pull subject, for the log.
    subject: String,
    /// Half the batch: read down to this, the task pulls more.
    half: usize,
    shared: Arc<PullCounters>,
    /// Wakes the task to pull.
    wake: Sender<()>,
    /// Inbox messages read so far (the reader's copy of `PullCounters::read`).
    read: u64,
    /// The pulls; `None` once the stream has ended.
    task: Option<Task<()>>,
}

impl std::fmt::Debug for Messages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messages")
            .field("subject", &self.subject)
            .field("sid", &self.sub.sid())
            .field("ended", &self.task.is_none())
            .finish_non_exhaustive()
    }
}

impl Messages {
    /// How many times two heartbeats in a row were missed so far.
    pub fn missed_heartbeats(&self) -> u64 {
        self.shared.missed.load(Ordering::Relaxed)
    }

    /// `n` messages the pulls owed are accounted for: wake the task when that takes the
    /// debt down to half the batch.
    fn took(&self, n: usize) {
        let before = self
            .shared
            .owed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |o| {
                Some(o.saturating_sub(n))
            })
            .unwrap_or(0);
        if before > self.half && before.saturating_sub(n) <= self.half {
            let _ = self.wake.try_send(());
        }
    }

    /// The stream's last item: the pulls stop, the inbox is unsubscribed.
    fn end(&mut self, e: Error) -> Poll<Option<Result<Message>>> {
        self.task = None;
        self.sub.unsubscribe();
        Poll::Ready(Some(Err(e)))
    }

    /// One inbox message: a stream message for the reader, or a status handled here.
    fn on_inbox(&mut self, msg: crate::Message) -> Option<Poll<Option<Result<Message>>>> {
        self.read += 1;
        self.shared.read.store(self.read, Ordering::Relaxed);
        match classify(msg) {
            Incoming::Message(msg) => {
                self.took(1);
                let msg = Message::new(msg, self.client.clone(), self.timeout);
                return Some(Poll::Ready(Some(Ok(msg))));
            }
            Incoming::Heartbeat => {}
            Incoming::Ended { unfilled } => self.took(unfilled),
            Incoming::Warning {
                status,
                description,
            } => {
                let subject = &self.subject;
                log_at!(Warn, TARGET, "pull on {subject}: {status} {description}");
                self.shared.owed.store(0, Ordering::Relaxed);
                self.shared.hold.store(true, Ordering::Relaxed);
            }
            Incoming::Refused(e) => return Some(self.end(e.into())),
        }
        None
    }
}

impl Stream for Messages {
    type Item = Result<Message>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.task.is_none() {
                return Poll::Ready(None);
            }
            if let Some(e) = this.shared.take_failure() {
                return this.end(e);
            }
            match Pin::new(&mut this.sub).poll_next(cx) {
                Poll::Ready(Some(msg)) => {
                    this.shared.waiting.store(false, Ordering::Relaxed);
                    if let Some(out) = this.on_inbox(msg) {
                        return out;
                    }
                }
                Poll::Ready(None) => return this.end(Error::Closed),
                Poll::Pending => {
                    this.shared.waiting.store(true, Ordering::Relaxed);
                    if this.shared.park(cx.waker()) {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

/// What the reader and the task share.
#[derive(Default)]
struct PullCounters {
    /// Messages the open pull requests still owe: the task adds what it asks for before
    /// it asks, the reader takes off what comes.
    owed: AtomicUsize,
    /// Inbox messages the reader has read (any kind): the task's sign of life.
    read: AtomicU64,
    /// The reader waits on the inbox (it is not busy elsewhere): only then is silence the
    /// server's.
    waiting: AtomicBool,
    /// After a warning: no pull before the next tick.
    hold: AtomicBool,
    missed: AtomicU64,
    /// Set with `side.failure`: checked without the lock.
    failed: AtomicBool,
    side: Mutex<Side>,
}

/// The task's way to end the stream while the reader waits.
#[derive(Default)]
struct Side {
    failure: Option<Error>,
    waker: Option<Waker>,
}

impl PullCounters {
    /// The task's error, once.
    fn take_failure(&self) -> Option<Error> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.side).failure.take()
    }

    /// The reader waits: keeps its waker for `fail`. False if a failure came meanwhile.
    fn park(&self, waker: &Waker) -> bool {
        let mut side = lock(&self.side);
        if side.failure.is_some() {
            return false;
        }
        match &mut side.waker {
            Some(w) if w.will_wake(waker) => {}
            other => *other = Some(waker.clone()),
        }
        true
    }

    /// The task ends the stream with `e`.
    fn fail(&self, e: Error) {
        let waker = {
            let mut side = lock(&self.side);
            side.failure = Some(e);
            self.failed.store(true, Ordering::Release);
            side.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

#[derive(Debug)]
struct Settings {
    subject: String,
    batch: usize,
    expires: Duration,
    heartbeat: Duration,
}

/// The side task of a [`Messages`]: pulls, heartbeats, reconnects.
struct Puller {
    consumer: Consumer,
    settings: Settings,
    inbox: String,
    shared: Arc<PullCounters>,
    /// The reader's call for a pull; closed when the stream is dropped.
    woken: Receiver<()>,
}

/// What the task watches between ticks.
struct Watch {
    /// `PullCounters::read` at the last tick.
    read: u64,
    /// When the server was last heard from (or the reader last busy).
    last_seen: Instant,
    /// The client's reconnects when last checked.
    reconnects: u64,
    /// The check of the consumer after missed heartbeats, while it waits for its answer
    /// (true: the consumer is gone).
    check: Option<Task<bool>>,
}

/// What the task waits for.
enum Event {
    /// The reader read down to half the batch (false: the stream is gone).
    Woken(bool),
    Tick,
}

impl Puller {
    async fn run(self) {
        if let Err(e) = self.pull_loop().await {
            self.shared.fail(e);
        }
    }

    async fn pull_loop(&self) -> Result<()> {
        let client = &self.consumer.context().client;
        let every = (self.settings.heartbeat / 2).min(Duration::from_secs(1));
        let mut ticker = Timer::interval(every);
        let mut watch = Watch {
            read: 0,
            last_seen: Instant::now(),
            reconnects: client.statistics().reconnects,
            check: None,
        };
        loop {
            self.top_up().await?;
            let woken = async { Event::Woken(self.woken.recv().await.is_ok()) };
            let tick = async {
                ticker.next().await;
                Event::Tick
            };
            match woken.or(tick).await {
                Event::Woken(true) => {}
                Event::Woken(false) => return Ok(()),
                Event::Tick => self.on_tick(&mut watch).await?,
            }
        }
    }

    /// Pulls what takes the open requests back to a full batch, once they owe half of it
    /// or less. The debt is counted before the request goes, so that no message of it can
    /// come before its count.
    async fn top_up(&self) -> Result<()> {
        let s = &self.settings;
        let owed = &self.shared.owed;
        let now = owed.load(Ordering::Relaxed);
        if self.shared.hold.load(Ordering::Relaxed) || now > s.batch / 2 {
            return Ok(());
        }
        let n = s.batch - now;
        owed.fetch_add(n, Ordering::Relaxed);
        let request = PullRequest {
            batch: n,
            expires: s.expires,
            idle_heartbeat: s.heartbeat,
            ..PullRequest::default()
        };
        let sent = self.consumer.pull(&s.subject, &self.inbox, &request).await;
        if let Err(e) = sent {
            // Not sent: nothing of it will come (the next tick tries again).
            let _ = owed.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |o| {
                Some(o.saturating_sub(n))
            });
            if matches!(e, Error::Closed) {
                return Err(e);
            }
            log_at!(Warn, TARGET, "cannot send a pull on {}: {e}", s.subject);
        }
        Ok(())
    }

    /// The periodic check: a reconnect, or two heartbeats missed while the reader waits,
    /// mean the open requests are gone; pull afresh. A consumer found gone ends the stream.
    async fn on_tick(&self, watch: &mut Watch) -> Result<()> {
        self.shared.hold.store(false, Ordering::Relaxed);
        if let Some(check) = watch.check.take_if(|c| c.is_finished()) {
            if check.await {
                return Err(JetStreamError::ConsumerDeleted.into());
            }
        }
        let read = self.shared.read.load(Ordering::Relaxed);
        let waiting = self.shared.waiting.load(Ordering::Relaxed);
        let reconnects = self.consumer.context().client.statistics().reconnects;
        if reconnects != watch.reconnects {
            watch.reconnects = reconnects;
        } else if read != watch.read || !waiting {
            // Heard from the server, or the reader was busy: not the server's silence.
            watch.read = read;
            watch.last_seen = Instant::now();
            return Ok(());
        } else if watch.last_seen.elapsed() >= 2 * self.settings.heartbeat {
            self.missed_heartbeats(watch);
        } else {
            return Ok(());
        }
        self.shared.owed.store(0, Ordering::Relaxed);
        watch.last_seen = Instant::now();
        Ok(())
    }

    /// Two heartbeats missed: count it, and check whether the consumer is gone (pulls to
    /// a missing consumer get no answer at all, so this is how its deletion shows when no
    /// request was open at the time). The check runs apart, its answer taken at a later
    /// tick: while a consumer's leader is being elected nobody answers it until the API
    /// timeout, and the fresh pulls must not wait for it.
    fn missed_heartbeats(&self, watch: &mut Watch) {
        self.shared.missed.fetch_add(1, Ordering::Relaxed);
        log_at!(
            Warn,
            TARGET,
            "no heartbeat from {} in {:?}; checking the consumer and pulling again",
            self.settings.subject,
            2 * self.settings.heartbeat
        );
        if watch.check.is_none() {
            let consumer = self.consumer.clone();
            let gone = async move { matches!(consumer.info().await, Err(e) if is_gone(&e)) };
            watch.check = Some(smol::spawn(gone));
        }
    }
}
