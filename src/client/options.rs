//! [`ConnectOptions`]: every knob of the client, with Panini's and nats.go's defaults.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::auth::{Credential, Secret};
use super::events::Event;
use super::Client;
use crate::error::{BoxError, Error, Result};

/// How to connect, reconnect and buffer. Build with [`ConnectOptions::new`] and the
/// `with`-style setters, then [`connect`](ConnectOptions::connect).
///
/// ```no_run
/// # smol::block_on(async {
/// use std::time::Duration;
/// let client = panini::client::ConnectOptions::new(["nats://127.0.0.1:4222"])
///     .name("orders")
///     .reconnect_wait(Duration::from_millis(500))
///     .connect()
///     .await?;
/// # Ok::<(), panini::Error>(()) });
/// ```
#[derive(Clone)]
pub struct ConnectOptions {
    pub(crate) servers: Vec<String>,
    pub(crate) name: Option<String>,
    pub(crate) user: Option<(String, String)>,
    pub(crate) token: Option<String>,
    pub(crate) connect_timeout: Duration,
    pub(crate) ping_interval: Duration,
    pub(crate) max_pings_out: u32,
    pub(crate) reconnect: bool,
    pub(crate) max_reconnect_attempts: Option<u32>,
    pub(crate) reconnect_wait: Duration,
    pub(crate) reconnect_jitter: Duration,
    pub(crate) reconnect_buffer_size: usize,
    pub(crate) reconnect_grace: Duration,
    pub(crate) subscription_capacity: usize,
    pub(crate) subscription_capacity_bytes: usize,
    pub(crate) inbox_prefix: String,
    pub(crate) request_timeout: Duration,
    pub(crate) drain_timeout: Duration,
    pub(crate) echo: bool,
    pub(crate) ignore_discovered_servers: bool,
    pub(crate) event_callback: Option<Arc<dyn Fn(Event) + Send + Sync>>,
    pub(crate) require_tls: bool,
    pub(crate) tls_ca_file: Option<PathBuf>,
    pub(crate) tls_client_cert: Option<(PathBuf, PathBuf)>,
    #[cfg(feature = "tls")]
    pub(crate) tls_config: Option<Arc<futures_rustls::rustls::ClientConfig>>,
    pub(crate) credential: Option<Credential>,
    /// Where the connection's tasks run: smol's global executor unless the App runs
    /// threads of its own, whose executor then runs them too (no hop to a thread that
    /// competes with the app's for a core).
    pub(crate) executor: Option<Arc<smol::Executor<'static>>>,
}

/// Shows no secret: URLs without their `user:pass@`/`token@`, and only the kind of
/// credential.
impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let servers: Vec<_> = self
            .servers
            .iter()
            .map(|u| super::pool::redact(u))
            .collect();
        f.debug_struct("ConnectOptions")
            .field("servers", &servers)
            .field("name", &self.name)
            .field("reconnect", &self.reconnect)
            .field("max_reconnect_attempts", &self.max_reconnect_attempts)
            .field("reconnect_wait", &self.reconnect_wait)
            .field("require_tls", &self.require_tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_client_cert", &self.tls_client_cert)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            servers: vec!["nats://127.0.0.1:4222".to_string()],
            name: None,
            user: None,
            token: None,
            connect_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(120),
            max_pings_out: 2,
            reconnect: true,
            max_reconnect_attempts: Some(60),
            reconnect_wait: Duration::from_secs(2),
            reconnect_jitter: Duration::from_millis(100),
            reconnect_buffer_size: 8 * 1024 * 1024,
            reconnect_grace: Duration::from_millis(500),
            subscription_capacity: 65_536,
            subscription_capacity_bytes: 64 * 1024 * 1024,
            inbox_prefix: "_INBOX".to_string(),
            request_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            echo: true,
            ignore_discovered_servers: false,
            event_callback: None,
            require_tls: false,
            tls_ca_file: None,
            tls_client_cert: None,
            #[cfg(feature = "tls")]
            tls_config: None,
            credential: None,
            executor: None,
        }
    }
}

