//! Tasks: once at start, or every interval (never two runs of one task at once; a failed
//! run is logged and the schedule goes on), plus the on-start and on-stop hooks.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smol::future::Boxed;
use smol::future::FutureExt;
use smol::Timer;

use super::context::{app_async, AppHandle};
use crate::error::{BoxError, Error, StartStage};
use crate::log::log_at;

/// What a task, hook or interval run may return: `()`, or a `Result` whose error is kept
/// (an `on_start` hook's error becomes the source of [`Error::Start`]) and shown in the log.
///
/// The error is anything that converts into a [`BoxError`]: an error type, a `String` or a
/// `&str`.
///
/// ```
/// # use panini::{App, AppHandle};
/// let mut app = App::new("orders");
/// // `()`: nothing can fail
/// app.on_start(|app: AppHandle| async move { println!("{} is up", app.service_name()) });
/// // `Result<(), &str>`: this error stops the start
/// app.on_start(|_app: AppHandle| async move {
///     std::env::var("API_KEY").map(drop).map_err(|_| "API_KEY is not set")
/// });
/// // `Result<(), panini::Error>`: a failed run is logged
/// app.task(|app: AppHandle| async move { app.publish("orders.up", "1").await });
/// ```
pub trait TaskResult {
    /// `Err(error)` for a failed run.
    fn into_task_result(self) -> Result<(), BoxError>;
}

impl TaskResult for () {
    fn into_task_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<E: Into<BoxError>> TaskResult for Result<(), E> {
    fn into_task_result(self) -> Result<(), BoxError> {
        self.map_err(Into::into)
    }
}

pub(crate) type TaskFn = Arc<dyn Fn(AppHandle) -> Boxed<Result<(), BoxError>> + Send + Sync>;

/// Wraps an async closure; a panic becomes an error.
pub(crate) fn boxed_async<F, Fut>(f: F) -> TaskFn
where
    F: Fn(AppHandle) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: TaskResult,
{
    Arc::new(move |app| {
        let fut = f(app);
        Box::pin(async move {
            match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(out) => out.into_task_result(),
                Err(p) => Err(Panicked::boxed(p)),
            }
        })
    })
}

/// Wraps a blocking closure: it runs on the thread pool, so it may use `publish_sync`.
pub(crate) fn boxed_sync<F, R>(f: F) -> TaskFn
where
    F: Fn(AppHandle) -> R + Send + Sync + 'static,
    R: TaskResult + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |app| {
        let f = f.clone();
        Box::pin(smol::unblock(move || {
            match std::panic::catch_unwind(AssertUnwindSafe(|| f(app))) {
                Ok(out) => out.into_task_result(),
                Err(p) => Err(Panicked::boxed(p)),
            }
        }))
    })
}

/// A task or hook that panicked, as its error: "panicked: " and the panic's message.
#[derive(Debug)]
struct Panicked(String);

impl Panicked {
    fn boxed(payload: Box<dyn std::any::Any + Send>) -> BoxError {
        Box::new(Panicked(crate::error::panic_message(payload.as_ref())))
    }
}

impl std::fmt::Display for Panicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "panicked: {}", self.0)
    }
}

impl std::error::Error for Panicked {}

/// When a task runs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Schedule {
    Once,
    Every(Duration),
}

pub(crate) struct TaskSpec {
    pub(crate) name: String,
    pub(crate) schedule: Schedule,
    pub(crate) run: TaskFn,
}

/// The shortest interval of a task run every interval: a shorter one (`Duration::ZERO`
/// above all) is taken as this, since a task whose timer is always due would never give
/// the executor thread back to the endpoints.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Runs one task by its schedule, until cancelled.
pub(crate) async fn run_task(app: AppHandle, spec: Arc<TaskSpec>) {
    app_async(schedule(app, spec)).await
}

async fn schedule(app: AppHandle, spec: Arc<TaskSpec>) {
    match spec.schedule {
        Schedule::Once => run_logged(&app, &spec).await,
        Schedule::Every(period) => {
            let period = period.max(MIN_INTERVAL);
            let mut next = Instant::now();
            loop {
                Timer::at(next).await;
                let started = Instant::now();
                run_logged(&app, &spec).await;
                // The next run starts one period after this one started, or now if this
                // one took longer: runs never overlap and a slow run does not pile up.
                next = (started + period).max(Instant::now());
            }
        }
    }
}

async fn run_logged(app: &AppHandle, spec: &TaskSpec) {
    if let Err(e) = (spec.run)(app.clone()).await {
        log_at!(Error, "panini", "{} failed: {e}", spec.name);
    }
}

/// Runs the `on_start` hooks in order; the first failure stops them and is returned, with
/// the hook's error as its source.
pub(crate) async fn run_on_start(app: &AppHandle, hooks: &[TaskFn]) -> Result<(), Error> {
    for (i, hook) in hooks.iter().enumerate() {
        // The hook is called inside the mark too: a closure may block before its future.
        app_async(async { hook(app.clone()).await })
            .await
            .map_err(|e| Error::start(StartStage::OnStart(i + 1), e))?;
    }
    Ok(())
}
