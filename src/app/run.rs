//! Running an [`App`]: connect (retrying as configured), on-start hooks, subscribe, banner,
//! start event, tasks, each watched by the stop; then, on a signal or `shutdown()`, the
//! graceful stop of [`shutdown`]. Also the exit codes of [`App::start`].

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;

use smol::future::FutureExt;

use super::builder::{App, EXIT_NATS_LOST};
use super::context::{AppHandle, HandleParts};
use super::endpoint::{self, Endpoint};
use super::executor::{self, AppExecutor};
use super::runtime::Runtime;
use super::service;
use super::shutdown::{self, Started};
use super::tasks;
use crate::client::{Client, ConnectOptions};
use crate::error::{Error, Result, StartStage};
#[cfg(feature = "jetstream")]
use crate::jetstream;
use crate::log::log_at;

/// The HTTP server bound at the start, before connecting (so a bad address fails at once).
#[cfg(feature = "http")]
type Bound = Option<(crate::http::Server, super::builder::HttpSteps)>;
#[cfg(not(feature = "http"))]
type Bound = ();

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

    /// Runs the service until SIGINT or SIGTERM, then stops gracefully (bounded by the
    /// [`drain_timeout`](App::drain_timeout)) and exits the process with:
    /// - 0 after a graceful stop; also when the signal came before the start completed
    ///   (while connecting, or during an `on_start` hook), and also when an `on_stop` hook
    ///   failed: the stop that was asked for was done, and the failure is logged at ERROR;
    /// - 1 when it cannot start;
    /// - 99 ([`EXIT_NATS_LOST`]) when NATS is lost for good;
    /// - 130 (SIGINT) or 143 (SIGTERM), 128 plus the signal's number, when a second signal
    ///   comes during the graceful stop: the process then ends at once, without waiting.
    pub fn start(self) -> ! {
        let mut signals = shutdown::Watch::new();
        let code = smol::block_on(async {
            let (asked, stop) = smol::channel::bounded::<()>(1);
            let run = async {
                let stopped = async {
                    let _ = stop.recv().await;
                };
                match self.run_until(stopped).await {
                    Ok(()) => 0,
                    // `Closed` only comes from losing NATS after the start (see
                    // `run_until`); failing to connect at start is `Start`, exit 1.
                    Err(e @ Error::Closed) => {
                        log_at!(Error, "panini", "NATS connection lost for good: {e}");
                        EXIT_NATS_LOST
                    }
                    Err(e) => {
                        log_at!(Error, "panini", "{e}");
                        1
                    }
                }
            };
            let watch = async {
                signals.next().await;
                asked.close();
                let sig = signals.next().await;
                log_at!(Warn, "panini", "second signal: stopping at once");
                shutdown::exit_code(sig)
            };
            run.or(watch).await
        });
        std::process::exit(code)
    }

    /// Runs the service until `stop` completes (or [`AppHandle::shutdown`] is called),
    /// then stops gracefully, all of it within the
    /// [`drain_timeout`](App::drain_timeout) (see [`shutdown`]).
    ///
    /// `stop` is watched from the first poll: while connecting (and retrying) and during
    /// the `on_start` hooks too. A stop before the start completed returns `Ok(())` once
    /// what was started is taken down; `on_stop` hooks run only after a completed start.
    /// Whatever ends the run once NATS is connected (a failed start, NATS lost) unsubscribes
    /// and closes what was started. Returns [`Error::Start`] if the start failed and
    /// [`Error::Closed`] if the NATS connection was lost for good.
    pub async fn run_until(mut self, stop: impl Future<Output = ()>) -> Result<()> {
        let mut stop = pin!(stop);
        self.check_states()?;
        if self.service.on {
            service::check_version(&self.service.version)
                .map_err(|why| Error::start(StartStage::ServiceApi, why))?;
        }
        let client_name = self
            .client_name
            .clone()
            .unwrap_or_else(|| default_client_name(&self.service_name));
        #[cfg(feature = "http")]
        // `App::metrics` made the server (not `self.http()` here: that would link it in).
        if let (Some((path, route)), Some((http, _))) = (&self.metrics, &mut self.http) {
            route(http, path, &self.service.version);
        }
        #[cfg(feature = "http")]
        let http = match self.http.take() {
            Some((http, steps)) => Some(((steps.bind)(http).await?, steps)),
            None => None,
        };
        #[cfg(feature = "http")]
        let http_addr = http.as_ref().map(|(s, _)| s.addr);
        #[cfg(not(feature = "http"))]
        let (http, http_addr) = ((), None);
        // The app's own threads, if more than one, run until this returns; they run the
        // connection's tasks too.
        let (executor, _threads) = executor::start(executor::thread_count(self.threads))
            .map_err(|e| Error::start(StartStage::Threads, Error::Io(e)))?;
        let Some(client) = unless(self.connect(&client_name, &executor), stop.as_mut()).await
        else {
            log_at!(Info, "panini", "stopped while connecting to NATS");
            return Ok(());
        };
        let client = client.map_err(|e| Error::start(StartStage::Connect, e))?;
        let app = self.handle(client.clone(), client_name, http_addr, executor);
        let mut started = Started {
            app: app.clone(),
            client: client.clone(),
            #[cfg(feature = "http")]
            http: None,
            tasks: Vec::new(),
        };
        // A stop is seen during the hooks and subscriptions, which can take long; once the
        // app announces itself, it counts as started (its on_stop hooks will run). However
        // the run ends, one stop takes down what was started.
        let end = async {
            let starting = self.begin(&app);
            let begun = match unless(starting, stop.as_mut().or(app.stopped())).await {
                Some(Ok(())) => self.announce(&mut started, http).await,
                Some(Err(e)) => Err(e),
                None => return End::BeforeStarted,
            };
            if let Err(e) = begun {
                return End::Failed(e);
            }
            started.tasks = std::mem::take(&mut self.tasks)
                .into_iter()
                .map(|spec| app.spawn(tasks::run_task(app.clone(), Arc::new(spec))))
                .collect();
            let lost = async {
                client.closed().await;
                End::Lost
            };
            let stopped = async {
                stop.or(app.stopped()).await;
                End::Asked
            };
            lost.or(stopped).await
        }
        .await;
        let on_stop = match end {
            End::BeforeStarted => {
                log_at!(Info, "panini", "stopping before the start completed");
                None
            }
            End::Asked => {
                log_at!(
                    Info,
                    "panini",
                    "stopping: no new messages, waiting for handlers in flight"
                );
                Some(&self.on_stop[..])
            }
            End::Failed(_) | End::Lost => None,
        };
        let stopped = started.stop(on_stop, self.drain_timeout).await;
        match end {
            End::BeforeStarted => Ok(()),
            End::Failed(e) => Err(e),
            End::Lost => Err(Error::Closed),
            End::Asked => stopped,
        }
    }

    /// Every `listen` endpoint's handler finds the app states it takes: a type never
    /// registered with [`App::state`] fails the start at once, before connecting, rather
    /// than each message later. (Endpoints added at run time with
    /// `subscribe_new_subject` are checked per message: a 500 error reply, logged.)
    fn check_states(&self) -> Result<()> {
        for ep in &self.endpoints {
            if let Some(missing) = ep.handler.missing_state(&self.states) {
                let subject = ep.subjects.join(", ");
                return Err(Error::start(StartStage::Subscribe(subject), missing));
            }
        }
        #[cfg(feature = "jetstream")]
        for ep in &self.stream_endpoints {
            if let Some(missing) = ep.handler.missing_state(&self.states) {
                let what = format!("the durable endpoint {}/{}", ep.stream, ep.durable());
                return Err(Error::start(StartStage::JetStream(what), missing));
            }
        }
        Ok(())
    }

    /// The handle that handlers, tasks and hooks get.
    fn handle(
        &self,
        client: Client,
        client_name: String,
        http_addr: Option<std::net::SocketAddr>,
        executor: AppExecutor,
    ) -> AppHandle {
        #[cfg(feature = "jetstream")]
        let client_for_js = client.clone();
        let runtime = Runtime::new(
            executor,
            self.listen_hooks.clone(),
            self.queue_group.clone(),
            self.max_concurrency,
            self.counts_runs(),
        );
        AppHandle::new(HandleParts {
            client,
            service_name: self.service_name.clone(),
            client_name,
            request_timeout: self.request_timeout,
            send: self.send_hooks.clone(),
            http_addr,
            states: self.states.clone(),
            runtime,
            #[cfg(feature = "jetstream")]
            js: self
                .js
                .map(|_| jetstream::Context::new(client_for_js).with_timeout(self.request_timeout)),
        })
    }

    /// The start once connected: on-start hooks, then subscriptions (each recorded in the
    /// app, so that a failure or a stop halfway can take them down).
    async fn begin(&self, app: &AppHandle) -> Result<()> {
        #[cfg(feature = "jetstream")]
        if let (Some(steps), Some(js)) = (self.js, app.jetstream()) {
            (steps.prepare)(app, js, &self.streams, &self.buckets).await?;
        }
        tasks::run_on_start(app, &self.on_start).await?;
        for ep in &self.endpoints {
            for subject in &ep.subjects {
                let queue = ep.queue.resolve(self.queue_group.as_deref());
                let spec = Endpoint {
                    subject: subject.clone(),
                    queue,
                    handler: ep.handler.clone(),
                    max_concurrency: ep.max_concurrency.unwrap_or(self.max_concurrency),
                };
                endpoint::start(app, spec)
                    .await
                    .map_err(|e| Error::start(StartStage::Subscribe(subject.clone()), e))?;
            }
        }
        if self.service.on {
            let identity = service::Identity::new(&self.service_name, self.service.clone());
            service::start(app, Arc::new(identity))
                .await
                .map_err(|e| Error::start(StartStage::ServiceApi, e))?;
        }
        #[cfg(feature = "jetstream")]
        if let (Some(steps), Some(js)) = (self.js, app.jetstream()) {
            (steps.start)(app, js, &self.stream_endpoints, self.max_concurrency).await?;
        }
        Ok(())
    }

    /// The end of the start: banner, HTTP serving (recorded in `started`), start event.
    #[cfg_attr(not(feature = "http"), allow(unused_variables))]
    async fn announce(&self, started: &mut Started, http: Bound) -> Result<()> {
        let app = started.app.clone();
        if self.banner {
            print!("{}", banner(&app, &self.server_urls()));
        }
        #[cfg(feature = "http")]
        if let Some((server, steps)) = http {
            started.http = Some(((steps.serve)(server, app.clone(), self.banner), steps));
        }
        let event = format!(
            "panini_events.{}.{}.started",
            app.service_name(),
            app.client_name()
        );
        let published = match started.client.publish(&event, "{}").await {
            Ok(()) => started.client.flush().await,
            Err(e) => Err(e),
        };
        published.map_err(|e| Error::start(StartStage::Announce, e))?;
        log_at!(Info, "panini", "{} started", app.client_name());
        Ok(())
    }

    /// Connects, retrying as configured (Panini waits for NATS at start too).
    async fn connect(&self, client_name: &str, executor: &AppExecutor) -> Result<Client> {
        let mut opts = self
            .options
            .clone()
            .name(client_name)
            .request_timeout(self.request_timeout)
            .drain_timeout(self.drain_timeout);
        opts.servers = self.server_urls();
        if let AppExecutor::Pool(ex, _) = executor {
            opts.executor = Some(ex.clone());
        }
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
                    smol::Timer::after(wait).await;
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

/// How a run that got connected ends, before its stop.
enum End {
    /// A stop was asked for before the start completed: `Ok(())`, no `on_stop` hooks.
    BeforeStarted,
    /// The start failed.
    Failed(Error),
    /// NATS was lost for good after the start: [`Error::Closed`].
    Lost,
    /// A stop was asked for after the start: the graceful stop, `on_stop` hooks included.
    Asked,
}

/// Awaits `work` unless `stop` completes first (`None`; `work` is then dropped).
async fn unless<T>(work: impl Future<Output = T>, stop: impl Future<Output = ()>) -> Option<T> {
    async { Some(work.await) }
        .or(async {
            stop.await;
            None
        })
        .await
}

/// Panini's connection name: `{service}__{HOSTNAME or non_docker_env_<n>}__{n}`.
fn default_client_name(service: &str) -> String {
    let n = || fastrand::u64(1..=1_000_000);
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
    #[cfg(feature = "jetstream")]
    let js = if app.jetstream().is_some() {
        "True"
    } else {
        "False"
    };
    #[cfg(not(feature = "jetstream"))]
    let js = "False";
    text.push_str(&format!("\nJetStream enabled: {js}\n{rule}\n\n"));
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
