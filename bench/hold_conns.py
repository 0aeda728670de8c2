"""Opens N keep-alive connections to an HTTP server, sends one `GET /get` on each, reads
each whole response, then holds them all open until stdin closes (or SIGTERM).

    python3 bench/hold_conns.py PORT [N]

Prints `ready N` once every connection has had its answer (the caller then reads the
server's VmRSS), or `error ...` and exits 1 if a connection failed or got no 200.
"""

import socket
import sys

port = int(sys.argv[1])
count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
request = b"GET /get HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"


def one():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(request)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed before the response head")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.split(b"\r\n")[0].decode(errors="replace"))
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed before the end of the body")
        body += chunk
    if b"connection: close" in head.lower():
        raise RuntimeError("server asked to close")
    return s


conns = []
try:
    for _ in range(count):
        conns.append(one())
except Exception as e:  # noqa: BLE001 - report anything, the script is the caller's probe
    print(f"error after {len(conns)} connections: {e}", flush=True)
    sys.exit(1)
print(f"ready {len(conns)}", flush=True)
sys.stdin.read()
