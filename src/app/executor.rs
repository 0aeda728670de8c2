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
//! `Http::threads`), or that park instead after a busy run while they wait for a core
//! ([`Idle::Parked`] and [`Contention`], `Http::low_latency`).

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
    /// After a busy run ([`BUSY_RUN`] tasks or more between two waits) on a thread that
    /// waits for a core (see [`Contention`]), parked on a futex, not in `epoll_wait`
    /// (`futures_lite`'s `block_on`): another thread of the process waits for I/O and
    /// wakes it, one hand-over more per batch of events, but on a host whose cores are all
    /// busy a parked thread gets a core back sooner. Otherwise (a short run, or a core to
    /// spare) as [`Idle::Reactor`]: no hand-over, the lowest latency and CPU. See
    /// `Http::low_latency`; only the HTTP server asks for it.
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

/// With [`Idle::Parked`], a thread that waits for a core ([`Contention`]) and ran this many
/// tasks or more since its last wait parks for the next one; after fewer it waits in the
/// reactor. At one connection sending requests one after another, every run is one task;
/// under `wrk -c32` most are longer.
/// (The figures hardly moved between 4 and 32: BENCHMARKS.md, "`Http::low_latency`".)
pub(crate) const BUSY_RUN: usize = 4;

/// How many waits of each kind the [`Idle::Parked`] threads made: (parked, in the
/// reactor). For the tests of the policy.
#[cfg(test)]
static WAITS: [std::sync::atomic::AtomicUsize; 2] = [
    std::sync::atomic::AtomicUsize::new(0),
    std::sync::atomic::AtomicUsize::new(0),
];

/// Set by a test to give [`Contention`]'s verdict whatever the kernel says, as the tests'
/// threads share the cores with each other: 0 asks the kernel, 1 says "waits for a core",
/// 2 "has a core to spare".
#[cfg(test)]
static PROBE_SAYS: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Whether the calling thread has lately waited for a core: the share of wall time it
/// spent runnable but not running, from the kernel's count (`/proc/thread-self/schedstat`,
/// Linux). Parking pays only then: with a core to spare, each hand-over to the thread that
/// waits for I/O costs CPU and buys nothing (`wrk -t1 -c8`: 0.41x the requests/s of
/// waiting in the reactor). Where the count cannot be read (another OS), a thread always
/// counts as waiting for a core.
///
/// It is quick to say "contended" (two 20 ms readings in a row) and slow to take it back
/// (200 ms), with a lower bar to stay than to enter: a single reading over the bar at a few
/// connections was mostly other work on the host, and under `wrk -t2 -c32` a few percent of
/// the time served the other way were enough to double the p99 (BENCHMARKS.md,
/// "`low_latency` measures").
pub(crate) struct Contention {
    stat: Option<std::fs::File>,
    /// The last reading: when, and the thread's total wait for a core then (ns).
    last: Option<(std::time::Instant, u64)>,
    contended: bool,
    /// Whether the last reading of a thread with a core to spare was over the bar already.
    was_over: bool,
}

impl Contention {
    /// How long a thread with a core to spare measures before a new verdict (a reading
    /// is one `pread` of a few dozen bytes).
    const EVERY: std::time::Duration = std::time::Duration::from_millis(20);
    /// How long a contended thread measures before a new verdict.
    const EVERY_CONTENDED: std::time::Duration = std::time::Duration::from_millis(200);
    /// The share of wall time (%) spent waiting for a core from which a thread with a core
    /// to spare counts as contended. On 2 cores (BENCHMARKS.md) the server's thread waited
    /// about 1 % of the time with a core left to it, 21 to 27 % with `wrk -t2` sharing both.
    const ENTER: u64 = 15;
    /// The share (%) under which a contended thread counts as having a core to spare again.
    const LEAVE: u64 = 10;

    /// A probe for the calling thread (open it on the thread it measures). Until its
    /// second reading it says "contended".
    pub(crate) fn for_this_thread() -> Contention {
        Contention {
            stat: std::fs::File::open("/proc/thread-self/schedstat").ok(),
            last: None,
            contended: true,
            was_over: false,
        }
    }

    /// The verdict: a new one if the last reading is old enough
    /// ([`EVERY`](Contention::EVERY) or [`EVERY_CONTENDED`](Contention::EVERY_CONTENDED)),
    /// else the last.
    pub(crate) fn contended(&mut self) -> bool {
        #[cfg(test)]
        match PROBE_SAYS.load(std::sync::atomic::Ordering::Relaxed) {
            1 => return true,
            2 => return false,
            _ => {}
        }
        let Some(stat) = &self.stat else {
            return true;
        };
        let now = std::time::Instant::now();
        let every = if self.contended {
            Self::EVERY_CONTENDED
        } else {
            Self::EVERY
        };
        if self.last.is_some_and(|(at, _)| now - at < every) {
            return self.contended;
        }
        let Some((_, waited)) = read_schedstat(stat) else {
            // Unreadable after all (or the kernel keeps no count): from now on, as where
            // it cannot be opened.
            self.stat = None;
            self.contended = true;
            return true;
        };
        self.update(now, waited)
    }

