//! Alerts: what happens when a person was not fine or not reached.
//!
//! Cases, the escalation ladder, urgency rules and the durable outbox
//! worker ([`cases`]), and the channels that reach watchers, dispatched by
//! [`notify`]: watcher calls ([`phone`]), signed webhooks ([`webhook`]),
//! e-mail ([`email`]), each returning a [`delivery::Delivery`]; and the
//! operator's own notices ([`operator`]), about genki and its carrier.
//!
//! Dependency rule: may depend on [`crate::checks`] (calendar, scripts),
//! [`crate::telephony`] (a watcher call), genki-storage, [`crate::metrics`],
//! [`crate::clock`], [`crate::notices`]; never on `api` or `cli`.

pub mod cases;
pub mod delivery;
pub mod email;
pub mod notify;
pub mod operator;
pub mod phone;
pub mod webhook;
