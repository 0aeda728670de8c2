//! Known answers, imap-codec style: wire bytes, the op they mean, and how many bytes it uses.
//!
//! For every sample: parsing gives that op and count; encoding the op and parsing the result
//! gives the op back, using every encoded byte; every strict prefix (of the sample and of its
//! encoding) is `Partial`; bytes appended after it change neither the op nor the count. Then
//! all the samples of one side, concatenated, give the same ops however the stream is cut.
//! Last, exact encoder outputs.

use std::fmt::Debug;

use panini_proto::{
    encode_headers, parse_client_op, parse_server_op, ClientOp, Error, HeaderBlock, Limits,
    MsgFrame, Pub, ServerOp, Status,
};

/// One direction of the protocol: its op type, parser and encoder.
trait Side {
    type Op<'a>: Debug;
    fn parse(buf: &[u8]) -> Result<Status<(Self::Op<'_>, usize)>, Error>;
    fn encode(op: &Self::Op<'_>, out: &mut Vec<u8>);
    /// `==` across two borrow lifetimes (the generic code cannot see the ops are covariant).
    fn same(a: &Self::Op<'_>, b: &Self::Op<'_>) -> bool;
}

struct Server;
struct Client;

impl Side for Server {
    type Op<'a> = ServerOp<'a>;
    fn parse(buf: &[u8]) -> Result<Status<(ServerOp<'_>, usize)>, Error> {
        parse_server_op(buf, &Limits::default())
    }
    fn encode(op: &ServerOp<'_>, out: &mut Vec<u8>) {
        op.encode(out);
    }
    fn same(a: &ServerOp<'_>, b: &ServerOp<'_>) -> bool {
        a == b
    }
}

impl Side for Client {
    type Op<'a> = ClientOp<'a>;
    fn parse(buf: &[u8]) -> Result<Status<(ClientOp<'_>, usize)>, Error> {
        parse_client_op(buf, &Limits::default())
    }
    fn encode(op: &ClientOp<'_>, out: &mut Vec<u8>) {
        op.encode(out);
    }
    fn same(a: &ClientOp<'_>, b: &ClientOp<'_>) -> bool {
        a == b
    }
}

fn assert_complete<S: Side>(buf: &[u8], want: &S::Op<'_>, used: usize, what: &str) {
    match S::parse(buf) {
        Ok(Status::Complete((op, n))) if S::same(&op, want) && n == used => {}
        got => panic!(
            "{what}: {}\n   got {got:?}\n  want Complete(({want:?}, {used}))",
            buf.escape_ascii()
        ),
    }
}

fn assert_prefixes_partial<S: Side>(wire: &[u8], what: &str) {
    for k in 0..wire.len() {
        let got = S::parse(&wire[..k]);
        assert!(
            matches!(got, Ok(Status::Partial)),
            "{what}: prefix {k} of {}: {got:?}",
            wire.escape_ascii()
        );
    }
}

/// What may follow an op on the wire without changing it.
fn tails() -> Vec<Vec<u8>> {
    vec![
        b"XYZ".to_vec(),
        b"PING\r\n".to_vec(),
        b"\r\n".to_vec(),
        b"MSG a 1 99999999999\r\n".to_vec(),
        b"PUB a 5\r\nhel".to_vec(),
        vec![b'x'; 10_000],
    ]
}

/// The known-answer checks for one sample.
fn known_answer<S: Side>(wire: &[u8], used: usize, want: &S::Op<'_>) {
    assert_complete::<S>(wire, want, used, "known answer");
    assert_prefixes_partial::<S>(&wire[..used], "sample");

    let mut encoded = Vec::new();
    S::encode(want, &mut encoded);
    assert_complete::<S>(&encoded, want, encoded.len(), "re-parse of the encoding");
    assert_prefixes_partial::<S>(&encoded, "encoding");

    for tail in tails() {
        let longer = [&wire[..used], &tail].concat();
        assert_complete::<S>(&longer, want, used, "with bytes after it");
    }
}

/// Feeds `chunks` one after the other into a growing buffer, draining each op parsed.
fn feed<'c, S: Side>(chunks: impl IntoIterator<Item = &'c [u8]>) -> Vec<String> {
    let mut buf = Vec::new();
    let mut ops = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let step = match S::parse(&buf) {
                Ok(Status::Complete((op, used))) => Some((format!("{op:?}"), used)),
                Ok(Status::Partial) => None,
                Err(e) => panic!("{e} at {}", buf.escape_ascii()),
            };
            let Some((op, used)) = step else { break };
            ops.push(op);
            buf.drain(..used);
        }
    }
    assert!(buf.is_empty(), "left over: {}", buf.escape_ascii());
    ops
}

