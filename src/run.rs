//! Running an [`App`]: connect (retrying as configured), on-start hooks, subscribe, banner,
//! start event, tasks; then, on a signal or `shutdown()`, the graceful stop. Also the
//! exit codes of [`App::start`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::FutureExt;

use crate::app::{App, EXIT_NATS_LOST};
use crate::client::{Client, ConnectOptions};
use crate::endpoint::{self, Endpoint, Tracker};
use crate::error::{Error, Result};
use crate::handle::{AppHandle, HandleInner};
use crate::log::log_at;
use crate::tasks::{self, TaskFn};

impl App {
    /// The servers to use: the explicit [`servers`](App::servers) if given; else
    /// `$NATS_URL` (comma-separated) when set, so a deployment (or a test) can point an app
    /// written with a host and port elsewhere without changing code; else
    /// `nats://host:port`.
    pub(crate) fn server_urls(&self) -> Vec<String> {
        if !self.servers.is_empty() {
            return self.servers.clone();
        }
        let from_env = std::env::var("NATS_URL").ok().map(|env| {
            env.split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        });
        match from_env {
            Some(urls) if !urls.is_empty() => urls,
            _ => vec![format!("nats://{}:{}", self.host, self.port)],
        }
    }

    /// Runs the service until SIGINT or SIGTERM, then shuts down gracefully and exits the
    /// process: 0 after a clean stop, 99 when NATS is lost for good, 1 when it cannot start.
    pub fn start(self) -> ! {
        let signals = crate::shutdown::signal();
        let code = smol::block_on(async {
            match self.run_until(signals).await {
                Ok(()) => 0,
                // `Closed` only comes from losing NATS after the start (see `run_until`);
                // failing to connect at start is `Start`, exit 1.
                Err(e @ Error::Closed) => {
                    log_at!(Error, "panini", "NATS connection lost for good: {e}");
                    EXIT_NATS_LOST
                }
                Err(e) => {
                    log_at!(Error, "panini", "{e}");
                    1
                }
            }
        });
        std::process::exit(code)
    }

    /// Runs the service until `stop` completes (or [`AppHandle::shutdown`] is called),
    /// then shuts down gracefully. Returns
    /// [`Error::Closed`] if the NATS connection was lost for good first.
    // `mut` is for the HTTP server, taken out of `self` when the feature is on.
    #[cfg_attr(not(feature = "http"), allow(unused_mut))]
    pub async fn run_until(mut self, stop: impl Future<Output = ()>) -> Result<()> {
        let client_name = self
            .client_name
            .clone()
            .unwrap_or_else(|| default_client_name(&self.service_name));
        #[cfg(feature = "http")]
        let http = match self.http.take() {
            Some(http) => Some(http.bind().await?),
            None => None,
        };
        #[cfg(feature = "http")]
        let http_addr = http.as_ref().map(|s| s.addr);
        #[cfg(not(feature = "http"))]
        let http_addr = None;
        let client = self
            .connect(&client_name)
            .await
            .map_err(|e| Error::Start(format!("cannot connect to NATS: {e}")))?;
        let app = AppHandle {
            inner: Arc::new(HandleInner {
                client: client.clone(),
                service_name: self.service_name.clone(),
                client_name,
                request_timeout: self.request_timeout,
                send: self
                    .send
                    .with_terminal(crate::handle::send_terminal(client.clone())),
                listen: self.listen.clone(),
                queue_group: self.queue_group.clone(),
                max_concurrency: self.max_concurrency,
                tracker: Tracker::default(),
                endpoints: Mutex::new(HashMap::new()),
                stop: event_listener::Event::new(),
                stopping: std::sync::atomic::AtomicBool::new(false),
                http_addr,
            }),
        };
        tasks::run_hooks(&app, &self.on_start, "on_start").await?;
        for ep in &self.endpoints {
            for subject in &ep.subjects {
                let queue = ep.queue.clone().unwrap_or_else(|| self.queue_group.clone());
                let spec = Endpoint {
                    subject: subject.clone(),
                    queue,
                    handler: ep.handler.clone(),
                    max_concurrency: ep.max_concurrency.unwrap_or(self.max_concurrency),
                };
                endpoint::start(&app, spec)
                    .await
                    .map_err(|e| Error::Start(format!("cannot subscribe to {subject}: {e}")))?;
            }
        }
        if self.banner {
            print!("{}", banner(&app, &self.server_urls()));
        }
        #[cfg(feature = "http")]
        let http = http.map(|server| {
            if self.banner {
                println!("======== Running on http://{} ========", server.addr);
            }
            server.serve(app.clone())
        });
        let started = format!(
            "panini_events.{}.{}.started",
            app.service_name(),
            app.client_name()
        );
        client.publish(&started, "{}").await?;
        client.flush().await?;
        log_at!(Info, "panini", "{} started", app.client_name());
        let tasks: Vec<_> = self
            .tasks
            .into_iter()
            .map(|spec| smol::spawn(tasks::run_task(app.clone(), Arc::new(spec))))
            .collect();

        let lost = async {
            client.closed().await;
            true
        };
        let stopped = async {
            stop.or(app.stopped()).await;
            false
        };
        if lost.or(stopped).await {
            return Err(Error::Closed);
        }
        log_at!(
            Info,
            "panini",
            "stopping: no new messages, waiting for handlers in flight"
        );
        for task in tasks {
            task.cancel().await;
        }
        #[cfg(feature = "http")]
        let http_stopped = async {
            if let Some(http) = http {
                let open = http.stop(self.drain_timeout).await;
                if open > 0 {
                    log_at!(
                        Warn,
                        "panini",
                        "{open} HTTP connections still open at shutdown"
                    );
                }
            }
        };
        #[cfg(not(feature = "http"))]
        let http_stopped = async {};
        let nats_stopped = shutdown(&app, &client, &self.on_stop, self.drain_timeout);
        let (_, result) = futures_lite::future::zip(http_stopped, nats_stopped).await;
        result
    }

