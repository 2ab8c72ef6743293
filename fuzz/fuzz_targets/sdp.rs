//! libFuzzer entry for genki_fuzz::sdp (see fuzzing/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| genki_fuzz::sdp(data));
