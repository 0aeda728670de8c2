//! [`NatsServer`]s routed into one cluster on loopback, with or without JetStream, and
//! the waits that make a new cluster usable at once: its routes up, its JetStream able to
//! place a replicated stream.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::server::{own, NatsServer};
use super::TempDir;
use crate::client::ServerInfo;

/// How long a cluster has to route its nodes together (and, with JetStream, to elect its
/// metadata leader and hear from every node).
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(20);

impl NatsServer {
    /// Starts `n` servers (`n0`, `n1`...) routed into one cluster on loopback, and returns
    /// once each one's INFO lists the `n` nodes (the routes are up; interest in a subject
    /// still takes a moment to cross them).
    pub fn cluster(n: usize) -> Vec<NatsServer> {
        Self::cluster_with_args(n, &[])
    }

    /// As [`cluster`](NatsServer::cluster), with extra flags for every node.
    pub fn cluster_with_args(n: usize, extra: &[&str]) -> Vec<NatsServer> {
        let mut nodes: Vec<NatsServer> = Vec::with_capacity(n);
        for i in 0..n {
            let mut args = own(&["--cluster_name", "panini", "-n", &format!("n{i}")]);
            // Node 0's cluster port is the OS's pick; the others route to it.
            let seed = nodes.first().and_then(NatsServer::cluster_url);
            args.extend(["--cluster".into(), "nats://127.0.0.1:-1".into()]);
            if let Some(seed) = seed {
                args.extend(["--routes".into(), seed]);
            }
            args.extend(own(extra));
            let mut node =
                Self::spawn(TempDir::new(), false, args).unwrap_or_else(|e| panic!("{e}"));
            node.pin_cluster_port();
            nodes.push(node);
        }
        wait_until(&nodes, "the routes of the cluster", |node| {
            read_info(node.addr()).is_some_and(|info| info.connect_urls.len() >= n)
        })
        .unwrap_or_else(|e| panic!("{e}"));
        nodes
    }

    /// Starts `n` servers with JetStream routed into one cluster on loopback (each with a
    /// store of its own), and returns once its JetStream can place a stream with `n`
    /// replicas (a metadata leader is elected and knows every node), so a replicated
    /// stream can be created at once.
    pub fn jetstream_cluster(n: usize) -> Vec<NatsServer> {
        // JetStream wants every node's routes configured, so the cluster ports are picked
        // first: a port taken in between fails the start, which is tried again.
        assert!(n > 0, "a JetStream cluster has at least one node");
        let mut failure = String::new();
        for _ in 0..3 {
            match Self::try_jetstream_cluster(n) {
                Ok(nodes) => return nodes,
                Err(e) => failure = e,
            }
        }
        panic!("{failure}");
    }

    fn try_jetstream_cluster(n: usize) -> Result<Vec<NatsServer>, String> {
        let ports = free_ports(n)?;
        let routes: Vec<String> = ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect();
        let routes = routes.join(",");
        let mut nodes = Vec::with_capacity(n);
        for (i, port) in ports.iter().enumerate() {
            let args = own(&[
                "--cluster_name",
                "panini",
                "-n",
                &format!("n{i}"),
                "--cluster",
                &format!("nats://127.0.0.1:{port}"),
                "--routes",
                &routes,
            ]);
            nodes.push(Self::spawn(TempDir::new(), true, args)?);
        }
        // Asking one node is enough: every JetStream API call goes to the metadata leader.
        wait_until(&nodes[..1], "the JetStream of the cluster", |node| {
            jetstream_places(&node.url(), n)
        })?;
        Ok(nodes)
    }
}

/// `n` distinct ports free on loopback right now.
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let held = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("finding a free port: {e}"))?;
    held.iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("finding a free port: {e}"))
}

/// Polls `ready` on every node until it holds for all, within [`CLUSTER_TIMEOUT`].
fn wait_until(
    nodes: &[NatsServer],
    what: &str,
    ready: impl Fn(&NatsServer) -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + CLUSTER_TIMEOUT;
    for node in nodes {
        while !ready(node) {
            if Instant::now() >= deadline {
                return Err(format!(
                    "{what}: not ready within {CLUSTER_TIMEOUT:?}\n--- log of {} ---\n{}",
                    node.url(),
                    node.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

/// The INFO a server sends a new connection (in clear, even when it requires TLS).
fn read_info(addr: SocketAddr) -> Option<ServerInfo> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let mut line = String::new();
    BufReader::new(stream.take(1 << 20))
        .read_line(&mut line)
        .ok()?;
    serde_json::from_str(line.strip_prefix("INFO ")?.trim_end()).ok()
}

/// Whether the JetStream of the cluster behind `url` can place a stream on its `n`
/// nodes (it has a metadata leader, and that leader knows every node): a probe stream with
/// `n` replicas is created, then deleted. Through the JetStream API's subjects with the
/// core client, so the kit needs no `jetstream` feature.
fn jetstream_places(url: &str, n: usize) -> bool {
    const PROBE: &str = "PANINI_TESTING_READY";
    const TIMEOUT: Duration = Duration::from_secs(1);
    /// A JetStream API reply: an `error` member when the call failed.
    #[derive(serde::Deserialize)]
    struct Reply {
        error: Option<serde_json::Value>,
    }
    let ok = |reply: crate::Result<crate::Message>| {
        reply.is_ok_and(|msg| {
            serde_json::from_slice::<Reply>(&msg.payload).is_ok_and(|r| r.error.is_none())
        })
    };
    smol::block_on(async {
        let Ok(client) = crate::client::connect(url).await else {
            return false;
        };
        let probe = serde_json::json!({
            "name": PROBE,
            "subjects": ["_panini.testing.ready"],
            "storage": "memory",
            "num_replicas": n,
        });
        let create = format!("$JS.API.STREAM.CREATE.{PROBE}");
        let placed = ok(client
            .request_with(&create, None, probe.to_string(), TIMEOUT)
            .await);
        let delete = format!("$JS.API.STREAM.DELETE.{PROBE}");
        let deleted = placed && ok(client.request_with(&delete, None, "", TIMEOUT).await);
        client.close().await;
        deleted
    })
}
