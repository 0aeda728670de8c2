//! Endpoints at run time: one loop per subscription and per thread of the app's executor,
//! the same for every endpoint. Each message starts its run in a loop (through the listen
//! middlewares compiled for its kind, or straight into the handler's reusing runner when
//! none applies), polled once there; a run that is still pending goes on in a task of its
//! own, holding one of the endpoint's `max_concurrency` slots. With more than one thread,
//! the endpoint's loops read the one subscription's queue side by side (each message goes
//! to one of them), so that handlers that compute run on every thread, while a run that
//! finishes at once still costs no task and no hop of its own. A run that finishes at once
//! allocates nothing, with or without middlewares (the outermost hook's future and the
//! handler's reuse their boxes). The replies of a burst are written together (see
//! [`EndpointLoop::reply_write`]). With the Service API on, the runs that finish inside
//! one poll are counted as one batch (see [`Batch`]). A run of a traced message (a W3C `traceparent`) has its trace scope
//! entered around its start and every later poll. Also `subscribe_new_subject` and
//! `unsubscribe_subject`, which start and stop endpoints while the app runs.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use smol::future::{self, Boxed, FutureExt};
use smol::lock::{Semaphore, SemaphoreGuardArc};

use super::context::{app_async, AppHandle};
use super::middleware::{ChainRunner, End, ListenResult, SendKind};
use super::reply::{error_reply, settle, Outcome};
use super::runner::{BoxedHandler, Handler, Runner, Step};
use super::runtime::RunningEndpoint;
use super::stats::{failure, EndpointStats};
use super::trace::{traced, RunScope};
use crate::client::{Lane, ReplyWrite, Subscription};
use crate::error::{Error, Result};
use crate::log::log_at;
use crate::message::Message;

/// One subscription and what handles it.
pub(crate) struct Endpoint {
    pub(crate) subject: String,
    pub(crate) queue: Option<String>,
    pub(crate) handler: BoxedHandler,
    pub(crate) max_concurrency: usize,
}

/// Subscribes, spawns the endpoint's loop and records it under its subject (for
/// `unsubscribe_subject` and the stop).
pub(crate) async fn start(app: &AppHandle, ep: Endpoint) -> Result<()> {
    let client = &app.inner.client;
    let sub = match &ep.queue {
        Some(q) => client.queue_subscribe(&ep.subject, q).await?,
        None => client.subscribe(&ep.subject).await?,
    };
    let sid = sub.sid();
    let subject = ep.subject.clone();
    let stats = app.runtime().count(&ep.subject, ep.queue.as_deref());
    let task = app.spawn(app_async(run_endpoint(app.clone(), sub, ep, stats)));
    app.runtime().add_endpoint(
        subject,
        RunningEndpoint {
            sid: Some(sid),
            task,
        },
    );
    Ok(())
}

