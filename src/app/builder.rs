//! [`App`]: the service, as a builder. Register endpoints, tasks, hooks and middlewares
//! and set its connection; [`run`](super::run) starts it and [`shutdown`](super::shutdown)
//! stops it.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::context::AppHandle;
use super::middleware::{Applies, Chain, ListenResult, Next, Outgoing, SendResult};
use super::runner::{BoxedHandler, Handler, SyncHandler};
use super::service::ServiceConfig;
use super::state::States;
#[cfg(feature = "jetstream")]
use super::stream_endpoint::{self, StreamEndpointConfig};
use super::tasks::{self, Schedule, TaskFn, TaskResult, TaskSpec};
use crate::client::ConnectOptions;
#[cfg(feature = "jetstream")]
use crate::jetstream::{kv::KvConfig, Context, StreamConfig};
use crate::message::Message;

/// Exit code when the connection is lost for good (reconnect attempts exhausted), as Panini.
pub const EXIT_NATS_LOST: i32 = 99;

/// One or more subjects for [`App::listen`]: a `&str` or `String`, an array of `&str`,
/// or a `Vec` of either (subjects known only at run time).
///
/// ```
/// use panini::{App, Msg};
/// use serde_json::Value;
///
/// async fn log_event(msg: Msg<Value>) {
///     println!("{}: {}", msg.subject, msg.data);
/// }
///
/// let mut app = App::new("audit");
/// app.listen("orders.created", log_event);
/// app.listen(["orders.paid", "orders.shipped"], log_event);
/// let regions = ["eu", "us"].map(|r| format!("stock.{r}.low"));
/// app.listen(regions.to_vec(), log_event);
/// ```
pub trait IntoSubjects {
    /// The subjects.
    fn into_subjects(self) -> Vec<String>;
}

impl IntoSubjects for &str {
    fn into_subjects(self) -> Vec<String> {
        vec![self.to_string()]
    }
}

impl IntoSubjects for String {
    fn into_subjects(self) -> Vec<String> {
        vec![self]
    }
}

impl<const N: usize> IntoSubjects for [&str; N] {
    fn into_subjects(self) -> Vec<String> {
        self.iter().map(|s| s.to_string()).collect()
    }
}

impl IntoSubjects for Vec<&str> {
    fn into_subjects(self) -> Vec<String> {
        self.into_iter().map(str::to_string).collect()
    }
}

impl IntoSubjects for Vec<String> {
    fn into_subjects(self) -> Vec<String> {
        self
    }
}

/// Settings of one `listen` registration, adjustable after registering it:
/// [`App::listen`] and [`App::listen_sync`] return it.
///
/// ```
/// # use panini::{App, Msg};
/// # use serde_json::Value;
/// let mut app = App::new("mailer");
/// app.listen("emails.send", |msg: Msg<Value>| async move {
///     println!("sending {}", msg.data["to"]);
/// })
/// .queue("mailers") // one instance of the service per email
/// .max_concurrency(8); // at most 8 emails in flight per instance
/// ```
pub struct EndpointConfig {
    pub(crate) subjects: Vec<String>,
    pub(crate) queue: QueueChoice,
    pub(crate) max_concurrency: Option<usize>,
    pub(crate) handler: BoxedHandler,
}

impl std::fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointConfig")
            .field("subjects", &self.subjects)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// The queue group of one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum QueueChoice {
    /// The app's `allocation_queue_group`, if it has one.
    AppDefault,
    /// This group.
    Group(String),
    /// No group, even if the app has one.
    NoGroup,
}

impl QueueChoice {
    /// The group to subscribe with, given the app's.
    pub(crate) fn resolve(&self, app_group: Option<&str>) -> Option<String> {
        match self {
            QueueChoice::AppDefault => app_group.map(str::to_string),
            QueueChoice::Group(group) => Some(group.clone()),
            QueueChoice::NoGroup => None,
        }
    }
}

impl EndpointConfig {
    /// Uses this queue group for this endpoint (instead of the app's
    /// `allocation_queue_group`); Panini ignored a per-endpoint `queue=`, we honour it.
    ///
    /// ```
    /// # use panini::{App, Msg};
    /// # use serde_json::Value;
    /// let mut app = App::new("billing");
    /// // run several instances: each invoice is made by one of them
    /// app.listen("invoices.make", |msg: Msg<Value>| async move {
    ///     println!("invoice for {}", msg.data["customer"]);
    /// })
    /// .queue("invoicers");
    /// ```
    pub fn queue(&mut self, group: &str) -> &mut Self {
        self.queue = QueueChoice::Group(group.to_string());
        self
    }

    /// No queue group for this endpoint, even if the app has one.
    ///
    /// ```
    /// # use panini::{App, Msg};
    /// # use serde_json::Value;
    /// let mut app = App::new("catalogue").allocation_queue_group("catalogue");
    /// // every instance must drop its cache, not just one of them
    /// app.listen("catalogue.cache.clear", |_: Msg<Value>| async move {
    ///     println!("cache cleared");
    /// })
    /// .no_queue();
    /// ```
    pub fn no_queue(&mut self) -> &mut Self {
        self.queue = QueueChoice::NoGroup;
        self
    }

    /// At most `n` handlers of this endpoint run at once (default: the app's).
    ///
    /// ```
    /// # use panini::{App, Msg};
    /// # use serde_json::Value;
    /// let mut app = App::new("ledger");
    /// // one at a time: each entry is written before the next one starts
    /// app.listen("ledger.append", |msg: Msg<Value>| async move {
    ///     println!("entry {}", msg.data);
    /// })
    /// .max_concurrency(1);
    /// ```
    pub fn max_concurrency(&mut self, n: usize) -> &mut Self {
        self.max_concurrency = Some(n.max(1));
        self
    }
}

