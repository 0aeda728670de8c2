//! What a NATS client sends: the [`ClientOp`] type and [`parse_client_op`].
//!
//! Our client only encodes these; parsing them serves the fake servers in tests and the
//! round-trip fuzzing, and follows what nats-server 2.9.10 accepts.

use crate::parse::{self, Line};
use crate::{Error, Limits, Status};

/// One op sent by a client to a NATS server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientOp<'a> {
    /// `CONNECT <json>`: the JSON object, trimmed of surrounding white space.
    Connect(&'a [u8]),
    /// `PUB` (when `headers` is `None`) or `HPUB` (when `headers` is `Some`).
    Pub(Pub<'a>),
    /// `SUB <subject> [queue group] <sid>`.
    Sub {
        /// The subject, possibly with wildcards.
        subject: &'a [u8],
        /// The queue group, if any.
        queue: Option<&'a [u8]>,
        /// The subscription id: any token; the server echoes it verbatim in `MSG`.
        sid: &'a [u8],
    },
    /// `UNSUB <sid> [max_msgs]`.
    Unsub {
        /// The subscription id.
        sid: &'a [u8],
        /// Unsubscribe after this many messages in total, if set.
        max: Option<u32>,
    },
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
}

/// A published message: the body of `PUB` and `HPUB`.
///
/// `PUB <subject> [reply-to] <#bytes>` and `HPUB <subject> [reply-to] <#header bytes> <#total bytes>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pub<'a> {
    /// The subject to publish to.
    pub subject: &'a [u8],
    /// The reply subject, if any.
    pub reply: Option<&'a [u8]>,
    /// The raw headers block (see [`HeaderBlock`](crate::HeaderBlock)), for `HPUB`.
    pub headers: Option<&'a [u8]>,
    /// The payload, without the headers.
    pub payload: &'a [u8],
}

/// Parses one client op from the start of `buf`: the server's side of the protocol.
///
/// Same contract as [`parse_server_op`](crate::parse_server_op). Subjects are framed, not
/// judged: like the server, check them afterwards with [`subject`](crate::subject) when needed.
///
/// ```
/// use panini_proto::{parse_client_op, ClientOp, Limits, Pub, Status};
/// let wire = b"pub\tfoo   0005\r\nhello\r\n";
/// let Status::Complete((op, used)) = parse_client_op(wire, &Limits::default())? else { unreachable!() };
/// assert_eq!(used, wire.len());
/// assert_eq!(op, ClientOp::Pub(Pub { subject: b"foo", reply: None, headers: None, payload: b"hello" }));
/// # Ok::<(), panini_proto::Error>(())
/// ```
pub fn parse_client_op<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<Status<(ClientOp<'a>, usize)>, Error> {
    let max_line = if parse::starts_with_ignore_case(buf, b"CONNECT") {
        limits.max_info_line
    } else {
        limits.max_control_line.saturating_add(parse::LINE_SLACK)
    };
    let Some(Line { text, next }) = parse::line(buf, max_line)? else {
        return Ok(Status::Partial);
    };
    let head = match parse::client_line(text, limits.max_control_line)? {
        parse::ClientLine::Op(op) => return Ok(Status::Complete((op, next))),
        parse::ClientLine::Pub(head) => head,
    };
    let Some((body, used)) = parse::payload(buf, next, head.sizes, limits.max_payload)? else {
        return Ok(Status::Partial);
    };
    let op = Pub {
        subject: head.subject,
        reply: head.reply,
        headers: body.headers,
        payload: body.payload,
    };
    Ok(Status::Complete((ClientOp::Pub(op), used)))
}
