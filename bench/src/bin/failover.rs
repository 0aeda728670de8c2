//! Failover soak: what becomes of requests when the node their requester is on is killed,
//! for panini's client ("ours", on smol) and for async-nats (on tokio), one after the other
//! in one run. `scripts/failover-soak` builds and runs it.
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml --bin failover -- --dir DIR
//!     [--kills 20] [--rate 100] [--timeout-ms 5000] [--service-ms 0] [--settle-ms 500]
//!     [--only ours|async-nats]
//! ```
//!
//! For each client, on a fresh 3-node cluster on loopback (every port picked by the OS on
//! the first start and kept across restarts; `DIR` holds each node's ports and pid file):
//!
//! - **Responder**: one client connected to the first node only (it learns the others
//!   from INFO and fails over like the requester), serving `failover.echo`. It tells the
//!   controller when a request reaches it, then replies after the service time
//!   (`--service-ms`, default 0: at once, as the seed's `listener_app`).
//! - **Requester**: connected to the first node only too, so at the first kill both apps
//!   are on the killed node, as in the issue; after that each is wherever its failover
//!   took it (the table says whether the responder was on the killed node as well). It
//!   sends `--rate` requests a second (default 100), each its own task with a
//!   `--timeout-ms` timeout (default 5 s), and records each one's fate: answered, failed
//!   fast (any error but the timeout, with how long it took), or timed out.
//! - **Kills** (`--kills`, default 20): the controller finds the node the requester is on,
//!   waits until the responder reports a request arriving (so a request is in flight: the
//!   reply is not sent yet), kills that node with SIGKILL at once, waits until the
//!   requester is connected again elsewhere, restarts the node on its ports with routes to
//!   the other two, waits until it has both routes and the responder is connected, lets
//!   traffic run `--settle-ms`, and kills again.
//!
//! Why one responder on the first node rather than one on every node: it is the issue's
//! setup (both apps given one node's URL, both failing over), and it keeps each request on
//! one path. Responders pinned to each node in a queue group would not fail over as an
//! app does, and in our trial runs nats-server 2.9.10 handed the requests to members on
//! every node, not only the requester's, so most requests were served elsewhere anyway.
//!
//! Both clients reconnect at once after a loss. Ours waits 100 ms (+ up to 20 ms jitter)
//! between passes over its pool and never gives up; async-nats keeps its default backoff
//! (0, then 2, 4, 8... ms up to 4 s) and never gives up.
//!
//! A request belongs to the kill whose cycle it was sent in. Cycles meet halfway between
//! the end of one kill's recovery (node routed, responder connected) and the next kill,
//! so the request in flight at a kill, sent just before it, counts for that kill; the
//! last cycle ends when the requester stops. Requests sent before the first cycle are the
//! warm-up. The output is a table per client (one row per kill) and the totals.
//!
//! Every wait is bounded; a run that cannot go on (a node that does not come back, a client
//! that does not reconnect) stops with an error, and dropping the cluster kills its nodes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Errors of a benchmark program: anything, with a message.
type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// Where Debian's package puts the binary; `$NATS_SERVER` overrides it.
const DEBIAN_BINARY: &str = "/usr/sbin/nats-server";

/// The subject the responder serves.
const SUBJECT: &str = "failover.echo";

/// The payload of every request and reply.
const PAYLOAD: &[u8] = b"0123456789abcdef";

/// Bound on each wait of the controller (a node starting, a client reconnecting...).
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// Nodes in the cluster.
const NODES: usize = 3;

/// The run's settings, from the command line.
#[derive(Clone, Debug)]
struct Config {
    kills: usize,
    rate: u32,
    timeout: Duration,
    service: Duration,
    settle: Duration,
    dir: PathBuf,
    only: Option<Kind>,
}

