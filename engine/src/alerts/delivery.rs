//! What one delivery attempt on any channel comes to ([`Delivery`]), the
//! one word the channels ([`super::phone`], [`super::webhook`],
//! [`super::email`]) and the alert cases share.
//!
//! Depends on: genki-store (the watcher's answer).

use genki_store::WatcherAnswer;

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Reached the watcher; on the phone, what they answered (ack, pass,
    /// resolve, none).
    Delivered { response: Option<WatcherAnswer> },
    /// Not delivered; `retry` false when trying again cannot help.
    Failed { error: String, retry: bool },
}

/// A failed delivery.
pub fn failed(error: impl Into<String>, retry: bool) -> Delivery {
    Delivery::Failed {
        error: error.into(),
        retry,
    }
}
