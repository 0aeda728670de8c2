//! Ordered consumers ([`Stream::ordered`]): every message of a stream (or of a filter),
//! once each and in stream order, with no acknowledgements, through short-lived
//! ephemeral pull consumers that are replaced whenever one can no longer be trusted.
//!
//! One task per [`OrderedMessages`] (in `run`) reads a continuous pull
//! ([`Consumer::messages`](super::Consumer::messages)) of the current consumer and keeps
//! a cursor: the consumer sequence of the last message (to see a gap) and the stream
//! sequence of the last message handed over. It *resets* when the consumer sequence
//! skips (a message was lost in flight), when the consumer is gone (deleted, removed as
//! inactive, lost with a server restart), and after the client reconnected: it deletes
//! the old consumer (without waiting) and creates a new one from the next stream
//! sequence not yet delivered, retrying with a growing pause while the server cannot
//! take it. Messages of the old consumer are never handed over after a reset.
//!
//! The consumers are named `<random>_<serial>`, acknowledge nothing (`ack_policy: none`,
//! `max_deliver: 1`), live in memory with one replica, and are removed by the server
//! after 5 minutes without pulls if the task could not delete them.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime};

use smol::channel::Receiver;
use smol::Task;

use super::consume::DEFAULT_CONSUME_BATCH;
use super::{Consumer, Context, DeliverPolicy, JetStreamError, Message, Stream};
use crate::error::Result;
use run::Run;

mod run;

/// The idle heartbeat an ordered consumer asks for unless told
/// ([`Ordered::heartbeat`]): two missed in a row make it check its consumer.
pub const DEFAULT_ORDERED_HEARTBEAT: Duration = Duration::from_secs(5);

/// An ordered consumer being set up ([`Stream::ordered`]); await it to start it.
///
/// ```no_run
/// # panini::rt::block_on(async {
/// # let js = panini::jetstream::Context::new(panini::client::connect("nats://127.0.0.1:4222").await?);
/// use panini::jetstream::DeliverPolicy;
/// use panini::rt::StreamExt;
/// let mut messages = js
///     .stream("ORDERS")
///     .ordered()
///     .filter_subject("orders.eu.>")
///     .deliver_policy(DeliverPolicy::New)
///     .await?;
/// while let Some(msg) = messages.next().await {
///     let msg = msg?;
///     println!("#{} {}", msg.info()?.stream_sequence, msg.subject);
/// }
/// # Ok::<(), panini::Error>(()) });
/// ```
#[derive(Clone, Debug)]
#[must_use = "nothing is consumed until it is awaited"]
pub struct Ordered {
    stream: Stream,
    plan: Plan,
}

/// What the user asked for: kept to build each consumer.
#[derive(Clone, Debug)]
struct Plan {
    filters: Vec<String>,
    deliver: DeliverPolicy,
    start_sequence: u64,
    start_time: Option<SystemTime>,
    headers_only: bool,
    heartbeat: Duration,
    batch: usize,
}

impl Stream {
    /// An ordered consumer of this stream: every message (of the filters, from the
    /// deliver policy on) once, in order, without acks, surviving deleted consumers,
    /// lost messages and server restarts. See [`Ordered`] for the settings and
    /// [`OrderedMessages`] for what it yields.
    pub fn ordered(&self) -> Ordered {
        Ordered {
            stream: self.clone(),
            plan: Plan {
                filters: Vec::new(),
                deliver: DeliverPolicy::All,
                start_sequence: 0,
                start_time: None,
                headers_only: false,
                heartbeat: DEFAULT_ORDERED_HEARTBEAT,
                batch: DEFAULT_CONSUME_BATCH,
            },
        }
    }
}

impl Context {
    /// An ordered consumer of `stream`: see [`Stream::ordered`].
    pub fn ordered(&self, stream: &str) -> Ordered {
        self.stream(stream).ordered()
    }
}

impl Ordered {
    /// Only the messages on `subject` (wildcards allowed); can be called again to add
    /// subjects (more than one needs nats-server 2.10).
    pub fn filter_subject(mut self, subject: impl Into<String>) -> Self {
        self.plan.filters.push(subject.into());
        self
    }

    /// Only the messages on these subjects (more than one needs nats-server 2.10).
    pub fn filter_subjects<S: Into<String>>(
        mut self,
        subjects: impl IntoIterator<Item = S>,
    ) -> Self {
        self.plan.filters = subjects.into_iter().map(Into::into).collect();
        self
    }

    /// Where it starts: [`DeliverPolicy::All`] unless told. `LastPerSubject` needs a
    /// filter on nats-server 2.9. For a sequence or a time, use
    /// [`start_sequence`](Ordered::start_sequence) or [`start_time`](Ordered::start_time).
    pub fn deliver_policy(mut self, policy: DeliverPolicy) -> Self {
        self.plan.deliver = policy;
        self
    }

