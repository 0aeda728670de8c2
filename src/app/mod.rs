//! The app layer: what turns a NATS client into a Panini service.
//!
//! # Layers inside `app` (each file uses only those above it)
//! 1. [`reply`] (a handler's return value as the reply) and [`middleware`] (the hooks and
//!    their chains, compiled once per kind);
//! 2. [`executor`] (the threads the app runs on) and [`runtime`] (the running machinery:
//!    endpoints by subject, runs in flight, listen hooks, the stop latch);
//! 3. [`context`]: [`AppHandle`], what handlers, tasks and hooks get;
//! 4. [`extract`] (a handler's arguments), [`state`] (the app state argument), then
//!    [`runner`] ([`Handler`]: a plain async fn as an endpoint);
//! 5. [`endpoint`]: the one loop every subscription runs, and `subscribe_new_subject`;
//! 6. [`tasks`] (tasks and hooks), [`builder`] ([`App`]);
//! 7. [`run`] (the start and the run) and [`shutdown`] (signals, the graceful stop).
//!
//! The HTTP server ([`crate::http`]) sits between 5 and 7: it uses the context (its routes
//! take [`AppHandle`] and [`State`]) and is started and stopped by `run` and `shutdown`.

pub(crate) mod builder;
pub(crate) mod context;
pub(crate) mod endpoint;
pub(crate) mod executor;
pub(crate) mod extract;
pub mod middleware;
pub(crate) mod reply;
pub(crate) mod run;
pub(crate) mod runner;
pub(crate) mod runtime;
pub mod shutdown;
pub(crate) mod state;
pub(crate) mod tasks;

pub use builder::{App, EndpointConfig, IntoSubjects, EXIT_NATS_LOST};
pub(crate) use context::app_async;
pub use context::{AppHandle, SendOptions};
pub use extract::{FromMessage, Msg, Rejection};
pub use reply::{IntoReply, Outcome, Reply};
pub use runner::{Handler, SyncHandler};
pub use state::{MissingState, State};
pub use tasks::TaskResult;
