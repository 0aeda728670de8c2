//! Client benchmark: panini's NATS client ("ours", on smol) against async-nats (on tokio),
//! side by side in one run, against one `nats-server` that this program starts.
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml -- [--quick] [--tls] [--rounds N]
//!     [--only publish|subscribe|sequential|concurrent|idle] [--contender ours|async-nats]
//! ```
//!
//! Each workload runs ours and async-nats alternately (the first to go swaps every round)
//! for a number of rounds, and the table shows each one's median and the ratio. Beside
//! each throughput is the CPU time per message of this process (all threads but the
//! subscribe workload's publisher), from `/proc/self/task/*/schedstat`.
//!
//! With `--tls` the server requires TLS (a throwaway CA and certificate made with the
//! `openssl` CLI), both clients connect to `tls://127.0.0.1:PORT` trusting that CA alone,
//! and the subscribe workload's publisher speaks TLS too.
//!
//! # Layout
//! - `main.rs`: workloads, rounds, medians.
//! - `contender.rs`: the [`Contender`] trait both clients implement.
//! - `ours.rs`, `theirs.rs`: the workloads written against each client.
//! - `publisher.rs`: the raw-socket (TCP or TLS) publisher of the subscribe workload.
//! - `cpu.rs`: CPU time per thread.
//! - `idle.rs`: the idle-RSS child process and reading `/proc/<pid>/status`.
//! - `report.rs`: units, medians, percentiles and the markdown table.
//! - `server.rs`: the `nats-server` guard, and the PKI for `--tls`.

mod contender;
mod cpu;
mod idle;
mod ours;
mod publisher;
mod report;
mod server;
mod theirs;

use std::collections::HashMap;

use contender::{Contender, Endpoint, Throughput};
use publisher::Burst;
use report::{median, Row, Unit};

/// Errors of a benchmark program: anything, with a message.
pub type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// How big each workload is.
#[derive(Clone, Copy, Debug)]
struct Config {
    rounds: usize,
    publish: usize,
    subscribe: usize,
    sequential: usize,
    concurrent: usize,
    in_flight: usize,
}

const FULL: Config = Config {
    rounds: 5,
    publish: 1_000_000,
    subscribe: 1_000_000,
    sequential: 20_000,
    concurrent: 100_000,
    in_flight: 64,
};

const QUICK: Config = Config {
    rounds: 2,
    publish: 100_000,
    subscribe: 100_000,
    sequential: 2_000,
    concurrent: 10_000,
    in_flight: 64,
};

const USAGE: &str =
    "usage: panini-bench [--quick] [--tls] [--rounds N] [--only WORKLOAD] [--contender ours|async-nats]
  WORKLOAD: publish, subscribe, sequential, concurrent or idle";

/// The workloads, in table order; `--only` picks one.
const WORKLOADS: [&str; 5] = ["publish", "subscribe", "sequential", "concurrent", "idle"];

fn main() {
    // Connect/close lines of every round would bury the table; warnings still show.
    if std::env::var_os("PANINI_LOG").is_none() {
        std::env::set_var("PANINI_LOG", "warn");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--idle", which, url] => idle::child(which, &endpoint(url, None)),
        ["--idle", which, url, ca] => idle::child(which, &endpoint(url, Some(ca))),
        ref rest => parse_args(rest).and_then(run),
    };
    if let Err(e) = outcome {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// What to run.
#[derive(Debug)]
struct Args {
    cfg: Config,
    tls: bool,
    only: Option<String>,
    contender: Option<String>,
}

fn endpoint(url: &str, ca_file: Option<&str>) -> Endpoint {
    Endpoint {
        url: url.to_string(),
        ca_file: ca_file.map(Into::into),
    }
}

fn parse_args(args: &[&str]) -> Result<Args> {
    let mut out = Args {
        cfg: FULL,
        tls: false,
        only: None,
        contender: None,
    };
    let mut rounds = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match *arg {
            "--quick" => out.cfg = QUICK,
            "--rounds" => rounds = Some(it.next().ok_or(USAGE)?.parse::<usize>()?),
            "--tls" => out.tls = true,
            "--only" => out.only = it.next().map(|w| w.to_string()),
            "--contender" => out.contender = it.next().map(|c| c.to_string()),
            _ => return Err(USAGE.into()),
        }
    }
    out.cfg.rounds = rounds.unwrap_or(out.cfg.rounds).max(1);
    match &out.only {
        Some(w) if !WORKLOADS.contains(&w.as_str()) => Err(USAGE.into()),
        _ => Ok(out),
    }
}

fn run(args: Args) -> Result<()> {
    let server = if args.tls {
        server::NatsServer::start_tls()?
    } else {
        server::NatsServer::start()?
    };
    let theirs = theirs::AsyncNats::new()?;
    let all: [&dyn Contender; 2] = [&ours::Ours, &theirs];
    let picked = |c: &&dyn Contender| args.contender.as_deref().is_none_or(|n| n == c.name());
    let bench = Bench {
        cfg: args.cfg,
        at: Endpoint {
            url: server.url().to_string(),
            ca_file: server.ca_file(),
        },
        contenders: all.iter().copied().filter(picked).collect(),
    };
    if bench.contenders.is_empty() {
        return Err(USAGE.into());
    }
    eprintln!("nats-server at {}; {:?}", bench.at.url, bench.cfg);
    let mut rows = Vec::new();
    for workload in WORKLOADS {
        if args.only.as_deref().is_none_or(|w| w == workload) {
            rows.extend(bench.workload(workload)?);
        }
    }
    println!("{}", report::table(&rows));
    Ok(())
}

/// One server, the contenders to run, and the sizes.
struct Bench<'a> {
    cfg: Config,
    at: Endpoint,
    contenders: Vec<&'a dyn Contender>,
}

