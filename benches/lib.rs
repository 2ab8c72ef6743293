//! genki-benches: criterion benchmarks of the hot paths (`cargo bench`):
//! SIP parse/serialize and a transaction's life, RTP packetisation and the
//! media mux pacing N streams, G.711, the in-band DTMF detector per 20 ms
//! frame (`benches/hot_paths.rs`); synced outcome commits, scheduler
//! planning of a day for many subscribers and the due scan
//! (`benches/storage.rs`). Results and how to read them: docs/capacity.md.
//!
//! Depends on: every genki crate (benchmarks only; nothing depends on this).
