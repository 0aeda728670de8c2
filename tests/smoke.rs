//! Smoke tests of `panini-proto` against a real `nats-server`, over a plain blocking
//! `TcpStream`: the handshake, a headers round trip and the no-responders status.
//!
//! Every socket has a 5 s timeout, so a hang is a failure, not a stuck CI job.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::ops::Range;

use common::NatsServer;
use panini_proto::{
    encode_headers, parse_server_op, ClientOp, Limits, MsgFrame, Pub, ServerOp, Status,
};

const CONNECT: &[u8] = br#"{"verbose":false,"pedantic":false,"protocol":1,"headers":true,"no_responders":true,"lang":"rust","version":"0.1.0","name":"panini-smoke"}"#;

/// A blocking NATS connection for tests: a socket, a read buffer and a `start` offset.
struct Wire {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    limits: Limits,
}

impl Wire {
    fn new(stream: TcpStream) -> Self {
        Wire {
            stream,
            buf: Vec::with_capacity(4096),
            start: 0,
            limits: Limits::default(),
        }
    }

    /// Connects, checks INFO, sends CONNECT + PING and waits for the PONG.
    fn handshake(server: &NatsServer) -> Self {
        let mut wire = Wire::new(server.connect());
        assert!(matches!(wire.next_op(), ServerOp::Info(_)));
        wire.send(&[ClientOp::Connect(CONNECT), ClientOp::Ping]);
        wire.until(|op| matches!(op, ServerOp::Pong));
        wire
    }

    fn send(&mut self, ops: &[ClientOp<'_>]) {
        let mut out = Vec::new();
        for op in ops {
            op.encode(&mut out);
        }
        self.stream.write_all(&out).expect("writing to nats-server");
    }

    /// The next op; reads more bytes for as long as the buffer holds only part of one.
    fn next_op(&mut self) -> ServerOp<'_> {
        let frame = self.next_frame();
        complete(&self.buf[frame], &self.limits)
    }

    /// Skips ops until one matches `want`; a `-ERR` fails the test.
    fn until(&mut self, want: impl Fn(&ServerOp<'_>) -> bool) -> ServerOp<'_> {
        loop {
            let frame = self.next_frame();
            let op = complete(&self.buf[frame.clone()], &self.limits);
            if let ServerOp::Err(text) = op {
                panic!("-ERR from nats-server: {}", String::from_utf8_lossy(text));
            }
            if want(&op) {
                return complete(&self.buf[frame], &self.limits);
            }
        }
    }

    /// Where the next whole op sits in `buf`, reading until it is all there.
    ///
    /// Returning a range rather than the op keeps `fill` outside any borrow of `buf`;
    /// callers parse the frame again, which cannot fail once it was complete.
    fn next_frame(&mut self) -> Range<usize> {
        loop {
            match parse_server_op(&self.buf[self.start..], &self.limits) {
                Ok(Status::Complete((_, used))) => {
                    let frame = self.start..self.start + used;
                    self.start += used;
                    return frame;
                }
                Ok(Status::Partial) => self.fill(),
                Err(e) => panic!("bad bytes from nats-server: {e}"),
            }
        }
    }

    /// Reads once into the buffer, dropping consumed bytes when they are most of it.
    fn fill(&mut self) {
        if self.start > self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let mut chunk = [0u8; 4096];
        let n = self
            .stream
            .read(&mut chunk)
            .expect("reading from nats-server (timed out?)");
        assert!(n > 0, "nats-server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }
}

fn complete<'a>(frame: &'a [u8], limits: &Limits) -> ServerOp<'a> {
    match parse_server_op(frame, limits) {
        Ok(Status::Complete((op, _))) => op,
        other => panic!("expected a complete op, got {other:?}"),
    }
}

fn msg<'a>(op: ServerOp<'a>) -> MsgFrame<'a> {
    match op {
        ServerOp::Msg(m) => m,
        other => panic!("expected MSG or HMSG, got {other:?}"),
    }
}

#[test]
fn info_then_connect_ping_pong() {
    let server = NatsServer::start();
    let mut wire = Wire::new(server.connect());

    let ServerOp::Info(json) = wire.next_op() else {
        panic!("the server must speak first, with INFO");
    };
    let info: serde_json::Value = serde_json::from_slice(json).expect("INFO carries JSON");
    assert!(info["server_id"].is_string(), "INFO: {info}");
    assert!(
        info["max_payload"].as_u64().is_some_and(|n| n > 0),
        "INFO: {info}"
    );

    wire.send(&[ClientOp::Connect(CONNECT), ClientOp::Ping]);
    assert_eq!(
        wire.until(|op| matches!(op, ServerOp::Pong)),
        ServerOp::Pong
    );
}

#[test]
fn hpub_comes_back_as_hmsg() {
    let server = NatsServer::start();
    let mut wire = Wire::handshake(&server);

    let mut headers = Vec::new();
    encode_headers(None, [(&b"Smoke-Test"[..], &b"yes"[..])], &mut headers).unwrap();
    let hpub = Pub {
        subject: b"smoke.headers",
        reply: None,
        headers: Some(&headers),
        payload: b"hello",
    };
    let sub = ClientOp::Sub {
        subject: b"smoke.>",
        queue: None,
        sid: b"1",
    };
    wire.send(&[sub, ClientOp::Pub(hpub)]);

    let got = msg(wire.until(|op| matches!(op, ServerOp::Msg(_))));
    assert_eq!(got.subject, b"smoke.headers");
    assert_eq!(got.sid, 1);
    assert_eq!(got.reply, None);
    assert_eq!(got.payload, b"hello");
    let block = got.header_block().expect("an HMSG").expect("a valid block");
    assert_eq!(block.get(b"Smoke-Test"), Some(&b"yes"[..]));
}

#[test]
fn request_without_responders_gets_503() {
    let server = NatsServer::start();
    let mut wire = Wire::handshake(&server);

    let sub = ClientOp::Sub {
        subject: b"_INBOX.smoke.*",
        queue: None,
        sid: b"7",
    };
    let request = Pub {
        subject: b"smoke.nobody.home",
        reply: Some(b"_INBOX.smoke.1"),
        headers: None,
        payload: b"anyone?",
    };
    wire.send(&[sub, ClientOp::Pub(request)]);

    let got = msg(wire.until(|op| matches!(op, ServerOp::Msg(_))));
    assert_eq!(got.subject, b"_INBOX.smoke.1");
    assert_eq!(got.sid, 7);
    assert!(got.is_no_responders(), "{got:?}");
}
