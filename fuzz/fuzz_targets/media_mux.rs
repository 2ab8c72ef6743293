//! libFuzzer entry for genki_fuzz::media_mux (see fuzzing/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| genki_fuzz::media_mux(data));
