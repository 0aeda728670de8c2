//! How an app stops: the SIGINT/SIGTERM watchers, and the graceful stop that every end of
//! a run goes through once NATS is connected (a signal, [`AppHandle::shutdown`], a failed
//! start, NATS lost for good).
//!
//! The graceful stop, all of it bounded by one deadline, `drain_timeout` from its start:
//! 1. interval tasks are cancelled; HTTP stops accepting and NATS subscriptions are
//!    unsubscribed, at once;
//! 2. handlers, endpoint queues and HTTP requests in flight finish (NATS still open, so
//!    they can publish and request);
//! 3. the `on_stop` hooks run, in order (a failure is logged and the next still runs);
//! 4. NATS is flushed and closed.
//!
//! Whatever is still running at the deadline is left behind and logged. Steps 2 and 3 end
//! a tenth of the drain timeout before the deadline, so the final flush has time even when
//! a handler never finishes.
//!
//! [`AppHandle::shutdown`]: crate::AppHandle::shutdown

use std::future::Future;
use std::time::{Duration, Instant};

use async_signal::{Signal, Signals};
use smol::future::FutureExt;
use smol::stream::StreamExt;

use super::context::AppHandle;
use super::tasks::TaskFn;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::log::log_at;

/// Watches SIGINT and SIGTERM from the moment it is called (not from the first poll, so
/// a signal that comes during start-up is not lost to the default action), and returns a
/// future that completes on the first of them. If signals cannot be watched, it logs why
/// and the future never completes (the process then stops the default way).
///
/// [`App::start`](crate::App::start) watches more: a second signal during the graceful
/// stop ends the process at once. Use this with [`App::run_until`](crate::App::run_until).
///
/// ```no_run
/// # smol::block_on(async {
/// panini::App::new("svc").run_until(panini::shutdown::signal()).await
/// # });
/// ```
pub fn signal() -> impl Future<Output = ()> {
    let mut watch = Watch::new();
    async move {
        watch.next().await;
    }
}

/// SIGINT and SIGTERM, watched from its creation on.
pub(crate) struct Watch(Option<Signals>);

impl Watch {
    /// Starts watching; if that fails, says why, and [`next`](Watch::next) never returns.
    pub(crate) fn new() -> Watch {
        match Signals::new([Signal::Int, Signal::Term]) {
            Ok(signals) => Watch(Some(signals)),
            Err(e) => {
                log_at!(Error, "panini", "cannot watch SIGINT/SIGTERM: {e}");
                Watch(None)
            }
        }
    }

    /// The next signal, logged.
    pub(crate) async fn next(&mut self) -> Signal {
        if let Some(signals) = &mut self.0 {
            while let Some(got) = signals.next().await {
                match got {
                    Ok(sig) => {
                        log_at!(Info, "panini", "received {sig:?}");
                        return sig;
                    }
                    Err(e) => log_at!(Warn, "panini", "watching signals: {e}"),
                }
            }
        }
        std::future::pending().await
    }
}

/// The exit code for a process ended by a second `sig`: 128 plus its number, the shell's
/// convention (130 for SIGINT, 143 for SIGTERM).
pub(crate) fn exit_code(sig: Signal) -> i32 {
    match sig {
        Signal::Int => 130,
        Signal::Term => 143,
        // Only SIGINT and SIGTERM are watched.
        _ => 1,
    }
}

/// What a start brought up so far, for the graceful stop to take down.
pub(crate) struct Started {
    pub(crate) app: AppHandle,
    pub(crate) client: Client,
    /// The HTTP server, once it serves.
    #[cfg(feature = "http")]
    pub(crate) http: Option<(crate::http::RunningServer, super::builder::HttpSteps)>,
    /// The interval and one-time tasks.
    pub(crate) tasks: Vec<smol::Task<()>>,
}

/// One deadline for the whole stop: the work (in flight, then `on_stop`) gets until
/// `work`, the final flush and close until `end`.
#[derive(Clone, Copy)]
struct Deadline {
    work: Instant,
    end: Instant,
}

impl Deadline {
    fn new(drain_timeout: Duration) -> Deadline {
        let now = Instant::now();
        Deadline {
            work: now + drain_timeout - drain_timeout / 10,
            end: now + drain_timeout,
        }
    }
}