/// A Panini service: NATS endpoints, tasks, middlewares, in one small program.
///
/// ```no_run
/// use panini::{App, Msg};
/// use serde_json::{json, Value};
///
/// let mut app = App::new("listener_app").host("127.0.0.1").port(4222);
/// app.listen("some.subject.for.request", |msg: Msg<Value>| async move {
///     println!("request {} from {} has been processed", msg.data, msg.subject);
///     json!({"success": true, "message": "request has been processed"})
/// });
/// app.start();
/// ```
pub struct App {
    pub(crate) service_name: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) servers: Vec<String>,
    pub(crate) client_name: Option<String>,
    pub(crate) queue_group: Option<String>,
    pub(crate) options: ConnectOptions,
    pub(crate) max_concurrency: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) drain_timeout: Duration,
    pub(crate) threads: Option<usize>,
    pub(crate) banner: bool,
    pub(crate) endpoints: Vec<EndpointConfig>,
    pub(crate) tasks: Vec<TaskSpec>,
    pub(crate) on_start: Vec<TaskFn>,
    pub(crate) on_stop: Vec<TaskFn>,
    pub(crate) send_hooks: Chain<Outgoing, SendResult>,
    pub(crate) listen_hooks: Chain<Message, ListenResult>,
    pub(crate) states: States,
    /// JetStream asked for (`enable_js`, or implied by streams, buckets and durable
    /// endpoints), and the steps that start it.
    #[cfg(feature = "jetstream")]
    pub(crate) js: Option<JsSteps>,
    /// Streams to create or update at start.
    #[cfg(feature = "jetstream")]
    pub(crate) streams: Vec<StreamConfig>,
    /// Key-Value buckets to create or update at start.
    #[cfg(feature = "jetstream")]
    pub(crate) buckets: Vec<KvConfig>,
    /// Durable endpoints.
    #[cfg(feature = "jetstream")]
    pub(crate) stream_endpoints: Vec<StreamEndpointConfig>,
    /// The NATS Service API's settings.
    pub(crate) service: ServiceConfig,
    /// The HTTP server, if asked for ([`App::http`]), and the steps that run it.
    #[cfg(feature = "http")]
    pub(crate) http: Option<(crate::http::Http, HttpSteps)>,
    /// The path `/metrics` is served on, if asked for ([`App::metrics`]), and the function
    /// that routes it (a pointer, for the reason [`HttpSteps`] gives).
    #[cfg(feature = "http")]
    pub(crate) metrics: Option<(String, MetricsRoute)>,
}

/// Routes `/metrics` on the server: `(server, path, the app's version)`.
#[cfg(feature = "http")]
pub(crate) type MetricsRoute = fn(&mut crate::http::Http, &str, &str);

/// A boxed future of the steps below.
#[cfg(any(feature = "http", feature = "jetstream"))]
type Step<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The JetStream part of a start, as pointers that only the methods that ask for JetStream
/// take (`enable_js`, `declare_stream`, `declare_key_value`, `listen_stream`): a program
/// built with the `jetstream` feature that does not use it in its app links none of it.
#[cfg(feature = "jetstream")]
#[derive(Clone, Copy)]
pub(crate) struct JsSteps {
    /// Before the `on_start` hooks: the account check, the streams and buckets.
    pub(crate) prepare: JsPrepare,
    /// After the subscriptions: the durable endpoints (with the app's `max_concurrency`).
    pub(crate) start: JsStart,
}

/// [`JsSteps::prepare`]: `(app, context, streams, buckets)`.
#[cfg(feature = "jetstream")]
type JsPrepare = for<'a> fn(
    &'a AppHandle,
    &'a Context,
    &'a [StreamConfig],
    &'a [KvConfig],
) -> Step<'a, crate::Result<()>>;

/// [`JsSteps::start`]: `(app, context, durable endpoints, default max in flight)`.
#[cfg(feature = "jetstream")]
type JsStart = for<'a> fn(
    &'a AppHandle,
    &'a Context,
    &'a [StreamEndpointConfig],
    usize,
) -> Step<'a, crate::Result<()>>;

#[cfg(feature = "jetstream")]
impl JsSteps {
    /// The app's JetStream start (`stream_endpoint`).
    const APP: JsSteps = JsSteps {
        prepare: |app, js, streams, buckets| {
            Box::pin(stream_endpoint::prepare(app, js, streams, buckets))
        },
        start: |app, js, endpoints, in_flight| {
            Box::pin(stream_endpoint::start_all(app, js, endpoints, in_flight))
        },
    };
}

/// The HTTP server's steps in a run (bind, serve, stop), as pointers that only
/// [`App::http`] takes: the run reaches the server through them alone, so a program that
/// never asks for a server links none of its code (about 90 KB of a static binary).
#[cfg(feature = "http")]
#[derive(Clone, Copy)]
pub(crate) struct HttpSteps {
    /// Binds the listener (a bad address fails the start).
    pub(crate) bind: fn(crate::http::Http) -> Step<'static, crate::Result<crate::http::Server>>,
    /// Starts accepting connections; with `true`, first prints the banner's line (the
    /// address written out is part of what only a server needs).
    pub(crate) serve: fn(crate::http::Server, AppHandle, bool) -> crate::http::RunningServer,
    /// Stops, waiting up to the limit; the connections still open.
    pub(crate) stop: fn(crate::http::RunningServer, Duration) -> Step<'static, usize>,
}

