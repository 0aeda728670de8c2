//! Tasks: once at start, or every interval (never two runs of one task at once; a failed
//! run is logged and the schedule goes on), plus the on-start and on-stop hooks.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smol::future::Boxed;
use smol::future::FutureExt;
use smol::Timer;

use crate::error::Error;
use crate::handle::{app_async, AppHandle};
use crate::log::log_at;

/// What a task, hook or interval run may return: `()` or a `Result` whose error is shown.
pub trait TaskResult {
    /// `Err(text)` for a failed run.
    fn into_task_result(self) -> Result<(), String>;
}

impl TaskResult for () {
    fn into_task_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: std::fmt::Display> TaskResult for Result<(), E> {
    fn into_task_result(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

pub(crate) type TaskFn = Arc<dyn Fn(AppHandle) -> Boxed<Result<(), String>> + Send + Sync>;

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
                Err(p) => Err(panic_text(p)),
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
                Err(p) => Err(panic_text(p)),
            }
        }))
    })
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    format!("panicked: {}", crate::error::panic_message(p.as_ref()))
}

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

/// Runs hooks in order; the first failure stops and is returned.
pub(crate) async fn run_hooks(app: &AppHandle, hooks: &[TaskFn], what: &str) -> Result<(), Error> {
    for (i, hook) in hooks.iter().enumerate() {
        // The hook is called inside the mark too: a closure may block before its future.
        app_async(async { hook(app.clone()).await })
            .await
            .map_err(|e| Error::Start(format!("{what} hook #{} failed: {e}", i + 1)))?;
    }
    Ok(())
}
