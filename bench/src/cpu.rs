//! CPU time of a process, as the benchmarks measure it (one definition for all of them).

/// CPU time this process has run so far, all threads, in ns: see [`cpu_ns_of`].
pub fn cpu_ns() -> u64 {
    cpu_ns_of("self")
}

/// CPU time process `pid` (or `self`) has run so far, all its live threads, in ns: the
/// sum of the first field (time on a CPU, user and system) of `/proc/PID/task/*/schedstat`.
/// Exact to the nanosecond, where `/proc/PID/stat` counts 10 ms ticks.
pub fn cpu_ns_of(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}