#[cfg(feature = "http")]
impl HttpSteps {
    /// The steps of panini's server.
    const SERVER: HttpSteps = HttpSteps {
        bind: |http| Box::pin(http.bind()),
        serve: |server, app, banner| {
            if banner {
                println!("======== Running on http://{} ========", server.addr);
            }
            server.start_accepting(app)
        },
        stop: |server, limit| Box::pin(server.stop(limit)),
    };
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("service_name", &self.service_name)
            .field("servers", &self.server_urls())
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl App {
    /// A service named `service_name`, for a NATS server at 127.0.0.1:4222, with Panini's
    /// reconnect defaults (60 attempts, 2 s apart) and a 10 s request timeout.
    ///
    /// ```no_run
    /// use panini::App;
    ///
    /// // NATS at 127.0.0.1:4222 (or `$NATS_URL`), connection named "greeter__<host>__<n>"
    /// let mut app = App::new("greeter");
    /// app.listen("greet", |name: String| async move { format!("hello, {name}") });
    /// app.start();
    /// ```
    pub fn new(service_name: impl Into<String>) -> Self {
        App {
            service_name: service_name.into(),
            host: "127.0.0.1".into(),
            port: 4222,
            servers: Vec::new(),
            client_name: None,
            queue_group: None,
            options: ConnectOptions::default(),
            max_concurrency: 256,
            request_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            threads: None,
            banner: true,
            endpoints: Vec::new(),
            tasks: Vec::new(),
            on_start: Vec::new(),
            on_stop: Vec::new(),
            send_hooks: Chain::default(),
            listen_hooks: Chain::default(),
            states: States::default(),
            #[cfg(feature = "jetstream")]
            js: None,
            #[cfg(feature = "jetstream")]
            streams: Vec::new(),
            #[cfg(feature = "jetstream")]
            buckets: Vec::new(),
            #[cfg(feature = "jetstream")]
            stream_endpoints: Vec::new(),
            service: ServiceConfig::default(),
            #[cfg(feature = "http")]
            http: None,
            #[cfg(feature = "http")]
            metrics: None,
        }
    }

    /// The HTTP server of this app (127.0.0.1:8080 by default), created on first use:
    /// `app.http().get("/health", || async { "ok" })`. See [`http`](crate::http).
    #[cfg(feature = "http")]
    pub fn http(&mut self) -> &mut crate::http::Http {
        let (http, _) = self
            .http
            .get_or_insert_with(|| (Default::default(), HttpSteps::SERVER));
        http
    }

    /// The NATS host (default 127.0.0.1); ignored when [`servers`](App::servers) or the
    /// `NATS_URL` environment variable is set (explicit `servers` win over `NATS_URL`).
    ///
    /// ```
    /// # use panini::App;
    /// let app = App::new("orders").host("nats.internal").port(4222);
    /// ```
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// The NATS port (default 4222); ignored when [`servers`](App::servers) or the
    /// `NATS_URL` environment variable is set.
    ///
    /// ```
    /// # use panini::App;
    /// let port = std::env::var("NATS_PORT").ok().and_then(|p| p.parse().ok());
    /// let app = App::new("orders").port(port.unwrap_or(4222));
    /// ```
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Server URLs (`nats://[user:pass@]host:port`), replacing host and port. The app
    /// connects to one of them and, when it is lost, reconnects to the others.
    ///
    /// ```
    /// # use panini::App;
    /// let app = App::new("orders").servers([
    ///     "nats://nats-1.internal:4222",
    ///     "nats://nats-2.internal:4222",
    ///     "nats://nats-3.internal:4222",
    /// ]);
    /// ```
    pub fn servers<S: Into<String>>(mut self, urls: impl IntoIterator<Item = S>) -> Self {
        self.servers = urls.into_iter().map(Into::into).collect();
        self
    }

    /// Panini's `allocation_queue_group`: the queue group of every endpoint (default none).
    /// Then the instances of a service share its messages, each handled by one of them.
    ///
    /// ```no_run
    /// # use panini::{App, Msg};
    /// # use serde_json::{json, Value};
    /// // start this program three times: each request reaches one of the three
    /// let mut app = App::new("resizer").allocation_queue_group("resizer");
    /// app.listen("images.resize", |msg: Msg<Value>| async move {
    ///     json!({"resized": msg.data["image"], "by": std::process::id()})
    /// });
    /// app.start();
    /// ```
    pub fn allocation_queue_group(mut self, group: impl Into<String>) -> Self {
        let group = group.into();
        self.queue_group = (!group.is_empty()).then_some(group);
        self
    }

    /// The NATS connection name (default `{service}__{HOSTNAME or non_docker_env_<n>}__{n}`).
    pub fn client_nats_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = Some(name.into());
        self
    }

    /// Whether to reconnect after losing NATS (default true; false means no reconnect).
    pub fn reconnect(mut self, on: bool) -> Self {
        self.options = self.options.reconnect(on);
        self
    }

    /// Attempts before giving up and exiting with code 99 (default 60).
    pub fn max_reconnect_attempts(mut self, n: u32) -> Self {
        self.options = self.options.max_reconnect_attempts(Some(n));
        self
    }

    /// Wait between reconnect attempts (Panini's `reconnecting_time_sleep`, default 2 s).
    pub fn reconnecting_time_sleep(mut self, wait: Duration) -> Self {
        self.options = self.options.reconnect_wait(wait);
        self
    }

    /// User and password for NATS.
    pub fn credentials(mut self, user: impl Into<String>, pass: impl Into<String>) -> Self {
        self.options = self.options.user_and_password(user, pass);
        self
    }

