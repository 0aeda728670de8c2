//! Framework overhead: the same work served by a `panini::App` endpoint, by the bare panini
//! client, and by async-nats, in one run, against one `nats-server` that this program starts.
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml --bin app_bench -- [--quick]
//!     [--rounds N] [--only sequential|concurrent|stream] [--kinds KIND,KIND...]
//! ```
//!
//! KIND is `app`, `app-mw`, `bare`, `async-nats` or `app-nosrv` (all by default; `--kind K` is
//! `--kinds K`).
//!
//! Every contender is a child process (this binary, run with `--respond` or `--count`), as a
//! service would be; the parent is the same for all of them, so only the served side
//! differs:
//!
//! - **request/reply** (sequential, and 64 in flight): the child echoes `bench.echo.*`. The
//!   parent sends 16-byte requests with the bare panini client under `smol::block_on`.
//!   - `app`: `App::listen(subject, |msg: Msg<Vec<u8>>| async move { msg.data })`, run by
//!     `App::start` (defaults otherwise; the banner off);
//!   - `app-mw`: the same App plus one pass-through listen middleware,
//!     `app.listen_any(|msg, next| next.run(msg))`, as a user would add one (issue #11);
//!   - `bare`: `client.subscribe` and a loop that publishes each reply, spawned on smol's
//!     global executor (where the App's endpoint loop and handlers run too);
//!   - `async-nats`: the same loop spawned on a tokio multi-thread runtime (the
//!     `#[tokio::main]` default);
//!   - `app-nosrv`: the `app` contender with `App::service_api(false)`: no `$SRV`
//!     subscriptions and no per-run counting, so `app / app-nosrv` is the cost of the
//!     Service API's stats (issue #13: at most 3 %).
//! - **stream**: one raw-TCP publisher (`publisher.rs`) sends N 16-byte messages; the child
//!   counts them and reports the time and the CPU time (all its threads) from the first
//!   received to the last and the client's dropped-message count; a round fails unless
//!   all N arrive and none was dropped. Both subscriptions get a capacity of N
//!   (`subscription_capacity`).
//!   - `app`: an App endpoint `|_: Msg<Vec<u8>>| ...` counting in an atomic (with
//!     `APP_BENCH_HANDLE_ARG=1`, the earlier `|_: Msg<Vec<u8>>, app: AppHandle| ...`);
//!   - `app-mw`: the same App plus the same pass-through `listen_any` middleware;
//!   - `bare`: a subscriber loop spawned on smol's global executor;
//!   - `app-nosrv`: the `app` contender with `App::service_api(false)`.
//!
//! Rounds rotate which contender goes first; the table gives medians and ratios of medians
//! (App and App + middleware against the bare client and async-nats). With `app-nosrv`, a
//! second table gives the Service API's cost: the extra time per message of `app` (from
//! throughputs `nosrv / app - 1`, from latencies and CPU times `app / nosrv - 1`), from the
//! medians and as the median of each round's pair.
//!
//! To profile one contender's child:
//! `APP_BENCH_WRAP="valgrind --tool=callgrind" app_bench --quick --only stream --kind app`.

#[allow(dead_code)]
#[path = "../cpu.rs"]
mod cpu;
#[path = "../publisher.rs"]
mod publisher;
#[allow(dead_code)]
#[path = "../report.rs"]
mod report;
#[allow(dead_code)]
#[path = "../server.rs"]
mod server;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use panini::client::ConnectOptions;
use panini::{App, AppHandle, Msg};

use cpu::cpu_ns;
use publisher::Burst;
use report::{median, percentile};

/// Errors of a benchmark program: anything, with a message.
pub type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// Payload of every request and reply.
const REQUEST_PAYLOAD: &[u8] = b"0123456789abcdef";

/// Bound on waiting for a child's answer, so a lost message fails the round.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
struct Config {
    rounds: usize,
    sequential: usize,
    concurrent: usize,
    in_flight: usize,
    stream: usize,
}

