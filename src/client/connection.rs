//! One connection: its [`Transport`], its read buffer, the handshake (INFO, the TLS upgrade
//! when asked or required, CONNECT with the credentials, PONG), and the only calls to
//! `panini_proto::parse_server_op`.

use std::time::Duration;

use panini_proto::{parse_server_op, ClientOp, Limits, ServerOp, Status};
use serde::Serialize;
use smol::future::FutureExt;

use super::pool::Server;
use super::shared::ClientState;
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
    #[serde(skip_serializing_if = "Option::is_none")]
    nkey: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sig: Option<String>,
    tls_required: bool,
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
    pub(crate) async fn open(server: &Server, shared: &ClientState) -> Result<Connection> {
        let timeout = shared.opts.connect_timeout;
        let attempt = Self::handshake(server, shared);
        attempt.or(timed_out(timeout)).await.map_err(|e| match e {
            Error::Tls(source) => Error::Tls(Box::new(AtServer {
                server: server.url(),
                source,
            })),
            other => other,
        })
    }

    async fn handshake(server: &Server, shared: &ClientState) -> Result<Connection> {
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
        let mut stream = secure(stream, server, shared, &info, rbuf.data()).await?;
        let in_clear = matches!(stream, Transport::Tcp(_));
        stream
            .write_all(&connect_ops(server, shared, &info, in_clear)?)
            .await
            .map_err(transport_error)?;
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
                stream
                    .write_all(b"PONG\r\n")
                    .await
                    .map_err(transport_error)?;
            }
            if done {
                return Ok(Connection { stream, rbuf, info });
            }
        }
    }
}

/// After the plain INFO: upgrades to TLS when the URL (`tls://`) or the options ask for it,
/// or the server requires it. Asked for by us and offered by neither `tls_required` nor
/// `tls_available`, it is an error before any credential is sent in clear.
///
/// Nothing may come between the plain INFO and the TLS handshake: bytes there were not
/// sent by the server under TLS (they could be anyone's), so they end the connection
/// rather than being read as if they came through it.
async fn secure(
    stream: Transport,
    server: &Server,
    shared: &ClientState,
    info: &ServerInfo,
    after_info: &[u8],
) -> Result<Transport> {
    let asked = server.tls || shared.opts.tls_asked();
    if asked && !info.tls_required && !info.tls_available {
        return Err(Error::Tls(
            format!(
                "{} does not offer TLS, which this client requires; nothing was sent to it",
                if server.tls {
                    "the server"
                } else {
                    "the server (require_tls)"
                }
            )
            .into(),
        ));
    }
    if !(asked || info.tls_required) {
        return Ok(stream);
    }
    if !after_info.is_empty() {
        return Err(Error::Tls(
            format!(
                "{} bytes came after the INFO in clear, before the TLS handshake; \
                 refusing them (something may be tampering with the connection)",
                after_info.len()
            )
            .into(),
        ));
    }
    #[cfg(feature = "tls")]
    {
        let config = shared.tls_config()?;
        stream.upgrade(config, server.tls_name()).await
    }
    #[cfg(not(feature = "tls"))]
    {
        drop(stream);
        Err(Error::FeatureDisabled {
            feature: "tls",
            needed_for: format!("the server {}, which requires TLS,", server.url()),
        })
    }
}

/// An I/O error on the connection: with TLS, a rustls refusal inside it (an alert from the
/// server, say for a client certificate it did not accept) is [`Error::Tls`].
pub(crate) fn transport_error(e: std::io::Error) -> Error {
    #[cfg(feature = "tls")]
    {
        super::tls::classify(e)
    }
    #[cfg(not(feature = "tls"))]
    {
        Error::Io(e)
    }
}

/// A TLS failure and the server it happened with.
#[derive(Debug)]
struct AtServer {
    server: String,
    source: crate::error::BoxError,
}

impl std::fmt::Display for AtServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.server, self.source)
    }
}

impl std::error::Error for AtServer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// `CONNECT {...}` then `PING`. `in_clear`: the connection is not encrypted, which the
/// server's own TLS rules already allowed.
fn connect_ops(
    server: &Server,
    shared: &ClientState,
    info: &ServerInfo,
    in_clear: bool,
) -> Result<Vec<u8>> {
    let opts = &shared.opts;
    let user = server.user.as_ref().or(opts.user.as_ref());
    let signed = match &opts.credential {
        Some(cred) => cred.sign_in(info.nonce.as_deref())?,
        None => Default::default(),
    };
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
        nkey: signed.nkey,
        jwt: signed.jwt,
        sig: signed.sig,
        tls_required: !in_clear,
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
        if fill(rbuf, stream).await.map_err(transport_error)? == 0 {
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
    smol::Timer::after(after).await;
    Err(Error::Timeout)
}
