//! genki-engine: the daemon and command line of genki.
//!
//! The only crate (with loadtest) that does IO: sockets, timers, files. It
//! drives the sans-IO cores of `genki-sip` and `genki-media`.
//! Today it holds `genki call` ([`call`]) and `genki demo` ([`demo`]); the scheduler, dialer, storage
//! glue and admin API of later issues join it here.
//!
//! Dependency rule: may depend on genki-sip, genki-media (and genki-storage);
//! never on genki-loadtest.

pub mod call;
pub mod demo;
pub mod net;
pub mod prompts;
