//! Reading one request from a connection: the head with `httparse` under size, count and
//! time limits, then a `Content-Length` or chunked body under the body limit.

use std::io::{self, Read as _, Write as _};
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use async_net::TcpStream;
use futures_lite::FutureExt;
use serde::de::DeserializeOwned;

use super::Limits;
use crate::buffer::InBuf;
use crate::error::{Error, Result};
use crate::handle::AppHandle;

/// An HTTP method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET
    Get,
    /// HEAD (answered by the GET handler, without the body)
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
}

impl Method {
    fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => return None,
        })
    }

    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }
}

/// An HTTP request, fully read.
#[derive(Clone, Debug)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path, without the query string (percent-encoding kept).
    pub path: String,
    /// The query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// The path parameters of the route (`/items/{id}` gives `id`).
    pub params: Vec<(String, String)>,
    /// The headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    pub(crate) app: AppHandle,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(crate) version: u8,
}

/// What the head of a request says, before the connection knows its body: the server
/// makes the [`Request`] from it.
#[derive(Debug)]
pub(crate) struct Parts {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) version: u8,
}

impl Parts {
    fn into_request(self, body: Vec<u8>, app: &AppHandle) -> Request {
        Request {
            method: self.method,
            path: self.path,
            query: self.query,
            params: Vec::new(),
            headers: self.headers,
            body,
            app: app.clone(),
            version: self.version,
        }
    }
}

impl Request {
    /// A path parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        find(&self.params, name, false)
    }

    /// The first query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        find(&self.query, name, false)
    }

    /// The first header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name, true)
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str> {
        std::str::from_utf8(&self.body).map_err(|_| Error::Decode("body is not UTF-8".into()))
    }

    /// The body decoded as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// The running app, to publish or request over NATS.
    pub fn app(&self) -> &AppHandle {
        &self.app
    }
}

/// The value of the first pair named `name` (ASCII case-insensitive if `ignore_case`).
pub(crate) fn find<'a>(
    pairs: &'a [(String, String)],
    name: &str,
    ignore_case: bool,
) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| {
            if ignore_case {
                n.eq_ignore_ascii_case(name)
            } else {
                n == name
            }
        })
        .map(|(_, v)| v.as_str())
}

/// What reading a request came to.
pub(crate) enum Read {
    /// A request, whether the connection may stay open, and whether it is a HEAD.
    Request(Request, bool),
    /// The peer closed, or stayed idle past the keep-alive timeout: close quietly.
    Closed,
    /// Answer with this status, then close.
    Reject(u16),
}

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 4096;

/// Longest chunk-size line (hex size and extensions) accepted in a chunked body: 400 past it.
const MAX_CHUNK_LINE: usize = 1024;

/// A read deadline, taken from the clock only when a read has to wait.
#[derive(Clone, Copy, Debug)]
enum Deadline {
    /// This long after the first wait.
    In(Duration),
    /// This instant.
    At(Instant),
}

impl Deadline {
    /// The instant, fixed on first use.
    fn at(&mut self) -> Instant {
        match *self {
            Deadline::At(at) => at,
            Deadline::In(d) => {
                let at = Instant::now() + d;
                *self = Deadline::At(at);
                at
            }
        }
    }
}

/// A connection: its read buffer, and responses not yet written (pipelined answers are
/// written together, and always before the connection waits for more input).
///
/// The socket is used readiness-style through `async_io::Async`: a read or write is tried
/// directly and the connection waits on the reactor only when the kernel says
/// `WouldBlock`. Right after a response went out the peer cannot have sent its next
/// request yet, so that read is not tried at once (it would find nothing, and the wait
/// would then cost a re-arming `epoll_ctl` and a reactor round besides): the connection
/// first yields, letting the other ready connections run. Under load the next request has
/// often arrived by then (40-60 % of the time with wrk -c64 on two cores), and then costs a
/// read and a write only; when it has not, the cost is what an immediate read would have
/// cost.
pub(crate) struct Conn {
    stream: Arc<Async<std::net::TcpStream>>,
    input: InBuf,
    out: Vec<u8>,
    /// The read deadline timer, and when it is armed to fire (`None`: not armed, or fired).
    timer: Timer,
    timer_at: Option<Instant>,
    /// A response was just written.
    answered: bool,
    /// How long one flush may wait for the client to take bytes.
    write_timeout: Duration,
}

