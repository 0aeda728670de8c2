//! JetStream in the app's start: the account check, the declared streams and Key-Value
//! buckets ([`prepare`]), and durable endpoints ([`start_all`]).
//!
//! Durable endpoints ([`App::listen_stream`](crate::App::listen_stream)): at-least-once
//! consumption of a JetStream stream through a durable pull consumer, with the same
//! handlers as `listen`. The app creates (or updates) the consumer at start; one loop per
//! endpoint takes messages from the consumer's continuous pull and runs each through the
//! listen middlewares and the handler in a task of its own, at most `max_in_flight` at
//! once; the outcome decides the acknowledgement:
//!
//! - the handler returned (`Ok`, a value, `()`): **ack**;
//! - it failed (`Err`) or panicked, or a middleware panicked: **nak** with the back-off
//!   for that delivery, so it comes again later;
//! - the payload does not decode as the handler asks: **term** (it would never succeed),
//!   logged as a warning.
//!
//! A run of a traced message (a W3C `traceparent`) has its trace scope entered at every
//! poll, its acknowledgement included.
//!
//! A run longer than half the consumer's ack wait sends `in_progress` so the message is not
//! redelivered under it. At the stop, the loop takes no more messages; runs in flight finish
//! and acknowledge; messages pulled but not started are given back (`nak`), so the next
//! instance gets them at once (any still on their way come back after the ack wait).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smol::future::{Boxed, FutureExt};
use smol::lock::Semaphore;
use smol::stream::StreamExt;

use super::context::{app_async, AppHandle};
use super::middleware::{ListenResult, Next, SendKind, Terminal};
use super::reply::{settle, Outcome};
use super::runner::BoxedHandler;
use super::runtime::RunningEndpoint;
use super::stats::{failure, EndpointStats};
use super::trace::{traced, RunScope};
use crate::error::{Error, Result, StartStage};
use crate::jetstream::kv::KvConfig;
use crate::jetstream::{self, ConsumerConfig, MessageInfo, StreamConfig};
use crate::log::log_at;
use crate::message::Message;

/// Settings of one durable endpoint ([`App::listen_stream`](crate::App::listen_stream)),
/// adjustable after registering it.
///
/// ```no_run
/// use std::time::Duration;
/// use panini::{App, Msg};
/// use serde_json::Value;
///
/// let mut app = App::new("billing").enable_js(true);
/// app.listen_stream("ORDERS", "billing", |msg: Msg<Value>| async move {
///     println!("order {}", msg.data);
///     Ok::<(), panini::BoxError>(())
/// })
/// .filter_subject("orders.created")
/// .max_in_flight(16)
/// .ack_wait(Duration::from_secs(60))
/// .backoff([Duration::from_secs(2), Duration::from_secs(20)]);
/// app.start();
/// ```
pub struct StreamEndpointConfig {
    pub(crate) stream: String,
    pub(crate) consumer: ConsumerConfig,
    pub(crate) handler: BoxedHandler,
    pub(crate) max_in_flight: Option<usize>,
    pub(crate) backoff: Vec<Duration>,
}

impl std::fmt::Debug for StreamEndpointConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamEndpointConfig")
            .field("stream", &self.stream)
            .field("consumer", &self.consumer)
            .field("max_in_flight", &self.max_in_flight)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl StreamEndpointConfig {
    /// The redelivery delays of a failed run unless the endpoint sets its own: 1 s, 5 s,
    /// 15 s, 30 s, then 60 s for every later delivery.
    pub const DEFAULT_BACKOFF: [Duration; 5] = [
        Duration::from_secs(1),
        Duration::from_secs(5),
        Duration::from_secs(15),
        Duration::from_secs(30),
        Duration::from_secs(60),
    ];

    pub(crate) fn new(stream: &str, durable: &str, handler: BoxedHandler) -> Self {
        StreamEndpointConfig {
            stream: stream.to_string(),
            consumer: ConsumerConfig::durable(durable),
            handler,
            max_in_flight: None,
            backoff: Self::DEFAULT_BACKOFF.to_vec(),
        }
    }

    /// Only the stream's messages on this subject (wildcards allowed).
    pub fn filter_subject(&mut self, subject: impl Into<String>) -> &mut Self {
        self.consumer.filter_subject = Some(subject.into());
        self
    }

    /// At most `n` handlers of this endpoint run at once (default: the app's
    /// [`max_concurrency`](crate::App::max_concurrency)); also how many messages it pulls
    /// ahead.
    pub fn max_in_flight(&mut self, n: usize) -> &mut Self {
        self.max_in_flight = Some(n.max(1));
        self
    }

    /// How long a delivered message may go unacknowledged before the server redelivers it
    /// (the server's default: 30 s). A longer run sends `in_progress` every half of it.
    pub fn ack_wait(&mut self, wait: Duration) -> &mut Self {
        self.consumer.ack_wait = wait;
        self
    }

    /// The most deliveries of one message (default: unlimited); past it the server stops
    /// redelivering it.
    pub fn max_deliver(&mut self, n: u32) -> &mut Self {
        self.consumer.max_deliver = i64::from(n);
        self
    }

    /// The redelivery delays after a failed run: the first for the first failure, and so
    /// on, the last one repeating (default [`DEFAULT_BACKOFF`](Self::DEFAULT_BACKOFF)). An empty list redelivers
    /// at once.
    pub fn backoff(&mut self, delays: impl IntoIterator<Item = Duration>) -> &mut Self {
        self.backoff = delays.into_iter().collect();
        self
    }

    /// Any other consumer setting, e.g. `|c| { c.deliver_policy = DeliverPolicy::New; }`.
    /// The durable name and the explicit ack policy are kept.
    pub fn consumer(&mut self, f: impl FnOnce(&mut ConsumerConfig)) -> &mut Self {
        let durable = self.consumer.durable_name.clone();
        f(&mut self.consumer);
        self.consumer.durable_name = durable;
        self.consumer.ack_policy = jetstream::AckPolicy::Explicit;
        self
    }

    /// The durable consumer's name.
    pub fn durable(&self) -> &str {
        self.consumer.durable_name.as_deref().unwrap_or_default()
    }
}

