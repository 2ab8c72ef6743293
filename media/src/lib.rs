//! genki-media: the media half of a watch call, sans-IO.
//!
//! G.711 ([`g711`]), WAV prompts read once and encoded to shared 20 ms
//! frames ([`wav`], [`prompt`]), RTP playout and reception on `rtp-rs`
//! ([`rtp`]), and DTMF from RFC 4733 events, in-band tones and SIP INFO
//! ([`dtmf`]), and [`mux`]: many streams of one media worker on one socket,
//! sent in batches. [`listen`] hears voices and tones in what the peer
//! sends, and [`answer`] decides from them who answered and when the first
//! prompt may start.
//!
//! Dependency rule: this crate never opens a socket, never reads the clock
//! and never spawns a task; instants are passed in and packets are written
//! into buffers the caller owns.

pub mod answer;
pub mod dtmf;
pub mod g711;
pub mod listen;
pub mod mux;
pub mod prompt;
pub mod rtp;
pub mod wav;

pub use dtmf::DtmfTransport;
pub use prompt::{Law, Prompt};