impl Config {
    fn from_args() -> Result<Config> {
        let mut cfg = Config {
            kills: 20,
            rate: 100,
            timeout: Duration::from_millis(5000),
            service: Duration::ZERO,
            settle: Duration::from_millis(500),
            dir: PathBuf::new(),
            only: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or(format!("{flag} needs a value"));
            let ms = |v: String| v.parse().map(Duration::from_millis);
            match flag.as_str() {
                "--kills" => cfg.kills = value()?.parse()?,
                "--rate" => cfg.rate = value()?.parse()?,
                "--timeout-ms" => cfg.timeout = ms(value()?)?,
                "--service-ms" => cfg.service = ms(value()?)?,
                "--settle-ms" => cfg.settle = ms(value()?)?,
                "--dir" => cfg.dir = value()?.into(),
                "--only" => {
                    cfg.only = Some(match value()?.as_str() {
                        "ours" => Kind::Ours,
                        "async-nats" => Kind::AsyncNats,
                        other => return Err(format!("--only ours|async-nats, not {other}").into()),
                    })
                }
                other => return Err(format!("unknown argument {other}").into()),
            }
        }
        if cfg.dir.as_os_str().is_empty() {
            return Err("--dir DIR is required (scripts/failover-soak passes one)".into());
        }
        if !(1..=1000).contains(&cfg.rate) || !(1..=1000).contains(&cfg.kills) {
            return Err("--rate and --kills must be between 1 and 1000".into());
        }
        Ok(cfg)
    }
}

fn main() {
    let cfg = match Config::from_args() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("failover: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "failover soak: {NODES} nodes on loopback, {} kills, {} requests/s, timeout {:?}, \
         service time {:?}, settle {:?}",
        cfg.kills, cfg.rate, cfg.timeout, cfg.service, cfg.settle
    );
    let kinds = match cfg.only {
        Some(kind) => vec![kind],
        None => vec![Kind::Ours, Kind::AsyncNats],
    };
    let mut totals = Vec::new();
    for kind in kinds {
        match soak(kind, &cfg) {
            Ok(report) => {
                report.print(&cfg);
                totals.push((kind, report.totals()));
            }
            Err(e) => {
                eprintln!("failover: {}: {e}", kind.name());
                std::process::exit(1);
            }
        }
    }
    println!("\n## Totals over {} kills\n", cfg.kills);
    println!("| client | sent | answered | failed fast | fast failures took (max) | timed out |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (kind, t) in totals {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            kind.name(),
            t.sent,
            t.answered,
            t.failed,
            ms(t.failed_max),
            t.timed_out
        );
    }
}

// ---------------------------------------------------------------------------------------
// The cluster: nodes on fixed ports once started, killed and restarted by the controller.

/// One `nats-server` of the cluster.
struct Node {
    name: String,
    /// Client, cluster and monitoring ports; 0 until the first start picked them.
    client: u16,
    cluster: u16,
    monitor: u16,
    child: Option<Child>,
    dir: PathBuf,
}

/// The cluster's nodes; dropping it kills them.
struct Cluster {
    nodes: Vec<Node>,
}

impl Cluster {
    /// Starts [`NODES`] nodes under `dir`, routed to the first, and waits until each has
    /// routes to all the others.
    fn start(dir: &Path) -> Result<Cluster> {
        let mut cluster = Cluster { nodes: Vec::new() };
        for i in 0..NODES {
            let name = format!("n{i}");
            let node_dir = dir.join(&name);
            std::fs::create_dir_all(&node_dir)?;
            cluster.nodes.push(Node {
                name,
                client: 0,
                cluster: 0,
                monitor: 0,
                child: None,
                dir: node_dir,
            });
            cluster.launch(i)?;
        }
        for i in 0..NODES {
            cluster.wait_routed(i)?;
        }
        Ok(cluster)
    }

