//! Telephony: everything that places a call and carries its media.
//!
//! The SIP endpoint task ([`endpoint`]) drives the sans-IO
//! `genki_sip::endpoint::Endpoint` on the daemon's SIP socket; the media
//! runtime ([`media`]) gives every call its own RTP port on a worker
//! thread; [`call`] places one call and runs a [`dialogue::Dialogue`] on it
//! (the watch script implements it, from `checks`); [`prompts`] holds the
//! built-in prompts; [`net`] resolves and binds; [`audio`] keeps early
//! media beside the database; [`streams`] carries SIP over TCP and TLS;
//! [`dns`] locates a trunk given as a domain (RFC 3263).
//!
//! Dependency rule: the ground floor of the engine's folders. May depend on
//! genki-sip, genki-media, genki-udp, genki-store (records and
//! vocabulary), [`crate::metrics`], [`crate::clock`] and [`crate::notices`]
//! (the trunk's registration tells the operator), and the crates made for
//! its jobs (tokio, rustls, hickory-resolver); never on
//! `checks`, `alerts`, `api` or `cli`.

pub mod audio;
pub mod call;
pub mod context;
pub mod dialogue;
pub mod dns;
pub mod endpoint;
pub mod inbound;
pub mod media;
pub mod net;
pub mod prompts;
pub mod streams;
