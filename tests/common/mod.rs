//! Test infrastructure shared by the integration tests: a [`NatsServer`] guard that runs a
//! real `nats-server` on a port the OS picks and stops it on `Drop`, plus socket helpers.
//!
//! Each test binary uses a subset of this module, hence the `dead_code` allowances.

#![allow(dead_code)]

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a socket read or write may block before the test fails instead of hanging.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `nats-server` has to write its ports file.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// Where Debian's `nats-server` package puts the binary (not on a non-root `PATH`).
const DEBIAN_BINARY: &str = "/usr/sbin/nats-server";

const INSTALL_HINT: &str = "nats-server not found: set $NATS_SERVER, put it on PATH, \
    or install it (Debian/Ubuntu: `apt-get install -y nats-server`; `.ci/run` does this)";

/// A running `nats-server` bound to `127.0.0.1` on a random port; killed on `Drop`.
///
/// The server reports its port through `--ports_file_dir`, so starting it needs no log
/// scraping and no fixed sleeps: we wait for the file to appear.
#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl NatsServer {
    /// Starts a server with default settings.
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// Starts a server with extra command-line flags (e.g. `["--user", "a", "--pass", "b"]`).
    pub fn start_with_args(args: &[&str]) -> Self {
        Self::launch(TempDir::new(), "-1", args)
    }

    /// Stops this server and starts a new one on the same port with the same flags
    /// (for reconnect tests). Panics if the port cannot be bound again in time.
    pub fn restart(&mut self, args: &[&str]) {
        self.stop();
        let port = self.port().to_string();
        let fresh = Self::launch(TempDir::new(), &port, args);
        let old = std::mem::replace(self, fresh);
        drop(old);
    }

    /// Kills the server and waits for it to exit (the guard stays; `Drop` is then a no-op).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Puts the server in lame-duck mode (`nats-server --signal ldm=PID`).
    pub fn lame_duck(&self) {
        let status = Command::new(binary())
            .arg("--signal")
            .arg(format!("ldm={}", self.pid()))
            .status()
            .expect("running nats-server --signal");
        assert!(
            status.success(),
            "nats-server --signal ldm failed: {status}"
        );
    }

    /// The cluster (route) URL, when the server was started with a cluster port.
    pub fn cluster_url(&self) -> Option<String> {
        read_ports(&self.dir, "cluster")
    }

    /// Starts a server with a configuration file holding `text` (auth, cluster, limits...).
    ///
    /// The listen address and port still come from the command line, which overrides the
    /// file, so the port is random as usual.
    pub fn with_config(text: &str) -> Self {
        let dir = TempDir::new();
        let conf = dir.path().join("server.conf");
        std::fs::write(&conf, text).unwrap_or_else(|e| panic!("writing {conf:?}: {e}"));
        let conf = conf.to_string_lossy().into_owned();
        Self::launch(dir, "-1", &["-c", &conf])
    }

    /// Starts `n` servers routed into one cluster on loopback, all ports picked by the OS.
    pub fn cluster(n: usize, extra: &[&str]) -> Vec<NatsServer> {
        let mut nodes: Vec<NatsServer> = Vec::new();
        for i in 0..n {
            let name = format!("n{i}");
            let mut args = vec![
                "--cluster_name",
                "panini",
                "--cluster",
                "nats://127.0.0.1:-1",
                "-n",
                &name,
            ];
            let seed = nodes.first().and_then(NatsServer::cluster_url);
            if let Some(seed) = &seed {
                args.extend(["--routes", seed.as_str()]);
            }
            args.extend_from_slice(extra);
            nodes.push(Self::start_with_args(&args));
        }
        nodes
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// The client listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's stdout and stderr so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// A plain TCP connection to the server, with [`IO_TIMEOUT`] on reads and writes.
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url()));
        set_io_timeouts(&stream, IO_TIMEOUT);
        stream
    }

    fn launch(dir: TempDir, port: &str, args: &[&str]) -> Self {
        let log = std::fs::File::create(dir.path().join("server.log"))
            .unwrap_or_else(|e| panic!("creating server.log in {:?}: {e}", dir.path()));
        let log_err = log.try_clone().expect("cloning the log file handle");
        let mut child = Command::new(binary())
            .args(["-a", "127.0.0.1", "-p", port, "--ports_file_dir"])
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning nats-server: {e}; {INSTALL_HINT}"));
        let dir = dir.keep();
        match wait_for_port(&mut child, &dir) {
            Ok(addr) => NatsServer { child, dir, addr },
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                let _ = std::fs::remove_dir_all(&dir);
                panic!("nats-server did not start: {why}\n--- server log ---\n{log}");
            }
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sets both read and write timeouts so a stuck exchange fails the test.
pub fn set_io_timeouts(stream: &TcpStream, timeout: Duration) {
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .expect("setting socket timeouts");
}

/// `$NATS_SERVER`, else `nats-server` on `PATH`, else Debian's `/usr/sbin/nats-server`.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file());
    if let Some(path) = on_path {
        return path;
    }
    let debian = PathBuf::from(DEBIAN_BINARY);
    if debian.is_file() {
        return debian;
    }
    panic!("{INSTALL_HINT}");
}

