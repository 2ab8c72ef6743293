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
//! A watcher's URL is a tenant's input: [`Guard`] keeps it from reaching
//! genki's own network (the admin API on loopback, a cloud's metadata
//! service at 169.254.169.254, private ranges) — checked on the resolved
//! addresses at connect time (a resolver that filters them), so a name
//! that resolves to a public address at validation and a private one at
//! delivery (DNS rebinding) does not pass; redirects are not followed (a
//! 307/308 would carry the POST and its signature elsewhere); and what a
//! failure writes into the tenant-readable timeline says what kind of
//! failure it was, never the internal detail (a port scanner otherwise).
//!
//! Depends on: reqwest (HTTP client), hmac/sha2, ipnet, genki-store
//! records, [`super::delivery`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
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

/// Whether genki refuses to post to `ip` unless the operator allows it:
/// loopback, unspecified, private (RFC 1918, RFC 4193 ULA), shared
/// (100.64/10), link-local (incl. 169.254.169.254), multicast, broadcast,
/// documentation and "this network" addresses, IPv4-mapped ones too.
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            let o = v.octets();
            v.is_loopback()
                || v.is_private()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_multicast()
                || v.is_broadcast()
                || v.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v) => {
            let s = v.segments();
            v.is_loopback()
                || v.is_unspecified()
                || v.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || v.to_ipv4_mapped().is_some_and(|m| forbidden(IpAddr::V4(m)))
        }
    }
}

/// Which addresses watchers' webhooks may reach: every public address,
/// and the forbidden ones only inside the operator's `allow` list
/// (`[alerts] webhook_allow`).
#[derive(Debug, Default, Clone)]
pub struct Guard {
    pub allow: Vec<ipnet::IpNet>,
}

impl Guard {
    pub fn permits(&self, ip: IpAddr) -> bool {
        !forbidden(ip) || self.allow.iter().any(|n| n.contains(&ip))
    }
}

/// Resolves a webhook's host and keeps only the addresses the guard
/// permits: the check happens at connect time, on what is connected to.
struct GuardedResolver(Arc<Guard>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let ok: Vec<SocketAddr> = all.into_iter().filter(|a| guard.permits(a.ip())).collect();
            if ok.is_empty() {
                return Err(Box::new(NotAllowed) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The webhook's host resolves only to addresses genki does not post to.
#[derive(Debug)]
struct NotAllowed;

impl std::fmt::Display for NotAllowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the address is not allowed")
    }
}

impl std::error::Error for NotAllowed {}

/// The HTTP client for watchers' webhooks: guarded resolution, no redirects.
pub fn client(guard: Arc<Guard>) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("genki/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver(guard)))
        .build()
}

/// Why a POST failed, in words safe for the tenant's timeline.
fn describe(e: &reqwest::Error) -> &'static str {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<NotAllowed>() {
            return "the webhook's address is not allowed (loopback, private, link-local or multicast)";
        }
        source = s.source();
    }
    if e.is_timeout() {
        "the webhook did not answer in time"
    } else if e.is_connect() {
        "could not connect to the webhook"
    } else {
        "the webhook request failed"
    }
}

/// [`sign`] at the real wall-clock second, not the service clock (which
/// tests shift): receivers compare `t` with their own clock.
pub fn sign_now(secret: &[u8], body: &[u8]) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    sign(secret, t, body)
}

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

/// POST the event to the watcher's URL; 2xx is delivered. `http` must be
/// a [`client`] with the same `guard` (it checks names as they resolve;
/// the guard here checks a URL that names an address directly).
pub async fn send(
    http: &reqwest::Client,
    guard: &Guard,
    timeout: Duration,
    n: &Notification,
    case: &AlertCase,
    w: &Watcher,
    sub: Option<&Subscriber>,
) -> Delivery {
    let Some(url) = &w.webhook_url else {
        return failed("the watcher has no webhook URL", false);
    };
    let literal = reqwest::Url::parse(url).ok().and_then(|u| {
        u.host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok()
    });
    if literal.is_some_and(|ip| !guard.permits(ip)) {
        return failed(
            "the webhook's address is not allowed (loopback, private, link-local or multicast)",
            false,
        );
    }
    let body = serde_json::to_vec(&event_body(n, case, w, sub)).expect("JSON");
    let sig = sign_now(w.webhook_secret.as_deref().unwrap_or("").as_bytes(), &body);
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
            if (300..400).contains(&s) {
                return failed(format!("HTTP {s}: redirects are not followed"), false);
            }
            failed(format!("HTTP {s}"), retry)
        }
        Err(e) => {
            tracing::debug!(watcher = w.id, error = %e, "webhook delivery failed");
            let not_allowed = describe(&e).contains("not allowed");
            failed(describe(&e), !not_allowed)
        }
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