impl AppHandle {
    /// Subscribes `handler` to `subject` while the app runs, with the app's queue group
    /// (or none); messages go through the listen middlewares as for `listen`.
    ///
    /// ```no_run
    /// use panini::{App, AppHandle, Msg};
    /// use serde_json::Value;
    ///
    /// let mut app = App::new("late_binder");
    /// app.task(|app: AppHandle| async move {
    ///     app.subscribe_new_subject("orders.created", |msg: Msg<Value>| async move {
    ///         println!("new order: {}", msg.data);
    ///     })
    ///     .await?;
    ///     Ok::<(), panini::Error>(())
    /// });
    /// app.start();
    /// ```
    pub async fn subscribe_new_subject<T: 'static, H: Handler<T>>(
        &self,
        subject: &str,
        handler: H,
    ) -> Result<()> {
        let queue = self.runtime().queue_group.clone();
        self.subscribe_new_subject_queue(subject, queue.as_deref(), handler)
            .await
    }

    /// [`subscribe_new_subject`](AppHandle::subscribe_new_subject) with an explicit queue
    /// group (`None`: a plain subscription).
    pub async fn subscribe_new_subject_queue<T: 'static, H: Handler<T>>(
        &self,
        subject: &str,
        queue: Option<&str>,
        handler: H,
    ) -> Result<()> {
        let ep = Endpoint {
            subject: subject.to_string(),
            queue: queue.map(str::to_string),
            handler: BoxedHandler::of_async(handler),
            max_concurrency: self.runtime().max_concurrency,
        };
        start(self, ep).await?;
        // Returns once the server has the SUB, so a request sent next finds the endpoint.
        self.inner.client.flush().await
    }

    /// Unsubscribes every endpoint on exactly `subject` (from `listen` or
    /// `subscribe_new_subject`); messages already received are still handled. An unknown
    /// subject is [`Error::NotSubscribed`] (as in Panini).
    ///
    /// ```no_run
    /// # use panini::AppHandle;
    /// # async fn f(app: AppHandle) -> panini::Result<()> {
    /// app.unsubscribe_subject("orders.created").await?;
    /// # Ok(()) }
    /// ```
    pub async fn unsubscribe_subject(&self, subject: &str) -> Result<()> {
        let running = self
            .runtime()
            .remove_endpoints(subject)
            .ok_or_else(|| Error::NotSubscribed(subject.to_string()))?;
        self.runtime().uncount(subject);
        for sid in running.iter().filter_map(|ep| ep.sid) {
            self.inner.client.unsubscribe_sid(sid);
        }
        for ep in running {
            ep.task.await;
        }
        self.inner.client.flush().await
    }
}

/// How one message's run stands after the loop started it.
enum Run {
    /// Finished: the reply to send, if any (a failure was logged already).
    Done(ListenResult),
    /// A handler run with no middleware, still pending: its outcome is settled at the end.
    Handler(Boxed<Outcome>),
    /// A run through the middlewares (or traced), still pending: it ends in the reply to
    /// send.
    Settled(Boxed<ListenResult>),
}

/// A run that leaves the loop something to do: a reply to send, or its rest to run in a
/// task of its own (counted from `t0`).
struct Left {
    reply_to: Option<String>,
    run: Run,
    t0: Option<Instant>,
}

/// What an endpoint's loop keeps: the app, its subject (for log lines, with no copy per
/// message), the endpoint's slots (`max_concurrency` permits, shared by its loops, one
/// held by each run in a task of its own), the handler's runner, and the listen
/// middlewares compiled for each kind.
struct EndpointLoop {
    app: AppHandle,
    subject: Arc<str>,
    slots: Arc<Semaphore>,
    runner: Box<dyn Runner>,
    /// For messages without a reply subject; `None` when no middleware applies.
    publishes: Option<ChainRunner<Message, ListenResult>>,
    /// For requests; `None` when no middleware applies.
    requests: Option<ChainRunner<Message, ListenResult>>,
    /// Where its runs are counted (the Service API is on).
    stats: Option<Arc<EndpointStats>>,
    /// The runs of this poll not yet added to `stats`.
    batch: Batch,
    /// Replies in the client's outbox that nobody was woken to write yet.
    deferred: Deferred,
}

/// At most this many replies of a burst wait in the outbox before one is written at once
/// (with those before it)...
const MAX_DEFERRED: usize = 64;
/// ...and the first of them waits at most about this long: the next reply after it is
/// written at once. Cheap handlers fill a batch well within it; with slow ones the batch
/// is small, and a requester's window of requests in flight is not held back in the
/// outbox while the queue drains (which would leave the endpoint's other loops idle).
/// Each write wakes nats-server and the requester: with 64 requests in flight, 1 ms
/// rather than 250 µs served 1.09x the requests at 50 µs of work each, and at 500 µs cut
/// the CPU the two spend a request from about 127 to 104 µs (BENCHMARKS.md, "Replies held
/// up to 1 ms").
const MAX_HOLD: Duration = Duration::from_millis(1);

/// The replies of a burst that an endpoint loop left in the client's outbox, nobody
/// woken to write them yet: how many, and since when.
#[derive(Debug, Default)]
struct Deferred {
    count: usize,
    since: Option<Instant>,
}

