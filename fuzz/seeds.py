#!/usr/bin/env python3
"""Writes the hand-made seeds: one file per input of the edge-case tables (section 5 of
the protocol reference). Rows 1-44 (what a client sends) go to parse_client_op; rows
45-80 (what a server sends) go to parse_server_op and, behind a cut list, to parse_split.
client_op_roundtrip gets one hand-encoded value of each op, and seeded random bytes.

Run from anywhere: python3 fuzz/seeds.py
"""

import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def msg(subject, sid, payload, reply=None):
    args = [subject, sid] + ([reply] if reply else []) + [str(len(payload)).encode()]
    return b"MSG " + b" ".join(args) + b"\r\n" + payload + b"\r\n"


def hmsg(subject, sid, headers, payload, reply=None):
    sizes = [str(len(headers)).encode(), str(len(headers) + len(payload)).encode()]
    args = [subject, sid] + ([reply] if reply else []) + sizes
    return b"HMSG " + b" ".join(args) + b"\r\n" + headers + payload + b"\r\n"


def pub(subject, payload, reply=None):
    args = [subject] + ([reply] if reply else []) + [str(len(payload)).encode()]
    return b"PUB " + b" ".join(args) + b"\r\n" + payload + b"\r\n"


def hpub(subject, headers, payload, reply=None):
    sizes = [str(len(headers)).encode(), str(len(headers) + len(payload)).encode()]
    args = [subject] + ([reply] if reply else []) + sizes
    return b"HPUB " + b" ".join(args) + b"\r\n" + headers + payload + b"\r\n"


