//! Every edge case of §5 of the NATS protocol reference (rows 1–80), as what OUR parsers do
//! with those exact bytes.
//!
//! 5A (bytes a client sends, rows 1–44) goes through `parse_client_op`; 5B (bytes a server
//! sends, rows 45–80) through `parse_server_op`. Where nats-server or our client does more
//! than parse (auth, verbose, pools, timers), a comment says what, and the test pins the parse.
//! Test names start with the row number: `c12_…` is row 12.

use panini_proto::{
    parse_client_op, parse_server_op, subject, ClientOp, Error, HeaderBlock, Limits, MsgFrame, Pub,
    ServerOp, Status,
};

type Parsed<T> = Result<Status<(T, usize)>, Error>;

fn client(buf: &[u8]) -> Parsed<ClientOp<'_>> {
    parse_client_op(buf, &Limits::default())
}

fn server(buf: &[u8]) -> Parsed<ServerOp<'_>> {
    parse_server_op(buf, &Limits::default())
}

fn done<T>(op: T, used: usize) -> Parsed<T> {
    Ok(Status::Complete((op, used)))
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn publ<'a>(subject: &'a [u8], reply: Option<&'a [u8]>, payload: &'a [u8]) -> ClientOp<'a> {
    ClientOp::Pub(Pub {
        subject,
        reply,
        headers: None,
        payload,
    })
}

fn sub<'a>(subject: &'a [u8], queue: Option<&'a [u8]>, sid: &'a [u8]) -> ClientOp<'a> {
    ClientOp::Sub {
        subject,
        queue,
        sid,
    }
}

fn msg<'a>(
    subject: &'a [u8],
    sid: u64,
    reply: Option<&'a [u8]>,
    payload: &'a [u8],
) -> ServerOp<'a> {
    ServerOp::Msg(MsgFrame {
        subject,
        sid,
        reply,
        headers: None,
        payload,
    })
}

/// Parses a buffer holding whole ops only, one after the other.
fn all<'a, T: std::fmt::Debug>(
    mut buf: &'a [u8],
    parse: impl Fn(&'a [u8]) -> Parsed<T>,
) -> Result<Vec<T>, Error> {
    let mut ops = Vec::new();
    while !buf.is_empty() {
        match parse(buf)? {
            Status::Complete((op, used)) => {
                ops.push(op);
                buf = &buf[used..];
            }
            Status::Partial => panic!("ends inside an op: {}", buf.escape_ascii()),
        }
    }
    Ok(ops)
}

fn client_ops(buf: &[u8]) -> Result<Vec<ClientOp<'_>>, Error> {
    all(buf, client)
}

fn server_ops(buf: &[u8]) -> Result<Vec<ServerOp<'_>>, Error> {
    all(buf, server)
}

/// One parse step, with the op rendered so that the buffer can be drained afterwards.
type Step = fn(&[u8]) -> Result<Option<(String, usize)>, Error>;

fn client_step(buf: &[u8]) -> Result<Option<(String, usize)>, Error> {
    Ok(match client(buf)? {
        Status::Complete((op, used)) => Some((format!("{op:?}"), used)),
        Status::Partial => None,
    })
}

fn server_step(buf: &[u8]) -> Result<Option<(String, usize)>, Error> {
    Ok(match server(buf)? {
        Status::Complete((op, used)) => Some((format!("{op:?}"), used)),
        Status::Partial => None,
    })
}

/// Feeds `chunks` one after the other into a growing buffer, draining each op parsed.
fn feed<'c>(chunks: impl IntoIterator<Item = &'c [u8]>, step: Step) -> Vec<String> {
    let mut buf = Vec::new();
    let mut ops = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some((op, used)) = step(&buf).unwrap_or_else(|e| panic!("{e}")) {
            ops.push(op);
            buf.drain(..used);
        }
    }
    assert!(buf.is_empty(), "left over: {}", buf.escape_ascii());
    ops
}

/// Frames `headers` + `payload` in an HMSG followed by a PING, checks the framing is intact
/// (the message, then the PING), and returns what `HeaderBlock::parse` makes of the block.
fn frame_hmsg<'h>(headers: &'h [u8], payload: &[u8]) -> Result<HeaderBlock<'h>, Error> {
    let head = format!(
        "HMSG s 1 {} {}\r\n",
        headers.len(),
        headers.len() + payload.len()
    );
    let wire = cat(&[head.as_bytes(), headers, payload, b"\r\nPING\r\n"]);
    let ops = server_ops(&wire).unwrap_or_else(|e| panic!("framing broke: {e}"));
    let [ServerOp::Msg(m), ServerOp::Ping] = ops.as_slice() else {
        panic!("not HMSG then PING: {ops:?}");
    };
    assert_eq!(m.headers, Some(headers));
    assert_eq!(m.payload, payload);
    let block = HeaderBlock::parse(headers);
    assert_eq!(m.header_block(), Some(block));
    block
}

