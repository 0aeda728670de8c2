//! [`Consumer::messages`]: a continuous stream of messages. One task per stream keeps pull
//! requests topped up (a new pull when half the batch has come), watches the idle
//! heartbeats, and pulls afresh after a reconnect or a missed heartbeat, so the stream
//! resumes by itself after a server restart. It ends with an error only when pulling
//! cannot work: the consumer or its stream was deleted, or the consumer refuses the pulls.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use smol::channel::{Receiver, Sender};
use smol::future::FutureExt;
use smol::stream::StreamExt;
use smol::{Task, Timer};

use super::message::Message;
use super::pull::{classify, is_gone, Incoming, PullRequest};
use super::{Consumer, JetStreamError};
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
            let (tx, rx) = smol::channel::bounded(self.batch);
            let missed = Arc::new(AtomicU64::new(0));
            let run = Run {
                consumer: self.consumer.clone(),
                settings,
                inbox,
                tx,
                missed: missed.clone(),
            };
            let task = smol::spawn(run.run(sub));
            Ok(Messages {
                rx: Box::pin(rx),
                missed,
                _task: task,
            })
        })
    }
}

/// A consumer's messages, pulled continuously ([`Consumer::messages`]).
///
/// Pull requests are kept topped up; status messages never show. After a reconnect, or
/// when two idle heartbeats are missed (the server died, or the consumer's leader moved),
/// it checks the consumer and pulls afresh: a missed heartbeat is counted
/// ([`missed_heartbeats`](Messages::missed_heartbeats)) and logged, not an error. The
/// stream yields an error and ends only when pulling cannot work:
/// [`JetStreamError::ConsumerDeleted`] (the consumer or its stream is gone),
/// [`JetStreamError::PullRefused`] (the consumer refuses these pulls), or
/// [`Error::Closed`](crate::Error::Closed). Dropping it stops the pulls; messages
/// delivered and not yet read are redelivered after their ack wait.
#[derive(Debug)]
pub struct Messages {
    rx: Pin<Box<Receiver<Result<Message>>>>,
    missed: Arc<AtomicU64>,
    _task: Task<()>,
}

impl Messages {
    /// How many times two heartbeats in a row were missed so far.
    pub fn missed_heartbeats(&self) -> u64 {
        self.missed.load(Relaxed)
    }
}

impl smol::stream::Stream for Messages {
    type Item = Result<Message>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.rx.as_mut().poll_next(cx)
    }
}

#[derive(Debug)]
struct Settings {
    subject: String,
    batch: usize,
    expires: Duration,
    heartbeat: Duration,
}

/// The task behind a [`Messages`].
struct Run {
    consumer: Consumer,
    settings: Settings,
    inbox: String,
    tx: Sender<Result<Message>>,
    missed: Arc<AtomicU64>,
}

/// Where the pulls of a [`Run`] stand.
struct Pulls {
    /// Messages the open requests still owe.
    owed: usize,
    /// When the server was last heard from on the inbox.
    last_seen: Instant,
    /// After a warning: no pull before the next tick.
    hold: bool,
    /// The client's reconnects when last checked.
    reconnects: u64,
    /// The check of the consumer after missed heartbeats, while it waits for its answer
    /// (true: the consumer is gone).
    check: Option<Task<bool>>,
}

/// What the task waits for.
enum Event {
    Inbox(Option<crate::Message>),
    Tick,
}

/// Why the task stops.
enum Stop {
    /// The reader dropped the stream.
    Dropped,
    /// An error for the reader.
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        Stop::Failed(e)
    }
}

impl Run {
    async fn run(self, sub: crate::client::Subscription) {
        if let Err(Stop::Failed(e)) = self.pull_loop(sub).await {
            let _ = self.tx.send(Err(e)).await;
        }
    }