    /// A token for NATS.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.options = self.options.token(token);
        self
    }

    /// Trusts the CA certificates in this PEM file for the server's certificate (instead
    /// of the system's roots) and requires TLS. Default: `$NATS_CA` when set. Needs the
    /// feature `tls`; see the README, "Secure connections".
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.options = self.options.tls_ca_file(path);
        self
    }

    /// The client certificate and key (PEM) for servers that require mutual TLS.
    /// Default: `$NATS_CERT` and `$NATS_KEY` when set. Needs the feature `tls`.
    pub fn tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.options = self.options.tls_client_cert(cert, key);
        self
    }

    /// A `.creds` file (user JWT and NKey seed, as `nsc` writes it), read at each
    /// connect. Default: `$NATS_CREDS` when set. Needs the feature `nkeys`.
    pub fn creds_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.options = self.options.creds_file(path);
        self
    }

    /// A file holding an NKey seed (`SU...`), read at each connect. Default: `$NATS_NKEY`
    /// when set. Needs the feature `nkeys`.
    pub fn nkey_seed_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.options = self.options.nkey_seed_file(path);
        self
    }

    /// An NKey seed (`SU...`); prefer [`nkey_seed_file`](App::nkey_seed_file) or
    /// `$NATS_NKEY`, which keep it out of the code. Needs the feature `nkeys`.
    pub fn nkey_seed(mut self, seed: impl Into<String>) -> Self {
        self.options = self.options.nkey_seed(seed);
        self
    }

    /// Any other client setting, e.g. `|o| o.ping_interval(Duration::from_secs(30))`.
    pub fn nats_options(mut self, f: impl FnOnce(ConnectOptions) -> ConnectOptions) -> Self {
        self.options = f(self.options);
        self
    }

    /// Default limit of handlers running at once per endpoint (default 256). When all are
    /// busy the endpoint stops taking messages; its queue then fills and, past its
    /// capacity, drops and counts (slow consumer), never silently.
    ///
    /// ```
    /// # use panini::App;
    /// // the handlers share a pool of 16 database connections: no more than 16 at once
    /// let app = App::new("orders").max_concurrency(16);
    /// ```
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }

    /// Default request timeout (10 s, as Panini), for [`AppHandle::request`] and its
    /// kin; one request can set its own in [`SendOptions`](crate::SendOptions).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use panini::App;
    /// // the services this one asks answer fast, or not at all
    /// let app = App::new("gateway").request_timeout(Duration::from_millis(500));
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The bound on the whole graceful stop (default 10 s): handlers and HTTP requests in
    /// flight, the `on_stop` hooks, the final flush. What is still running then is left.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use panini::App;
    /// // reports take up to a minute: let the ones in flight finish at SIGTERM
    /// let app = App::new("reports").drain_timeout(Duration::from_secs(75));
    /// ```
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// How many threads run the app's endpoints, handlers, tasks and HTTP connections
    /// (default 1, or `$PANINI_THREADS` when the code does not set it).
    ///
    /// - **1** (the default): everything runs on smol's global executor, on the thread that
    ///   also runs the NATS connection, and an endpoint polls each handler run in its own
    ///   loop first: no hop between threads per message, the lowest latency for handlers
    ///   that mostly wait. A handler that computes holds that one core.
    /// - **n > 1**: the app runs on an executor of its own with `n` threads (`panini-1`,
    ///   ...) for as long as it runs, the NATS connection's tasks included, and every
    ///   endpoint runs `n` loops over its one queue, so CPU-bound handlers (and HTTP
    ///   connections) spread over the cores while a handler that finishes at once still
    ///   costs no task of its own. A message may then be read on one thread and handled on
    ///   another, which costs handlers that mostly wait some latency: pick it for handlers
    ///   that compute. On a 2-core host shared with nats-server and the requester, 500 µs
    ///   of work a request was served 1.72 to 1.76 times as fast with 2 threads as with 1,
    ///   50 µs 1.39 to 1.41 times (the two cores allow 1.55 there; BENCHMARKS.md,
    ///   "Executor threads").
    ///
    /// `0` counts as 1. `SMOL_THREADS` sizes smol's global executor, which runs the
    /// NATS connection and the app with 1 thread.
    ///
    /// ```no_run
    /// # use panini::{App, Msg};
    /// let mut app = App::new("resizer").threads(4);
    /// app.listen("images.resize", |msg: Msg<Vec<u8>>| async move {
    ///     msg.data.iter().rev().copied().collect::<Vec<u8>>() // CPU-bound work
    /// });
    /// app.start();
    /// ```
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n.max(1));
        self
    }

    /// Whether to print the start banner (default true).
    pub fn banner(mut self, on: bool) -> Self {
        self.banner = on;
        self
    }

    /// Registers `value` as the app state of type `S`: NATS handlers and HTTP routes take
    /// it as a [`State<S>`](crate::State) argument, tasks and hooks read it with
    /// [`AppHandle::state`]. Each gets a clone, so put what they share behind an `Arc` (an
    /// `Arc<Mutex<..>>`, atomics, a connection pool): then they all see one value.
    ///
    /// One value per type: register several types for several values (a newtype each,
    /// `struct Db(Pool)`, rather than two `String`s); registering a type again replaces
    /// its value (the last one wins). A `listen` handler asking for a type never registered
    /// fails the start (before connecting), naming the subject and the type; a handler
    /// added at run time, or an HTTP route, gets a 500 error per message instead, and the
    /// log names the type.
    ///
    /// ```no_run
    /// use std::sync::{Arc, Mutex};
    ///
    /// use panini::{App, Msg, State};
    /// use serde_json::{json, Value};
    ///
    /// #[derive(Clone, Default)]
    /// struct Seen(Arc<Mutex<Vec<String>>>);
    ///
    /// let mut app = App::new("recorder");
    /// app.state(Seen::default());
    /// app.listen("events.>", |msg: Msg<Value>, State(seen): State<Seen>| async move {
    ///     seen.0.lock().unwrap().push(msg.subject);
    /// });
    /// # #[cfg(feature = "http")]
    /// app.http().get("/seen", |State(seen): State<Seen>| async move {
    ///     json!(*seen.0.lock().unwrap())
    /// });
    /// app.start();
    /// ```
    pub fn state<S: Clone + Send + Sync + 'static>(&mut self, value: S) -> &mut Self {
        self.states.insert(value);
        self
    }

    /// Registers an async handler on one subject or several (`["a", "b"]`).
    ///
    /// The handler takes 0 to 2 arguments such as `Msg<T>` (the message with its data
    /// decoded as `T`: JSON by default), [`AppHandle`] and [`State<S>`](crate::State)
    /// (see [`state`](App::state)). With a reply subject its
    /// return value is published there; without one it is dropped.
    ///
    /// How it runs: each message starts its handler in the endpoint's own loop, in the
    /// order the messages arrive. A handler that finishes without waiting costs no task
    /// (and, after the first message, no allocation for its future); one that waits (on a
    /// request, a timer...) goes on in a task of its own while the loop takes the next
    /// message, with at most [`max_concurrency`](EndpointConfig::max_concurrency) of them
    /// at once. So keep blocking or CPU-heavy work out of async handlers (it would hold
    /// up the loop): use [`listen_sync`](App::listen_sync) for that.
    ///
    /// ```no_run
    /// use panini::{App, Json, Msg};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Deserialize)]
    /// struct Order { item: String, qty: u32 }
    /// #[derive(Serialize)]
    /// struct Receipt { total: u32 }
    ///
    /// let mut app = App::new("shop");
    /// // request endpoint: the return value is the reply
    /// app.listen("orders.place", |msg: Msg<Json<Order>>| async move {
    ///     Json(Receipt { total: msg.data.qty * 3 })
    /// });
    /// // stream endpoint: nothing to reply
    /// app.listen("orders.shipped", |msg: Msg<Json<Order>>| async move {
    ///     println!("shipped: {} x {}", msg.data.qty, msg.data.item);
    /// });
    /// app.start();
    /// ```
    pub fn listen<T: 'static, H: Handler<T>>(
        &mut self,
        subjects: impl IntoSubjects,
        handler: H,
    ) -> &mut EndpointConfig {
        self.push_endpoint(subjects, BoxedHandler::of_async(handler))
    }

    /// Registers a plain (blocking) handler; it runs on a thread pool, so it can use
    /// [`AppHandle::publish_sync`] and [`AppHandle::request_sync`].
    ///
    /// ```no_run
    /// # use panini::App;
    /// let mut app = App::new("docs");
    /// // blocking file I/O is fine here: it runs on the thread pool, not on the app's loop
    /// app.listen_sync("docs.motd", || std::fs::read_to_string("/etc/motd"));
    /// app.start();
    /// ```
    pub fn listen_sync<T: 'static, H: SyncHandler<T>>(
        &mut self,
        subjects: impl IntoSubjects,
        handler: H,
    ) -> &mut EndpointConfig {
        self.push_endpoint(subjects, BoxedHandler::of_sync(handler))
    }

    /// Whether the app answers the NATS Service API (`$SRV.PING`, `$SRV.INFO`,
    /// `$SRV.STATS`: what `nats micro ls / info / stats` read) and counts each endpoint's
    /// runs for it (default: on). See "Operating a service" in the README.
    ///
    /// ```no_run
    /// let app = panini::App::new("internal_tool").service_api(false);
    /// app.start();
    /// ```
    pub fn service_api(mut self, on: bool) -> Self {
        self.service.on = on;
        self
    }

    /// Serves the app's figures on `path` of its HTTP server (created if none, see
    /// [`http`](App::http)) in the Prometheus text format (0.0.4): per endpoint, messages
    /// handled, errors and a processing-time histogram (durable endpoints in families of
    /// their own, `panini_durable_*`, by stream and consumer: they are not in the Service
    /// API, which lists what can be requested); for the NATS connection, messages
    /// and bytes in and out, reconnects, slow-consumer drops, bytes waiting to be written.
    /// Off by default; it takes the place of a route of yours on the same path. Endpoints
    /// count their runs when either this or the
    /// [Service API](App::service_api) is on. See "Operating a service" in the README.
    ///
    /// ```no_run
    /// let mut app = panini::App::new("orders")
    ///     .version(env!("CARGO_PKG_VERSION"))
    ///     .metrics("/metrics");
    /// app.http().host("0.0.0.0").port(9100); // for a Prometheus on another host
    /// app.start();
    /// ```
    #[cfg(feature = "http")]
    pub fn metrics(mut self, path: impl Into<String>) -> Self {
        self.metrics = Some((path.into(), super::metrics::add_route));
        self.http();
        self
    }

    /// Whether endpoints count their runs: for the Service API, or for `/metrics`.
    pub(crate) fn counts_runs(&self) -> bool {
        #[cfg(feature = "http")]
        if self.metrics.is_some() {
            return true;
        }
        self.service.on
    }

    /// The service's version for the Service API: SemVer (`1.4.0`, `2.0.0-rc.1`), checked
    /// at start (default `0.0.0`). `env!("CARGO_PKG_VERSION")` gives your crate's.
    ///
    /// ```no_run
    /// let app = panini::App::new("orders")
    ///     .version(env!("CARGO_PKG_VERSION"))
    ///     .description("Takes and fulfils orders")
    ///     .metadata("team", "shop");
    /// app.start();
    /// ```
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.service.version = version.into();
        self
    }

    /// The service's description for the Service API (default empty).
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.service.description = description.into();
        self
    }

    /// A metadata entry for the Service API (`$SRV.INFO` and the others).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.service.metadata.insert(key.into(), value.into());
        self
    }

    /// Uses JetStream (Panini's `enable_js`): the start checks that the server has it
    /// (`nats-server -js`) and fails clearly if not, the banner says `JetStream enabled:
    /// True`, and [`AppHandle::jetstream`] gives the context. Declaring a stream or a
    /// durable endpoint turns it on too. [`AppHandle::publish_js`] works either way.
    /// Feature `jetstream`.
    ///
    /// ```no_run
    /// let app = panini::App::new("orders").enable_js(true);
    /// app.start();
    /// ```
    #[cfg(feature = "jetstream")]
    pub fn enable_js(mut self, on: bool) -> Self {
        self.js = on.then_some(JsSteps::APP);
        self
    }

    /// Creates the stream at start, or updates it to this configuration if it exists
    /// (idempotent: every instance of the service can declare it), before the durable
    /// endpoints start. Turns JetStream on. Feature `jetstream`.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use panini::jetstream::StreamConfig;
    ///
    /// let mut app = panini::App::new("orders");
    /// app.declare_stream(StreamConfig {
    ///     name: "ORDERS".into(),
    ///     subjects: vec!["orders.>".into()],
    ///     max_age: Duration::from_secs(7 * 24 * 3600),
    ///     ..Default::default()
    /// });
    /// app.start();
    /// ```
    #[cfg(feature = "jetstream")]
    pub fn declare_stream(&mut self, config: StreamConfig) -> &mut Self {
        self.js = Some(JsSteps::APP);
        self.streams.push(config);
        self
    }

    /// Creates the Key-Value bucket at start, or updates it to this configuration if it
    /// exists (idempotent), before the `on_start` hooks; handlers then reach it with
    /// [`AppHandle::key_value`]. Turns JetStream on. Feature `jetstream`.
    ///
    /// ```no_run
    /// use panini::jetstream::kv::KvConfig;
    /// use panini::{App, AppHandle, Msg};
    /// use serde_json::Value;
    ///
    /// let mut app = App::new("orders");
    /// app.declare_key_value(KvConfig { history: 5, ..KvConfig::new("order_states") });
    /// app.listen("orders.state", |msg: Msg<String>, app: AppHandle| async move {
    ///     let states = app.key_value("order_states").await?;
    ///     let state = states.get(&msg.data).await?;
    ///     Ok::<_, panini::Error>(state.map(|e| e.value).unwrap_or_default())
    /// });
    /// app.start();
    /// ```
    #[cfg(feature = "jetstream")]
    pub fn declare_key_value(&mut self, config: KvConfig) -> &mut Self {
        self.js = Some(JsSteps::APP);
        self.buckets.push(config);
        self
    }

    /// A durable endpoint: `handler` (the same handlers as [`listen`](App::listen)) gets
    /// every message of `stream` through the durable pull consumer `durable`, created or
    /// updated at start, at least once. `Ok` (or any value) acks it; an `Err` or a panic
    /// naks it with a back-off, so it comes again; a payload that does not decode
    /// terminates it (logged). See [`StreamEndpointConfig`] for the settings and
    /// `src/app/stream_endpoint.rs` for the whole behaviour, stop included. Turns
    /// JetStream on. Feature `jetstream`.
    ///
    /// ```no_run
    /// use panini::{App, Json, Msg};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Order { id: u64 }
    ///
    /// let mut app = App::new("billing");
    /// app.listen_stream("ORDERS", "billing", |msg: Msg<Json<Order>>| async move {
    ///     println!("bill order {}", msg.data.0.id);
    ///     Ok::<(), panini::BoxError>(())
    /// })
    /// .filter_subject("orders.created");
    /// app.start();
    /// ```
    #[cfg(feature = "jetstream")]
    pub fn listen_stream<T: 'static, H: Handler<T>>(
        &mut self,
        stream: &str,
        durable: &str,
        handler: H,
    ) -> &mut StreamEndpointConfig {
        self.js = Some(JsSteps::APP);
        let ep = StreamEndpointConfig::new(stream, durable, BoxedHandler::of_async(handler));
        self.stream_endpoints.push(ep);
        let last = self.stream_endpoints.len() - 1;
        &mut self.stream_endpoints[last]
    }

    fn push_endpoint(
        &mut self,
        subjects: impl IntoSubjects,
        handler: BoxedHandler,
    ) -> &mut EndpointConfig {
        self.endpoints.push(EndpointConfig {
            subjects: subjects.into_subjects(),
            queue: QueueChoice::AppDefault,
            max_concurrency: None,
            handler,
        });
        let last = self.endpoints.len() - 1;
        &mut self.endpoints[last]
    }

    fn push_task(&mut self, schedule: Schedule, run: TaskFn) -> &mut Self {
        let name = format!("task #{}", self.tasks.len() + 1);
        self.tasks.push(TaskSpec {
            name,
            schedule,
            run,
        });
        self
    }

    /// A task run once after start (Panini's `@app.task()`). It may run for as long as
    /// the app does: the graceful stop cancels it.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use panini::{App, AppHandle};
    /// # use serde_json::json;
    /// let mut app = App::new("ticker");
    /// app.task(|app: AppHandle| async move {
    ///     for n in 1u64.. {
    ///         app.publish("ticker.tick", json!({"n": n})).await?;
    ///         panini::rt::Timer::after(Duration::from_millis(500)).await;
    ///     }
    ///     Ok::<(), panini::Error>(())
    /// });
    /// app.start();
    /// ```
    pub fn task<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(AppHandle) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: TaskResult,
    {
        self.push_task(Schedule::Once, tasks::boxed_async(f))
    }

    /// A task run every `interval`, first right after start (Panini's
    /// `@app.task(interval=..)` and `@app.timer_task(..)`). Two runs never overlap; a run
    /// that fails is logged and the schedule goes on. An interval under 1 ms (such as
    /// `Duration::ZERO`) is taken as 1 ms: a task always due would keep the executor
    /// thread from the endpoints.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use panini::{App, AppHandle};
    /// # use serde_json::json;
    /// let mut app = App::new("sender_app");
    /// app.task_every(Duration::from_secs(1), |app: AppHandle| async move {
    ///     let message = json!({"data": "request1234567890"});
    ///     let response = app.request("some.subject.for.request", message).await?;
    ///     println!("{response}");
    ///     Ok::<(), panini::Error>(())
    /// });
    /// app.start();
    /// ```
    pub fn task_every<F, Fut>(&mut self, interval: Duration, f: F) -> &mut Self
    where
        F: Fn(AppHandle) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: TaskResult,
    {
        self.push_task(Schedule::Every(interval), tasks::boxed_async(f))
    }

    /// Panini's name for [`task_every`](App::task_every) (an interval under 1 ms is 1 ms).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use panini::{App, AppHandle};
    /// let mut app = App::new("beacon");
    /// app.timer_task(Duration::from_secs(2), |app: AppHandle| async move {
    ///     app.publish("some.publish.subject", b"messageinbytestosend").await
    /// });
    /// app.start();
    /// ```
    pub fn timer_task<F, Fut>(&mut self, interval: Duration, f: F) -> &mut Self
    where
        F: Fn(AppHandle) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: TaskResult,
    {
        self.task_every(interval, f)
    }

    /// A plain (blocking) task run once, on the thread pool, where it may block and use
    /// [`AppHandle::publish_sync`] and [`AppHandle::request_sync`].
    ///
    /// ```no_run
    /// # use panini::{App, AppHandle};
    /// let mut app = App::new("console");
    /// // each line typed on the console is published
    /// app.task_sync(|app: AppHandle| {
    ///     for line in std::io::stdin().lines() {
    ///         app.publish_sync("console.lines", line?)?;
    ///     }
    ///     Ok::<(), panini::BoxError>(())
    /// });
    /// app.start();
    /// ```
    pub fn task_sync<F, R>(&mut self, f: F) -> &mut Self
    where
        F: Fn(AppHandle) -> R + Send + Sync + 'static,
        R: TaskResult + Send + 'static,
    {
        self.push_task(Schedule::Once, tasks::boxed_sync(f))
    }

    /// A plain (blocking) task run every `interval`, on the thread pool (at least 1 ms
    /// apart, as for [`task_every`](App::task_every)).
    ///
    /// ```no_run
    /// # use std::net::{SocketAddr, TcpStream};
    /// # use std::time::Duration;
    /// # use panini::{App, AppHandle};
    /// # use serde_json::json;
    /// let mut app = App::new("watchdog");
    /// app.task_every_sync(Duration::from_secs(10), |app: AppHandle| {
    ///     let db = SocketAddr::from(([127, 0, 0, 1], 5432));
    ///     let up = TcpStream::connect_timeout(&db, Duration::from_secs(1)).is_ok();
    ///     app.publish_sync("health.db", json!({"up": up}))
    /// });
    /// app.start();
    /// ```
    pub fn task_every_sync<F, R>(&mut self, interval: Duration, f: F) -> &mut Self
    where
        F: Fn(AppHandle) -> R + Send + Sync + 'static,
        R: TaskResult + Send + 'static,
    {
        self.push_task(Schedule::Every(interval), tasks::boxed_sync(f))
    }

    /// Runs after connecting and before subscribing, in order; an error stops the start
    /// ([`App::start`](App::start) then exits 1).
    ///
    /// ```no_run
    /// # use panini::{App, AppHandle};
    /// # use serde_json::json;
    /// let mut app = App::new("orders");
    /// app.on_start(|app: AppHandle| async move {
    ///     // serve nothing while the stock service does not answer
    ///     app.request("stock.ping", json!({})).await?;
    ///     Ok::<(), panini::Error>(())
    /// });
    /// app.start();
    /// ```
    pub fn on_start<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(AppHandle) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: TaskResult,
    {
        self.on_start.push(tasks::boxed_async(f));
        self
    }

    /// Runs at shutdown, after in-flight handlers and HTTP requests finished (NATS is still
    /// open), before the final flush; within `drain_timeout`. A failure is logged and the
    /// other hooks still run.
    ///
    /// ```no_run
    /// # use panini::{App, AppHandle};
    /// # use serde_json::json;
    /// let mut app = App::new("orders");
    /// app.on_stop(|app: AppHandle| async move {
    ///     // the handlers are done, and NATS is still open: say goodbye
    ///     app.publish("services.down", json!({"service": app.service_name()})).await
    /// });
    /// app.start();
    /// ```
    pub fn on_stop<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(AppHandle) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: TaskResult,
    {
        self.on_stop.push(tasks::boxed_async(f));
        self
    }
}

