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
//! # Layout, and the dependency rule
//!
//! The crate is in layers; a module uses only the layers before it, never one after
//! (`tests/layers.rs` checks the `crate::` and `super::` paths of the code outside tests
//! and comments):
//!
//! **proto ← foundation ← client ← (jetstream) ← app**, with **http** inside the app's
//! layers: after its context, extractors and endpoints (routes take [`AppHandle`] and
//! [`State`]), before `metrics` (a route of its own), the builder, the run and the
//! shutdown (which create, start and stop the server). (A server below the whole app,
//! as `http ← app` would have it, could not hand a route the app's handle without a
//! cycle.) JetStream's client API needs only the client, so it sits before the app; the
//! app's durable endpoints (`app/stream_endpoint`) and the NATS Service API
//! (`app/service`) are files of the app layer.
//!
//! - [`proto`]: `panini-proto`, the wire protocol as values (sans-IO, its own crate).
//! - foundation: `error` ([`Error`]), `encoding`, `buffer` (the receive buffer), `sync` (a
//!   latch, a wait group), [`log`], `rfc3339` (times as NATS writes them); then `message`
//!   ([`Message`], [`Headers`]), `payload` ([`Json`], [`FromPayload`], [`IntoPayload`]),
//!   `creds` and `nkeys` (feature `nkeys`).
//! - [`client`]: our NATS client (connection task, reconnect, pool, TLS, request mux).
//! - `jetstream` (feature `jetstream`, off by default): JetStream on the client alone:
//!   streams, pull consumers, acked publishes, Key-Value, typed API errors.
//! - `app/`: the framework, in layers of its own (each file one job): `state`, `trace`
//!   (W3C trace context), `reply` ([`IntoReply`]), `executor`, [`middleware`], `stats`
//!   (per-endpoint counters), `runtime` (endpoints, runs in flight, the stop), `context`
//!   ([`AppHandle`]), `extract` ([`Msg`], [`FromMessage`], [`State`]), `runner`
//!   ([`Handler`]), `endpoint` (the one loop every subscription runs), `stream_endpoint`
//!   (durable JetStream endpoints, feature `jetstream`), `service` (the NATS Service API),
//!   `metrics` (`/metrics`), `tasks`, `builder` ([`App`]), [`shutdown`] (signals, the
//!   graceful stop), `run` (the start), [`record`] (record an app's traffic to JSONL,
//!   replay it in a test).
//! - [`http`] (feature `http`, on by default): `router` (routes, views, arguments), `conn`
//!   (one connection's I/O and limits), `head` and `query` (parsing), `request` and
//!   `response` (what a route gets and returns), `failure` (a route's error: a generic 500,
//!   the text logged), `slots` (the connection limit), `stats` (refusals counted and
//!   logged), `state` (the app state as a route argument).
//! - [`rt`]: the smol and futures-lite pieces re-exported for programs using the client.
//! - `testing` (feature `testing`, for a program's dev-dependencies), after the app: a
//!   `nats-server` per test, the app run in the test's process, a test client.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub use panini_proto as proto;

/// The README's Rust examples, compiled by `cargo test --doc` (with every feature they
/// use) so that they cannot drift from the API.
#[cfg(all(
    doctest,
    feature = "http",
    feature = "jetstream",
    feature = "tls",
    feature = "nkeys"
))]
#[doc = include_str!("../README.md")]
pub struct ReadmeExamples;

mod app;
mod buffer;
pub mod client;
mod creds;
mod encoding;
mod error;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "jetstream")]
pub mod jetstream;
pub mod log;
mod message;
#[cfg(feature = "nkeys")]
pub mod nkeys;
mod payload;
mod rfc3339;
mod sync;
#[cfg(feature = "testing")]
pub mod testing;

pub use app::{middleware, record, shutdown};

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

#[cfg(feature = "jetstream")]
pub use app::StreamEndpointConfig;
pub use app::Trace;
pub use app::{
    App, AppHandle, EndpointConfig, FromMessage, Handler, IntoReply, IntoSubjects, MissingState,
    Msg, Outcome, Rejection, Reply, SendOptions, State, SyncHandler, TaskResult, EXIT_NATS_LOST,
};
pub use error::{BoxError, Error, Result, StartStage};
pub use message::{Headers, Message};
pub use payload::{FromPayload, IntoPayload, Json};