/// Waits for the `<binary>_<pid>.ports` file and reads the client address from it.
///
/// The file is written non-atomically, so an unreadable or half-written one is retried.
fn wait_for_port(child: &mut Child, dir: &Path) -> Result<SocketAddr, String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut backoff = Duration::from_millis(5);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("it exited with {status}"));
        }
        if let Some(addr) = read_ports_file(dir) {
            return Ok(addr);
        }
        if Instant::now() >= deadline {
            return Err(format!("no ports file in {dir:?} after {START_TIMEOUT:?}"));
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_millis(100));
    }
}

/// Parses `{"nats":["nats://127.0.0.1:PORT"]}` from the first `*.ports` file in `dir`
/// (`tls://` for a server that requires TLS).
fn read_ports_file(dir: &Path) -> Option<SocketAddr> {
    let url = read_ports(dir, "nats")?;
    let addr = url
        .strip_prefix("nats://")
        .or_else(|| url.strip_prefix("tls://"))?;
    addr.parse().ok()
}

/// The first URL of `kind` (`nats`, `cluster`, ...) in the `*.ports` file in `dir`.
fn read_ports(dir: &Path, kind: &str) -> Option<String> {
    let path = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "ports"))?;
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(json.get(kind)?.get(0)?.as_str()?.to_string())
}

/// Runs an async test body on smol, failing it if it takes longer than `TEST_TIMEOUT`.
pub fn run<F: std::future::Future>(body: F) -> F::Output {
    use smol::future::FutureExt;
    smol::block_on(body.or(async {
        smol::Timer::after(TEST_TIMEOUT).await;
        panic!("test timed out after {TEST_TIMEOUT:?}");
    }))
}

/// Bound on one async test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh directory under the system temp dir, removed on `Drop` unless kept.
struct TempDir(Option<PathBuf>);

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "panini-test-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e: io::Error| panic!("creating {path:?}: {e}"));
        TempDir(Some(path))
    }

    fn path(&self) -> &Path {
        self.0.as_deref().expect("a TempDir is kept only once")
    }

    /// Hands the directory over to the caller, who then removes it.
    fn keep(mut self) -> PathBuf {
        self.0.take().expect("a TempDir is kept only once")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// Client options that hand every event to the returned channel.
pub fn with_events(
    opts: panini::client::ConnectOptions,
) -> (
    panini::client::ConnectOptions,
    smol::channel::Receiver<panini::client::Event>,
) {
    let (tx, rx) = smol::channel::unbounded();
    let opts = opts.event_callback(move |ev| {
        let _ = tx.try_send(ev);
    });
    (opts, rx)
}

/// Waits for the first event that `pick` accepts (the test's timeout bounds it).
pub async fn wait_for<T>(
    events: &smol::channel::Receiver<panini::client::Event>,
    mut pick: impl FnMut(&panini::client::Event) -> Option<T>,
) -> T {
    loop {
        let ev = events.recv().await.expect("event stream ended");
        if let Some(t) = pick(&ev) {
            return t;
        }
    }
}

/// Waits up to `bound` for the first event that `pick` accepts; returns it with the events
/// that came before it. Panics, naming `what` and listing those events, if none comes.
pub async fn wait_for_within<T>(
    events: &smol::channel::Receiver<panini::client::Event>,
    bound: Duration,
    what: &str,
    mut pick: impl FnMut(&panini::client::Event) -> Option<T>,
) -> (T, Vec<panini::client::Event>) {
    use smol::future::FutureExt;
    let deadline = Instant::now() + bound;
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = async { Some(events.recv().await) }.or(async {
            smol::Timer::after(left).await;
            None
        });
        match next.await {
            Some(Ok(ev)) => match pick(&ev) {
                Some(t) => return (t, before),
                None => before.push(ev),
            },
            Some(Err(_)) => panic!("events ended while waiting for {what}; saw {before:?}"),
            None => panic!("no {what} within {bound:?}; saw {before:?}"),
        }
    }
}

/// Awaits `fut` for at most `bound`; panics naming `what` if it takes longer.
pub async fn within<T>(
    bound: Duration,
    what: &str,
    fut: impl std::future::Future<Output = T>,
) -> T {
    use smol::future::FutureExt;
    let bounded = async { Some(fut.await) }.or(async {
        smol::Timer::after(bound).await;
        None
    });
    match bounded.await {
        Some(t) => t,
        None => panic!("{what}: not within {bound:?}"),
    }
}

pub mod app;
pub mod child;
pub mod jetstream;
pub mod jwt;
pub mod monitor;
pub mod tls;
