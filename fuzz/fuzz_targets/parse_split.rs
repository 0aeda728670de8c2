#![no_main]

use libfuzzer_sys::fuzz_target;
use panini_proto::fuzzing::check_split;

// The bytes after the cut list are taken raw, so a seed is `(1 lo hi)* 0` then the stream.
fuzz_target!(|input: (Vec<u16>, &[u8])| {
    let cuts: Vec<usize> = input.0.into_iter().map(usize::from).collect();
    check_split(input.1, &cuts);
});
