//! # panini-proto
//!
//! The NATS client protocol as values: a sans-IO, zero-copy, panic-free parser and encoder
//! for both directions, built with `nom` and depending on nothing else.
//!
//! Give [`parse_server_op`] the bytes read so far; it returns an op and how many bytes it
//! used, [`Status::Partial`] when more bytes are needed, or a typed [`Error`]. Encoders
//! append to a `Vec<u8>` the caller owns. INFO and CONNECT bodies stay raw JSON bytes for
//! the framework to decode. No async, no sockets, no clocks, no allocation while parsing.
//!
//! ```
//! use panini_proto::{parse_server_op, ClientOp, Limits, Pub, ServerOp, Status};
//!
//! // Bytes in, values out.
//! let limits = Limits::default();
//! let mut stream: &[u8] = b"INFO {\"max_payload\":1048576} \r\nPING\r\n";
//! let mut ops = Vec::new();
//! while let Status::Complete((op, used)) = parse_server_op(stream, &limits)? {
//!     ops.push(op);
//!     stream = &stream[used..];
//! }
//! assert_eq!(ops, [ServerOp::Info(b"{\"max_payload\":1048576}"), ServerOp::Ping]);
//!
//! // Values in, bytes out.
//! let mut out = Vec::new();
//! ClientOp::Pong.encode(&mut out);
//! ClientOp::Pub(Pub { subject: b"greet", reply: None, headers: None, payload: b"hi" }).encode(&mut out);
//! assert_eq!(out, b"PONG\r\nPUB greet 2\r\nhi\r\n");
//! # Ok::<(), panini_proto::Error>(())
//! ```
//!
//! # Layout
//! - [`server_op`](ServerOp): what a server sends ([`MsgFrame`], formerly `Msg`, for
//!   `MSG`/`HMSG`), and [`parse_server_op`].
//! - [`client_op`](ClientOp): what a client sends, and [`parse_client_op`].
//! - `parse`: the grammar, one nom parser per rule (private).
//! - `encode`: `encode` for both op enums.
//! - [`HeaderBlock`] / [`encode_headers`]: the `NATS/1.0` headers block.
//! - [`subject`]: subject and queue-group validation.
//! - [`Error`]: the ways bytes can be wrong.

#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod client_op;
mod encode;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod headers;
mod parse;
mod server_op;
pub mod subject;

pub use client_op::{parse_client_op, ClientOp, Pub};
pub use encode::decimal;
pub use error::Error;
pub use headers::{encode_headers, Fields, HeaderBlock};
pub use server_op::{parse_server_op, MsgFrame, ServerOp};

/// The result of a parse that may need more bytes (httparse's shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status<T> {
    /// A whole op was parsed.
    Complete(T),
    /// The buffer holds only the start of an op: read more and call again with all of it.
    Partial,
}

/// Bounds on what a peer may make us buffer.
///
/// ```
/// use panini_proto::{parse_server_op, Error, Limits};
/// let limits = Limits { max_payload: 4, ..Limits::default() };
/// // Refused from the control line alone, before any payload byte arrives.
/// assert_eq!(parse_server_op(b"MSG a 1 5\r\n", &limits), Err(Error::PayloadTooLarge));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest control line (nats-server's default: 4096). As the server counts it, this
    /// bounds the arguments of PUB, HPUB, SUB and UNSUB, after the op name and its separator;
    /// a whole line (any op, either direction) may be 64 bytes longer, which leaves room for
    /// the op name and for the sid the server adds when it turns a PUB into a MSG.
    pub max_control_line: usize,
    /// Longest `INFO` (server side) or `CONNECT` (client side) line: these carry JSON that
    /// can outgrow the control line (a large cluster's `connect_urls`, a JWT). Default 1 MiB.
    pub max_info_line: usize,
    /// Largest `#total bytes` of a message, headers included (nats-server's default: 1 MiB;
    /// a client sets it from INFO `max_payload`).
    pub max_payload: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_control_line: 4096,
            max_info_line: 1024 * 1024,
            max_payload: 1024 * 1024,
        }
    }
}