    async fn pull_loop(&self, mut sub: crate::client::Subscription) -> Result<(), Stop> {
        let s = &self.settings;
        let client = &self.consumer.context().client;
        let mut ticker = Timer::interval((s.heartbeat / 2).min(Duration::from_secs(1)));
        let mut state = Pulls {
            owed: 0,
            last_seen: Instant::now(),
            hold: false,
            reconnects: client.statistics().reconnects,
            check: None,
        };
        loop {
            if !state.hold && state.owed <= s.batch / 2 {
                state.owed += self.pull(s.batch - state.owed).await?;
            }
            let inbox = async { Event::Inbox(sub.next().await) };
            let tick = async {
                ticker.next().await;
                Event::Tick
            };
            match inbox.or(tick).await {
                Event::Inbox(None) => return Err(Error::Closed.into()),
                Event::Inbox(Some(msg)) => self.on_inbox(&mut state, msg).await?,
                Event::Tick => self.on_tick(&mut state).await?,
            }
        }
    }

    /// A message or a status on the inbox.
    async fn on_inbox(&self, state: &mut Pulls, msg: crate::Message) -> Result<(), Stop> {
        state.last_seen = Instant::now();
        match classify(msg) {
            Incoming::Message(msg) => {
                state.owed = state.owed.saturating_sub(1);
                self.deliver(msg).await?;
                // The reader may have been slow: that was not the server's silence.
                state.last_seen = Instant::now();
            }
            Incoming::Heartbeat => {}
            Incoming::Ended { unfilled } => state.owed = state.owed.saturating_sub(unfilled),
            Incoming::Warning {
                status,
                description,
            } => {
                let subject = &self.settings.subject;
                log_at!(Warn, TARGET, "pull on {subject}: {status} {description}");
                state.owed = 0;
                state.hold = true;
            }
            Incoming::Refused(e) => return Err(Error::from(e).into()),
        }
        Ok(())
    }

    /// The periodic check: a reconnect or two missed heartbeats mean the open requests
    /// are gone; pull afresh. A consumer found gone ends the stream.
    async fn on_tick(&self, state: &mut Pulls) -> Result<(), Stop> {
        state.hold = false;
        if let Some(check) = state.check.take_if(|c| c.is_finished()) {
            if check.await {
                return Err(Error::from(JetStreamError::ConsumerDeleted).into());
            }
        }
        let reconnects = self.consumer.context().client.statistics().reconnects;
        if reconnects != state.reconnects {
            state.reconnects = reconnects;
        } else if state.last_seen.elapsed() >= 2 * self.settings.heartbeat {
            self.missed_heartbeats(state);
        } else {
            return Ok(());
        }
        state.owed = 0;
        state.last_seen = Instant::now();
        Ok(())
    }

    /// Sends a pull for `n` messages; returns how many it asked for (none if it could not
    /// be sent now: the next tick tries again).
    async fn pull(&self, n: usize) -> Result<usize, Stop> {
        let s = &self.settings;
        let request = PullRequest {
            batch: n,
            expires: s.expires,
            idle_heartbeat: s.heartbeat,
            ..PullRequest::default()
        };
        match self.consumer.pull(&s.subject, &self.inbox, &request).await {
            Ok(()) => Ok(n),
            Err(Error::Closed) => Err(Error::Closed.into()),
            Err(e) => {
                log_at!(Warn, TARGET, "cannot send a pull on {}: {e}", s.subject);
                Ok(0)
            }
        }
    }

    async fn deliver(&self, msg: crate::Message) -> Result<(), Stop> {
        let ctx = self.consumer.context();
        let msg = Message::new(msg, ctx.client.clone(), ctx.timeout);
        self.tx.send(Ok(msg)).await.map_err(|_| Stop::Dropped)
    }

    /// Two heartbeats missed: count it, and check whether the consumer is gone (pulls to
    /// a missing consumer get no answer at all, so this is how its deletion shows when no
    /// request was open at the time). The check runs apart, its answer taken at a later
    /// tick: while a consumer's leader is being elected nobody answers it until the API
    /// timeout, and the fresh pulls must not wait for it.
    fn missed_heartbeats(&self, state: &mut Pulls) {
        self.missed.fetch_add(1, Relaxed);
        log_at!(
            Warn,
            TARGET,
            "no heartbeat from {} in {:?}; checking the consumer and pulling again",
            self.settings.subject,
            2 * self.settings.heartbeat
        );
        if state.check.is_none() {
            let consumer = self.consumer.clone();
            let gone = async move { matches!(consumer.info().await, Err(e) if is_gone(&e)) };
            state.check = Some(smol::spawn(gone));
        }
    }
}