impl Conn {
    pub(crate) fn new(stream: TcpStream, write_timeout: Duration) -> Self {
        Conn {
            stream: stream.into(),
            input: InBuf::new(READ_CHUNK),
            out: Vec::new(),
            timer: Timer::never(),
            timer_at: None,
            answered: false,
            write_timeout,
        }
    }

    /// Appends a response to the output.
    pub(crate) fn queue(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        write(&mut self.out);
    }

    /// Writes the queued output.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        let mut done = 0;
        let result = loop {
            let Some(rest) = self.out.get(done..).filter(|rest| !rest.is_empty()) else {
                break Ok(());
            };
            match self.stream.get_ref().write(rest) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // A client that stops reading must not hold the connection forever.
                    let writable = self.stream.writable();
                    let timed_out = async {
                        Timer::after(self.write_timeout).await;
                        Err(io::ErrorKind::TimedOut.into())
                    };
                    if let Err(e) = writable.or(timed_out).await {
                        break Err(e);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        // What was written is gone from the output, also after an error: a later flush
        // must not send it twice.
        self.out.drain(..done);
        if done > 0 {
            self.answered = true;
        }
        result
    }

    /// Closes both directions (errors ignored: the peer may be gone already).
    pub(crate) fn shutdown(&self) {
        let _ = self.stream.get_ref().shutdown(std::net::Shutdown::Both);
    }

    /// The client's address (for a log line).
    pub(crate) fn peer(&self) -> Option<std::net::SocketAddr> {
        self.stream.get_ref().peer_addr().ok()
    }

    /// True when bytes of a next (pipelined) request are already buffered.
    pub(crate) fn has_buffered(&self) -> bool {
        !self.input.is_empty()
    }

    /// The received bytes not yet consumed.
    fn data(&self) -> &[u8] {
        self.input.data()
    }

    /// Marks `n` received bytes as used.
    fn consume(&mut self, n: usize) {
        self.input.consume(n);
    }

    /// Reads more, until `deadline`; `Ok(0)` is end of stream, `Err` a time-out.
    async fn fill(&mut self, deadline: &mut Deadline) -> std::result::Result<usize, ()> {
        if self.flush().await.is_err() {
            return Ok(0);
        }
        if std::mem::take(&mut self.answered) {
            // Measured with wrk -t1 -c64 (8 interleaved rounds): about 3 % more requests/s
            // than waiting for readiness first, which always costs epoll_ctl and an event.
            futures_lite::future::yield_now().await;
        }
        loop {
            // Read straight into the buffer's room (no chunk on the future's stack: an idle
            // connection then costs its small buffer, not 8 KiB more).
            match self.stream.get_ref().read(self.input.room()) {
                Ok(n) => {
                    self.input.filled(n);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Ok(0), // a read error: treat as closed
            }
            // The connection keeps one timer. It is re-armed only when it would fire after
            // `deadline` (or has fired): deadlines move forward with every request, so most
            // waits reuse the registration instead of adding and removing a reactor timer.
            // A timer that fires before `deadline` is just re-armed.
            let deadline = deadline.at();
            if self.timer_at.map_or(true, |at| at > deadline) {
                self.timer.set_at(deadline);
                self.timer_at = Some(deadline);
            }
            let (stream, timer) = (&self.stream, &mut self.timer);
            let ready = async { Some(stream.readable().await.is_ok()) }
                .or(async {
                    timer.await;
                    None
                })
                .await;
            match ready {
                Some(true) => {}
                Some(false) => return Ok(0), // the reactor refused the socket: close
                None => {
                    self.timer_at = None;
                    if Instant::now() >= deadline {
                        return Err(());
                    }
                    // An early tick of the shared timer: read and wait on.
                }
            }
        }
    }

    /// Waits for the first bytes of a next request, up to `limit`; false when the peer
    /// closed or stayed idle.
    pub(crate) async fn wait_for_request(&mut self, limit: Duration) -> bool {
        if self.has_buffered() {
            return true;
        }
        // An idle connection keeps no big buffer from an earlier large request or response.
        self.input.shrink(4 * READ_CHUNK);
        self.out.shrink_to(4 * READ_CHUNK);
        matches!(self.fill(&mut Deadline::In(limit)).await, Ok(n) if n > 0)
    }

    /// Reads one request, once its first bytes are buffered (after
    /// [`wait_for_request`](Conn::wait_for_request)): the rest of the head within the head
    /// timeout (slowloris: 408), then the body within the body timeout.
    pub(crate) async fn read(&mut self, limits: &Limits, app: &AppHandle) -> Read {
        // Deadlines read the clock only when a read has to wait: a request that is already
        // buffered (the usual case) reads no clock.
        let mut deadline = Deadline::In(limits.head_timeout);
        // The head is parsed again only when a line has ended since the last try (or it
        // is too long): a client trickling its head byte by byte costs one parse per line,
        // not one per byte.
        let mut scanned = 0;
        let head = loop {
            let data = self.data();
            let line_ended = data.get(scanned..).is_some_and(|new| new.contains(&b'\n'));
            if line_ended || data.len() > limits.max_head {
                match parse_head(data, limits) {
                    Ok(Some(head)) => break head,
                    Ok(None) => {}
                    Err(status) => return Read::Reject(status),
                }
            }
            scanned = data.len();
            if let Err(read) = self.more(&mut deadline).await {
                return read;
            }
        };
        let Head {
            parts,
            len,
            keep_alive,
            body,
            expects_continue,
        } = head;
        self.consume(len);
        if matches!(body, Body::None) {
            return Read::Request(parts.into_request(Vec::new(), app), keep_alive);
        }
        // A 100 goes out after any response still queued for an earlier pipelined request,
        // and never to HTTP/1.0 (RFC 9110 §10.1.1).
        if expects_continue && parts.version == 1 {
            self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            if self.flush().await.is_err() {
                return Read::Closed;
            }
        }
        let mut deadline = Deadline::In(limits.body_timeout);
        let read = match body {
            Body::Length(n) => self.read_exact(n, &mut deadline).await,
            _ => self.read_chunked(limits, &mut deadline).await,
        };
        match read {
            Ok(body) => Read::Request(parts.into_request(body, app), keep_alive),
            Err(status) => status,
        }
    }

    async fn read_exact(
        &mut self,
        n: usize,
        deadline: &mut Deadline,
    ) -> std::result::Result<Vec<u8>, Read> {
        while self.data().len() < n {
            self.more(deadline).await?; // closed mid-body, or 408
        }
        let bytes = self.data().get(..n).map(<[u8]>::to_vec).unwrap_or_default();
        self.consume(n);
        Ok(bytes)
    }

    /// `chunked-body = *chunk last-chunk trailer-section CRLF`
    async fn read_chunked(
        &mut self,
        limits: &Limits,
        deadline: &mut Deadline,
    ) -> std::result::Result<Vec<u8>, Read> {
        let max = limits.max_body;
        let mut body = Vec::new();
        loop {
            let (used, size) = loop {
                match httparse::parse_chunk_size(self.data()) {
                    Ok(httparse::Status::Complete((used, size))) => break (used, size),
                    Ok(httparse::Status::Partial) if self.data().len() > MAX_CHUNK_LINE => {
                        return Err(Read::Reject(400))
                    }
                    Ok(httparse::Status::Partial) => self.more(deadline).await?,
                    Err(_) => return Err(Read::Reject(400)),
                }
            };
            self.consume(used);
            let size = usize::try_from(size).map_err(|_| Read::Reject(413))?;
            if body.len().saturating_add(size) > max {
                return Err(Read::Reject(413));
            }
            if size == 0 {
                return self
                    .skip_trailers(limits.max_head, deadline)
                    .await
                    .map(|()| body);
            }
            let data = self.read_exact(size + 2, deadline).await?;
            if !data.ends_with(b"\r\n") {
                return Err(Read::Reject(400));
            }
            body.extend_from_slice(&data[..size]);
        }
    }

    /// Skips the trailer section (at most `max` bytes a line: 431 past it).
    async fn skip_trailers(
        &mut self,
        max: usize,
        deadline: &mut Deadline,
    ) -> std::result::Result<(), Read> {
        loop {
            match self.data().windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    self.consume(2);
                    return Ok(());
                }
                Some(end) => self.consume(end + 2),
                None if self.data().len() > max => return Err(Read::Reject(431)),
                None => self.more(deadline).await?,
            }
        }
    }

