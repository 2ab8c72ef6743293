//! genki-engine: the daemon and command line of genki.
//!
//! The only crate (with loadtest) that does IO: sockets, timers, files. It
//! drives the sans-IO cores of `genki-sip` and `genki-media`. One folder per
//! concern (docs/architecture.md "Where each concern lives"):
//!
//! - [`telephony`]: the SIP endpoint task, the media workers, placing one
//!   call and running its script, prompts, name resolution;
//! - [`checks`]: schedules and calendars, the planner and due loop, retries,
//!   the dialer, the watch script;
//! - [`alerts`]: alert cases, the ladder, the outbox and its channels;
//! - [`api`]: the admin HTTP API, one file per resource;
//! - [`console`]: the coordinators' web pages (sign-in, Today, cases,
//!   people, import, report, settings), acting through the API's handlers;
//! - [`cli`]: `genki call`, `genki demo` and the wiring of `genki serve`;
//! - [`config`], read by `cli`; [`clock`], [`metrics`], [`notices`] (to the
//!   operator), [`rt`] and [`secrets`] (sealing secrets at rest), used by all.
//!
//! Dependency rule: folders import downwards only — cli → console → api →
//! alerts → checks → telephony → (clock, metrics, notices, rt, secrets, passwords) — never back up, with no import
//! circle inside a folder either (farm-studio look engine/src); the crate
//! may depend on genki-sip, genki-media, genki-udp and genki-storage, never
//! on genki-loadtest.

pub mod alerts;
pub mod api;
pub mod checks;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod metrics;
pub mod notices;
pub mod passwords;
pub mod rt;
pub mod secrets;
pub mod telephony;
