//! The app layer: what turns a NATS client into a Panini service.
//!
//! # Layers inside `app` (each file uses only those above it; `tests/layers.rs` checks)
//! 1. [`state`] (the registered values) and [`trace`] (the W3C trace context of a run),
//!    then [`reply`] (a handler's return value as the reply) and [`executor`] (the threads
//!    the app runs on);
//! 2. [`middleware`]: the hooks and their chains, compiled once per kind, and [`stats`]
//!    (each endpoint's counters);
//! 3. [`runtime`]: the running machinery (endpoints by subject, runs in flight, listen
//!    hooks, the stop latch, the executor);
//! 4. [`context`]: [`AppHandle`], what handlers, tasks and hooks get;
//! 5. [`extract`] (a handler's arguments: [`Msg`], [`State`]), then [`runner`]
//!    ([`Handler`]: a plain async fn as an endpoint);
//! 6. [`endpoint`]: the one loop every subscription runs, and `subscribe_new_subject`;
//!    `stream_endpoint` (durable JetStream endpoints, feature `jetstream`) and [`service`]
//!    (the NATS Service API responder) beside it;
//! 7. the HTTP server ([`crate::http`]), which uses the context and the extractors, then
//!    `metrics` (`/metrics` on it);
//! 8. [`tasks`], [`builder`] ([`App`]), [`shutdown`] (signals, the graceful stop), and
//!    [`run`] (the start and the run);
//! 9. [`record`]: record an app's traffic, replay it against an app under test.

pub(crate) mod builder;
pub(crate) mod context;
pub(crate) mod endpoint;
pub(crate) mod executor;
pub(crate) mod extract;
#[cfg(feature = "http")]
pub(crate) mod metrics;
pub mod middleware;
pub mod record;
pub(crate) mod reply;
pub(crate) mod run;
pub(crate) mod runner;
pub(crate) mod runtime;
pub(crate) mod service;
pub mod shutdown;
pub(crate) mod state;
pub(crate) mod stats;
#[cfg(feature = "jetstream")]
pub(crate) mod stream_endpoint;
pub(crate) mod tasks;
pub(crate) mod trace;

pub use builder::{App, EndpointConfig, IntoSubjects, EXIT_NATS_LOST};
#[cfg(feature = "http")]
pub(crate) use context::app_async;
pub use context::{AppHandle, SendOptions};
pub use extract::{FromMessage, Msg, State};
pub use reply::{IntoReply, Outcome, Rejection, Reply};
pub use runner::{Handler, SyncHandler};
pub use state::MissingState;
#[cfg(feature = "jetstream")]
pub use stream_endpoint::StreamEndpointConfig;
pub use tasks::TaskResult;
pub use trace::Trace;
