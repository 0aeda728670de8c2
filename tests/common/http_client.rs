//! A small HTTP/1.1 client for the HTTP tests: it writes raw request bytes (so tests can
//! send anything, malformed or pipelined) and reads responses strictly: CRLF line ends,
//! an `HTTP/1.1` status line, a body framed by `Content-Length`. Every read is bounded by
//! [`IO_TIMEOUT`], so a server that never answers fails the test instead of hanging it.

#![allow(dead_code)]

use std::future::Future;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;

/// How long one read, write or connect may take before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A response as it came on the wire.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// The first header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How many times header `name` appears.
    pub fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// The body as UTF-8.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("the body is UTF-8")
    }

    /// The `Allow` header as a sorted list of methods.
    pub fn allow(&self) -> Vec<String> {
        let mut methods: Vec<String> = self
            .header("allow")
            .unwrap_or_else(|| panic!("no Allow header in {self:?}"))
            .split(',')
            .map(|m| m.trim().to_string())
            .collect();
        methods.sort();
        methods
    }
}

/// Fails the test if `fut` takes longer than [`IO_TIMEOUT`].
pub async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    fut.or(async {
        smol::Timer::after(IO_TIMEOUT).await;
        panic!("{what}: nothing after {IO_TIMEOUT:?}");
    })
    .await
}

/// One client connection and the bytes read but not yet parsed.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = bounded("connect", TcpStream::connect(addr))
            .await
            .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Another handle on the same socket (for a writer running beside the reader).
    pub fn stream(&self) -> TcpStream {
        self.stream.clone()
    }

    /// Writes `bytes` in one write.
    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        bounded("write", self.stream.write_all(bytes.as_ref()))
            .await
            .expect("writing the request");
    }

    /// Sends `raw` and reads one response.
    pub async fn call(&mut self, raw: impl AsRef<[u8]>) -> Resp {
        self.send(raw).await;
        self.response().await
    }

    /// Reads one response, its body framed by `Content-Length`.
    pub async fn response(&mut self) -> Resp {
        self.read_response(true).await
    }

    /// Reads the response to a `HEAD`: `Content-Length` is there but no body follows.
    pub async fn head_response(&mut self) -> Resp {
        self.read_response(false).await
    }

    /// Reads until the server closes; fails on any byte that comes first.
    pub async fn assert_closed(&mut self) {
        while self.fill().await != 0 {}
        assert!(
            self.buf.is_empty(),
            "bytes before the close: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
    }

    async fn read_response(&mut self, with_body: bool) -> Resp {
        let end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end;
            }
            self.need_more("a response head").await;
        };
        let head = String::from_utf8(self.buf[..end].to_vec()).expect("an ASCII head");
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                assert!(!line.contains('\n'), "bare LF in {line:?}");
                let (name, value) = line
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header line {line:?}"));
                (name.to_string(), value.trim().to_string())
            })
            .collect();
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        // 1xx, 204 and 304 never have a body (RFC 9110 §6.4.1); nor has the answer to HEAD.
        if (100..200).contains(&status) || status == 204 || status == 304 || !with_body {
            return resp;
        }
        assert_eq!(resp.count("content-length"), 1, "{resp:?}");
        let len: usize = resp.header("content-length").unwrap().parse().unwrap();
        while self.buf.len() < len {
            self.need_more("a response body").await;
        }
        resp.body = self.buf.drain(..len).collect();
        resp
    }

    async fn need_more(&mut self, what: &str) {
        if self.fill().await == 0 {
            panic!(
                "the server closed in the middle of {what}; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Reads once; 0 at end of stream. A reset counts as the end too: a server that closes
    /// with unread input resets the connection, after the bytes it wrote.
    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 4096];
        match bounded("read", self.stream.read(&mut chunk)).await {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => 0,
            Err(e) => panic!("reading: {e}"),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `GET path` on a fresh connection with `Connection: close`; the response.
pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    let mut c = Client::connect(addr).await;
    c.call(format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    ))
    .await
}