impl Deferred {
    /// How a reply with `waiting` messages behind it is written; `now` is read only when
    /// the answer depends on it. A reply with none waiting is written at once (with every
    /// reply deferred before it); within a burst it goes into the outbox without waking
    /// the connection task, to be written with the others: by the reply that finds the
    /// queue empty, by the [`MAX_DEFERRED`]th, by the first one after [`MAX_HOLD`], or
    /// before the loop waits for a message or a slot ([`take`](Self::take)). Fewer,
    /// larger writes cost the server and the requester less per message; a reply waits at
    /// most about `MAX_HOLD` plus one run.
    fn decide(&mut self, waiting: usize, now: impl Fn() -> Instant) -> ReplyWrite {
        let write_now = waiting == 0
            || self.count + 1 >= MAX_DEFERRED
            || self
                .since
                .is_some_and(|since| now().duration_since(since) >= MAX_HOLD);
        if write_now {
            *self = Deferred::default();
            return ReplyWrite::Now;
        }
        if self.count == 0 {
            self.since = Some(now());
        }
        self.count += 1;
        ReplyWrite::Later
    }

    /// Forgets the deferred replies; true if there were any (the caller writes them).
    fn take(&mut self) -> bool {
        std::mem::take(self).count > 0
    }
}

/// An endpoint loop gives the bytes of the messages it takes back to its queue's bound
/// (`subscription_capacity_bytes`) together: before its poll returns (so that at one
/// thread the connection never sees them counted), every this many messages, and before
/// the run of a message that brings them to [`RELEASE_BYTES`] (so that a large message is
/// not counted while it is handled). One atomic operation per burst rather than per
/// message: at one thread, 5 % (App) to 8 % (App + one middleware) more messages per
/// second on the stream benchmark (BENCHMARKS.md).
/// With more threads the connection may see up to that many bytes more than are queued
/// (against a bound of 64 MiB by default); a message that finds the queue empty is taken
/// whatever the count says.
const RELEASE_EVERY: usize = 64;
/// See [`RELEASE_EVERY`].
const RELEASE_BYTES: usize = 64 * 1024;

/// The runs that finished inside one poll of an endpoint's loop (at most [`Batch::MAX`]),
/// counted here and added to the endpoint's shared stats once, when the poll returns: two
/// clock reads and a few atomic adds per batch rather than per message. The counters may
/// lag by one batch of each of the endpoint's loops while they are busy (none once they
/// wait); each run of a batch is taken to have lasted the batch's mean, so the
/// processing time total stays exact and the histogram gets the whole batch in the bucket
/// of the mean. Errors are counted exactly, and the last error is written when it happens.
#[derive(Debug, Default)]
struct Batch {
    /// When its first run started; `None` while there is no batch.
    started: Option<Instant>,
    runs: u64,
    errors: u64,
}

impl Batch {
    /// The most runs a batch holds before it is added to the stats (then a new one starts).
    const MAX: u64 = 64;
}

impl EndpointLoop {
    fn new(
        app: AppHandle,
        ep: &Endpoint,
        stats: Option<Arc<EndpointStats>>,
        slots: Arc<Semaphore>,
    ) -> EndpointLoop {
        let subject: Arc<str> = ep.subject.as_str().into();
        let listen = &app.runtime().listen;
        let (publishes, requests) = if listen.is_empty() {
            (None, None)
        } else {
            let end: Arc<dyn End<Message, ListenResult>> = ep.handler.end(&app, &subject);
            (
                listen.runner(SendKind::Publish, end.clone()),
                listen.runner(SendKind::Request, end),
            )
        };
        EndpointLoop {
            publishes,
            requests,
            slots,
            runner: ep.handler.runner(),
            subject,
            app,
            stats,
            batch: Batch::default(),
            deferred: Deferred::default(),
        }
    }

    /// How the reply of a run that finished in the loop is written, `waiting` messages
    /// behind it (see [`Deferred::decide`]).
    fn reply_write(&mut self, waiting: usize) -> ReplyWrite {
        self.deferred.decide(waiting, Instant::now)
    }

    /// The loop is about to wait (or end): the batch goes to the stats and the deferred
    /// replies are written.
    fn before_wait(&mut self) {
        self.flush(false);
        self.flush_replies();
    }