/// Before the `on_start` hooks: the account has JetStream (else a clear start error), and
/// the declared streams and Key-Value buckets exist with their configuration (each bucket
/// kept for [`AppHandle::key_value`]).
pub(crate) async fn prepare(
    app: &AppHandle,
    js: &jetstream::Context,
    streams: &[StreamConfig],
    buckets: &[KvConfig],
) -> Result<()> {
    js.account_info().await.map_err(|e| {
        let what = "the account has no JetStream (is the server started with -js?)";
        Error::start(StartStage::JetStream(what.into()), e)
    })?;
    for stream in streams {
        js.create_or_update_stream(stream).await.map_err(|e| {
            let what = format!("the stream {}", stream.name);
            Error::start(StartStage::JetStream(what), e)
        })?;
    }
    for bucket in buckets {
        let store = js.create_or_update_key_value(bucket).await.map_err(|e| {
            let what = format!("the key-value bucket {}", bucket.bucket);
            Error::start(StartStage::JetStream(what), e)
        })?;
        app.remember_bucket(store);
    }
    Ok(())
}

/// After the subscriptions: every durable endpoint ([`start`]), in order; the first that
/// fails fails the start.
pub(crate) async fn start_all(
    app: &AppHandle,
    js: &jetstream::Context,
    endpoints: &[StreamEndpointConfig],
    default_in_flight: usize,
) -> Result<()> {
    for ep in endpoints {
        start(app, js, ep, default_in_flight).await.map_err(|e| {
            let what = format!("the durable endpoint {}/{}", ep.stream, ep.durable());
            Error::start(StartStage::JetStream(what), e)
        })?;
    }
    Ok(())
}

/// Creates (or updates) the endpoint's consumer, starts its pull and its loop, and records
/// the loop for the stop.
pub(crate) async fn start(
    app: &AppHandle,
    js: &jetstream::Context,
    ep: &StreamEndpointConfig,
    default_in_flight: usize,
) -> Result<()> {
    let consumer = js.create_consumer(&ep.stream, &ep.consumer).await?;
    let ack_wait = match consumer.cached_info() {
        Some(info) if !info.config.ack_wait.is_zero() => info.config.ack_wait,
        _ => Duration::from_secs(30),
    };
    let in_flight = ep.max_in_flight.unwrap_or(default_in_flight).max(1);
    let messages = consumer.messages().batch(in_flight).await?;
    let name: Arc<str> = format!("{}/{}", ep.stream, ep.durable()).into();
    let terminal: Terminal<Message, ListenResult> = {
        let (app, handler, name) = (app.clone(), ep.handler.clone(), name.clone());
        Arc::new(move |msg| handler.settled(msg, &app, &name))
    };
    // Counted for `/metrics`, the one place that shows them.
    #[cfg(feature = "http")]
    let stats = app.runtime().count_durable(&ep.stream, ep.durable());
    #[cfg(not(feature = "http"))]
    let stats = None;
    let run = DurableLoop {
        app: app.clone(),
        stats,
        name: name.clone(),
        handler: ep.handler.clone(),
        chain: app.runtime().listen.compile(SendKind::Publish, terminal),
        slots: Arc::new(Semaphore::new(in_flight)),
        backoff: ep.backoff.clone().into(),
        ack_wait,
    };
    let task = app.spawn(app_async(run.run(messages)));
    let running = RunningEndpoint { sid: None, task };
    app.runtime().add_endpoint(format!("$JS:{name}"), running);
    Ok(())
}

/// What a durable endpoint's loop keeps.
struct DurableLoop {
    app: AppHandle,
    /// `stream/durable`, for the log.
    name: Arc<str>,
    /// Where its runs are counted (for `/metrics`), if they are.
    stats: Option<Arc<EndpointStats>>,
    handler: BoxedHandler,
    /// The listen middlewares for messages without a reply subject, if any applies.
    chain: Option<Next<Message, ListenResult>>,
    slots: Arc<Semaphore>,
    backoff: Arc<[Duration]>,
    ack_wait: Duration,
}

