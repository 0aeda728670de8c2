//! Throughput of `parse_server_op` over a buffered stream of `MSG` frames.
//!
//! ```text
//! cargo bench -p panini-proto --bench parse [filter]
//! ```
//!
//! Each case parses a whole pre-built stream, over and over, for [`SAMPLES`] timed samples
//! of at least [`SAMPLE_TIME`] each, and prints one markdown table row with the median
//! (and the min and max) ops/s and payload+framing bytes/s. Medians, because the machines
//! we run on are shared and noisy. No criterion: `Instant` and `black_box` are enough here.

use std::hint::black_box;
use std::time::{Duration, Instant};

use panini_proto::{parse_server_op, Limits, MsgFrame, ServerOp, Status};

const SAMPLES: usize = 15;
const SAMPLE_TIME: Duration = Duration::from_millis(100);
const SUBJECT: &[u8] = b"bench.subject.here";

struct Case {
    name: &'static str,
    payload: usize,
    frames: usize,
}

impl Case {
    const fn new(name: &'static str, payload: usize, frames: usize) -> Self {
        Case {
            name,
            payload,
            frames,
        }
    }
}

const CASES: &[Case] = &[
    Case::new("MSG 16 B", 16, 10_000),
    Case::new("MSG 128 B", 128, 10_000),
    Case::new("MSG 1 KiB", 1024, 10_000),
    Case::new("MSG 64 KiB (single)", 64 * 1024, 1),
];

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters cases by name.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    println!("| case | frames/stream | median ops/s | median GB/s | min..max ops/s |");
    println!("|---|---:|---:|---:|---:|");
    for case in CASES {
        if filter.as_deref().is_some_and(|f| !case.name.contains(f)) {
            continue;
        }
        run(case);
    }
}

/// `frames` copies of `MSG bench.subject.here 1 <payload>\r\n<payload bytes>\r\n`.
fn stream(case: &Case) -> Vec<u8> {
    let payload: Vec<u8> = (0..case.payload).map(|i| b'a' + (i % 26) as u8).collect();
    let msg = MsgFrame {
        subject: SUBJECT,
        sid: 1,
        reply: None,
        headers: None,
        payload: &payload,
    };
    let mut out = Vec::new();
    for _ in 0..case.frames {
        ServerOp::Msg(msg).encode(&mut out);
    }
    out
}

/// Parses every op in `buf` and returns how many there were.
fn parse_all(buf: &[u8], limits: &Limits) -> usize {
    let mut rest = black_box(buf);
    let mut ops = 0;
    while !rest.is_empty() {
        match parse_server_op(rest, limits) {
            Ok(Status::Complete((op, used))) => {
                black_box(op);
                rest = &rest[used..];
                ops += 1;
            }
            other => panic!("the bench stream must parse: {other:?}"),
        }
    }
    ops
}

fn run(case: &Case) {
    let limits = Limits::default();
    let buf = stream(case);
    assert_eq!(parse_all(&buf, &limits), case.frames);

    // Calibrate: enough passes over the stream that one sample lasts SAMPLE_TIME.
    let started = Instant::now();
    let mut passes = 0u64;
    while started.elapsed() < SAMPLE_TIME {
        black_box(parse_all(&buf, &limits));
        passes += 1;
    }

    let mut ops_per_sec: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..passes {
                black_box(parse_all(&buf, &limits));
            }
            (passes as f64 * case.frames as f64) / started.elapsed().as_secs_f64()
        })
        .collect();
    ops_per_sec.sort_by(f64::total_cmp);

    let median = ops_per_sec[SAMPLES / 2];
    let frame_bytes = buf.len() as f64 / case.frames as f64;
    println!(
        "| {} | {} | {} | {:.2} | {}..{} |",
        case.name,
        case.frames,
        human(median),
        median * frame_bytes / 1e9,
        human(ops_per_sec[0]),
        human(ops_per_sec[SAMPLES - 1]),
    );
}

/// `12.3 M`, `456.7 k`: ops/s for a table cell.
fn human(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2} M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}
