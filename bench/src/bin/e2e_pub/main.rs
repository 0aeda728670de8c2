//! Publish, end to end (issue #9): a publisher process and a subscriber process on one
//! subject, both ours (panini's client, on smol) or both async-nats (on tokio), against
//! one `nats-server` that this program starts. Every message is `{"data":"event1234567890"}`
//! serialised with serde_json as it is published, and deserialised as it is received.
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml --bin e2e_pub -- [--rounds N]
//!     [--count N] [--only ours|async-nats] [--pub-end server|flush]
//! ```
//!
//! Each round runs ours and async-nats in turn (who goes first swaps every round), each
//! with a fresh subscriber process, a fresh publisher process and a fresh subject. The
//! subscriber says `ready` once the server has its SUB; only then does the publisher
//! start. Per side: msgs/s and CPU time per message; per round also nats-server's CPU per
//! message, the machine's idle share and how many messages arrived. The per-round lines
//! go to stderr; the table on stdout gives medians and ratios of medians. Defaults: 5
//! rounds of 200,000 messages; the publisher's clock stops when the server has processed
//! every publish (see [`PubEnd`]).
//!
//! To profile one side, wrap its process: `E2E_WRAP_PUB="valgrind --tool=callgrind"` (or
//! `E2E_WRAP_SUB`, or `strace -c -f -o FILE`) runs every publisher (subscriber) under it.
//!
//! # Layout
//! - `main.rs`: the parent: arguments, rounds, per-round lines, medians and the table.
//! - `role.rs`: what both roles share: the event, where the publisher's clock stops, the
//!   `done` line, CPU time, the `end` signal and the subscriber's tally.
//! - `child.rs`: a role's child process and the lines it speaks.
//! - `ours.rs`, `theirs.rs`: the publisher and the subscriber against each client.

mod child;
mod ours;
mod role;
mod theirs;

#[path = "../../cpu.rs"]
mod cpu;
#[allow(dead_code)]
#[path = "../../report.rs"]
mod report;
#[allow(dead_code)]
#[path = "../../server.rs"]
mod server;

use child::RoleChild;
use report::{median, Row, Unit};
use role::{Done, PubEnd};

/// Any error, with a message.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of a benchmark program: anything, with a message.
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

const USAGE: &str = "usage: e2e_pub [--rounds N] [--count N] [--only ours|async-nats] \
                     [--pub-end server|flush]
  (a child runs as: e2e_pub --pub|--sub ours|async-nats URL SUBJECT COUNT [server|flush])";

/// The contenders, in table order: `ours` is panini's client, `async-nats` the peer.
const KINDS: [&str; 2] = ["ours", "async-nats"];