    /// `nats://127.0.0.1:PORT` of node `i`.
    fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].client)
    }

    /// The node listening for clients on `port`.
    fn node_on(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.client == port)
    }

    /// Kills node `i` with SIGKILL and reaps it.
    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again on its ports, routed to the other nodes, and waits until it
    /// has routes to all of them.
    fn restart(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        self.launch(i)?;
        self.wait_routed(i)
    }

    /// Starts node `i`: on ports picked by the OS the first time, on the same ones after.
    fn launch(&mut self, i: usize) -> Result<()> {
        let routes: Vec<String> = (0..self.nodes.len())
            .filter(|&j| j != i && self.nodes[j].cluster != 0)
            .map(|j| format!("nats://127.0.0.1:{}", self.nodes[j].cluster))
            .collect();
        let node = &mut self.nodes[i];
        let port = |p: u16| {
            if p == 0 {
                "-1".to_string()
            } else {
                p.to_string()
            }
        };
        // A stale ports file would be read as the new one.
        for entry in std::fs::read_dir(&node.dir)?.filter_map(|e| e.ok()) {
            if entry.path().extension().is_some_and(|e| e == "ports") {
                std::fs::remove_file(entry.path())?;
            }
        }
        let log = std::fs::File::create(node.dir.join("server.log"))?;
        let mut cmd = Command::new(binary());
        cmd.args(["-a", "127.0.0.1", "-p", &port(node.client)])
            .args(["-m", &port(node.monitor)])
            .args(["--cluster_name", "failover", "-n", &node.name])
            .arg("--cluster")
            .arg(format!("nats://127.0.0.1:{}", port(node.cluster)))
            .arg("--ports_file_dir")
            .arg(&node.dir)
            .arg("-P")
            .arg(node.dir.join("nats-server.pid"));
        if !routes.is_empty() {
            cmd.args(["--routes", &routes.join(",")]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run nats-server: {e} (apt-get install -y nats-server)"))?;
        let pid = child.id();
        node.child = Some(child);
        let ports = wait_for_ports(&node.dir, pid)?;
        let port_of = |kind: &str| -> Result<u16> {
            let url = ports[kind][0].as_str().ok_or(format!("no {kind} port"))?;
            let port = url.rsplit(':').next().unwrap_or_default();
            Ok(port.parse()?)
        };
        node.client = port_of("nats")?;
        node.cluster = port_of("cluster")?;
        node.monitor = port_of("monitoring")?;
        Ok(())
    }

    /// Waits until node `i` reports routes to all the other nodes (`/routez`).
    fn wait_routed(&self, i: usize) -> Result<()> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let routes = routez(self.nodes[i].monitor)
                .ok()
                .and_then(|v| v["num_routes"].as_u64());
            if routes == Some(NODES as u64 - 1) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let log = std::fs::read_to_string(self.nodes[i].dir.join("server.log"))
                    .unwrap_or_default();
                return Err(format!(
                    "node {i} has {routes:?} routes after {STEP_TIMEOUT:?}\n{log}"
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
            // The pid is dead now and may be reused: the script must not find it.
            let _ = std::fs::remove_file(self.nodes[i].dir.join("nats-server.pid"));
        }
    }
}

/// `$NATS_SERVER`, else Debian's `/usr/sbin/nats-server`.
fn binary() -> String {
    std::env::var("NATS_SERVER").unwrap_or_else(|_| DEBIAN_BINARY.into())
}

/// Waits for `nats-server_<pid>.ports` in `dir` and parses it.
fn wait_for_ports(dir: &Path, pid: u32) -> Result<serde_json::Value> {
    let file = dir.join(format!("nats-server_{pid}.ports"));
    let deadline = Instant::now() + STEP_TIMEOUT;
    while Instant::now() < deadline {
        let parsed = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        if let Some(v) = parsed.filter(|v| v["monitoring"][0].is_string()) {
            return Ok(v);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(format!("nats-server wrote no {file:?} within {STEP_TIMEOUT:?}").into())
}

/// `GET /routez` on the monitoring port, as JSON.
fn routez(port: u16) -> Result<serde_json::Value> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.write_all(b"GET /routez HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut text = String::new();
    conn.read_to_string(&mut text)?;
    let body = text.split_once("\r\n\r\n").ok_or("no HTTP body")?.1;
    Ok(serde_json::from_str(body)?)
}

// ---------------------------------------------------------------------------------------
// What both clients share with the controller.

/// Which client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ours,
    AsyncNats,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::AsyncNats => "async-nats",
        }
    }
}

