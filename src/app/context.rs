//! [`AppHandle`]: what handlers, tasks and hooks get while the app runs: the client, the
//! app's names and state, `publish` / `request` through the send middlewares (compiled
//! once per kind) and their blocking `_sync` twins, and the stop. Starting and stopping
//! endpoints at run time (`subscribe_new_subject`) is the endpoint module's; the running
//! machinery itself is [`Runtime`]'s. Also the mark that makes
//! the `_sync` methods refuse to block an executor thread ([`app_async`]).

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use smol::Task;

#[cfg(feature = "http")]
use super::executor::AppExecutor;
use super::middleware::{Chain, Next, Outgoing, SendKind, SendResult, Terminal};
use super::runtime::Runtime;
use super::state::States;
use super::trace;
use crate::client::Client;
use crate::error::{Error, Result};
#[cfg(feature = "jetstream")]
use crate::jetstream::{self, kv, PubAck, PublishOptions};
use crate::message::{Headers, Message};
use crate::payload::{FromPayload, IntoPayload};

/// A cheap, cloneable handle to the running app.
///
/// Handlers receive it by taking an `AppHandle` argument; tasks and hooks receive it as
/// their argument.
///
/// ```no_run
/// use std::time::Duration;
///
/// use panini::{App, AppHandle, Msg};
/// use serde_json::{json, Value};
///
/// let mut app = App::new("orders");
/// // a handler asks for it as one of its arguments...
/// app.listen("orders.place", |msg: Msg<Value>, app: AppHandle| async move {
///     app.publish("orders.placed", msg.data).await?;
///     Ok::<_, panini::Error>(json!({"success": true}))
/// });
/// // ...a task (or an on_start / on_stop hook) gets it as its one argument
/// app.task_every(Duration::from_secs(30), |app: AppHandle| async move {
///     app.publish("orders.alive", json!({})).await
/// });
/// app.start();
/// ```
#[derive(Clone)]
pub struct AppHandle {
    pub(crate) inner: Arc<HandleInner>,
}

pub(crate) struct HandleInner {
    pub(crate) client: Client,
    pub(crate) service_name: String,
    pub(crate) client_name: String,
    pub(crate) request_timeout: Duration,
    /// The send middlewares for publishes, if any applies (else straight to the client).
    send_publish: Option<Next<Outgoing, SendResult>>,
    /// The send middlewares for requests, if any applies.
    send_request: Option<Next<Outgoing, SendResult>>,
    /// Where the HTTP server listens, if the app has one.
    pub(crate) http_addr: Option<std::net::SocketAddr>,
    /// The values registered with `App::state`.
    pub(crate) states: States,
    /// The running machinery: endpoints, runs in flight, listen middlewares, executor.
    pub(crate) runtime: Runtime,
    /// The JetStream context, when the app enabled JetStream.
    #[cfg(feature = "jetstream")]
    js: Option<jetstream::Context>,
    /// The Key-Value buckets bound so far, by name.
    #[cfg(feature = "jetstream")]
    buckets: std::sync::Mutex<std::collections::HashMap<String, kv::Store>>,
}

/// What makes a handle: the parts of the app a handler sees, and the runtime.
pub(crate) struct HandleParts {
    pub(crate) client: Client,
    pub(crate) service_name: String,
    pub(crate) client_name: String,
    pub(crate) request_timeout: Duration,
    pub(crate) send: Chain<Outgoing, SendResult>,
    pub(crate) http_addr: Option<std::net::SocketAddr>,
    pub(crate) states: States,
    pub(crate) runtime: Runtime,
    #[cfg(feature = "jetstream")]
    pub(crate) js: Option<jetstream::Context>,
}

impl AppHandle {
    /// The handle of one run of an app; the send chain is compiled here, once per kind.
    pub(crate) fn new(parts: HandleParts) -> AppHandle {
        let terminal = send_terminal(parts.client.clone());
        AppHandle {
            inner: Arc::new(HandleInner {
                send_publish: parts.send.compile(SendKind::Publish, terminal.clone()),
                send_request: parts.send.compile(SendKind::Request, terminal),
                client: parts.client,
                service_name: parts.service_name,
                client_name: parts.client_name,
                request_timeout: parts.request_timeout,
                http_addr: parts.http_addr,
                states: parts.states,
                runtime: parts.runtime,
                #[cfg(feature = "jetstream")]
                js: parts.js,
                #[cfg(feature = "jetstream")]
                buckets: Default::default(),
            }),
        }
    }

