//! TLS test servers: the committed certificates in `tests/certs/` (made by
//! `scripts/make-test-certs`), configuration text and command-line flags for nats-server,
//! and [`NatsServer`] constructors for servers whose clients must use TLS (thin wrappers
//! over the plain ones, which read the `tls://` URL such a server writes in its ports
//! file).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::NatsServer;

/// `tests/certs` in this crate.
pub fn certs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/certs")
}

/// The path of `tests/certs/<name>` (e.g. `"ca.pem"`); panics if the file is missing.
pub fn cert(name: &str) -> String {
    let path = certs_dir().join(name);
    assert!(
        path.is_file(),
        "{path:?} is missing: run scripts/make-test-certs"
    );
    path.to_string_lossy().into_owned()
}

/// The certificate a TLS test server presents, and whether it asks for the client's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerTls {
    /// `server.pem`, from `ca.pem`: valid for `localhost`, `127.0.0.1` and `::1`.
    Good,
    /// `other-server.pem`, from `other-ca.pem`: same names, an issuer the client does not trust.
    UnknownIssuer,
    /// `wrongname-server.pem`, from `ca.pem`: valid for `nats.example.com` only.
    WrongName,
    /// `server.pem`, and every client must present a certificate from `ca.pem`.
    Mutual,
}

impl ServerTls {
    /// The nats-server flags for this setup (`--tls` or `--tlsverify`, with the files).
    pub fn args(self) -> Vec<String> {
        let (mode, leaf) = match self {
            ServerTls::Good => ("--tls", "server"),
            ServerTls::UnknownIssuer => ("--tls", "other-server"),
            ServerTls::WrongName => ("--tls", "wrongname-server"),
            ServerTls::Mutual => ("--tlsverify", "server"),
        };
        let mut args = vec![
            mode.to_string(),
            "--tlscert".to_string(),
            cert(&format!("{leaf}.pem")),
            "--tlskey".to_string(),
            cert(&format!("{leaf}-key.pem")),
        ];
        if self == ServerTls::Mutual {
            args.extend(["--tlscacert".to_string(), cert("ca.pem")]);
        }
        args
    }
}

/// A top-level `tls { }` block presenting `server.pem`, trusting `ca.pem` for client
/// certificates, with a 2 s handshake timeout and `extra` keys inside the block.
fn tls_block(extra: &str) -> String {
    format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  timeout: 2\n{extra}}}\n",
        cert("server.pem"),
        cert("server-key.pem"),
        cert("ca.pem"),
    )
}

/// Configuration: clients must use TLS (INFO `tls_required`).
pub fn tls_config() -> String {
    tls_block("")
}

/// Configuration: clients must use TLS and present a certificate from `ca.pem` (INFO
/// `tls_required` and `tls_verify`).
pub fn mtls_config() -> String {
    tls_block("  verify: true\n")
}

/// Configuration: mutual TLS where the client certificate is the identity; `users` are the
/// names it may map to (`client.pem` maps to `"alice@example.com"`, its SAN email).
pub fn verify_and_map_config(users: &[&str]) -> String {
    let users: Vec<String> = users
        .iter()
        .map(|user| format!("{{ user: \"{user}\" }}"))
        .collect();
    format!(
        "{}authorization {{\n  users = [ {} ]\n}}\n",
        tls_block("  verify_and_map: true\n"),
        users.join(", ")
    )
}

/// Configuration: TLS offered, not required (INFO `tls_available`); the server tells the
/// two apart by the client's first byte.
pub fn optional_tls_config() -> String {
    format!("allow_non_tls: true\n{}", tls_block(""))
}

/// Borrows owned arguments as the `&[&str]` the [`NatsServer`] constructors take.
pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

impl NatsServer {
    /// Starts a server with TLS set up as `tls` and `extra` flags after it.
    pub fn start_tls(tls: ServerTls, extra: &[&str]) -> Self {
        let mut args = tls.args();
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::start_with_args(&strs(&args))
    }

    /// Starts a server with a configuration file holding `text` (e.g. [`mtls_config`]).
    pub fn with_tls_config(text: &str) -> Self {
        Self::with_config(text)
    }

    /// Stops this server and starts a new one on the same port with TLS set up as `tls`
    /// (for reconnect tests), like [`NatsServer::restart`].
    pub fn restart_tls(&mut self, tls: ServerTls) {
        self.restart(&strs(&tls.args()));
    }

    /// Starts `n` servers in one cluster on loopback, like [`NatsServer::cluster`], each
    /// with client TLS set up as `tls`; the routes between them stay plain.
    pub fn tls_cluster(n: usize, tls: ServerTls) -> Vec<NatsServer> {
        Self::cluster(n, &strs(&tls.args()))
    }

    /// `tls://127.0.0.1:PORT`.
    pub fn tls_url(&self) -> String {
        format!("tls://{}", self.addr())
    }

    /// `tls://localhost:PORT` (the certificate's DNS name rather than its IP).
    pub fn tls_localhost_url(&self) -> String {
        format!("tls://localhost:{}", self.port())
    }

    /// How many times the server has logged `what` so far (e.g. `"TLS handshake error"`).
    pub fn log_count(&self, what: &str) -> usize {
        self.log().matches(what).count()
    }

    /// Waits up to `bound` for the server to have logged `what` at least once (the log is a
    /// file the server writes: this polls it); panics with the log if it has not.
    pub async fn wait_for_log(&self, what: &str, bound: Duration) {
        let deadline = Instant::now() + bound;
        while self.log_count(what) == 0 {
            assert!(
                Instant::now() < deadline,
                "the server did not log {what:?} within {bound:?}; its log:\n{}",
                self.log()
            );
            smol::Timer::after(Duration::from_millis(10)).await;
        }
    }
}