impl ConnectOptions {
    /// Options for these server URLs (`nats://[user:pass@|token@]host[:port]`, or
    /// `host:port`; `tls://` instead of `nats://` requires TLS, feature `tls`).
    pub fn new<I, S>(servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ConnectOptions {
            servers: servers.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Connects: tries each server once, in order. Wrong credentials fail with
    /// [`Error::Auth`]; otherwise [`Error::NoServers`]
    /// names each server tried and why it failed.
    pub async fn connect(self) -> Result<Client> {
        Client::connect_with(self).await
    }

    /// The connection name shown by the server's monitoring (`CONNECT` `name`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// User and password (also possible in the URL).
    pub fn user_and_password(mut self, user: impl Into<String>, pass: impl Into<String>) -> Self {
        self.user = Some((user.into(), pass.into()));
        self
    }

    /// An auth token (also possible in the URL as `nats://token@host`).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Bound on TCP connect + INFO + CONNECT/PONG for one server. Default 5 s.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// How often the client pings the server. Default 2 min.
    pub fn ping_interval(mut self, d: Duration) -> Self {
        // A zero interval would ping without pause and find every connection stale.
        self.ping_interval = d.max(Duration::from_millis(10));
        self
    }

    /// Unanswered pings after which the connection is stale and replaced. Default 2.
    pub fn max_pings_out(mut self, n: u32) -> Self {
        self.max_pings_out = n.max(1);
        self
    }

    /// Whether to reconnect after losing the connection. Default true.
    pub fn reconnect(mut self, on: bool) -> Self {
        self.reconnect = on;
        self
    }

    /// Passes over the server pool after a lost connection before giving up (`None`: never;
    /// `Some(0)`: no reconnect at all). Each pass tries every server once. Default 60 (Panini).
    pub fn max_reconnect_attempts(mut self, n: Option<u32>) -> Self {
        self.max_reconnect_attempts = n;
        self
    }

    /// Wait between passes over the pool. Default 2 s (Panini).
    pub fn reconnect_wait(mut self, d: Duration) -> Self {
        self.reconnect_wait = d;
        self
    }

    /// Up to this much random time is added to each wait. Default 100 ms.
    pub fn reconnect_jitter(mut self, d: Duration) -> Self {
        self.reconnect_jitter = d;
        self
    }

    /// Bytes of publishes kept while disconnected; past it, publishing fails with
    /// [`Error::ReconnectBufferFull`]. Default 8 MiB.
    pub fn reconnect_buffer_size(mut self, bytes: usize) -> Self {
        self.reconnect_buffer_size = bytes;
        self
    }

    /// How long after a reconnect a request whose bytes were written on the lost
    /// connection may still get its reply; then it fails with
    /// [`Error::ConnectionLost`] (or earlier at its own
    /// timeout). Default 500 ms.
    pub fn reconnect_grace(mut self, d: Duration) -> Self {
        self.reconnect_grace = d;
        self
    }

    /// Messages a subscription holds before it is a slow consumer and drops. Default 65 536.
    /// See also [`subscription_capacity_bytes`](Self::subscription_capacity_bytes).
    pub fn subscription_capacity(mut self, n: usize) -> Self {
        self.subscription_capacity = n.max(1);
        self
    }

    /// Bytes a subscription holds (the subjects, reply subjects, headers and payloads of the
    /// messages it queues) before it is a slow consumer and drops: what can pile up behind a
    /// busy subscriber. A message that finds the queue empty is always taken, so the most a
    /// subscription holds is this plus one message. Drops are counted in
    /// [`Statistics::dropped_msgs`](super::Statistics::dropped_msgs) and reported with
    /// [`Event::SlowConsumer`]. Default 64 MiB (nats.go's pending bytes limit).
    pub fn subscription_capacity_bytes(mut self, bytes: usize) -> Self {
        self.subscription_capacity_bytes = bytes.max(1);
        self
    }

    /// Prefix of reply subjects for requests. Default `_INBOX`.
    pub fn inbox_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.inbox_prefix = prefix.into();
        self
    }

    /// Default timeout of [`Client::request`]. Default 10 s (Panini).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// Bound on [`Client::drain`]. Default 30 s.
    pub fn drain_timeout(mut self, d: Duration) -> Self {
        self.drain_timeout = d;
        self
    }

    /// Whether the server sends our own publishes to our own subscriptions. Default true.
    pub fn echo(mut self, on: bool) -> Self {
        self.echo = on;
        self
    }

    /// Ignore the servers a cluster advertises in INFO `connect_urls`. Default false.
    pub fn ignore_discovered_servers(mut self, on: bool) -> Self {
        self.ignore_discovered_servers = on;
        self
    }

    /// Called with every [`Event`], on the connection task: keep it quick.
    pub fn event_callback(mut self, f: impl Fn(Event) + Send + Sync + 'static) -> Self {
        self.event_callback = Some(Arc::new(f));
        self
    }

    /// Requires TLS on every server, as a `tls://` URL does: a server that does not offer
    /// it fails with [`Error::Tls`] before anything is sent to it. Without this, TLS is used
    /// when the URL says `tls://`, a TLS setting is given (a CA file, a client certificate,
    /// a rustls configuration: `require_tls(false)` does not undo those), or the server
    /// requires it. Needs the feature `tls`.
    pub fn require_tls(mut self, on: bool) -> Self {
        self.require_tls = on;
        self
    }

    /// Trusts the CA certificates in this PEM file instead of the system's roots (read at
    /// connect). Implies [`require_tls`](Self::require_tls). Needs the feature `tls`.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// The client certificate (PEM chain) and its private key (PEM: PKCS#8, SEC1 or
    /// PKCS#1, unencrypted), for servers that require mutual TLS. Implies
    /// [`require_tls`](Self::require_tls). Needs the feature `tls`.
    pub fn tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls_client_cert = Some((cert.into(), key.into()));
        self
    }