/// All samples back to back give the samples' ops, in one go, cut once at every offset,
/// and fed one byte at a time.
fn stream_of_samples<S: Side>(samples: &[(&[u8], S::Op<'static>)]) {
    let wire: Vec<u8> = samples
        .iter()
        .flat_map(|(w, _)| w.iter().copied())
        .collect();
    let want: Vec<String> = samples.iter().map(|(_, op)| format!("{op:?}")).collect();
    assert_eq!(feed::<S>([&wire[..]]), want, "one shot");
    for at in 0..=wire.len() {
        assert_eq!(feed::<S>([&wire[..at], &wire[at..]]), want, "cut at {at}");
    }
    assert_eq!(feed::<S>(wire.chunks(1)), want, "byte by byte");
}

/// `name: wire, bytes used => op` rows: one test each, plus `samples()` listing them all.
macro_rules! kat {
    ($side:ty; $($name:ident: $wire:expr, $used:expr => $op:expr;)+) => {
        $(#[test] fn $name() { known_answer::<$side>($wire, $used, &$op); })+
        pub(super) fn samples() -> Vec<(&'static [u8], <$side as Side>::Op<'static>)> {
            vec![$(($wire as &[u8], $op)),+]
        }
    };
}

const HDR: &[u8] = b"NATS/1.0\r\nA: 1\r\n\r\n";

mod server {
    use super::*;

    fn msg(
        subject: &'static [u8],
        reply: Option<&'static [u8]>,
        headers: Option<&'static [u8]>,
        payload: &'static [u8],
    ) -> ServerOp<'static> {
        ServerOp::Msg(MsgFrame {
            subject,
            sid: 1,
            reply,
            headers,
            payload,
        })
    }

    kat! { Server;
        info_with_trailing_space:
            b"INFO {\"server_id\":\"S\",\"max_payload\":1048576,\"headers\":true} \r\n", 62
            => ServerOp::Info(b"{\"server_id\":\"S\",\"max_payload\":1048576,\"headers\":true}");
        info_after_a_tab: b"INFO\t{\"proto\":1}\r\n", 18 => ServerOp::Info(b"{\"proto\":1}");
        msg_without_reply: b"MSG greet.joe 7 5\r\nhello\r\n", 26
            => ServerOp::Msg(MsgFrame { subject: b"greet.joe", sid: 7, reply: None, headers: None, payload: b"hello" });
        msg_with_reply: b"MSG greet.joe 7 _INBOX.1 5\r\nhello\r\n", 35
            => ServerOp::Msg(MsgFrame {
                subject: b"greet.joe", sid: 7, reply: Some(b"_INBOX.1"), headers: None, payload: b"hello",
            });
        msg_with_empty_payload: b"MSG a 1 0\r\n\r\n", 13 => msg(b"a", None, None, b"");
        msg_payload_of_crlfs: b"MSG a 1 4\r\n\r\n\r\n\r\n", 17 => msg(b"a", None, None, b"\r\n\r\n");
        msg_size_with_leading_zeros: b"MSG foo 1 0005\r\nhello\r\n", 23 => msg(b"foo", None, None, b"hello");
        msg_args_with_tabs_and_runs: b"MSG\tfoo \t 1\t\t5 \r\nhello\r\n", 24 => msg(b"foo", None, None, b"hello");
        msg_lower_case_with_bare_lf: b"msg foo 1 2\nhi\r\n", 16 => msg(b"foo", None, None, b"hi");
        msg_largest_sid: b"MSG a 18446744073709551615 0\r\n\r\n", 32
            => ServerOp::Msg(MsgFrame { subject: b"a", sid: u64::MAX, reply: None, headers: None, payload: b"" });
        hmsg_without_reply: b"HMSG foo 1 18 20\r\nNATS/1.0\r\nA: 1\r\n\r\nhi\r\n", 40
            => msg(b"foo", None, Some(HDR), b"hi");
        hmsg_with_reply: b"HMSG foo 1 _INBOX.1 18 20\r\nNATS/1.0\r\nA: 1\r\n\r\nhi\r\n", 49
            => msg(b"foo", Some(b"_INBOX.1"), Some(HDR), b"hi");
        hmsg_no_responders: b"HMSG _INBOX.x.1 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n", 43
            => msg(b"_INBOX.x.1", None, Some(b"NATS/1.0 503\r\n\r\n"), b"");
        hmsg_sizes_with_leading_zeros: b"HMSG foo 1 0018 0020\r\nNATS/1.0\r\nA: 1\r\n\r\nhi\r\n", 44
            => msg(b"foo", None, Some(HDR), b"hi");
        hmsg_args_with_tabs_and_runs: b"HMSG\tfoo  1\t18 \t20\r\nNATS/1.0\r\nA: 1\r\n\r\nhi\r\n", 42
            => msg(b"foo", None, Some(HDR), b"hi");
        ping: b"PING\r\n", 6 => ServerOp::Ping;
        pong: b"PONG\r\n", 6 => ServerOp::Pong;
        ok: b"+OK\r\n", 5 => ServerOp::Ok;
        ping_lower_case: b"ping\r\n", 6 => ServerOp::Ping;
        err_quoted: b"-ERR 'Stale Connection'\r\n", 25 => ServerOp::Err(b"Stale Connection");
        err_with_nested_double_quotes: b"-ERR 'Permissions Violation for Publish to \"x\"'\r\n", 49
            => ServerOp::Err(b"Permissions Violation for Publish to \"x\"");
        err_without_text: b"-ERR\r\n", 6 => ServerOp::Err(b"");
        err_with_empty_quotes: b"-ERR ''\r\n", 9 => ServerOp::Err(b"");
        err_without_quotes: b"-ERR noquotes\r\n", 15 => ServerOp::Err(b"noquotes");
        err_lower_case: b"-err 'x'\r\n", 10 => ServerOp::Err(b"x");
    }
}

mod client {
    use super::*;

    fn publ(
        reply: Option<&'static [u8]>,
        headers: Option<&'static [u8]>,
        payload: &'static [u8],
    ) -> ClientOp<'static> {
        ClientOp::Pub(Pub {
            subject: b"foo",
            reply,
            headers,
            payload,
        })
    }

    kat! { Client;
        connect: b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true}\r\n", 59
            => ClientOp::Connect(b"{\"verbose\":false,\"pedantic\":false,\"headers\":true}");
        connect_after_a_tab: b"CONNECT\t{}\r\n", 12 => ClientOp::Connect(b"{}");
        pub_without_reply: b"PUB foo 5\r\nhello\r\n", 18 => publ(None, None, b"hello");
        pub_with_reply: b"PUB foo _INBOX.1 5\r\nhello\r\n", 27 => publ(Some(b"_INBOX.1"), None, b"hello");
        pub_with_empty_payload: b"PUB foo 0\r\n\r\n", 13 => publ(None, None, b"");
        pub_size_with_leading_zeros: b"PUB foo 0005\r\nhello\r\n", 21 => publ(None, None, b"hello");
        pub_lower_case_with_tabs_and_runs: b"pub\tfoo   0005 \r\nhello\r\n", 24 => publ(None, None, b"hello");
        hpub_without_reply: b"HPUB foo 18 20\r\nNATS/1.0\r\nA: 1\r\n\r\nhi\r\n", 38 => publ(None, Some(HDR), b"hi");
        hpub_with_reply: b"HPUB foo _INBOX.1 18 20\r\nNATS/1.0\r\nA: 1\r\n\r\nhi\r\n", 47
            => publ(Some(b"_INBOX.1"), Some(HDR), b"hi");
        hpub_with_empty_headers: b"HPUB foo 0 2\r\nhi\r\n", 18 => publ(None, Some(b""), b"hi");
        sub_without_queue: b"SUB foo 1\r\n", 11 => ClientOp::Sub { subject: b"foo", queue: None, sid: b"1" };
        sub_with_queue: b"SUB foo workers 1\r\n", 19
            => ClientOp::Sub { subject: b"foo", queue: Some(b"workers"), sid: b"1" };
        sub_with_token_sid: b"SUB foo s-1\r\n", 13 => ClientOp::Sub { subject: b"foo", queue: None, sid: b"s-1" };
        sub_lower_case_with_tabs: b"sub\tfoo\tq\t1\r\n", 13
            => ClientOp::Sub { subject: b"foo", queue: Some(b"q"), sid: b"1" };
        unsub_without_max: b"UNSUB 1\r\n", 9 => ClientOp::Unsub { sid: b"1", max: None };
        unsub_with_max: b"UNSUB 1 10\r\n", 12 => ClientOp::Unsub { sid: b"1", max: Some(10) };
        unsub_max_with_leading_zeros: b"UNSUB 1 005\r\n", 13 => ClientOp::Unsub { sid: b"1", max: Some(5) };
        ping: b"PING\r\n", 6 => ClientOp::Ping;
        pong: b"PONG\r\n", 6 => ClientOp::Pong;
    }
}

