#![no_main]

use libfuzzer_sys::fuzz_target;
use panini_proto::fuzzing::{
    check_client_roundtrip, check_headers_roundtrip, ArbClientOp, ArbHeaders,
};

fuzz_target!(|input: (ArbClientOp, ArbHeaders)| {
    check_client_roundtrip(&input.0);
    check_headers_roundtrip(&input.1);
});
