//! Checks: when each person is called and what becomes of it.
//!
//! The schedule and calendar ([`schedule`], [`holidays`]), the planner,
//! due loop, retries and recovery ([`service`]), the dialer's rate and
//! concurrency limits ([`dialer`]), the trunk's circuit breaker that holds
//! checks through a carrier outage ([`trunk`]), the watch script with
//! its sans-IO runner ([`script`]), and retention ([`retention`]).
//!
//! Dependency rule: may depend on [`crate::telephony`] (to place a call),
//! genki-storage, [`crate::metrics`], [`crate::clock`], [`crate::notices`]
//! (to tell the operator); never on `alerts`,
//! `api` or `cli` (the alert worker is woken through a `Notify` it is given).

pub mod dialer;
pub mod holidays;
pub mod inbound;
pub mod retention;
pub mod schedule;
pub mod script;
pub mod service;
pub mod trunk;
