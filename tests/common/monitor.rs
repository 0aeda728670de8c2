//! A test `nats-server`'s HTTP monitoring, for what only the server can tell (who is
//! connected, under which name): its `/connz` connections, and a bounded poll on them.
//! The server must be started with `-m -1` (a monitoring port the OS picks).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{set_io_timeouts, NatsServer, IO_TIMEOUT};

/// How long [`wait_until`] polls before it fails the test.
pub const POLL_BOUND: Duration = Duration::from_secs(5);

/// The HTTP monitoring address of a server started with `-m -1`, from its log line
/// "Starting http monitor on 127.0.0.1:PORT" (written before the ports file that
/// `NatsServer` waits for).
pub fn monitor_addr(server: &NatsServer) -> String {
    let log = server.log();
    let marker = "Starting http monitor on ";
    let line = log.lines().find_map(|l| {
        l.split_once(marker)
            .map(|(_, addr)| addr.trim().to_string())
    });
    line.unwrap_or_else(|| panic!("no monitoring port (start with -m -1); log:\n{log}"))
}

/// The server's `/connz` connections (HTTP/1.0, so the body is not chunked).
pub async fn connz(server: &NatsServer) -> Vec<Value> {
    let addr = monitor_addr(server);
    let body = smol::unblock(move || {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        set_io_timeouts(&stream, IO_TIMEOUT);
        stream
            .write_all(b"GET /connz?limit=1024 HTTP/1.0\r\nHost: monitor\r\n\r\n")
            .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let text = String::from_utf8(response).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{head}"
        );
        body.to_string()
    })
    .await;
    let json: Value = serde_json::from_str(&body).unwrap();
    json["connections"].as_array().cloned().unwrap_or_default()
}

/// The names of the server's client connections (those that gave one).
pub async fn connection_names(server: &NatsServer) -> Vec<String> {
    connz(server)
        .await
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}

/// Polls `/connz` until `ok` holds (the server's view has no event to wait on), up to
/// [`POLL_BOUND`]; panics naming `what` otherwise.
pub async fn wait_until(server: &NatsServer, what: &str, ok: impl Fn(&[Value]) -> bool) {
    let deadline = Instant::now() + POLL_BOUND;
    loop {
        let conns = connz(server).await;
        if ok(&conns) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {POLL_BOUND:?}: {conns:?}"
        );
        smol::Timer::after(Duration::from_millis(20)).await;
    }
}