    /// Writes the deferred replies, if any: the loop is about to wait.
    fn flush_replies(&mut self) {
        if self.deferred.take() {
            self.app.inner.client.flush_deferred();
        }
    }

    /// Starts the run of the message in `slot` (taken from there), in this task's context.
    /// `is_request` and `traced` describe it. With the Service API on, the first run of a
    /// batch reads the clock (see [`Batch`]).
    #[inline(always)]
    fn start<const CHAINS: bool>(
        &mut self,
        slot: &mut Option<Message>,
        is_request: bool,
        traced: bool,
        cx: &mut Context<'_>,
    ) -> Run {
        if self.stats.is_some() && self.batch.started.is_none() {
            self.batch.started = Some(Instant::now());
        }
        // Most runs start here: in the loop, with no trace scope to enter.
        if !traced {
            return self.start_inline::<CHAINS>(slot, is_request, cx);
        }
        match slot.take() {
            Some(msg) => self.start_run(msg, cx),
            None => Run::Done(None), // not reached: the loop passes its message
        }
    }

    /// Starts the run of the message in `slot` in the loop, with no trace scope: the
    /// handler's runner or the listen chain takes it from there (no copy of it on the
    /// way), polled once here; a run that finished with its reply needs no settling.
    #[inline(always)]
    fn start_inline<const CHAINS: bool>(
        &mut self,
        slot: &mut Option<Message>,
        is_request: bool,
        cx: &mut Context<'_>,
    ) -> Run {
        let chain = match (CHAINS, is_request) {
            (false, _) => None,
            (true, true) => self.requests.as_mut(),
            (true, false) => self.publishes.as_mut(),
        };
        let step = match chain {
            None => self.runner.start_taking(slot, &self.app, cx),
            Some(chain) => return start_chain(chain, slot, cx, &self.subject, is_request),
        };
        match step {
            Step::Done(Outcome::Reply(reply)) => Run::Done(reply),
            Step::Done(failed) => Run::Done(settle(failed, &self.subject, is_request)),
            Step::Pending(rest) => Run::Handler(rest),
        }
    }

    /// Counts a run that finished in this poll (its reply is `reply`); a full batch is
    /// added to the stats at once.
    #[inline(always)]
    fn count(&mut self, reply: &ListenResult) {
        let Some(stats) = &self.stats else { return };
        self.batch.runs += 1;
        if let Some((code, description)) = failure(reply) {
            stats.failed(code, description);
            self.batch.errors += 1;
        }
        if self.batch.runs >= Batch::MAX {
            let end = Instant::now();
            self.flush_at(end, false);
            self.batch.started = Some(end);
        }
    }

    /// Adds the batch to the stats before the loop's poll returns. `pending`: the batch's
    /// last run goes on in a task of its own; it gets a share of the batch's time like the
    /// others, and the returned instant is when its share began (its end counts from
    /// there).
    fn flush(&mut self, pending: bool) -> Option<Instant> {
        let started = self.batch.started?;
        if pending && self.batch.runs == 0 {
            // The run alone: it started with the batch (its end is read in its task).
            self.batch = Batch::default();
            return Some(started);
        }
        self.flush_at(Instant::now(), pending)
    }

    fn flush_at(&mut self, end: Instant, pending: bool) -> Option<Instant> {
        let (stats, started) = (self.stats.as_ref()?, self.batch.started.take()?);
        let Batch { runs, errors, .. } = std::mem::take(&mut self.batch);
        let elapsed = end.saturating_duration_since(started);
        if !pending {
            stats.record_batch(runs, errors, elapsed);
            return None;
        }
        let share = elapsed / u32::try_from(runs + 1).unwrap_or(u32::MAX);
        stats.record_batch(
            runs,
            errors,
            share * u32::try_from(runs).unwrap_or(u32::MAX),
        );
        Some(end - share)
    }