    async fn more(&mut self, deadline: &mut Deadline) -> std::result::Result<(), Read> {
        match self.fill(deadline).await {
            Ok(0) => Err(Read::Closed),
            Ok(_) => Ok(()),
            Err(()) => Err(Read::Reject(408)),
        }
    }
}

enum Body {
    None,
    Length(usize),
    Chunked,
}

/// A parsed head: the request (body still empty), the head's length, whether the
/// connection may stay open, the body's framing, and whether the client waits for a
/// `100 Continue`.
struct Head {
    parts: Parts,
    len: usize,
    keep_alive: bool,
    body: Body,
    expects_continue: bool,
}

/// What the server itself reads from the headers, found in one pass: the first `Host`,
/// `Connection`, `Transfer-Encoding` and `Expect`, and every `Content-Length`.
#[derive(Default)]
struct Known<'a> {
    host: bool,
    /// Whether any `Connection` header says `close`, or `keep-alive`.
    close: bool,
    keep_alive: bool,
    /// How many `Transfer-Encoding` headers, and the first one's value.
    encodings: usize,
    transfer_encoding: Option<&'a str>,
    expect: Option<&'a str>,
    /// How many `Content-Length` headers, and the first one's value.
    lengths: usize,
    length: &'a str,
}

impl<'a> Known<'a> {
    fn of(headers: &'a [(String, String)]) -> Self {
        let mut known = Known::default();
        for (name, value) in headers {
            // Every name the server reads has a distinct length: one comparison each.
            let slot = match name.len() {
                4 if name.eq_ignore_ascii_case("host") => {
                    known.host = true;
                    continue;
                }
                6 if name.eq_ignore_ascii_case("expect") => &mut known.expect,
                10 if name.eq_ignore_ascii_case("connection") => {
                    known.close |= contains_ignore_case(value, "close");
                    known.keep_alive |= contains_ignore_case(value, "keep-alive");
                    continue;
                }
                14 if name.eq_ignore_ascii_case("content-length") => {
                    if known.lengths == 0 {
                        known.length = value.trim();
                    }
                    known.lengths += 1;
                    continue;
                }
                17 if name.eq_ignore_ascii_case("transfer-encoding") => {
                    known.encodings += 1;
                    &mut known.transfer_encoding
                }
                _ => continue,
            };
            slot.get_or_insert(value.as_str());
        }
        known
    }
}