const FULL: Config = Config {
    rounds: 5,
    sequential: 20_000,
    concurrent: 100_000,
    in_flight: 64,
    stream: 500_000,
};

const QUICK: Config = Config {
    rounds: 2,
    sequential: 2_000,
    concurrent: 10_000,
    in_flight: 64,
    stream: 50_000,
};

const USAGE: &str = "usage: app_bench [--quick] [--rounds N] \
                     [--only sequential|concurrent|stream] \
                     [--kinds app,app-mw,bare,async-nats,app-nosrv]";

const WORKLOADS: [&str; 3] = ["sequential", "concurrent", "stream"];
/// Every contender, in table order.
const KINDS: [&str; 5] = ["app", "app-mw", "bare", "async-nats", "app-nosrv"];
/// The contenders of the stream workload (async-nats has no stream child).
const STREAM_KINDS: [&str; 4] = ["app", "app-mw", "bare", "app-nosrv"];

fn main() {
    if std::env::var_os("PANINI_LOG").is_none() {
        std::env::set_var("PANINI_LOG", "warn");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--respond", kind, url, subject] => respond(kind, url, subject),
        ["--count", kind, url, subject, n] => match n.parse() {
            Ok(n) => count(kind, url, subject, n),
            Err(e) => Err(format!("--count: {e}").into()),
        },
        ref rest => parse_args(rest).and_then(run),
    };
    if let Err(e) = outcome {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

struct Args {
    cfg: Config,
    only: Option<String>,
    /// The contenders to run (`None`: all).
    kinds: Option<Vec<String>>,
}

fn parse_args(args: &[&str]) -> Result<Args> {
    let mut out = Args {
        cfg: FULL,
        only: None,
        kinds: None,
    };
    let mut rounds = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match *arg {
            "--quick" => out.cfg = QUICK,
            "--only" => out.only = it.next().map(|w| w.to_string()),
            "--kind" | "--kinds" => {
                out.kinds = it
                    .next()
                    .map(|k| k.split(',').map(|k| k.trim().to_string()).collect())
            }
            "--rounds" => match it.next().and_then(|r| r.parse().ok()) {
                Some(r) if r > 0 => rounds = Some(r),
                _ => return Err(USAGE.into()),
            },
            _ => return Err(USAGE.into()),
        }
    }
    if let Some(r) = rounds {
        out.cfg.rounds = r;
    }
    let bad_only = out.only.as_deref().is_some_and(|w| !WORKLOADS.contains(&w));
    let bad_kind = out
        .kinds
        .as_ref()
        .is_some_and(|ks| ks.is_empty() || ks.iter().any(|k| !KINDS.contains(&k.as_str())));
    if bad_only || bad_kind {
        return Err(USAGE.into());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Parent

fn run(args: Args) -> Result<()> {
    let server = server::NatsServer::start()?;
    let url = server.url().to_string();
    eprintln!("nats-server at {url}; {:?}", args.cfg);
    let kinds = |all: &[&'static str]| -> Vec<&'static str> {
        all.iter()
            .copied()
            .filter(|k| {
                args.kinds
                    .as_ref()
                    .is_none_or(|want| want.iter().any(|w| w == k))
            })
            .collect()
    };
    let wanted = |w: &str| args.only.as_deref().is_none_or(|o| o == w);
    let cfg = args.cfg;
    let mut rows = Vec::new();
    if wanted("sequential") {
        let n = cfg.sequential;
        let labels = [
            format!("request/reply sequential, {n} (round trips/s)"),
            "request/reply sequential p50 latency (lower is better)".into(),
            "request/reply sequential p99 latency (lower is better)".into(),
        ];
        let units = [Unit::PerSec, Unit::Micros, Unit::Micros];
        rows.extend(compare(
            &cfg,
            &kinds(&KINDS),
            &labels,
            &units,
            |kind, tag| {
                let subject = format!("bench.echo.seq.{tag}");
                let _child = Spawned::new(&["--respond", kind, &url, &subject])?;
                sequential(&url, &subject, n)
            },
        )?);
    }
    if wanted("concurrent") {
        let (n, k) = (cfg.concurrent, cfg.in_flight);
        let labels = [format!("request/reply {k} in flight, {n} (round trips/s)")];
        rows.extend(compare(
            &cfg,
            &kinds(&KINDS),
            &labels,
            &[Unit::PerSec],
            |kind, tag| {
                let subject = format!("bench.echo.conc.{tag}");
                let _child = Spawned::new(&["--respond", kind, &url, &subject])?;
                Ok(vec![concurrent(&url, &subject, n, k)?])
            },
        )?);
    }
    if wanted("stream") {
        let n = cfg.stream;
        let labels = [
            format!("stream endpoint, {n} x 16 B (msgs/s)"),
            "stream endpoint CPU per message (lower is better)".into(),
        ];
        rows.extend(compare(
            &cfg,
            &kinds(&STREAM_KINDS),
            &labels,
            &[Unit::PerSec, Unit::Nanos],
            |kind, tag| {
                let subject = format!("bench.stream.{tag}");
                let publisher = Burst::new(&subject, n, 16).connect(&url, None)?;
                let mut child = Spawned::new(&["--count", kind, &url, &subject, &n.to_string()])?;
                let sending = publisher.go();
                let line = child.line()?;
                sending.join().map_err(|_| "publisher panicked")??;
                let parts: Vec<&str> = line.split_whitespace().collect();
                let ["done", secs, cpu, dropped] = parts[..] else {
                    return Err(format!("{kind}: unexpected {line:?}").into());
                };
                if dropped != "0" {
                    return Err(format!("{kind} dropped {dropped} messages").into());
                }
                let secs: f64 = secs.parse()?;
                let cpu: f64 = cpu.parse()?;
                Ok(vec![(n - 1) as f64 / secs, cpu * 1e9 / (n - 1) as f64])
            },
        )?);
    }
    println!("{}", tables(&rows));
    Ok(())
}

/// `count` requests one after the other: round trips/s, p50 and p99 in µs.
fn sequential(url: &str, subject: &str, count: usize) -> Result<Vec<f64>> {
    smol::block_on(async {
        let client = panini::client::connect(url).await?;
        client.request(subject, REQUEST_PAYLOAD).await?; // warm-up
        let mut samples = Vec::with_capacity(count);
        let start = Instant::now();
        for _ in 0..count {
            let sent = Instant::now();
            client.request(subject, REQUEST_PAYLOAD).await?;
            samples.push(sent.elapsed());
        }
        let total = start.elapsed();
        client.close().await;
        samples.sort_unstable();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        Ok(vec![
            count as f64 / total.as_secs_f64(),
            us(percentile(&samples, 50.0)),
            us(percentile(&samples, 99.0)),
        ])
    })
}

/// `total` requests from `in_flight` futures sharing one client: round trips/s.
fn concurrent(url: &str, subject: &str, total: usize, in_flight: usize) -> Result<f64> {
    smol::block_on(async {
        let client = panini::client::connect(url).await?;
        client.request(subject, REQUEST_PAYLOAD).await?; // warm-up
        let each = total / in_flight;
        let start = Instant::now();
        let workers = (0..in_flight).map(|_| async {
            for _ in 0..each {
                client.request(subject, REQUEST_PAYLOAD).await?;
            }
            Ok::<_, panini::Error>(())
        });
        futures::future::try_join_all(workers).await?;
        let elapsed = start.elapsed();
        client.close().await;
        Ok((each * in_flight) as f64 / elapsed.as_secs_f64())
    })
}

#[derive(Clone, Copy)]
enum Unit {
    PerSec,
    Micros,
    Nanos,
}

impl Unit {
    fn format(self, v: f64) -> String {
        match self {
            _ if v.is_nan() => "-".into(),
            Unit::PerSec if v >= 1e6 => format!("{:.2} M/s", v / 1e6),
            Unit::PerSec => format!("{:.1} k/s", v / 1e3),
            Unit::Micros => format!("{v:.1} µs"),
            Unit::Nanos => format!("{v:.0} ns"),
        }
    }

    /// How much more time per message `a` takes than `b` (a fraction): from throughputs,
    /// `b / a - 1`; from latencies and CPU times, `a / b - 1`.
    fn cost(self, a: f64, b: f64) -> f64 {
        match self {
            Unit::PerSec => b / a - 1.0,
            Unit::Micros | Unit::Nanos => a / b - 1.0,
        }
    }
}

struct Row {
    label: String,
    unit: Unit,
    /// Median per kind, in `KINDS` order (NaN where not run).
    medians: [f64; KINDS.len()],
    /// Every round's figure per kind, in `KINDS` order (empty where not run).
    rounds: [Vec<f64>; KINDS.len()],
}

impl Row {
    /// The median kind `k`'s figure.
    fn of(&self, kind: &str) -> f64 {
        KINDS
            .iter()
            .position(|k| *k == kind)
            .map_or(f64::NAN, |k| self.medians[k])
    }

    /// The median over rounds of the cost of `a` against `b` in the same round (the two
    /// ran one after the other, so a drift of the shared machine's load cancels out).
    fn paired_cost(&self, a: &str, b: &str) -> f64 {
        let at = |kind: &str| KINDS.iter().position(|k| *k == kind);
        let (Some(a), Some(b)) = (at(a), at(b)) else {
            return f64::NAN;
        };
        let pairs = self.rounds[a].iter().zip(&self.rounds[b]);
        median(pairs.map(|(x, y)| self.unit.cost(*x, *y)).collect())
    }
}

/// Runs `work(kind, tag)` for every kind, `rounds` times, rotating who goes first; one row
/// per label with each kind's median.
fn compare(
    cfg: &Config,
    kinds: &[&'static str],
    labels: &[String],
    units: &[Unit],
    mut work: impl FnMut(&str, String) -> Result<Vec<f64>>,
) -> Result<Vec<Row>> {
    let mut figures: Vec<Vec<Vec<f64>>> = vec![Vec::new(); KINDS.len()]; // kind -> rounds
    for round in 0..cfg.rounds {
        let mut order = kinds.to_vec();
        order.rotate_left(round % kinds.len().max(1));
        for kind in order {
            let k = KINDS.iter().position(|x| *x == kind).unwrap_or(0);
            // The same length for every kind: a subject's length shows in the parse cost.
            let tag = format!("k{k}r{round}");
            let got = work(kind, tag)?;
            let shown: Vec<String> = got.iter().zip(units).map(|(v, u)| u.format(*v)).collect();
            eprintln!("  {:<50} {:<10} {}", labels[0], kind, shown.join(", "));
            figures[k].push(got);
        }
    }
    Ok(labels
        .iter()
        .zip(units)
        .enumerate()
        .map(|(l, (label, unit))| Row {
            label: label.clone(),
            unit: *unit,
            medians: std::array::from_fn(|k| median(figures[k].iter().map(|r| r[l]).collect())),
            rounds: std::array::from_fn(|k| figures[k].iter().map(|r| r[l]).collect()),
        })
        .collect())
}

/// The main table and, when `app-nosrv` ran, the Service API's cost; the main table is
/// left out when only `app` and `app-nosrv` ran.
fn tables(rows: &[Row]) -> String {
    let ran = |kind: &str| rows.iter().any(|r| !r.of(kind).is_nan());
    let mut out = String::new();
    if ran("bare") || ran("async-nats") || !ran("app-nosrv") {
        out.push_str(&table(rows));
    }
    if ran("app-nosrv") {
        out.push('\n');
        out.push_str(&cost_table(rows));
    }
    out
}

/// `app` against `app-nosrv`: the cost of the Service API's stats.
fn cost_table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| workload | App (median) | App, service_api(false) (median) | app / app-nosrv \
         | Service API cost (medians) | Service API cost (median of rounds) |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    let percent = |c: f64| match c {
        c if c.is_finite() => format!("{:+.1} %", c * 100.0),
        _ => "-".into(),
    };
    for r in rows {
        let (app, nosrv) = (r.of("app"), r.of("app-nosrv"));
        let ratio = match app / nosrv {
            q if q.is_finite() => format!("{q:.3}"),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {ratio} | {} | {} |\n",
            r.label,
            r.unit.format(app),
            r.unit.format(nosrv),
            percent(r.unit.cost(app, nosrv)),
            percent(r.paired_cost("app", "app-nosrv")),
        ));
    }
    out
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| workload | App (median) | App + mw (median) | bare client (median) \
         | async-nats (median) | App / bare | App + mw / bare | App / async-nats \
         | App + mw / async-nats |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let ratio = |a: f64, b: f64| match a / b {
        r if r.is_finite() => format!("{r:.2}"),
        _ => "-".into(),
    };
    for r in rows {
        let [app, app_mw, bare, theirs, _] = r.medians;
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.label,
            r.unit.format(app),
            r.unit.format(app_mw),
            r.unit.format(bare),
            r.unit.format(theirs),
            ratio(app, bare),
            ratio(app_mw, bare),
            ratio(app, theirs),
            ratio(app_mw, theirs),
        ));
    }
    out
}

/// A child process of this binary that has printed `ready`; killed and reaped on drop.
struct Spawned {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Under a wrapper (a profiler): end with SIGTERM, so it can write its output.
    wrapped: bool,
}

impl Spawned {
    fn new(args: &[&str]) -> Result<Self> {
        // For profiling: APP_BENCH_WRAP="valgrind --tool=callgrind" runs each child under it.
        let wrap = std::env::var("APP_BENCH_WRAP").unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let exe = std::env::current_exe()?;
        let mut command = match words.next() {
            Some(tool) => {
                let mut c = Command::new(tool);
                c.args(words).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let mut child = command.args(args).stdout(Stdio::piped()).spawn()?;
        let stdout = child.stdout.take().ok_or("child has no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let wrapped = !wrap.trim().is_empty();
        let mut spawned = Spawned {
            child,
            lines,
            wrapped,
        };
        let first = spawned.line()?;
        if first != "ready" {
            return Err(format!("child {args:?} did not get ready: {first:?}").into());
        }
        Ok(spawned)
    }

    /// The child's next line, within `CHILD_TIMEOUT`.
    fn line(&mut self) -> Result<String> {
        self.lines
            .recv_timeout(CHILD_TIMEOUT)
            .map_err(|e| format!("child gave no line ({e}): messages lost?").into())
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if self.wrapped {
            let pid = self.child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Children

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// For `app-mw`: one listen middleware that only passes the message on, registered the
/// way a user would; nothing for `app`.
fn with_middleware(kind: &str, app: &mut App) {
    if kind == "app-mw" {
        app.listen_any(|msg, next| next.run(msg));
    }
}

/// Echoes `subject` until killed.
fn respond(kind: &str, url: &str, subject: &str) -> Result<()> {
    match kind {
        "app" | "app-mw" | "app-nosrv" => {
            let mut app = App::new("bench_app")
                .servers([url])
                .banner(false)
                .service_api(kind != "app-nosrv");
            with_middleware(kind, &mut app);
            app.listen(subject, |msg: Msg<Vec<u8>>| async move { msg.data });
            // Tasks start once every endpoint is subscribed and the server has the SUBs.
            app.task(|_app: AppHandle| async move { say("ready") });
            app.start()
        }
        "bare" => smol::block_on(async {
            let client = panini::client::connect(url).await?;
            let mut sub = client.subscribe(subject).await?;
            client.flush().await?;
            let serve = smol::spawn(async move {
                while let Some(msg) = sub.next().await {
                    if let Some(reply) = &msg.reply {
                        let _ = client.publish(reply, &msg.payload).await;
                    }
                }
            });
            say("ready");
            serve.await;
            Ok(())
        }),
        "async-nats" => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(async {
                let client = async_nats::connect(url).await?;
                let mut sub = client.subscribe(subject.to_string()).await?;
                client.flush().await?;
                // flush only writes the socket: a request nobody serves makes sure the
                // server has processed the SUB.
                let probe = format!("{subject}.nobody");
                let _ = client.request(probe, bytes::Bytes::new()).await;
                let serve = tokio::spawn(async move {
                    while let Some(msg) = futures::StreamExt::next(&mut sub).await {
                        if let Some(reply) = msg.reply {
                            let _ = client.publish(reply, msg.payload).await;
                        }
                    }
                });
                say("ready");
                serve.await?;
                Ok(())
            }),
        other => Err(format!("--respond: unknown kind {other:?}").into()),
    }
}

static RECEIVED: AtomicUsize = AtomicUsize::new(0);
static FIRST: OnceLock<(Instant, u64)> = OnceLock::new();
/// The counting App's handle, for the client's dropped count at the end.
static APP: OnceLock<AppHandle> = OnceLock::new();

/// The `done` line: seconds and CPU seconds from the first message to the last, and the
/// client's dropped-message count.
fn done_line(first: (Instant, u64), dropped: u64) -> String {
    let cpu = cpu_ns().saturating_sub(first.1) as f64 / 1e9;
    format!("done {} {cpu} {dropped}", first.0.elapsed().as_secs_f64())
}

/// Counts `n` messages on `subject`, then prints `done <seconds first..last> <CPU seconds
/// first..last> <dropped>`.
fn count(kind: &str, url: &str, subject: &str, n: usize) -> Result<()> {
    match kind {
        "app" | "app-mw" | "app-nosrv" => {
            let mut app = App::new("bench_app")
                .servers([url])
                .banner(false)
                .service_api(kind != "app-nosrv")
                .nats_options(move |o| o.subscription_capacity(n));
            with_middleware(kind, &mut app);
            if std::env::var_os("APP_BENCH_HANDLE_ARG").is_some() {
                // The handler of the figures before 2026-12-03: it also takes the
                // `AppHandle`, a clone (and drop) per message that the bare loop does not do.
                app.listen(
                    subject,
                    move |_msg: Msg<Vec<u8>>, app: AppHandle| async move {
                        let first = *FIRST.get_or_init(|| (Instant::now(), cpu_ns()));
                        if RECEIVED.fetch_add(1, Ordering::AcqRel) + 1 == n {
                            let dropped = app.client().statistics().dropped_msgs;
                            say(&done_line(first, dropped));
                        }
                    },
                );
            } else {
                // The same work per message as the bare loop: note the first, count; the
                // client (for the dropped count) is read once, at the end.
                app.listen(subject, move |_msg: Msg<Vec<u8>>| async move {
                    let first = *FIRST.get_or_init(|| (Instant::now(), cpu_ns()));
                    if RECEIVED.fetch_add(1, Ordering::AcqRel) + 1 == n {
                        let client = APP.get().map(|app| app.client().clone());
                        let dropped = client.map_or(u64::MAX, |c| c.statistics().dropped_msgs);
                        say(&done_line(first, dropped));
                    }
                });
            }
            app.task(|app: AppHandle| async move {
                let _ = APP.set(app);
                say("ready")
            });
            app.start()
        }
        "bare" => smol::block_on(async {
            let client = ConnectOptions::new([url])
                .subscription_capacity(n)
                .connect()
                .await?;
            let mut sub = client.subscribe(subject).await?;
            client.flush().await?;
            let counting = smol::spawn(async move {
                let mut first = None;
                for _ in 0..n {
                    sub.next().await?;
                    first.get_or_insert_with(|| (Instant::now(), cpu_ns()));
                }
                first.map(|first| done_line(first, client.statistics().dropped_msgs))
            });
            say("ready");
            let done = counting.await.ok_or("subscription ended early")?;
            say(&done);
            futures_lite::future::pending::<()>().await;
            Ok(())
        }),
        other => Err(format!("--count: unknown kind {other:?}").into()),
    }
}
