//! E-mail deliveries through an SMTP relay (plain, STARTTLS or TLS), in
//! Japanese, one message per notification with its event id as Message-ID.
//!
//! Depends on: lettre (SMTP), genki-store records, [`super::delivery`].

use std::time::Duration;

use genki_store::{AlertCase, Notification, NotifyKind, Subscriber, Watcher};
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::delivery::{failed, Delivery};

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

/// Send the notification by e-mail.
pub async fn send(
    smtp: Option<&Smtp>,
    n: &Notification,
    case: &AlertCase,
    w: &Watcher,
    sub: Option<&Subscriber>,
) -> Delivery {
    let Some(smtp) = smtp else {
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
        builder = builder.credentials(Credentials::new(smtp.user.clone(), smtp.password.clone()));
    }
    match builder.build().send(msg).await {
        Ok(_) => Delivery::Delivered { response: None },
        Err(e) => failed(format!("SMTP {}:{}: {e}", smtp.relay, smtp.port), true),
    }
}
