//! Property checkers shared by the cargo-fuzz targets in `fuzz/` and by the stable
//! `tests/fuzz_smoke.rs`. Each panics when its property fails; that is how a fuzzer learns.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use arbitrary::Arbitrary;

use crate::{
    encode_headers, parse_client_op, parse_server_op, ClientOp, Error, HeaderBlock, Limits, Pub,
    ServerOp, Status,
};

/// Small limits make the limit paths reachable by short fuzz inputs.
pub const FUZZ_LIMITS: Limits = Limits {
    max_control_line: 256,
    max_info_line: 1024,
    max_payload: 1024,
};

/// Limits roomy enough to re-parse anything an op parsed under `FUZZ_LIMITS` encodes to.
const ROOMY: Limits = Limits {
    max_control_line: 4096,
    max_info_line: 4096,
    max_payload: 4096,
};

/// Parses `data` as a stream of server ops until it needs more bytes or fails. For each op:
/// the bytes used are in `1..=remaining`, and encoding then parsing gives back the same op,
/// using exactly the encoded bytes.
pub fn check_server_ops(data: &[u8]) {
    let mut rest = data;
    while let Ok(Status::Complete((op, used))) = parse_server_op(rest, &FUZZ_LIMITS) {
        assert!(
            used >= 1 && used <= rest.len(),
            "used {used} of {}",
            rest.len()
        );
        let mut wire = Vec::new();
        op.encode(&mut wire);
        assert_eq!(
            parse_server_op(&wire, &ROOMY),
            Ok(Status::Complete((op, wire.len()))),
            "round trip of {op:?} via {wire:?}"
        );
        if let ServerOp::Msg(msg) = op {
            let _ = msg.header_block().map(|b| b.map(|b| b.iter().count()));
        }
        rest = &rest[used..];
    }
}

/// As [`check_server_ops`], for the client direction.
pub fn check_client_ops(data: &[u8]) {
    let mut rest = data;
    while let Ok(Status::Complete((op, used))) = parse_client_op(rest, &FUZZ_LIMITS) {
        assert!(used >= 1 && used <= rest.len());
        let mut wire = Vec::new();
        op.encode(&mut wire);
        assert_eq!(
            parse_client_op(&wire, &ROOMY),
            Ok(Status::Complete((op, wire.len()))),
            "round trip of {op:?} via {wire:?}"
        );
        rest = &rest[used..];
    }
}

/// How a stream of server ops ends: the ops (as text) and the final outcome.
#[derive(Debug, PartialEq, Eq)]
struct Transcript {
    ops: Vec<String>,
    end: Result<(), Error>,
}

fn one_shot(data: &[u8]) -> Transcript {
    let mut ops = Vec::new();
    let mut rest = data;
    loop {
        match parse_server_op(rest, &FUZZ_LIMITS) {
            Ok(Status::Complete((op, used))) => {
                ops.push(format!("{op:?}"));
                rest = &rest[used..];
            }
            Ok(Status::Partial) => return Transcript { ops, end: Ok(()) },
            Err(e) => return Transcript { ops, end: Err(e) },
        }
    }
}

fn chunked(data: &[u8], cuts: &[usize]) -> Transcript {
    let mut ops = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let ends = cuts
        .iter()
        .map(|&c| c % (data.len() + 1))
        .chain([data.len()]);
    for end in ends {
        if end <= fed {
            continue;
        }
        buf.extend_from_slice(&data[fed..end]);
        fed = end;
        loop {
            match parse_server_op(&buf, &FUZZ_LIMITS) {
                Ok(Status::Complete((op, used))) => {
                    ops.push(format!("{op:?}"));
                    buf.drain(..used);
                }
                Ok(Status::Partial) => break,
                Err(e) => return Transcript { ops, end: Err(e) },
            }
        }
    }
    Transcript { ops, end: Ok(()) }
}

/// Feeding `data` in chunks (cut at `cuts`, taken modulo the length and in order) gives the
/// same ops and the same final error as parsing it in one go.
pub fn check_split(data: &[u8], cuts: &[usize]) {
    let mut cuts = cuts.to_vec();
    cuts.sort_unstable();
    assert_eq!(chunked(data, &cuts), one_shot(data), "cuts {cuts:?}");
}

