//! Where the app's tasks run: endpoint loops, handler runs, interval tasks and HTTP
//! connections. With one thread ([`App::threads`](crate::App::threads)) that is smol's
//! global executor, shared with the NATS connection's task (no hop between threads per
//! message); with more, an executor of the app's own, run by that many threads
//! (`panini-1`, `panini-2`, ...) for as long as the app runs, and as many loops per
//! endpoint (see [`endpoint`](super::endpoint)). That executor runs the NATS connection's
//! tasks too: on a host whose cores are all busy, a connection on a thread of its own
//! waits for a core while the app's threads wait for its messages (at 50 µs of work a
//! request, 2 threads served 1.30x of 1 thread's rate so, 1.40x with the connection on
//! the app's threads). The HTTP server may have an executor of its own, from the same
//! [`start_own`]: threads that wait in the reactor as the app's do ([`Idle::Reactor`],
//! `Http::threads`), or that park instead after a busy run ([`Idle::Parked`],
//! `Http::low_latency`).

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use smol::future::FutureExt;
use smol::{Executor, Task};

use crate::log::log_at;

/// The environment variable that sets the threads of an app whose code does not.
pub(crate) const THREADS_VAR: &str = "PANINI_THREADS";

/// The executor of a running app.
#[derive(Clone, Debug)]
pub(crate) enum AppExecutor {
    /// smol's global executor: one thread unless `SMOL_THREADS` says otherwise.
    Global,
    /// An executor of our own (the app's, or the HTTP server's) and how many threads run it.
    Pool(Arc<Executor<'static>>, usize),
}

impl AppExecutor {
    /// Spawns `fut` on this executor.
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Task<T> {
        match self {
            AppExecutor::Global => smol::spawn(fut),
            AppExecutor::Pool(ex, _) => ex.spawn(fut),
        }
    }

    /// How many threads run the app's tasks: an endpoint runs that many loops over its
    /// one subscription (see [`endpoint`](super::endpoint)), so that handlers that compute
    /// spread over the threads.
    pub(crate) fn threads(&self) -> usize {
        match self {
            AppExecutor::Global => 1,
            AppExecutor::Pool(_, n) => *n,
        }
    }
}

/// The threads of an executor of our own; they end when this is dropped (at the end of
/// the run, or of the HTTP server's stop), once the task each one is polling yields.
#[derive(Debug)]
pub(crate) struct Threads {
    _stop: smol::channel::Sender<()>,
}

/// The number of threads: `threads` if the code set it, else `$PANINI_THREADS`, else one
/// (see [`App::threads`](crate::App::threads) for why).
pub(crate) fn thread_count(threads: Option<usize>) -> usize {
    let from_env = || {
        let value = std::env::var(THREADS_VAR).ok()?;
        let n = value.trim().parse::<usize>().ok();
        if n.is_none() {
            log_at!(
                Warn,
                "panini",
                "{THREADS_VAR}={value:?} is not a number of threads: ignored"
            );
        }
        n
    };
    threads.or_else(from_env).unwrap_or(1).max(1)
}

/// How the threads of an executor of our own wait when they have no task to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Idle {
    /// In `epoll_wait` when the reactor is free (smol's `block_on`), so that a thread that
    /// waits for its own sockets needs no other thread to wake it: the fewest hand-overs.
    Reactor,
    /// After a busy run ([`BUSY_RUN`] tasks or more between two waits), parked on a futex,
    /// not in `epoll_wait` (`futures_lite`'s `block_on`): another thread of the process
    /// waits for I/O and wakes it, one hand-over more per batch of events, but under load
    /// on a host whose cores are all busy a parked thread gets a core back sooner. After
    /// a short run (light load), as [`Idle::Reactor`]: no hand-over, the lowest latency.
    /// See `Http::low_latency`; only the HTTP server asks for it.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    Parked,
}

/// Starts the executor for `n` threads: smol's global one for one thread, else an
/// executor of the app's own with `n` threads, which run until `Threads` is dropped.
pub(crate) fn start(n: usize) -> std::io::Result<(AppExecutor, Option<Threads>)> {
    if n <= 1 {
        return Ok((AppExecutor::Global, None));
    }
    start_own(n, "panini", Idle::Reactor)
}

/// An executor of our own with `n` threads (at least one) named `{name}-1`, ..., which
/// wait as `idle` says; they run until `Threads` is dropped.
pub(crate) fn start_own(
    n: usize,
    name: &str,
    idle: Idle,
) -> std::io::Result<(AppExecutor, Option<Threads>)> {
    let n = n.max(1);
    let ex = Arc::new(Executor::new());
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    for i in 1..=n {
        let (ex, stopped) = (ex.clone(), stopped.clone());
        std::thread::Builder::new()
            .name(format!("{name}-{i}"))
            .spawn(move || run_thread(&ex, &stopped, idle))?;
    }
    Ok((AppExecutor::Pool(ex, n), Some(Threads { _stop: stop })))
}