    /// Takes a reading (the thread's total wait for a core at `now`, ns) and gives the
    /// verdict on the time since the last reading: a thread with a core to spare is
    /// contended after two readings in a row of [`ENTER`](Contention::ENTER) % waiting or
    /// more, a contended one stays so while a reading finds [`LEAVE`](Contention::LEAVE) %
    /// or more. The first reading keeps the first verdict.
    fn update(&mut self, now: std::time::Instant, waited: u64) -> bool {
        if let Some((at, before)) = self.last {
            let (wall, wait) = (
                now.saturating_duration_since(at),
                waited.saturating_sub(before),
            );
            if self.contended {
                self.contended = waited_at_least(wall, wait, Self::LEAVE);
                self.was_over = false;
            } else {
                let over = waited_at_least(wall, wait, Self::ENTER);
                self.contended = over && self.was_over;
                self.was_over = over && !self.contended;
            }
        }
        self.last = Some((now, waited));
        self.contended
    }
}

/// Whether a wait for a core of `waited_ns` is `percent` % of `wall` or more.
fn waited_at_least(wall: std::time::Duration, waited_ns: u64, percent: u64) -> bool {
    u128::from(waited_ns) * 100 >= wall.as_nanos() * u128::from(percent)
}

/// The thread's time on a core and its wait for one (ns): no count off Unix (nor a
/// `/proc` to open it from).
#[cfg(not(unix))]
fn read_schedstat(_stat: &std::fs::File) -> Option<(u64, u64)> {
    None
}

/// The thread's time on a core and its wait for one (ns), from the start of the file.
#[cfg(unix)]
fn read_schedstat(stat: &std::fs::File) -> Option<(u64, u64)> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 96];
    let n = stat.read_at(&mut buf, 0).ok()?;
    parse_schedstat(buf.get(..n)?)
}

/// The time on a core and the wait for one in a `schedstat` line ("time on cpu, time
/// waiting on a runqueue, timeslices run", nanoseconds), if the line is one. (The
/// kernel brings a thread's counts up to date when it leaves a core or yields, so a thread
/// that has not yet done either reads 0. A kernel that keeps no count reads 0 for ever: the
/// thread then never counts as contended, and serves as [`Idle::Reactor`] threads do.)
#[cfg_attr(not(unix), allow(dead_code))]
fn parse_schedstat(line: &[u8]) -> Option<(u64, u64)> {
    let line = std::str::from_utf8(line).ok()?;
    let mut fields = line.split_ascii_whitespace();
    let ran = fields.next()?.parse().ok()?;
    let waited = fields.next()?.parse().ok()?;
    Some((ran, waited))
}

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

/// A thread in its reactor wait reacts (without blocking) after this many tasks in a row,
/// as smol's own executor does after 200: so that the I/O events of a long run are seen,
/// and so that async-io's fallback thread, which takes the reactor from a thread that has
/// not reacted for 50 µs or more, leaves it to this one (else each wait would be a
/// hand-over between the two threads, busy or not).
const REACT_EVERY: usize = 16;

