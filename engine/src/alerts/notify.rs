//! Delivering one notification on its channel: a phone call with the
//! engine's own SIP/RTP (the watcher presses 1 to take the case, 2 to pass
//! it on, 3 when they already know the person is safe), a signed webhook,
//! or an e-mail through an SMTP relay. Each delivery returns a
//! [`Delivery`]; retries, backoff and the case timeline are
//! [`crate::alerts::cases`]' business.
//!
//! Webhook signature (documented in README.md): header
//! `Genki-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
//! (the scheme Stripe and others use, so receivers have libraries for it);
//! receivers should refuse a `t` more than 300 s from their clock (the
//! replay window) and treat `Genki-Event-Id` (also sent as
//! `Idempotency-Key`) as the event's identity: delivery is at-least-once,
//! and a retry after a timeout or a crash carries the same id and body.
//!
//! Depends on: reqwest (HTTP client), lettre (SMTP), hmac/sha2,
//! [`crate::telephony::call`] (calls), [`crate::checks::script`], genki-storage records.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use genki_media::Prompt;
use genki_store::{
    AlertCase, Cause, Channel, EndReason, Notification, NotifyKind, Outcome, Store, Subscriber,
    Watcher,
};
use hmac::{Hmac, Mac};
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::{json, Value};
use sha2::Sha256;
use tracing::warn;

use crate::checks::script::{Action, AlertAnswer, Flow, Gather, Node, Script};
use crate::clock::Clock;
use crate::telephony::context::CallContext;

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Reached the watcher; on the phone, what they answered (ack, pass,
    /// resolve, none).
    Delivered { response: Option<String> },
    /// Not delivered; `retry` false when trying again cannot help.
    Failed { error: String, retry: bool },
}

fn failed(error: impl Into<String>, retry: bool) -> Delivery {
    Delivery::Failed {
        error: error.into(),
        retry,
    }
}

/// SMTP relay settings.
#[derive(Debug, Clone)]
pub struct Smtp {
    pub relay: String,
    pub port: u16,
    /// none, starttls, tls.
    pub tls: String,
    pub user: String,
    pub password: String,
    pub from: String,
}

/// Everything a delivery needs.
pub struct Notifier {
    /// Placing a watcher call: the same context as the due loop's calls.
    pub calls: Arc<CallContext>,
    pub clock: Arc<dyn Clock>,
    pub http: reqwest::Client,
    pub webhook_timeout: Duration,
    pub smtp: Option<Smtp>,
}

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