/// `name: wire => expected` rows, each its own test, through the given parser.
macro_rules! cases {
    ($parse:ident: $($name:ident: $wire:expr => $want:expr;)+) => {
        $(#[test] fn $name() { assert_eq!($parse($wire), $want); })+
    };
}

// ---------------------------------------------------------------------------------------
// 5A. Bytes a client sends (parse_client_op).
// ---------------------------------------------------------------------------------------

cases! { client:
    c01_lower_case_ping_is_accepted: b"ping\r\n" => done(ClientOp::Ping, 6);
    c01_lower_case_sub_is_accepted: b"sub foo 1\r\n" => done(sub(b"foo", None, b"1"), 11);
    c01_mixed_case_pub_is_accepted: b"PuB foo 2\r\nhi\r\n" => done(publ(b"foo", None, b"hi"), 15);
    c01_mixed_case_sub_is_accepted: b"SuB foo 1\r\n" => done(sub(b"foo", None, b"1"), 11);
    c01_mixed_case_ping_is_accepted: b"PiNg\r\n" => done(ClientOp::Ping, 6);
    c01_lower_case_connect_is_accepted: b"connect {}\r\n" => done(ClientOp::Connect(b"{}"), 12);
    c02_bare_lf_ends_a_line: b"PING\n" => done(ClientOp::Ping, 5);
    c02_bare_lf_ends_a_pub_control_line: b"PUB foo 2\nhi\r\n" => done(publ(b"foo", None, b"hi"), 14);
    c03_ping_tail_is_ignored: b"PINGxyz\r\n" => done(ClientOp::Ping, 9);
    c03_ping_with_args_is_one_ping: b"PING foo\r\n" => done(ClientOp::Ping, 10);
    c03_pingping_is_one_ping: b"PINGPING\r\n" => done(ClientOp::Ping, 10);
    c03_cr_inside_a_ping_line_is_tail: b"PING\rPING\r\n" => done(ClientOp::Ping, 11);
    c03_pong_tail_is_ignored: b"PONG it is\r\n" => done(ClientOp::Pong, 12);
    c04_leading_space_is_unknown_op: b" PING\r\n" => Err(Error::UnknownOp);
    c04_leading_tab_is_unknown_op: b"\tPING\r\n" => Err(Error::UnknownOp);
    c05_empty_line_is_unknown_op: b"\r\n" => Err(Error::UnknownOp);
    c05_empty_bare_lf_line_is_unknown_op: b"\n" => Err(Error::UnknownOp);
    c06_tabs_separate_pub_args: b"PUB\tfoo\t5\r\nhello\r\n" => done(publ(b"foo", None, b"hello"), 18);
    c06_tabs_separate_sub_args: b"SUB\tfoo\tq\t1\r\n" => done(sub(b"foo", Some(b"q"), b"1"), 13);
    c06_tab_separates_connect_json: b"CONNECT\t{\"verbose\":false}\r\n"
        => done(ClientOp::Connect(b"{\"verbose\":false}"), 27);
    c07_runs_of_spaces_and_a_trailing_space_are_accepted: b"PUB   foo    5  \r\nhello\r\n"
        => done(publ(b"foo", None, b"hello"), 25);
    c07_mixed_spaces_and_tabs_are_accepted: b"PUB \t foo\t \t5\t\r\nhello\r\n"
        => done(publ(b"foo", None, b"hello"), 23);
    c08_size_with_leading_zeros_is_accepted: b"PUB foo 0005\r\nhello\r\n"
        => done(publ(b"foo", None, b"hello"), 21);
    c08_nine_digit_size_with_leading_zeros_is_accepted: b"PUB foo 000000005\r\nhello\r\n"
        => done(publ(b"foo", None, b"hello"), 26);
    // nats-server: close! (parseSize caps sizes at 9 digits).
    c09_ten_digit_size_is_invalid_number: b"PUB foo 0000000005\r\nhello\r\n"
        => Err(Error::InvalidNumber);
    c09_sixty_four_digit_size_is_invalid_number:
        b"PUB foo 0000000000000000000000000000000000000000000000000000000000000005\r\n"
        => Err(Error::InvalidNumber);
    // nats-server: close! for each.
    c10_negative_size_is_invalid_number: b"PUB foo -1\r\n" => Err(Error::InvalidNumber);
    c10_plus_signed_size_is_invalid_number: b"PUB foo +5\r\nhello\r\n" => Err(Error::InvalidNumber);
    c10_hex_size_is_invalid_number: b"PUB foo 0x5\r\nhello\r\n" => Err(Error::InvalidNumber);
    // nats-server: close!.
    c11_missing_size_is_invalid_args: b"PUB foo\r\n" => Err(Error::InvalidArgs);
    c11_four_pub_args_are_invalid_args: b"PUB foo r x 5\r\nhello\r\n" => Err(Error::InvalidArgs);
    // nats-server: Unknown Protocol Operation, close.
    c14_payload_longer_than_declared_is_missing_crlf: b"PUB foo 3\r\nhello\r\n"
        => Err(Error::MissingCrlf);
    c15_op_glued_to_the_payload_is_missing_crlf: b"PUB foo 5\r\nhelloPING\r\n"
        => Err(Error::MissingCrlf);
    c15_bare_lf_after_the_payload_is_missing_crlf: b"PUB foo 5\r\nhello\n" => Err(Error::MissingCrlf);
    c15_cr_then_a_wrong_byte_is_missing_crlf: b"PUB foo 5\r\nhello\rX" => Err(Error::MissingCrlf);
    c15_payload_with_only_cr_so_far_waits: b"PUB foo 5\r\nhello\r" => Ok(Status::Partial);
    c16_payload_with_crlf_and_op_text_is_taken_verbatim: b"PUB foo 12\r\na\r\nPUB x 1\r\n\r\n"
        => done(publ(b"foo", None, b"a\r\nPUB x 1\r\n"), 26);
    c17_zero_length_payload_is_accepted: b"PUB foo 0\r\n\r\n" => done(publ(b"foo", None, b""), 13);
    // nats-server: Unknown Protocol Operation, close.
    c19_unknown_op_is_unknown_op: b"FOO bar\r\n" => Err(Error::UnknownOp);
    c19_client_sending_msg_is_unknown_op: b"MSG foo 1 2\r\nhi\r\n" => Err(Error::UnknownOp);
    c19_client_sending_hmsg_is_unknown_op: b"HMSG foo 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
        => Err(Error::UnknownOp);
    // nats-server: close!.
    c20_sub_without_sid_is_invalid_args: b"SUB foo\r\n" => Err(Error::InvalidArgs);
    c20_sub_with_four_args_is_invalid_args: b"SUB foo q 1 2\r\n" => Err(Error::InvalidArgs);
    c20_unsub_with_three_args_is_invalid_args: b"UNSUB 1 2 3\r\n" => Err(Error::InvalidArgs);
    // nats-server: Unknown Protocol Operation, close (the op needs a separator).
    c21_unsub_without_space_is_unknown_op: b"UNSUB\r\n" => Err(Error::UnknownOp);
    c21_sub_without_space_is_unknown_op: b"SUB\r\n" => Err(Error::UnknownOp);
    c21_pub_without_space_is_unknown_op: b"PUB\r\n" => Err(Error::UnknownOp);
    c21_hpub_without_space_is_unknown_op: b"HPUB\r\n" => Err(Error::UnknownOp);
    c21_op_name_glued_to_its_args_is_unknown_op: b"SUBfoo 1\r\n" => Err(Error::UnknownOp);
    // nats-server: the first silently OK, the second auto-unsubscribes after 1 message.
    c26_unsub_of_an_unknown_sid_parses: b"UNSUB 99\r\n"
        => done(ClientOp::Unsub { sid: b"99", max: None }, 10);
    c26_unsub_with_max_parses: b"UNSUB 1 1\r\n" => done(ClientOp::Unsub { sid: b"1", max: Some(1) }, 11);
    c26_unsub_max_with_leading_zeros_parses: b"UNSUB 1 000000007\r\n"
        => done(ClientOp::Unsub { sid: b"1", max: Some(7) }, 19);
    c26_unsub_max_of_ten_digits_is_invalid_number: b"UNSUB 1 1000000000\r\n"
        => Err(Error::InvalidNumber);
    c26_unsub_negative_max_is_invalid_number: b"UNSUB 1 -1\r\n" => Err(Error::InvalidNumber);
    // nats-server: accepted and echoed verbatim in MSG.
    c28_sid_token_is_kept_verbatim: b"SUB foo s-1\r\n" => done(sub(b"foo", None, b"s-1"), 13);
    c28_twenty_three_digit_sid_is_kept_verbatim: b"SUB foo 12345678901234567890123\r\n"
        => done(sub(b"foo", None, b"12345678901234567890123"), 33);
    c28_unsub_sid_token_is_kept_verbatim: b"UNSUB s-1\r\n"
        => done(ClientOp::Unsub { sid: b"s-1", max: None }, 11);
    // nats-server: close!.
    c29_hpub_header_size_over_total_is_invalid_args: b"HPUB foo 30 22\r\n" => Err(Error::InvalidArgs);
    c29_hpub_without_total_is_invalid_args: b"HPUB foo 22\r\n" => Err(Error::InvalidArgs);
    c29_hpub_with_five_args_is_invalid_args: b"HPUB foo r x 0 2\r\nhi\r\n" => Err(Error::InvalidArgs);
    // nats-server delivers it as a plain MSG; we keep the (empty) headers as framed.
    c30_hpub_with_zero_header_bytes_has_empty_headers: b"HPUB foo 0 2\r\nhi\r\n"
        => done(ClientOp::Pub(Pub { subject: b"foo", reply: None, headers: Some(b""), payload: b"hi" }), 18);
    // nats-server: close!.
    c34_connect_with_unterminated_json_is_invalid_args: b"CONNECT {bad\r\n" => Err(Error::InvalidArgs);
    c34_connect_without_json_is_invalid_args: b"CONNECT \r\n" => Err(Error::InvalidArgs);
    c34_connect_with_a_json_array_is_invalid_args: b"CONNECT []\r\n" => Err(Error::InvalidArgs);
    // nats-server: verbose and pedantic default to on, so +OK follows every op.
    c35_connect_with_an_empty_object_parses: b"CONNECT {}\r\n" => done(ClientOp::Connect(b"{}"), 12);
    // nats-server: -ERR 'invalid client protocol', close; the JSON is the framework's to read.
    c36_connect_with_protocol_two_parses: b"CONNECT {\"protocol\":2}\r\n"
        => done(ClientOp::Connect(b"{\"protocol\":2}"), 24);
    // nats-server: -ERR 'no responders requires headers support', close.
    c36_connect_with_no_responders_without_headers_parses: b"CONNECT {\"no_responders\":true}\r\n"
        => done(ClientOp::Connect(b"{\"no_responders\":true}"), 32);
    // nats-server without auth: PONG; CONNECT is not required.
    c37_ping_without_connect_parses: b"PING\r\n" => done(ClientOp::Ping, 6);
    // nats-server closes on a client's -ERR; we refuse it as not a client op.
    c40_client_sending_err_is_unknown_op: b"-ERR 'boom'\r\n" => Err(Error::UnknownOp);
    // DEVIATION: nats-server ignores a client's +OK; to us it is not a client op.
    c40_client_sending_ok_is_unknown_op: b"+OK\r\n" => Err(Error::UnknownOp);
    // DEVIATION: nats-server ignores a client's `INFO {}`; to us it is not a client op.
    c40_client_sending_info_is_unknown_op: b"INFO {}\r\n" => Err(Error::UnknownOp);
    // nats-server closes on `INFO {bad`.
    c40_client_sending_bad_info_is_unknown_op: b"INFO {bad\r\n" => Err(Error::UnknownOp);
}

#[test]
fn c09_ten_digit_hpub_sizes_are_invalid_number() {
    assert_eq!(
        client(b"HPUB foo 0000000012 14\r\n"),
        Err(Error::InvalidNumber)
    );
    assert_eq!(
        client(b"HPUB foo 12 0000000014\r\n"),
        Err(Error::InvalidNumber)
    );
}

#[test]
fn c12_size_over_max_payload_is_refused_before_payload() {
    // nats-server: -ERR 'Maximum Payload Violation', close, before reading the payload.
    let small = Limits {
        max_payload: 1024,
        ..Limits::default()
    };
    let refused = parse_client_op(b"PUB foo 1025\r\n", &small);
    assert_eq!(refused, Err(Error::PayloadTooLarge));
    assert_eq!(
        parse_client_op(b"PUB foo 1024\r\n", &small),
        Ok(Status::Partial)
    );
    // The total of an HPUB counts its headers.
    let hpub = parse_client_op(b"HPUB foo 12 1025\r\n", &small);
    assert_eq!(hpub, Err(Error::PayloadTooLarge));
    assert_eq!(
        client(b"PUB foo 999999999\r\n"),
        Err(Error::PayloadTooLarge)
    );
}

#[test]
fn c13_payload_arriving_in_two_writes_is_reassembled() {
    let wire = b"PUB foo 5\r\nhello\r\n";
    assert_eq!(client(&wire[..13]), Ok(Status::Partial));
    assert_eq!(client(wire), done(publ(b"foo", None, b"hello"), 18));
    let ops = feed([&wire[..13], &wire[13..]], client_step);
    assert_eq!(ops, [format!("{:?}", publ(b"foo", None, b"hello"))]);
}

#[test]
fn c18_sub_hpub_ping_fed_one_byte_at_a_time_parse_the_same() {
    let wire = b"SUB foo 1\r\nHPUB foo 18 20\r\nNATS/1.0\r\nA: 1\r\n\r\nhi\r\nPING\r\n";
    let one_shot: Vec<String> = client_ops(wire)
        .map(|ops| ops.iter().map(|op| format!("{op:?}")).collect())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(one_shot.len(), 3);
    assert_eq!(feed(wire.chunks(1), client_step), one_shot);
}

#[test]
fn c22_malformed_sub_subjects_parse_and_fail_validation() {
    // nats-server: -ERR 'Invalid Subject', the connection stays. Framing does not judge.
    for bad in [&b"foo."[..], b"foo..bar", b"foo.>.bar", b".foo"] {
        let wire = cat(&[b"SUB ", bad, b" 1\r\n"]);
        assert_eq!(client(&wire), done(sub(bad, None, b"1"), wire.len()));
        assert_eq!(subject::validate_subscribe(bad), Err(Error::InvalidSubject));
    }
}

#[test]
fn c23_wildcard_glued_to_a_token_is_a_valid_literal() {
    assert_eq!(
        client(b"SUB foo> 1\r\n"),
        done(sub(b"foo>", None, b"1"), 12)
    );
    assert_eq!(subject::validate_subscribe(b"foo>"), Ok(()));
    assert_eq!(subject::validate_publish(b"foo>"), Ok(()));
}

#[test]
fn c24_publish_to_a_wildcard_parses_but_fails_pedantic_validation() {
    // nats-server: delivered literally without pedantic; -ERR 'Invalid Publish Subject' with it.
    let wire = b"PUB foo.* 2\r\nhi\r\n";
    assert_eq!(client(wire), done(publ(b"foo.*", None, b"hi"), 17));
    assert_eq!(
        subject::validate_publish(b"foo.*"),
        Err(Error::InvalidSubject)
    );
    assert_eq!(subject::validate_subscribe(b"foo.*"), Ok(()));
}

#[test]
fn c25_duplicate_sid_parses_as_two_subs() {
    // nats-server ignores the second SUB; sids are connection state, not framing.
    let ops = client_ops(b"SUB foo 1\r\nSUB bar 1\r\n");
    let want = vec![sub(b"foo", None, b"1"), sub(b"bar", None, b"1")];
    assert_eq!(ops, Ok(want));
}

#[test]
fn c27_non_utf8_and_nul_subjects_parse_as_raw_bytes() {
    // nats-server accepts and delivers both.
    assert_eq!(
        client(b"PUB bal.\xff 2\r\nhi\r\n"),
        done(publ(b"bal.\xff", None, b"hi"), 17)
    );
    assert_eq!(
        client(b"PUB a.\x00 2\r\nhi\r\n"),
        done(publ(b"a.\x00", None, b"hi"), 15)
    );
    assert_eq!(subject::validate_publish(b"bal.\xff"), Ok(()));
}

#[test]
fn c31_hpub_blocks_are_framed_opaquely_and_judged_apart() {
    // nats-server forwards all three unchanged as HMSG; HeaderBlock is where they are judged.
    // (block, status or error)
    type Row = (&'static [u8], Result<Option<u16>, Error>);
    let blocks: [Row; 3] = [
        (b"GARBAGE\r\n\r\n", Err(Error::InvalidHeader)),
        (b"NATS/1.0\r\nA: 1\r\n 2\r\n\r\n", Err(Error::InvalidHeader)),
        (b"NATS/1.0 503 No Responders\r\n\r\n", Ok(Some(503))),
    ];
    for (block, verdict) in blocks {
        let head = format!("HPUB foo {} {}\r\n", block.len(), block.len() + 2);
        let wire = cat(&[head.as_bytes(), block, b"hi\r\n"]);
        let want = ClientOp::Pub(Pub {
            subject: b"foo",
            reply: None,
            headers: Some(block),
            payload: b"hi",
        });
        assert_eq!(client(&wire), done(want, wire.len()));
        assert_eq!(HeaderBlock::parse(block).map(|b| b.status()), verdict);
    }
}

#[test]
fn c32_hpub_parses_whatever_connect_said() {
    // nats-server closes! when CONNECT lacked headers:true; that is connection state.
    let ops = client_ops(b"CONNECT {\"headers\":false}\r\nHPUB foo 0 2\r\nhi\r\n");
    let hpub = ClientOp::Pub(Pub {
        subject: b"foo",
        reply: None,
        headers: Some(b""),
        payload: b"hi",
    });
    assert_eq!(
        ops,
        Ok(vec![ClientOp::Connect(b"{\"headers\":false}"), hpub])
    );
}

#[test]
fn c33_control_line_over_4096_is_too_long_and_4000_is_fine() {
    // nats-server: -ERR 'maximum control line exceeded', close.
    let long = cat(&[b"PUB ", &[b'a'; 5000], b" 0\r\n\r\n"]);
    assert_eq!(client(&long), Err(Error::ControlLineTooLong));
    let fine = cat(&[b"PUB ", &[b'a'; 4000], b" 0\r\n\r\n"]);
    assert!(matches!(client(&fine), Ok(Status::Complete((_, n))) if n == fine.len()));
    // As nats-server counts it, the limit covers the arguments after `PUB `: subject + ` 0`
    // of 4096 bytes passes, 4097 does not.
    let line = |args: usize| cat(&[b"PUB ", &vec![b'a'; args - 2], b" 0\r\n\r\n"]);
    let at_limit = line(4096);
    assert!(matches!(client(&at_limit), Ok(Status::Complete((_, n))) if n == at_limit.len()));
    assert_eq!(client(&line(4097)), Err(Error::ControlLineTooLong));
    let long_sub = cat(&[b"SUB ", &[b'a'; 5000], b" 1\r\n"]);
    assert_eq!(client(&long_sub), Err(Error::ControlLineTooLong));
}

#[test]
fn c38_ops_refused_by_auth_still_parse() {
    // With auth on, nats-server answers a first op other than CONNECT, or bad credentials,
    // with -ERR 'Authorization Violation' and closes; both are valid ops to the parser.
    assert_eq!(client(b"SUB foo 1\r\n"), done(sub(b"foo", None, b"1"), 11));
    let bad = b"CONNECT {\"user\":\"u\",\"pass\":\"wrong\"}\r\n";
    assert_eq!(
        client(bad),
        done(
            ClientOp::Connect(b"{\"user\":\"u\",\"pass\":\"wrong\"}"),
            37
        )
    );
    assert_eq!(
        server(b"-ERR 'Authorization Violation'\r\n"),
        done(ServerOp::Err(b"Authorization Violation"), 32)
    );
}

#[test]
fn c39_silence_is_partial_and_the_timeout_error_parses() {
    // nats-server's auth timer sends -ERR 'Authentication Timeout'; no bytes is just Partial.
    assert_eq!(client(b""), Ok(Status::Partial));
    assert_eq!(
        server(b"-ERR 'Authentication Timeout'\r\n"),
        done(ServerOp::Err(b"Authentication Timeout"), 31)
    );
}

#[test]
fn c41_unanswered_pings_end_in_a_stale_connection_error() {
    // The client never sends PONG; nats-server sends ping_max PINGs, then the -ERR, and closes.
    let ops = server_ops(b"PING\r\nPING\r\n-ERR 'Stale Connection'\r\n");
    let want = vec![
        ServerOp::Ping,
        ServerOp::Ping,
        ServerOp::Err(b"Stale Connection"),
    ];
    assert_eq!(ops, Ok(want));
}

#[test]
fn c42_slow_consumer_close_leaves_only_a_partial_op() {
    // nats-server closes a slow consumer without -ERR: the stream just stops, maybe mid-MSG.
    assert_eq!(client(b"SUB foo 1\r\n"), done(sub(b"foo", None, b"1"), 11));
    assert_eq!(server(b"MSG foo 1 5\r\nhel"), Ok(Status::Partial));
}

#[test]
fn c43_permission_violation_leaves_the_stream_intact() {
    // nats-server answers the PUB with -ERR and keeps the connection.
    assert_eq!(
        client(b"PUB no.x 2\r\nhi\r\n"),
        done(publ(b"no.x", None, b"hi"), 16)
    );
    let wire = b"-ERR 'Permissions Violation for Publish to \"no.x\"'\r\nPONG\r\n";
    let want = vec![
        ServerOp::Err(b"Permissions Violation for Publish to \"no.x\""),
        ServerOp::Pong,
    ];
    assert_eq!(server_ops(wire), Ok(want));
}

#[test]
fn c44_a_second_connect_parses() {
    // nats-server accepts it (re-auth), with +OK if verbose.
    let ops = client_ops(b"CONNECT {}\r\nPING\r\nCONNECT {\"verbose\":false}\r\n");
    let want = vec![
        ClientOp::Connect(b"{}"),
        ClientOp::Ping,
        ClientOp::Connect(b"{\"verbose\":false}"),
    ];
    assert_eq!(ops, Ok(want));
}

#[test]
fn c35_verbose_ok_replies_parse() {
    // The server's side of #35: one +OK per op.
    assert_eq!(
        server_ops(b"+OK\r\n+OK\r\n"),
        Ok(vec![ServerOp::Ok, ServerOp::Ok])
    );
}

// ---------------------------------------------------------------------------------------
// 5B. Bytes a server sends (parse_server_op).
// ---------------------------------------------------------------------------------------

cases! { server:
    c45_info_trailing_space_is_trimmed: b"INFO {\"server_id\":\"S\"} \r\n"
        => done(ServerOp::Info(b"{\"server_id\":\"S\"}"), 25);
    // Invalid JSON is the client's to ignore and log (#48).
    c48_info_with_invalid_json_is_kept_raw: b"INFO {bad\r\n" => done(ServerOp::Info(b"{bad"), 11);
    c48_info_with_text_is_kept_raw: b"INFO not json at all\r\n"
        => done(ServerOp::Info(b"not json at all"), 22);
    c48_info_without_a_body_is_invalid_args: b"INFO \r\n" => Err(Error::InvalidArgs);
    c48_bare_info_is_invalid_args: b"INFO\r\n" => Err(Error::InvalidArgs);
    c49_info_without_a_separator_is_accepted: b"INFO{}\r\n" => done(ServerOp::Info(b"{}"), 8);
    c49_info_with_a_tab_is_accepted: b"INFO\t{}\r\n" => done(ServerOp::Info(b"{}"), 9);
    c50_lower_case_msg_is_accepted: b"msg foo 1 2\r\nhi\r\n" => done(msg(b"foo", 1, None, b"hi"), 17);
    c50_lower_case_ping_is_accepted: b"ping\r\n" => done(ServerOp::Ping, 6);
    c50_lower_case_pong_is_accepted: b"pong\r\n" => done(ServerOp::Pong, 6);
    c50_lower_case_info_is_accepted: b"info {}\r\n" => done(ServerOp::Info(b"{}"), 9);
    c50_lower_case_ok_is_accepted: b"+ok\r\n" => done(ServerOp::Ok, 5);
    c50_lower_case_err_is_accepted: b"-err 'x'\r\n" => done(ServerOp::Err(b"x"), 10);
    c51_tabs_in_msg_args_are_accepted: b"MSG\tfoo\t1\t2\r\nhi\r\n" => done(msg(b"foo", 1, None, b"hi"), 17);
    c51_double_spaces_in_msg_args_are_accepted: b"MSG  foo  1  r  2  \r\nhi\r\n"
        => done(msg(b"foo", 1, Some(b"r"), b"hi"), 25);
    c52_msg_with_three_args_has_no_reply: b"MSG s 1 5\r\nhello\r\n" => done(msg(b"s", 1, None, b"hello"), 18);
    c52_msg_with_four_args_has_a_reply: b"MSG s 1 r 5\r\nhello\r\n"
        => done(msg(b"s", 1, Some(b"r"), b"hello"), 20);
    c52_msg_with_two_args_is_invalid_args: b"MSG s 5\r\nhello\r\n" => Err(Error::InvalidArgs);
    c52_msg_with_five_args_is_invalid_args: b"MSG s 1 r x 5\r\nhello\r\n" => Err(Error::InvalidArgs);
    c52_hmsg_with_three_args_is_invalid_args: b"HMSG s 1 12\r\n" => Err(Error::InvalidArgs);
    c52_hmsg_with_six_args_is_invalid_args: b"HMSG s 1 r x 12 14\r\n" => Err(Error::InvalidArgs);
    c52_msg_without_args_is_unknown_op: b"MSG\r\n" => Err(Error::UnknownOp);
    c53_msg_size_with_leading_zeros_is_accepted: b"MSG foo 1 0005\r\nhello\r\n"
        => done(msg(b"foo", 1, None, b"hello"), 23);
    c54_twenty_digit_size_is_invalid_number: b"MSG s 1 18446744073709551616\r\n" => Err(Error::InvalidNumber);
    c54_ten_digit_size_is_invalid_number: b"MSG s 1 1000000000\r\n" => Err(Error::InvalidNumber);
    c54_twenty_digit_header_size_is_invalid_number: b"HMSG s 1 18446744073709551616 2\r\n"
        => Err(Error::InvalidNumber);
    c55_negative_size_is_invalid_number: b"MSG s 1 -5\r\n" => Err(Error::InvalidNumber);
    c55_plus_signed_size_is_invalid_number: b"MSG s 1 +5\r\nhello\r\n" => Err(Error::InvalidNumber);
    c55_hex_size_is_invalid_number: b"MSG s 1 0x5\r\nhello\r\n" => Err(Error::InvalidNumber);
    // A size token cannot be empty; leaving it out is a missing argument.
    c55_missing_size_is_invalid_args: b"MSG s 1 \r\n" => Err(Error::InvalidArgs);
    c55_reply_where_the_size_should_be_is_invalid_number: b"MSG s 1 r \r\n" => Err(Error::InvalidNumber);
    c56_non_numeric_sid_is_invalid_number: b"MSG s x 2\r\nhi\r\n" => Err(Error::InvalidNumber);
    c56_negative_sid_is_invalid_number: b"MSG s -1 2\r\nhi\r\n" => Err(Error::InvalidNumber);
    c56_sid_over_u64_is_invalid_number: b"MSG s 18446744073709551616 2\r\nhi\r\n" => Err(Error::InvalidNumber);
    c56_sid_of_21_digits_is_invalid_number: b"MSG s 000000000000000000001 2\r\nhi\r\n"
        => Err(Error::InvalidNumber);
    c56_empty_sid_is_a_missing_arg: b"MSG s  2\r\nhi\r\n" => Err(Error::InvalidArgs);
    c56_largest_u64_sid_is_accepted: b"MSG s 18446744073709551615 2\r\nhi\r\n"
        => done(msg(b"s", u64::MAX, None, b"hi"), 34);
    c56_twenty_digit_sid_with_leading_zeros_is_accepted: b"MSG s 00000000000000000001 2\r\nhi\r\n"
        => done(msg(b"s", 1, None, b"hi"), 34);
    c58_payload_with_an_embedded_msg_is_never_scanned: b"MSG a 1 17\r\n\r\nMSG foo 1 2\r\nhi\r\n"
        => done(msg(b"a", 1, None, b"\r\nMSG foo 1 2\r\nhi"), 31);
    c59_bytes_after_payload_not_crlf_is_missing_crlf: b"MSG s 1 5\r\nhelloXY" => Err(Error::MissingCrlf);
    c59_first_wrong_byte_is_enough: b"MSG s 1 5\r\nhelloX" => Err(Error::MissingCrlf);
    c59_cr_then_wrong_byte_is_missing_crlf: b"MSG s 1 5\r\nhello\rX" => Err(Error::MissingCrlf);
    c59_bare_lf_after_payload_is_missing_crlf: b"MSG s 1 5\r\nhello\nPING\r\n" => Err(Error::MissingCrlf);
    c62_hmsg_header_size_over_total_is_invalid_args: b"HMSG s 1 30 22\r\n" => Err(Error::InvalidArgs);
    c70_non_utf8_subject_is_kept_raw: b"MSG bal.\xff 1 2\r\nhi\r\n" => done(msg(b"bal.\xff", 1, None, b"hi"), 19);
    c70_non_utf8_and_nul_reply_is_kept_raw: b"MSG a.\x00 1 r.\xfe 2\r\nhi\r\n"
        => done(msg(b"a.\x00", 1, Some(b"r.\xfe"), b"hi"), 21);
    c71_nested_double_quotes_survive_and_one_outer_pair_goes:
        b"-ERR 'Permissions Violation for Publish to \"x\"'\r\n"
        => done(ServerOp::Err(b"Permissions Violation for Publish to \"x\""), 49);
    c71_only_one_outer_pair_of_single_quotes_goes: b"-ERR ''x''\r\n" => done(ServerOp::Err(b"'x'"), 12);
    c72_err_without_text_is_empty: b"-ERR\r\n" => done(ServerOp::Err(b""), 6);
    c72_err_with_empty_quotes_is_empty: b"-ERR ''\r\n" => done(ServerOp::Err(b""), 9);
    c72_err_without_quotes_keeps_the_text: b"-ERR noquotes\r\n" => done(ServerOp::Err(b"noquotes"), 15);
    c72_err_with_one_quote_keeps_it: b"-ERR '\r\n" => done(ServerOp::Err(b"'"), 8);
    c72_err_text_is_trimmed: b"-ERR \t 'x' \t\r\n" => done(ServerOp::Err(b"x"), 14);
    c74_unknown_op_is_unknown_op: b"FOO\r\n" => Err(Error::UnknownOp);
    c74_unknown_op_with_args_is_unknown_op: b"FOO bar\r\n" => Err(Error::UnknownOp);
    c74_server_sending_pub_is_unknown_op: b"PUB foo 2\r\nhi\r\n" => Err(Error::UnknownOp);
    c74_server_sending_sub_is_unknown_op: b"SUB foo 1\r\n" => Err(Error::UnknownOp);
    c74_server_sending_connect_is_unknown_op: b"CONNECT {}\r\n" => Err(Error::UnknownOp);
    c74_leading_space_is_unknown_op: b" PING\r\n" => Err(Error::UnknownOp);
    c74_empty_line_is_unknown_op: b"\r\n" => Err(Error::UnknownOp);
    // The client drops it (after an UNSUB race or an auto-unsub); the parser just reports it.
    c77_msg_for_an_unknown_sid_parses: b"MSG foo 99 2\r\nhi\r\n" => done(msg(b"foo", 99, None, b"hi"), 18);
}

#[test]
fn c46_async_info_between_msgs_is_byte_exact() {
    // The client updates its pool from connect_urls and reacts to ldm; the parser keeps bytes.
    let urls = b"{\"connect_urls\":[\"127.0.0.1:24230\",\"127.0.0.1:24231\"]}";
    let ldm = b"{\"connect_urls\":[\"127.0.0.1:24231\"],\"ldm\":true}";
    let wire = cat(&[
        b"MSG a 1 2\r\nhi\r\nINFO ",
        urls,
        b" \r\nMSG a 1 2\r\nho\r\nINFO ",
        ldm,
        b" \r\n",
    ]);
    let want = vec![
        msg(b"a", 1, None, b"hi"),
        ServerOp::Info(urls),
        msg(b"a", 1, None, b"ho"),
        ServerOp::Info(ldm),
    ];
    assert_eq!(server_ops(&wire), Ok(want));
}

/// `INFO {"connect_urls":["10.0.0.1:4222",…]} \r\n` with a line of at least `len` bytes.
fn big_info(len: usize) -> (Vec<u8>, Vec<u8>) {
    let mut body = b"{\"connect_urls\":[\"10.0.0.1:4222\"".to_vec();
    while body.len() + 8 < len {
        body.extend_from_slice(b",\"10.0.0.1:4222\"");
    }
    body.extend_from_slice(b"]}");
    let wire = cat(&[b"INFO ", &body, b" \r\n"]);
    (wire, body)
}

#[test]
fn c47_info_over_4k_and_over_64k_parses() {
    for len in [4 * 1024 + 1, 64 * 1024 + 1] {
        let (wire, body) = big_info(len);
        assert!(wire.len() > len);
        assert_eq!(server(&wire), done(ServerOp::Info(&body), wire.len()));
        // The control-line limit does not apply to INFO ...
        assert_eq!(server(&wire[..wire.len() - 1]), Ok(Status::Partial));
    }
    // ... but it does to every other op.
    let long_msg = cat(&[b"MSG ", &[b'a'; 5000], b" 1 0\r\n\r\n"]);
    assert_eq!(server(&long_msg), Err(Error::ControlLineTooLong));
}

#[test]
fn c47_info_over_max_info_line_is_too_long() {
    let max = Limits::default().max_info_line;
    // A line (without CRLF) of exactly max bytes passes; one more does not.
    let line = |len: usize| cat(&[b"INFO {\"", &vec![b'x'; len - 11], b"\":1}\r\n"]);
    let at_limit = line(max);
    assert!(matches!(server(&at_limit), Ok(Status::Complete((_, n))) if n == at_limit.len()));
    assert_eq!(server(&line(max + 1)), Err(Error::ControlLineTooLong));
    // Without a line end, the error comes once max + 2 bytes are buffered.
    let endless = cat(&[b"INFO {\"", &vec![b'x'; max]]);
    assert_eq!(server(&endless[..max + 2]), Err(Error::ControlLineTooLong));
    assert_eq!(server(&endless[..max]), Ok(Status::Partial));
    // The cap is Limits::max_info_line.
    let small = Limits {
        max_info_line: 100,
        ..Limits::default()
    };
    assert_eq!(
        parse_server_op(&line(101), &small),
        Err(Error::ControlLineTooLong)
    );
    assert!(matches!(
        parse_server_op(&line(100), &small),
        Ok(Status::Complete(_))
    ));
}

#[test]
fn c50_lower_case_hmsg_is_accepted() {
    let wire = b"hmsg foo 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n";
    let want = ServerOp::Msg(MsgFrame {
        subject: b"foo",
        sid: 1,
        reply: None,
        headers: Some(b"NATS/1.0\r\n\r\n"),
        payload: b"hi",
    });
    assert_eq!(server(wire), done(want, 34));
}

#[test]
fn c51_tabs_and_double_spaces_in_hmsg_args_are_accepted() {
    let wire = b"HMSG\tfoo  1\t r \t12  14 \r\nNATS/1.0\r\n\r\nhi\r\n";
    let want = ServerOp::Msg(MsgFrame {
        subject: b"foo",
        sid: 1,
        reply: Some(b"r"),
        headers: Some(b"NATS/1.0\r\n\r\n"),
        payload: b"hi",
    });
    assert_eq!(server(wire), done(want, wire.len()));
}

#[test]
fn c52_hmsg_arg_count_decides_the_reply() {
    let without = server(b"HMSG s 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n");
    let with = server(b"HMSG s 1 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n");
    let hmsg = |reply| {
        ServerOp::Msg(MsgFrame {
            subject: b"s",
            sid: 1,
            reply,
            headers: Some(b"NATS/1.0\r\n\r\n"),
            payload: b"hi",
        })
    };
    assert_eq!(without, done(hmsg(None), 32));
    assert_eq!(with, done(hmsg(Some(b"r")), 34));
}

#[test]
fn c53_hmsg_sizes_with_leading_zeros_are_accepted() {
    // The server echoes the publisher's size bytes verbatim (#8).
    let wire = b"HMSG foo 1 0012 0014\r\nNATS/1.0\r\n\r\nhi\r\n";
    let want = ServerOp::Msg(MsgFrame {
        subject: b"foo",
        sid: 1,
        reply: None,
        headers: Some(b"NATS/1.0\r\n\r\n"),
        payload: b"hi",
    });
    assert_eq!(server(wire), done(want, 38));
}

#[test]
fn c57_msg_split_at_every_offset_parses_the_same() {
    let wire: &[u8] =
        b"MSG foo 1 r 5\r\nhello\r\nHMSG foo 2 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n";
    let one_shot = feed([wire], server_step);
    assert_eq!(one_shot.len(), 3);
    let first_op_len = 22;
    for at in 0..=wire.len() {
        if at < first_op_len {
            // Every strict prefix of the first op, including between `\r` and `\n`, waits.
            assert_eq!(server(&wire[..at]), Ok(Status::Partial), "prefix {at}");
        }
        let split = feed([&wire[..at], &wire[at..]], server_step);
        assert_eq!(split, one_shot, "split at {at}");
    }
    assert_eq!(feed(wire.chunks(1), server_step), one_shot);
}

#[test]
fn c59_payload_and_crlf_still_coming_wait() {
    assert_eq!(server(b"MSG s 1 5\r\nhello"), Ok(Status::Partial));
    assert_eq!(server(b"MSG s 1 5\r\nhello\r"), Ok(Status::Partial));
}

#[test]
fn c60_eof_inside_an_op_is_partial() {
    // The client drops the partial bytes and reconnects; the parser only says "need more".
    for cut in [
        &b""[..],
        b"INFO {\"a\"",
        b"MS",
        b"MSG foo 1 5",
        b"MSG foo 1 5\r",
        b"MSG foo 1 5\r\nhe",
        b"HMSG foo 1 12 14\r\nNATS/1.0\r\n",
        b"-ERR 'Stale Conn",
        b"PIN",
    ] {
        assert_eq!(server(cut), Ok(Status::Partial), "{}", cut.escape_ascii());
    }
}

#[test]
fn c61_a_line_without_end_is_capped() {
    // MSG and friends: 4096 bytes + 64 of slack (op name, the sid the server adds), plus
    // room for the CRLF.
    let endless = cat(&[b"MSG ", &[b'a'; 5000]]);
    assert_eq!(server(&endless[..4160 + 2]), Err(Error::ControlLineTooLong));
    assert_eq!(server(&endless), Err(Error::ControlLineTooLong));
    let mut cr_last = endless[..4160].to_vec();
    cr_last.push(b'\r');
    assert_eq!(server(&cr_last), Ok(Status::Partial));
    // A line of exactly 4160 bytes plus CRLF is fine.
    let at_limit = cat(&[b"MSG ", &[b'a'; 4152], b" 1 0\r\n\r\n"]);
    assert!(matches!(server(&at_limit), Ok(Status::Complete((_, n))) if n == at_limit.len()));
}

#[test]
fn c61_a_message_the_server_accepted_always_parses() {
    // `PUB <4094 a> 1` is the longest publish the server takes (4096 bytes of arguments); it
    // comes back as `MSG <4094 a> <sid> 1`, longer than 4096, and must not break the
    // connection.
    let msg = cat(&[b"MSG ", &[b'a'; 4094], b" 18446744073709551615 1\r\nx\r\n"]);
    assert!(matches!(server(&msg), Ok(Status::Complete((_, n))) if n == msg.len()));
}

#[test]
fn c63_short_or_foreign_header_block_spoils_only_its_message() {
    // hdr < 10, or not starting with NATS/1.0: framed, refused by HeaderBlock, next op parses.
    for block in [
        &b"NAT\r\n\r\n"[..],
        b"",
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"nats/1.0\r\n\r\n",
    ] {
        let verdict = frame_hmsg(block, b"hi").map(|b| b.status());
        assert_eq!(
            verdict,
            Err(Error::InvalidHeader),
            "{}",
            block.escape_ascii()
        );
    }
}

#[test]
fn c64_unterminated_or_cut_header_block_spoils_only_its_message() {
    let cases: [(&[u8], &[u8]); 5] = [
        (b"NATS/1.0\r\nA: 1\r\n", b"hi"),     // no blank line
        (b"NATS/1.0\r\nA: ", b"1\r\n\r\nhi"), // hdr length cuts mid-line
        (b"NATS/1.0\n\n", b"hi"),             // bare LFs
        (b"NATS/1.0\r\n\r\n\r\n", b"hi"),     // a second blank line
        (b"NATS/1.0\r\n\r\nextra", b"hi"),    // bytes after the blank line
    ];
    for (block, payload) in cases {
        let verdict = frame_hmsg(block, payload).map(|b| b.status());
        assert_eq!(
            verdict,
            Err(Error::InvalidHeader),
            "{}",
            block.escape_ascii()
        );
    }
}

#[test]
fn c65_status_codes_with_and_without_description() {
    // (block, status, description)
    type Row = (&'static [u8], Option<u16>, Option<&'static [u8]>);
    let cases: [Row; 5] = [
        (b"NATS/1.0 503\r\n\r\n", Some(503), None),
        (
            b"NATS/1.0 404 No Messages\r\n\r\n",
            Some(404),
            Some(b"No Messages"),
        ),
        (
            b"NATS/1.0 408 Request Timeout\r\n\r\n",
            Some(408),
            Some(b"Request Timeout"),
        ),
        (
            b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 5\r\n\r\n",
            Some(100),
            Some(b"Idle Heartbeat"),
        ),
        (b"NATS/1.0\r\nA: 1\r\n\r\n", None, None),
    ];
    for (block, status, description) in cases {
        let parsed = frame_hmsg(block, b"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.status(), status);
        assert_eq!(parsed.description(), description);
    }
    let heartbeat =
        HeaderBlock::parse(b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 5\r\n\r\n");
    assert_eq!(
        heartbeat.map(|b| b.get(b"Nats-Last-Consumer")),
        Ok(Some(&b"5"[..]))
    );
}

#[test]
fn c66_odd_status_codes_spoil_only_their_message() {
    for block in [
        &b"NATS/1.0 5\r\n\r\n"[..],
        b"NATS/1.0 abc\r\n\r\n",
        b"NATS/1.0 5030\r\n\r\n",
        b"NATS/1.0 50\r\n\r\n",
        b"NATS/1.0503\r\n\r\n",
        b"NATS/1.0 -03\r\n\r\n",
    ] {
        let verdict = frame_hmsg(block, b"").map(|b| b.status());
        assert_eq!(
            verdict,
            Err(Error::InvalidHeader),
            "{}",
            block.escape_ascii()
        );
    }
}

#[test]
fn c67_bad_field_lines_spoil_only_their_message() {
    for block in [
        &b"NATS/1.0\r\nNoColon\r\n\r\n"[..],
        b"NATS/1.0\r\n: v\r\n\r\n",
        b"NATS/1.0\r\nBad Key: v\r\n\r\n",
        b"NATS/1.0\r\nBad\x01Key: v\r\n\r\n",
        b"NATS/1.0\r\nKey\xff: v\r\n\r\n",
    ] {
        let verdict = frame_hmsg(block, b"hi").map(|b| b.status());
        assert_eq!(
            verdict,
            Err(Error::InvalidHeader),
            "{}",
            block.escape_ascii()
        );
    }
}

#[test]
fn c68_folded_header_lines_are_refused() {
    for block in [
        &b"NATS/1.0\r\nA: 1\r\n 2\r\n\r\n"[..],
        b"NATS/1.0\r\nA: 1\r\n\t2\r\n\r\n",
    ] {
        let verdict = frame_hmsg(block, b"hi").map(|b| b.status());
        assert_eq!(
            verdict,
            Err(Error::InvalidHeader),
            "{}",
            block.escape_ascii()
        );
    }
}

#[test]
fn c69_repeated_names_keep_order_and_case() {
    let block = frame_hmsg(b"NATS/1.0\r\nA: 1\r\nA:2\r\na: 3\r\n\r\n", b"hi")
        .unwrap_or_else(|e| panic!("{e}"));
    let fields: Vec<_> = block.iter().collect();
    let want: [(&[u8], &[u8]); 3] = [(b"A", b"1"), (b"A", b"2"), (b"a", b"3")];
    assert_eq!(fields, want);
    let values: Vec<_> = block.get_all(b"A").collect();
    assert_eq!(values, [&b"1"[..], &b"2"[..]]);
    assert_eq!(block.get(b"a"), Some(&b"3"[..]));
}

#[test]
fn c73_err_in_place_of_the_handshake_pong_parses() {
    // The client treats it as an auth or config error and does not retry endlessly on auth.
    let ops = server_ops(b"INFO {\"auth_required\":true} \r\n-ERR 'Authorization Violation'\r\n");
    let want = vec![
        ServerOp::Info(b"{\"auth_required\":true}"),
        ServerOp::Err(b"Authorization Violation"),
    ];
    assert_eq!(ops, Ok(want));
}

#[test]
fn c75_ping_before_connect_mid_stream_and_unsolicited_pong_parse() {
    // The client answers every PING with PONG and ignores a PONG nobody asked for.
    let ops = server_ops(b"INFO {} \r\nPING\r\nMSG a 1 2\r\nhi\r\nPING\r\nPONG\r\n");
    let want = vec![
        ServerOp::Info(b"{}"),
        ServerOp::Ping,
        msg(b"a", 1, None, b"hi"),
        ServerOp::Ping,
        ServerOp::Pong,
    ];
    assert_eq!(ops, Ok(want));
}

#[test]
fn c76_unsolicited_ok_parses_and_its_tail_is_ignored() {
    // The client ignores it.
    let ops = server_ops(b"+OK\r\nMSG a 1 2\r\nhi\r\n+OK whatever\r\n");
    let want = vec![ServerOp::Ok, msg(b"a", 1, None, b"hi"), ServerOp::Ok];
    assert_eq!(ops, Ok(want));
}

/// The one message in `wire`.
fn only_msg(wire: &[u8]) -> MsgFrame<'_> {
    match server(wire) {
        Ok(Status::Complete((ServerOp::Msg(m), used))) if used == wire.len() => m,
        other => panic!("not one message: {other:?}"),
    }
}

#[test]
fn c78_no_responders_in_both_server_forms() {
    // v2.9.10: a bare 503 status line.
    let old = only_msg(b"HMSG _INBOX.x.1 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n");
    assert!(old.is_no_responders());
    // v2.12+: a Nats-Subject header, hdr = 32 + len(subject).
    let new =
        only_msg(b"HMSG _INBOX.x.1 1 39 39\r\nNATS/1.0 503\r\nNats-Subject: svc.add\r\n\r\n\r\n");
    assert_eq!(new.headers.map(<[u8]>::len), Some(32 + b"svc.add".len()));
    assert!(new.is_no_responders());
    let block = new.header_block().and_then(Result::ok);
    assert_eq!(
        block.and_then(|b| b.get(b"Nats-Subject")),
        Some(&b"svc.add"[..])
    );
    // A description does not change it.
    let described = only_msg(b"HMSG r 1 30 30\r\nNATS/1.0 503 No Responders\r\n\r\n\r\n");
    assert!(described.is_no_responders());
}

#[test]
fn c79_forged_503_with_a_payload_is_not_no_responders() {
    let forged = only_msg(b"HMSG _INBOX.x.1 1 16 18\r\nNATS/1.0 503\r\n\r\nhi\r\n");
    assert_eq!(
        forged.header_block().map(|b| b.map(|b| b.status())),
        Some(Ok(Some(503)))
    );
    assert!(!forged.is_no_responders());
    // Nor is an empty message with another status, a bad block, or no headers at all.
    assert!(!only_msg(b"HMSG r 1 16 16\r\nNATS/1.0 404\r\n\r\n\r\n").is_no_responders());
    assert!(!only_msg(b"HMSG r 1 17 17\r\nNATS/1.0 5030\r\n\r\n\r\n").is_no_responders());
    assert!(!only_msg(b"MSG r 1 0\r\n\r\n").is_no_responders());
}

#[test]
fn c80_connect_urls_without_scheme_ipv6_and_duplicates_are_byte_exact() {
    // Adding a scheme, normalising and dedup are the client's (later); the body stays raw.
    let body = b"{\"connect_urls\":[\"host:4222\",\"[::1]:4222\",\"host:4222\"]}";
    let wire = cat(&[b"INFO ", body, b" \r\n"]);
    assert_eq!(server(&wire), done(ServerOp::Info(body), wire.len()));
}