    /// A rustls configuration of your own (roots, client certificate, protocol versions),
    /// used as it is in place of [`tls_ca_file`](Self::tls_ca_file) and
    /// [`tls_client_cert`](Self::tls_client_cert). Implies
    /// [`require_tls`](Self::require_tls).
    #[cfg(feature = "tls")]
    pub fn tls_client_config(mut self, config: Arc<futures_rustls::rustls::ClientConfig>) -> Self {
        self.tls_config = Some(config);
        self
    }

    /// Authenticates with an NKey: the user's seed (`SU...`), which signs the server's
    /// challenge; only its public key is sent. Needs the feature `nkeys`.
    pub fn nkey_seed(mut self, seed: impl Into<String>) -> Self {
        self.credential = Some(Credential::Seed(Secret(seed.into())));
        self
    }

    /// Authenticates with an NKey whose seed is in this file (read at each connect;
    /// surrounding whitespace is ignored). Needs the feature `nkeys`.
    pub fn nkey_seed_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.credential = Some(Credential::SeedFile(path.into()));
        self
    }

    /// Authenticates with a `.creds` file (a user JWT and its NKey seed, as `nsc` writes
    /// it), read again at each connect so a rotated file is picked up. Needs the feature
    /// `nkeys`.
    pub fn creds_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.credential = Some(Credential::CredsFile(path.into()));
        self
    }

    /// Authenticates with the contents of a `.creds` file. Needs the feature `nkeys`.
    pub fn creds(mut self, creds: impl Into<String>) -> Self {
        self.credential = Some(Credential::Creds(Secret(creds.into())));
        self
    }

    /// Authenticates with a user JWT and a callback that signs the server's challenge with
    /// the user's key (a key held elsewhere, an HSM...) and returns the raw 64-byte Ed25519
    /// signature. It is called at each connect, on the connection task: it must not block
    /// (fetch anything slow beforehand). Needs no feature: the signing is yours.
    pub fn jwt(
        mut self,
        jwt: impl Into<String>,
        sign: impl Fn(&[u8]) -> std::result::Result<Vec<u8>, BoxError> + Send + Sync + 'static,
    ) -> Self {
        self.credential = Some(Credential::Jwt(Secret(jwt.into()), Arc::new(sign)));
        self
    }

    /// Whether the options ask for TLS on every server (the `tls://` scheme asks per URL).
    pub(crate) fn tls_asked(&self) -> bool {
        #[cfg(feature = "tls")]
        let config = self.tls_config.is_some();
        #[cfg(not(feature = "tls"))]
        let config = false;
        self.require_tls || self.tls_ca_file.is_some() || self.tls_client_cert.is_some() || config
    }

    /// What these options ask of this build: a `tls://` URL or a TLS option without the
    /// feature `tls`, a seed or creds without `nkeys`, is an error naming the feature,
    /// before anything is sent.
    pub(crate) fn check_features(&self) -> Result<()> {
        if self.tls_asked() && !cfg!(feature = "tls") {
            return Err(Error::FeatureDisabled {
                feature: "tls",
                needed_for: "a TLS option (require_tls, a CA file or a client certificate)".into(),
            });
        }
        if let Some(cred) = &self.credential {
            cred.check_feature()?;
        }
        Ok(())
    }
}
