//! The one publisher of the subscribe workload, the same for both contenders: a plain
//! blocking socket on its own thread that writes pre-encoded `PUB` frames, so no client
//! library's publishing speed leaks into the subscriber figure. Given a CA file it speaks
//! TLS (blocking rustls on the `ring` provider, as both clients use), upgrading after the
//! plain INFO as NATS does.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::Result;

/// `count` pre-encoded `PUB <subject> <len>\r\n<payload>\r\n` frames.
#[derive(Debug)]
pub struct Burst {
    frames: Vec<u8>,
}

/// A plain or TLS stream.
trait Stream: Read + Write + Send {}
impl<S: Read + Write + Send> Stream for S {}

impl Burst {
    pub fn new(subject: &str, count: usize, payload_len: usize) -> Self {
        let one = frame(subject, &vec![b'x'; payload_len]);
        let mut frames = Vec::with_capacity(one.len() * count);
        for _ in 0..count {
            frames.extend_from_slice(&one);
        }
        Burst { frames }
    }

    /// Connects to `url` (`nats://` or `tls://` `HOST:PORT`) and handshakes now, in TLS
    /// when given the CA that signed the server's certificate; then writes every frame on
    /// a thread of its own once `go` is called.
    pub fn connect(self, url: &str, ca_file: Option<&Path>) -> Result<Armed> {
        let addr = url.split_once("://").map_or(url, |(_, rest)| rest);
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        // INFO comes in plain text, even when TLS is required; then nothing until we talk.
        let mut plain = BufReader::new(stream);
        let mut line = String::new();
        plain.read_line(&mut line)?;
        if !line.starts_with("INFO") {
            return Err(format!("expected INFO, got {line:?}").into());
        }
        let stream: Box<dyn Stream> = match ca_file {
            Some(ca) => {
                let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
                let name = ServerName::try_from(host.to_string())?;
                let tls = ClientConnection::new(tls_config(ca)?, name)?;
                Box::new(StreamOwned::new(tls, plain.into_inner()))
            }
            None => Box::new(plain.into_inner()),
        };
        let mut conn = BufReader::new(stream);
        conn.get_mut()
            .write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n")?;
        conn.get_mut().flush()?;
        wait_for_pong(&mut conn)?;
        Ok(Armed {
            frames: self.frames,
            conn,
        })
    }
}

/// A handshaken publisher waiting for [`Armed::go`].
pub struct Armed {
    frames: Vec<u8>,
    conn: BufReader<Box<dyn Stream>>,
}

impl Armed {
    /// Writes the frames, then a PING, on a new thread, which ends on the PONG (the server
    /// has them all) and returns its thread id (to leave its CPU time out of the client's).
    pub fn go(mut self) -> JoinHandle<Result<u64>> {
        std::thread::spawn(move || {
            let tid = crate::cpu::this_thread().ok_or("no /proc/thread-self")?;
            let out = self.conn.get_mut();
            out.write_all(&self.frames)?;
            out.write_all(b"PING\r\n")?;
            out.flush()?;
            wait_for_pong(&mut self.conn)?;
            Ok(tid)
        })
    }
}

fn frame(subject: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("PUB {subject} {}\r\n", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    out
}

fn wait_for_pong(conn: &mut BufReader<Box<dyn Stream>>) -> Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if conn.read_line(&mut line)? == 0 {
            return Err("server closed the publisher's connection".into());
        }
        match line.trim_end() {
            "PONG" => return Ok(()),
            "PING" => {
                conn.get_mut().write_all(b"PONG\r\n")?;
                conn.get_mut().flush()?;
            }
            other if other.starts_with("-ERR") => return Err(other.to_string().into()),
            _ => {}
        }
    }
}

/// Trusts `ca_file` alone; the `ring` provider, given here (nothing process-wide).
fn tls_config(ca_file: &Path) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file)? {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
