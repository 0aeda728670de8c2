//! The running app's machinery, apart from what handlers see ([`AppHandle`](super::AppHandle)):
//! the registry of running endpoints by subject, the handler runs in flight (for the
//! graceful stop), the listen middlewares, the defaults of endpoints added at run time,
//! the stop latch, and the executor the app's tasks run on.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use smol::future::FutureExt;
use smol::Task;

use super::executor::AppExecutor;
use super::middleware::{Chain, ListenResult};
use super::stats::EndpointStats;
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
    /// Whether endpoints count their runs (for the Service API and `/metrics`).
    pub(crate) stats_on: bool,
    /// The counted endpoints, one entry per subject, in the order they started.
    counted: Mutex<Vec<CountedEndpoint>>,
    /// The counted durable endpoints (for `/metrics` only: they have no subject to request).
    #[cfg(all(feature = "jetstream", feature = "http"))]
    counted_durable: Mutex<Vec<CountedDurable>>,
    /// When the app started (the Service API's `started`).
    pub(crate) started: SystemTime,
}

/// An endpoint whose runs are counted: what the Service API reports of it.
#[derive(Clone, Debug)]
pub(crate) struct CountedEndpoint {
    /// Its subject.
    pub(crate) subject: String,
    /// Its queue group, if any.
    pub(crate) queue_group: Option<String>,
    /// Its counters.
    pub(crate) stats: Arc<EndpointStats>,
}

/// A durable endpoint whose runs are counted: what `/metrics` reports of it.
#[cfg(all(feature = "jetstream", feature = "http"))]
#[derive(Clone, Debug)]
pub(crate) struct CountedDurable {
    /// Its stream.
    pub(crate) stream: String,
    /// Its durable consumer.
    pub(crate) consumer: String,
    /// Its counters.
    pub(crate) stats: Arc<EndpointStats>,
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
        stats_on: bool,
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
            stats_on,
            counted: Mutex::new(Vec::new()),
            #[cfg(all(feature = "jetstream", feature = "http"))]
            counted_durable: Mutex::new(Vec::new()),
            started: SystemTime::now(),
        }
    }

    /// The counters of a new endpoint on `subject`, if endpoints count their runs.
    pub(crate) fn count(
        &self,
        subject: &str,
        queue_group: Option<&str>,
    ) -> Option<Arc<EndpointStats>> {
        self.register(&self.counted, |stats| CountedEndpoint {
            subject: subject.to_string(),
            queue_group: queue_group.map(str::to_string),
            stats,
        })
    }

    /// The counters of a new durable endpoint on `stream` / `consumer`, if endpoints count
    /// their runs.
    #[cfg(all(feature = "jetstream", feature = "http"))]
    pub(crate) fn count_durable(&self, stream: &str, consumer: &str) -> Option<Arc<EndpointStats>> {
        self.register(&self.counted_durable, |stats| CountedDurable {
            stream: stream.to_string(),
            consumer: consumer.to_string(),
            stats,
        })
    }

    /// New counters, listed in `list` as `entry` makes them, if endpoints count their runs.
    fn register<T>(
        &self,
        list: &Mutex<Vec<T>>,
        entry: impl FnOnce(Arc<EndpointStats>) -> T,
    ) -> Option<Arc<EndpointStats>> {
        if !self.stats_on {
            return None;
        }
        let stats = Arc::new(EndpointStats::default());
        lock(list).push(entry(stats.clone()));
        Some(stats)
    }

    /// The counted durable endpoints now.
    #[cfg(all(feature = "jetstream", feature = "http"))]
    pub(crate) fn counted_durable(&self) -> Vec<CountedDurable> {
        lock(&self.counted_durable).clone()
    }

    /// Stops reporting the endpoints on exactly `subject`.
    pub(crate) fn uncount(&self, subject: &str) {
        lock(&self.counted).retain(|ep| ep.subject != subject);
    }

    /// The counted endpoints now.
    pub(crate) fn counted(&self) -> Vec<CountedEndpoint> {
        lock(&self.counted).clone()
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

    /// Whether the graceful stop has begun (durable endpoints ask).
    #[cfg(feature = "jetstream")]
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.is_set()
    }

    /// Completes once the graceful stop has begun (durable endpoints wait for it).
    #[cfg(feature = "jetstream")]
    pub(crate) async fn stop_begun(&self) {
        self.stopping.wait().await
    }
}
