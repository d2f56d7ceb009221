#![no_main]
//! cargo fuzz target: see `kraft::fuzzing::kafka_requests`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kraft::fuzzing::kafka_requests(data));
