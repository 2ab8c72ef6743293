//! libFuzzer entry for genki_fuzz::script_flow (see fuzzing/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| genki_fuzz::script_flow(data));