impl Bench<'_> {
    fn workload(&self, name: &str) -> Result<Vec<Row>> {
        match name {
            "publish" => Ok([self.publish(16)?, self.publish(128)?].concat()),
            "subscribe" => self.subscribe(),
            "sequential" => self.sequential(),
            "concurrent" => self.concurrent(),
            _ => self.idle(),
        }
    }

    fn publish(&self, size: usize) -> Result<Vec<Row>> {
        let count = self.cfg.publish;
        let labels = throughput(format!("publish {size} B, {count} msgs"), "msgs", "message");
        let payload = vec![b'p'; size];
        self.compare(&labels, |c, tag| {
            let subject = format!("bench.pub.{tag}");
            figures(c.publish(&self.at, &subject, &payload, count)?)
        })
    }

    fn subscribe(&self) -> Result<Vec<Row>> {
        let count = self.cfg.subscribe;
        let labels = throughput(format!("subscribe 16 B, {count} msgs"), "msgs", "message");
        let ca_file = self.at.ca_file.as_deref();
        self.compare(&labels, |c, tag| {
            let subject = format!("bench.sub.{tag}");
            let publisher = Burst::new(&subject, count, 16).connect(&self.at.url, ca_file)?;
            figures(c.subscribe(&self.at, &subject, publisher, count)?)
        })
    }

    fn sequential(&self) -> Result<Vec<Row>> {
        let count = self.cfg.sequential;
        let labels = [
            (
                format!("request/reply sequential, {count} (round trips/s)"),
                Unit::PerSec,
            ),
            (
                "request/reply sequential p50 latency".to_string(),
                Unit::Micros,
            ),
            (
                "request/reply sequential p99 latency".to_string(),
                Unit::Micros,
            ),
            (
                "request/reply sequential: CPU per round trip".to_string(),
                Unit::Nanos,
            ),
        ];
        self.compare(&labels, |c, tag| {
            let l = c.request_sequential(&self.at, &format!("bench.seq.{tag}"), count)?;
            Ok(vec![l.per_sec, l.p50_us, l.p99_us, l.cpu_ns])
        })
    }

    fn concurrent(&self) -> Result<Vec<Row>> {
        let (total, k) = (self.cfg.concurrent, self.cfg.in_flight);
        let labels = throughput(
            format!("request/reply {k} in flight, {total}"),
            "round trips",
            "round trip",
        );
        self.compare(&labels, |c, tag| {
            let subject = format!("bench.conc.{tag}");
            figures(c.request_concurrent(&self.at, &subject, total, k)?)
        })
    }

    fn idle(&self) -> Result<Vec<Row>> {
        let labels = [
            (
                "idle VmRSS, connected + 1 subscription".to_string(),
                Unit::Kib,
            ),
            (
                "idle RssAnon (heap + stacks) of the same".to_string(),
                Unit::Kib,
            ),
        ];
        self.compare(&labels, |c, _| {
            Ok(idle::measure(c.name(), &self.at)?.to_vec())
        })
    }

    /// Runs `work` for each contender, alternately (who goes first swaps every round),
    /// `rounds` times; one row per label with each contender's median. `work` gets a tag
    /// unique to the contender and round (for subjects) and returns one figure per label.
    fn compare(
        &self,
        labels: &[(String, Unit)],
        mut work: impl FnMut(&dyn Contender, String) -> Result<Vec<f64>>,
    ) -> Result<Vec<Row>> {
        let mut figures: HashMap<&str, Vec<Vec<f64>>> = HashMap::new(); // name -> round -> label
        for round in 0..self.cfg.rounds {
            let mut order = self.contenders.clone();
            if round % 2 == 1 {
                order.reverse();
            }
            for c in order {
                let got = work(c, format!("{}{round}", c.name().replace('-', "")))?;
                eprintln!(
                    "  {:<55} {:<10} {}",
                    labels[0].0,
                    c.name(),
                    show(&got, labels)
                );
                figures.entry(c.name()).or_default().push(got);
            }
        }
        let med = |name: &str, l: usize| {
            let rounds = figures.get(name).map_or(&[][..], Vec::as_slice);
            median(rounds.iter().map(|r| r[l]).collect())
        };
        let rows = labels.iter().enumerate().map(|(l, (label, unit))| Row {
            label: label.clone(),
            unit: *unit,
            ours: med("ours", l),
            theirs: med("async-nats", l),
        });
        Ok(rows.collect())
    }
}

/// The two rows of a throughput workload: `WHAT (UNITS/s)` and `WHAT: CPU per ONE`.
fn throughput(what: String, units: &str, one: &str) -> [(String, Unit); 2] {
    [
        (format!("{what} ({units}/s)"), Unit::PerSec),
        (format!("{what}: CPU per {one}"), Unit::Nanos),
    ]
}

fn figures(t: Throughput) -> Result<Vec<f64>> {
    Ok(vec![t.per_sec, t.cpu_ns])
}

fn show(figures: &[f64], labels: &[(String, Unit)]) -> String {
    let parts: Vec<String> = figures
        .iter()
        .zip(labels)
        .map(|(v, (_, unit))| unit.format(*v))
        .collect();
    parts.join(", ")
}
