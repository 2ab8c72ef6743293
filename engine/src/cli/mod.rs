//! The commands: `genki call` ([`call`]), `genki demo` ([`demo`]) and the
//! daemon's wiring for `genki serve` ([`serve`]).
//!
//! Dependency rule: the top of the engine; may depend on every other
//! folder; nothing depends on it but `main.rs`.

pub mod call;
pub mod demo;
pub mod serve;