/// Awaits `fut` until `at`; `None` if time ran out first (`fut` is then dropped).
async fn until<T>(at: Instant, fut: impl Future<Output = T>) -> Option<T> {
    async { Some(fut.await) }
        .or(async {
            smol::Timer::at(at).await;
            None
        })
        .await
}

impl Started {
    /// The graceful stop (see the module docs), bounded by `drain_timeout`. `on_stop` is
    /// `None` when the start did not complete or NATS is lost: the hooks then do not run.
    /// Returns the final flush's result.
    pub(crate) async fn stop(
        self,
        on_stop: Option<&[TaskFn]>,
        drain_timeout: Duration,
    ) -> Result<()> {
        let deadline = Deadline::new(drain_timeout);
        self.app.runtime().begin_stop();
        for task in self.tasks {
            task.cancel().await;
        }
        #[cfg(feature = "http")]
        let http = stop_http(self.http, deadline.work);
        #[cfg(not(feature = "http"))]
        let http = async {};
        let nats = drain_nats(&self.app, &self.client, deadline.work);
        smol::future::zip(http, nats).await;
        if let Some(hooks) = on_stop {
            run_on_stop(&self.app, hooks, deadline.work).await;
        }
        let flushed = until(deadline.end, self.client.flush_timeout(drain_timeout))
            .await
            .unwrap_or(Err(Error::Timeout));
        // The close writes what is left and ends the connection task; if time is up it goes
        // on in the background, and the stop returns.
        let client = self.client;
        let mut closing = smol::spawn(async move { client.close().await });
        if until(deadline.end, &mut closing).await.is_none() {
            closing.detach();
            log_at!(
                Warn,
                "panini",
                "the NATS connection is still closing at the deadline"
            );
        }
        log_at!(Info, "panini", "stopped");
        flushed
    }
}

/// Stops taking messages (UNSUB everything) and waits, until `at`, for the endpoints'
/// queues and the handlers in flight.
async fn drain_nats(app: &AppHandle, client: &Client, at: Instant) {
    match until(at, client.drain_subscriptions()).await {
        Some(Ok(())) | Some(Err(Error::Closed)) => {}
        Some(Err(e)) => log_at!(Warn, "panini", "draining subscriptions: {e}"),
        None => log_at!(Warn, "panini", "draining subscriptions: timed out"),
    }
    // The endpoint loops end once their queues are empty; what they spawned may still run.
    for ep in app.runtime().take_endpoints() {
        until(at, ep.task).await;
    }
    let left = app
        .runtime()
        .wait_idle(at.saturating_duration_since(Instant::now()))
        .await;
    if left > 0 {
        log_at!(
            Warn,
            "panini",
            "{left} handlers still running at the drain timeout; stopping anyway"
        );
    }
}

/// Stops accepting HTTP connections and waits, until `at`, for the requests in flight.
#[cfg(feature = "http")]
async fn stop_http(
    http: Option<(crate::http::RunningServer, super::builder::HttpSteps)>,
    at: Instant,
) {
    if let Some((http, steps)) = http {
        let open = (steps.stop)(http, at.saturating_duration_since(Instant::now())).await;
        if open > 0 {
            log_at!(
                Warn,
                "panini",
                "{open} HTTP connections still open at the drain timeout; stopping anyway"
            );
        }
    }
}

/// Runs the `on_stop` hooks in order until `at`. A failure is logged and the next hook
/// still runs: one failed cleanup should not skip the others. A hook still running at `at`
/// is dropped; the ones after it are still polled once (a hook that needs no waiting runs).
async fn run_on_stop(app: &AppHandle, hooks: &[TaskFn], at: Instant) {
    for (i, hook) in hooks.iter().enumerate() {
        match until(at, hook(app.clone())).await {
            Some(Ok(())) => {}
            Some(Err(e)) => log_at!(Error, "panini", "on_stop hook #{} failed: {e}", i + 1),
            None => log_at!(
                Warn,
                "panini",
                "on_stop hook #{} still running at the drain timeout; stopping anyway",
                i + 1
            ),
        }
    }
}