impl DurableLoop {
    async fn run(self, mut messages: jetstream::Messages) {
        let runtime = self.app.runtime();
        loop {
            let slot = async { Some(self.slots.acquire_arc().await) };
            let Some(slot) = slot.or(stopping(&self.app)).await else {
                return self.give_back(messages).await;
            };
            let next = async { Some(messages.next().await) };
            let msg = match next.or(stopping(&self.app)).await {
                None => return self.give_back(messages).await,
                Some(Some(Ok(msg))) => msg,
                Some(Some(Err(e))) => {
                    self.ended(&e);
                    return;
                }
                Some(None) => return,
            };
            let guard = runtime.enter();
            let (app, rest) = (self.app.clone(), self.handle(msg));
            app.spawn(app_async(async move {
                let _guard = guard;
                let _slot = slot;
                rest.await;
            }))
            .detach();
        }
    }

    /// At the stop: the messages pulled but not started go back to the server at once
    /// (`nak`), so another instance gets them without waiting for their ack wait; the pull
    /// ends with `messages`. (Messages still on their way then come back after the ack
    /// wait.)
    async fn give_back(&self, mut messages: jetstream::Messages) {
        while let Some(Some(Ok(msg))) = smol::future::poll_once(messages.next()).await {
            if let Err(e) = msg.nak().await {
                log_at!(
                    Warn,
                    "panini",
                    "cannot give a message of {} back: {e}",
                    self.name
                );
            }
        }
    }

    /// The consumer's pull ended for good: say so, loudly (the endpoint takes nothing more).
    fn ended(&self, e: &Error) {
        if self.app.runtime().is_stopping() || matches!(e, Error::Closed) {
            return;
        }
        log_at!(
            Error,
            "panini",
            "durable endpoint {} stopped taking messages: {e}",
            self.name
        );
    }

    /// One message's run and acknowledgement.
    fn handle(&self, mut msg: jetstream::Message) -> impl std::future::Future<Output = ()> {
        let delivered = msg
            .info()
            .map(|i: MessageInfo<'_>| i.delivered)
            .unwrap_or(1);
        let content = msg.take_content();
        let scope = RunScope::of(&content, &self.name);
        let start = || -> Boxed<ListenResult> {
            match &self.chain {
                Some(chain) => {
                    let chain = chain.clone();
                    Box::pin(async move { chain.start(content).await })
                }
                None => self.handler.settled(content, &self.app, &self.name),
            }
        };
        let run = match &scope {
            Some(scope) => scope.enter(start),
            None => start(),
        };
        let (name, backoff, ack_wait) = (self.name.clone(), self.backoff.clone(), self.ack_wait);
        let (stats, started) = (self.stats.clone(), Instant::now());
        traced(scope, async move {
            let run = AssertUnwindSafe(run).catch_unwind();
            let keep_alive = async {
                let mut every = smol::Timer::interval(ack_wait / 2);
                loop {
                    every.next().await;
                    if let Err(e) = msg.in_progress().await {
                        log_at!(Warn, "panini", "in_progress on {name}: {e}");
                    }
                }
            };
            let result = run.or(keep_alive).await;
            let reply = result
                .unwrap_or_else(|panic| settle(Outcome::middleware_panicked(panic), &name, false));
            if let Some(stats) = &stats {
                stats.record(started.elapsed(), &reply);
            }
            let acked = match failure(&reply) {
                None => msg.ack().await,
                Some((code, _)) if code < 500 => msg.term().await,
                Some(_) => {
                    let delay = delay_for(&backoff, delivered);
                    msg.nak_with_delay(delay).await
                }
            };
            if let Err(e) = acked {
                log_at!(
                    Warn,
                    "panini",
                    "cannot acknowledge a message of {name}: {e}"
                );
            }
        })
    }
}

/// Completes with `None` once the app's stop has begun.
async fn stopping<T>(app: &AppHandle) -> Option<T> {
    app.runtime().stop_begun().await;
    None
}

/// The redelivery delay after the `delivered`-th delivery failed.
fn delay_for(backoff: &[Duration], delivered: u64) -> Duration {
    let i = usize::try_from(delivered.saturating_sub(1)).unwrap_or(usize::MAX);
    backoff
        .get(i)
        .or(backoff.last())
        .copied()
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_follows_the_deliveries_and_its_last_value_repeats() {
        let b = [Duration::from_secs(1), Duration::from_secs(5)];
        assert_eq!(delay_for(&b, 1), Duration::from_secs(1));
        assert_eq!(delay_for(&b, 2), Duration::from_secs(5));
        assert_eq!(delay_for(&b, 9), Duration::from_secs(5));
        assert_eq!(delay_for(&[], 3), Duration::ZERO);
    }
}
