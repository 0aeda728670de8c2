//! # panini
//!
//! Panini, the Flask-like microservice framework for NATS messaging, in Rust. One small
//! program declares its endpoints with [`App::listen`], its periodic tasks, its publishes
//! and requests, middlewares and HTTP endpoints; panini connects it to NATS and runs it.
//!
//! ```no_run
//! use panini::{App, Msg};
//! use serde_json::{json, Value};
//!
//! let mut app = App::new("listener_app").host("127.0.0.1").port(4222);
//!
//! // request endpoint: the return value is the reply
//! app.listen("some.subject.for.request", |msg: Msg<Value>| async move {
//!     println!("request {} from {} has been processed", msg.data, msg.subject);
//!     json!({"success": true, "message": "request has been processed"})
//! });
//!
//! // stream endpoint
//! app.listen("some.subject.for.stream", |msg: Msg<Value>| async move {
//!     println!("event {} from {} has been processed", msg.data, msg.subject);
//! });
//!
//! app.start(); // until SIGINT/SIGTERM: then a graceful stop and exit 0
//! ```
//!
//! Everything under the API is ours: a sans-IO NATS parser ([`proto`]), a NATS client on
//! smol ([`client`]), and a small HTTP/1.1 server ([`http`], feature `http`, on by default).
//!
//! # Layout
//! - `app`: [`App`], the builder: endpoints, tasks, hooks, middlewares, settings.
//! - `run`: the start sequence (connect, on-start hooks, subscribe, banner) and exit codes.
//! - `handle`: [`AppHandle`], what handlers and tasks use to publish, request, subscribe.
//! - `handler`: [`Handler`], [`Msg`], [`IntoReply`]: a plain async fn becomes an endpoint.
//! - `payload`: [`Json`], [`FromPayload`], [`IntoPayload`]: JSON, text and bytes.
//! - [`middleware`]: the four send/listen hooks and the catch-alls.
//! - `tasks`: one-time and interval tasks, on-start and on-stop hooks.
//! - `state`: [`State`], the app state that handlers, routes and tasks share.
//! - `sync`: the shared waits: a latch, a wait group, and the wait loop under both.
//! - `buffer`: the receive buffer of the NATS connection and the HTTP server.
//! - `endpoint`: the dispatch loop of each subscription, and handlers in flight.
//! - `executor`: the threads the app's tasks run on ([`App::threads`]).
//! - [`client`]: our NATS client (connection task, reconnect, pool, request mux).
//! - [`jetstream`]: JetStream on the client: streams, pull consumers, acked publishes.
//! - `nkeys` (feature `nkeys`): NKey key pairs: seeds, public keys, Ed25519 signatures.
//! - `creds`: the lenient `.creds` file parser (user JWT and seed).
//! - `encoding`: base32, CRC-16, base64url: the text forms of NKeys and JWTs.
//! - [`http`]: the HTTP server: `router` (routes, views, arguments), `conn` (one
//!   connection's I/O and limits), `head` and `query` (parsing), `slots` (the connection
//!   limit, idle connections making room), `stats` (refusals counted and logged).
//! - [`shutdown`]: the SIGINT and SIGTERM watcher, and the graceful stop under one
//!   deadline (HTTP and handlers in flight, on-stop hooks, flush, close).
//! - [`log`]: leveled logging to stderr (`PANINI_LOG`), or the `log` facade (feature `log`).
//! - [`rt`]: the smol and futures-lite pieces re-exported for programs using the client.
//! - [`proto`]: `panini-proto`, the wire protocol as values.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub use panini_proto as proto;

mod app;
mod buffer;
pub mod client;
mod creds;
mod encoding;
mod endpoint;
mod error;
mod executor;
mod handle;
mod handler;
#[cfg(feature = "http")]
pub mod http;
pub mod jetstream;
pub mod log;
mod message;
pub mod middleware;
#[cfg(feature = "nkeys")]
pub mod nkeys;
mod payload;
mod run;
pub mod shutdown;
mod state;
mod sync;
mod tasks;

/// The async runtime pieces a program needs to use panini's [`client`] on its own (or to
/// run an [`App`] inside its own code), so it does not have to add `smol` and
/// `futures-lite` itself: panini runs on smol, and these are smol's.
///
/// ```no_run
/// use panini::rt::{block_on, StreamExt};
///
/// block_on(async {
///     let client = panini::client::connect("nats://127.0.0.1:4222").await?;
///     let mut sub = client.subscribe("greet.*").await?;
///     client.publish("greet.joe", "hello").await?;
///     if let Some(msg) = sub.next().await {
///         println!("{}: {:?}", msg.subject, msg.payload);
///     }
///     Ok::<(), panini::Error>(())
/// })?;
/// # Ok::<(), panini::Error>(())
/// ```
pub mod rt {
    pub use smol::future::{self, FutureExt};
    pub use smol::stream::{Stream, StreamExt};
    pub use smol::{block_on, spawn, Task, Timer};
}

pub use app::{App, EndpointConfig, IntoSubjects, EXIT_NATS_LOST};
pub use error::{BoxError, Error, Result, StartStage};
pub use handle::{AppHandle, SendOptions};
pub use handler::{FromMessage, Handler, IntoReply, Msg, Outcome, Rejection, Reply, SyncHandler};
pub use message::{Headers, Message};
pub use payload::{FromPayload, IntoPayload, Json};
pub use state::{MissingState, State};
pub use tasks::TaskResult;