    /// Starts at stream sequence `sequence` (or the first one after it that is stored).
    pub fn start_sequence(mut self, sequence: u64) -> Self {
        self.plan.deliver = DeliverPolicy::ByStartSequence;
        self.plan.start_sequence = sequence.max(1);
        self
    }

    /// Starts at the first message stored at or after `time`.
    pub fn start_time(mut self, time: SystemTime) -> Self {
        self.plan.deliver = DeliverPolicy::ByStartTime;
        self.plan.start_time = Some(time);
        self
    }

    /// Delivers headers only, with the payload's size in `Nats-Msg-Size`.
    pub fn headers_only(mut self, yes: bool) -> Self {
        self.plan.headers_only = yes;
        self
    }

    /// The idle heartbeat asked of the server ([`DEFAULT_ORDERED_HEARTBEAT`]); two missed
    /// in a row make it check the consumer and, if it is gone, reset (100 ms at least).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.plan.heartbeat = every;
        self
    }

    /// Messages asked for per pull, and buffered ahead of the reader.
    pub fn batch(mut self, n: usize) -> Self {
        self.plan.batch = n.max(1);
        self
    }
}

impl IntoFuture for Ordered {
    type Output = Result<OrderedMessages>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<OrderedMessages>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            check_filters(&self.stream.ctx, &self.plan.filters)?;
            let (tx, rx) = smol::channel::bounded(self.plan.batch);
            let shared = Arc::new(OrderedState::default());
            let mut run = Run::new(self.stream, self.plan, tx, shared.clone());
            // The first consumer's errors (a bad filter, no stream...) are the caller's.
            let messages = run.create().await?;
            let task = smol::spawn(run.run(messages));
            Ok(OrderedMessages {
                rx: Box::pin(rx),
                shared,
                _task: task,
            })
        })
    }
}

/// Several filter subjects need 2.10: a 2.9 server would ignore them and deliver all.
fn check_filters(ctx: &Context, filters: &[String]) -> Result<()> {
    if filters.len() < 2 {
        return Ok(());
    }
    let server = ctx.client.server_info().version;
    let mut parts = server.split('.').map(|p| p.parse::<u64>().ok());
    if let (Some(Some(major)), Some(Some(minor))) = (parts.next(), parts.next()) {
        if (major, minor) < (2, 10) {
            return Err(JetStreamError::NotSupported {
                what: "several filter subjects",
                since: "2.10",
                server,
            }
            .into());
        }
    }
    Ok(())
}

/// The messages of an ordered consumer ([`Stream::ordered`]), each once, in stream
/// order. They need no acknowledgement (acks sent anyway are ignored).
///
/// Behind it, one task reads a continuous pull of an ephemeral consumer and keeps a
/// cursor: the consumer sequence of the last message (to see a gap) and the stream
/// sequence of the last message handed over. It *resets* when the consumer sequence
/// skips (a message was lost in flight), when the consumer is gone (deleted, removed as
/// inactive, lost with a server restart: two missed heartbeats show it), and after the
/// client reconnected: it deletes the old consumer (without waiting) and creates a new
/// one from the next stream sequence not yet handed over, retrying with a growing pause
/// while the server cannot take it. Nothing of the old consumer is handed over after a
/// reset, so resets are invisible but for [`resets`](OrderedMessages::resets).
///
/// The stream yields an error and ends only when a new consumer cannot be made for a
/// reason that waiting will not fix (the stream was deleted, the configuration is
/// refused), when pulls are refused, or when the client is closed. Dropping it stops the task and deletes its consumer.
#[derive(Debug)]
pub struct OrderedMessages {
    rx: Pin<Box<Receiver<Result<Message>>>>,
    shared: Arc<OrderedState>,
    _task: Task<()>,
}

#[derive(Debug, Default)]
struct OrderedState {
    resets: AtomicU64,
    initial_pending: AtomicU64,
    /// The consumer in use, deleted when the stream is dropped.
    current: Mutex<Option<Consumer>>,
}

impl OrderedMessages {
    /// How many times its consumer was replaced so far.
    pub fn resets(&self) -> u64 {
        self.shared.resets.load(Relaxed)
    }

    /// How many messages the first consumer had to deliver when it was created: what was
    /// stored then, from the start policy on.
    pub fn initial_pending(&self) -> u64 {
        self.shared.initial_pending.load(Relaxed)
    }

    /// The name of the consumer in use now.
    pub fn consumer_name(&self) -> Option<String> {
        let current = self
            .shared
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        current.as_ref().map(|c| c.name().to_string())
    }
}

impl smol::stream::Stream for OrderedMessages {
    type Item = Result<Message>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.rx.as_mut().poll_next(cx)
    }
}

impl Drop for OrderedMessages {
    fn drop(&mut self) {
        let mut current = self
            .shared
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(consumer) = current.take() {
            delete_later(consumer);
        }
    }
}

/// Deletes a consumer without waiting for it (the server removes it anyway once
/// inactive).
fn delete_later(consumer: Consumer) {
    smol::spawn(async move {
        let _ = consumer.delete().await;
    })
    .detach();
}