    /// Starts the run of `msg`, in this task's context, inside its trace scope if it has
    /// one; a pending run keeps the scope for its later polls.
    #[inline(never)]
    fn start_run(&mut self, msg: Message, cx: &mut Context<'_>) -> Run {
        let Some(scope) = RunScope::of(&msg, &self.subject) else {
            return self.start_plain(msg, cx);
        };
        let is_request = msg.reply.is_some();
        match scope.enter(|| self.start_plain(msg, cx)) {
            Run::Done(reply) => Run::Done(reply),
            // Settled inside the scope too, so that a failure's log line has the trace id.
            Run::Handler(rest) => {
                let subject = self.subject.clone();
                let rest = async move { settle(rest.await, &subject, is_request) };
                Run::Settled(Box::pin(traced(Some(scope), rest)))
            }
            Run::Settled(rest) => Run::Settled(Box::pin(traced(Some(scope), rest))),
        }
    }

    /// Starts the run of `msg`, in this task's context.
    fn start_plain(&mut self, msg: Message, cx: &mut Context<'_>) -> Run {
        let is_request = msg.reply.is_some();
        self.start_inline::<true>(&mut Some(msg), is_request, cx)
    }

    /// One poll of the loop: takes messages off `sub` and starts their runs, as long as
    /// they leave nothing to do (no reply to send, nothing pending); returns the first run
    /// that does, with its reply subject and, counted, when it started. `CHAINS`: some
    /// listen middleware applies to this endpoint.
    #[inline(always)]
    fn poll_batch<const CHAINS: bool>(
        &mut self,
        sub: &mut impl Queue,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Left>> {
        // The bytes of the messages taken in this poll, given back to the queue's bound
        // together (see `RELEASE_EVERY`).
        let mut taken = 0;
        let mut unreleased = 0;
        let polled = loop {
            // The message stays where the queue put it; the run takes it from there.
            let mut polled = sub.poll_taking(cx, &mut taken);
            let slot = match &mut polled {
                Poll::Ready(slot) => slot,
                Poll::Pending => {
                    self.before_wait();
                    break Poll::Pending;
                }
            };
            let Some(msg) = slot.as_ref() else {
                self.before_wait();
                break Poll::Ready(None);
            };
            unreleased += 1;
            if unreleased == RELEASE_EVERY || taken >= RELEASE_BYTES {
                sub.release(std::mem::take(&mut taken));
                unreleased = 0;
            }
            let (reply_to, traced) = (msg.reply.clone(), may_trace(msg));
            match self.start::<CHAINS>(slot, reply_to.is_some(), traced, cx) {
                Run::Done(reply) => {
                    self.count(&reply);
                    match (reply, reply_to) {
                        (Some(reply), Some(to)) => {
                            self.flush(false);
                            break Poll::Ready(Some(Left {
                                reply_to: Some(to),
                                run: Run::Done(Some(reply)),
                                t0: None,
                            }));
                        }
                        // Nothing to send: the next message's run starts in this poll.
                        (None, None) => {}
                        (reply, to) => drop((reply, to)),
                    }
                }
                run => {
                    let t0 = self.flush(true);
                    break Poll::Ready(Some(Left { reply_to, run, t0 }));
                }
            }
        };
        sub.release(taken);
        polled
    }

    /// Runs the rest of a run in a task of its own, holding the slot the loop took for it;
    /// the stop waits for it through the runtime's count of runs in flight.
    fn finish_apart(
        &self,
        slot: SemaphoreGuardArc,
        run: Run,
        reply_to: Option<String>,
        t0: Option<Instant>,
    ) {
        let guard = self.app.runtime().enter();
        let (app, subject, stats) = (self.app.clone(), self.subject.clone(), self.stats.clone());
        let is_request = reply_to.is_some();
        let rest = async move {
            // Released on drop, slot first: even a run that unwinds gives its slot back.
            let _guard = guard;
            let _slot = slot;
            let reply =
                match run {
                    Run::Done(reply) => reply,
                    Run::Handler(rest) => settle(rest.await, &subject, is_request),
                    Run::Settled(rest) => AssertUnwindSafe(rest)
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|panic| {
                            let outcome = Outcome::middleware_panicked(panic);
                            settle(outcome, &subject, is_request)
                        }),
                };
            if let (Some(stats), Some(t0)) = (stats, t0) {
                stats.record(t0.elapsed(), &reply);
            }
            send_reply(&app, reply_to, reply, ReplyWrite::Wake).await;
        };
        self.app.spawn(app_async(rest)).detach();
    }
}

