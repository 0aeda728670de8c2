//! [`TestApp`]: an [`App`] run in the test's process against a test server: started, waited
//! for (with a bound) until it is ready, and stopped gracefully (with a bound), on `Drop`
//! too.
//!
//! "Ready" is a one-time task of the kit's own running (tasks start once the start is
//! complete: the `on_start` hooks ran, the endpoints are subscribed, the HTTP server (if
//! any) listens, the start event was published and flushed) and that start event seen;
//! "stop" is the future given to [`App::run_until`] completing, as SIGTERM does for
//! [`App::start`].

use std::net::SocketAddr;
use std::time::Duration;

use smol::future::FutureExt;
use smol::stream::StreamExt;

use super::{within, NatsServer};
use crate::app::{App, AppHandle};
use crate::message::Message;

/// How long an app may take to be ready: connect, run its `on_start` hooks, subscribe its
/// endpoints, bind its HTTP server and publish its start event.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an app may take to end once asked to stop: more than the default drain timeout
/// (10 s), which bounds a graceful stop.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// An app running in the background of a test until [`stop`](TestApp::stop) (or `Drop`).
///
/// Its endpoints, tasks and hooks run on smol's executor threads, beside the test.
///
/// ```
/// use panini::testing::{run, NatsServer, TestApp, TestClient};
/// use panini::{App, Msg};
/// use serde_json::{json, Value};
///
/// let server = NatsServer::start();
/// run(async {
///     let mut app = App::new("echo");
///     app.listen("echo", |msg: Msg<Value>| async move { msg.data });
///     let app = TestApp::start(app, &server).await;
///     let client = TestClient::connect(&server).await;
///     assert_eq!(client.request("echo", json!({"hi": 1})).await, json!({"hi": 1}));
///     // the app's own handle: publish and request as the app does
///     app.handle().publish("echo.seen", "1").await.unwrap();
///     app.stop().await.unwrap();
/// });
/// ```
pub struct TestApp {
    handle: AppHandle,
    start_event: Message,
    stop: smol::channel::Sender<()>,
    /// What `run_until` returns; `None` once joined.
    done: Option<smol::Task<crate::Result<()>>>,
}

impl TestApp {
    /// Starts `app` against `server` (its NATS servers set to `server`, no banner) and
    /// returns once it is ready.
    ///
    /// # Panics
    ///
    /// If the app ends before it is ready (a failed start: the panic shows the error) or is
    /// not ready within [`START_TIMEOUT`].
    pub async fn start(app: App, server: &NatsServer) -> TestApp {
        Self::start_configured(app.servers([server.url()]), server).await
    }

    /// As [`start`](TestApp::start), but the app finds NATS as it is configured
    /// (`servers`, `host` / `port`, `NATS_URL`); `server` is where its start event is
    /// watched for.
    pub async fn start_configured(mut app: App, server: &NatsServer) -> TestApp {
        // A one-time task: tasks start only once the start is complete, so a test that
        // stops the server next cannot fail the start itself.
        let (handle_tx, handles) = smol::channel::bounded(1);
        app.task(move |handle: AppHandle| {
            let _ = handle_tx.try_send(handle);
            std::future::ready(())
        });
        let probe = crate::client::connect(server.url())
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
                // The app dropped its tasks: it is ending, which `ended` reports.
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
        TestApp {
            handle,
            start_event,
            stop,
            done: Some(done),
        }
    }

    /// The app's handle, as its handlers, tasks and hooks get it: publish and request as
    /// the app, read its state.
    pub fn handle(&self) -> &AppHandle {
        &self.handle
    }

    /// Where the app's HTTP server listens (set its port to 0 to let the OS pick).
    ///
    /// # Panics
    ///
    /// If the app has no HTTP server.
    pub fn http_addr(&self) -> SocketAddr {
        self.handle.http_addr().expect("the app has no HTTP server")
    }

    /// The start event the app published (`panini_events.<service>.<client>.started`).
    pub fn start_event(&self) -> &Message {
        &self.start_event
    }

    /// Asks the app to stop gracefully, as SIGTERM would, without waiting for it; see
    /// [`join`](TestApp::join).
    pub fn request_stop(&self) {
        self.stop.close();
    }

    /// Whether the app has ended (`run_until` returned).
    pub fn is_finished(&self) -> bool {
        self.done.as_ref().is_none_or(smol::Task::is_finished)
    }

    /// Stops the app gracefully (handlers and HTTP requests in flight finish, then the
    /// `on_stop` hooks run) and returns what `run_until` returned.
    ///
    /// # Panics
    ///
    /// If the app has not ended within [`STOP_TIMEOUT`].
    pub async fn stop(self) -> crate::Result<()> {
        self.request_stop();
        self.join().await
    }

    /// Waits for the app to end without asking it to: after
    /// [`request_stop`](TestApp::request_stop), [`AppHandle::shutdown`], or the loss of
    /// NATS. Returns what `run_until` returned.
    ///
    /// # Panics
    ///
    /// If the app has not ended within [`STOP_TIMEOUT`].
    pub async fn join(mut self) -> crate::Result<()> {
        let Some(done) = self.done.take() else {
            return Ok(()); // unreachable: only `join` takes it, and `join` takes `self`
        };
        within(STOP_TIMEOUT, "the app to end", done).await
    }
}

impl Drop for TestApp {
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

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp")
            .field("handle", &self.handle)
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}
