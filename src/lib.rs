//! # panini
//!
//! Panini, the Flask-like microservice framework for NATS messaging, in Rust.
//!
//! This crate is being built issue by issue. Today it holds the protocol layer, re-exported
//! as [`proto`]: the sans-IO NATS parser and encoder that the client and the framework sit on.
//!
//! # Layout
//! - [`proto`]: `panini-proto`, the wire protocol as values (bytes in, values out).

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub use panini_proto as proto;

mod app;
pub mod client;
mod endpoint;
mod error;
mod handle;
mod handler;
#[cfg(feature = "http")]
pub mod http;
pub mod log;
mod message;
pub mod middleware;
mod payload;
pub mod shutdown;
mod tasks;

pub use app::{App, EndpointConfig, IntoSubjects, EXIT_NATS_LOST};
pub use error::{BoxError, Error, Result};
pub use handle::{AppHandle, SendOptions};
pub use handler::{FromMessage, Handler, IntoReply, Msg, Outcome, Rejection, Reply, SyncHandler};
pub use message::{Headers, Message};
pub use payload::{FromPayload, IntoPayload, Json};
pub use tasks::TaskResult;
