//! Units, medians, percentiles and the markdown table.

use std::time::Duration;

/// What a figure counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Messages or round trips per second: higher is better.
    PerSec,
    /// Microseconds: lower is better.
    Micros,
    /// KiB of resident memory: lower is better.
    Kib,
    /// Nanoseconds of CPU time per message: lower is better.
    Nanos,
}

impl Unit {
    pub fn format(self, v: f64) -> String {
        match self {
            _ if v.is_nan() => "-".to_string(),
            Unit::PerSec if v >= 1e6 => format!("{:.2} M/s", v / 1e6),
            Unit::PerSec => format!("{:.1} k/s", v / 1e3),
            Unit::Micros => format!("{v:.1} µs"),
            Unit::Kib => format!("{:.2} MiB", v / 1024.0),
            Unit::Nanos => format!("{v:.0} ns"),
        }
    }

    fn note(self) -> &'static str {
        match self {
            Unit::PerSec => "",
            Unit::Micros | Unit::Kib | Unit::Nanos => " (lower is better)",
        }
    }
}

/// One line of the table: each contender's median.
#[derive(Clone, Debug)]
pub struct Row {
    pub label: String,
    pub unit: Unit,
    pub ours: f64,
    pub theirs: f64,
}

/// The middle value (the mean of the two middle ones for an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `| workload | ours (median) | async-nats (median) | ours / async-nats |`.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| workload | ours (median) | async-nats (median) | ours / async-nats |\n\
         |---|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {}{} | {} | {} | {} |\n",
            r.label,
            r.unit.note(),
            r.unit.format(r.ours),
            r.unit.format(r.theirs),
            ratio(r.ours, r.theirs),
        ));
    }
    out
}

fn ratio(ours: f64, theirs: f64) -> String {
    match ours / theirs {
        r if r.is_finite() => format!("{r:.2}"),
        _ => "-".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&ms, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&ms, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&ms[..1], 99.0), Duration::from_millis(1));
    }
}