/// A client op built from arbitrary values (owned, so `arbitrary` can make it).
#[derive(Arbitrary, Debug, Clone)]
pub enum ArbClientOp {
    Connect(Vec<u8>),
    Pub {
        subject: Vec<u8>,
        reply: Option<Vec<u8>>,
        headers: Option<ArbHeaders>,
        payload: Vec<u8>,
    },
    Sub {
        subject: Vec<u8>,
        queue: Option<Vec<u8>>,
        sid: Vec<u8>,
    },
    Unsub {
        sid: Vec<u8>,
        max: Option<u32>,
    },
    Ping,
    Pong,
}

/// A headers block built from arbitrary values.
#[derive(Arbitrary, Debug, Clone)]
pub struct ArbHeaders {
    pub status: Option<(u16, Vec<u8>)>,
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl ArbHeaders {
    /// Encodes the block, or `None` when the values cannot form one.
    fn encode(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let status = self.status.as_ref().map(|(c, d)| (*c, d.as_slice()));
        let fields = self
            .fields
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_slice()));
        encode_headers(status, fields, &mut out).ok()?;
        Some(out)
    }
}

fn ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// A token that survives the wire: non-empty, no white space.
fn token(t: &[u8]) -> bool {
    !t.is_empty() && !t.iter().any(|&b| ws(b))
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |e| e + 1);
    &s[start..end]
}

/// A headers block survives encode and decode: same status, description and fields
/// (values lose surrounding white space, as the format says).
pub fn check_headers_roundtrip(h: &ArbHeaders) {
    let Some(wire) = h.encode() else { return };
    let block = HeaderBlock::parse(&wire).unwrap_or_else(|e| panic!("{e}: {wire:?}"));
    assert_eq!(block.status(), h.status.as_ref().map(|s| s.0));
    let want_desc = h
        .status
        .as_ref()
        .map(|s| trim(&s.1))
        .filter(|d| !d.is_empty());
    assert_eq!(block.description(), want_desc);
    let got: Vec<_> = block.iter().collect();
    let want: Vec<_> = h
        .fields
        .iter()
        .map(|(n, v)| (n.as_slice(), trim(v)))
        .collect();
    assert_eq!(got, want);
}

/// A client op made of encodable values survives encode and parse unchanged.
pub fn check_client_roundtrip(op: &ArbClientOp) {
    let headers;
    let op = match op {
        ArbClientOp::Connect(json) => {
            let ok = matches!(json.as_slice(), [b'{', .., b'}']) && !json.contains(&b'\n');
            if !ok {
                return;
            }
            ClientOp::Connect(json)
        }
        ArbClientOp::Pub {
            subject,
            reply,
            headers: h,
            payload,
        } => {
            if !token(subject) || reply.as_deref().is_some_and(|r| !token(r)) {
                return;
            }
            headers = match h {
                Some(h) => match h.encode() {
                    Some(w) => Some(w),
                    None => return,
                },
                None => None,
            };
            ClientOp::Pub(Pub {
                subject,
                reply: reply.as_deref(),
                headers: headers.as_deref(),
                payload,
            })
        }
        ArbClientOp::Sub {
            subject,
            queue,
            sid,
        } => {
            if !token(subject) || !token(sid) || queue.as_deref().is_some_and(|q| !token(q)) {
                return;
            }
            ClientOp::Sub {
                subject,
                queue: queue.as_deref(),
                sid,
            }
        }
        ArbClientOp::Unsub { sid, max } => {
            if !token(sid) || max.is_some_and(|m| m > 999_999_999) {
                return;
            }
            ClientOp::Unsub { sid, max: *max }
        }
        ArbClientOp::Ping => ClientOp::Ping,
        ArbClientOp::Pong => ClientOp::Pong,
    };
    let mut wire = Vec::new();
    op.encode(&mut wire);
    let limits = Limits {
        max_control_line: wire.len(),
        max_info_line: wire.len(),
        max_payload: wire.len(),
    };
    assert_eq!(
        parse_client_op(&wire, &limits),
        Ok(Status::Complete((op, wire.len()))),
        "round trip via {wire:?}"
    );
}
