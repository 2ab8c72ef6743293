//! genki-engine: the daemon and command line of genki.
//!
//! The only crate (with loadtest) that does IO: sockets, timers, files. It
//! drives the sans-IO cores of `genki-sip` and `genki-media`.
//! It holds `genki call` ([`call`]), `genki demo` ([`demo`]) and the daemon
//! `genki serve` ([`serve`]): configuration ([`config`]), the SIP endpoint
//! shared by all calls ([`endpoint`]), one task per call running the
//! tenant's script ([`watch`], [`script`], [`rtp_session`]), the scheduler
//! and dialer ([`service`], [`schedule`], [`holidays`], [`dialer`]), the
//! alert cases and the escalation ladder ([`alerts`]) with their channels
//! ([`notify`]: watcher calls, webhooks, e-mail), the admin API ([`api`])
//! and metrics ([`metrics`]).
//!
//! Dependency rule: may depend on genki-sip, genki-media (and genki-storage);
//! never on genki-loadtest.

pub mod alerts;
pub mod alerts_api;
pub mod api;
pub mod call;
pub mod clock;
pub mod config;
pub mod demo;
pub mod dialer;
pub mod endpoint;
pub mod holidays;
pub mod media_rt;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod prompts;
pub mod schedule;
pub mod script;
pub mod serve;
pub mod service;
pub mod watch;