macro_rules! middleware_methods {
    ($($(#[$doc:meta])* $name:ident: $chain:ident, $input:ty, $output:ty, $applies:expr;)*) => {
        impl App {
            $(
                $(#[$doc])*
                pub fn $name<F, Fut>(&mut self, f: F) -> &mut Self
                where
                    F: Fn($input, Next<$input, $output>) -> Fut + Send + Sync + 'static,
                    Fut: Future<Output = $output> + Send + 'static,
                {
                    self.$chain.push($applies, f);
                    self
                }
            )*
        }
    };
}

middleware_methods! {
    /// A middleware around every `publish` (see [`middleware`](crate::middleware) for the order).
    ///
    /// ```
    /// # use panini::{App, Headers};
    /// let mut app = App::new("orders");
    /// // every event this service publishes says who sent it
    /// app.send_publish(|mut out, next| async move {
    ///     out.headers.get_or_insert_with(Headers::new).insert("X-Sender", "orders");
    ///     next.run(out).await
    /// });
    /// ```
    send_publish: send_hooks, Outgoing, SendResult, Applies::Publish;
    /// A middleware around every `request`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use panini::App;
    /// let mut app = App::new("dashboard");
    /// // the reports service is slow: its requests get a minute
    /// app.send_request(|mut out, next| async move {
    ///     if out.subject.starts_with("reports.") {
    ///         out.timeout = Duration::from_secs(60);
    ///     }
    ///     next.run(out).await
    /// });
    /// ```
    send_request: send_hooks, Outgoing, SendResult, Applies::Request;
    /// A middleware around every `publish` and `request` (Panini's `send_any`).
    ///
    /// ```
    /// # use panini::{App, Error};
    /// let mut app = App::new("orders");
    /// // this service sends under `orders.` only: anything else is refused, not sent
    /// app.send_any(|out, next| async move {
    ///     if !out.subject.starts_with("orders.") {
    ///         return Err(Error::InvalidSubject(out.subject));
    ///     }
    ///     next.run(out).await
    /// });
    /// ```
    send_any: send_hooks, Outgoing, SendResult, Applies::Any;
    /// A middleware around handlers of messages without a reply subject.
    ///
    /// ```
    /// # use panini::App;
    /// let mut app = App::new("projector");
    /// // replayed events were handled already: skip their handlers
    /// app.listen_publish(|msg, next| async move {
    ///     let replayed = msg.headers.as_ref().and_then(|h| h.get("X-Replay")) == Some("true");
    ///     if replayed {
    ///         return None;
    ///     }
    ///     next.run(msg).await
    /// });
    /// ```
    listen_publish: listen_hooks, Message, ListenResult, Applies::Publish;
    /// A middleware around handlers of requests (messages with a reply subject).
    ///
    /// ```
    /// # use panini::{App, Headers};
    /// let mut app = App::new("orders");
    /// // every reply says which instance served it
    /// app.listen_request(|msg, next| async move {
    ///     let mut reply = next.run(msg).await;
    ///     if let Some(reply) = &mut reply {
    ///         let headers = reply.headers.get_or_insert_with(Headers::new);
    ///         headers.insert("X-Served-By", std::process::id().to_string());
    ///     }
    ///     reply
    /// });
    /// ```
    listen_request: listen_hooks, Message, ListenResult, Applies::Request;
    /// A middleware around every handler (Panini's `listen_any`).
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use panini::App;
    /// let mut app = App::new("orders");
    /// app.listen_any(|msg, next| async move {
    ///     let (subject, started) = (msg.subject.clone(), Instant::now());
    ///     let reply = next.run(msg).await;
    ///     println!("{subject} handled in {:?}", started.elapsed());
    ///     reply
    /// });
    /// ```
    listen_any: listen_hooks, Message, ListenResult, Applies::Any;
}

impl App {
    /// Registers a Panini-style middleware class (see [`Middleware`](crate::middleware::Middleware)):
    /// its four hooks, as one unit.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    ///
    /// use panini::middleware::{ListenResult, Middleware, Next};
    /// use panini::{App, Message};
    ///
    /// /// Counts the requests served; a task or an HTTP route can read it.
    /// #[derive(Clone, Default)]
    /// struct Requests(Arc<AtomicU64>);
    ///
    /// impl Middleware for Requests {
    ///     async fn listen_request(
    ///         &self,
    ///         msg: Message,
    ///         next: Next<Message, ListenResult>,
    ///     ) -> ListenResult {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///         next.run(msg).await
    ///     }
    /// }
    ///
    /// let requests = Requests::default();
    /// let mut app = App::new("orders");
    /// app.add_middleware(requests.clone());
    /// ```
    pub fn add_middleware<M: super::middleware::Middleware>(&mut self, m: M) -> &mut Self {
        let m = Arc::new(m);
        let mw = m.clone();
        self.send_hooks.push(Applies::Publish, move |out, next| {
            let mw = mw.clone();
            async move { mw.send_publish(out, next).await }
        });
        let mw = m.clone();
        self.send_hooks.push(Applies::Request, move |out, next| {
            let mw = mw.clone();
            async move { mw.send_request(out, next).await }
        });
        let mw = m.clone();
        self.listen_hooks.push(Applies::Publish, move |msg, next| {
            let mw = mw.clone();
            async move { mw.listen_publish(msg, next).await }
        });
        self.listen_hooks.push(Applies::Request, move |msg, next| {
            let mw = m.clone();
            async move { mw.listen_request(msg, next).await }
        });
        self
    }
}
