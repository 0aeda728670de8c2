//! Endpoints at run time: one loop per subscription that hands each message to its own
//! task (at most `max_concurrency` at once), runs the listen middlewares and the handler,
//! and publishes the reply. Also the [`Tracker`] of handlers in flight, for shutdown.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use event_listener::Event as Notify;
use futures_lite::future::Boxed;
use futures_lite::{future, FutureExt, StreamExt};

use crate::client::{lock, Subscription};
use crate::error::{Error, Result};
use crate::handle::{app_async, AppHandle};
use crate::handler::{error_reply, BoxedHandler, Outcome, Step};
use crate::log::log_at;
use crate::message::Message;
use crate::middleware::{ListenResult, Terminal};

/// One subscription and what handles it.
pub(crate) struct Endpoint {
    pub(crate) subject: String,
    pub(crate) queue: Option<String>,
    pub(crate) handler: BoxedHandler,
    pub(crate) max_concurrency: usize,
}

/// A running endpoint: its subscription id and its loop, which ends once the
/// subscription is unsubscribed and its queue is handled.
pub(crate) struct Running {
    pub(crate) sid: u64,
    pub(crate) task: smol::Task<()>,
}

/// Subscribes, spawns the endpoint's loop and records it under its subject (for
/// `unsubscribe_subject` and shutdown).
pub(crate) async fn start(app: &AppHandle, ep: Endpoint) -> Result<()> {
    let client = &app.inner.client;
    let sub = match &ep.queue {
        Some(q) => client.queue_subscribe(&ep.subject, q).await?,
        None => client.subscribe(&ep.subject).await?,
    };
    let sid = sub.sid();
    let subject = ep.subject.clone();
    let task = app.spawn(app_async(serve(app.clone(), sub, ep)));
    let mut running = lock(&app.inner.endpoints);
    running
        .entry(subject)
        .or_default()
        .push(Running { sid, task });
    Ok(())
}

async fn serve(app: AppHandle, sub: Subscription, ep: Endpoint) {
    let ctx = Loop {
        pattern: ep.subject.as_str().into(),
        limit: ep.max_concurrency.max(1),
        slots: Arc::new(Slots::default()),
        app,
    };
    // With more than one thread every run gets a task of its own (`serve_chained`), so
    // that CPU-bound handlers of one endpoint spread over the threads.
    if ctx.app.inner.listen.is_empty() && !ctx.app.inner.runtime.is_parallel() {
        serve_direct(ctx, sub, ep.handler).await
    } else {
        serve_chained(ctx, sub, ep.handler).await
    }
}

/// What an endpoint's loop keeps: the app, its subject (for log lines, with no copy per
/// message) and its limit of runs in tasks of their own.
struct Loop {
    app: AppHandle,
    pattern: Arc<str>,
    limit: usize,
    slots: Arc<Slots>,
}

impl Loop {
    /// Runs the rest of a handler run in a task of its own, once one of the endpoint's
    /// slots is free; shutdown waits for it through the app's tracker.
    async fn spawn_limited(&self, rest: impl Future<Output = ()> + Send + 'static) {
        self.slots.acquire(self.limit).await;
        let guard = self.app.inner.tracker.enter();
        let slot = Slot(self.slots.clone());
        self.app
            .spawn(async move {
                // Released on drop, slot first: even a run that unwinds gives its slot back.
                let _guard = guard;
                let _slot = slot;
                app_async(rest).await;
            })
            .detach();
    }
}

