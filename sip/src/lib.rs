//! genki-sip: SIP for genki, sans-IO.
//!
//! Messages are parsed with `rsip` behind a thin layer of our own
//! ([`message`]) that frames by Content-Length, unfolds header lines and
//! expands compact names; on top of that sit the RFC 3261 transactions
//! ([`transaction`]), dialogs ([`dialog`]), digest authentication
//! ([`auth`]), SDP offer/answer ([`sdp`]), the two call cores genki needs:
//! an outgoing call ([`uac::UacCall`]) and an incoming one ([`uas::UasCall`]),
//! the [`endpoint::Endpoint`] that routes many outgoing calls on one address,
//! outbound registration ([`register`]), session timers ([`session_timer`])
//! the framing of SIP on streams, TCP and TLS ([`stream`]), and OPTIONS
//! keep-alive to a trunk's targets ([`keepalive`]).
//!
//! Dependency rule: this crate never opens a socket, never reads the clock and
//! never spawns a task. Every input carries the `Instant` it happened at and
//! every output is polled (`poll_transmit`, `poll_event`, `poll_timeout`), in
//! the style of quinn-proto and str0m, so tests can run on virtual time.

pub mod auth;
pub mod dialog;
pub mod endpoint;
pub mod keepalive;
pub mod message;
pub mod register;
pub mod sdp;
pub mod session_timer;
pub mod stream;
pub mod transaction;
pub mod uac;
pub mod uas;

#[cfg(test)]
mod pair_tests;
#[cfg(test)]
mod torture_tests;

pub use dialog::Transmit;
pub use message::{Message, Method, ParseError};
pub use transaction::Timers;