# Section 5A: bytes a client sends (row number, name, inputs).
CLIENT = [
    (1, "mixed-case", [b"ping\r\n", b"sub foo 1\r\n", b"PuB foo 2\r\nhi\r\n"]),
    (2, "lf-only", [b"PING\n"]),
    (3, "ping-tail", [b"PINGxyz\r\n", b"PING foo\r\n", b"PINGPING\r\n", b"PING\rPING\r\n"]),
    (4, "leading-space", [b" PING\r\n"]),
    (5, "empty-line", [b"\r\n"]),
    (6, "tabs", [b"PUB\tfoo\t5\r\nhello\r\n", b"SUB\tfoo\tq\t1\r\n",
                 b'CONNECT\t{"verbose":false}\r\n']),
    (7, "runs-of-spaces", [b"PUB   foo    5  \r\nhello\r\n"]),
    (8, "leading-zeros", [b"PUB foo 0005\r\nhello\r\n", b"PUB foo 000000005\r\nhello\r\n"]),
    (9, "ten-digit-size", [b"PUB foo 0000000005\r\nhello\r\n",
                           b"PUB foo " + b"1" * 64 + b"\r\nhello\r\n"]),
    (10, "signed-hex-size", [b"PUB foo -1\r\n", b"PUB foo +5\r\nhello\r\n",
                             b"PUB foo 0x5\r\nhello\r\n"]),
    (11, "arg-count", [b"PUB foo\r\n", b"PUB foo bar baz 5\r\nhello\r\n"]),
    (12, "over-max-payload", [b"PUB foo 1025\r\n", b"PUB foo 999999999\r\n"]),
    (13, "short-payload", [b"PUB foo 5\r\nhel"]),
    (14, "long-payload", [b"PUB foo 3\r\nhello\r\n"]),
    (15, "no-crlf-after-payload", [b"PUB foo 5\r\nhelloPING\r\n", b"PUB foo 5\r\nhello\n"]),
    (16, "crlf-in-payload", [pub(b"foo", b"a\r\nPUB x 1\r\nb\r\n")]),
    (17, "empty-payload", [b"PUB foo 0\r\n\r\n"]),
    (18, "stream", [b"SUB foo 1\r\n" + hpub(b"foo", b"NATS/1.0\r\n\r\n", b"hi") + b"PING\r\n"]),
    (19, "unknown-op", [b"FOO bar\r\n", msg(b"foo", b"1", b"hi")]),
    (20, "sub-unsub-args", [b"SUB foo\r\n", b"SUB foo q 1 2\r\n", b"UNSUB 1 2 3\r\n"]),
    (21, "unsub-no-space", [b"UNSUB\r\n"]),
    (22, "bad-subjects", [b"SUB foo. 1\r\n", b"SUB foo..bar 1\r\n", b"SUB foo.>.bar 1\r\n"]),
    (23, "glued-wildcard", [b"SUB foo> 1\r\n"]),
    (24, "wildcard-publish", [pub(b"foo.*", b"hi")]),
    (25, "duplicate-sid", [b"SUB foo 1\r\nSUB bar 1\r\n"]),
    (26, "unsub", [b"UNSUB 99\r\n", b"UNSUB 1 1\r\n"]),
    (27, "non-utf8-subject", [pub(b"bal.\xff", b"hi"), pub(b"a.\x00", b"hi")]),
    (28, "token-sids", [b"SUB foo s-1\r\n", b"SUB foo 12345678901234567890123\r\n"]),
    (29, "hpub-sizes", [b"HPUB foo 30 22\r\n", b"HPUB foo 22\r\n"]),
    (30, "hpub-zero-header", [b"HPUB foo 0 2\r\nhi\r\n"]),
    (31, "opaque-headers", [hpub(b"foo", b"GARBAGE\r\n\r\n", b"hi"),
                            hpub(b"foo", b"NATS/1.0\r\nA: 1\r\n  2\r\n\r\n", b"hi"),
                            hpub(b"foo", b"NATS/1.0 503 No Responders\r\n\r\n", b"")]),
    (32, "hpub-without-headers", [b'CONNECT {"headers":false}\r\n'
                                  + hpub(b"foo", b"NATS/1.0\r\n\r\n", b"")]),
    (33, "long-control-line", [pub(b"x" * 5000, b""), pub(b"x" * 4000, b""),
                               pub(b"x" * 250, b""), pub(b"x" * 251, b"")]),
    (34, "bad-connect", [b"CONNECT {bad\r\n", b"CONNECT \r\n"]),
    (35, "empty-connect", [b"CONNECT {}\r\n"]),
    (36, "refused-connect", [b'CONNECT {"protocol":2}\r\n', b'CONNECT {"no_responders":true}\r\n']),
    (37, "ping-without-connect", [b"PING\r\n"]),
    (38, "auth", [b'CONNECT {"user":"a","pass":"wrong"}\r\n', b'CONNECT {"auth_token":"t"}\r\n']),
    (39, "silence", [b""]),
    (40, "server-ops-from-client", [b"-ERR 'boom'\r\n", b"+OK\r\n", b"INFO {}\r\n", b"INFO {bad\r\n"]),
    (41, "pong", [b"PONG\r\n"]),
    (42, "big-publish", [pub(b"foo", b"x" * 1024)]),
    (43, "denied-publish", [pub(b"no.x", b"")]),
    (44, "second-connect", [b'CONNECT {"verbose":false}\r\nCONNECT {"verbose":true}\r\n']),
]

