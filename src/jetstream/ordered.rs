//! Ordered consumers ([`Stream::ordered`]): every message of a stream (or of a filter),
//! once each and in stream order, with no acknowledgements, through short-lived
//! ephemeral pull consumers that are replaced whenever one can no longer be trusted.
//!
//! One task per [`OrderedMessages`] reads a continuous pull
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

use smol::channel::{Receiver, Sender};
use smol::future::FutureExt;
use smol::stream::StreamExt;
use smol::{Task, Timer};

use super::consume::{Messages, DEFAULT_CONSUME_BATCH, DEFAULT_CONSUME_EXPIRES};
use super::{
    rfc3339, AckPolicy, Consumer, ConsumerConfig, Context, DeliverPolicy, JetStreamError, Message,
    Stream,
};
use crate::error::{Error, Result};
use crate::log::log_at;

/// The idle heartbeat an ordered consumer asks for unless told
/// ([`Ordered::heartbeat`]): two missed in a row make it check its consumer.
pub const DEFAULT_ORDERED_HEARTBEAT: Duration = Duration::from_secs(5);

/// How long the server keeps a consumer nobody pulls from (a reset or a drop deletes it
/// before that when it can).
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(300);
/// How often the task looks for a reconnect while no message comes.
const RECONNECT_CHECK: Duration = Duration::from_millis(250);
/// The first and the longest pause between two attempts to create a consumer.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

const TARGET: &str = "panini::jetstream";

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
            let shared = Arc::new(Shared::default());
            let mut run = Run {
                stream: self.stream,
                plan: self.plan,
                at: Position {
                    prefix: random_name(),
                    serial: 0,
                    start_floor: 0,
                    cursor: Cursor::default(),
                    catching_up: true,
                },
                reconnects: 0,
                tx,
                shared: shared.clone(),
            };
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

fn random_name() -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(10)
        .collect()
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
/// The stream yields an error and ends only when a
/// new consumer cannot be made for a reason that waiting will not fix (the stream was
/// deleted, the configuration is refused), when pulls are refused, or when the client is
/// closed. Dropping it stops the task and deletes its consumer.
#[derive(Debug)]
pub struct OrderedMessages {
    rx: Pin<Box<Receiver<Result<Message>>>>,
    shared: Arc<Shared>,
    _task: Task<()>,
}

#[derive(Debug, Default)]
struct Shared {
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

/// Where delivery stands.
#[derive(Clone, Copy, Debug, Default)]
struct Cursor {
    /// The consumer sequence of the last message of the current consumer.
    consumer_seq: u64,
    /// The stream sequence of the last message handed over (0: none yet).
    stream_seq: u64,
}

/// The task behind an [`OrderedMessages`].
struct Run {
    stream: Stream,
    plan: Plan,
    at: Position,
    /// The client's reconnects before the current consumer was created: one more means
    /// the consumer may be gone with the server it was on.
    reconnects: u64,
    tx: Sender<Result<Message>>,
    shared: Arc<Shared>,
}

/// Which consumer is in use and where delivery stands: all the next consumer's start
/// depends on.
#[derive(Clone, Debug)]
struct Position {
    /// Consumers are named `<prefix>_<serial>`.
    prefix: String,
    serial: u64,
    /// The stream sequence just before the first consumer's start.
    start_floor: u64,
    cursor: Cursor,
    /// With `LastPerSubject`: the last value of each subject is still being delivered, so
    /// a new consumer starts the same way (and skips what was handed over) rather than
    /// replaying every message after the cursor.
    catching_up: bool,
}

/// Why a consumer is given up.
enum Next {
    /// Replace it: the reason, for the log.
    Reset(&'static str),
    /// End: with an error for the reader, or none when the reader is gone.
    Stop(Option<Error>),
}

impl Run {
    async fn run(mut self, mut messages: Messages) {
        // Consumers given up in a row before they delivered anything: from the second,
        // a growing pause, so that a consumer lost again and again is not recreated in a
        // tight loop.
        let mut fruitless = 0u32;
        loop {
            let why = match self.drain(&mut messages).await {
                Next::Reset(why) => why,
                Next::Stop(error) => {
                    if let Some(e) = error {
                        let _ = self.tx.send(Err(e)).await;
                    }
                    return;
                }
            };
            self.shared.resets.fetch_add(1, Relaxed);
            log_at!(
                Info,
                TARGET,
                "ordered consumer on {}: {why}; resuming after stream sequence {}",
                self.stream.name,
                self.at.cursor.stream_seq
            );
            if self.at.cursor.consumer_seq == 0 {
                fruitless += 1;
            } else {
                fruitless = 0;
            }
            if fruitless > 1 {
                let pause = RETRY_FIRST.saturating_mul(1 << (fruitless - 2).min(6));
                Timer::after(pause.min(RETRY_MAX)).await;
            }
            messages = match self.recreate().await {
                Ok(m) => m,
                Err(e) => {
                    let _ = self.tx.send(Err(e)).await;
                    return;
                }
            };
        }
    }

