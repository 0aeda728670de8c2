//! Test infrastructure shared by the integration tests, over the testing kit
//! (`panini::testing`, which our tests use as a user's tests do): [`NatsServer`] is the
//! kit's server with what only our tests need (a raw TCP connection for hostile bytes, the
//! flag-taking `restart` and `cluster`), [`run`] and [`within`] are the kit's, plus the
//! client event helpers. What is ours alone lives in the submodules (fake servers, TLS
//! material, JWTs, child processes).
//!
//! Each test binary uses a subset of this module, hence the `dead_code` allowances.

#![allow(dead_code)]

use std::net::TcpStream;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

#[allow(unused_imports)] // each test binary uses a subset
pub use panini::testing::{run, within, TempDir, TEST_TIMEOUT};

/// How long a socket read or write may block before the test fails instead of hanging.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The kit's [`panini::testing::NatsServer`] (every method of it through `Deref`), with
/// the call shapes our tests were written against.
#[derive(Debug)]
pub struct NatsServer(panini::testing::NatsServer);

impl Deref for NatsServer {
    type Target = panini::testing::NatsServer;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for NatsServer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl NatsServer {
    /// Starts a server with default settings.
    pub fn start() -> Self {
        NatsServer(panini::testing::NatsServer::start())
    }

    /// Starts a server with extra command-line flags (e.g. `["--user", "a", "--pass", "b"]`).
    pub fn start_with_args(args: &[&str]) -> Self {
        NatsServer(panini::testing::NatsServer::start_with_args(args))
    }

    /// Starts a server with a configuration file holding `text` (auth, cluster, limits...).
    pub fn with_config(text: &str) -> Self {
        NatsServer(panini::testing::NatsServer::with_config(text))
    }

    /// Starts `n` servers routed into one cluster on loopback, each with `extra` flags.
    pub fn cluster(n: usize, extra: &[&str]) -> Vec<NatsServer> {
        panini::testing::NatsServer::cluster_with_args(n, extra)
            .into_iter()
            .map(NatsServer)
            .collect()
    }

    /// Stops this server and starts it again on the same port with the flags `args` (for
    /// reconnect tests).
    pub fn restart(&mut self, args: &[&str]) {
        self.0.restart_with_args(args);
    }

    /// A plain TCP connection to the server, with [`IO_TIMEOUT`] on reads and writes.
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect_timeout(&self.addr(), IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url()));
        set_io_timeouts(&stream, IO_TIMEOUT);
        stream
    }
}

/// Sets both read and write timeouts so a stuck exchange fails the test.
pub fn set_io_timeouts(stream: &TcpStream, timeout: Duration) {
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .expect("setting socket timeouts");
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

pub mod app;
pub mod child;
#[cfg(feature = "jetstream")]
pub mod jetstream;
pub mod jwt;
pub mod monitor;
pub mod tls;
