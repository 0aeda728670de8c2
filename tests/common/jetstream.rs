//! A `nats-server` with JetStream (`-js`), its store under a temp dir of its own that
//! outlives restarts (so file streams and durable consumers survive them), removed on
//! `Drop`; a [`JsCluster`] of such servers routed into one JetStream cluster on loopback
//! (nodes killed and restarted on the same ports and store, bounded waits for the meta
//! leader and a stream's replicas); and a client plus JetStream context connected to it.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use super::monitor::monitor_addr;
use super::{set_io_timeouts, NatsServer, TempDir, IO_TIMEOUT};

/// A JetStream server on a port the OS picks; killed, and its store removed, on `Drop`.
pub struct JsServer {
    // Dropped first: the server stops before its store goes.
    server: NatsServer,
    store: TempDir,
    args: Vec<String>,
}

impl JsServer {
    /// Starts a server with JetStream and a fresh store.
    pub fn start() -> JsServer {
        let store = TempDir::new();
        let dir = store.path().to_str().expect("a UTF-8 temp dir").to_string();
        Self::launch(store, vec!["-js".into(), "-sd".into(), dir])
    }

    /// Starts a server whose JetStream has the domain `domain` (API `$JS.<domain>.API`).
    pub fn with_domain(domain: &str) -> JsServer {
        let store = TempDir::new();
        let conf = store.path().join("js.conf");
        let text = format!(
            "jetstream {{ store_dir: {:?}, domain: {domain} }}\n",
            store.path()
        );
        std::fs::write(&conf, text).unwrap_or_else(|e| panic!("writing {conf:?}: {e}"));
        let conf = conf.to_str().expect("a UTF-8 temp dir").to_string();
        Self::launch(store, vec!["-c".into(), conf])
    }

    fn launch(store: TempDir, args: Vec<String>) -> JsServer {
        let server = NatsServer::start_with_args(&Self::refs(&args));
        JsServer {
            server,
            store,
            args,
        }
    }

    fn refs(args: &[String]) -> Vec<&str> {
        args.iter().map(String::as_str).collect()
    }

    /// Stops the server and starts it again on the same port with the same store.
    pub fn restart(&mut self) {
        self.server.restart(&Self::refs(&self.args));
    }

    /// Stops the server (the store stays until `Drop`).
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The server's log so far, for failure messages.
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// The server itself (for helpers that take a [`NatsServer`], as `RunningApp`).
    pub fn server(&self) -> &NatsServer {
        &self.server
    }
}

/// A client on `url` (quick reconnects, so restart tests stay short) and a JetStream
/// context on it with `timeout` for API calls and acks.
pub async fn connect(
    url: &str,
    timeout: Duration,
) -> (panini::client::Client, panini::jetstream::Context) {
    let client = panini::client::ConnectOptions::new([url])
        .reconnect_wait(Duration::from_millis(50))
        .reconnect_jitter(Duration::from_millis(10))
        .max_reconnect_attempts(None)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    let js = panini::jetstream::Context::new(client.clone()).with_timeout(timeout);
    (client, js)
}

/// How long [`JsCluster`]'s waits (meta leader, stream replicas, a node's copy) poll before
/// they fail the test.
pub const CLUSTER_BOUND: Duration = Duration::from_secs(20);

/// Pause between two looks at the cluster's state (the server pushes no event for it).
const POLL_EVERY: Duration = Duration::from_millis(50);

/// `n` nats-servers with JetStream, routed into one cluster on loopback; all killed, and
/// their stores removed, on `Drop`.
///
/// Node `i` is named `n<i>` (its JetStream `server_name`), keeps its store in its own
/// directory, and listens on client and monitoring ports the OS picked at its first start
/// and a cluster port picked free before it; a [`restart`](JsCluster::restart) reuses all
/// three (a port left to the OS at a restart could be the node's own client port, just
/// freed) and the store.
/// Every node routes to every node (JetStream clustering wants configured routes), so any
/// one may be killed and restarted.
pub struct JsCluster {
    // Dropped first: the servers stop before their stores go.
    nodes: Vec<NatsServer>,
    alive: Vec<bool>,
    cluster_ports: Vec<u16>,
    monitor_ports: Vec<u16>,
    store: TempDir,
}