# Section 5B: bytes a server sends.
NO_RESPONDERS = hmsg(b"_INBOX.x.1", b"1", b"NATS/1.0 503\r\n\r\n", b"")
SERVER = [
    (45, "info-trailing-space", [b'INFO {"server_id":"x","max_payload":1048576} \r\n']),
    (46, "async-info", [msg(b"a", b"1", b"hi")
                        + b'INFO {"connect_urls":["127.0.0.1:4223"],"ldm":true} \r\n'
                        + msg(b"a", b"1", b"hi")]),
    (47, "huge-info", [b'INFO {"connect_urls":[' + b'"10.0.0.1:4222",' * 300 + b'"x"]} \r\n',
                       b'INFO {"connect_urls":[' + b'"10.0.0.1:4222",' * 50 + b'"x"]} \r\n']),
    (48, "info-bad-json", [b"INFO {bad \r\n"]),
    (49, "info-separator", [b"INFO{}\r\n", b"INFO\t{}\r\n"]),
    (50, "lower-case", [msg(b"a", b"1", b"hi").replace(b"MSG", b"msg"), b"ping\r\n", b"info {}\r\n"]),
    (51, "tabs-and-spaces", [b"MSG\ta\t1\t2\r\nhi\r\n", b"MSG  a  1   2 \r\nhi\r\n"]),
    (52, "arg-counts", [msg(b"s", b"1", b"hello"), msg(b"s", b"1", b"hello", b"r"),
                        hmsg(b"s", b"1", b"NATS/1.0\r\n\r\n", b"hello"),
                        hmsg(b"s", b"1", b"NATS/1.0\r\n\r\n", b"hello", b"r"),
                        b"MSG s 5\r\n", b"MSG s 1 r x 5\r\n", b"HMSG s 1 r x 12 17\r\n"]),
    (53, "echoed-zeros", [b"MSG foo 1 0005\r\nhello\r\n"]),
    (54, "huge-size", [b"MSG foo 1 18446744073709551616\r\n", b"MSG foo 1 " + b"9" * 25 + b"\r\n"]),
    (55, "bad-size", [b"MSG foo 1 -1\r\n", b"MSG foo 1 +5\r\nhello\r\n", b"MSG foo 1 0x5\r\n",
                      b"HMSG foo 1 -1 2\r\n"]),
    (56, "bad-sid", [b"MSG foo x 2\r\nhi\r\n", b"MSG foo 99999999999999999999 2\r\nhi\r\n",
                     b"MSG foo 18446744073709551615 2\r\nhi\r\n"]),
    (57, "split-stream", [msg(b"foo", b"1", b"hello") + b"PING\r\n" + NO_RESPONDERS]),
    (58, "op-in-payload", [msg(b"foo", b"1", b"\r\nMSG foo 1 2\r\n")]),
    (59, "bad-payload-end", [b"MSG foo 1 5\r\nhelloXY", b"MSG foo 1 5\r\nhello\n\r"]),
    (60, "eof-mid-op", [b"MSG foo 1 5\r\nhel", b"MSG foo 1", b"MSG foo 1 5\r"]),
    (61, "endless-line", [b"MSG " + b"a" * 5000]),
    (62, "header-over-total", [b"HMSG foo 1 30 22\r\n"]),
    (63, "short-or-foreign-block", [hmsg(b"foo", b"1", b"\r\n", b"hi"),
                                    hmsg(b"foo", b"1", b"GARBAGE\r\n\r\n", b"hi")]),
    (64, "unterminated-block", [hmsg(b"foo", b"1", b"NATS/1.0\r\n", b"hi"),
                                b"HMSG foo 1 15 20\r\nNATS/1.0\r\nA: 1\r\n\r\n\r\n"]),
    (65, "status-lines", [hmsg(b"i", b"1", b"NATS/1.0 503\r\n\r\n", b""),
                          hmsg(b"i", b"1", b"NATS/1.0 404 No Messages\r\n\r\n", b""),
                          hmsg(b"i", b"1", b"NATS/1.0 408 Request Timeout\r\n\r\n", b""),
                          hmsg(b"i", b"1", b"NATS/1.0 100 Idle Heartbeat\r\n\r\n", b"")]),
    (66, "odd-status", [hmsg(b"i", b"1", b"NATS/1.0 5\r\n\r\n", b""),
                        hmsg(b"i", b"1", b"NATS/1.0 abc\r\n\r\n", b""),
                        hmsg(b"i", b"1", b"NATS/1.0 5030\r\n\r\n", b"")]),
    (67, "bad-fields", [hmsg(b"i", b"1", b"NATS/1.0\r\nnocolon\r\n\r\n", b""),
                        hmsg(b"i", b"1", b"NATS/1.0\r\n: v\r\n\r\n", b""),
                        hmsg(b"i", b"1", b"NATS/1.0\r\nA B: v\r\n\r\n", b"")]),
    (68, "folded-field", [hmsg(b"i", b"1", b"NATS/1.0\r\nA: 1\r\n  2\r\n\r\n", b"x")]),
    (69, "repeated-keys", [hmsg(b"i", b"1", b"NATS/1.0\r\nA: 1\r\nA: 2\r\na: 3\r\n\r\n", b"x")]),
    (70, "non-utf8-subject", [msg(b"bal.\xff", b"1", b"hi"), msg(b"a", b"1", b"hi", b"r.\xfe")]),
    (71, "nested-quotes", [b"-ERR 'Permissions Violation for Publish to \"x\"'\r\n"]),
    (72, "odd-err", [b"-ERR\r\n", b"-ERR ''\r\n", b"-ERR noquotes\r\n", b"-ERR '\r\n"]),
    (73, "err-for-pong", [b"-ERR 'Authorization Violation'\r\n"]),
    (74, "unknown-op", [b"FOO\r\n"]),
    (75, "ping-pong", [b"PING\r\n", b"PONG\r\n"]),
    (76, "ok", [b"+OK\r\n"]),
    (77, "unknown-sid", [msg(b"foo", b"99", b"hi")]),
    (78, "no-responders", [NO_RESPONDERS,
                           hmsg(b"_INBOX.x.1", b"1",
                                b"NATS/1.0 503\r\nNats-Subject: nobody\r\n\r\n", b"")]),
    (79, "forged-503", [hmsg(b"_INBOX.x.1", b"1", b"NATS/1.0 503\r\n\r\n", b"oops")]),
    (80, "connect-urls", [b'INFO {"connect_urls":["127.0.0.1:4222","[::1]:4222",'
                          b'"127.0.0.1:4222"]} \r\n']),
]

