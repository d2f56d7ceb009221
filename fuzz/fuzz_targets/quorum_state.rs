#![no_main]
//! cargo fuzz target: see `kraft::fuzzing::quorum_state`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kraft::fuzzing::quorum_state(data));