/// Parses a complete head, `Ok(None)` while it is incomplete, or the status to refuse it.
fn parse_head(buf: &[u8], limits: &Limits) -> std::result::Result<Option<Head>, u16> {
    // Uninitialised slots: httparse writes only those it fills (no 3 KiB of zeroes to
    // write per request).
    let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); 100];
    let mut parsed = httparse::Request::new(&mut []);
    let head_len = match parsed.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) if n > limits.max_head => return Err(431),
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head => return Err(431),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        Err(_) => return Err(400),
    };
    let method = parsed.method.and_then(Method::parse).ok_or(501u16)?;
    let target = parsed.path.ok_or(400u16)?;
    let version = parsed.version.ok_or(400u16)?;
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            let value = match std::str::from_utf8(h.value) {
                Ok(text) => text.to_owned(),
                Err(_) => String::from_utf8_lossy(h.value).into_owned(),
            };
            (h.name.to_owned(), value)
        })
        .collect();
    // RFC 9112 §3.2.2: accept the absolute form (`http://host/path`) by dropping the
    // scheme and authority. (A target that starts with `/` is the usual origin form.)
    let target = if target.starts_with('/') {
        target
    } else {
        match target.split_once("://") {
            Some((scheme, rest))
                if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
            {
                rest.find('/').map_or("/", |i| &rest[i..])
            }
            _ => target,
        }
    };
    let (path, query) = match target.bytes().position(|b| b == b'?') {
        Some(at) => (
            target.get(..at).unwrap_or_default(),
            parse_query(target.get(at + 1..).unwrap_or_default()),
        ),
        None => (target, Vec::new()),
    };
    if !path.starts_with('/') {
        return Err(400);
    }
    let known = Known::of(&headers);
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is refused.
    if version == 1 && !known.host {
        return Err(400);
    }
    let body = body_kind(&known, limits)?;
    // Any `close` wins; HTTP/1.0 stays open only when asked to.
    let keep_alive = !known.close && (version == 1 || known.keep_alive);
    let expects_continue = known
        .expect
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
    let parts = Parts {
        method,
        path: path.to_owned(),
        query,
        headers,
        version,
    };
    Ok(Some(Head {
        parts,
        len: head_len,
        keep_alive,
        body,
        expects_continue,
    }))
}