#[test]
fn server_samples_back_to_back_parse_the_same_however_cut() {
    stream_of_samples::<Server>(&server::samples());
}

#[test]
fn client_samples_back_to_back_parse_the_same_however_cut() {
    stream_of_samples::<Client>(&client::samples());
}

/// `name: op => exact wire bytes` rows for the encoders.
macro_rules! encodes {
    ($($name:ident: $op:expr => $wire:expr;)+) => {
        $(#[test] fn $name() {
            let mut out = Vec::new();
            $op.encode(&mut out);
            assert_eq!(out.escape_ascii().to_string(), $wire.escape_ascii().to_string());
        })+
    };
}

encodes! {
    encode_pub_with_reply:
        ClientOp::Pub(Pub { subject: b"a", reply: Some(b"r"), headers: None, payload: b"hi" })
        => b"PUB a r 2\r\nhi\r\n";
    encode_pub_without_reply:
        ClientOp::Pub(Pub { subject: b"a", reply: None, headers: None, payload: b"hi" })
        => b"PUB a 2\r\nhi\r\n";
    encode_hpub_counts_header_bytes_and_total:
        ClientOp::Pub(Pub { subject: b"a", reply: Some(b"r"), headers: Some(HDR), payload: b"hi" })
        => b"HPUB a r 18 20\r\nNATS/1.0\r\nA: 1\r\n\r\nhi\r\n";
    encode_hpub_with_headers_only:
        ClientOp::Pub(Pub { subject: b"a", reply: None, headers: Some(b"NATS/1.0\r\n\r\n"), payload: b"" })
        => b"HPUB a 12 12\r\nNATS/1.0\r\n\r\n\r\n";
    encode_hpub_with_empty_headers:
        ClientOp::Pub(Pub { subject: b"a", reply: None, headers: Some(b""), payload: b"hi" })
        => b"HPUB a 0 2\r\nhi\r\n";
    encode_sub_without_queue: ClientOp::Sub { subject: b"a.>", queue: None, sid: b"1" } => b"SUB a.> 1\r\n";
    encode_sub_with_queue: ClientOp::Sub { subject: b"a", queue: Some(b"q"), sid: b"12" } => b"SUB a q 12\r\n";
    encode_unsub_without_max: ClientOp::Unsub { sid: b"1", max: None } => b"UNSUB 1\r\n";
    encode_unsub_with_max: ClientOp::Unsub { sid: b"1", max: Some(10) } => b"UNSUB 1 10\r\n";
    encode_connect: ClientOp::Connect(b"{\"verbose\":false}") => b"CONNECT {\"verbose\":false}\r\n";
    encode_client_ping: ClientOp::Ping => b"PING\r\n";
    encode_client_pong: ClientOp::Pong => b"PONG\r\n";
    encode_info: ServerOp::Info(b"{}") => b"INFO {}\r\n";
    encode_msg_with_reply:
        ServerOp::Msg(MsgFrame { subject: b"a", sid: 42, reply: Some(b"r"), headers: None, payload: b"hi" })
        => b"MSG a 42 r 2\r\nhi\r\n";
    encode_hmsg:
        ServerOp::Msg(MsgFrame { subject: b"a", sid: 1, reply: None, headers: Some(HDR), payload: b"hi" })
        => b"HMSG a 1 18 20\r\nNATS/1.0\r\nA: 1\r\n\r\nhi\r\n";
    encode_msg_largest_sid:
        ServerOp::Msg(MsgFrame { subject: b"a", sid: u64::MAX, reply: None, headers: None, payload: b"" })
        => b"MSG a 18446744073709551615 0\r\n\r\n";
    encode_server_ping: ServerOp::Ping => b"PING\r\n";
    encode_server_pong: ServerOp::Pong => b"PONG\r\n";
    encode_ok: ServerOp::Ok => b"+OK\r\n";
    encode_err_quotes_its_text: ServerOp::Err(b"Stale Connection") => b"-ERR 'Stale Connection'\r\n";
    encode_empty_err: ServerOp::Err(b"") => b"-ERR ''\r\n";
}

