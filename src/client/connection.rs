//! One TCP connection: the read buffer, the handshake, and the only calls to
//! `panini_proto::parse_server_op`.

use std::time::Duration;

use async_net::TcpStream;
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use panini_proto::{parse_server_op, ClientOp, Limits, ServerOp, Status};
use serde::Serialize;

use super::pool::Server;
use super::shared::Shared;
use super::ServerInfo;
use crate::error::{Error, Result};
use crate::message::lossy;

/// Bytes read per syscall at least; the buffer grows only for an op larger than this.
const READ_CHUNK: usize = 64 * 1024;

/// A read buffer: bytes `start..end` of `buf` are unparsed.
#[derive(Debug)]
pub(crate) struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    fn new() -> Self {
        ReadBuf {
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
        }
    }

    /// The unparsed bytes.
    pub(crate) fn data(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more bytes; `Ok(0)` is end of stream.
    pub(crate) async fn fill(&mut self, stream: &mut TcpStream) -> std::io::Result<usize> {
        if self.buf.len() - self.end < READ_CHUNK / 4 {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < READ_CHUNK / 4 {
                let grown = self.buf.len() * 2;
                self.buf.resize(grown, 0);
            }
        }
        let n = stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// Gives memory back after a large op went through.
    pub(crate) fn shrink(&mut self) {
        if self.end == 0 && self.buf.len() > 4 * READ_CHUNK {
            self.buf = vec![0; READ_CHUNK];
        }
    }
}

/// A live, handshaken connection.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) stream: TcpStream,
    pub(crate) rbuf: ReadBuf,
    pub(crate) info: ServerInfo,
}

/// The CONNECT body.
#[derive(Serialize)]
struct ConnectInfo<'a> {
    verbose: bool,
    pedantic: bool,
    protocol: u8,
    headers: bool,
    no_responders: bool,
    echo: bool,
    lang: &'static str,
    version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pass: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_token: Option<&'a str>,
}

/// Classifies an `-ERR` text the way nats.go does: by lower-case prefix.
pub(crate) fn server_error(text: &[u8]) -> Error {
    let text = lossy(text);
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("authorization violation")
        || lower.starts_with("authentication")
        || lower.starts_with("user authentication")
        || lower.starts_with("account authentication")
    {
        Error::Auth(text)
    } else {
        Error::Server(text)
    }
}

impl Connection {
    /// TCP connect, read INFO, send CONNECT + PING, wait for PONG; bounded by the connect timeout.
    pub(crate) async fn open(server: &Server, shared: &Shared) -> Result<Connection> {
        let timeout = shared.opts.connect_timeout;
        let attempt = Self::handshake(server, shared);
        attempt.or(timed_out(timeout)).await
    }

    async fn handshake(server: &Server, shared: &Shared) -> Result<Connection> {
        let mut stream = TcpStream::connect((server.host.as_str(), server.port)).await?;
        stream.set_nodelay(true)?;
        let mut rbuf = ReadBuf::new();
        let limits = Limits::default();
        let (op, used) = read_op(&mut stream, &mut rbuf, &limits).await?;
        let mut info: ServerInfo = match op {
            ServerOp::Info(json) => serde_json::from_slice(json)?,
            ServerOp::Err(text) => return Err(server_error(text)),
            _ => return Err(Error::Protocol(panini_proto::Error::UnknownOp)),
        };
        rbuf.consume(used);
        if info.tls_required {
            return Err(Error::Server(
                "server requires TLS, which this client does not support yet".into(),
            ));
        }
        stream.write_all(&connect_ops(server, shared)?).await?;
        loop {
            let (op, used) = read_op(&mut stream, &mut rbuf, &limits).await?;
            let mut answer_ping = false;
            let done = match op {
                ServerOp::Pong => true,
                ServerOp::Ping => {
                    answer_ping = true;
                    false
                }
                ServerOp::Err(text) => return Err(server_error(text)),
                ServerOp::Info(json) => {
                    if let Ok(newer) = serde_json::from_slice(json) {
                        info = newer;
                    }
                    false
                }
                ServerOp::Ok | ServerOp::Msg(_) => false,
            };
            rbuf.consume(used);
            if answer_ping {
                stream.write_all(b"PONG\r\n").await?;
            }
            if done {
                return Ok(Connection { stream, rbuf, info });
            }
        }
    }
}

/// `CONNECT {...}` then `PING`.
fn connect_ops(server: &Server, shared: &Shared) -> Result<Vec<u8>> {
    let opts = &shared.opts;
    let user = server.user.as_ref().or(opts.user.as_ref());
    let connect = ConnectInfo {
        verbose: false,
        pedantic: false,
        protocol: 1,
        headers: true,
        no_responders: true,
        echo: opts.echo,
        lang: "rust-panini",
        version: env!("CARGO_PKG_VERSION"),
        name: opts.name.as_deref(),
        user: user.map(|u| u.0.as_str()),
        pass: user.map(|u| u.1.as_str()),
        auth_token: server.token.as_deref().or(opts.token.as_deref()),
    };
    let json = serde_json::to_vec(&connect)?;
    let mut out = Vec::with_capacity(json.len() + 16);
    ClientOp::Connect(&json).encode(&mut out);
    ClientOp::Ping.encode(&mut out);
    Ok(out)
}

/// Reads until one whole op is buffered and returns it with its length (not yet consumed).
async fn read_op<'b>(
    stream: &mut TcpStream,
    rbuf: &'b mut ReadBuf,
    limits: &Limits,
) -> Result<(ServerOp<'b>, usize)> {
    while parse_server_op(rbuf.data(), limits)? == Status::Partial {
        if rbuf.fill(stream).await? == 0 {
            return Err(eof());
        }
    }
    match parse_server_op(rbuf.data(), limits)? {
        Status::Complete(op) => Ok(op),
        Status::Partial => Err(eof()),
    }
}

pub(crate) fn eof() -> Error {
    Error::Io(std::io::ErrorKind::UnexpectedEof.into())
}

pub(crate) async fn timed_out<T>(after: Duration) -> Result<T> {
    async_io::Timer::after(after).await;
    Err(Error::Timeout)
}
