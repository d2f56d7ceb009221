#![no_main]
//! cargo fuzz target: see `kraft::fuzzing::core_messages`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kraft::fuzzing::core_messages(data));
