//! [`Transport`]: the byte stream under one NATS connection, and the only code that
//! touches the socket. Plain TCP, or TLS over it (feature `tls`, after the plain INFO), so
//! the handshake, the connection task and the outbox never see which one they drive.
//!
//! The connection task owns the transport and does every read and write through
//! [`poll_read`](Transport::poll_read) and [`poll_write`](Transport::poll_write), from one
//! loop. The one exception is [`DirectWriter`], a latency shortcut the outbox may use for a
//! lone request or reply (see `Outbox::write_direct`; measured in `BENCHMARKS.md`); a
//! transport that cannot offer it (TLS) gives none.

use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_io::Async;
use async_net::TcpStream;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The stream a connection runs on.
#[derive(Debug)]
pub(crate) enum Transport {
    /// Plain TCP, with `TCP_NODELAY` (we batch writes ourselves).
    Tcp(TcpStream),
    /// TLS over that TCP stream, and a second handle to the socket to shut it down.
    #[cfg(feature = "tls")]
    Tls(Box<futures_rustls::client::TlsStream<TcpStream>>, TcpStream),
}

impl Transport {
    /// Opens a TCP connection to `host:port`.
    pub(crate) async fn tcp(host: &str, port: u16) -> io::Result<Transport> {
        let stream = TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        Ok(Transport::Tcp(stream))
    }

    /// Whether this connection is encrypted.
    pub(crate) fn is_tls(&self) -> bool {
        match self {
            Transport::Tcp(_) => false,
            #[cfg(feature = "tls")]
            Transport::Tls(..) => true,
        }
    }

    /// Reads into `buf`; `Ok(0)` is the end of the stream.
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self {
            Transport::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Transport::Tls(s, _) => Pin::new(s).poll_read(cx, buf),
        }
    }

    /// Writes some of `buf`; `Ok(0)` means the peer can take no more. TLS may keep what
    /// it took encrypted but unsent: [`poll_flush`](Self::poll_flush) sends it.
    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self {
            Transport::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Transport::Tls(s, _) => Pin::new(s).poll_write(cx, buf),
        }
    }

    /// Sends what a write left buffered (nothing for TCP: its writes go to the socket).
    pub(crate) fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Transport::Tcp(_) => Poll::Ready(Ok(())),
            #[cfg(feature = "tls")]
            Transport::Tls(s, _) => Pin::new(s).poll_flush(_cx),
        }
    }

    /// Upgrades a TCP connection to TLS (the handshake runs here), checking the server's
    /// certificate against `name`. A rustls refusal is [`Error::Tls`](crate::Error::Tls).
    #[cfg(feature = "tls")]
    pub(crate) async fn upgrade(
        self,
        config: Arc<futures_rustls::rustls::ClientConfig>,
        name: &str,
    ) -> crate::Result<Transport> {
        let name = super::tls::server_name(name)?;
        match self {
            Transport::Tcp(tcp) => {
                let raw = tcp.clone();
                let tls = futures_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(super::tls::classify)?;
                Ok(Transport::Tls(Box::new(tls), raw))
            }
            already @ Transport::Tls(..) => Ok(already),
        }
    }

    /// Reads into `buf` (for the handshake, before the connection task runs).
    pub(crate) async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => s.read(buf).await,
            #[cfg(feature = "tls")]
            Transport::Tls(s, _) => s.read(buf).await,
        }
    }

    /// Writes all of `buf` (for the handshake).
    pub(crate) async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.write_all(buf).await,
            #[cfg(feature = "tls")]
            Transport::Tls(s, _) => {
                s.write_all(buf).await?;
                s.flush().await
            }
        }
    }

    /// A handle for non-blocking writes from other threads, when this transport allows it.
    pub(crate) fn direct_writer(&self) -> Option<DirectWriter> {
        match self {
            Transport::Tcp(s) => Some(DirectWriter(s.clone().into())),
            // One rustls session holds both directions: only its owner may write.
            #[cfg(feature = "tls")]
            Transport::Tls(..) => None,
        }
    }

    /// Ends the connection (what was written is still delivered).
    pub(crate) fn shutdown(&self) {
        match self {
            Transport::Tcp(s) => {
                let _ = s.shutdown(Shutdown::Both);
            }
            #[cfg(feature = "tls")]
            Transport::Tls(_, raw) => {
                let _ = raw.shutdown(Shutdown::Both);
            }
        }
    }
}

/// A non-blocking write into a plain TCP connection from outside the connection task.
#[derive(Clone, Debug)]
pub(crate) struct DirectWriter(Arc<Async<std::net::TcpStream>>);

impl DirectWriter {
    /// Writes what the socket takes now, without waiting (`WouldBlock` when it takes
    /// nothing).
    pub(crate) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        use std::io::Write;
        let mut socket: &std::net::TcpStream = self.0.get_ref();
        socket.write(buf)
    }
}
