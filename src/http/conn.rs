//! One HTTP connection's socket: reading one request (the head under the size, count and
//! time limits, then a `Content-Length` or chunked body under the body limit), and writing
//! the queued responses under the write timeout.

use std::io::{self, Read as _, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smol::future::FutureExt;
use smol::net::TcpStream;
use smol::{Async, Timer};

use super::head::{parse_head, Body, Head};
use super::request::Request;
use super::HttpLimits;
use crate::app::AppHandle;
use crate::buffer::InBuf;

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
/// The socket is used readiness-style through `smol::Async`: a read or write is tried
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
            smol::future::yield_now().await;
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
            if self.timer_at.is_none_or(|at| at > deadline) {
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
    pub(crate) async fn read(&mut self, limits: &HttpLimits, app: &AppHandle) -> Read {
        // Deadlines read the clock only when a read has to wait: a request that is already
        // buffered (the usual case) reads no clock.
        let mut deadline = Deadline::In(limits.head_timeout);
        // The head is parsed again only when a line has ended since the last try (or it
        // is too long): a client trickling its head byte by byte costs one parse per line,
        // not one per byte.
        let mut scanned = 0;
        let head = loop {
            let data = self.data();
            let line_ended = data
                .get(scanned..)
                .is_some_and(|new| memchr::memchr(b'\n', new).is_some());
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
        limits: &HttpLimits,
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
            match memchr::memmem::find(self.data(), b"\r\n") {
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