impl JsCluster {
    /// Starts `n` nodes (3 for a cluster that survives one death) and returns once each has
    /// written its ports file; [`wait_ready`](JsCluster::wait_ready) waits for JetStream.
    pub fn start(n: usize) -> JsCluster {
        let store = TempDir::new();
        let cluster_ports = free_ports(n);
        let mut cluster = JsCluster {
            nodes: Vec::with_capacity(n),
            alive: vec![true; n],
            cluster_ports,
            monitor_ports: Vec::with_capacity(n),
            store,
        };
        for i in 0..n {
            let args = cluster.args(i, "-1");
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let node = NatsServer::start_with_args(&refs);
            let monitor = monitor_addr(&node);
            let port = monitor.rsplit(':').next().and_then(|p| p.parse().ok());
            cluster.monitor_ports.push(port.expect("a monitoring port"));
            cluster.nodes.push(node);
        }
        cluster
    }

    /// Node `i`'s flags, with `monitor` as its monitoring port (its client port is the
    /// kit's: the OS's pick at the first start, the same one at a restart).
    fn args(&self, i: usize, monitor: &str) -> Vec<String> {
        let store = self.store.path().join(Self::name(i));
        let store = store.to_str().expect("a UTF-8 temp dir").to_string();
        let routes: Vec<String> = self
            .cluster_ports
            .iter()
            .map(|port| format!("nats-route://127.0.0.1:{port}"))
            .collect();
        let own = format!("nats://127.0.0.1:{}", self.cluster_ports[i]);
        [
            "-js",
            "-sd",
            &store,
            "-n",
            &Self::name(i),
            "-m",
            monitor,
            "--cluster_name",
            "panini-js",
            "--cluster",
            &own,
            "--routes",
            &routes.join(","),
        ]
        .map(String::from)
        .to_vec()
    }

    /// Node `i`'s server name: `n<i>`.
    pub fn name(i: usize) -> String {
        format!("n{i}")
    }