/// Starts the run of the message in `msg` (taken from there) through a listen chain and
/// polls it once in `cx`.
#[inline(always)]
fn start_chain(
    chain: &mut ChainRunner<Message, ListenResult>,
    msg: &mut Option<Message>,
    cx: &mut Context<'_>,
    subject: &str,
    is_request: bool,
) -> Run {
    // The handler's own panics are caught at the end of the chain; one caught here came
    // from a listen middleware, and gets the reply a panicking handler gets (the log says
    // which it was).
    let mut rest = None;
    let started = std::panic::catch_unwind(AssertUnwindSafe(|| chain.start(msg, &mut rest, cx)));
    match (started, rest) {
        (Ok(Poll::Ready(reply)), _) => Run::Done(reply),
        (Ok(Poll::Pending), Some(rest)) => Run::Settled(rest),
        (Ok(Poll::Pending), None) => Run::Done(None), // not reached: a pending start leaves its rest
        (Err(panic), _) => {
            let outcome = Outcome::middleware_panicked(panic);
            Run::Done(settle(outcome, subject, is_request))
        }
    }
}

/// Whether a message may have a trace scope: only one with headers (a `traceparent`),
/// unless the `tracing` feature makes a span for every run (see `RunScope::of`).
fn may_trace(msg: &Message) -> bool {
    cfg!(feature = "tracing") || msg.headers.is_some()
}

/// The loops of one endpoint, one per thread of the app's executor, until its
/// subscription ends and its queue is handled.
async fn run_endpoint(
    app: AppHandle,
    sub: Subscription,
    ep: Endpoint,
    stats: Option<Arc<EndpointStats>>,
) {
    let slots = Arc::new(Semaphore::new(ep.max_concurrency.max(1)));
    let lanes: Vec<_> = (1..app.runtime().executor.threads())
        .map(|_| {
            let lane = EndpointLoop::new(app.clone(), &ep, stats.clone(), slots.clone());
            app.spawn(app_async(run_loop(lane, sub.lane())))
        })
        .collect();
    run_loop(EndpointLoop::new(app, &ep, stats, slots), sub).await;
    for lane in lanes {
        lane.await;
    }
}

/// A reader of an endpoint's queue: its subscription, or one of its lanes.
trait Queue {
    /// Messages waiting in the queue.
    fn pending(&self) -> usize;

    /// The next message; its bytes go to `taken` (see [`Subscription::poll_taking`]).
    fn poll_taking(&mut self, cx: &mut Context<'_>, taken: &mut usize) -> Poll<Option<Message>>;

    /// Gives taken bytes back to the queue's bound.
    fn release(&self, bytes: usize);
}

impl Queue for Subscription {
    fn pending(&self) -> usize {
        Subscription::pending(self)
    }

    fn poll_taking(&mut self, cx: &mut Context<'_>, taken: &mut usize) -> Poll<Option<Message>> {
        Subscription::poll_taking(self, cx, taken)
    }

    fn release(&self, bytes: usize) {
        Subscription::release(self, bytes);
    }
}

impl Queue for Lane {
    fn pending(&self) -> usize {
        Lane::pending(self)
    }

    fn poll_taking(&mut self, cx: &mut Context<'_>, taken: &mut usize) -> Poll<Option<Message>> {
        Lane::poll_taking(self, cx, taken)
    }

