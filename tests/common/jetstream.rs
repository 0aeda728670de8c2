//! A `nats-server` with JetStream (`-js`), its store under a temp dir of its own that
//! outlives restarts (so file streams and durable consumers survive them), removed on
//! `Drop`; and a client plus JetStream context connected to it.

use std::time::Duration;

use super::{NatsServer, TempDir};

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