    /// The index of the node named `name` (as a stream's `cluster.leader` says it).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        let i: usize = name.strip_prefix('n')?.parse().ok()?;
        (i < self.nodes.len()).then_some(i)
    }

    /// How many nodes (alive or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Every node's `nats://127.0.0.1:PORT`, killed ones included (a client given them all
    /// fails over to whichever is up).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|node| node.url()).collect()
    }

    /// Node `i`'s client URL.
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].url()
    }

    /// Node `i`'s server (for helpers that take one, as `RunningApp`).
    pub fn node(&self, i: usize) -> &NatsServer {
        &self.nodes[i]
    }

    /// Whether node `i` runs (not killed, or restarted since).
    pub fn is_alive(&self, i: usize) -> bool {
        self.alive[i]
    }

    /// Kills node `i` with SIGKILL (no lame duck, no flush: the kit's `stop`) and waits
    /// for it to exit. Its log stays readable until it is restarted.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].stop();
        self.alive[i] = false;
    }

    /// Starts node `i` again (killing it first if it runs) on the same client and cluster
    /// ports, with the same store.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let args = self.args(i, &self.monitor_ports[i].to_string());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        // The kit's restart: the same client port, these flags (the same store, cluster
        // and monitoring ports).
        self.nodes[i].restart(&refs);
        self.alive[i] = true;
    }

    /// Node `i`'s log so far (of its last start).
    pub fn log(&self, i: usize) -> String {
        self.nodes[i].log()
    }

    /// Every node's log, for failure messages.
    pub fn logs(&self) -> String {
        (0..self.len())
            .map(|i| format!("--- {} ---\n{}", Self::name(i), self.log(i)))
            .collect()
    }

    /// Node `i`'s `/jsz` (JetStream state as that node sees it) with `query`, e.g.
    /// `?accounts=true&streams=true`.
    pub async fn jsz(&self, i: usize, query: &str) -> serde_json::Value {
        let addr = format!("127.0.0.1:{}", self.monitor_ports[i]);
        let path = format!("/jsz{query}");
        let body = smol::unblock(move || http_get(&addr, &path)).await;
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("/jsz is not JSON ({e}): {body}"))
    }

    /// Waits (up to [`CLUSTER_BOUND`]) until every running node names the same running
    /// node as JetStream meta leader and `js` (a client of the cluster) gets account info;
    /// returns the leader's name.
    pub async fn wait_ready(&self, js: &panini::jetstream::Context) -> String {
        let leader = self.wait_for_meta_leader().await;
        let deadline = Instant::now() + CLUSTER_BOUND;
        loop {
            match js.account_info().await {
                Ok(_) => return leader,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "no JetStream account info within {CLUSTER_BOUND:?}: {e}\n{}",
                    self.logs()
                ),
            }
            smol::Timer::after(POLL_EVERY).await;
        }
    }

    /// Waits (up to [`CLUSTER_BOUND`]) until every running node names the same running
    /// node as JetStream meta leader; returns its name.
    pub async fn wait_for_meta_leader(&self) -> String {
        let deadline = Instant::now() + CLUSTER_BOUND;
        loop {
            let mut seen = Vec::new();
            for i in (0..self.len()).filter(|&i| self.alive[i]) {
                let jsz = self.jsz(i, "").await;
                seen.push(jsz["meta_cluster"]["leader"].as_str().map(str::to_string));
            }
            if let Some(Some(leader)) = seen.first() {
                let agreed = seen.iter().all(|s| s.as_ref() == Some(leader));
                let up = self.index_of(leader).is_some_and(|i| self.alive[i]);
                if agreed && up {
                    return leader.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no agreed meta leader within {CLUSTER_BOUND:?}: {seen:?}\n{}",
                self.logs()
            );
            smol::Timer::after(POLL_EVERY).await;
        }
    }

    /// Waits (up to [`CLUSTER_BOUND`]) until stream `name` has a running leader and at
    /// least `current` other replicas online and current (for an R3 stream: 2 with every
    /// node up, 1 with one down); returns its info.
    pub async fn wait_for_stream(
        &self,
        js: &panini::jetstream::Context,
        name: &str,
        current: usize,
    ) -> panini::jetstream::StreamInfo {
        let deadline = Instant::now() + CLUSTER_BOUND;
        loop {
            let info = js.stream(name).info().await;
            if let Ok(info) = &info {
                if self.group_is_ready(info.cluster.as_ref(), current) {
                    return info.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "stream {name}: no leader with {current} current replicas within \
                 {CLUSTER_BOUND:?}: {info:?}"
            );
            smol::Timer::after(POLL_EVERY).await;
        }
    }

    /// Waits (up to [`CLUSTER_BOUND`]) until consumer `name` of `stream` has a running
    /// leader and at least `current` other replicas online and current; returns its info.
    /// (A consumer's replicas are a group apart from its stream's: a restarted node can
    /// hold a current copy of the stream and a lagging one of the consumer.)
    pub async fn wait_for_consumer(
        &self,
        js: &panini::jetstream::Context,
        stream: &str,
        name: &str,
        current: usize,
    ) -> panini::jetstream::ConsumerInfo {
        let deadline = Instant::now() + CLUSTER_BOUND;
        loop {
            let info = js.consumer(stream, name).info().await;
            if let Ok(info) = &info {
                if self.group_is_ready(info.cluster.as_ref(), current) {
                    return info.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "consumer {stream}/{name}: no leader with {current} current replicas within \
                 {CLUSTER_BOUND:?}: {info:?}"
            );
            smol::Timer::after(POLL_EVERY).await;
        }
    }

    /// Whether a stream's or consumer's replica group has a running leader and at least
    /// `current` other replicas online and current.
    fn group_is_ready(
        &self,
        cluster: Option<&panini::jetstream::ClusterInfo>,
        current: usize,
    ) -> bool {
        let Some(cluster) = cluster else {
            return false;
        };
        let leader_up = cluster
            .leader
            .as_deref()
            .and_then(|l| self.index_of(l))
            .is_some_and(|i| self.alive[i]);
        let up_to_date = cluster
            .replicas
            .iter()
            .filter(|r| r.current && !r.offline)
            .count();
        leader_up && up_to_date >= current
    }

    /// Waits (up to [`CLUSTER_BOUND`]) until node `i`'s own copy of `stream` (its `/jsz`,
    /// not the leader's answer) holds every message from sequence 1 up to at least
    /// `through`, with no gap (the streams of these tests never delete).
    ///
    /// "At least": a follower applies an entry once it learns that the entry is
    /// committed, and it learns that from the leader's next entry. With no write after
    /// the last one, the last entry may stay unapplied on a follower that just caught up
    /// (seen in CI: 9,999 of 10,000 for 20 s). So a caller writes one more message after
    /// the restart and waits here for the ones before it.
    pub async fn wait_for_copy(&self, i: usize, stream: &str, through: u64) {
        let deadline = Instant::now() + CLUSTER_BOUND;
        loop {
            let state = self.copy_state(i, stream).await;
            let field = |name: &str| state.as_ref().and_then(|s| s[name].as_u64());
            let (first, last, messages) =
                (field("first_seq"), field("last_seq"), field("messages"));
            let whole = matches!((first, last, messages),
                (Some(1), Some(last), Some(messages)) if messages == last && last >= through);
            if whole {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}'s copy of {stream}: not every message from #1 up to #{through} within \
                 {CLUSTER_BOUND:?}: {state:?}",
                Self::name(i)
            );
            smol::Timer::after(POLL_EVERY).await;
        }
    }

    async fn copy_state(&self, i: usize, stream: &str) -> Option<serde_json::Value> {
        let jsz = self.jsz(i, "?accounts=true&streams=true").await;
        let accounts = jsz["account_details"].as_array()?;
        accounts
            .iter()
            .filter_map(|a| a["stream_detail"].as_array())
            .flatten()
            .find(|s| s["name"] == stream)
            .map(|s| s["state"].clone())
    }
}

/// `n` distinct ports free on loopback now (held together while picked, so they differ).
/// Another process could take one before the server binds it; the server then fails to
/// start, and says so.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound address").port())
        .collect()
}

/// The body of `GET path` from `addr` (HTTP/1.0: the body is not chunked).
fn http_get(addr: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr)
        .unwrap_or_else(|e| panic!("connecting to the monitor on {addr}: {e}"));
    set_io_timeouts(&stream, IO_TIMEOUT);
    let request = format!("GET {path} HTTP/1.0\r\nHost: monitor\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("sending a GET");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("reading the response");
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    body.to_string()
}

/// A client on every URL of `urls` (quick reconnects, so failovers stay short) and a
/// JetStream context on it with `timeout` for API calls and acks.
pub async fn connect_all(
    urls: &[String],
    timeout: Duration,
) -> (panini::client::Client, panini::jetstream::Context) {
    let client = panini::client::ConnectOptions::new(urls.iter().cloned())
        .reconnect_wait(Duration::from_millis(50))
        .reconnect_jitter(Duration::from_millis(10))
        .max_reconnect_attempts(None)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connecting to {urls:?}: {e}"));
    let js = panini::jetstream::Context::new(client.clone()).with_timeout(timeout);
    (client, js)
}
