#![no_main]
//! cargo fuzz target: see `kraft::fuzzing::tls_handshake`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kraft::fuzzing::tls_handshake(data));