    fn release(&self, bytes: usize) {
        Lane::release(self, bytes);
    }
}

/// One loop of an endpoint, until its queue ends.
async fn run_loop(mut ep: EndpointLoop, mut sub: impl Queue) {
    // Two copies of the loop's poll: the one for an endpoint with no listen middleware
    // has no code for them.
    let chained = ep.publishes.is_some() || ep.requests.is_some();
    loop {
        // No run starts, not even to its first await, until a slot is free: at most
        // `max_concurrency` bodies run at once. A run that finishes in its first poll
        // gives the slot back at once; one still pending keeps it in its own task.
        let slot = match ep.slots.try_acquire_arc() {
            Some(slot) => slot,
            None => {
                ep.flush_replies();
                ep.slots.acquire_arc().await
            }
        };
        // Runs that leave nothing to do (no reply to send) are handled inside one poll,
        // message after message, as the queue yields them.
        let next = future::poll_fn(|cx| match chained {
            false => ep.poll_batch::<false>(&mut sub, cx),
            true => ep.poll_batch::<true>(&mut sub, cx),
        });
        let Some(Left { reply_to, run, t0 }) = next.await else {
            return;
        };
        match run {
            Run::Done(reply) => {
                drop(slot);
                let write = ep.reply_write(sub.pending());
                send_reply(&ep.app, reply_to, reply, write).await;
            }
            pending => ep.finish_apart(slot, pending, reply_to, t0),
        }
    }
}

/// Publishes the reply of a request, if there is one to send (nothing for a stream message
/// or an empty reply), written as `write` says. A reply that cannot
/// be sent as it is (larger than the server's `max_payload`, headers that cannot be
/// encoded) is logged and answered with a small 500 error reply instead, so the requester
/// learns of it at once rather than by its timeout.
async fn send_reply(
    app: &AppHandle,
    reply_to: Option<String>,
    reply: ListenResult,
    write: ReplyWrite,
) {
    let (Some(to), Some(reply)) = (reply_to, reply) else {
        return;
    };
    let client = &app.inner.client;
    let sent = client
        .publish_reply(&to, reply.headers.as_ref(), &reply.payload, write)
        .await;
    match sent {
        Ok(()) => {}
        Err(e @ (Error::MaxPayload { .. } | Error::InvalidHeader)) => {
            log_at!(Error, "panini", "cannot send the reply to {to}: {e}");
            let instead = error_reply(500, &format!("cannot send the reply: {e}"));
            let sent = client
                .publish_reply(&to, instead.headers.as_ref(), &instead.payload, write)
                .await;
            if let Err(e) = sent {
                log_at!(Error, "panini", "cannot send the error reply to {to}: {e}");
            }
        }
        Err(e) => log_at!(Error, "panini", "cannot send the reply to {to}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_defers_its_replies_until_the_queue_empties_the_64th_or_the_hold() {
        let t0 = Instant::now();
        let at = |us: u64| move || t0 + Duration::from_micros(us);
        let hold = MAX_HOLD.as_micros() as u64;
        let mut d = Deferred::default();
        // Nothing behind it: written at once, whatever the clock.
        assert_eq!(d.decide(0, at(0)), ReplyWrite::Now);
        // A burst: deferred until the hold has passed since the first...
        assert_eq!(d.decide(5, at(0)), ReplyWrite::Later);
        assert_eq!(d.decide(4, at(hold - 1)), ReplyWrite::Later);
        assert_eq!(d.decide(3, at(hold)), ReplyWrite::Now);
        // ...and the hold counts from the first reply after a write.
        assert_eq!(d.decide(3, at(hold + 10)), ReplyWrite::Later);
        assert_eq!(d.decide(2, at(2 * hold)), ReplyWrite::Later);
        assert_eq!(d.decide(1, at(2 * hold + 10)), ReplyWrite::Now);
        // The queue empties: written at once with the ones before.
        assert_eq!(d.decide(7, at(0)), ReplyWrite::Later);
        assert_eq!(d.decide(0, at(1)), ReplyWrite::Now);
        // At most MAX_DEFERRED replies wait, however quick.
        let mut writes = 0;
        for _ in 0..MAX_DEFERRED * 3 {
            if d.decide(100, at(0)) == ReplyWrite::Now {
                writes += 1;
            }
        }
        assert_eq!(writes, 3);
        // Before the loop waits it writes what was deferred, once.
        assert_eq!(d.decide(9, at(0)), ReplyWrite::Later);
        assert!(d.take());
        assert!(!d.take());
        assert_eq!(d.decide(9, at(hold * 5)), ReplyWrite::Later);
    }
}
