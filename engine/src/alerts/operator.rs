//! Delivery of operator notices ([`crate::notices`]) to the operator's
//! webhook (`[operator] webhook`): a signed JSON POST, the same signature
//! scheme as watcher webhooks ([`super::webhook::sign`]), tried a few
//! times with back-off. Notices are about genki and its carrier, never
//! about a person, so they carry no personal data.
//!
//! Not durable: a notice raised just before genki stops is lost with the
//! process; the condition it reports (an open circuit, failing storage) is
//! found and raised again after the restart.
//!
//! Depends on: [`crate::notices`], [`super::webhook`], reqwest.

use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::webhook::{sign_now, EVENT_HEADER, SIGNATURE_HEADER};
use crate::notices::Raised;

/// Tries per notice before it is given up (logged).
pub const TRIES: u32 = 6;

/// Where notices go.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub secret: String,
    pub timeout: Duration,
    /// Names this daemon in the body (several may report to one operator).
    pub node: String,
}

/// The JSON body of a notice.
pub fn body(r: &Raised, node: &str) -> serde_json::Value {
    json!({
        "event_id": event_id(r, node),
        "type": r.notice.kind(),
        "created_at_ms": r.at_ms,
        "node": node,
        "details": r.notice.details(),
    })
}

fn event_id(r: &Raised, node: &str) -> String {
    format!("op-{node}-{}-{}", r.at_ms, r.seq)
}

/// Deliver notices until the channel closes. Without a target they were
/// already logged and counted when raised; nothing more is done.
pub async fn run(
    mut rx: mpsc::UnboundedReceiver<Raised>,
    http: reqwest::Client,
    to: Option<Target>,
) {
    let Some(to) = to else {
        while rx.recv().await.is_some() {}
        return;
    };
    while let Some(r) = rx.recv().await {
        let payload = serde_json::to_vec(&body(&r, &to.node)).expect("JSON");
        let id = event_id(&r, &to.node);
        let mut backoff = Duration::from_secs(1);
        for n in 1..=TRIES {
            let sent = http
                .post(&to.url)
                .timeout(to.timeout)
                .header("Content-Type", "application/json")
                .header(SIGNATURE_HEADER, sign_now(to.secret.as_bytes(), &payload))
                .header(EVENT_HEADER, &id)
                .header("Idempotency-Key", &id)
                .body(payload.clone())
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status().is_success() => {
                    info!(kind = r.notice.kind(), "operator notified");
                    break;
                }
                Ok(resp) => warn!(
                    kind = r.notice.kind(),
                    try_n = n,
                    status = resp.status().as_u16(),
                    "operator webhook refused the notice"
                ),
                Err(e) => {
                    warn!(kind = r.notice.kind(), try_n = n, error = %e, "operator webhook unreachable")
                }
            }
            if n == TRIES {
                warn!(kind = r.notice.kind(), "operator notice given up");
            } else {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}
