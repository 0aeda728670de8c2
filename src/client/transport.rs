//! [`Transport`]: the byte stream under one NATS connection, and the only code that
//! touches the socket. Plain TCP, or TLS over it (feature `tls`, after the plain INFO), so
//! the handshake, the connection task and the outbox never see which one they drive.
//!
//! The connection task owns the transport and does every read and write through
//! [`poll_read`](Transport::poll_read) and [`poll_write`](Transport::poll_write), from one
//! loop. The one exception is [`DirectWriter`], a latency shortcut the outbox may use for a
//! lone request or reply (see `Outbox::write_direct`; measured in `BENCHMARKS.md`). Over
//! TLS the rustls session sits behind a mutex that the connection task takes for each
//! poll and the direct writer only tries (`try_lock`): never contended in the task's
//! favour, and a direct write that finds it busy leaves its bytes to the task.

use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::net::TcpStream;
use smol::Async;

/// The stream a connection runs on.
#[derive(Debug)]
pub(crate) enum Transport {
    /// Plain TCP, with `TCP_NODELAY` (we batch writes ourselves).
    Tcp(TcpStream),
    /// TLS over that TCP stream (shared with the direct writer), and a second handle to
    /// the socket, to shut it down and for the direct writer's non-blocking writes.
    #[cfg(feature = "tls")]
    Tls(TlsSession, TcpStream),
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
            Transport::Tls(s, _) => Pin::new(&mut **tls_lock(s)).poll_read(cx, buf),
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
            Transport::Tls(s, _) => Pin::new(&mut **tls_lock(s)).poll_write(cx, buf),
        }
    }

    /// Sends what a write left buffered (nothing for TCP: its writes go to the socket).
    pub(crate) fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Transport::Tcp(_) => Poll::Ready(Ok(())),
            #[cfg(feature = "tls")]
            Transport::Tls(s, _) => Pin::new(&mut **tls_lock(s)).poll_flush(_cx),
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
                Ok(Transport::Tls(
                    Arc::new(std::sync::Mutex::new(Box::new(tls))),
                    raw,
                ))
            }
            already @ Transport::Tls(..) => Ok(already),
        }
    }

    /// Reads into `buf` (for the handshake, before the connection task runs).
    pub(crate) async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => s.read(buf).await,
            #[cfg(feature = "tls")]
            Transport::Tls(..) => std::future::poll_fn(|cx| self.poll_read(cx, buf)).await,
        }
    }

    /// Writes all of `buf` (for the handshake).
    pub(crate) async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.write_all(buf).await,
            #[cfg(feature = "tls")]
            Transport::Tls(..) => {
                let mut done = 0;
                while done < buf.len() {
                    let n = std::future::poll_fn(|cx| self.poll_write(cx, &buf[done..])).await?;
                    if n == 0 {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                    done += n;
                }
                std::future::poll_fn(|cx| self.poll_flush(cx)).await
            }
        }
    }

    /// A handle for non-blocking writes from other threads, when this transport allows it.
    pub(crate) fn direct_writer(&self) -> Option<DirectWriter> {
        match self {
            Transport::Tcp(s) => Some(DirectWriter::Tcp(s.clone().into())),
            #[cfg(feature = "tls")]
            Transport::Tls(s, raw) => Some(DirectWriter::Tls(s.clone(), raw.clone().into())),
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

/// The TLS session of one connection, shared by the connection task and the direct writer.
#[cfg(feature = "tls")]
pub(crate) type TlsSession =
    Arc<std::sync::Mutex<Box<futures_rustls::client::TlsStream<TcpStream>>>>;

/// Locks the session for one poll (a panic elsewhere leaves it usable: every use is one
/// call into rustls).
#[cfg(feature = "tls")]
fn tls_lock(
    s: &TlsSession,
) -> std::sync::MutexGuard<'_, Box<futures_rustls::client::TlsStream<TcpStream>>> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A non-blocking write from outside the connection task.
#[derive(Clone, Debug)]
pub(crate) enum DirectWriter {
    /// Writes to the socket.
    Tcp(Arc<Async<std::net::TcpStream>>),
    /// Encrypts with the session when the connection task does not hold it, and writes
    /// the records straight to the socket (not through `TlsStream::poll_write`, which
    /// would leave the caller's waker on the socket in place of the task's).
    #[cfg(feature = "tls")]
    Tls(TlsSession, Arc<Async<std::net::TcpStream>>),
}

impl DirectWriter {
    /// Writes what the socket takes now, without waiting (`WouldBlock` when it takes
    /// nothing, or when the connection task holds the TLS session). Returns how much of
    /// `buf` was taken, and whether TLS kept encrypted records the socket did not take:
    /// then the connection task must be woken to send them (its `poll_flush`).
    pub(crate) fn write(&self, buf: &[u8]) -> io::Result<(usize, bool)> {
        use std::io::Write;
        match self {
            DirectWriter::Tcp(s) => {
                let mut socket: &std::net::TcpStream = s.get_ref();
                socket.write(buf).map(|n| (n, false))
            }
            #[cfg(feature = "tls")]
            DirectWriter::Tls(s, raw) => {
                let Ok(mut tls) = s.try_lock() else {
                    return Err(io::ErrorKind::WouldBlock.into());
                };
                let conn = tls.get_mut().1;
                let n = conn.writer().write(buf)?;
                let mut socket: &std::net::TcpStream = raw.get_ref();
                while conn.wants_write() {
                    match conn.write_tls(&mut socket) {
                        Ok(0) => break,
                        Ok(_) => {}
                        // WouldBlock, or an error the connection task meets on its own write.
                        Err(_) => break,
                    }
                }
                Ok((n, conn.wants_write()))
            }
        }
    }
}