fn main() {
    // Connect and close lines of every child would bury the output; warnings still show.
    if std::env::var_os("PANINI_LOG").is_none() {
        std::env::set_var("PANINI_LOG", "warn");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [flag @ ("--pub" | "--sub"), kind, url, subject, count] => {
            child_role(flag, kind, url, subject, count, PubEnd::Server)
        }
        ["--pub", kind, url, subject, count, end] => match PubEnd::parse(end) {
            Some(end) => child_role("--pub", kind, url, subject, count, end),
            None => Err(USAGE.into()),
        },
        ref rest => parse_args(rest).and_then(run),
    };
    if let Err(e) = outcome {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// A child: runs one role once and prints its `done` line.
fn child_role(
    flag: &str,
    kind: &str,
    url: &str,
    subject: &str,
    count: &str,
    end: PubEnd,
) -> Result<()> {
    let n: usize = count.parse().map_err(|e| format!("COUNT {count:?}: {e}"))?;
    let done = match (flag, kind) {
        ("--pub", "ours") => ours::publish(url, subject, n, end)?,
        ("--pub", "async-nats") => theirs::publish(url, subject, n, end)?,
        ("--sub", "ours") => ours::subscribe(url, subject, n, role::end_signal())?,
        ("--sub", "async-nats") => theirs::subscribe(url, subject, n, role::end_signal())?,
        _ => return Err(USAGE.into()),
    };
    role::say(&done.line());
    Ok(())
}

/// What to run.
#[derive(Debug)]
struct Args {
    /// Rounds; each runs every contender once.
    rounds: usize,
    /// Messages per round.
    count: usize,
    /// One contender only (for profiling).
    only: Option<String>,
    /// Where the publisher's clock stops.
    pub_end: PubEnd,
}

fn parse_args(args: &[&str]) -> Result<Args> {
    let mut out = Args {
        rounds: 5,
        count: 200_000,
        only: None,
        pub_end: PubEnd::Server,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut number = || match it.next().and_then(|v| v.parse().ok()) {
            Some(v) if v > 1 || (v == 1 && *arg == "--rounds") => Ok(v),
            _ => Err(USAGE),
        };
        match *arg {
            "--rounds" => out.rounds = number()?,
            "--count" => out.count = number()?,
            "--only" => out.only = it.next().map(|k| k.to_string()),
            "--pub-end" => out.pub_end = it.next().and_then(|e| PubEnd::parse(e)).ok_or(USAGE)?,
            _ => return Err(USAGE.into()),
        }
    }
    if out.only.as_deref().is_some_and(|k| !KINDS.contains(&k)) {
        return Err(USAGE.into());
    }
    Ok(out)
}

/// One round of one contender, as the parent sees it.
#[derive(Clone, Copy, Debug)]
struct Figures {
    /// Publisher: messages per second, first publish to the end of its clock.
    pub_per_sec: f64,
    /// Publisher: its CPU time per message over the same span.
    pub_cpu_ns: f64,
    /// Subscriber: messages per second, first message to the last.
    sub_per_sec: f64,
    /// Subscriber: its CPU time per message over the same span.
    sub_cpu_ns: f64,
    /// The server's CPU time per message over the round (both connections, all threads).
    server_cpu_ns: f64,
    /// Share of the machine's CPU time left idle over the round (0 to 1).
    idle: f64,
    /// Messages the subscriber received and decoded.
    received: usize,
    /// Messages the subscriber's client says it dropped.
    dropped: u64,
}

fn run(args: Args) -> Result<()> {
    let server = server::NatsServer::start()?;
    let url = server.url().to_string();
    let kinds: Vec<&str> = KINDS
        .into_iter()
        .filter(|k| args.only.as_deref().is_none_or(|o| o == *k))
        .collect();
    eprintln!(
        "nats-server at {url}; {} msgs x {} rounds; publisher's clock ends at {}; load average {}",
        args.count,
        args.rounds,
        args.pub_end.name(),
        load_average()
    );
    let mut figures: Vec<Vec<Figures>> = vec![Vec::new(); KINDS.len()];
    for round in 0..args.rounds {
        let mut order = kinds.clone();
        order.rotate_left(round % kinds.len());
        for kind in order {
            let tag = format!("{}{round}", kind.replace('-', ""));
            let got = one_round(&url, server.pid(), kind, &tag, args.count, args.pub_end)?;
            eprintln!(
                "  round {round} {kind:<10} pub {} {} | sub {} {} | server {} | idle {:.0}% \
                 | received {} of {}{}",
                Unit::PerSec.format(got.pub_per_sec),
                Unit::Nanos.format(got.pub_cpu_ns),
                Unit::PerSec.format(got.sub_per_sec),
                Unit::Nanos.format(got.sub_cpu_ns),
                Unit::Nanos.format(got.server_cpu_ns),
                got.idle * 100.0,
                got.received,
                args.count,
                match got.dropped {
                    0 => String::new(),
                    d => format!(" (client reports {d} dropped)"),
                },
            );
            let k = KINDS.iter().position(|x| *x == kind).unwrap_or(0);
            figures[k].push(got);
        }
    }
    let med = |kind: &str, f: fn(&Figures) -> f64| {
        let k = KINDS.iter().position(|x| *x == kind).unwrap_or(0);
        median(figures[k].iter().map(f).collect())
    };
    let row = |label: String, unit: Unit, pick: fn(&Figures) -> f64| Row {
        label,
        unit,
        ours: med("ours", pick),
        theirs: med("async-nats", pick),
    };
    let n = args.count;
    let rows = [
        row(
            format!("publisher, {n} serialised events (msgs/s)"),
            Unit::PerSec,
            |f| f.pub_per_sec,
        ),
        row(
            format!("subscriber, {n} deserialised events (msgs/s)"),
            Unit::PerSec,
            |f| f.sub_per_sec,
        ),
        row("publisher CPU per message".into(), Unit::Nanos, |f| {
            f.pub_cpu_ns
        }),
        row("subscriber CPU per message".into(), Unit::Nanos, |f| {
            f.sub_cpu_ns
        }),
        row("nats-server CPU per message".into(), Unit::Nanos, |f| {
            f.server_cpu_ns
        }),
    ];
    println!("{}", report::table(&rows));
    for kind in &kinds {
        let k = KINDS.iter().position(|x| x == kind).unwrap_or(0);
        let lost: usize = figures[k].iter().map(|f| n - f.received.min(n)).sum();
        println!(
            "{kind}: {lost} of {} messages lost over {} rounds",
            n * figures[k].len(),
            figures[k].len()
        );
    }
    eprintln!("load average after the run: {}", load_average());
    Ok(())
}

/// One contender, one round: the subscriber child gets ready, the publisher child
/// publishes everything, then the subscriber is told to stop waiting and reports.
fn one_round(
    url: &str,
    server: u32,
    kind: &str,
    tag: &str,
    n: usize,
    end: PubEnd,
) -> Result<Figures> {
    let subject = format!("bench.e2e.{tag}");
    let count = n.to_string();
    let wrap = |var: &str| std::env::var(var).unwrap_or_default();
    let server = server.to_string();
    let server_cpu = role::cpu_ns_of(&server);
    let machine = role::machine_ticks();
    let mut sub = RoleChild::spawn(
        &["--sub", kind, url, &subject, &count],
        &wrap("E2E_WRAP_SUB"),
    )?;
    sub.ready()?;
    let pub_args = ["--pub", kind, url, &subject, &count, end.name()];
    let mut publisher = RoleChild::spawn(&pub_args, &wrap("E2E_WRAP_PUB"))?;
    let sent = publisher.done()?;
    // The server has processed every publish (whatever the end of the publisher's clock):
    // what the subscriber lacks after its own round trip is lost.
    sub.tell("end");
    let got = sub.done()?;
    let server_cpu = role::cpu_ns_of(&server).saturating_sub(server_cpu);
    let (idle, all) = role::machine_ticks();
    let idle = idle.saturating_sub(machine.0) as f64 / (all - machine.1).max(1) as f64;
    publisher.finish()?;
    sub.finish()?;
    Ok(Figures {
        pub_per_sec: sent.count as f64 / sent.secs,
        pub_cpu_ns: per_message_ns(&sent),
        sub_per_sec: role::rate(got.count, got.secs),
        sub_cpu_ns: per_message_ns(&got),
        server_cpu_ns: server_cpu as f64 / n as f64,
        idle,
        received: got.count,
        dropped: got.dropped,
    })
}

fn per_message_ns(done: &Done) -> f64 {
    done.cpu_secs * 1e9 / done.count.max(1) as f64
}

/// The first three fields of `/proc/loadavg` (1, 5 and 15 minutes), and the share of the
/// last 10 s in which some runnable task waited for a CPU (`/proc/pressure/cpu`), which
/// shows a busy neighbour sooner than the load average does.
fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into());
    let pressure = std::fs::read_to_string("/proc/pressure/cpu").unwrap_or_default();
    match pressure
        .split_whitespace()
        .find_map(|f| f.strip_prefix("avg10="))
    {
        Some(p) => format!("{load}, CPU pressure {p}%"),
        None => load,
    }
}
