//! Runs an [`App`] in the test's process against a test `nats-server`: [`RunningApp`]
//! starts it, waits (with a bound) until it is ready, hands out its [`AppHandle`], and stops
//! it gracefully (with a bound), on `Drop` too.
//!
//! It uses only the public API, in the shape a user-facing testing kit would have: "ready"
//! is a one-time task of its own running (tasks start once the start is complete: the
//! `on_start` hooks ran, the endpoints are subscribed, the HTTP server (if any) listens,
//! the start event was published and flushed) and the start event seen; "stop" is the future given to
//! [`App::run_until`] completing, as SIGTERM does for [`App::start`].

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use panini::client::Client;
use panini::{App, AppHandle, Message};
use smol::future::FutureExt;
use smol::stream::StreamExt;

use super::{within, NatsServer};

/// How long an app may take to be ready: connect, run its `on_start` hooks, subscribe its
/// endpoints, bind its HTTP server and publish its start event.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an app may take to end once asked to stop: more than the default drain timeout
/// (10 s), which bounds a graceful stop.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// How long [`ask`] waits for a reply.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// An app running in the background of a test until [`stop`](RunningApp::stop) (or `Drop`).
///
/// ```ignore
/// let server = NatsServer::start();
/// run(async {
///     let mut app = App::new("echo");
///     app.listen("echo", |msg: Msg<String>| async move { msg.data });
///     let app = RunningApp::start(app, &server).await;
///     let reply = app.handle().request("echo", "hi").await?;
///     app.stop().await.unwrap();
/// });
/// ```
pub struct RunningApp {
    handle: AppHandle,
    start_event: Message,
    stop: smol::channel::Sender<()>,
    /// What `run_until` returns; `None` once joined.
    done: Option<smol::Task<panini::Result<()>>>,
}

impl RunningApp {
    /// Starts `app` against `server` (its NATS servers set to `server`, no banner) and
    /// returns once it is ready.
    ///
    /// Panics if the app ends before it is ready (a failed start: the panic shows
    /// `run_until`'s error) or is not ready within [`START_TIMEOUT`].
    pub async fn start(app: App, server: &NatsServer) -> RunningApp {
        Self::start_configured(app.servers([server.url()]), server).await
    }

    /// As [`start`](RunningApp::start), but the app finds NATS as it is configured
    /// (`servers`, `host` / `port`, `NATS_URL`); `server` is where its start event is
    /// watched for.
    pub async fn start_configured(mut app: App, server: &NatsServer) -> RunningApp {
        // A one-time task: tasks start only once the start is complete (hooks run,
        // endpoints subscribed, the start event published and flushed), so a test that
        // stops the server next cannot fail the start itself.
        let (handle_tx, handles) = smol::channel::bounded(1);
        app.task(move |handle: AppHandle| {
            let _ = handle_tx.try_send(handle);
            std::future::ready(())
        });
        let probe = panini::client::connect(server.url())
            .await
            .unwrap_or_else(|e| panic!("connecting to {} to watch the app: {e}", server.url()));
        let mut events = probe
            .subscribe("panini_events.>")
            .await
            .unwrap_or_else(|e| panic!("subscribing to the start events: {e}"));
        probe
            .flush()
            .await
            .unwrap_or_else(|e| panic!("flushing the start event subscription: {e}"));

        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let mut done = smol::spawn(app.banner(false).run_until(async move {
            let _ = stopped.recv().await;
        }));
        let ready = async {
            let Ok(handle) = handles.recv().await else {
                // The app dropped its hooks: it is ending, which `ended` reports.
                return std::future::pending().await;
            };
            let subject = format!(
                "panini_events.{}.{}.started",
                handle.service_name(),
                handle.client_name()
            );
            loop {
                let Some(event) = events.next().await else {
                    panic!("the subscription to the start events ended");
                };
                if event.subject == subject {
                    return (handle, event);
                }
            }
        };
        let ended = async {
            let ended = (&mut done).await;
            panic!("the app ended before it was ready: {ended:?}")
        };
        let (handle, start_event) =
            within(START_TIMEOUT, "the app to be ready", ready.or(ended)).await;
        RunningApp {
            handle,
            start_event,
            stop,
            done: Some(done),
        }
    }

    /// The app's handle, as its handlers, tasks and hooks get it.
    pub fn handle(&self) -> &AppHandle {
        &self.handle
    }

    /// Where the app's HTTP server listens (set it to port 0 to let the OS pick).
    ///
    /// Panics if the app has no HTTP server.
    pub fn http_addr(&self) -> SocketAddr {
        self.handle.http_addr().expect("the app has no HTTP server")
    }

    /// The start event the app published (`panini_events.<service>.<client>.started`).
    pub fn start_event(&self) -> &Message {
        &self.start_event
    }

    /// Asks the app to stop gracefully, as SIGTERM would, without waiting for it; see
    /// [`join`](RunningApp::join).
    pub fn request_stop(&self) {
        self.stop.close();
    }

    /// Whether the app has ended (`run_until` returned).
    pub fn is_finished(&self) -> bool {
        self.done.as_ref().map_or(true, smol::Task::is_finished)
    }

    /// Stops the app gracefully (handlers and HTTP requests in flight finish, then the
    /// `on_stop` hooks run) and returns what `run_until` returned.
    ///
    /// Panics if the app has not ended within [`STOP_TIMEOUT`].
    pub async fn stop(self) -> panini::Result<()> {
        self.request_stop();
        self.join().await
    }

    /// Waits for the app to end without asking it to: after
    /// [`request_stop`](RunningApp::request_stop), [`AppHandle::shutdown`], or the loss of
    /// NATS. Returns what `run_until` returned.
    ///
    /// Panics if the app has not ended within [`STOP_TIMEOUT`].
    pub async fn join(mut self) -> panini::Result<()> {
        let done = self.done.take().expect("joined once: join takes self");
        within(STOP_TIMEOUT, "the app to end", done).await
    }
}

impl Drop for RunningApp {
    /// Stops an app that was neither stopped nor joined: gracefully, within
    /// [`STOP_TIMEOUT`], or at once (cancelled) while the test is panicking.
    fn drop(&mut self) {
        let Some(done) = self.done.take() else {
            return;
        };
        if std::thread::panicking() || done.is_finished() {
            return; // dropping `done` cancels the app
        }
        self.request_stop();
        // The app runs on smol's executor threads, not on this one, so it can end while
        // this thread blocks.
        let ended = smol::block_on(async { Some(done.await) }.or(async {
            smol::Timer::after(STOP_TIMEOUT).await;
            None
        }));
        if ended.is_none() {
            eprintln!(
                "{} did not stop within {STOP_TIMEOUT:?}; cancelled",
                self.handle.client_name()
            );
        }
    }
}

impl std::fmt::Debug for RunningApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningApp")
            .field("handle", &self.handle)
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

/// A request from a plain client, answered within [`REQUEST_TIMEOUT`]; panics naming the
/// subject if it is not (an error reply is a reply).
pub async fn ask(client: &Client, subject: &str, payload: &[u8]) -> Message {
    client
        .request_with(subject, None, payload, REQUEST_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("request on {subject}: {e}"))
}
