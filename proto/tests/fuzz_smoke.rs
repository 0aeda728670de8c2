//! The fuzz targets' properties on stable: the committed corpus (`fuzz/corpus/<target>/`),
//! any local crash artifacts (`fuzz/artifacts/<target>/`), deterministic mutations of the
//! hand-made and captured seeds, and many cut patterns. Each input goes through the same
//! checker as its cargo-fuzz target, built the way libfuzzer-sys builds it.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use panini_proto::fuzzing::{
    check_client_ops, check_client_roundtrip, check_headers_roundtrip, check_server_ops,
    check_split, ArbClientOp, ArbHeaders,
};

const TARGETS: [&str; 4] = [
    "parse_server_op",
    "parse_split",
    "client_op_roundtrip",
    "parse_client_op",
];

/// Runs one input through the checker of `target`, as `fuzz/fuzz_targets/<target>.rs` does.
fn run_target(target: &str, data: &[u8]) {
    match target {
        "parse_server_op" => check_server_ops(data),
        "parse_client_op" => check_client_ops(data),
        "parse_split" => {
            if let Ok((cuts, bytes)) =
                <(Vec<u16>, &[u8])>::arbitrary_take_rest(Unstructured::new(data))
            {
                let cuts: Vec<usize> = cuts.into_iter().map(usize::from).collect();
                check_split(bytes, &cuts);
            }
        }
        "client_op_roundtrip" => {
            if let Ok((op, headers)) =
                <(ArbClientOp, ArbHeaders)>::arbitrary_take_rest(Unstructured::new(data))
            {
                check_client_roundtrip(&op);
                check_headers_roundtrip(&headers);
            }
        }
        other => panic!("no fuzz target {other}"),
    }
}

/// Runs `check`, and names the input if it panics (the checker's own message comes first).
fn named(name: &dyn std::fmt::Display, check: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(check)).is_err() {
        panic!("property failed for {name}");
    }
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `dir`, sorted by name; none if `dir` does not exist.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| e.expect("read corpus dir").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&p).expect("read corpus file"))
        })
        .collect();
    out.sort();
    out
}

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    files(&fuzz_dir().join("corpus").join(target))
}

/// The seeds of a target made from the reference tables and from nats-server captures.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let named_seed = |n: &str| ["5a-", "5b-", "nats-"].iter().any(|p| n.starts_with(p));
    corpus(target)
        .into_iter()
        .filter(|(n, _)| named_seed(n))
        .collect()
}

#[test]
fn committed_corpus_replays_clean() {
    for target in TARGETS {
        let inputs = corpus(target);
        assert!(
            inputs
                .iter()
                .any(|(n, _)| !n.chars().all(|c| c.is_ascii_hexdigit())),
            "no committed seeds in fuzz/corpus/{target}"
        );
        for (name, data) in inputs {
            named(&format!("corpus/{target}/{name}"), || {
                run_target(target, &data)
            });
        }
    }
}

#[test]
fn local_crash_artifacts_replay_clean() {
    for target in TARGETS {
        let dir = fuzz_dir().join("artifacts").join(target);
        for (name, data) in files(&dir) {
            named(&format!("artifacts/{target}/{name}"), || {
                run_target(target, &data)
            });
        }
    }
}

/// How many leading positions of a seed get every mutation (and the last few as well):
/// enough to cover any op's control line and its payload end, cheap on the 5 KB seeds.
const MUTATED_HEAD: usize = 320;
const MUTATED_TAIL: usize = 8;

/// Deterministic mutations of `seed`: for each position, a bit flip, a truncation, a
/// deletion, and the insertion of each byte the grammar cares about.
fn mutations(seed: &[u8]) -> impl Iterator<Item = (String, Vec<u8>)> + '_ {
    let n = seed.len();
    let positions = (0..=n).filter(move |&i| i < MUTATED_HEAD || i + MUTATED_TAIL >= n);
    positions.flat_map(move |i| {
        let mut out = vec![(format!("truncated at {i}"), seed[..i].to_vec())];
        if i < n {
            let mut flipped = seed.to_vec();
            flipped[i] ^= 1 << (i % 8);
            out.push((format!("bit {} flipped at {i}", i % 8), flipped));
            let mut deleted = seed.to_vec();
            deleted.remove(i);
            out.push((format!("byte deleted at {i}"), deleted));
        }
        for b in [b'\r', b'\n', b' ', b'\t', b'0', b'9', b':'] {
            let mut inserted = seed.to_vec();
            inserted.insert(i, b);
            out.push((format!("{:?} inserted at {i}", b as char), inserted));
        }
        out
    })
}

#[test]
fn mutated_server_seeds_hold() {
    for (name, seed) in seeds("parse_server_op") {
        for (how, data) in mutations(&seed) {
            named(&format!("{name}, {how}"), || {
                check_server_ops(&data);
                check_split(&data, &[1, data.len() / 2, data.len().saturating_sub(1)]);
            });
        }
    }
}

#[test]
fn mutated_client_seeds_hold() {
    for (name, seed) in seeds("parse_client_op") {
        for (how, data) in mutations(&seed) {
            named(&format!("{name}, {how}"), || check_client_ops(&data));
        }
    }
}

/// Cut patterns for one stream: every byte, every k bytes, around each line end, and
/// (for short streams) each single offset.
fn cut_patterns(data: &[u8]) -> Vec<(String, Vec<usize>)> {
    let n = data.len();
    let mut out = vec![("no cut".to_string(), Vec::new())];
    for step in [1, 2, 3, 7, 64] {
        out.push((format!("every {step}"), (0..n).step_by(step).collect()));
    }
    let line_ends: Vec<usize> = (0..n)
        .filter(|&i| matches!(data[i], b'\r' | b'\n'))
        .collect();
    out.push(("at CR/LF".into(), line_ends.clone()));
    out.push((
        "after CR/LF".into(),
        line_ends.iter().map(|i| i + 1).collect(),
    ));
    if n <= 600 {
        out.extend((0..=n).map(|i| (format!("at {i}"), vec![i])));
    }
    out
}

#[test]
fn any_split_matches_one_shot() {
    let streams = seeds("parse_server_op");
    let all: Vec<u8> = streams.iter().flat_map(|(_, d)| d.clone()).collect();
    for (name, data) in streams.iter().chain([&("all seeds".to_string(), all)]) {
        for (how, cuts) in cut_patterns(data) {
            named(&format!("{name}, cut {how}"), || check_split(data, &cuts));
        }
    }
}

/// A small deterministic generator (xorshift64*): the same bytes on every run.
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

#[test]
fn arbitrary_client_ops_round_trip() {
    for i in 0..4000u64 {
        let data = pseudo_random(i, 8 + (i as usize % 300));
        named(&format!("pseudo-random input {i}"), || {
            run_target("client_op_roundtrip", &data);
        });
    }
    // Every seed of every target is also a valid `arbitrary` input.
    for target in TARGETS {
        for (name, data) in corpus(target) {
            named(&format!("corpus/{target}/{name} as an op"), || {
                run_target("client_op_roundtrip", &data);
            });
        }
    }
}