/// True when `haystack` contains `needle` (ASCII lowercase), ignoring ASCII case.
fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// How the body is framed: RFC 9112 §6.3. Both headers, a bad or repeated length, or a
/// transfer coding other than chunked are refused.
fn body_kind(known: &Known<'_>, limits: &Limits) -> std::result::Result<Body, u16> {
    // Two framings a proxy may read differently: refused, as two lengths are.
    if known.encodings > 1 {
        return Err(400);
    }
    let chunked = match known.transfer_encoding {
        Some(te) if te.trim().eq_ignore_ascii_case("chunked") => true,
        Some(_) => return Err(501),
        None => false,
    };
    match (chunked, known.lengths) {
        (true, 0) => Ok(Body::Chunked),
        (true, _) => Err(400),
        (false, 0) => Ok(Body::None),
        (false, 1) => {
            let one = known.length;
            let n: usize = one.parse().map_err(|_| 400u16)?;
            if !one.bytes().all(|b| b.is_ascii_digit()) {
                return Err(400);
            }
            if n > limits.max_body {
                return Err(413);
            }
            Ok(if n == 0 { Body::None } else { Body::Length(n) })
        }
        (false, _) => Err(400),
    }
}

/// `a=1&b=two%20words` → pairs, percent- and plus-decoded.
fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(kv), String::new()),
        })
        .collect()
}

/// Percent-decoding of a query component (`+` is a space), lossy on invalid UTF-8.
pub(crate) fn decode(s: &str) -> String {
    percent_decode(s, true)
}

/// Percent-decoding of a path segment (`+` stays `+`), lossy on invalid UTF-8.
pub(crate) fn decode_path(s: &str) -> String {
    percent_decode(s, false)
}

fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let [first, tail @ ..] = rest {
        match (first, tail) {
            (b'+', _) if plus_is_space => out.push(b' '),
            (b'%', [hi, lo, ..]) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                out.push(hex(*hi) << 4 | hex(*lo));
                rest = &tail[2..];
                continue;
            }
            (b, _) => out.push(*b),
        }
        rest = tail;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        _ => d.to_ascii_lowercase().wrapping_sub(b'a').wrapping_add(10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head's keep-alive, framing and `Expect` decisions, from one pass over the headers.
    #[test]
    fn heads_are_read_in_one_pass() {
        let limits = Limits::default();
        let parse = |text: &str| match parse_head(text.as_bytes(), &limits) {
            Ok(Some(head)) => Ok((head.keep_alive, head.expects_continue, head.body)),
            Ok(None) => Err(0),
            Err(status) => Err(status),
        };
        let ok = |r: std::result::Result<(bool, bool, Body), u16>| r.ok().map(|(k, e, _)| (k, e));
        assert_eq!(
            ok(parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n")),
            Some((true, false))
        );
        let close = "GET / HTTP/1.1\r\nhost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n";
        assert_eq!(ok(parse(close)), Some((false, false)));
        assert_eq!(ok(parse("GET / HTTP/1.0\r\n\r\n")), Some((false, false)));
        let ten = "GET / HTTP/1.0\r\nCONNECTION: keep-alive\r\n\r\n";
        assert_eq!(ok(parse(ten)), Some((true, false)));
        let expect =
            "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n";
        assert!(matches!(parse(expect), Ok((true, true, Body::Length(3)))));
        let twice = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n";
        assert_eq!(parse(twice).err(), Some(400));
        let both =
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(parse(both).err(), Some(400));
        let chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n\r\n";
        assert!(matches!(parse(chunked), Ok((true, false, Body::Chunked))));
        let gzip = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(parse(gzip).err(), Some(501));
        assert_eq!(parse("GET / HTTP/1.1\r\n\r\n").err(), Some(400));
        assert_eq!(parse("GET / HTTP/1.1\r\nHost: a\r\n").err(), Some(0));
        let absolute = "GET http://example.com/x?a=1 HTTP/1.1\r\nHost: a\r\n\r\n";
        let head = parse_head(absolute.as_bytes(), &limits).ok().flatten();
        let parts = head.map(|h| h.parts);
        assert_eq!(parts.as_ref().map(|p| p.path.as_str()), Some("/x"));
        let query = parts.as_ref().map(|p| p.query.as_slice());
        assert_eq!(query.and_then(|q| find(q, "a", false)), Some("1"));
        assert_eq!(parts.map(|p| p.headers.len()), Some(1));
    }

    #[test]
    fn query_strings_are_decoded() {
        let q = parse_query("a=1&b=two%20words&c=x+y&flag&&bad=%zz&end=%4");
        let want = [
            ("a", "1"),
            ("b", "two words"),
            ("c", "x y"),
            ("flag", ""),
            ("bad", "%zz"),
            ("end", "%4"),
        ];
        let got: Vec<_> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, want);
    }
}
