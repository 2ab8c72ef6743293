//! Delivering one notification on its channel ([`super::phone`],
//! [`super::webhook`], [`super::email`]); each delivery returns a
//! [`Delivery`]; retries, backoff and the case timeline are
//! [`crate::alerts::cases`]' business.
//!
//! Depends on: the channel modules, [`super::delivery`],
//! [`crate::telephony::context`], [`crate::clock`], genki-store.

use std::sync::Arc;
use std::time::Duration;

use genki_store::{Channel, Notification, Storage};

use super::delivery::failed;
pub use super::delivery::Delivery;
pub use super::email::Smtp;
use super::{email, phone, webhook};
use crate::clock::Clock;
use crate::telephony::context::CallContext;

/// Everything a delivery needs.
pub struct Notifier {
    /// Placing a watcher call: the same context as the due loop's calls.
    pub calls: Arc<CallContext>,
    pub clock: Arc<dyn Clock>,
    /// Watchers' webhooks: a [`webhook::client`] over `webhook_guard`.
    pub http: reqwest::Client,
    pub webhook_guard: std::sync::Arc<webhook::Guard>,
    pub webhook_timeout: Duration,
    pub smtp: Option<Smtp>,
    /// Opens the watchers' sealed webhook secrets.
    pub secrets: Arc<crate::secrets::SecretBox>,
}

impl Notifier {
    /// How long a delivery on `channel` may take (its sending lease).
    pub fn lease(&self, channel: Channel) -> Duration {
        match channel {
            Channel::Phone => self.calls.placer.ring_timeout() + Duration::from_secs(180),
            Channel::Webhook => self.webhook_timeout + Duration::from_secs(30),
            Channel::Email => Duration::from_secs(150),
        }
    }

    /// Deliver one notification. Never panics on bad data or peers.
    pub async fn deliver(&self, store: &dyn Storage, n: &Notification) -> Delivery {
        let loaded = (|| {
            Ok::<_, genki_store::StoreError>((
                store.alert_case(n.case_id)?,
                store.watcher(n.watcher_id)?,
            ))
        })();
        let (case, mut watcher) = match loaded {
            Ok((Some(c), Some(w))) => (c, w),
            Ok((_, None)) => return failed("the watcher was deleted", false),
            Ok((None, _)) => return failed("the case is gone", false),
            Err(e) => return failed(format!("storage: {e}"), true),
        };
        let sub = store.subscriber(case.subscriber_id).ok().flatten();
        match n.channel {
            Channel::Webhook => {
                if let Some(sealed) = &watcher.webhook_secret {
                    match self.secrets.open(sealed) {
                        Ok(s) => watcher.webhook_secret = Some(s),
                        Err(e) => return failed(e.to_string(), false),
                    }
                }
                webhook::send(
                    &self.http,
                    &self.webhook_guard,
                    self.webhook_timeout,
                    n,
                    &case,
                    &watcher,
                    sub.as_ref(),
                )
                .await
            }
            Channel::Email => {
                email::send(self.smtp.as_ref(), n, &case, &watcher, sub.as_ref()).await
            }
            Channel::Phone => {
                // A number the tenant's dial plan no longer allows (set by
                // the operator after the watcher was enrolled) is not rung.
                let plan = store
                    .tenant(case.tenant_id)
                    .ok()
                    .flatten()
                    .and_then(|t| t.dial_allow);
                if let Some(ph) = &watcher.phone {
                    if !crate::telephony::context::in_dial_plan(plan.as_deref(), ph) {
                        return failed(
                            "the watcher's number is outside the tenant's dial plan",
                            false,
                        );
                    }
                }
                phone::call(&self.calls, &*self.clock, n, &case, &watcher).await
            }
        }
    }
}