/// With [`Idle::Parked`], a thread that ran this many tasks or more since its last wait
/// parks for the next one; after fewer it waits in the reactor. At one connection sending
/// requests one after another, every run is one task; under `wrk -c32` most are longer.
/// (The figures hardly moved between 4 and 32: BENCHMARKS.md, "`Http::low_latency`".)
pub(crate) const BUSY_RUN: usize = 4;

/// How many waits of each kind the [`Idle::Parked`] threads made: (parked, in the
/// reactor). For the tests of the policy.
#[cfg(test)]
static WAITS: [std::sync::atomic::AtomicUsize; 2] = [
    std::sync::atomic::AtomicUsize::new(0),
    std::sync::atomic::AtomicUsize::new(0),
];

/// One thread of an executor of our own: runs tasks until the stop channel closes. A
/// task's panic is kept in its task (async-executor propagates it to whoever awaits it);
/// should one still reach here, the thread goes on running the others.
fn run_thread(ex: &Executor<'static>, stopped: &smol::channel::Receiver<()>, idle: Idle) {
    while !stopped.is_closed() {
        let _ = catch_unwind(AssertUnwindSafe(|| match idle {
            Idle::Reactor => smol::block_on(ex.run(async {
                let _ = stopped.recv().await;
            })),
            Idle::Parked => run_parking(ex, stopped),
        }));
    }
}

/// The loop of an [`Idle::Parked`] thread: runs every task there is, then waits for the
/// next one (or the stop), parked after a busy run, in the reactor after a short one.
fn run_parking(ex: &Executor<'static>, stopped: &smol::channel::Receiver<()>) {
    let next = || {
        ex.tick().or(async {
            let _ = stopped.recv().await;
        })
    };
    // The wait itself runs one task.
    let mut ran = 1;
    while !stopped.is_closed() {
        while ex.try_tick() {
            ran += 1;
        }
        let parked = ran >= BUSY_RUN;
        #[cfg(test)]
        WAITS[usize::from(!parked)].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if parked {
            smol::future::block_on(next());
        } else {
            smol::block_on(next());
        }
        ran = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_wins_then_the_environment_then_one() {
        assert_eq!(thread_count(Some(3)), 3);
        assert_eq!(thread_count(Some(0)), 1);
        // `PANINI_THREADS` is not set in the test environment.
        if std::env::var_os(THREADS_VAR).is_none() {
            assert_eq!(thread_count(None), 1);
        }
    }

    #[test]
    fn a_pool_runs_tasks_on_its_own_threads_until_dropped() {
        let (rt, threads) = start(2).unwrap();
        assert_eq!(rt.threads(), 2);
        let name =
            smol::block_on(rt.spawn(async { std::thread::current().name().map(str::to_string) }));
        assert!(name.is_some_and(|n| n.starts_with("panini-")));
        drop(threads);
        let (rt, threads) = start(1).unwrap();
        assert!(rt.threads() == 1 && threads.is_none());
    }

    /// The waits of the `Idle::Parked` threads so far: (parked, in the reactor).
    fn waits() -> (usize, usize) {
        use std::sync::atomic::Ordering::Relaxed;
        (WAITS[0].load(Relaxed), WAITS[1].load(Relaxed))
    }

    /// Waits (up to 5 s) until `done(waits())`.
    fn until(done: impl Fn((usize, usize)) -> bool) -> (usize, usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !done(waits()) {
            assert!(
                std::time::Instant::now() < deadline,
                "not within 5 s: {:?}",
                waits()
            );
            std::thread::yield_now();
        }
        waits()
    }

    /// An `Idle::Parked` thread waits in the reactor after a run of one task, and parks
    /// after a run of 33. The only test in this binary with such a thread, so the counts
    /// are its own.
    #[test]
    fn a_parking_thread_waits_in_the_reactor_after_one_task_and_parks_after_a_burst() {
        let (rt, threads) = start_own(1, "parking", Idle::Parked).unwrap();
        let (parked, mut in_reactor) = until(|(p, r)| p + r > 0); // waiting at first
        assert_eq!(parked, 0, "parked before any task");
        // One task at a time, each sent once the thread is back in its wait: runs of one.
        for _ in 0..20 {
            smol::future::block_on(rt.spawn(async {}));
            (_, in_reactor) = until(|(_, r)| r > in_reactor);
        }
        assert_eq!(waits().0, 0, "parked at light load: {:?}", waits());

        // A burst: the thread is held by a task while 32 more are queued behind it.
        let (hold, held) = std::sync::mpsc::channel::<()>();
        let holding = rt.spawn(async move {
            let _ = held.recv(); // blocks the thread itself, on purpose
        });
        let burst: Vec<_> = (0..32).map(|_| rt.spawn(async {})).collect();
        hold.send(()).unwrap();
        smol::future::block_on(holding);
        for task in burst {
            smol::future::block_on(task);
        }
        until(|(p, _)| p == 1);
        drop(threads);
    }
}