# Cut lists for the parse_split seeds: none, every byte, and a few odd places.
CUTS = [[], list(range(64)), [1, 2, 3, 9, 10, 11, 12], [13, 14, 200, 4000]]


def split_seed(cuts, data):
    """`(Vec<u16>, &[u8])` as `arbitrary` reads it: each cut is 1 then u16 LE; 0 ends the list."""
    head = b"".join(b"\x01" + struct.pack("<H", c) for c in cuts)
    return head + b"\x00" + data


# `(ArbClientOp, ArbHeaders)` as `arbitrary` 1.x reads it: a collection element follows a
# byte with its low bit set (a clear one ends the collection); an option is a 0/1 byte then
# the value; integers are little-endian; an enum is a u32 scaled onto its variants.
def arb_vec(items):
    return b"".join(b"\x01" + i for i in items) + b"\x00"


def arb_bytes(b):
    return arb_vec([bytes([x]) for x in b])


def arb_opt(v):
    return b"\x00" if v is None else b"\x01" + v


def arb_variant(k, count=6):
    return struct.pack("<I", ((2 * k + 1) << 32) // (2 * count))


def arb_headers(status, fields):
    st = None if status is None else struct.pack("<H", status[0]) + arb_bytes(status[1])
    return arb_opt(st) + arb_vec([arb_bytes(n) + arb_bytes(v) for n, v in fields])


HEADERS = arb_headers((503, b" No Responders"), [(b"Nats-Subject", b" svc.add "), (b"A", b"1"), (b"a", b"")])
ROUNDTRIP = [
    ("connect", arb_variant(0) + arb_bytes(b'{"verbose":false,"headers":true}')),
    ("hpub", arb_variant(1) + arb_bytes(b"svc.add") + arb_opt(arb_bytes(b"_INBOX.x.1"))
     + arb_opt(HEADERS) + arb_bytes(b"hello")),
    ("pub", arb_variant(1) + arb_bytes(b"greet") + arb_opt(None) + arb_opt(None) + arb_bytes(b"")),
    ("sub-queue", arb_variant(2) + arb_bytes(b"svc.>") + arb_opt(arb_bytes(b"workers")) + arb_bytes(b"17")),
    ("unsub-max", arb_variant(3) + arb_bytes(b"17") + arb_opt(struct.pack("<I", 999_999_999))),
    ("ping", arb_variant(4)),
    ("pong", arb_variant(5) + arb_headers((100, b"Idle Heartbeat"), [])),
]


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    for row, name, inputs in CLIENT:
        for i, data in enumerate(inputs):
            write("parse_client_op", f"5a-{row:02}-{name}-{i}", data)
    for row, name, inputs in SERVER:
        for i, data in enumerate(inputs):
            write("parse_server_op", f"5b-{row:02}-{name}-{i}", data)
            cuts = CUTS[(row + i) % len(CUTS)]
            write("parse_split", f"5b-{row:02}-{name}-{i}", split_seed(cuts, data))
    # client_op_roundtrip reads `(ArbClientOp, ArbHeaders)`: any bytes make one.
    rng = random.Random(4222)
    for i, size in enumerate([8, 16, 32, 64, 128, 256, 512, 1024]):
        write("client_op_roundtrip", f"seed-random-{i}", rng.randbytes(size))
    for name, data in ROUNDTRIP:
        write("client_op_roundtrip", f"seed-{name}", data + HEADERS)


if __name__ == "__main__":
    main()