    /// Hands over the current consumer's messages until it must be replaced.
    async fn drain(&mut self, messages: &mut Messages) -> Next {
        let client = self.stream.ctx.client.clone();
        let reconnects = self.reconnects;
        let mut ticker = Timer::interval(RECONNECT_CHECK);
        loop {
            let next = async { Some(messages.next().await) };
            let tick = async {
                ticker.next().await;
                None
            };
            let msg = match next.or(tick).await {
                None if client.statistics().reconnects != reconnects => {
                    return Next::Reset("the client reconnected")
                }
                None => continue,
                Some(None) => return Next::Reset("the pulls ended"),
                Some(Some(Err(Error::JetStream(JetStreamError::ConsumerDeleted)))) => {
                    return Next::Reset("the consumer is gone")
                }
                Some(Some(Err(e))) => return Next::Stop(Some(e)),
                Some(Some(Ok(msg))) => msg,
            };
            let Ok(info) = msg.info() else {
                continue;
            };
            let (cseq, sseq, pending) =
                (info.consumer_sequence, info.stream_sequence, info.pending);
            if cseq != self.at.cursor.consumer_seq + 1 {
                return Next::Reset("a message was lost (consumer sequence gap)");
            }
            self.at.cursor.consumer_seq = cseq;
            if pending == 0 {
                self.at.catching_up = false;
            }
            if sseq <= self.at.cursor.stream_seq {
                continue;
            }
            self.at.cursor.stream_seq = sseq;
            if self.tx.send(Ok(msg)).await.is_err() {
                return Next::Stop(None);
            }
        }
    }