    /// The running machinery.
    pub(crate) fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// Spawns `fut` where the app's tasks run.
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Task<T> {
        self.inner.runtime.spawn(fut)
    }

    /// Where the app's tasks run.
    #[cfg(feature = "http")]
    pub(crate) fn executor(&self) -> &AppExecutor {
        &self.inner.runtime.executor
    }
}

impl std::fmt::Debug for AppHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppHandle")
            .field("service_name", &self.inner.service_name)
            .field("client_name", &self.inner.client_name)
            .finish_non_exhaustive()
    }
}

/// Options of one publish or request beyond subject and message; start from
/// `SendOptions::default()` and set what you need.
///
/// ```no_run
/// use std::time::Duration;
///
/// use panini::{AppHandle, Headers, SendOptions};
/// use serde_json::{json, Value};
///
/// # async fn report(app: AppHandle) -> panini::Result<()> {
/// // a slow request: a longer timeout than the app's, and the tenant in a header
/// let opts = SendOptions {
///     headers: Some(Headers::from_iter([("X-Tenant", "acme")])),
///     timeout: Some(Duration::from_secs(60)),
///     ..SendOptions::default()
/// };
/// let report: Value = app.request_as("reports.build", json!({"month": 5}), opts).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendOptions {
    /// Headers to send.
    pub headers: Option<Headers>,
    /// The reply subject of a publish (Panini's `reply_to`).
    pub reply_to: Option<String>,
    /// The timeout of a request (default: the app's, 10 s as in Panini).
    pub timeout: Option<Duration>,
}

impl AppHandle {
    /// The service name given to [`App::new`](crate::App::new).
    ///
    /// ```no_run
    /// # use panini::{App, AppHandle};
    /// # use serde_json::json;
    /// let mut app = App::new("billing");
    /// app.listen("services.who", |app: AppHandle| async move {
    ///     json!({"service": app.service_name()}) // "billing"
    /// });
    /// app.start();
    /// ```
    pub fn service_name(&self) -> &str {
        &self.inner.service_name
    }

    /// The NATS connection name: `{service}__{HOSTNAME or non_docker_env_<n>}__{n}`, or
    /// the one given to [`App::client_nats_name`](crate::App::client_nats_name).
    ///
    /// ```no_run
    /// # use panini::{App, AppHandle};
    /// let mut app = App::new("billing").client_nats_name("billing-eu-1");
    /// app.on_start(|app: AppHandle| async move {
    ///     println!("connected to NATS as {}", app.client_name()); // billing-eu-1
    /// });
    /// app.start();
    /// ```
    pub fn client_name(&self) -> &str {
        &self.inner.client_name
    }

