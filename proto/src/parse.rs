//! The grammar of both directions: one small nom parser per rule, the rule as its doc.
//!
//! Parsing goes in three steps. [`line`] finds the end of the control line (or says
//! "need more bytes", or that the line is too long). [`server_line`] / [`client_line`] parse
//! that complete line with `nom::complete` combinators. For the ops that carry a payload,
//! [`payload`] checks the size against the limit first, then waits for `size + 2` bytes and
//! checks the CRLF. "Need more bytes" can therefore only come from steps one and three.
//!
//! White space (`WS`) is a space or a tab, in any mix and number, as nats-server accepts.

use nom::bytes::complete::{tag, tag_no_case, take_till1};
use nom::character::complete::{digit1, space0, space1};
use nom::combinator::all_consuming;
use nom::error::{ErrorKind, FromExternalError, ParseError};
use nom::Parser;

use crate::client_op::ClientOp;
use crate::server_op::ServerOp;
use crate::Error;

/// nom's error type inside this crate: it carries the [`Error`] a rule wants reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PError {
    pub(crate) kind: Error,
}

impl<I> ParseError<I> for PError {
    fn from_error_kind(_: I, _: ErrorKind) -> Self {
        PError {
            kind: Error::InvalidArgs,
        }
    }
    fn append(_: I, _: ErrorKind, other: Self) -> Self {
        other
    }
}

impl<I> FromExternalError<I, Error> for PError {
    fn from_external_error(_: I, _: ErrorKind, kind: Error) -> Self {
        PError { kind }
    }
}

type IResult<'a, O> = nom::IResult<&'a [u8], O, PError>;

/// Turns a nom result on a complete line into our error.
fn finish<O>(res: IResult<'_, O>, or: Error) -> Result<O, Error> {
    match res {
        Ok((_, out)) => Ok(out),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) if e.kind != Error::InvalidArgs => {
            Err(e.kind)
        }
        Err(_) => Err(or),
    }
}

/// True when `buf` starts with `word`, or is a prefix of it, ignoring ASCII case.
pub(crate) fn starts_with_ignore_case(buf: &[u8], word: &[u8]) -> bool {
    let n = buf.len().min(word.len());
    buf[..n].eq_ignore_ascii_case(&word[..n])
}

/// Bytes a control line may hold beyond `Limits::max_control_line`: the op name and its
/// separator (the server counts only the arguments), and on `MSG`/`HMSG` the sid the server
/// adds to what the publisher sent, so a message the server accepted always parses.
pub(crate) const LINE_SLACK: usize = 64;

/// A complete control line: its text (without the line end) and where the next byte starts.
pub(crate) struct Line<'a> {
    pub(crate) text: &'a [u8],
    pub(crate) next: usize,
}

/// `control-line = *(any byte but LF) [CR] LF`, at most `max` bytes before the line end.
///
/// Like nats-server, a bare LF ends a line too. Returns `None` while no line end has come
/// and the line could still fit the limit.
pub(crate) fn line(buf: &[u8], max: usize) -> Result<Option<Line<'_>>, Error> {
    let window = max.saturating_add(2);
    let scan = buf.get(..window).unwrap_or(buf);
    match memchr::memchr(b'\n', scan) {
        Some(lf) => {
            let text = &scan[..lf];
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if text.len() > max {
                return Err(Error::ControlLineTooLong);
            }
            Ok(Some(Line { text, next: lf + 1 }))
        }
        None if buf.len() >= window => Err(Error::ControlLineTooLong),
        None => Ok(None),
    }
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `args = *WS token *(1*WS token) *WS`, where `token = 1*(any byte but WS)`: at most `N` tokens.
///
/// Returns the tokens and how many there were; more than `N` is [`Error::InvalidArgs`].
fn args<const N: usize>(mut input: &[u8]) -> Result<([&[u8]; N], usize), Error> {
    let mut out: [&[u8]; N] = [&[]; N];
    let mut n = 0;
    loop {
        let (i, _) = space0::<_, PError>(input).map_err(|_| Error::InvalidArgs)?;
        if i.is_empty() {
            return Ok((out, n));
        }
        let (i, tok) = take_till1::<_, _, PError>(is_ws)(i).map_err(|_| Error::InvalidArgs)?;
        *out.get_mut(n).ok_or(Error::InvalidArgs)? = tok;
        n += 1;
        input = i;
    }
}

