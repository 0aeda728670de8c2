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

pub mod client;
mod error;
mod log;
mod message;

pub use error::{BoxError, Error, Result};
pub use message::{Headers, Message};