/// The loop without middleware. Most handlers finish without waiting on anything: the
/// runner polls each one once, in this task, as soon as its message is taken off the
/// subscription (which costs no task and, with the runner's reuse, no allocation). Only
/// a run that is still pending gets a task of its own.
async fn serve_direct(ctx: Loop, mut sub: Subscription, handler: BoxedHandler) {
    let mut runner = handler.runner();
    loop {
        // No handler starts, not even to its first await, until a slot is free: at most
        // `limit` bodies run at once (a run that finishes in its first poll takes none).
        ctx.slots.wait_free(ctx.limit).await;
        // Runs that leave nothing to do (no reply to send, nothing to log) are handled
        // inside one poll, message after message, as the queue yields them.
        let next = future::poll_fn(|cx| loop {
            let msg = match Pin::new(&mut sub).poll_next(cx) {
                Poll::Ready(Some(msg)) => msg,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            let reply_to = msg.reply.clone();
            match runner.start(msg, &ctx.app, cx) {
                Step::Done(Outcome::Reply(reply)) if reply_to.is_none() || reply.is_none() => {}
                step => return Poll::Ready(Some((reply_to, step))),
            }
        });
        let Some((reply_to, step)) = next.await else {
            return;
        };
        match step {
            Step::Done(outcome) => {
                let reply = settle(outcome, &ctx.pattern, reply_to.is_some());
                send_reply(&ctx.app, reply_to, reply, sub.pending() == 0).await;
            }
            Step::Pending(outcome) => {
                let (app, pattern) = (ctx.app.clone(), ctx.pattern.clone());
                let rest = async move {
                    let reply = settle(outcome.await, &pattern, reply_to.is_some());
                    send_reply(&app, reply_to, reply, false).await;
                };
                ctx.spawn_limited(rest).await;
            }
        }
    }
}

/// The loop with listen middlewares: each message runs through the chain (made once for
/// the loop) and the handler, polled once here and given a task of its own only if still
/// pending.
async fn serve_chained(ctx: Loop, mut sub: Subscription, handler: BoxedHandler) {
    let (app, pattern) = (ctx.app.clone(), ctx.pattern.clone());
    let terminal: Terminal<Message, ListenResult> = Arc::new(move |msg: Message| {
        let (app, handler, pattern) = (app.clone(), handler.clone(), pattern.clone());
        Box::pin(async move { run_handler(&handler, &pattern, msg, app).await })
    });
    let chain = ctx.app.inner.listen.with_terminal(terminal);
    loop {
        // As in `serve_direct`: a free slot before the next message is started at all.
        ctx.slots.wait_free(ctx.limit).await;
        let Some(msg) = sub.next().await else {
            break;
        };
        let (app, chain, pattern) = (ctx.app.clone(), chain.clone(), ctx.pattern.clone());
        let mut work: Boxed<()> = Box::pin(async move {
            let reply_to = msg.reply.clone();
            // The handler's own panics are caught by its runner; one that gets here came
            // from a listen middleware, and gets the reply a panicking handler gets.
            let reply = AssertUnwindSafe(chain.run(msg))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    let outcome = Outcome::middleware_panicked(panic);
                    settle(outcome, &pattern, reply_to.is_some())
                });
            send_reply(&app, reply_to, reply, false).await;
        });
        if !ctx.app.inner.runtime.is_parallel() && future::poll_once(&mut work).await.is_some() {
            continue;
        }
        ctx.spawn_limited(work).await;
    }
}

/// Handlers of one endpoint still running in their own task, with a wait at the limit.
#[derive(Default)]
struct Slots {
    busy: AtomicUsize,
    freed: Notify,
}

impl Slots {
    /// Waits until fewer than `limit` are busy, then takes a slot. Only the endpoint's loop
    /// calls it, so check-then-add cannot race another taker.
    async fn acquire(&self, limit: usize) {
        loop {
            if self.busy.load(Ordering::Acquire) < limit {
                self.busy.fetch_add(1, Ordering::AcqRel);
                return;
            }
            let listener = self.freed.listen();
            if self.busy.load(Ordering::Acquire) < limit {
                continue;
            }
            listener.await;
        }
    }

    /// Waits until fewer than `limit` are busy, taking nothing.
    async fn wait_free(&self, limit: usize) {
        while self.busy.load(Ordering::Acquire) >= limit {
            let listener = self.freed.listen();
            if self.busy.load(Ordering::Acquire) < limit {
                break;
            }
            listener.await;
        }
    }

