//! JetStream benchmark (issue #12): panini's `jetstream` layer ("ours", on smol) against
//! async-nats's JetStream (on tokio), side by side in one run, against one `nats-server -js`
//! that this program starts (its store in a temp dir).
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml --bin js_bench -- [--quick]
//!     [--rounds N] [--only publish-sync|publish-window|consume|kv]
//!     [--contender ours|async-nats]
//! ```
//!
//! Every round of every workload makes a fresh stream (file storage, one replica, the
//! server's defaults otherwise; checked to be the same for both clients before anything
//! is measured) and deletes it after. Payloads are 128 B.
//!
//! - **publish-sync**: N publishes, each ack awaited before the next: publishes/s, p50/p99.
//! - **publish-window**: N publishes with at most 256 acks outstanding: ours
//!   `publish_async` on a context `with_max_pending_acks(256)`, async-nats `publish` (a
//!   `PublishAckFuture`) on a context with `max_ack_inflight(256)` and backpressure; both
//!   keep the futures in a queue of 256 and await the oldest before the next publish, so
//!   every ack is checked.
//! - **consume**: the stream is filled with N messages (not timed); a durable pull
//!   consumer (explicit acks) is read through each client's continuous `messages()`,
//!   acking each message; the time runs until the server reports all N acked, none
//!   redelivered.
//! - **kv**: N puts then N gets, one at a time, over 100 keys of a bucket (history 1,
//!   file storage, one replica): p50/p99 of each. async-nats's bucket is made without
//!   `create_key_value`, which fails on nats-server 2.9 (see `js/theirs.rs`).
//!
//! Rounds alternate which client goes first; the table gives medians, their ratio, and the
//! CPU time of this process (all threads) per message beside each throughput.
//! `--contender` runs one client only (to profile it: the other column shows `-`).

#[allow(dead_code)]
#[path = "../contender.rs"]
mod contender;
#[allow(dead_code)]
#[path = "../cpu.rs"]
mod cpu;
#[path = "../js/contender.rs"]
mod js_contender;
#[path = "../js/ours.rs"]
mod js_ours;
#[path = "../js/theirs.rs"]
mod js_theirs;
#[allow(dead_code)]
#[path = "../publisher.rs"]
mod publisher;
#[allow(dead_code)]
#[path = "../report.rs"]
mod report;
#[allow(dead_code)]
#[path = "../server.rs"]
mod server;

use std::collections::HashMap;

use js_contender::{JsContender, Spec, CONSUMER, WINDOW};
use report::{median, Row, Unit};

/// Errors of a benchmark program: anything, with a message.
pub type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// How big each workload is.
#[derive(Clone, Copy, Debug)]
struct Config {
    rounds: usize,
    publish_sync: usize,
    publish_window: usize,
    consume: usize,
    kv: usize,
}

const FULL: Config = Config {
    rounds: 5,
    publish_sync: 20_000,
    publish_window: 200_000,
    consume: 200_000,
    kv: 10_000,
};

const QUICK: Config = Config {
    rounds: 2,
    publish_sync: 2_000,
    publish_window: 20_000,
    consume: 20_000,
    kv: 1_000,
};

const USAGE: &str =
    "usage: js_bench [--quick] [--rounds N] [--only WORKLOAD] [--contender ours|async-nats]
  WORKLOAD: publish-sync, publish-window, consume or kv";

/// The workloads, in table order; `--only` picks one.
const WORKLOADS: [&str; 4] = ["publish-sync", "publish-window", "consume", "kv"];