#[test]
fn encode_appends_to_what_is_already_there() {
    let mut out = b"PING\r\n".to_vec();
    ClientOp::Pong.encode(&mut out);
    ClientOp::Sub {
        subject: b"a",
        queue: None,
        sid: b"1",
    }
    .encode(&mut out);
    assert_eq!(out, b"PING\r\nPONG\r\nSUB a 1\r\n");
}

type Fields = &'static [(&'static [u8], &'static [u8])];

/// `name: status, fields => Ok(block) or Err(error)` rows for `encode_headers`, which
/// appends to a buffer that already holds `keep`, and appends nothing when it refuses.
macro_rules! encodes_headers {
    ($($name:ident: $status:expr, $fields:expr => $want:expr;)+) => {
        $(#[test] fn $name() {
            let fields: Fields = $fields;
            let mut out = b"keep".to_vec();
            let res = encode_headers($status, fields.iter().copied(), &mut out);
            let want: Result<&[u8], Error> = $want;
            match want {
                Ok(block) => {
                    assert_eq!(res, Ok(()));
                    assert_eq!(out.escape_ascii().to_string(), [b"keep", block].concat().escape_ascii().to_string());
                    assert!(HeaderBlock::parse(block).is_ok());
                }
                Err(e) => {
                    assert_eq!(res, Err(e));
                    assert_eq!(out, b"keep");
                }
            }
        })+
    };
}