    /// Where the app's HTTP server listens (useful with port 0), if it has one.
    ///
    /// ```no_run
    /// # use panini::{App, AppHandle};
    /// let mut app = App::new("web");
    /// # #[cfg(feature = "http")]
    /// app.http().port(0).get("/health", || async { "ok" }); // any free port
    /// app.on_start(|app: AppHandle| async move {
    ///     if let Some(addr) = app.http_addr() {
    ///         println!("health check on http://{addr}/health");
    ///     }
    /// });
    /// app.start();
    /// ```
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.http_addr
    }

    /// A clone of the app state of type `S` registered with
    /// [`App::state`](crate::App::state), or `None` if none was: what tasks and hooks use
    /// where handlers take a [`State<S>`](crate::State) argument.
    ///
    /// ```no_run
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// use panini::{App, AppHandle};
    ///
    /// #[derive(Clone, Default)]
    /// struct Hits(Arc<AtomicU64>);
    ///
    /// let mut app = App::new("reporter");
    /// app.state(Hits::default());
    /// app.task_every(Duration::from_secs(60), |app: AppHandle| async move {
    ///     let hits = app.state::<Hits>().ok_or("no Hits registered")?;
    ///     let n = hits.0.swap(0, Ordering::SeqCst);
    ///     app.publish("stats.hits", n.to_string()).await?;
    ///     Ok::<(), panini::BoxError>(())
    /// });
    /// app.start();
    /// ```
    pub fn state<S: Clone + Send + Sync + 'static>(&self) -> Option<S> {
        self.inner.states.get()
    }

    /// Asks the app to stop gracefully, as SIGTERM does: [`App::start`](crate::App::start)
    /// then exits 0 once handlers in flight and the `on_stop` hooks are done.
    ///
    /// ```no_run
    /// # use panini::{App, AppHandle, Msg};
    /// # use serde_json::Value;
    /// let mut app = App::new("migrator");
    /// app.listen("migrations.done", |msg: Msg<Value>, app: AppHandle| async move {
    ///     println!("last migration: {}", msg.data);
    ///     app.shutdown(); // this handler still finishes, then the graceful stop
    /// });
    /// app.start();
    /// ```
    pub fn shutdown(&self) {
        self.inner.runtime.ask_stop();
    }

    /// Completes once [`shutdown`](AppHandle::shutdown) was called.
    pub(crate) async fn stopped(&self) {
        self.inner.runtime.stop_asked().await
    }

    /// The underlying NATS client, for anything the app API does not cover. What goes
    /// through it bypasses the send and listen middlewares.
    ///
    /// ```no_run
    /// # use panini::{App, AppHandle};
    /// use panini::rt::StreamExt;
    ///
    /// let mut app = App::new("auditor");
    /// app.task(|app: AppHandle| async move {
    ///     // a raw subscription of its own, beside the app's endpoints
    ///     let mut sub = app.client().subscribe("audit.>").await?;
    ///     while let Some(msg) = sub.next().await {
    ///         println!("{}: {} bytes", msg.subject, msg.payload.len());
    ///     }
    ///     Ok::<(), panini::Error>(())
    /// });
    /// app.start();
    /// ```
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Publishes `message` (JSON for `serde_json::Value` and `Json<T>`, raw for strings and
    /// bytes) through the send middlewares.
    ///
    /// ```no_run
    /// # use panini::{App, AppHandle, Msg};
    /// # use serde_json::{json, Value};
    /// let mut app = App::new("orders");
    /// app.listen("orders.ship", |msg: Msg<Value>, app: AppHandle| async move {
    ///     // fire and forget: an event for whoever listens
    ///     app.publish("orders.shipped", json!({"order": msg.data["id"]})).await?;
    ///     app.publish("logs.orders", "an order shipped").await // a string goes raw
    /// });
    /// app.start();
    /// ```
    pub async fn publish(&self, subject: &str, message: impl IntoPayload) -> Result<()> {
        self.publish_with(subject, message, SendOptions::default())
            .await
    }

    /// [`publish`](AppHandle::publish) with headers and a reply subject.
    ///
    /// ```no_run
    /// # use panini::{App, AppHandle, Headers, SendOptions};
    /// # use serde_json::json;
    /// let mut app = App::new("thumbnails");
    /// app.task(|app: AppHandle| async move {
    ///     let opts = SendOptions {
    ///         headers: Some(Headers::from_iter([("X-Trace-Id", "trace-42")])),
    ///         reply_to: Some("thumbnails.done".into()), // where the worker answers
    ///         ..SendOptions::default()
    ///     };
    ///     app.publish_with("images.resize", json!({"image": 7}), opts).await
    /// });
    /// app.start();
    /// ```
    pub async fn publish_with(
        &self,
        subject: &str,
        message: impl IntoPayload,
        opts: SendOptions,
    ) -> Result<()> {
        let out = self.outgoing(SendKind::Publish, subject, message, opts)?;
        self.send(out).await.map(|_| ())
    }

    /// Sends a request and decodes the response as JSON (Panini's default `dict`).
    ///
    /// A response carrying `Nats-Service-Error` headers (a handler failed) is returned as
    /// [`Error::Service`]; no subscriber gives [`Error::NoResponders`] at once.
    ///
    /// ```no_run
    /// # use panini::{App, AppHandle, Error, Msg};
    /// # use serde_json::{json, Value};
    /// let mut app = App::new("orders");
    /// app.listen("orders.place", |msg: Msg<Value>, app: AppHandle| async move {
    ///     let error = match app.request("stock.reserve", json!({"sku": msg.data["sku"]})).await {
    ///         Ok(stock) => return json!({"success": true, "left": stock["left"]}),
    ///         Err(Error::Service { description, .. }) => description, // its handler failed
    ///         Err(Error::NoResponders) => "the stock service is down".to_string(),
    ///         Err(e) => e.to_string(),
    ///     };
    ///     json!({"success": false, "error": error})
    /// });
    /// app.start();
    /// ```
    pub async fn request(&self, subject: &str, message: impl IntoPayload) -> Result<Value> {
        self.request_as(subject, message, SendOptions::default())
            .await
    }

    /// A request whose response is decoded as `T` (`Value`, `String`, `Vec<u8>`, `Json<T>`).
    ///
    /// ```no_run
    /// use panini::{App, AppHandle, Json, SendOptions};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize)]
    /// struct Order { sku: String, qty: u32 }
    /// #[derive(Deserialize)]
    /// struct Receipt { total: u32 }
    ///
    /// let mut app = App::new("shop");
    /// app.task(|app: AppHandle| async move {
    ///     let order = Json(Order { sku: "pen".into(), qty: 2 });
    ///     let opts = SendOptions::default();
    ///     let Json(receipt) = app.request_as::<Json<Receipt>>("orders.place", order, opts).await?;
    ///     println!("total: {}", receipt.total);
    ///     Ok::<(), panini::Error>(())
    /// });
    /// app.start();
    /// ```
    pub async fn request_as<T: FromPayload>(
        &self,
        subject: &str,
        message: impl IntoPayload,
        opts: SendOptions,
    ) -> Result<T> {
        let msg = self.request_message(subject, message, opts).await?;
        service_error(&msg)?;
        T::from_payload(&msg.payload)
    }

    /// A request returning the whole response message, headers included, as it came (an
    /// error reply is returned as a message, not turned into [`Error::Service`]).
    ///
    /// ```no_run
    /// # use panini::{App, AppHandle, SendOptions};
    /// # use serde_json::json;
    /// let mut app = App::new("pricing_client");
    /// app.task(|app: AppHandle| async move {
    ///     let opts = SendOptions::default();
    ///     let msg = app.request_message("prices.get", json!({"sku": "pen"}), opts).await?;
    ///     // an error reply comes back as a message too: its headers say so
    ///     match msg.headers.as_ref().and_then(|h| h.get("Nats-Service-Error-Code")) {
    ///         Some(code) => println!("prices.get failed with code {code}"),
    ///         None => println!("price: {}", msg.text().unwrap_or("?")),
    ///     }
    ///     Ok::<(), panini::Error>(())
    /// });
    /// app.start();
    /// ```
    pub async fn request_message(
        &self,
        subject: &str,
        message: impl IntoPayload,
        opts: SendOptions,
    ) -> Result<Message> {
        let out = self.outgoing(SendKind::Request, subject, message, opts)?;
        self.send(out).await?.ok_or(Error::Closed)
    }

    /// Publishes `message` to a JetStream stream's `subject` through the send middlewares
    /// (the `send_publish` and `send_any` hooks) and waits for the stream's ack: its
    /// sequence, and whether it was a duplicate. No stream on the subject fails at once with
    /// [`JetStreamError::NoStream`](crate::jetstream::JetStreamError::NoStream), not after
    /// the timeout (the app's request timeout). Feature `jetstream`.
    ///
    /// ```no_run
    /// use panini::{App, AppHandle, Msg};
    /// use serde_json::{json, Value};
    ///
    /// let mut app = App::new("orders").enable_js(true);
    /// app.listen("orders.place", |msg: Msg<Value>, app: AppHandle| async move {
    ///     let ack = app.publish_js("orders.created", msg.data).await?;
    ///     Ok::<_, panini::Error>(json!({"order": ack.seq}))
    /// });
    /// app.start();
    /// ```
    #[cfg(feature = "jetstream")]
    pub async fn publish_js(&self, subject: &str, message: impl IntoPayload) -> Result<PubAck> {
        self.publish_js_with(subject, message, &PublishOptions::default())
            .await
    }

    /// [`publish_js`](AppHandle::publish_js) with options: a `Nats-Msg-Id` (the stream
    /// keeps one copy of a message published twice with one id, within its duplicate
    /// window), the expected last sequence or message id, headers, a timeout. Feature
    /// `jetstream`.
    ///
    /// ```no_run
    /// # async fn f(app: panini::AppHandle) -> panini::Result<()> {
    /// use panini::jetstream::PublishOptions;
    ///
    /// let opts = PublishOptions::new().msg_id("order-1042");
    /// let ack = app.publish_js_with("orders.created", "{}", &opts).await?;
    /// assert!(!ack.duplicate || ack.seq > 0);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "jetstream")]
    pub async fn publish_js_with(
        &self,
        subject: &str,
        message: impl IntoPayload,
        opts: &PublishOptions,
    ) -> Result<PubAck> {
        let mut headers = opts.to_headers();
        trace::inject(&mut headers);
        let out = Outgoing {
            kind: SendKind::JsPublish,
            subject: subject.to_string(),
            payload: message.into_payload()?,
            headers,
            reply_to: None,
            timeout: opts.timeout_set().unwrap_or(self.inner.request_timeout),
        };
        let reply = self.send(out).await.and_then(|m| m.ok_or(Error::Closed));
        jetstream::parse_ack(subject, reply)
    }

    /// The app's JetStream context (streams, consumers, Key-Value, fetches of its own),
    /// when the app enabled JetStream ([`App::enable_js`](crate::App::enable_js)). Feature
    /// `jetstream`.
    ///
    /// ```no_run
    /// # async fn f(app: panini::AppHandle) -> panini::Result<()> {
    /// if let Some(js) = app.jetstream() {
    ///     let info = js.stream("ORDERS").info().await?;
    ///     println!("{} messages", info.state.messages);
    /// }
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "jetstream")]
    pub fn jetstream(&self) -> Option<&jetstream::Context> {
        self.inner.js.as_ref()
    }

    /// The Key-Value bucket `bucket`: the one declared with
    /// [`App::declare_key_value`](crate::App::declare_key_value) (bound at start), or
    /// bound now and kept for the next call. A bucket that does not exist is
    /// [`KvError::BucketNotFound`](crate::jetstream::kv::KvError::BucketNotFound). Feature
    /// `jetstream`.
    ///
    /// ```no_run
    /// # async fn f(app: panini::AppHandle) -> panini::Result<()> {
    /// let states = app.key_value("order_states").await?;
    /// let revision = states.put("order-7", "fulfilled").await?;
    /// assert!(revision > 0);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "jetstream")]
    pub async fn key_value(&self, bucket: &str) -> Result<kv::Store> {
        if let Some(store) = crate::client::lock(&self.inner.buckets).get(bucket) {
            return Ok(store.clone());
        }
        let store = match &self.inner.js {
            Some(js) => js.key_value(bucket).await?,
            None => {
                let js = jetstream::Context::new(self.inner.client.clone());
                js.key_value(bucket).await?
            }
        };
        self.remember_bucket(store.clone());
        Ok(store)
    }

    /// Keeps a bound bucket for [`key_value`](AppHandle::key_value).
    #[cfg(feature = "jetstream")]
    pub(crate) fn remember_bucket(&self, store: kv::Store) {
        let name = store.bucket().to_string();
        crate::client::lock(&self.inner.buckets).insert(name, store);
    }

    /// Blocking [`publish`](AppHandle::publish), for sync handlers and sync tasks (which
    /// run on a thread pool). From async code the app runs (handlers, middlewares, tasks,
    /// hooks) it returns [`Error::SyncInAsync`] at once: use `publish(..).await` there.
    ///
    /// ```no_run
    /// # use panini::{App, AppHandle, Msg};
    /// # use serde_json::{json, Value};
    /// let mut app = App::new("orders");
    /// // a plain closure (no async), on the thread pool: it may block
    /// app.listen_sync("orders.place", |msg: Msg<Value>, app: AppHandle| {
    ///     app.publish_sync("orders.audit", msg.data)?;
    ///     Ok::<_, panini::Error>(json!({"success": true}))
    /// });
    /// app.start();
    /// ```
    pub fn publish_sync(&self, subject: &str, message: impl IntoPayload) -> Result<()> {
        refuse_in_app_async("publish_sync")?;
        smol::block_on(self.publish(subject, message))
    }

    /// Blocking [`request`](AppHandle::request), for sync handlers and sync tasks. From
    /// async code the app runs it returns [`Error::SyncInAsync`] at once, as
    /// [`publish_sync`](AppHandle::publish_sync) does.
    ///
    /// ```no_run
    /// # use panini::{App, AppHandle};
    /// # use serde_json::json;
    /// let mut app = App::new("exporter");
    /// // a blocking task, on the thread pool: a request, then a file written
    /// app.task_sync(|app: AppHandle| {
    ///     let config = app.request_sync("config.get", json!({"service": "exporter"}))?;
    ///     std::fs::write("exporter.json", config.to_string())?;
    ///     Ok::<(), panini::BoxError>(())
    /// });
    /// app.start();
    /// ```
    pub fn request_sync(&self, subject: &str, message: impl IntoPayload) -> Result<Value> {
        refuse_in_app_async("request_sync")?;
        smol::block_on(self.request(subject, message))
    }

    fn outgoing(
        &self,
        kind: SendKind,
        subject: &str,
        message: impl IntoPayload,
        opts: SendOptions,
    ) -> Result<Outgoing> {
        let mut headers = opts.headers;
        trace::inject(&mut headers);
        Ok(Outgoing {
            kind,
            subject: subject.to_string(),
            payload: message.into_payload()?,
            headers,
            reply_to: opts.reply_to,
            timeout: opts.timeout.unwrap_or(self.inner.request_timeout),
        })
    }

    async fn send(&self, out: Outgoing) -> SendResult {
        let chain = match out.kind {
            SendKind::Publish | SendKind::JsPublish => &self.inner.send_publish,
            SendKind::Request => &self.inner.send_request,
        };
        match chain {
            Some(chain) => chain.clone().run(out).await,
            None => send_now(self.inner.client.clone(), out).await,
        }
    }
}

