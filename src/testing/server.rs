//! [`NatsServer`]: a real `nats-server` child process on a port the OS picks, killed (and
//! its files removed) on `Drop`; alone or with JetStream (clusters: `cluster`).
//!
//! The server reports its ports through `--ports_file_dir`, so starting it scrapes no log
//! and sleeps for no fixed time: it waits, with a bound, for that file to appear.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

/// How long `nats-server` has to write its ports file.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// Where Debian's `nats-server` package puts the binary (not on a non-root `PATH`).
const DEBIAN_BINARY: &str = "/usr/sbin/nats-server";

const INSTALL_HINT: &str = "install it (Debian/Ubuntu: `apt-get install nats-server`; \
    or a release from the NATS project), put it on PATH or set $NATS_SERVER to its path";

/// A running `nats-server` listening on `127.0.0.1` on a port the OS picked; killed on
/// `Drop`, its files (ports file, log, configuration, JetStream store) removed.
///
/// The binary is `$NATS_SERVER`, else `nats-server` on `PATH`, else
/// `/usr/sbin/nats-server` (see [`binary`](NatsServer::binary)). Starting one blocks the
/// calling thread until the server listens, for at most 5 s.
///
/// # Panics
///
/// The constructors panic when the binary is missing (the message says what to install)
/// and when the server does not start (the message holds its log).
///
/// ```
/// use panini::testing::NatsServer;
///
/// let server = NatsServer::start();
/// println!("a client connects to {}", server.url()); // nats://127.0.0.1:PORT
/// drop(server); // killed
/// ```
#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    /// This process's ports file and log; a new one for each (re)start.
    run: TempDir,
    /// What outlives restarts: the configuration file, the JetStream store.
    home: TempDir,
    jetstream: bool,
    args: Vec<String>,
    addr: SocketAddr,
}

impl NatsServer {
    /// Starts a server with default settings.
    pub fn start() -> NatsServer {
        Self::start_with_args(&[])
    }