/// The loop of an [`Idle::Parked`] thread: [`run_in_reactor`], and park when it
/// says so.
fn run_parking(ex: &Executor<'static>, stopped: &smol::channel::Receiver<()>) {
    let mut contention = Contention::for_this_thread();
    // Tasks run since the last wait.
    let mut ran = 0;
    while !stopped.is_closed() {
        ran = smol::block_on(run_in_reactor(ex, stopped, &mut contention, ran));
        if ran >= BUSY_RUN && !stopped.is_closed() {
            #[cfg(test)]
            WAITS[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            smol::future::block_on(next_task(ex, stopped));
            // The wait itself ran one task.
            ran = 1;
        }
    }
}

/// Runs the next task of `ex`, or returns at the stop.
async fn next_task(ex: &Executor<'static>, stopped: &smol::channel::Receiver<()>) {
    ex.tick()
        .or(async {
            let _ = stopped.recv().await;
        })
        .await;
}

/// Runs every task there is and waits for the next in the reactor (`smol::block_on` polls
/// this; it reacts to I/O itself every [`REACT_EVERY`] tasks of a run), again and again
/// while the thread has a core to spare ([`Contention`]). On a thread that waits for a
/// core it returns after a busy run ([`BUSY_RUN`] tasks or more), before it waits, for the
/// caller to park; and after one wait, so that the reactor is left after every run to
/// whichever thread is idle. Returns how many tasks ran since the last wait; `ran` ran
/// before the call.
async fn run_in_reactor(
    ex: &Executor<'static>,
    stopped: &smol::channel::Receiver<()>,
    contention: &mut Contention,
    mut ran: usize,
) -> usize {
    loop {
        while ex.try_tick() {
            ran += 1;
            if ran % REACT_EVERY == 0 {
                if stopped.is_closed() {
                    return ran;
                }
                smol::future::yield_now().await;
            }
        }
        let contended = contention.contended();
        if contended && ran >= BUSY_RUN {
            return ran;
        }
        #[cfg(test)]
        WAITS[1].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        next_task(ex, stopped).await;
        // The wait itself ran one task.
        ran = 1;
        if contended || stopped.is_closed() {
            return ran;
        }
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

    /// An `Idle::Parked` thread waits in the reactor after a run of one task, and after a
    /// run of 33 with a core to spare; it parks after a run of 33 when it waits for a
    /// core. The only test in this binary with such a thread, so the counts are its own.
    #[test]
    fn a_parking_thread_parks_only_after_a_burst_and_only_when_it_waits_for_a_core() {
        use std::sync::atomic::Ordering::Relaxed;
        PROBE_SAYS.store(1, Relaxed); // waits for a core
        let (rt, threads) = start_own(1, "parking", Idle::Parked).unwrap();
        let (parked, mut in_reactor) = until(|(p, r)| p + r > 0); // waiting at first
        assert_eq!(parked, 0, "parked before any task");
        // One task at a time, each sent once the thread is back in its wait: runs of one.
        for _ in 0..20 {
            smol::future::block_on(rt.spawn(async {}));
            (_, in_reactor) = until(|(_, r)| r > in_reactor);
        }
        assert_eq!(waits().0, 0, "parked at light load: {:?}", waits());

        // A burst: the thread is held by a task while 32 more are queued behind it; then
        // it makes one wait.
        let burst = || {
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
        };
        PROBE_SAYS.store(2, Relaxed); // a core to spare
        burst();
        let (parked, _) = until(|(_, r)| r > in_reactor);
        assert_eq!(parked, 0, "parked with a core to spare: {:?}", waits());

        PROBE_SAYS.store(1, Relaxed); // waits for a core
        burst();
        until(|(p, _)| p == 1);
        drop(threads);
        PROBE_SAYS.store(0, Relaxed);
    }

    #[test]
    fn a_thread_counts_as_contended_after_two_readings_of_15_percent_waiting_and_as_spare_under_10()
    {
        use std::time::{Duration, Instant};
        assert_eq!(parse_schedstat(b"81234 5678 90\n"), Some((81234, 5678)));
        for bad in [&b""[..], b"81234", b"81234 -1 9", b"\xff 1 2", b"a b c"] {
            assert_eq!(parse_schedstat(bad), None, "{bad:?}");
        }

        let mut probe = Contention {
            stat: None,
            last: None,
            contended: true,
            was_over: false,
        };
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Readings 10 ms apart; `waited` is the running total, so each step adds `wait` µs.
        let mut waited = 1_000_000;
        let mut after = |ms: u64, wait_us: u64| {
            waited += wait_us * 1000;
            probe.update(at(ms), waited)
        };
        // The first reading keeps the first verdict (contended).
        assert!(after(0, 0));
        assert!(!after(10, 250), "2.5 %: a core to spare");
        assert!(!after(20, 1_200), "12 %: under the bar to start parking");
        assert!(!after(30, 1_500), "exactly 15 %, once: not yet");
        assert!(after(40, 1_500), "15 % twice in a row: contended");
        assert!(after(50, 1_200), "12 %: enough to go on parking");
        assert!(after(60, 1_000), "exactly 10 %: still contended");
        assert!(!after(70, 900), "9 %: a core to spare again");
        assert!(
            !after(80, 3_000),
            "30 %, as under `wrk -t2` on 2 cores, once"
        );
        assert!(!after(90, 500), "5 %: the run is broken");
        assert!(!after(100, 3_000), "30 %, once");
        assert!(after(110, 3_000), "30 % twice in a row");
        // A count that went backwards (it never should) reads as no wait.
        assert!(!probe.update(at(120), 0));
    }

    /// On Linux the probe reads the kernel's live count for the thread that opened it:
    /// after 2 ms of work and a yield (which brings the count up to date) its time on a
    /// core has grown, and its wait has not shrunk.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_probe_reads_this_threads_wait_for_a_core_on_linux() {
        let probe = Contention::for_this_thread();
        let stat = probe
            .stat
            .as_ref()
            .expect("/proc/thread-self/schedstat opens");
        let (ran, waited) = read_schedstat(stat).expect("a schedstat line");
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(2) {
            std::hint::black_box(start.elapsed());
        }
        std::thread::yield_now();
        let (ran_after, waited_after) = read_schedstat(stat).expect("a schedstat line");
        assert!(ran_after > ran, "time on a core: {ran} then {ran_after}");
        assert!(waited_after >= waited, "wait: {waited} then {waited_after}");
    }
}