/// The end of the send chain: the client's publish or request.
fn send_terminal(client: Client) -> Terminal<Outgoing, SendResult> {
    Arc::new(move |out| Box::pin(send_now(client.clone(), out)))
}

async fn send_now(client: Client, out: Outgoing) -> SendResult {
    match out.kind {
        SendKind::Publish => {
            client
                .publish_with(
                    &out.subject,
                    out.reply_to.as_deref(),
                    out.headers.as_ref(),
                    out.payload,
                )
                .await?;
            Ok(None)
        }
        // A JetStream publish is a request: the reply is the stream's ack.
        SendKind::Request | SendKind::JsPublish => {
            let msg = client
                .request_with(&out.subject, out.headers.as_ref(), out.payload, out.timeout)
                .await?;
            Ok(Some(msg))
        }
    }
}

/// A response with `Nats-Service-Error` headers becomes [`Error::Service`].
fn service_error(msg: &Message) -> Result<()> {
    let Some(h) = &msg.headers else { return Ok(()) };
    let Some(description) = h.get("Nats-Service-Error") else {
        return Ok(());
    };
    let code = h
        .get("Nats-Service-Error-Code")
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(500);
    Err(Error::Service {
        code,
        description: description.to_string(),
    })
}

thread_local! {
    /// Set while this thread polls async code of the app (see [`app_async`]).
    static IN_APP_ASYNC: Cell<bool> = const { Cell::new(false) };
}

