//! Idle memory: this same binary, run as a child with `--idle <contender> <url> [<ca>]`, connects
//! one client, subscribes to one subject, flushes, prints `ready` and waits. The parent
//! reads the child's `VmRSS` from `/proc/<pid>/status`, and `RssAnon`: the anonymous part
//! (heap, stacks), without the file-backed pages of this binary and libc, which are about
//! the same for both since one binary holds both clients.
//!
//! Ours runs under `smol::block_on` (plus smol's global executor thread, where the client's
//! tasks live); async-nats under a tokio current-thread runtime, the smallest tokio setup.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::contender::Endpoint;
use crate::Result;

/// The child side: connect, subscribe, flush, say `ready`, wait to be killed.
pub fn child(which: &str, at: &Endpoint) -> Result<()> {
    match which {
        "ours" => smol::block_on(async {
            let client = crate::ours::options(at).connect().await?;
            let _sub = client.subscribe("bench.idle").await?;
            client.flush().await?;
            ready()?;
            futures_lite::future::pending::<Result<()>>().await
        }),
        "async-nats" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let client = crate::theirs::options(at).connect(at.url.as_str()).await?;
                let _sub = client.subscribe("bench.idle").await?;
                client.flush().await?;
                ready()?;
                futures::future::pending::<Result<()>>().await
            })
        }
        other => Err(format!("--idle: unknown contender {other:?}").into()),
    }
}

fn ready() -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    Ok(())
}

/// The parent side: the child's largest `VmRSS` and `RssAnon` of three reads 100 ms
/// apart, in KiB.
pub fn measure(which: &str, at: &Endpoint) -> Result<[f64; 2]> {
    let child = Command::new(std::env::current_exe()?)
        .args(["--idle", which, &at.url])
        .args(&at.ca_file)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut child = Killed(child);
    let stdout = child.0.stdout.take().ok_or("child has no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    if line.trim() != "ready" {
        return Err(format!("idle child {which} did not get ready: {line:?}").into());
    }
    let mut max = [0.0f64; 2];
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(100));
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.0.id()))?;
        max[0] = max[0].max(kib(&status, "VmRSS:")?);
        max[1] = max[1].max(kib(&status, "RssAnon:")?);
    }
    Ok(max)
}

/// `Field:     1234 kB` from a `/proc/<pid>/status` text.
fn kib(status: &str, field: &str) -> Result<f64> {
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .ok_or_else(|| format!("no {field} line"))?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| format!("empty {field} line"))?
        .parse()?;
    Ok(kib)
}

/// Kills and reaps the child however `measure` ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