/// `size = 1*9DIGIT`: leading zeros allowed and counted, as the server's `parseSize`.
pub(crate) fn size(tok: &[u8]) -> Result<usize, Error> {
    number(tok, 9).map(|n| n as usize)
}

/// `sid = 1*20DIGIT`, a `u64`: the sids our client puts in `SUB` are numbers.
fn sid(tok: &[u8]) -> Result<u64, Error> {
    number(tok, 20)
}

/// `number = 1*<max>DIGIT`, folded with checked arithmetic.
fn number(tok: &[u8], max_digits: usize) -> Result<u64, Error> {
    let digits = all_consuming(digit1::<_, PError>)
        .parse(tok)
        .map(|(_, d)| d)
        .map_err(|_| Error::InvalidNumber)?;
    if digits.len() > max_digits {
        return Err(Error::InvalidNumber);
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)
            .and_then(|a| a.checked_add(u64::from(d - b'0')))
            .ok_or(Error::InvalidNumber)
    })
}

/// The sizes a payload-carrying op declares: `#header bytes` (HMSG, HPUB) and `#total bytes`.
#[derive(Clone, Copy)]
pub(crate) struct Sizes {
    pub(crate) header: Option<usize>,
    pub(crate) total: usize,
}

/// `sizes = size` or `sizes = hdr-size 1*WS total-size` with `hdr-size <= total-size`.
fn sizes(header: Option<&[u8]>, total: &[u8]) -> Result<Sizes, Error> {
    let total = size(total)?;
    let header = header.map(size).transpose()?;
    if header.is_some_and(|h| h > total) {
        return Err(Error::InvalidArgs);
    }
    Ok(Sizes { header, total })
}

/// The payload of a message, split into its headers block and the rest.
pub(crate) struct Body<'a> {
    pub(crate) headers: Option<&'a [u8]>,
    pub(crate) payload: &'a [u8],
}

/// `payload = <#total bytes> CR LF`, starting at `start`; returns the body and the op's end.
///
/// The size is checked against `max_payload` before anything waits for the payload, and the
/// bytes after it must be exactly CRLF (checked as soon as each arrives).
pub(crate) fn payload(
    buf: &[u8],
    start: usize,
    sizes: Sizes,
    max_payload: usize,
) -> Result<Option<(Body<'_>, usize)>, Error> {
    if sizes.total > max_payload {
        return Err(Error::PayloadTooLarge);
    }
    let end = start
        .checked_add(sizes.total)
        .ok_or(Error::PayloadTooLarge)?;
    for (at, want) in [(end, b'\r'), (end + 1, b'\n')] {
        match buf.get(at) {
            None => return Ok(None),
            Some(&b) if b != want => return Err(Error::MissingCrlf),
            Some(_) => {}
        }
    }
    let body = buf.get(start..end).ok_or(Error::MissingCrlf)?;
    let (headers, payload) = match sizes.header {
        None => (None, body),
        Some(h) => {
            let (hdr, data) = body.split_at_checked(h).ok_or(Error::InvalidArgs)?;
            (Some(hdr), data)
        }
    };
    Ok(Some((Body { headers, payload }, end + 2)))
}

/// `json-op = <name> *WS json *WS`: the body of INFO and CONNECT (the separator is optional).
fn json_body(input: &[u8]) -> Result<&[u8], Error> {
    let body = trim_ws(input);
    if body.is_empty() {
        return Err(Error::InvalidArgs);
    }
    Ok(body)
}

fn trim_ws(mut s: &[u8]) -> &[u8] {
    while let [first, tail @ ..] = s {
        if !is_ws(*first) {
            break;
        }
        s = tail;
    }
    while let [head @ .., last] = s {
        if !is_ws(*last) {
            break;
        }
        s = head;
    }
    s
}

/// `name 1*WS`: an op name that takes arguments, then the mandatory separator; returns the
/// arguments, which may be at most `max_args` bytes (nats-server's control-line count).
fn after_op<'a>(text: &'a [u8], name: &'static str, max_args: usize) -> Result<&'a [u8], Error> {
    let args = (tag_no_case(name), space1::<_, PError>)
        .parse(text)
        .map(|(rest, _)| rest)
        .map_err(|_| Error::UnknownOp)?;
    if args.len() > max_args {
        return Err(Error::ControlLineTooLong);
    }
    Ok(args)
}

