#![no_main]
//! cargo fuzz target: see `kraft::fuzzing::record_batches`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kraft::fuzzing::record_batches(data));
