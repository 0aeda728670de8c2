//! `App::threads` with a CPU-bound handler: request/reply with a fixed amount of work per
//! request (50 µs by default), many requests in flight, served by a `panini::App` child
//! run at each thread count, in one run, against one `nats-server` that this program
//! starts.
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml --bin threads_bench -- \
//!     [--threads 1,2] [--rounds 5] [--requests 20000] [--in-flight 64] [--work-us 50]
//! ```
//!
//! The work is a fixed number of loop iterations (not a clock to spin on, which a thread
//! preempted mid-request would count as work done), calibrated once by the parent to take
//! `--work-us` on one thread of this machine and passed to every child: every thread count
//! does the same work. The handler does not await: the case of a CPU-heavy handler. The
//! parent sends the requests with the bare panini client (`--in-flight` futures sharing
//! one client) and reports round trips/s. Rounds rotate which thread count goes first; the
//! table gives medians and each median against the first thread count's.
//!
//! With `--async-nats`, the same work is also served by async-nats on a tokio runtime of
//! as many worker threads, each request in a task of its own (`tokio::spawn`): the
//! reference for what a second thread can give on this machine, where `nats-server` and
//! this program's requester share the cores with the served side.
//!
//! Each round also reads the CPU time (`/proc/PID/task/*/schedstat`) of the served child,
//! of `nats-server` and of this program (the requester) over the measured requests. The
//! second table gives it per request, and the ceiling that follows from it: with `cores`
//! cores and nothing else running, no thread count can serve more than `cores / (CPU of
//! all three per request)` requests a second, since every request costs the machine that
//! much wherever it runs. `ceiling / first thread count's rate` is the most a second
//! thread could give on this machine; when it is under a goal, the goal needs more cores
//! (or the requester and the server elsewhere), not a better executor.

#[allow(dead_code)]
#[path = "../cpu.rs"]
mod cpu;
#[allow(dead_code)]
#[path = "../report.rs"]
mod report;
#[allow(dead_code)]
#[path = "../server.rs"]
mod server;

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use panini::{App, AppHandle, Msg};
use report::median;

/// Errors of a benchmark program: anything, with a message.
pub type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

const USAGE: &str = "usage: threads_bench [--threads 1,2] [--rounds N] [--requests N] \
                     [--in-flight N] [--work-us N] [--async-nats]";

struct Args {
    threads: Vec<usize>,
    rounds: usize,
    requests: usize,
    in_flight: usize,
    work_us: u64,
    async_nats: bool,
}

