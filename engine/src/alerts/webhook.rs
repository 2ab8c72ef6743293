//! Webhook deliveries: the event body, signed, POSTed to the watcher's URL.
//!
//! Webhook signature (documented in README.md): header
//! `Genki-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
//! (the scheme Stripe and others use, so receivers have libraries for it);
//! receivers should refuse a `t` more than 300 s from their clock (the
//! replay window) and treat `Genki-Event-Id` (also sent as
//! `Idempotency-Key`) as the event's identity: delivery is at-least-once,
//! and a retry after a timeout or a crash carries the same id and body.
//!
//! Depends on: reqwest (HTTP client), hmac/sha2, genki-store records,
//! [`super::delivery`].

use std::time::Duration;

use genki_store::{AlertCase, Notification, Subscriber, Watcher};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::delivery::{failed, Delivery};

/// Header carrying the webhook signature.
pub const SIGNATURE_HEADER: &str = "Genki-Signature";
/// Header carrying the event id (also sent as `Idempotency-Key`).
pub const EVENT_HEADER: &str = "Genki-Event-Id";

/// `t=<t>,v1=<hex hmac>` over `"<t>.<body>"`.
pub fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

/// The JSON body of a webhook event.
pub fn event_body(
    n: &Notification,
    case: &AlertCase,
    w: &Watcher,
    sub: Option<&Subscriber>,
) -> Value {
    json!({
        "event_id": n.event_id(),
        "type": n.kind.as_str(),
        "created_at_ms": n.created_at_ms,
        "tenant_id": case.tenant_id,
        "case": {
            "id": case.id,
            "state": case.state,
            "severity": case.severity,
            "tier": n.tier,
            "opened_at_ms": case.opened_at_ms,
            "outcomes": case.outcomes,
        },
        "subscriber": {
            "id": case.subscriber_id,
            "name": sub.map(|s| s.name.as_str()),
            "phone": sub.map(|s| s.phone.as_str()),
        },
        "watcher": {"id": w.id, "name": w.name},
        "ack": {"method": "POST", "path": format!("/v1/alerts/{}/ack", case.id),
                "body": {"by": w.name, "note": ""}},
    })
}

/// POST the event to the watcher's URL; 2xx is delivered.
pub async fn send(
    http: &reqwest::Client,
    timeout: Duration,
    n: &Notification,
    case: &AlertCase,
    w: &Watcher,
    sub: Option<&Subscriber>,
) -> Delivery {
    let Some(url) = &w.webhook_url else {
        return failed("the watcher has no webhook URL", false);
    };
    let body = serde_json::to_vec(&event_body(n, case, w, sub)).expect("JSON");
    // Real wall-clock time, not the service clock (which tests shift):
    // the replay window compares it with the receiver's clock.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let sig = sign(
        w.webhook_secret.as_deref().unwrap_or("").as_bytes(),
        t,
        &body,
    );
    let r = http
        .post(url)
        .timeout(timeout)
        .header("Content-Type", "application/json")
        .header(SIGNATURE_HEADER, sig)
        .header(EVENT_HEADER, n.event_id())
        .header("Idempotency-Key", n.event_id())
        .body(body)
        .send()
        .await;
    match r {
        Ok(resp) if resp.status().is_success() => Delivery::Delivered { response: None },
        Ok(resp) => {
            let s = resp.status().as_u16();
            // 4xx other than timeout/too-early/rate-limit: the receiver refuses this event.
            let retry = !(400..500).contains(&s) || matches!(s, 408 | 425 | 429);
            failed(format!("HTTP {s} from {url}"), retry)
        }
        Err(e) => failed(format!("{url}: {e}"), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_over_time_dot_body() {
        // RFC 4231 test case 2 key and data, shaped as "<t>.<body>".
        let s = sign(b"Jefe", 1, b"what do ya want for nothing?");
        assert!(s.starts_with("t=1,v1="));
        assert_eq!(s.len(), "t=1,v1=".len() + 64);
        assert_ne!(s, sign(b"Jefe", 2, b"what do ya want for nothing?"));
        assert_ne!(s, sign(b"jefe", 1, b"what do ya want for nothing?"));
        // The MAC of the raw RFC 4231 message is the published value.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
