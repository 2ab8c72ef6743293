//! libFuzzer entry for genki_fuzz::uac_datagrams (see fuzzing/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| genki_fuzz::uac_datagrams(data));