fn main() {
    if std::env::var_os("PANINI_LOG").is_none() {
        std::env::set_var("PANINI_LOG", "warn");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--respond", kind, url, subject, iters, threads] => {
            match (iters.parse(), threads.parse()) {
                (Ok(iters), Ok(threads)) if kind == "app" => respond(url, subject, iters, threads),
                (Ok(iters), Ok(threads)) => respond_tokio(url, subject, iters, threads),
                _ => Err("--respond app|async-nats URL SUBJECT ITERATIONS THREADS".into()),
            }
        }
        ref rest => parse_args(rest).and_then(run),
    };
    if let Err(e) = outcome {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn parse_args(args: &[&str]) -> Result<Args> {
    let mut out = Args {
        threads: vec![1, 2],
        rounds: 5,
        requests: 20_000,
        in_flight: 64,
        work_us: 50,
        async_nats: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if *arg == "--async-nats" {
            out.async_nats = true;
            continue;
        }
        let value = it.next().ok_or(USAGE)?;
        let number = || value.parse::<usize>().ok().filter(|n| *n > 0).ok_or(USAGE);
        match *arg {
            "--threads" => {
                out.threads = value
                    .split(',')
                    .map(|t| t.parse().ok().filter(|n| *n > 0))
                    .collect::<Option<_>>()
                    .ok_or(USAGE)?
            }
            "--rounds" => out.rounds = number()?,
            "--requests" => out.requests = number()?,
            "--in-flight" => out.in_flight = number()?,
            "--work-us" => out.work_us = number()? as u64,
            _ => return Err(USAGE.into()),
        }
    }
    Ok(out)
}

/// The work of one request: `iters` rounds of a multiply-add the compiler cannot skip.
fn work(iters: u64) -> u64 {
    let mut x = black_box(0x9e37_79b9_7f4a_7c15u64);
    for _ in 0..iters {
        x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
    x
}

/// The iterations that take `us` microseconds on this thread (the best of 20 tries of
/// 10 ms: the least disturbed by neighbours).
fn calibrate(us: u64) -> u64 {
    let probe = 1_000_000u64;
    let best = (0..20)
        .map(|_| {
            let start = Instant::now();
            work(probe);
            start.elapsed()
        })
        .min()
        .unwrap_or(Duration::from_millis(1));
    (probe as f64 * us as f64 / (best.as_secs_f64() * 1e6)).max(1.0) as u64
}

fn run(args: Args) -> Result<()> {
    let server = server::NatsServer::start()?;
    let url = server.url().to_string();
    let iters = calibrate(args.work_us);
    eprintln!(
        "nats-server at {url}; {} requests, {} in flight, {} µs of work each ({iters} \
         iterations), threads {:?}, {} rounds",
        args.requests, args.in_flight, args.work_us, args.threads, args.rounds
    );
    let kinds: &[&str] = if args.async_nats {
        &["app", "async-nats"]
    } else {
        &["app"]
    };
    let runs: Vec<(&str, usize)> = kinds
        .iter()
        .flat_map(|k| args.threads.iter().map(move |t| (*k, *t)))
        .collect();
    let mut figures = vec![Vec::new(); runs.len()];
    for round in 0..args.rounds {
        let mut order: Vec<usize> = (0..runs.len()).collect();
        let n = order.len();
        order.rotate_left(round % n);
        for i in order {
            let (kind, threads) = runs[i];
            let subject = format!("bench.cpu.{}.{threads}.{round}", kind.replace('-', ""));
            let child = Spawned::new(kind, &url, &subject, iters, threads)?;
            let pids = [child.0.id().to_string(), server.pid().to_string()];
            let (rps, cpu) = concurrent(&url, &subject, args.requests, args.in_flight, &pids)?;
            eprintln!(
                "  round {round} {kind} threads {threads}: {:.1} k/s; CPU µs per request: \
                 served {:.1}, nats-server {:.1}, requester {:.1}",
                rps / 1e3,
                cpu.served,
                cpu.server,
                cpu.requester
            );
            figures[i].push((rps, cpu));
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let medians: Vec<(f64, PerRequest)> = figures
        .into_iter()
        .map(|rounds| {
            let of = |f: fn(&(f64, PerRequest)) -> f64| median(rounds.iter().map(f).collect());
            let cpu = PerRequest {
                served: of(|r| r.1.served),
                server: of(|r| r.1.server),
                requester: of(|r| r.1.requester),
            };
            (of(|r| r.0), cpu)
        })
        .collect();
    println!("| served by | threads | round trips/s (median) | against its first thread count |");
    println!("|---|---:|---:|---:|");
    for (i, (kind, threads)) in runs.iter().enumerate() {
        let base = runs
            .iter()
            .position(|r| r.0 == *kind)
            .map_or(f64::NAN, |b| medians[b].0);
        let m = medians[i].0;
        println!(
            "| {kind} | {threads} | {:.1} k/s | {:.2} |",
            m / 1e3,
            m / base
        );
    }
    println!();
    println!(
        "| served by | threads | CPU µs per request: served | nats-server | requester | all \
         | ceiling on {cores} cores | ceiling / first thread count's rate |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (i, (kind, threads)) in runs.iter().enumerate() {
        let base = runs
            .iter()
            .position(|r| r.0 == *kind)
            .map_or(f64::NAN, |b| medians[b].0);
        let cpu = &medians[i].1;
        let all = cpu.served + cpu.server + cpu.requester;
        let ceiling = cores * 1e6 / all;
        println!(
            "| {kind} | {threads} | {:.1} | {:.1} | {:.1} | {all:.1} | {:.1} k/s | {:.2} |",
            cpu.served,
            cpu.server,
            cpu.requester,
            ceiling / 1e3,
            ceiling / base
        );
    }
    Ok(())
}

/// CPU time per request over one measured run, in µs, of each process.
#[derive(Clone, Copy, Debug)]
struct PerRequest {
    served: f64,
    server: f64,
    requester: f64,
}

/// The CPU ns of (served child, nats-server, this program) so far.
fn cpu_now(child: &str, server: &str) -> [u64; 3] {
    [cpu::cpu_ns_of(child), cpu::cpu_ns_of(server), cpu::cpu_ns()]
}

/// `total` requests from `in_flight` futures sharing one client: round trips/s, and the
/// CPU time per request, over the measured requests, of the served child and the server
/// (`pids`) and of this program.
fn concurrent(
    url: &str,
    subject: &str,
    total: usize,
    in_flight: usize,
    pids: &[String; 2],
) -> Result<(f64, PerRequest)> {
    smol::block_on(async {
        let client = panini::client::connect(url).await?;
        client.request(subject, "warm-up").await?;
        let each = total / in_flight;
        let cpu_before = cpu_now(&pids[0], &pids[1]);
        let start = Instant::now();
        let workers = (0..in_flight).map(|_| async {
            for _ in 0..each {
                client.request(subject, "x").await?;
            }
            Ok::<_, panini::Error>(())
        });
        futures::future::try_join_all(workers).await?;
        let elapsed = start.elapsed();
        let cpu_after = cpu_now(&pids[0], &pids[1]);
        client.close().await;
        let done = (each * in_flight) as f64;
        let per = |i: usize| cpu_after[i].saturating_sub(cpu_before[i]) as f64 / 1e3 / done;
        let cpu = PerRequest {
            served: per(0),
            server: per(1),
            requester: per(2),
        };
        Ok((done / elapsed.as_secs_f64(), cpu))
    })
}

/// The child: an App with `threads` threads whose one endpoint does `iters` of work.
fn respond(url: &str, subject: &str, iters: u64, threads: usize) -> Result<()> {
    let mut app = App::new("threads_bench")
        .servers([url])
        .banner(false)
        .threads(threads);
    app.listen(subject, move |_: Msg<Vec<u8>>| async move {
        work(iters).to_le_bytes().to_vec()
    });
    // Tasks start once every endpoint is subscribed and the server has the SUBs.
    app.task(|_app: AppHandle| async move {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "ready");
        let _ = out.flush();
    });
    app.start()
}

/// The child for `--async-nats`: async-nats on a tokio runtime of `threads` workers, each
/// request's work and reply in a task of its own.
fn respond_tokio(url: &str, subject: &str, iters: u64, threads: usize) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?
        .block_on(async {
            let client = async_nats::connect(url).await?;
            let mut sub = client.subscribe(subject.to_string()).await?;
            client.flush().await?;
            // flush only writes the socket: a request nobody serves makes sure the server
            // has processed the SUB.
            let _ = client
                .request(format!("{subject}.nobody"), bytes::Bytes::new())
                .await;
            println!("ready");
            while let Some(msg) = futures::StreamExt::next(&mut sub).await {
                let client = client.clone();
                tokio::spawn(async move {
                    let out = work(iters).to_le_bytes().to_vec();
                    if let Some(reply) = msg.reply {
                        let _ = client.publish(reply, out.into()).await;
                    }
                });
            }
            Ok(())
        })
}

/// A child process of this binary that has printed `ready`; killed and reaped on drop.
struct Spawned(Child);

impl Spawned {
    fn new(kind: &str, url: &str, subject: &str, iters: u64, threads: usize) -> Result<Self> {
        let exe = std::env::current_exe()?;
        let (iters, threads) = (iters.to_string(), threads.to_string());
        let mut child = Command::new(exe)
            .args(["--respond", kind, url, subject, &iters, &threads])
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("child has no stdout")?;
        let spawned = Spawned(child);
        // The child prints `ready` or dies (its error on stderr): no line then.
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        if line.trim() != "ready" {
            return Err(format!("child did not get ready: {line:?}").into());
        }
        Ok(spawned)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