/// `name`: an op name with an optional separator (INFO, CONNECT, -ERR); returns the rest.
fn after_name<'a>(text: &'a [u8], name: &'static str) -> Result<&'a [u8], Error> {
    tag_no_case::<_, _, PError>(name)
        .parse(text)
        .map(|(rest, _)| rest)
        .map_err(|_| Error::UnknownOp)
}

/// The head of a `MSG` or `HMSG`, whose payload is still to be framed.
pub(crate) struct MsgHead<'a> {
    pub(crate) subject: &'a [u8],
    pub(crate) sid: u64,
    pub(crate) reply: Option<&'a [u8]>,
    pub(crate) sizes: Sizes,
}

/// A parsed server control line.
pub(crate) enum ServerLine<'a> {
    Op(ServerOp<'a>),
    Msg(MsgHead<'a>),
}

/// `server-op = msg / hmsg / ping / pong / info / ok / err`, chosen by the first byte.
pub(crate) fn server_line(text: &[u8]) -> Result<ServerLine<'_>, Error> {
    let first = text.first().map(u8::to_ascii_uppercase);
    let op = match first {
        Some(b'M') => return msg(text).map(ServerLine::Msg),
        Some(b'H') => return hmsg(text).map(ServerLine::Msg),
        Some(b'P') => finish(alt_ping_pong(text), Error::UnknownOp)?,
        Some(b'I') => ServerOp::Info(json_body(after_name(text, "INFO")?)?),
        Some(b'+') => after_name(text, "+OK").map(|_| ServerOp::Ok)?,
        Some(b'-') => ServerOp::Err(err_text(after_name(text, "-ERR")?)),
        _ => return Err(Error::UnknownOp),
    };
    Ok(ServerLine::Op(op))
}

/// `ping = "PING" *(any byte)` and `pong = "PONG" *(any byte)`: the server ignores the tail.
fn alt_ping_pong(text: &[u8]) -> IResult<'_, ServerOp<'_>> {
    nom::branch::alt((
        tag_no_case("PING").map(|_| ServerOp::Ping),
        tag_no_case("PONG").map(|_| ServerOp::Pong),
    ))
    .parse(text)
}

/// `err = "-ERR" *WS text *WS`, where `text` loses one outer pair of `'` if it has one.
fn err_text(t: &[u8]) -> &[u8] {
    let t = trim_ws(t);
    match t {
        [b'\'', inner @ .., b'\''] => inner,
        _ => t,
    }
}

/// `msg = "MSG" 1*WS subject 1*WS sid [1*WS reply-to] 1*WS size`
fn msg(text: &[u8]) -> Result<MsgHead<'_>, Error> {
    let a = after_op(text, "MSG", usize::MAX)?;
    let (t, n) = args::<4>(a)?;
    let (subject, sid_tok, reply, size_tok) = match n {
        3 => (t[0], t[1], None, t[2]),
        4 => (t[0], t[1], Some(t[2]), t[3]),
        _ => return Err(Error::InvalidArgs),
    };
    Ok(MsgHead {
        subject,
        sid: sid(sid_tok)?,
        reply,
        sizes: sizes(None, size_tok)?,
    })
}

/// `hmsg = "HMSG" 1*WS subject 1*WS sid [1*WS reply-to] 1*WS hdr-size 1*WS total-size`
fn hmsg(text: &[u8]) -> Result<MsgHead<'_>, Error> {
    let a = after_op(text, "HMSG", usize::MAX)?;
    let (t, n) = args::<5>(a)?;
    let (subject, sid_tok, reply, hdr, total) = match n {
        4 => (t[0], t[1], None, t[2], t[3]),
        5 => (t[0], t[1], Some(t[2]), t[3], t[4]),
        _ => return Err(Error::InvalidArgs),
    };
    Ok(MsgHead {
        subject,
        sid: sid(sid_tok)?,
        reply,
        sizes: sizes(Some(hdr), total)?,
    })
}

