//! Endpoints at run time: one loop per subscription that hands each message to its own
//! task (at most `max_concurrency` at once), runs the listen middlewares and the handler,
//! and publishes the reply. Also the [`Tracker`] of handlers in flight, for shutdown.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use smol::future::{self, Boxed, FutureExt};
use smol::lock::{Semaphore, SemaphoreGuardArc};
use smol::stream::StreamExt;

use crate::client::{lock, Subscription};
use crate::error::{Error, Result};
use crate::handle::{app_async, AppHandle};
use crate::handler::{error_reply, BoxedHandler, Outcome, Step};
use crate::log::log_at;
use crate::message::Message;
use crate::middleware::{ListenResult, Terminal};
use crate::sync::{WaitGroup, WaitGuard};

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
        slots: Arc::new(Semaphore::new(ep.max_concurrency.max(1))),
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
/// message) and its slots: `max_concurrency` permits, one held by each run in a task of
/// its own.
struct Loop {
    app: AppHandle,
    pattern: Arc<str>,
    slots: Arc<Semaphore>,
}

impl Loop {
    /// Runs the rest of a handler run in a task of its own, holding the slot the loop took
    /// for it; shutdown waits for it through the app's tracker.
    fn spawn_limited(
        &self,
        slot: SemaphoreGuardArc,
        rest: impl Future<Output = ()> + Send + 'static,
    ) {
        let guard = self.app.inner.tracker.enter();
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
        // `max_concurrency` bodies run at once. A run that finishes in its first poll
        // gives the slot back at once; one still pending keeps it in its own task.
        let slot = ctx.slots.acquire_arc().await;
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
                drop(slot);
                let reply = settle(outcome, &ctx.pattern, reply_to.is_some());
                send_reply(&ctx.app, reply_to, reply, sub.pending() == 0).await;
            }
            Step::Pending(outcome) => {
                let (app, pattern) = (ctx.app.clone(), ctx.pattern.clone());
                let rest = async move {
                    let reply = settle(outcome.await, &pattern, reply_to.is_some());
                    send_reply(&app, reply_to, reply, false).await;
                };
                ctx.spawn_limited(slot, rest);
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
        let slot = ctx.slots.acquire_arc().await;
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
        ctx.spawn_limited(slot, work);
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
pub(crate) struct Tracker(WaitGroup);

impl Tracker {
    /// Counts a handler run until the guard is dropped.
    pub(crate) fn enter(&self) -> WaitGuard {
        self.0.enter()
    }

    /// How many handlers run.
    pub(crate) fn running(&self) -> usize {
        self.0.count()
    }

    /// Waits until no handler runs, up to `limit`; returns how many still run.
    pub(crate) async fn wait_idle(&self, limit: Duration) -> usize {
        self.0
            .wait()
            .or(async {
                smol::Timer::after(limit).await;
            })
            .await;
        self.running()
    }
}
