//! A fake NATS server for hostile-input tests: it speaks just enough of the protocol to
//! get our client connected, then lets each test send whatever bytes it likes and read
//! back, with `parse_client_op`, exactly what the client sent.
//!
//! The acceptor task performs the handshake of every connection (INFO, check CONNECT,
//! PING, answer PONG) and hands the connection to the test through a channel, so a test
//! waits for "the next connection" with a bound instead of sleeping. Every read a test
//! does is bounded too: a missing op fails the test, it never hangs it.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use panini::proto::{parse_client_op, ClientOp, Limits, Status};
use smol::channel::{Receiver, Sender};
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};

/// Bound on anything a test waits for from the client or the fake.
pub const BOUND: Duration = Duration::from_secs(5);

/// The INFO every fake connection starts with (trailing space, as nats-server writes it).
pub const INFO: &[u8] = b"INFO {\"server_id\":\"FAKE\",\"version\":\"2.9.10\",\"max_payload\":1048576,\"proto\":1,\"headers\":true} \r\n";

/// How the fake greets each connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// Send `info`, check CONNECT + PING, answer PONG.
    Normal {
        /// The whole INFO line.
        info: Vec<u8>,
    },
    /// Send INFO, check CONNECT + PING, answer `-ERR 'Authorization Violation'`.
    RejectAuth,
    /// Say nothing at all, not even INFO.
    Mute,
}

impl Handshake {
    /// The usual handshake with [`INFO`].
    pub fn normal() -> Self {
        Handshake::Normal {
            info: INFO.to_vec(),
        }
    }
}

/// One op the client sent, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Connect(serde_json::Value),
    Pub {
        subject: String,
        reply: Option<String>,
        headers: Option<Vec<u8>>,
        payload: Vec<u8>,
    },
    Sub {
        subject: String,
        queue: Option<String>,
        sid: String,
    },
    Unsub {
        sid: String,
        max: Option<u32>,
    },
    Ping,
    Pong,
}

impl Op {
    /// `SUB subject [queue] sid`.
    pub fn sub(subject: &str, queue: Option<&str>, sid: &str) -> Op {
        Op::Sub {
            subject: subject.into(),
            queue: queue.map(Into::into),
            sid: sid.into(),
        }
    }

    fn from_wire(op: ClientOp<'_>) -> Result<Op, String> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Ok(match op {
            ClientOp::Connect(json) => {
                Op::Connect(serde_json::from_slice(json).map_err(|e| format!("CONNECT JSON: {e}"))?)
            }
            ClientOp::Pub(p) => Op::Pub {
                subject: text(p.subject),
                reply: p.reply.map(text),
                headers: p.headers.map(<[u8]>::to_vec),
                payload: p.payload.to_vec(),
            },
            ClientOp::Sub {
                subject,
                queue,
                sid,
            } => Op::Sub {
                subject: text(subject),
                queue: queue.map(text),
                sid: text(sid),
            },
            ClientOp::Unsub { sid, max } => Op::Unsub {
                sid: text(sid),
                max,
            },
            ClientOp::Ping => Op::Ping,
            ClientOp::Pong => Op::Pong,
        })
    }
}

/// A listening fake server; dropping it stops accepting.
#[derive(Debug)]
pub struct FakeServer {
    url: String,
    accepted: Arc<AtomicUsize>,
    refusing: Arc<AtomicBool>,
    conns: Receiver<Result<FakeConn, String>>,
    _acceptor: smol::Task<()>,
}

impl FakeServer {
    /// Binds `127.0.0.1:0` and greets every connection with `handshake`.
    pub async fn start(handshake: Handshake) -> FakeServer {
        Self::start_at("127.0.0.1:0", handshake).await
    }