fn main() {
    // Connect/close lines of every round would bury the table; warnings still show.
    if std::env::var_os("PANINI_LOG").is_none() {
        std::env::set_var("PANINI_LOG", "warn");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if let Err(e) = parse_args(&args).and_then(run) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// What to run.
#[derive(Debug)]
struct Args {
    cfg: Config,
    only: Option<String>,
    contender: Option<String>,
}

fn parse_args(args: &[&str]) -> Result<Args> {
    let mut out = Args {
        cfg: FULL,
        only: None,
        contender: None,
    };
    let mut rounds = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match *arg {
            "--quick" => out.cfg = QUICK,
            "--rounds" => rounds = Some(it.next().ok_or(USAGE)?.parse::<usize>()?),
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
    let server = server::NatsServer::start_jetstream()?;
    let url = server.url().to_string();
    let theirs = js_theirs::AsyncNats::new()?;
    let all: [&dyn JsContender; 2] = [&js_ours::Ours, &theirs];
    let picked = |c: &&dyn JsContender| args.contender.as_deref().is_none_or(|n| n == c.name());
    let bench = Bench {
        cfg: args.cfg,
        url,
        contenders: all.iter().copied().filter(picked).collect(),
    };
    if bench.contenders.is_empty() {
        return Err(USAGE.into());
    }
    eprintln!("nats-server -js at {}; {:?}", bench.url, bench.cfg);
    eprintln!("load average before: {}", load_average());
    check_same_settings(&bench.url, &bench.contenders)?;
    let mut rows = Vec::new();
    for workload in WORKLOADS {
        if args.only.as_deref().is_none_or(|w| w == workload) {
            rows.extend(bench.workload(workload)?);
        }
    }
    eprintln!("load average after: {}", load_average());
    println!("{}", report::table(&rows));
    Ok(())
}

/// The first three fields of `/proc/loadavg` (1, 5 and 15 minutes).
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Has each client make a stream, a consumer and a KV bucket as its rounds do, then reads
/// them back from the server (raw API replies) and fails unless their configurations are
/// the same but for the names (and a KV bucket's empty description, which async-nats
/// sends and we do not).
fn check_same_settings(url: &str, contenders: &[&dyn JsContender]) -> Result<()> {
    let specs: Vec<Spec> = contenders
        .iter()
        .map(|c| Spec::new(&format!("check{}", c.name().replace('-', ""))))
        .collect();
    for (c, spec) in contenders.iter().zip(&specs) {
        c.prepare(url, spec)?;
        c.prepare_kv(url, spec)?;
    }
    let configs = smol::block_on(async {
        let client = panini::client::connect(url).await?;
        let mut configs = Vec::new();
        for spec in &specs {
            let kv_stream = format!("KV_{}", spec.bucket());
            let calls = [
                format!("STREAM.INFO.{}", spec.stream),
                format!("CONSUMER.INFO.{}.{CONSUMER}", spec.stream),
                format!("STREAM.INFO.{kv_stream}"),
            ];
            let mut three = Vec::new();
            for call in &calls {
                three.push(without_names(api(&client, call).await?));
            }
            configs.push(three);
            for stream in [&spec.stream, &kv_stream] {
                api(&client, &format!("STREAM.DELETE.{stream}")).await?;
            }
        }
        client.close().await;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(configs)
    })?;
    if configs.windows(2).any(|w| w[0] != w[1]) {
        return Err(
            format!("the clients make different streams or consumers: {configs:#?}").into(),
        );
    }
    let [stream, consumer, kv] = &configs[0][..] else {
        return Err("no configuration read".into());
    };
    eprintln!(
        "same settings for both clients: stream {stream}\n  consumer {consumer}\n  KV stream {kv}"
    );
    Ok(())
}

/// The `config` of an API reply, as JSON.
async fn api(client: &panini::client::Client, call: &str) -> Result<serde_json::Value> {
    let reply = client.request(&format!("$JS.API.{call}"), b"").await?;
    let mut value: serde_json::Value = serde_json::from_slice(&reply.payload)?;
    if let Some(e) = value.get("error") {
        return Err(format!("$JS.API.{call}: {e}").into());
    }
    Ok(value["config"].take())
}

/// A configuration without what differs by design: names, subjects, descriptions.
fn without_names(mut config: serde_json::Value) -> serde_json::Value {
    if let Some(object) = config.as_object_mut() {
        for field in ["name", "durable_name", "subjects", "description"] {
            object.remove(field);
        }
    }
    config
}

/// One server, the contenders, and the sizes.
struct Bench<'a> {
    cfg: Config,
    url: String,
    contenders: Vec<&'a dyn JsContender>,
}

impl Bench<'_> {
    fn workload(&self, name: &str) -> Result<Vec<Row>> {
        match name {
            "publish-sync" => self.publish_sync(),
            "publish-window" => self.publish_window(),
            "consume" => self.consume(),
            _ => self.kv(),
        }
    }

    fn publish_sync(&self) -> Result<Vec<Row>> {
        let n = self.cfg.publish_sync;
        let what = "publish-sync, 1 ack outstanding";
        let labels = [
            (format!("{what}, {n} x 128 B (msgs/s)"), Unit::PerSec),
            (format!("{what}: p50 latency"), Unit::Micros),
            (format!("{what}: p99 latency"), Unit::Micros),
            (format!("{what}: CPU per message"), Unit::Nanos),
        ];
        self.compare(&labels, "sync", |c, spec| {
            let l = c.publish_sync(&self.url, spec, n)?;
            Ok(vec![l.per_sec, l.p50_us, l.p99_us, l.cpu_ns])
        })
    }

    fn publish_window(&self) -> Result<Vec<Row>> {
        let n = self.cfg.publish_window;
        let what = format!("publish-window, {WINDOW} acks outstanding");
        let labels = [
            (format!("{what}, {n} x 128 B (msgs/s)"), Unit::PerSec),
            (format!("{what}: CPU per message"), Unit::Nanos),
        ];
        self.compare(&labels, "win", |c, spec| {
            let t = c.publish_window(&self.url, spec, n)?;
            Ok(vec![t.per_sec, t.cpu_ns])
        })
    }

    fn consume(&self) -> Result<Vec<Row>> {
        let n = self.cfg.consume;
        let what = "consume, durable pull + ack each";
        let labels = [
            (format!("{what}, {n} x 128 B (msgs/s)"), Unit::PerSec),
            (format!("{what}: CPU per message"), Unit::Nanos),
        ];
        self.compare(&labels, "con", |c, spec| {
            let t = c.consume(&self.url, spec, n)?;
            Ok(vec![t.per_sec, t.cpu_ns])
        })
    }

    fn kv(&self) -> Result<Vec<Row>> {
        let n = self.cfg.kv;
        let labels = [
            (format!("kv put, {n} x 128 B: p50 latency"), Unit::Micros),
            ("kv put: p99 latency".to_string(), Unit::Micros),
            (format!("kv get, {n}: p50 latency"), Unit::Micros),
            ("kv get: p99 latency".to_string(), Unit::Micros),
            ("kv put + get: CPU per operation".to_string(), Unit::Nanos),
        ];
        self.compare(&labels, "kv", |c, spec| {
            let l = c.kv(&self.url, spec, n)?;
            Ok(vec![
                l.put_p50_us,
                l.put_p99_us,
                l.get_p50_us,
                l.get_p99_us,
                l.cpu_ns,
            ])
        })
    }

    /// Runs `work` for each contender, alternately (who goes first swaps every round),
    /// `rounds` times, on a stream of its own each time; one row per label with each
    /// contender's median. `work` returns one figure per label.
    fn compare(
        &self,
        labels: &[(String, Unit)],
        workload: &str,
        mut work: impl FnMut(&dyn JsContender, &Spec) -> Result<Vec<f64>>,
    ) -> Result<Vec<Row>> {
        let mut figures: HashMap<&str, Vec<Vec<f64>>> = HashMap::new(); // name -> round -> label
        for round in 0..self.cfg.rounds {
            let mut order = self.contenders.clone();
            if round % 2 == 1 {
                order.reverse();
            }
            for c in order {
                let spec = Spec::new(&format!("{workload}{}{round}", c.name().replace('-', "")));
                let got = work(c, &spec)?;
                eprintln!(
                    "  {:<60} {:<10} {}",
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

fn show(figures: &[f64], labels: &[(String, Unit)]) -> String {
    let parts: Vec<String> = figures
        .iter()
        .zip(labels)
        .map(|(v, (_, unit))| unit.format(*v))
        .collect();
    parts.join(", ")
}
