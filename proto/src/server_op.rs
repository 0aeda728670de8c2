//! What a NATS server sends: the [`ServerOp`] type and [`parse_server_op`].

use crate::parse::{self, Line};
use crate::{Error, Limits, Status};

/// One op sent by a NATS server to a client.
///
/// Byte fields borrow from the parsed buffer. Subjects stay bytes because the server
/// forwards non-UTF-8 subjects as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerOp<'a> {
    /// `INFO <json>`: the JSON body, trimmed of surrounding white space.
    Info(&'a [u8]),
    /// `MSG` (when `headers` is `None`) or `HMSG` (when `headers` is `Some`).
    Msg(MsgFrame<'a>),
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
    /// `+OK` (only sent in verbose mode).
    Ok,
    /// `-ERR '<text>'`: the text with one outer pair of `'` removed (may be empty).
    Err(&'a [u8]),
}

/// A delivered message: the body of `MSG` and `HMSG`.
///
/// `MSG <subject> <sid> [reply-to] <#bytes>` and
/// `HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>`.
///
/// Formerly `Msg`: renamed so that it is not taken for panini's handler argument
/// `panini::Msg<T>`. The [`ServerOp::Msg`] variant keeps its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgFrame<'a> {
    /// The subject the message was published to.
    pub subject: &'a [u8],
    /// The subscription id the client chose in `SUB`.
    pub sid: u64,
    /// Where to send a reply, if the publisher asked for one.
    pub reply: Option<&'a [u8]>,
    /// The raw headers block of an `HMSG`, from `NATS/1.0` through the blank line.
    ///
    /// It is framed but not validated: decode it with [`HeaderBlock::parse`](crate::HeaderBlock::parse)
    /// (or [`MsgFrame::header_block`]). A malformed block is an error for this one message.
    pub headers: Option<&'a [u8]>,
    /// The payload, without the headers.
    pub payload: &'a [u8],
}

impl<'a> MsgFrame<'a> {
    /// Decodes the headers block, if this is an `HMSG`.
    ///
    /// ```
    /// use panini_proto::{parse_server_op, Limits, ServerOp, Status};
    /// let wire = b"HMSG _INBOX.x.1 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n";
    /// let Ok(Status::Complete((ServerOp::Msg(msg), _))) = parse_server_op(wire, &Limits::default()) else { panic!() };
    /// let block = msg.header_block().unwrap().unwrap();
    /// assert_eq!(block.status(), Some(503));
    /// assert!(msg.is_no_responders());
    /// ```
    pub fn header_block(&self) -> Option<Result<crate::HeaderBlock<'a>, Error>> {
        self.headers.map(crate::HeaderBlock::parse)
    }

    /// True for the server's "no responders" answer to a request: status 503 and an empty
    /// payload. A 503 with a payload was forged by some publisher and is not one (as nats.go).
    pub fn is_no_responders(&self) -> bool {
        self.payload.is_empty()
            && matches!(self.header_block(), Some(Ok(block)) if block.status() == Some(503))
    }
}

/// Parses one server op from the start of `buf`.
///
/// Returns the op and the number of bytes it used, [`Status::Partial`] when `buf` holds only
/// the beginning of an op, or an [`Error`] when the bytes can never become a valid op.
/// It never panics, allocates nothing, and borrows payloads from `buf`.
///
/// ```
/// use panini_proto::{parse_server_op, Limits, MsgFrame, ServerOp, Status};
/// let limits = Limits::default();
/// let wire = b"MSG greet.joe 7 5\r\nhello\r\nPING\r\n";
/// let Status::Complete((op, used)) = parse_server_op(wire, &limits)? else { unreachable!() };
/// assert_eq!(used, 26);
/// assert_eq!(op, ServerOp::Msg(MsgFrame { subject: b"greet.joe", sid: 7, reply: None, headers: None, payload: b"hello" }));
/// assert_eq!(parse_server_op(&wire[used..], &limits)?, Status::Complete((ServerOp::Ping, 6)));
/// assert_eq!(parse_server_op(b"MSG greet.joe 7 5\r\nhel", &limits)?, Status::Partial);
/// # Ok::<(), panini_proto::Error>(())
/// ```
pub fn parse_server_op<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<Status<(ServerOp<'a>, usize)>, Error> {
    let max_line = if parse::starts_with_ignore_case(buf, b"INFO") {
        limits.max_info_line
    } else {
        limits.max_control_line.saturating_add(parse::LINE_SLACK)
    };
    let Some(Line { text, next }) = parse::line(buf, max_line)? else {
        return Ok(Status::Partial);
    };
    let op = match parse::server_line(text)? {
        parse::ServerLine::Op(op) => return Ok(Status::Complete((op, next))),
        parse::ServerLine::Msg(head) => head,
    };
    let Some((body, used)) = parse::payload(buf, next, op.sizes, limits.max_payload)? else {
        return Ok(Status::Partial);
    };
    let msg = MsgFrame {
        subject: op.subject,
        sid: op.sid,
        reply: op.reply,
        headers: body.headers,
        payload: body.payload,
    };
    Ok(Status::Complete((ServerOp::Msg(msg), used)))
}