/// The script of a call to a watcher: who has not answered, then 1 take /
/// 2 pass / 3 safe; or the all-clear message alone.
pub fn watcher_script(kind: NotifyKind, name_prompt: Option<&str>) -> Script {
    let mut nodes = BTreeMap::new();
    let end = |play: &str, answer: AlertAnswer| Node {
        play: vec![play.to_string()],
        outcome: Some(Outcome::Fine),
        action: Some(Action::Alert(answer)),
        hangup: true,
        ..Default::default()
    };
    if kind == NotifyKind::AllClear {
        nodes.insert("clear".to_string(), end("all_clear", AlertAnswer::Heard));
        return Script {
            start: "clear".into(),
            nodes,
        };
    }
    // One node, so a key pressed during any part of the message counts
    // (barge-in); a repeat plays the whole message again.
    let mut play = vec!["watcher_alert".to_string()];
    if let Some(p) = name_prompt {
        play.push(p.to_string());
    }
    play.push("watcher_menu".to_string());
    nodes.insert(
        "menu".to_string(),
        Node {
            play,
            gather: Some(Gather {
                max_digits: 1,
                timeout_s: 6,
                max_plays: 2,
            }),
            on: [
                ("1", "take"),
                ("2", "pass"),
                ("3", "safe"),
                ("other", "menu"),
                ("timeout", "none"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            ..Default::default()
        },
    );
    nodes.insert("take".to_string(), end("alert_taken", AlertAnswer::Ack));
    nodes.insert("pass".to_string(), end("alert_passed", AlertAnswer::Pass));
    nodes.insert(
        "safe".to_string(),
        end("alert_resolved", AlertAnswer::Resolve),
    );
    nodes.insert(
        "none".to_string(),
        Node {
            hangup: true,
            ..Default::default()
        },
    );
    Script {
        start: "menu".into(),
        nodes,
    }
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
    pub async fn deliver(&self, store: &Store, n: &Notification) -> Delivery {
        let loaded = (|| {
            Ok::<_, genki_store::StoreError>((
                store.alert_case(n.case_id)?,
                store.watcher(n.watcher_id)?,
            ))
        })();
        let (case, watcher) = match loaded {
            Ok((Some(c), Some(w))) => (c, w),
            Ok((_, None)) => return failed("the watcher was deleted", false),
            Ok((None, _)) => return failed("the case is gone", false),
            Err(e) => return failed(format!("storage: {e}"), true),
        };
        let sub = store.subscriber(case.subscriber_id).ok().flatten();
        match n.channel {
            Channel::Webhook => self.webhook(n, &case, &watcher, sub.as_ref()).await,
            Channel::Email => self.email(n, &case, &watcher, sub.as_ref()).await,
            Channel::Phone => self.phone(n, &case, &watcher).await,
        }
    }

    async fn webhook(
        &self,
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
        let r = self
            .http
            .post(url)
            .timeout(self.webhook_timeout)
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

    async fn email(
        &self,
        n: &Notification,
        case: &AlertCase,
        w: &Watcher,
        sub: Option<&Subscriber>,
    ) -> Delivery {
        let Some(smtp) = &self.smtp else {
            return failed("no SMTP relay is configured ([alerts] smtp_relay)", false);
        };
        let Some(to) = &w.email else {
            return failed("the watcher has no e-mail address", false);
        };
        let (Ok(to), Ok(from)) = (to.parse::<Mailbox>(), smtp.from.parse::<Mailbox>()) else {
            return failed("bad e-mail address", false);
        };
        let name = sub.map(|s| s.name.as_str()).unwrap_or("(削除された利用者)");
        let (subject, text) = match n.kind {
            NotifyKind::AllClear => (
                format!("[genki] 無事を確認しました: {name}"),
                format!("{name} さんの件は解決しました（ケース {}）。ご協力ありがとうございました。\n", case.id),
            ),
            k => (
                format!("[genki]{} 応答がありません: {name}", if k == NotifyKind::Urgent { " 至急" } else { "" }),
                format!(
                    "{name} さんの見守り電話で応答がありませんでした（ケース {}、結果: {}）。\n\
                     対応できる場合は、管理画面または API で引き受けてください: POST /v1/alerts/{}/ack\n",
                    case.id,
                    case.outcomes.iter().map(|o| o.outcome.as_str()).collect::<Vec<_>>().join(", "),
                    case.id
                ),
            ),
        };
        let msg = match lettre::Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .message_id(Some(format!("<{}@genki>", n.event_id())))
            .body(text)
        {
            Ok(m) => m,
            Err(e) => return failed(format!("cannot build the message: {e}"), false),
        };
        let builder = match smtp.tls.as_str() {
            "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.relay),
            "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.relay),
            _ => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &smtp.relay,
            )),
        };
        let mut builder = match builder {
            Ok(b) => b.port(smtp.port).timeout(Some(Duration::from_secs(60))),
            Err(e) => return failed(format!("SMTP relay {}: {e}", smtp.relay), false),
        };
        if !smtp.user.is_empty() {
            builder =
                builder.credentials(Credentials::new(smtp.user.clone(), smtp.password.clone()));
        }
        match builder.build().send(msg).await {
            Ok(_) => Delivery::Delivered { response: None },
            Err(e) => failed(format!("SMTP {}:{}: {e}", smtp.relay, smtp.port), true),
        }
    }

    async fn phone(&self, n: &Notification, case: &AlertCase, w: &Watcher) -> Delivery {
        let Some(phone) = &w.phone else {
            return failed("the watcher has no phone", false);
        };
        let prompts: Arc<HashMap<String, Prompt>> = match self.calls.prompts_for(case.tenant_id) {
            Ok(p) => p,
            Err(e) => return failed(format!("storage: {e}"), true),
        };
        let name_prompt = format!("name-{}", case.subscriber_id);
        let script = watcher_script(
            n.kind,
            prompts
                .contains_key(&name_prompt)
                .then_some(name_prompt.as_str()),
        );
        let to = self.calls.dial_uri(phone);
        let mut flow = Flow::new(script);
        let r = self
            .calls
            .placer
            .place(&to, n.tries, self.clock.now_ms(), &mut flow, &prompts)
            .await;
        if !r.attempt.answered {
            let cause = r.cause.unwrap_or(Cause::Failed);
            if matches!(
                r.attempt.end_reason,
                EndReason::InvalidTarget | EndReason::Unresolvable
            ) {
                warn!(watcher = w.id, %to, "watcher's phone cannot be dialled");
            }
            return failed(format!("{cause} ({})", r.attempt.end_reason), true);
        }
        let response = flow
            .actions()
            .iter()
            .find_map(|a| match a {
                Action::Alert(
                    a @ (AlertAnswer::Ack | AlertAnswer::Pass | AlertAnswer::Resolve),
                ) => Some(a.as_str()),
                _ => None,
            })
            .unwrap_or("none");
        Delivery::Delivered {
            response: (n.kind != NotifyKind::AllClear).then(|| response.to_string()),
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

    #[test]
    fn watcher_scripts_are_valid_and_map_keys_to_answers() {
        let names = [
            "watcher_alert",
            "watcher_menu",
            "alert_taken",
            "alert_passed",
            "alert_resolved",
            "all_clear",
            "name-7",
        ];
        for s in [
            watcher_script(NotifyKind::Alert, None),
            watcher_script(NotifyKind::Urgent, Some("name-7")),
            watcher_script(NotifyKind::AllClear, None),
        ] {
            s.validate(|p| names.contains(&p)).unwrap();
        }
        let s = watcher_script(NotifyKind::Alert, None);
        let word = |n: &str| s.nodes[n].action.map(|a| a.to_string());
        assert_eq!(word("take").as_deref(), Some("alert:ack"));
        assert_eq!(word("pass").as_deref(), Some("alert:pass"));
        assert_eq!(word("safe").as_deref(), Some("alert:resolve"));
    }
}
