//! Watch the NATS wire through `panini::proto`, with nothing but a blocking `TcpStream`.
//!
//! Connects, subscribes to `demo.>`, publishes three messages to `demo.hello` (the last
//! with headers), prints every op the server sends back, and exits after the final PONG.
//!
//! ```text
//! nats-server -a 127.0.0.1 -p 4222 &     # or: scripts/run-examples
//! cargo run --example wire_tap [nats://127.0.0.1:4222]
//! ```

use std::error::Error;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use panini::proto::{
    encode_headers, parse_server_op, ClientOp, Limits, MsgFrame, Pub, ServerOp, Status,
};

const CONNECT: &[u8] =
    br#"{"verbose":false,"pedantic":false,"protocol":1,"headers":true,"lang":"rust","name":"wire_tap"}"#;
const MESSAGES: usize = 3;

fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::args().nth(1);
    let url = url.as_deref().unwrap_or("nats://127.0.0.1:4222");
    let addr = url.strip_prefix("nats://").unwrap_or(url);
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connecting to {url}: {e}"))?;
    // A quiet or wedged server ends the demo with an error instead of a hang.
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    println!("connected to {url}");

    stream.write_all(&requests()?)?;
    println!("-> CONNECT, SUB demo.> 1, PUB demo.hello x2, HPUB demo.hello, PING");

    let limits = Limits::default();
    let (mut buf, mut start) = (Vec::new(), 0);
    let (mut seen, mut pong) = (0, false);
    loop {
        while let Status::Complete((op, used)) = parse_server_op(&buf[start..], &limits)? {
            start += used;
            if let ServerOp::Msg(msg) = op {
                seen += 1;
                print_msg(&msg)?;
                continue;
            }
            print_op(&op);
            match op {
                ServerOp::Ping => stream.write_all(b"PONG\r\n")?,
                ServerOp::Pong => pong = true,
                ServerOp::Err(text) => {
                    return Err(format!("-ERR {}", String::from_utf8_lossy(text)).into())
                }
                _ => {}
            }
        }
        if seen == MESSAGES && pong {
            break;
        }
        // Only part of an op is buffered: drop what was parsed and read more.
        buf.drain(..start);
        start = 0;
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    println!("done: {seen} messages");
    Ok(())
}

/// Everything we send, encoded into one buffer and written at once.
fn requests() -> Result<Vec<u8>, Box<dyn Error>> {
    let mut headers = Vec::new();
    encode_headers(None, [(&b"Demo-Seq"[..], &b"3"[..])], &mut headers)?;
    let publish = |payload, headers| {
        let msg = Pub {
            subject: b"demo.hello",
            reply: None,
            headers,
            payload,
        };
        ClientOp::Pub(msg)
    };
    let ops = [
        ClientOp::Connect(CONNECT),
        ClientOp::Sub {
            subject: b"demo.>",
            queue: None,
            sid: b"1",
        },
        publish(&b"hello 1"[..], None),
        publish(&b"hello 2"[..], None),
        publish(&b"hello 3, with headers"[..], Some(&headers[..])),
        ClientOp::Ping,
    ];
    let mut out = Vec::new();
    for op in &ops {
        op.encode(&mut out);
    }
    Ok(out)
}

fn print_op(op: &ServerOp<'_>) {
    match op {
        ServerOp::Info(json) => println!("<- INFO {}", summary(json)),
        ServerOp::Ping => println!("<- PING (answered PONG)"),
        ServerOp::Pong => println!("<- PONG"),
        ServerOp::Ok => println!("<- +OK"),
        ServerOp::Err(text) => println!("<- -ERR {}", String::from_utf8_lossy(text)),
        ServerOp::Msg(_) => {}
    }
}

fn print_msg(msg: &MsgFrame<'_>) -> Result<(), Box<dyn Error>> {
    let name = if msg.headers.is_some() { "HMSG" } else { "MSG" };
    let subject = String::from_utf8_lossy(msg.subject);
    let payload = String::from_utf8_lossy(msg.payload);
    println!("<- {name} {subject} sid={} payload={payload:?}", msg.sid);
    if let Some(block) = msg.header_block() {
        for (name, value) in block?.iter() {
            let (name, value) = (
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(value),
            );
            println!("     header {name}: {value}");
        }
    }
    Ok(())
}

/// A few flat fields of the INFO JSON. A real client decodes it with serde; this demo
/// stays on std, and these keys hold plain scalars.
fn summary(json: &[u8]) -> String {
    let json = String::from_utf8_lossy(json);
    let keys = ["server_name", "version", "max_payload", "headers"];
    let fields: Vec<String> = keys
        .iter()
        .filter_map(|key| scalar(&json, key).map(|value| format!("{key}={value}")))
        .collect();
    format!("{} ({} bytes of JSON)", fields.join(" "), json.len())
}

/// The raw text of `"key":value` up to the next `,` or `}`, quotes removed.
fn scalar<'j>(json: &'j str, key: &str) -> Option<&'j str> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &json[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim().trim_matches('"'))
}
