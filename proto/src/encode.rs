//! Encoding both op enums: each appends its wire bytes to a buffer the caller owns and
//! never flushes; the caller decides when bytes go out.
//!
//! Encoding writes what it is given. Check subjects with [`subject`](crate::subject) and
//! build header blocks with [`encode_headers`](crate::encode_headers) first: the client does.

use crate::client_op::{ClientOp, Pub};
use crate::server_op::{MsgFrame, ServerOp};

/// The decimal digits of `n` (ASCII), written at the end of `buf` (20 bytes hold
/// `u64::MAX`). For encoders that must not allocate or go through `fmt`.
///
/// ```
/// let mut buf = [0u8; 20];
/// assert_eq!(panini_proto::decimal(0, &mut buf), b"0");
/// assert_eq!(panini_proto::decimal(u64::MAX, &mut buf), b"18446744073709551615");
/// ```
pub fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

/// Appends the decimal digits of `n`.
pub(crate) fn put_num(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(decimal(n, &mut [0u8; 20]));
}

fn put_args(out: &mut Vec<u8>, name: &[u8], args: &[&[u8]]) {
    out.extend_from_slice(name);
    for arg in args {
        out.push(b' ');
        out.extend_from_slice(arg);
    }
}

/// ` [#header bytes] #total bytes CRLF headers payload CRLF`: the shared tail of
/// MSG/HMSG/PUB/HPUB.
fn put_sizes_and_body(out: &mut Vec<u8>, headers: Option<&[u8]>, payload: &[u8]) {
    let hlen = headers.map_or(0, <[u8]>::len);
    if headers.is_some() {
        out.push(b' ');
        put_num(out, hlen as u64);
    }
    out.push(b' ');
    put_num(out, (hlen + payload.len()) as u64);
    out.extend_from_slice(b"\r\n");
    if let Some(h) = headers {
        out.extend_from_slice(h);
    }
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

impl ServerOp<'_> {
    /// Appends this op's wire bytes to `out`.
    ///
    /// ```
    /// use panini_proto::{MsgFrame, ServerOp};
    /// let mut out = Vec::new();
    /// ServerOp::Msg(MsgFrame { subject: b"a", sid: 1, reply: Some(b"r"), headers: None, payload: b"hi" }).encode(&mut out);
    /// ServerOp::Err(b"Stale Connection").encode(&mut out);
    /// assert_eq!(out, b"MSG a 1 r 2\r\nhi\r\n-ERR 'Stale Connection'\r\n");
    /// ```
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ServerOp::Info(json) => put_line(out, b"INFO ", json),
            ServerOp::Msg(m) => m.encode(out),
            ServerOp::Ping => out.extend_from_slice(b"PING\r\n"),
            ServerOp::Pong => out.extend_from_slice(b"PONG\r\n"),
            ServerOp::Ok => out.extend_from_slice(b"+OK\r\n"),
            ServerOp::Err(text) => {
                out.extend_from_slice(b"-ERR '");
                out.extend_from_slice(text);
                out.extend_from_slice(b"'\r\n");
            }
        }
    }
}

impl MsgFrame<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        let name: &[u8] = if self.headers.is_some() {
            b"HMSG"
        } else {
            b"MSG"
        };
        put_args(out, name, &[self.subject]);
        out.push(b' ');
        put_num(out, self.sid);
        if let Some(reply) = self.reply {
            put_args(out, b"", &[reply]);
        }
        put_sizes_and_body(out, self.headers, self.payload);
    }
}

fn put_line(out: &mut Vec<u8>, head: &[u8], body: &[u8]) {
    out.extend_from_slice(head);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

impl ClientOp<'_> {
    /// Appends this op's wire bytes to `out`.
    ///
    /// ```
    /// use panini_proto::{ClientOp, Pub};
    /// let mut out = Vec::new();
    /// ClientOp::Sub { subject: b"svc.>", queue: Some(b"workers"), sid: b"1" }.encode(&mut out);
    /// ClientOp::Pub(Pub { subject: b"svc.add", reply: None, headers: None, payload: b"{}" }).encode(&mut out);
    /// assert_eq!(out, b"SUB svc.> workers 1\r\nPUB svc.add 2\r\n{}\r\n");
    /// ```
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ClientOp::Connect(json) => put_line(out, b"CONNECT ", json),
            ClientOp::Pub(p) => p.encode(out),
            ClientOp::Sub {
                subject,
                queue,
                sid,
            } => {
                match queue {
                    Some(q) => put_args(out, b"SUB", &[subject, q, sid]),
                    None => put_args(out, b"SUB", &[subject, sid]),
                }
                out.extend_from_slice(b"\r\n");
            }
            ClientOp::Unsub { sid, max } => {
                put_args(out, b"UNSUB", &[sid]);
                if let Some(max) = max {
                    out.push(b' ');
                    put_num(out, u64::from(*max));
                }
                out.extend_from_slice(b"\r\n");
            }
            ClientOp::Ping => out.extend_from_slice(b"PING\r\n"),
            ClientOp::Pong => out.extend_from_slice(b"PONG\r\n"),
        }
    }
}

impl Pub<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        let name: &[u8] = if self.headers.is_some() {
            b"HPUB"
        } else {
            b"PUB"
        };
        put_args(out, name, &[self.subject]);
        if let Some(reply) = self.reply {
            put_args(out, b"", &[reply]);
        }
        put_sizes_and_body(out, self.headers, self.payload);
    }
}
