#![no_main]
//! cargo fuzz target: see `kraft::fuzzing::properties`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kraft::fuzzing::properties(data));