    /// Starts a server with JetStream on, its store in a directory of its own (kept across
    /// [`restart`](NatsServer::restart)s, removed on `Drop`).
    pub fn start_jetstream() -> NatsServer {
        Self::spawn(TempDir::new(), true, own(&[])).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a server with extra command-line flags (e.g. `["--user", "a", "--pass", "b"]`).
    /// The listen address, the port and the ports file are the kit's: flags that set them
    /// are overridden.
    pub fn start_with_args(args: &[&str]) -> NatsServer {
        Self::spawn(TempDir::new(), false, own(args)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a server with a configuration file holding `text` (authorization, limits,
    /// `jetstream { ... }`...); the listen address and port still come from the kit.
    pub fn with_config(text: &str) -> NatsServer {
        let home = TempDir::new();
        let conf = home.path().join("server.conf");
        std::fs::write(&conf, text).unwrap_or_else(|e| panic!("writing {conf:?}: {e}"));
        let args = vec!["-c".to_string(), conf.to_string_lossy().into_owned()];
        Self::spawn(home, false, args).unwrap_or_else(|e| panic!("{e}"))
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

    /// The route URL (`nats://127.0.0.1:PORT`) of a server started with a cluster port.
    pub fn cluster_url(&self) -> Option<String> {
        read_ports(self.run.path(), self.child.id(), "cluster")
    }

    /// The JetStream store of a server started by
    /// [`start_jetstream`](NatsServer::start_jetstream) or
    /// [`jetstream_cluster`](NatsServer::jetstream_cluster).
    pub fn store_dir(&self) -> Option<PathBuf> {
        self.jetstream.then(|| self.home.path().join("jetstream"))
    }

    /// What this server process has logged so far (its stdout and stderr), for failure
    /// messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.run.path().join("server.log")).unwrap_or_default()
    }

    /// Kills the server and waits for it to exit; [`restart`](NatsServer::restart) starts
    /// it again. `Drop` does it too.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server and starts it again on the same port, with the same flags and the
    /// same JetStream store (for reconnect tests).
    ///
    /// # Panics
    ///
    /// If the server does not start again (the port could not be bound in time).
    pub fn restart(&mut self) {
        let args = self.args.clone();
        self.relaunch(args);
    }

    /// As [`restart`](NatsServer::restart), with other flags (e.g. TLS on) in place of the
    /// ones it was started with; the port and the JetStream store stay.
    pub fn restart_with_args(&mut self, args: &[&str]) {
        self.relaunch(own(args));
    }

    /// Puts the server in lame-duck mode (`nats-server --signal ldm=PID`): it tells its
    /// clients to move to another node, then shuts down.
    ///
    /// # Panics
    ///
    /// If the signal cannot be sent.
    pub fn lame_duck(&self) {
        let status = Command::new(binary_or_panic())
            .arg("--signal")
            .arg(format!("ldm={}", self.pid()))
            .status()
            .unwrap_or_else(|e| panic!("running nats-server --signal: {e}"));
        assert!(status.success(), "nats-server --signal ldm: {status}");
    }

    /// The `nats-server` binary the kit runs: `$NATS_SERVER` if set, else `nats-server` on
    /// `PATH`, else `/usr/sbin/nats-server`; `None` if there is none (e.g. to skip tests).
    pub fn binary() -> Option<PathBuf> {
        if let Some(path) = std::env::var_os("NATS_SERVER") {
            let path = PathBuf::from(path);
            return path.is_file().then_some(path);
        }
        let on_path = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file());
        on_path.or_else(|| Some(PathBuf::from(DEBIAN_BINARY)).filter(|p| p.is_file()))
    }

    pub(super) fn spawn(
        home: TempDir,
        jetstream: bool,
        args: Vec<String>,
    ) -> Result<NatsServer, String> {
        let store = jetstream.then(|| home.path().join("jetstream"));
        let (child, run, addr) = launch("-1", store.as_deref(), &args)?;
        Ok(NatsServer {
            child,
            run,
            home,
            jetstream,
            args,
            addr,
        })
    }

    fn relaunch(&mut self, args: Vec<String>) {
        self.stop();
        let port = self.port().to_string();
        let (child, run, addr) = launch(&port, self.store_dir().as_deref(), &args)
            .unwrap_or_else(|e| panic!("restarting: {e}"));
        self.child = child;
        self.run = run;
        self.addr = addr;
        self.args = args;
    }

    /// Replaces a `-1` cluster port by the one the OS picked, so a restart keeps it (and
    /// the other nodes' routes to it).
    pub(super) fn pin_cluster_port(&mut self) {
        let Some(url) = self.cluster_url() else {
            return;
        };
        for arg in &mut self.args {
            if arg == "nats://127.0.0.1:-1" {
                arg.clone_from(&url);
            }
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Owned copies of `args`.
pub(super) fn own(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Spawns `nats-server` on `127.0.0.1:port` (`-1`: the OS picks) with its ports file and
/// log in a new directory, and waits for the ports file.
fn launch(
    port: &str,
    store: Option<&Path>,
    args: &[String],
) -> Result<(Child, TempDir, SocketAddr), String> {
    let run = TempDir::new();
    let log = std::fs::File::create(run.path().join("server.log"))
        .map_err(|e| format!("creating server.log in {:?}: {e}", run.path()))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("cloning the log file handle: {e}"))?;
    let mut command = Command::new(binary_or_panic());
    command
        .args(["-a", "127.0.0.1", "-p", port, "--ports_file_dir"])
        .arg(run.path());
    if let Some(store) = store {
        command.arg("-js").arg("-sd").arg(store);
    }
    let mut child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| format!("spawning nats-server: {e}; {INSTALL_HINT}"))?;
    match wait_for_port(&mut child, run.path()) {
        Ok(addr) => Ok((child, run, addr)),
        Err(why) => {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(run.path().join("server.log")).unwrap_or_default();
            Err(format!(
                "nats-server did not start: {why}\n--- server log ---\n{log}"
            ))
        }
    }
}

/// [`NatsServer::binary`], or a panic naming what to install.
fn binary_or_panic() -> PathBuf {
    NatsServer::binary().unwrap_or_else(|| match std::env::var_os("NATS_SERVER") {
        Some(set) => panic!("$NATS_SERVER is {set:?}, which is not a file; {INSTALL_HINT}"),
        None => panic!("nats-server not found; {INSTALL_HINT}"),
    })
}

/// Waits for the process's ports file and reads the client address from it.
///
/// The file is written non-atomically, so an unreadable or half-written one is retried.
fn wait_for_port(child: &mut Child, dir: &Path) -> Result<SocketAddr, String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut backoff = Duration::from_millis(5);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("it exited with {status}"));
        }
        let url = read_ports(dir, child.id(), "nats");
        // `tls://` for a server that requires TLS.
        let addr = url.as_deref().and_then(|url| {
            let hostport = url
                .strip_prefix("nats://")
                .or_else(|| url.strip_prefix("tls://"))?;
            hostport.parse().ok()
        });
        if let Some(addr) = addr {
            return Ok(addr);
        }
        if Instant::now() >= deadline {
            return Err(format!("no ports file in {dir:?} after {START_TIMEOUT:?}"));
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_millis(100));
    }
}

/// The first URL of `kind` (`nats`, `cluster`...) in process `pid`'s ports file in `dir`
/// (`{"nats":["nats://127.0.0.1:PORT"],"cluster":[...]}`).
fn read_ports(dir: &Path, pid: u32, kind: &str) -> Option<String> {
    let suffix = format!("_{pid}.ports");
    let path = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with(&suffix))
        })?;
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(json.get(kind)?.get(0)?.as_str()?.to_string())
}