/// Runs `fut` as async code of the app: while it is polled, the blocking `_sync` methods
/// refuse to run on this thread (they would block the executor thread that the app's
/// endpoints need, up to a freeze of the whole app). Code `fut` hands to another thread
/// (`smol::unblock`, the sync handlers and tasks) is not marked.
pub(crate) async fn app_async<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        let _mark = Mark(IN_APP_ASYNC.replace(true));
        fut.as_mut().poll(cx)
    })
    .await
}

/// Puts the thread's earlier mark back on drop (after a poll, or while a panic unwinds).
struct Mark(bool);

impl Drop for Mark {
    fn drop(&mut self) {
        IN_APP_ASYNC.set(self.0);
    }
}

fn refuse_in_app_async(method: &'static str) -> Result<()> {
    if IN_APP_ASYNC.get() {
        return Err(Error::SyncInAsync { method });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(r: Result<()>) -> bool {
        matches!(r, Err(Error::SyncInAsync { method: "m" }))
    }

    #[test]
    fn sync_methods_are_refused_only_while_app_async_code_is_polled() {
        assert!(refuse_in_app_async("m").is_ok());
        assert!(refused(smol::block_on(app_async(async {
            refuse_in_app_async("m")
        }))));
        assert!(refuse_in_app_async("m").is_ok(), "the mark is put back");
        let handed_over = app_async(smol::unblock(|| refuse_in_app_async("m")));
        assert!(
            smol::block_on(handed_over).is_ok(),
            "other threads are not marked"
        );
    }

    #[test]
    fn the_mark_is_put_back_when_app_async_code_panics() {
        let panicked =
            std::panic::catch_unwind(|| smol::block_on(app_async(async { panic!("in app code") })));
        assert!(panicked.is_err());
        assert!(refuse_in_app_async("m").is_ok());
    }
}