/// How one request ended.
#[derive(Clone, Debug)]
enum Fate {
    Answered,
    /// Any error but the timeout, named.
    Failed(String),
    TimedOut,
}

/// One request: when it was sent, how long it took, how it ended.
#[derive(Clone, Debug)]
struct Record {
    sent: Instant,
    took: Duration,
    fate: Fate,
}

/// The requester's and responder's side of the run, shared with the controller.
struct Probe {
    /// The responder got a request.
    received: mpsc::Sender<()>,
    records: Mutex<Vec<Record>>,
    in_flight: AtomicUsize,
    /// Set by the controller: the requester stops sending.
    stop: AtomicBool,
}

impl Probe {
    fn received(&self) {
        let _ = self.received.send(());
    }

    fn record(&self, sent: Instant, fate: Fate) {
        let took = sent.elapsed();
        self.records
            .lock()
            .unwrap()
            .push(Record { sent, took, fate });
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The connections of one client's run, as the controller looks at them.
struct Clients {
    requester: Conn,
    responder: Conn,
}

/// One connection of either client.
enum Conn {
    Ours(panini::client::Client),
    AsyncNats(Box<async_nats::Client>),
}

impl Conn {
    /// Closes ours (its tasks would otherwise go on reconnecting to the dead cluster while
    /// the next client runs); async-nats's end with their runtime.
    fn close(&self) {
        if let Conn::Ours(client) = self {
            smol::block_on(client.close());
        }
    }

    /// The client port of the node it is connected to; `None` while it is not.
    fn port(&self) -> Option<u16> {
        match self {
            Conn::Ours(client) => client.is_connected().then(|| client.server_info().port),
            Conn::AsyncNats(client) => {
                let up = client.connection_state() == async_nats::connection::State::Connected;
                up.then(|| client.server_info().port)
            }
        }
    }
}

impl Clients {
    /// The client port of the node the requester is connected to; `None` while it is not.
    fn requester_port(&self) -> Option<u16> {
        self.requester.port()
    }

    /// The client port of the node the responder is connected to; `None` while it is not.
    fn responder_port(&self) -> Option<u16> {
        self.responder.port()
    }
}

/// Polls `ready` every few milliseconds until it gives a value, for at most [`STEP_TIMEOUT`].
fn wait_until<T>(what: &str, ready: impl FnMut() -> Option<T>) -> Result<T> {
    wait_within(what, STEP_TIMEOUT, ready)
}

/// Polls `ready` every few milliseconds until it gives a value, for at most `bound`.
fn wait_within<T>(what: &str, bound: Duration, mut ready: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(t) = ready() {
            return Ok(t);
        }
        if Instant::now() >= deadline {
            return Err(format!("{what}: not within {bound:?}").into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ---------------------------------------------------------------------------------------
// The controller.

/// One kill as the controller saw it.
struct Kill {
    node: usize,
    /// Whether the responder was on the killed node too.
    responder_too: bool,
    /// When SIGKILL was sent.
    at: Instant,
    /// From the responder's report of a request to the kill.
    aimed: Duration,
    /// From the kill until the requester was connected elsewhere (polled every 2 ms).
    back: Duration,
    /// From the kill until the node was up again with both routes.
    restarted: Duration,
    /// When the node was routed again and the responder connected.
    recovered: Instant,
}

/// One client's run: the kills and every request.
struct Report {
    kind: Kind,
    kills: Vec<Kill>,
    records: Vec<Record>,
    /// When the warm-up began.
    start: Instant,
    /// When the requester stopped sending.
    end: Instant,
}

/// Runs the soak for one client on a fresh cluster.
fn soak(kind: Kind, cfg: &Config) -> Result<Report> {
    let dir = cfg.dir.join(kind.name());
    let mut cluster = Cluster::start(&dir)?;
    let first = cluster.url(0);
    let (tx, received) = mpsc::channel();
    let probe = Arc::new(Probe {
        received: tx,
        records: Mutex::new(Vec::new()),
        in_flight: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });
    let (clients, requester) = match kind {
        Kind::Ours => ours::start(&first, cfg, probe.clone())?,
        Kind::AsyncNats => theirs::start(&first, cfg, probe.clone())?,
    };
    let start = Instant::now();
    let run = kill_loop(&mut cluster, &clients, &received, cfg);
    probe.stop.store(true, Ordering::SeqCst);
    let end = Instant::now();
    let _ = requester.join();
    // Every request ends by its timeout; wait for the last ones.
    let drained = wait_within(
        "the last requests ending",
        cfg.timeout + STEP_TIMEOUT,
        || (probe.in_flight.load(Ordering::SeqCst) == 0).then_some(()),
    );
    clients.requester.close();
    clients.responder.close();
    let kills = run?;
    drained?;
    drop(cluster);
    let records = std::mem::take(&mut *probe.records.lock().unwrap());
    Ok(Report {
        kind,
        kills,
        records,
        start,
        end,
    })
}

/// The kills, one after the other (see the module docs).
fn kill_loop(
    cluster: &mut Cluster,
    clients: &Clients,
    received: &mpsc::Receiver<()>,
    cfg: &Config,
) -> Result<Vec<Kill>> {
    // Warm-up: traffic flows before the first kill.
    std::thread::sleep(cfg.settle);
    let mut kills = Vec::new();
    for _ in 0..cfg.kills {
        let node = wait_until("the requester connected", || {
            clients
                .requester_port()
                .and_then(|port| cluster.node_on(port))
        })?;
        // Reports queued so far are stale: wait for a request reaching the responder now.
        while received.try_recv().is_ok() {}
        received
            .recv_timeout(STEP_TIMEOUT)
            .map_err(|_| "no request reached the responder")?;
        let reported = Instant::now();
        let responder_too = clients.responder_port() == Some(cluster.nodes[node].client);
        let killed = Instant::now();
        cluster.kill(node);
        wait_until("the requester reconnected", || {
            clients
                .requester_port()
                .filter(|&port| cluster.node_on(port) != Some(node))
        })?;
        let back = killed.elapsed();
        cluster.restart(node)?;
        let restarted = killed.elapsed();
        wait_until("the responder connected", || clients.responder_port())?;
        kills.push(Kill {
            node,
            responder_too,
            at: killed,
            aimed: killed - reported,
            back,
            restarted,
            recovered: Instant::now(),
        });
        std::thread::sleep(cfg.settle);
    }
    Ok(kills)
}

// ---------------------------------------------------------------------------------------
// Counting and printing.

/// Counts of a set of requests.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    sent: usize,
    answered: usize,
    failed: usize,
    failed_max: Duration,
    timed_out: usize,
}

impl Counts {
    fn add(&mut self, r: &Record) {
        self.sent += 1;
        match r.fate {
            Fate::Answered => self.answered += 1,
            Fate::Failed(_) => {
                self.failed += 1;
                self.failed_max = self.failed_max.max(r.took);
            }
            Fate::TimedOut => self.timed_out += 1,
        }
    }

    fn merge(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.answered += o.answered;
        self.failed += o.failed;
        self.failed_max = self.failed_max.max(o.failed_max);
        self.timed_out += o.timed_out;
    }
}

impl Report {
    /// Where kill `k`'s cycle begins: halfway between the previous kill's recovery (or
    /// the warm-up's start) and kill `k`; for `k` past the last kill, the end.
    fn boundary(&self, k: usize) -> Instant {
        let Some(kill) = self.kills.get(k) else {
            return self.end;
        };
        let quiet = k
            .checked_sub(1)
            .map_or(self.start, |prev| self.kills[prev].recovered);
        quiet + kill.at.saturating_duration_since(quiet) / 2
    }

    /// The requests of kill `k`'s cycle.
    fn cycle(&self, k: usize) -> impl Iterator<Item = &Record> {
        let (from, to) = (self.boundary(k), self.boundary(k + 1));
        self.records
            .iter()
            .filter(move |r| r.sent >= from && r.sent < to)
    }

    /// The counts of kill `k`'s cycle.
    fn counts(&self, k: usize) -> Counts {
        let mut c = Counts::default();
        self.cycle(k).for_each(|r| c.add(r));
        c
    }

    /// All kills' cycles together (the warm-up left out).
    fn totals(&self) -> Counts {
        let mut t = Counts::default();
        for k in 0..self.kills.len() {
            t.merge(&self.counts(k));
        }
        t
    }

    /// The warm-up line, the per-kill table and the count of kills with timeouts.
    fn print(&self, cfg: &Config) {
        println!("\n## {}\n", self.kind.name());
        let first = self.boundary(0);
        let mut warm = Counts::default();
        self.records
            .iter()
            .filter(|r| r.sent < first)
            .for_each(|r| warm.add(r));
        println!(
            "warm-up: {} sent, {} answered, {} failed fast, {} timed out\n",
            warm.sent, warm.answered, warm.failed, warm.timed_out
        );
        println!(
            "| kill | node | responder too | killed after report | in flight at kill \
             | requester back after | node routed again after | sent | answered | failed fast | fast failures took (max) \
             | errors | timed out | timed out, sent at |"
        );
        println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|");
        for (k, kill) in self.kills.iter().enumerate() {
            let c = self.counts(k);
            let mut errors: Vec<String> = Vec::new();
            for r in self.cycle(k) {
                if let Fate::Failed(name) = &r.fate {
                    if !errors.contains(name) {
                        errors.push(name.clone());
                    }
                }
            }
            // When the timed-out requests were sent, relative to the kill.
            let lost: Vec<String> = self
                .cycle(k)
                .filter(|r| matches!(r.fate, Fate::TimedOut))
                .map(|r| relative(r.sent, kill.at))
                .collect();
            // Sent in this cycle and neither answered nor failed when the node died.
            let in_flight = self
                .cycle(k)
                .filter(|r| r.sent <= kill.at && r.sent + r.took > kill.at)
                .count();
            println!(
                "| {} | n{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                k + 1,
                kill.node,
                if kill.responder_too { "yes" } else { "no" },
                us(kill.aimed),
                in_flight,
                ms(kill.back),
                ms(kill.restarted),
                c.sent,
                c.answered,
                c.failed,
                ms(c.failed_max),
                if errors.is_empty() {
                    "-".to_string()
                } else {
                    errors.join(", ")
                },
                c.timed_out,
                if lost.is_empty() {
                    "-".to_string()
                } else {
                    lost.join(" ")
                }
            );
        }
        let t = self.totals();
        println!(
            "| total | | | | | | | {} | {} | {} | {} | | {} | |",
            t.sent,
            t.answered,
            t.failed,
            ms(t.failed_max),
            t.timed_out
        );
        let kills_with_timeouts = (0..self.kills.len())
            .filter(|&k| self.counts(k).timed_out > 0)
            .count();
        println!(
            "\n{}: {kills_with_timeouts} of {} kills left requests waiting out the {:?} timeout",
            self.kind.name(),
            self.kills.len(),
            cfg.timeout
        );
    }
}

/// Milliseconds with one decimal; "-" for nothing.
fn ms(d: Duration) -> String {
    if d.is_zero() {
        "-".into()
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

/// `t` relative to `origin`, in milliseconds with a sign ("-3.2 ms": before).
fn relative(t: Instant, origin: Instant) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    match t.checked_duration_since(origin) {
        Some(after) => format!("+{:.1} ms", ms(after)),
        None => format!("-{:.1} ms", ms(origin - t)),
    }
}

/// Whole microseconds.
fn us(d: Duration) -> String {
    format!("{} µs", d.as_micros())
}

// ---------------------------------------------------------------------------------------
// Ours, on smol.

mod ours {
    use super::*;
    use futures_lite::StreamExt;
    use panini::client::{Client, ConnectOptions};

    /// Connects the responder and the requester to `url` and starts the requester on its
    /// own thread (`smol::block_on`); the clients' tasks and the responder run on smol's
    /// global executor.
    pub(super) fn start(
        url: &str,
        cfg: &Config,
        probe: Arc<Probe>,
    ) -> Result<(Clients, std::thread::JoinHandle<()>)> {
        let (responder, requester) = smol::block_on(async {
            let responder = responder(url, cfg.service, probe.clone()).await?;
            let requester = options(url).connect().await?;
            discovered(&responder).await?;
            discovered(&requester).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((responder, requester))
        })?;
        let sending = {
            let (requester, cfg) = (requester.clone(), cfg.clone());
            std::thread::spawn(move || smol::block_on(send(requester, cfg, probe)))
        };
        let clients = Clients {
            requester: Conn::Ours(requester),
            responder: Conn::Ours(responder),
        };
        Ok((clients, sending))
    }

    /// Reconnecting at once and forever, 100 ms (+ up to 20 ms) between passes.
    fn options(url: &str) -> ConnectOptions {
        ConnectOptions::new([url])
            .reconnect_wait(Duration::from_millis(100))
            .reconnect_jitter(Duration::from_millis(20))
            .max_reconnect_attempts(None)
    }

    /// Waits until the INFO of the client's node lists the whole cluster.
    async fn discovered(client: &Client) -> Result<()> {
        for _ in 0..500 {
            if client.server_info().connect_urls.len() >= NODES {
                return Ok(());
            }
            smol::Timer::after(Duration::from_millis(10)).await;
        }
        Err("ours: the cluster was not advertised".into())
    }

    /// The responder: replies to every request on [`SUBJECT`] after `service`.
    async fn responder(url: &str, service: Duration, probe: Arc<Probe>) -> Result<Client> {
        let client = options(url).connect().await?;
        let mut sub = client.subscribe(SUBJECT).await?;
        let replier = client.clone();
        smol::spawn(async move {
            while let Some(msg) = sub.next().await {
                probe.received();
                let Some(reply) = msg.reply else { continue };
                if service.is_zero() {
                    let _ = replier.publish(&reply, PAYLOAD).await;
                } else {
                    let replier = replier.clone();
                    smol::spawn(async move {
                        smol::Timer::after(service).await;
                        let _ = replier.publish(&reply, PAYLOAD).await;
                    })
                    .detach();
                }
            }
        })
        .detach();
        client.flush().await?;
        Ok(client)
    }

    /// Sends `cfg.rate` requests a second until told to stop, each in its own task.
    async fn send(client: Client, cfg: Config, probe: Arc<Probe>) {
        let mut ticks = smol::Timer::interval(Duration::from_secs(1) / cfg.rate);
        while !probe.stop.load(Ordering::SeqCst) {
            ticks.next().await;
            let (client, probe) = (client.clone(), probe.clone());
            probe.in_flight.fetch_add(1, Ordering::SeqCst);
            smol::spawn(async move {
                let sent = Instant::now();
                let asked = client
                    .request_with(SUBJECT, None, PAYLOAD, cfg.timeout)
                    .await;
                let fate = match asked {
                    Ok(_) => Fate::Answered,
                    Err(panini::Error::Timeout) => Fate::TimedOut,
                    Err(e) => Fate::Failed(variant(&e)),
                };
                probe.record(sent, fate);
            })
            .detach();
        }
    }

    /// The error's variant name (`NoResponders`, `Io`...).
    fn variant(e: &panini::Error) -> String {
        let debug = format!("{e:?}");
        let end = debug.find(['(', ' ', '{']).unwrap_or(debug.len());
        debug[..end].to_string()
    }
}

// ---------------------------------------------------------------------------------------
// async-nats, on tokio.

mod theirs {
    use super::*;
    use async_nats::{Client, ConnectOptions, Request, RequestErrorKind};
    use futures::StreamExt;

    /// Starts a tokio runtime on its own thread (the `#[tokio::main]` default:
    /// multi-thread), connects the responder and the requester to `url` there and runs
    /// the requester until told to stop.
    pub(super) fn start(
        url: &str,
        cfg: &Config,
        probe: Arc<Probe>,
    ) -> Result<(Clients, std::thread::JoinHandle<()>)> {
        let (ready_tx, ready) = mpsc::channel();
        let (url, cfg) = (url.to_string(), cfg.clone());
        let sending = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                let connected = connect_both(&url, &cfg, &probe).await;
                let requester = match &connected {
                    Ok((requester, _)) => requester.clone(),
                    Err(_) => return,
                };
                let _ = ready_tx.send(connected.map_err(|e| e.to_string()));
                let bound = cfg.timeout + STEP_TIMEOUT;
                send(requester, cfg, probe.clone()).await;
                // Dropping the runtime would cancel the requests still waiting.
                let deadline = Instant::now() + bound;
                while probe.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
        });
        let waited = ready
            .recv_timeout(STEP_TIMEOUT)
            .map_err(|_| "async-nats: the clients did not connect in time")?;
        let (requester, responder) = waited?;
        let clients = Clients {
            requester: Conn::AsyncNats(Box::new(requester)),
            responder: Conn::AsyncNats(Box::new(responder)),
        };
        Ok((clients, sending))
    }

    /// The requester and the responder.
    type Connected = (Client, Client);

    async fn connect_both(url: &str, cfg: &Config, probe: &Arc<Probe>) -> Result<Connected> {
        let responder = responder(url, cfg.service, probe.clone()).await?;
        let requester = options().connect(url).await?;
        discovered(&responder).await?;
        discovered(&requester).await?;
        Ok((requester, responder))
    }

    /// Waits until the INFO of the client's node lists the whole cluster.
    async fn discovered(client: &Client) -> Result<()> {
        for _ in 0..500 {
            if client.server_info().connect_urls.len() >= NODES {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err("async-nats: the cluster was not advertised".into())
    }

    /// Reconnecting forever with the default backoff; no request timeout of its own (each
    /// request sets one).
    fn options() -> ConnectOptions {
        ConnectOptions::new().max_reconnects(None)
    }

    /// The responder: replies to every request on [`SUBJECT`] after `service`.
    async fn responder(url: &str, service: Duration, probe: Arc<Probe>) -> Result<Client> {
        let client = options().connect(url).await?;
        let mut sub = client.subscribe(SUBJECT).await?;
        let replier = client.clone();
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                probe.received();
                let Some(reply) = msg.reply else { continue };
                if service.is_zero() {
                    let _ = replier.publish(reply, PAYLOAD.into()).await;
                } else {
                    let replier = replier.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(service).await;
                        let _ = replier.publish(reply, PAYLOAD.into()).await;
                    });
                }
            }
        });
        client.flush().await?;
        Ok(client)
    }

    /// Sends `cfg.rate` requests a second until told to stop, each in its own task.
    async fn send(client: Client, cfg: Config, probe: Arc<Probe>) {
        let mut ticks = tokio::time::interval(Duration::from_secs(1) / cfg.rate);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while !probe.stop.load(Ordering::SeqCst) {
            ticks.tick().await;
            let (client, probe) = (client.clone(), probe.clone());
            probe.in_flight.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let sent = Instant::now();
                let request = Request::new()
                    .payload(PAYLOAD.into())
                    .timeout(Some(cfg.timeout));
                let fate = match client.send_request(SUBJECT, request).await {
                    Ok(_) => Fate::Answered,
                    Err(e) if e.kind() == RequestErrorKind::TimedOut => Fate::TimedOut,
                    Err(e) => Fate::Failed(format!("{:?}", e.kind())),
                };
                probe.record(sent, fate);
            });
        }
    }
}
