//! [`AppHandle`]: what handlers, tasks and hooks use to talk to NATS while the app runs:
//! `publish` / `request` (through the send middlewares) and their blocking `_sync` twins,
//! and runtime `subscribe_new_subject` / `unsubscribe_subject`.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::client::{lock, Client};
use crate::endpoint::{self, Endpoint, Tracker};
use crate::error::{Error, Result};
use crate::handler::{BoxedHandler, Handler};
use crate::message::{Headers, Message};
use crate::middleware::{Chain, ListenResult, Next, Outgoing, SendKind, SendResult, Terminal};
use crate::payload::{FromPayload, IntoPayload};
use crate::state::States;

/// A cheap, cloneable handle to the running app.
///
/// Handlers receive it by taking an `AppHandle` argument; tasks and hooks receive it as
/// their argument.
#[derive(Clone)]
pub struct AppHandle {
    pub(crate) inner: Arc<HandleInner>,
}

pub(crate) struct HandleInner {
    pub(crate) client: Client,
    pub(crate) service_name: String,
    pub(crate) client_name: String,
    pub(crate) request_timeout: Duration,
    /// The send middlewares, ending in the client's publish or request.
    pub(crate) send: Next<Outgoing, SendResult>,
    pub(crate) listen: Chain<Message, ListenResult>,
    pub(crate) queue_group: Option<String>,
    pub(crate) max_concurrency: usize,
    pub(crate) tracker: Tracker,
    /// Every running endpoint by subject (`listen` and runtime ones).
    pub(crate) endpoints: Mutex<HashMap<String, Vec<endpoint::Running>>>,
    /// Set by `shutdown`; the app then stops as on SIGTERM.
    pub(crate) stop: event_listener::Event,
    pub(crate) stopping: std::sync::atomic::AtomicBool,
    /// Where the HTTP server listens, if the app has one.
    pub(crate) http_addr: Option<std::net::SocketAddr>,
    /// The values registered with `App::state`.
    pub(crate) states: States,
    /// Where the app's tasks run.
    pub(crate) runtime: crate::executor::Runtime,
}

impl std::fmt::Debug for AppHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppHandle")
            .field("service_name", &self.inner.service_name)
            .field("client_name", &self.inner.client_name)
            .finish_non_exhaustive()
    }
}

/// Options of one publish or request beyond subject and message.
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
    pub fn service_name(&self) -> &str {
        &self.inner.service_name
    }

    /// The NATS connection name: `{service}__{HOSTNAME or non_docker_env_<n>}__{n}`.
    pub fn client_name(&self) -> &str {
        &self.inner.client_name
    }

    /// Where the app's HTTP server listens (useful with port 0), if it has one.
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

    /// Asks the app to stop gracefully, as SIGTERM does.
    pub fn shutdown(&self) {
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.stop.notify(usize::MAX);
    }

    /// Completes once [`shutdown`](AppHandle::shutdown) was called.
    pub(crate) async fn stopped(&self) {
        loop {
            let listener = self.inner.stop.listen();
            if self
                .inner
                .stopping
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                return;
            }
            listener.await;
        }
    }

    /// The underlying NATS client, for anything the app API does not cover.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Publishes `message` (JSON for `serde_json::Value` and `Json<T>`, raw for strings and
    /// bytes) through the send middlewares.
    pub async fn publish(&self, subject: &str, message: impl IntoPayload) -> Result<()> {
        self.publish_with(subject, message, SendOptions::default())
            .await
    }

    /// [`publish`](AppHandle::publish) with headers and a reply subject.
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
    pub async fn request(&self, subject: &str, message: impl IntoPayload) -> Result<Value> {
        self.request_as(subject, message, SendOptions::default())
            .await
    }

    /// A request whose response is decoded as `T` (`Value`, `String`, `Vec<u8>`, `Json<T>`).
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
    pub async fn request_message(
        &self,
        subject: &str,
        message: impl IntoPayload,
        opts: SendOptions,
    ) -> Result<Message> {
        let out = self.outgoing(SendKind::Request, subject, message, opts)?;
        self.send(out).await?.ok_or(Error::Closed)
    }

    /// Blocking [`publish`](AppHandle::publish), for sync handlers and sync tasks (which
    /// run on a thread pool). From async code the app runs (handlers, middlewares, tasks,
    /// hooks) it returns [`Error::SyncInAsync`] at once: use `publish(..).await` there.
    pub fn publish_sync(&self, subject: &str, message: impl IntoPayload) -> Result<()> {
        refuse_in_app_async("publish_sync")?;
        smol::block_on(self.publish(subject, message))
    }

    /// Blocking [`request`](AppHandle::request), for sync handlers and sync tasks. From
    /// async code the app runs it returns [`Error::SyncInAsync`] at once, as
    /// [`publish_sync`](AppHandle::publish_sync) does.
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
        Ok(Outgoing {
            kind,
            subject: subject.to_string(),
            payload: message.into_payload()?,
            headers: opts.headers,
            reply_to: opts.reply_to,
            timeout: opts.timeout.unwrap_or(self.inner.request_timeout),
        })
    }

    async fn send(&self, out: Outgoing) -> SendResult {
        if self.inner.send.is_last() {
            return send_now(self.inner.client.clone(), out).await;
        }
        self.inner.send.clone().run(out).await
    }

    /// Subscribes `handler` to `subject` while the app runs, with the app's queue group
    /// (or none); messages go through the listen middlewares as for `listen`.
    pub async fn subscribe_new_subject<T, H: Handler<T>>(
        &self,
        subject: &str,
        handler: H,
    ) -> Result<()> {
        let queue = self.inner.queue_group.clone();
        self.subscribe_new_subject_queue(subject, queue.as_deref(), handler)
            .await
    }

    /// [`subscribe_new_subject`](AppHandle::subscribe_new_subject) with an explicit queue
    /// group (`None`: a plain subscription).
    pub async fn subscribe_new_subject_queue<T, H: Handler<T>>(
        &self,
        subject: &str,
        queue: Option<&str>,
        handler: H,
    ) -> Result<()> {
        let boxed = BoxedHandler::new(move || handler.runner());
        let ep = Endpoint {
            subject: subject.to_string(),
            queue: queue.map(str::to_string),
            handler: boxed,
            max_concurrency: self.inner.max_concurrency,
        };
        endpoint::start(self, ep).await?;
        // Returns once the server has the SUB, so a request sent next finds the endpoint.
        self.inner.client.flush().await
    }

    /// Unsubscribes every endpoint on exactly `subject` (from `listen` or
    /// `subscribe_new_subject`); messages already received are still handled. An unknown
    /// subject is [`Error::NotSubscribed`] (as in Panini).
    pub async fn unsubscribe_subject(&self, subject: &str) -> Result<()> {
        let running = {
            let mut endpoints = lock(&self.inner.endpoints);
            endpoints.remove(subject)
        };
        let running = running.ok_or_else(|| Error::NotSubscribed(subject.to_string()))?;
        for ep in &running {
            self.inner.client.unsubscribe_sid(ep.sid);
        }
        for ep in running {
            ep.task.await;
        }
        self.inner.client.flush().await
    }

    /// Takes every running endpoint (for shutdown).
    pub(crate) fn take_endpoints(&self) -> Vec<endpoint::Running> {
        let mut endpoints = lock(&self.inner.endpoints);
        endpoints.drain().flat_map(|(_, eps)| eps).collect()
    }
}

/// The end of the send chain: the client's publish or request.
pub(crate) fn send_terminal(client: Client) -> Terminal<Outgoing, SendResult> {
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
        SendKind::Request => {
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