    /// Replaces the consumer, retrying while the server cannot take the create.
    async fn recreate(&mut self) -> Result<Messages> {
        let old = {
            let mut current = self
                .shared
                .current
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            current.take()
        };
        if let Some(old) = old {
            delete_later(old);
        }
        let mut pause = RETRY_FIRST;
        loop {
            match self.create().await {
                Ok(messages) => return Ok(messages),
                Err(e) if worth_retrying(&e) => {
                    log_at!(
                        Warn,
                        TARGET,
                        "ordered consumer on {}: cannot recreate it yet ({e}); retrying in {pause:?}",
                        self.stream.name
                    );
                    Timer::after(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Creates the next consumer and starts pulling from it.
    async fn create(&mut self) -> Result<Messages> {
        self.at.serial += 1;
        self.reconnects = self.stream.ctx.client.statistics().reconnects;
        let config = self.at.config(&self.plan);
        let consumer = self.stream.create_consumer(&config).await?;
        let info = consumer.cached_info().cloned().unwrap_or_default();
        if self.at.serial == 1 {
            self.at.start_floor = info.delivered.stream_seq;
            self.shared.initial_pending.store(info.num_pending, Relaxed);
        }
        if info.num_pending == 0 {
            self.at.catching_up = false;
        }
        self.at.cursor.consumer_seq = 0;
        let messages = consumer
            .messages()
            .batch(self.plan.batch)
            .expires(DEFAULT_CONSUME_EXPIRES)
            .heartbeat(self.plan.heartbeat)
            .await;
        let mut current = self
            .shared
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *current = Some(consumer);
        messages
    }
}

impl Position {
    /// The next consumer's configuration: the user's start the first time (and while
    /// catching up on the last values per subject), else from the stream sequence after
    /// the last one handed over.
    fn config(&self, plan: &Plan) -> ConsumerConfig {
        let mut config = ConsumerConfig {
            name: Some(format!("{}_{}", self.prefix, self.serial)),
            ack_policy: AckPolicy::None,
            max_deliver: 1,
            headers_only: plan.headers_only,
            inactive_threshold: INACTIVE_THRESHOLD,
            num_replicas: 1,
            mem_storage: true,
            ..ConsumerConfig::default()
        };
        match plan.filters.as_slice() {
            [] => {}
            [one] => config.filter_subject = Some(one.clone()),
            many => {
                config
                    .other
                    .insert("filter_subjects".into(), many.to_vec().into());
            }
        }
        let resume_from = match self.cursor.stream_seq {
            0 => self.start_floor,
            seq => seq,
        };
        let again = plan.deliver == DeliverPolicy::LastPerSubject && self.catching_up;
        if self.serial == 1 || again {
            config.deliver_policy = plan.deliver;
            if plan.deliver == DeliverPolicy::ByStartSequence {
                config.opt_start_seq = Some(plan.start_sequence.max(1));
            }
            if let (DeliverPolicy::ByStartTime, Some(t)) = (plan.deliver, plan.start_time) {
                config.opt_start_time = Some(rfc3339::format(t));
            }
        } else {
            config.deliver_policy = DeliverPolicy::ByStartSequence;
            config.opt_start_seq = Some(resume_from + 1);
        }
        config
    }
}

/// Whether creating a consumer may work if tried again later: the server is away,
/// restarting, or short of resources for now.
fn worth_retrying(e: &Error) -> bool {
    match e {
        Error::Timeout
        | Error::ConnectionLost
        | Error::NoResponders
        | Error::Io(_)
        | Error::ReconnectBufferFull => true,
        Error::JetStream(JetStreamError::NotEnabled { .. }) => true,
        Error::JetStream(JetStreamError::Api(api)) => api.code >= 500,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(deliver: DeliverPolicy, filters: &[&str]) -> Plan {
        Plan {
            filters: filters.iter().map(|s| s.to_string()).collect(),
            deliver,
            start_sequence: 7,
            start_time: None,
            headers_only: false,
            heartbeat: DEFAULT_ORDERED_HEARTBEAT,
            batch: 10,
        }
    }

    fn first() -> Position {
        Position {
            prefix: "p".into(),
            serial: 1,
            start_floor: 41,
            cursor: Cursor::default(),
            catching_up: true,
        }
    }

    #[test]
    fn the_first_consumer_starts_where_asked_and_the_next_after_the_cursor() {
        let plan = plan(DeliverPolicy::ByStartSequence, &["s.a"]);
        let mut at = first();
        let config = at.config(&plan);
        assert_eq!(config.name.as_deref(), Some("p_1"));
        assert_eq!(config.ack_policy, AckPolicy::None);
        assert_eq!(config.deliver_policy, DeliverPolicy::ByStartSequence);
        assert_eq!(config.opt_start_seq, Some(7));
        assert_eq!(config.filter_subject.as_deref(), Some("s.a"));
        assert!(config.mem_storage && config.max_deliver == 1);

        at.serial = 2;
        assert_eq!(
            at.config(&plan).opt_start_seq,
            Some(42),
            "nothing delivered yet"
        );
        at.cursor.stream_seq = 50;
        at.serial = 3;
        let after = at.config(&plan);
        assert_eq!(after.name.as_deref(), Some("p_3"));
        assert_eq!(after.deliver_policy, DeliverPolicy::ByStartSequence);
        assert_eq!(after.opt_start_seq, Some(51));
    }

    #[test]
    fn a_start_time_is_sent_in_rfc_3339() {
        let mut plan = plan(DeliverPolicy::ByStartTime, &[]);
        plan.start_time = Some(std::time::UNIX_EPOCH + Duration::from_secs(86_400));
        let config = first().config(&plan);
        assert_eq!(config.deliver_policy, DeliverPolicy::ByStartTime);
        assert_eq!(
            config.opt_start_time.as_deref(),
            Some("1970-01-02T00:00:00.000000000Z")
        );
        assert_eq!(config.filter_subject, None);
    }

    #[test]
    fn last_per_subject_starts_again_while_catching_up() {
        let plan = plan(DeliverPolicy::LastPerSubject, &["s.>"]);
        let mut at = first();
        at.serial = 2;
        at.cursor.stream_seq = 5;
        assert_eq!(
            at.config(&plan).deliver_policy,
            DeliverPolicy::LastPerSubject
        );
        assert_eq!(at.config(&plan).opt_start_seq, None);
        at.catching_up = false;
        assert_eq!(at.config(&plan).opt_start_seq, Some(6));
    }

    #[test]
    fn several_filters_go_in_filter_subjects() {
        let config = first().config(&plan(DeliverPolicy::All, &["a", "b"]));
        assert_eq!(config.filter_subject, None);
        assert_eq!(
            config.other["filter_subjects"],
            serde_json::json!(["a", "b"])
        );
    }
}