    /// Connects, retrying as configured (Panini waits for NATS at start too).
    async fn connect(&self, client_name: &str) -> Result<Client> {
        let mut opts = self
            .options
            .clone()
            .name(client_name)
            .request_timeout(self.request_timeout)
            .drain_timeout(self.drain_timeout);
        opts.servers = self.server_urls();
        opts = security_from_env(opts, |name| std::env::var(name).ok())?;
        let (attempts, wait) = (opts.max_reconnect_attempts, opts.reconnect_wait);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match opts.clone().connect().await {
                Ok(client) => return Ok(client),
                // Wrong credentials, a certificate refused, a missing feature: no retry.
                Err(e) if e.is_refusal() => return Err(e),
                Err(e) if attempts.is_some_and(|max| attempt >= max) || !opts.reconnect => {
                    return Err(e)
                }
                Err(e) => {
                    log_at!(
                        Warn,
                        "panini",
                        "cannot connect to NATS (attempt {attempt}): {e}; retrying in {wait:?}"
                    );
                    async_io::Timer::after(wait).await;
                }
            }
        }
    }
}

/// The environment variables that secure an app without code changes, as `NATS_URL`
/// points it: each applies only where the code set nothing.
/// - `NATS_CA`: a CA file to trust (and TLS required);
/// - `NATS_CERT` and `NATS_KEY`: the client certificate and key, for mutual TLS (both or
///   neither);
/// - `NATS_CREDS`: a `.creds` file; `NATS_NKEY`: a file holding an NKey seed (the names the
///   `nats` command line uses for its `--creds` and `--nkey` flags).
fn security_from_env(
    mut opts: ConnectOptions,
    var: impl Fn(&str) -> Option<String>,
) -> Result<ConnectOptions> {
    let var = |name| var(name).filter(|v| !v.trim().is_empty());
    if opts.tls_ca_file.is_none() {
        if let Some(ca) = var("NATS_CA") {
            opts = opts.tls_ca_file(ca);
        }
    }
    if opts.tls_client_cert.is_none() {
        match (var("NATS_CERT"), var("NATS_KEY")) {
            (Some(cert), Some(key)) => opts = opts.tls_client_cert(cert, key),
            (None, None) => {}
            (Some(_), None) | (None, Some(_)) => {
                return Err(Error::Tls(
                    "NATS_CERT and NATS_KEY go together: set both (the client certificate \
                     and its key) or neither"
                        .into(),
                ))
            }
        }
    }
    if opts.credential.is_none() {
        match (var("NATS_CREDS"), var("NATS_NKEY")) {
            (Some(_), Some(_)) => {
                return Err(Error::Credentials(
                    "NATS_CREDS and NATS_NKEY are both set: use one".into(),
                ))
            }
            (Some(creds), None) => opts = opts.creds_file(creds),
            (None, Some(seed)) => opts = opts.nkey_seed_file(seed),
            (None, None) => {}
        }
    }
    Ok(opts)
}

