#!/usr/bin/env python3
"""Captures what a real nats-server sends and writes it as seeds named `nats-*`.

Each session connects, sends some client bytes, and records every byte the server sends
(INFO included). The server's bytes go to parse_server_op and, behind a cut list, to
parse_split; the client's bytes go to parse_client_op. Every server started is killed.

Run: python3 fuzz/capture.py  (needs nats-server on PATH or $NATS_SERVER; 2.9.10 used)
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seeds import hpub, split_seed, write  # noqa: E402

SERVER = os.environ.get("NATS_SERVER") or shutil.which("nats-server") or "/usr/sbin/nats-server"
HELLO = b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,"protocol":1}\r\n'


class Server:
    """nats-server on 127.0.0.1 and a port the OS picks; killed on exit."""

    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="panini-capture-")
        self.proc = subprocess.Popen(
            [SERVER, "-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", self.dir, *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ports = os.path.join(self.dir, f"nats-server_{self.proc.pid}.ports")
        for _ in range(100):
            if os.path.exists(ports) and os.path.getsize(ports) > 0:
                break
            time.sleep(0.05)
        url = json.load(open(ports))["nats"][0]
        host, port = url.rsplit("/", 1)[1].rsplit(":", 1)
        self.addr = (host, int(port))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def session(addr, sent, until=b"PONG\r\n", timeout=3.0):
    """Sends `sent` after INFO; returns all the server sent once `until` came, EOF, or timeout."""
    s = socket.create_connection(addr)
    s.settimeout(0.2)
    got = b""
    while b"\r\n" not in got:
        got += s.recv(65536)
    s.sendall(sent)
    end = time.monotonic() + timeout
    while time.monotonic() < end and not (until and until in got):
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    s.close()
    return got


# (name, client bytes, what ends the capture)
SESSIONS = [
    ("info", b"", None),
    ("msg", HELLO + b"SUB foo 1\r\nPUB foo 5\r\nhello\r\nPUB foo r.1 0005\r\nhello\r\nPING\r\n", b"PONG\r\n"),
    ("hmsg", HELLO + b"SUB foo 1\r\n" + hpub(b"foo", b"NATS/1.0\r\nA: 1\r\nA: 2\r\nb:3\r\n\r\n", b"hi")
     + b"PING\r\n", b"PONG\r\n"),
    ("hmsg-status", HELLO + b"SUB foo 1\r\n" + hpub(b"foo", b"NATS/1.0 404 No Messages\r\n\r\n", b"hello", b"r")
     + b"PING\r\n", b"PONG\r\n"),
    ("no-responders", HELLO + b"SUB _INBOX.x.* 1\r\nPUB nobody _INBOX.x.1 0\r\n\r\nPING\r\n", b"PONG\r\n"),
    ("verbose-ok", b"CONNECT {}\r\nSUB foo 1\r\nPING\r\n", b"PONG\r\n"),
    ("err-unknown-op", HELLO + b"FOO bar\r\n", None),
    ("err-control-line", HELLO + b"SUB " + b"x" * 5000 + b" 1\r\n", None),
    ("err-invalid-subject", HELLO + b"SUB foo. 1\r\nPING\r\n", b"PONG\r\n"),
    ("err-max-payload", HELLO + b"PUB foo 2000000\r\n", None),
    ("err-protocol", b'CONNECT {"protocol":2}\r\n', None),
    ("err-no-responders-headers", b'CONNECT {"no_responders":true}\r\n', None),
    ("ping", HELLO, b"PING\r\n"),
]


def save(name, sent, got):
    """The whole stream goes to parse_split; parse_server_op gets it without INFO (but for
    the `info` session), so that mutations reach the ops that follow."""
    write("parse_split", f"nats-{name}", split_seed(list(range(0, len(got), 7)), got))
    ops = got if name == "info" else got[got.index(b"\r\n") + 2 :]
    write("parse_server_op", f"nats-{name}", ops)
    if sent:
        write("parse_client_op", f"nats-{name}", sent)
    print(f"nats-{name}: {ops!r}")


def main():
    with Server() as srv:
        for name, sent, until in SESSIONS:
            save(name, sent, session(srv.addr, sent, until))
    with Server("--user", "a", "--pass", "b") as srv:
        sent = b'CONNECT {"verbose":false,"user":"a","pass":"wrong"}\r\n'
        save("err-auth", sent, session(srv.addr, sent, None))


if __name__ == "__main__":
    main()
