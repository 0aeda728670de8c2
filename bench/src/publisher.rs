//! The one publisher of the subscribe workload, the same for both contenders: a plain
//! blocking TCP socket on its own thread that writes pre-encoded `PUB` frames, so no client
//! library's publishing speed leaks into the subscriber figure.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::thread::JoinHandle;

use crate::Result;

/// `count` pre-encoded `PUB <subject> <len>\r\n<payload>\r\n` frames.
#[derive(Debug)]
pub struct Burst {
    frames: Vec<u8>,
}

impl Burst {
    pub fn new(subject: &str, count: usize, payload_len: usize) -> Self {
        let one = frame(subject, &vec![b'x'; payload_len]);
        let mut frames = Vec::with_capacity(one.len() * count);
        for _ in 0..count {
            frames.extend_from_slice(&one);
        }
        Burst { frames }
    }

    /// Connects and handshakes now, then writes every frame on a thread of its own once
    /// `go` is called; the thread ends after a PING/PONG, when the server has them all.
    pub fn connect(self, url: &str) -> Result<Armed> {
        let addr = url.trim_start_matches("nats://");
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?; // INFO {...}
        if !line.starts_with("INFO") {
            return Err(format!("expected INFO, got {line:?}").into());
        }
        let mut writer = stream;
        writer.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n")?;
        wait_for_pong(&mut reader)?;
        Ok(Armed {
            frames: self.frames,
            reader,
            writer,
        })
    }
}

/// A handshaken publisher waiting for [`Armed::go`].
#[derive(Debug)]
pub struct Armed {
    frames: Vec<u8>,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Armed {
    pub fn go(mut self) -> JoinHandle<Result<()>> {
        std::thread::spawn(move || {
            self.writer.write_all(&self.frames)?;
            self.writer.write_all(b"PING\r\n")?;
            wait_for_pong(&mut self.reader)
        })
    }
}

fn frame(subject: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("PUB {subject} {}\r\n", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    out
}

fn wait_for_pong(reader: &mut BufReader<TcpStream>) -> Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err("server closed the publisher's connection".into());
        }
        match line.trim_end() {
            "PONG" => return Ok(()),
            "PING" => reader.get_mut().write_all(b"PONG\r\n")?,
            other if other.starts_with("-ERR") => return Err(other.to_string().into()),
            _ => {}
        }
    }
}
