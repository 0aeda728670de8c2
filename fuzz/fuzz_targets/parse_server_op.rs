#![no_main]

use libfuzzer_sys::fuzz_target;
use panini_proto::fuzzing::check_server_ops;

fuzz_target!(|data: &[u8]| check_server_ops(data));