    fn release(&self) {
        self.busy.fetch_sub(1, Ordering::AcqRel);
        self.freed.notify(1);
    }
}

/// One taken slot of an endpoint, given back on drop.
struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Publishes the reply of a request, if there is one to send (nothing for a stream message
/// or an empty reply); `now` writes it at once if the writer is idle. A reply that cannot
/// be sent as it is (larger than the server's `max_payload`, headers that cannot be
/// encoded) is logged and answered with a small 500 error reply instead, so the requester
/// learns of it at once rather than by its timeout.
async fn send_reply(app: &AppHandle, reply_to: Option<String>, reply: ListenResult, now: bool) {
    let (Some(to), Some(reply)) = (reply_to, reply) else {
        return;
    };
    let client = &app.inner.client;
    let sent = client
        .publish_reply(&to, reply.headers.as_ref(), &reply.payload, now)
        .await;
    match sent {
        Ok(()) => {}
        Err(e @ (Error::MaxPayload { .. } | Error::InvalidHeader)) => {
            log_at!(Error, "panini", "cannot send the reply to {to}: {e}");
            let instead = error_reply(500, &format!("cannot send the reply: {e}"));
            let sent = client
                .publish_reply(&to, instead.headers.as_ref(), &instead.payload, now)
                .await;
            if let Err(e) = sent {
                log_at!(Error, "panini", "cannot send the error reply to {to}: {e}");
            }
        }
        Err(e) => log_at!(Error, "panini", "cannot send the reply to {to}: {e}"),
    }
}

/// Runs the handler, logs a failure, and turns the outcome into the reply to send.
async fn run_handler(
    handler: &BoxedHandler,
    pattern: &str,
    msg: Message,
    app: AppHandle,
) -> ListenResult {
    let is_request = msg.reply.is_some();
    let outcome = handler.call(msg, app).await;
    settle(outcome, pattern, is_request)
}

/// Logs a failure (naming the endpoint's subject, which costs no copy per message) and
/// turns the outcome into the reply to send.
fn settle(outcome: Outcome, subject: &str, is_request: bool) -> ListenResult {
    if let Outcome::Failed { code, detail, .. } = &outcome {
        let kind = if is_request { "request" } else { "message" };
        if *code < 500 {
            // The sender's fault (a payload that does not decode): worth a warning, not
            // an error of this service.
            log_at!(
                Warn,
                "panini",
                "{kind} on {subject} refused ({code}): {detail}"
            );
        } else {
            log_at!(
                Error,
                "panini",
                "{kind} on {subject} failed ({code}): {detail}"
            );
        }
    }
    outcome.into_wire()
}

/// Counts handlers in flight, so that shutdown can wait for them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tracker {
    inner: Arc<TrackerInner>,
}

#[derive(Debug, Default)]
struct TrackerInner {
    running: AtomicUsize,
    idle: Notify,
}

/// Held while a handler runs.
pub(crate) struct Guard(Arc<TrackerInner>);

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify(usize::MAX);
        }
    }
}

impl Tracker {
    pub(crate) fn enter(&self) -> Guard {
        self.inner.running.fetch_add(1, Ordering::AcqRel);
        Guard(self.inner.clone())
    }

    pub(crate) fn running(&self) -> usize {
        self.inner.running.load(Ordering::Acquire)
    }

    /// Waits until no handler runs, up to `limit`; returns how many still run.
    pub(crate) async fn wait_idle(&self, limit: Duration) -> usize {
        let wait = async {
            loop {
                let listener = self.inner.idle.listen();
                if self.running() == 0 {
                    return;
                }
                listener.await;
            }
        };
        wait.or(async {
            async_io::Timer::after(limit).await;
        })
        .await;
        self.running()
    }
}