encodes_headers! {
    headers_with_fields_only: None, &[(b"A", b"1"), (b"B", b"2")] => Ok(b"NATS/1.0\r\nA: 1\r\nB: 2\r\n\r\n");
    headers_empty: None, &[] => Ok(b"NATS/1.0\r\n\r\n");
    headers_status_only: Some((503, b"")), &[] => Ok(b"NATS/1.0 503\r\n\r\n");
    headers_status_with_description: Some((404, b"No Messages")), &[]
        => Ok(b"NATS/1.0 404 No Messages\r\n\r\n");
    headers_status_and_repeated_fields: Some((100, b"Idle Heartbeat")), &[(b"A", b"1"), (b"A", b"2")]
        => Ok(b"NATS/1.0 100 Idle Heartbeat\r\nA: 1\r\nA: 2\r\n\r\n");
    headers_refuse_a_name_with_a_space: None, &[(b"A", b"1"), (b"Bad Key", b"v")] => Err(Error::InvalidHeader);
    headers_refuse_an_empty_name: None, &[(b"", b"v")] => Err(Error::InvalidHeader);
    headers_refuse_a_name_with_a_colon: None, &[(b"A:B", b"v")] => Err(Error::InvalidHeader);
    headers_refuse_a_value_with_cr: None, &[(b"A", b"1\r")] => Err(Error::InvalidHeader);
    headers_refuse_a_value_with_lf: None, &[(b"A", b"1\nB: 2")] => Err(Error::InvalidHeader);
    headers_refuse_a_description_with_crlf: Some((503, b"x\r\nA: 1")), &[] => Err(Error::InvalidHeader);
    headers_refuse_a_two_digit_status: Some((99, b"")), &[] => Err(Error::InvalidHeader);
    headers_refuse_a_four_digit_status: Some((1000, b"")), &[] => Err(Error::InvalidHeader);
}
