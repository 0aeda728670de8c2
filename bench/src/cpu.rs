//! CPU time of a process, as the benchmarks measure it (one definition for all of them).

use std::collections::HashMap;

/// CPU time this process has run so far, all threads, in ns: see [`cpu_ns_of`].
#[allow(dead_code)] // not the client benchmark's: it uses `Threads`
pub fn cpu_ns() -> u64 {
    cpu_ns_of("self")
}

/// CPU time process `pid` (or `self`) has run so far, all its live threads, in ns: the
/// sum of the first field (time on a CPU, user and system) of `/proc/PID/task/*/schedstat`.
/// Exact to the nanosecond, where `/proc/PID/stat` counts 10 ms ticks.
#[allow(dead_code)] // not the client benchmark's: it uses `Threads`
pub fn cpu_ns_of(pid: &str) -> u64 {
    per_thread(pid).map(|(_, ns)| ns).sum()
}

/// The CPU time of each live thread of this process, to take differences over a
/// window: a thread that ends within it (a tokio blocking-pool thread winding down, or a
/// helper the caller joined) drops out, instead of taking its whole life's CPU time
/// with it as a difference of [`cpu_ns`] would.
#[allow(dead_code)] // only the client benchmark uses it
#[derive(Debug)]
pub struct Threads(HashMap<u64, u64>);

#[allow(dead_code)]
impl Threads {
    pub fn now() -> Self {
        Threads(per_thread("self").collect())
    }

    /// CPU ns run since `self` by the threads alive now (all of it for those born since),
    /// but thread `skip`.
    pub fn since(&self, skip: Option<u64>) -> u64 {
        per_thread("self")
            .filter(|(tid, _)| Some(*tid) != skip)
            .map(|(tid, ns)| ns.saturating_sub(self.0.get(&tid).copied().unwrap_or(0)))
            .sum()
    }
}

/// The calling thread's id (`/proc/thread-self` links to `PID/task/TID`).
#[allow(dead_code)]
pub fn this_thread() -> Option<u64> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// `(thread id, CPU ns)` of each live thread of `pid`.
fn per_thread(pid: &str) -> impl Iterator<Item = (u64, u64)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten();
    tasks.flatten().filter_map(|t| {
        let tid = t.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
        Some((tid, stat.split_whitespace().next()?.parse().ok()?))
    })
}