/// Stop taking messages, let handlers finish, run on-stop hooks, flush, close.
async fn shutdown(
    app: &AppHandle,
    client: &Client,
    on_stop: &[TaskFn],
    drain_timeout: Duration,
) -> Result<()> {
    if let Err(e) = client.drain_subscriptions().await {
        log_at!(Warn, "panini", "draining subscriptions: {e}");
    }
    // The endpoint loops end once their queues are empty; what they spawned may still run.
    // One deadline bounds both waits, however many endpoints there are.
    let deadline = Instant::now() + drain_timeout;
    for ep in app.take_endpoints() {
        ep.task
            .or(async {
                async_io::Timer::at(deadline).await;
            })
            .await;
    }
    let left = app
        .inner
        .tracker
        .wait_idle(deadline.saturating_duration_since(Instant::now()))
        .await;
    if left > 0 {
        log_at!(
            Warn,
            "panini",
            "{left} handlers still running after {drain_timeout:?}; stopping anyway"
        );
    }
    let hooks = tasks::run_hooks(app, on_stop, "on_stop").await;
    let flushed = client.flush_timeout(drain_timeout).await;
    client.close().await;
    log_at!(Info, "panini", "stopped");
    hooks.and(flushed)
}

/// Panini's connection name: `{service}__{HOSTNAME or non_docker_env_<n>}__{n}`.
fn default_client_name(service: &str) -> String {
    let n = || 1 + crate::client::random_u64() % 1_000_000;
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("non_docker_env_{}", n()));
    format!("{service}__{host}__{}", n())
}

/// The start banner, exactly as Panini prints it.
fn banner(app: &AppHandle, servers: &[String]) -> String {
    let rule = "=".repeat(86);
    let id = app.client().server_info().client_id;
    let mut text = format!(
        "\n{rule}\nPanini service connected to NATS..\nid: {id}\nname: {}\n\nNATS brokers:\n",
        app.client_name()
    );
    for url in servers {
        // As given, but never with its user:pass@ or token@.
        text.push_str(&format!("*  {}\n", crate::client::redact_url(url)));
    }
    text.push_str(&format!("\nJetStream enabled: False\n{rule}\n\n"));
    text
}

#[cfg(test)]
mod tests {
    use super::security_from_env;
    use crate::client::ConnectOptions;
    use crate::Error;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_environment_secures_an_app_where_the_code_did_not() {
        let vars = [
            ("NATS_CA", "/ca.pem"),
            ("NATS_CERT", "/c.pem"),
            ("NATS_KEY", "/k.pem"),
            ("NATS_CREDS", "/u.creds"),
        ];
        let opts = security_from_env(ConnectOptions::default(), env(&vars)).unwrap();
        assert_eq!(opts.tls_ca_file.as_deref(), Some("/ca.pem".as_ref()));
        assert!(opts.tls_asked());
        assert_eq!(
            opts.tls_client_cert,
            Some(("/c.pem".into(), "/k.pem".into()))
        );
        assert!(format!("{:?}", opts.credential).contains("/u.creds"));
        // What the code set wins.
        let mine = ConnectOptions::default().tls_ca_file("/mine.pem");
        let opts = security_from_env(mine, env(&vars)).unwrap();
        assert_eq!(opts.tls_ca_file.as_deref(), Some("/mine.pem".as_ref()));
        // Nothing set, nothing changed.
        let opts = security_from_env(ConnectOptions::default(), env(&[])).unwrap();
        assert!(!opts.tls_asked() && opts.credential.is_none());
    }

    #[test]
    fn half_a_client_certificate_or_two_credentials_in_the_environment_is_an_error() {
        let e = security_from_env(ConnectOptions::default(), env(&[("NATS_CERT", "/c")]));
        assert!(matches!(e, Err(Error::Tls(_))));
        let both = [("NATS_CREDS", "/u.creds"), ("NATS_NKEY", "/seed")];
        let e = security_from_env(ConnectOptions::default(), env(&both));
        assert!(matches!(e, Err(Error::Credentials(_))));
    }

    #[test]
    fn client_name_has_panini_shape() {
        let name = super::default_client_name("svc");
        let parts: Vec<_> = name.split("__").collect();
        assert_eq!(parts.len(), 3, "{name}");
        assert_eq!(parts[0], "svc");
        let n: u64 = parts[2].parse().unwrap();
        assert!((1..=1_000_000).contains(&n));
    }
}
