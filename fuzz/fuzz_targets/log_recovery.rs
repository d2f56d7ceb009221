#![no_main]
//! cargo fuzz target: see `kraft::fuzzing::log_recovery`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kraft::fuzzing::log_recovery(data));