/// The head of a `PUB` or `HPUB`, whose payload is still to be framed.
pub(crate) struct PubHead<'a> {
    pub(crate) subject: &'a [u8],
    pub(crate) reply: Option<&'a [u8]>,
    pub(crate) sizes: Sizes,
}

/// A parsed client control line.
pub(crate) enum ClientLine<'a> {
    Op(ClientOp<'a>),
    Pub(PubHead<'a>),
}

/// `client-op = pub / hpub / sub / unsub / ping / pong / connect`, chosen by the first byte.
pub(crate) fn client_line(text: &[u8], max_args: usize) -> Result<ClientLine<'_>, Error> {
    let first = text.first().map(u8::to_ascii_uppercase);
    let op = match first {
        Some(b'P') if starts_with_ignore_case(text, b"PU") => {
            return publish(text, "PUB", max_args).map(ClientLine::Pub)
        }
        Some(b'H') => return publish(text, "HPUB", max_args).map(ClientLine::Pub),
        Some(b'P') => match finish(alt_ping_pong(text), Error::UnknownOp)? {
            ServerOp::Ping => ClientOp::Ping,
            _ => ClientOp::Pong,
        },
        Some(b'S') => sub(text, max_args)?,
        Some(b'U') => unsub(text, max_args)?,
        Some(b'C') => connect(text)?,
        _ => return Err(Error::UnknownOp),
    };
    Ok(ClientLine::Op(op))
}

/// `pub = "PUB" 1*WS subject [1*WS reply-to] 1*WS size`
///
/// `hpub = "HPUB" 1*WS subject [1*WS reply-to] 1*WS hdr-size 1*WS total-size`
fn publish<'a>(text: &'a [u8], name: &'static str, max_args: usize) -> Result<PubHead<'a>, Error> {
    let a = after_op(text, name, max_args)?;
    let (t, n) = args::<4>(a)?;
    let with_headers = name == "HPUB";
    let (subject, reply, hdr, total) = match (with_headers, n) {
        (false, 2) => (t[0], None, None, t[1]),
        (false, 3) => (t[0], Some(t[1]), None, t[2]),
        (true, 3) => (t[0], None, Some(t[1]), t[2]),
        (true, 4) => (t[0], Some(t[1]), Some(t[2]), t[3]),
        _ => return Err(Error::InvalidArgs),
    };
    Ok(PubHead {
        subject,
        reply,
        sizes: sizes(hdr, total)?,
    })
}

/// `sub = "SUB" 1*WS subject [1*WS queue] 1*WS sid`
fn sub(text: &[u8], max_args: usize) -> Result<ClientOp<'_>, Error> {
    let a = after_op(text, "SUB", max_args)?;
    match args::<3>(a)? {
        (t, 2) => Ok(ClientOp::Sub {
            subject: t[0],
            queue: None,
            sid: t[1],
        }),
        (t, 3) => Ok(ClientOp::Sub {
            subject: t[0],
            queue: Some(t[1]),
            sid: t[2],
        }),
        _ => Err(Error::InvalidArgs),
    }
}

/// `unsub = "UNSUB" 1*WS sid [1*WS max-msgs]`, where `max-msgs = size`
fn unsub(text: &[u8], max_args: usize) -> Result<ClientOp<'_>, Error> {
    let a = after_op(text, "UNSUB", max_args)?;
    match args::<2>(a)? {
        (t, 1) => Ok(ClientOp::Unsub {
            sid: t[0],
            max: None,
        }),
        (t, 2) => {
            let max = u32::try_from(size(t[1])?).map_err(|_| Error::InvalidNumber)?;
            Ok(ClientOp::Unsub {
                sid: t[0],
                max: Some(max),
            })
        }
        _ => Err(Error::InvalidArgs),
    }
}

/// `connect = "CONNECT" *WS "{" *(any byte) "}" *WS`: the JSON stays raw bytes.
fn connect(text: &[u8]) -> Result<ClientOp<'_>, Error> {
    let json = json_body(after_name(text, "CONNECT")?)?;
    match json {
        [b'{', .., b'}'] => Ok(ClientOp::Connect(json)),
        _ => Err(Error::InvalidArgs),
    }
}

/// `"NATS/1.0"`: the version that opens a headers block.
pub(crate) fn version(input: &[u8]) -> IResult<'_, &[u8]> {
    tag("NATS/1.0").parse(input)
}
