#![no_main]
//! cargo fuzz target: see `kraft::fuzzing::peer_frames`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kraft::fuzzing::peer_frames(data));
