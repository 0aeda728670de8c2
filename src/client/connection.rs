//! One connection: its [`Transport`], its read buffer, the handshake, and the only calls
//! to `panini_proto::parse_server_op`.

use std::time::Duration;

use futures_lite::FutureExt;
use panini_proto::{parse_server_op, ClientOp, Limits, ServerOp, Status};
use serde::Serialize;

use super::pool::Server;
use super::shared::Shared;
use super::transport::Transport;
use super::ServerInfo;
use crate::buffer::InBuf;
use crate::error::{Error, Result};
use crate::message::lossy;

/// Bytes asked of the socket per read; the buffer grows only for an op larger than this.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// Reads more bytes into `rbuf`; `Ok(0)` is end of stream.
async fn fill(rbuf: &mut InBuf, stream: &mut Transport) -> std::io::Result<usize> {
    let n = stream.read(rbuf.room()).await?;
    rbuf.filled(n);
    Ok(n)
}

/// A live, handshaken connection.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) stream: Transport,
    pub(crate) rbuf: InBuf,
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
        let mut stream = Transport::tcp(&server.host, server.port).await?;
        let mut rbuf = InBuf::new(READ_CHUNK);
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
    stream: &mut Transport,
    rbuf: &'b mut InBuf,
    limits: &Limits,
) -> Result<(ServerOp<'b>, usize)> {
    while parse_server_op(rbuf.data(), limits)? == Status::Partial {
        if fill(rbuf, stream).await? == 0 {
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
