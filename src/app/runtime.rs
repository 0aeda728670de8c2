//! The running app's machinery, apart from what handlers see ([`AppHandle`](super::AppHandle)):
//! the registry of running endpoints by subject, the handler runs in flight (for the
//! graceful stop), the listen middlewares, the defaults of endpoints added at run time,
//! the stop latch, and the executor the app's tasks run on.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use smol::future::FutureExt;
use smol::Task;

use super::executor::AppExecutor;
use super::middleware::{Chain, ListenResult};
use crate::client::lock;
use crate::message::Message;
use crate::sync::{Latch, WaitGroup, WaitGuard};

/// What keeps a running app going; one per run, shared by every [`AppHandle`](super::AppHandle).
#[derive(Debug)]
pub(crate) struct Runtime {
    /// Where the app's tasks run.
    pub(crate) executor: AppExecutor,
    /// Every running endpoint by subject (`listen` and runtime ones).
    endpoints: Mutex<HashMap<String, Vec<RunningEndpoint>>>,
    /// The handler runs in their own tasks.
    in_flight: WaitGroup,
    /// The listen middlewares, compiled into each endpoint's loop when it starts.
    pub(crate) listen: Chain<Message, ListenResult>,
    /// The queue group of endpoints added at run time (the app's, or none).
    pub(crate) queue_group: Option<String>,
    /// The concurrency limit of endpoints added at run time (the app's).
    pub(crate) max_concurrency: usize,
    /// Set by `AppHandle::shutdown`: the app then stops as on SIGTERM.
    stop: Latch,
    /// Set when the graceful stop begins, whatever asked for it: durable endpoints then
    /// take no more messages.
    stopping: Latch,
}

/// A running endpoint: its subscription id (none for a durable endpoint, whose pull the
/// jetstream layer owns) and its loop, which ends once the subscription is unsubscribed
/// and its queue is handled (a durable endpoint's, once the stop begins).
#[derive(Debug)]
pub(crate) struct RunningEndpoint {
    pub(crate) sid: Option<u64>,
    pub(crate) task: Task<()>,
}

impl Runtime {
    pub(crate) fn new(
        executor: AppExecutor,
        listen: Chain<Message, ListenResult>,
        queue_group: Option<String>,
        max_concurrency: usize,
    ) -> Runtime {
        Runtime {
            executor,
            endpoints: Mutex::new(HashMap::new()),
            in_flight: WaitGroup::default(),
            listen,
            queue_group,
            max_concurrency,
            stop: Latch::default(),
            stopping: Latch::default(),
        }
    }

    /// Spawns `fut` where the app's tasks run.
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Task<T> {
        self.executor.spawn(fut)
    }

    /// Records a running endpoint under its subject.
    pub(crate) fn add_endpoint(&self, subject: String, running: RunningEndpoint) {
        lock(&self.endpoints)
            .entry(subject)
            .or_default()
            .push(running);
    }

    /// Takes the running endpoints of exactly `subject`, if any.
    pub(crate) fn remove_endpoints(&self, subject: &str) -> Option<Vec<RunningEndpoint>> {
        lock(&self.endpoints).remove(subject)
    }

    /// Takes every running endpoint (for the stop).
    pub(crate) fn take_endpoints(&self) -> Vec<RunningEndpoint> {
        lock(&self.endpoints)
            .drain()
            .flat_map(|(_, eps)| eps)
            .collect()
    }

    /// Counts a handler run in a task of its own until the guard is dropped.
    pub(crate) fn enter(&self) -> WaitGuard {
        self.in_flight.enter()
    }

    /// Waits until no handler runs in a task of its own, up to `limit`; returns how many
    /// still run.
    pub(crate) async fn wait_idle(&self, limit: Duration) -> usize {
        self.in_flight
            .wait()
            .or(async {
                smol::Timer::after(limit).await;
            })
            .await;
        self.in_flight.count()
    }

    /// Asks the app to stop; true the first time.
    pub(crate) fn ask_stop(&self) -> bool {
        self.stop.set()
    }

    /// Completes once a stop was asked for.
    pub(crate) async fn stop_asked(&self) {
        self.stop.wait().await
    }

    /// Marks the beginning of the graceful stop.
    pub(crate) fn begin_stop(&self) {
        self.stopping.set();
    }

    /// Whether the graceful stop has begun.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.is_set()
    }

    /// Completes once the graceful stop has begun.
    pub(crate) async fn stop_begun(&self) {
        self.stopping.wait().await
    }
}