    /// Binds `addr` (e.g. the address of a fake that was dropped, to come back on the same
    /// port) and greets every connection with `handshake`.
    pub async fn start_at(addr: &str, handshake: Handshake) -> FakeServer {
        let listener = TcpListener::bind(addr)
            .await
            .expect("binding the fake server");
        let url = format!("nats://{}", listener.local_addr().expect("local addr"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let refusing = Arc::new(AtomicBool::new(false));
        let (tx, conns) = smol::channel::unbounded();
        let acceptor = smol::spawn(accept_loop(
            listener,
            handshake,
            Door {
                accepted: accepted.clone(),
                refusing: refusing.clone(),
            },
            tx,
        ));
        FakeServer {
            url,
            accepted,
            refusing,
            conns,
            _acceptor: acceptor,
        }
    }

    /// Stops accepting and waits until the port is closed (dropping the server closes it
    /// only when the executor gets to it).
    pub async fn stop(self) {
        self._acceptor.cancel().await;
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Connections accepted so far (handshaken or not).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// From now on, every new connection is accepted, counted and closed at once, before
    /// INFO: a server that went away, on a port that still counts who knocks.
    pub fn refuse_from_now(&self) {
        self.refusing.store(true, Ordering::SeqCst);
    }

    /// Waits (bounded) for the next connection whose handshake is done; fails the test if
    /// none comes or the client's CONNECT was wrong.
    pub async fn next_conn(&self) -> FakeConn {
        let next = async { Ok(self.conns.recv().await) };
        let got = next.or(async {
            smol::Timer::after(BOUND).await;
            Err(())
        });
        match got.await {
            Ok(Ok(Ok(conn))) => conn,
            Ok(Ok(Err(why))) => panic!("handshake with the client failed: {why}"),
            Ok(Err(_)) => panic!("the fake server's acceptor stopped"),
            Err(()) => panic!(
                "no new connection within {BOUND:?} ({} accepted so far)",
                self.accepted()
            ),
        }
    }

    /// A connection that was handed over but not yet taken, if any (does not wait).
    pub fn try_next_conn(&self) -> Option<FakeConn> {
        self.conns.try_recv().ok().and_then(Result::ok)
    }
}

/// What the acceptor counts and whether it still lets connections in.
struct Door {
    accepted: Arc<AtomicUsize>,
    refusing: Arc<AtomicBool>,
}

async fn accept_loop(
    listener: TcpListener,
    handshake: Handshake,
    door: Door,
    tx: Sender<Result<FakeConn, String>>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        // Counted before the client can see the connection fail, so a client that gave up
        // has had every attempt counted.
        let index = door.accepted.fetch_add(1, Ordering::SeqCst) + 1;
        if door.refusing.load(Ordering::SeqCst) {
            drop(stream);
            continue;
        }
        let mut conn = FakeConn {
            index,
            stream,
            buf: Vec::new(),
            connect: serde_json::Value::Null,
        };
        let greeted = conn.greet(&handshake).await.map(|()| conn);
        if tx.send(greeted).await.is_err() {
            return;
        }
    }
}

/// One accepted connection, driven by the test.
#[derive(Debug)]
pub struct FakeConn {
    /// 1 for the first connection the server accepted, 2 for the next...
    pub index: usize,
    stream: TcpStream,
    buf: Vec<u8>,
    /// The client's CONNECT body (`Null` for [`Handshake::Mute`]).
    pub connect: serde_json::Value,
}

impl FakeConn {
    async fn greet(&mut self, handshake: &Handshake) -> Result<(), String> {
        let info = match handshake {
            Handshake::Mute => return Ok(()),
            Handshake::Normal { info } => info.as_slice(),
            Handshake::RejectAuth => INFO,
        };
        self.try_send(info)
            .await
            .map_err(|e| format!("writing INFO: {e}"))?;
        let connect = match self.read_op().await? {
            Some(Op::Connect(json)) => json,
            other => return Err(format!("expected CONNECT first, got {other:?}")),
        };
        check_connect(&connect)?;
        self.connect = connect;
        match self.read_op().await? {
            Some(Op::Ping) => {}
            other => return Err(format!("expected PING after CONNECT, got {other:?}")),
        }
        let answer: &[u8] = match handshake {
            Handshake::RejectAuth => b"-ERR 'Authorization Violation'\r\n",
            _ => b"PONG\r\n",
        };
        self.try_send(answer)
            .await
            .map_err(|e| format!("answering the PING: {e}"))
    }

    /// Writes bytes; the client may already have hung up, so the result is returned.
    pub async fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Writes bytes, failing the test if the socket refuses them.
    pub async fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self.try_send(bytes).await {
            panic!(
                "fake connection {}: writing {:?}: {e}",
                self.index,
                String::from_utf8_lossy(bytes)
            );
        }
    }

    /// The next op, `Ok(None)` at end of stream; errors (bad bytes, nothing within
    /// [`BOUND`]) as text.
    async fn read_op(&mut self) -> Result<Option<Op>, String> {
        let limits = Limits::default();
        loop {
            match parse_client_op(&self.buf, &limits) {
                Ok(Status::Complete((op, used))) => {
                    let op = Op::from_wire(op)?;
                    self.buf.drain(..used);
                    return Ok(Some(op));
                }
                Ok(Status::Partial) => {}
                Err(e) => {
                    return Err(format!(
                        "client sent bytes that do not parse ({e}): {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ))
                }
            }
            let mut chunk = [0u8; 4096];
            let read = async { Ok(self.stream.read(&mut chunk).await) };
            let read = read.or(async {
                smol::Timer::after(BOUND).await;
                Err(())
            });
            match read.await {
                Ok(Ok(0)) | Ok(Err(_)) if self.buf.is_empty() => return Ok(None),
                Ok(Ok(0)) | Ok(Err(_)) => {
                    return Err(format!(
                        "end of stream inside an op: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ))
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(()) => return Err(format!("nothing from the client within {BOUND:?}")),
            }
        }
    }

    /// The next op the client sends, or `None` when it closes the connection.
    pub async fn next_op(&mut self) -> Option<Op> {
        let index = self.index;
        self.read_op()
            .await
            .unwrap_or_else(|why| panic!("fake connection {index}: {why}"))
    }

    /// The next op; the client closing the connection fails the test.
    pub async fn expect_op(&mut self) -> Op {
        match self.next_op().await {
            Some(op) => op,
            None => panic!("fake connection {}: the client closed it", self.index),
        }
    }

    /// Reads ops until one matches, returning it and those skipped before it.
    pub async fn wait_for(&mut self, what: &str, want: impl Fn(&Op) -> bool) -> (Op, Vec<Op>) {
        let mut skipped = Vec::new();
        loop {
            match self.next_op().await {
                Some(op) if want(&op) => return (op, skipped),
                Some(op) => skipped.push(op),
                None => panic!(
                    "fake connection {}: closed by the client while waiting for {what}; got {skipped:?}",
                    self.index
                ),
            }
        }
    }

    /// Reads until the client closes the connection (bounded); returns what it sent meanwhile.
    pub async fn until_closed(&mut self) -> Vec<Op> {
        let mut ops = Vec::new();
        while let Some(op) = self.next_op().await {
            ops.push(op);
        }
        ops
    }

    /// Answers every PING with PONG from now on, in a task of its own, until the client
    /// closes the connection or the task is dropped.
    pub fn serve_pongs(mut self) -> smol::Task<()> {
        smol::spawn(async move {
            while let Ok(Some(op)) = self.read_op_unbounded().await {
                if op == Op::Ping && self.try_send(b"PONG\r\n").await.is_err() {
                    return;
                }
            }
        })
    }

    /// Like `read_op`, but waits as long as it takes (for background servers).
    async fn read_op_unbounded(&mut self) -> Result<Option<Op>, String> {
        loop {
            match self.read_op().await {
                Err(why) if why.starts_with("nothing from the client") => continue,
                other => return other,
            }
        }
    }

    /// Every byte the client sends until it closes the connection (bounded by [`BOUND`]
    /// per read), unparsed: what a dead connection got may end inside an op.
    pub async fn raw_until_closed(&mut self) -> Vec<u8> {
        let mut all = std::mem::take(&mut self.buf);
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let read = async { Ok(self.stream.read(&mut chunk).await) };
            let read = read.or(async {
                smol::Timer::after(BOUND).await;
                Err(())
            });
            match read.await {
                Ok(Ok(0)) | Ok(Err(_)) => return all,
                Ok(Ok(n)) => all.extend_from_slice(&chunk[..n]),
                Err(()) => panic!(
                    "fake connection {}: not closed within {BOUND:?} after {} bytes",
                    self.index,
                    all.len()
                ),
            }
        }
    }

    /// Exactly the next `n` bytes the client sends (bounded by [`BOUND`]), unparsed.
    pub async fn raw_exact(&mut self, n: usize) -> Vec<u8> {
        let mut chunk = vec![0u8; 64 * 1024];
        while self.buf.len() < n {
            let read = async { Ok(self.stream.read(&mut chunk).await) };
            let read = read.or(async {
                smol::Timer::after(BOUND).await;
                Err(())
            });
            match read.await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(()) => panic!(
                    "fake connection {}: {} of {n} bytes, then nothing: {:?}",
                    self.index,
                    self.buf.len(),
                    String::from_utf8_lossy(&self.buf)
                ),
                Ok(Ok(got)) => self.buf.extend_from_slice(&chunk[..got]),
            }
        }
        self.buf.drain(..n).collect()
    }

    /// Closes the connection from the server side.
    pub fn close(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// The CONNECT body our client must send: no verbose or pedantic mode, protocol 1,
/// headers and no-responders on, and a language and version.
fn check_connect(json: &serde_json::Value) -> Result<(), String> {
    let field = |name: &str| json.get(name).cloned().unwrap_or(serde_json::Value::Null);
    let want = [
        ("verbose", serde_json::json!(false)),
        ("pedantic", serde_json::json!(false)),
        ("protocol", serde_json::json!(1)),
        ("headers", serde_json::json!(true)),
        ("no_responders", serde_json::json!(true)),
    ];
    for (name, value) in want {
        if field(name) != value {
            return Err(format!(
                "CONNECT {name} is {}, want {value}: {json}",
                field(name)
            ));
        }
    }
    for name in ["lang", "version"] {
        if field(name).as_str().is_none_or(|s| s.is_empty()) {
            return Err(format!("CONNECT has no {name}: {json}"));
        }
    }
    Ok(())
}
