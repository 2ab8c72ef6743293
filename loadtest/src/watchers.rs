//! Simulated watchers' receivers: a webhook endpoint that checks genki's
//! signatures, and an SMTP sink that accepts (or refuses) alert e-mail.
//! Each prints one JSON line per request on stdout as it arrives: the
//! ground truth tests compare with the cases genki stored. (Watchers who
//! answer the phone are the `phones` subcommand with `--digits 1` to take
//! a case, `--digits 2` to pass it on, `--behaviour no-answer` or `busy`.)
//!
//! An outside peer: speaks HTTP and SMTP only; the signature scheme is
//! re-implemented here from the README, not imported from the engine.
//! The SMTP sink is written by hand: it needs only the handful of
//! RFC 5321 commands a client sends (EHLO/HELO, MAIL, RCPT, DATA, RSET,
//! NOOP, QUIT) and a refusal switch, which no server crate offers more
//! simply.
//!
//! Depends on: axum, hmac/sha2, tokio.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Webhook receiver settings.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookConfig {
    /// Address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The shared secret the watcher was given (webhook_secret).
    #[arg(long)]
    pub secret: String,
    /// Seconds a signature's timestamp may differ from our clock.
    #[arg(long, default_value_t = 300)]
    pub window_s: u64,
    /// Answer each request after this many milliseconds.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    /// Answer 500 to the first N requests (a receiver having a bad time).
    #[arg(long, default_value_t = 0)]
    pub fail_first: u64,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub max_seconds: u64,
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn emit(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// Check `t=<t>,v1=<hex>` against HMAC-SHA256(secret, "<t>.<body>").
/// Returns (signature valid, timestamp inside the window).
pub fn verify(secret: &[u8], header: &str, body: &[u8], now_s: u64, window_s: u64) -> (bool, bool) {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", x)) => t = x.parse::<u64>().ok(),
            Some(("v1", x)) => v1 = Some(x.to_string()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return (false, false);
    };
    let Some(want) = (0..v1.len())
        .step_by(2)
        .map(|i| {
            v1.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
    else {
        return (false, false);
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    // verify_slice compares in constant time.
    let ok = mac.verify_slice(&want).is_ok();
    (ok, now_s.abs_diff(t) <= window_s)
}

struct Hook {
    cfg: WebhookConfig,
    seen: Mutex<HashMap<String, Bytes>>,
    count: AtomicU64,
}

async fn receive(State(h): State<Arc<Hook>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let n = h.count.fetch_add(1, Ordering::Relaxed) + 1;
    let sig = headers
        .get("genki-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (valid, fresh) = verify(h.cfg.secret.as_bytes(), sig, &body, now_s(), h.cfg.window_s);
    let event_id = headers
        .get("genki-event-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let idem = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (duplicate, same_body) = {
        let mut seen = h.seen.lock().unwrap_or_else(|e| e.into_inner());
        match seen.get(&event_id) {
            Some(first) => (true, *first == body),
            None => {
                if valid && fresh {
                    seen.insert(event_id.clone(), body.clone());
                }
                (false, true)
            }
        }
    };
    let status = if !valid || !fresh {
        StatusCode::UNAUTHORIZED
    } else if n <= h.cfg.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    emit(&json!({
        "event_id": event_id,
        "idempotency_key_matches": idem == event_id,
        "body_event_id_matches": parsed["event_id"].as_str() == Some(event_id.as_str()),
        "type": parsed["type"],
        "case_id": parsed["case"]["id"],
        "subscriber_id": parsed["subscriber"]["id"],
        "watcher_id": parsed["watcher"]["id"],
        "signature_ok": valid,
        "fresh": fresh,
        "duplicate": duplicate,
        "same_body": same_body,
        "status": status.as_u16(),
    }));
    if h.cfg.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(h.cfg.delay_ms)).await;
    }
    status
}

/// Run the webhook receiver until --max-seconds.
pub async fn webhook(cfg: WebhookConfig) -> anyhow::Result<()> {
    let listener = TcpListener::bind(cfg.listen).await?;
    eprintln!(
        "genki-loadtest: webhook receiver on http://{}",
        listener.local_addr()?
    );
    let limit = Duration::from_secs(cfg.max_seconds);
    let hook = Arc::new(Hook {
        cfg,
        seen: Mutex::new(HashMap::new()),
        count: AtomicU64::new(0),
    });
    let app = axum::Router::new()
        .fallback(axum::routing::post(receive))
        .with_state(hook);
    let _ = tokio::time::timeout(limit, axum::serve(listener, app)).await;
    Ok(())
}

/// SMTP sink settings.
#[derive(Debug, Clone, clap::Args)]
pub struct SmtpConfig {
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Refuse every message (550 to MAIL FROM): a relay that will not take our mail.
    #[arg(long)]
    pub refuse: bool,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub max_seconds: u64,
}

/// Run the SMTP sink until --max-seconds.
pub async fn smtp(cfg: SmtpConfig) -> anyhow::Result<()> {
    let listener = TcpListener::bind(cfg.listen).await?;
    eprintln!("genki-loadtest: SMTP sink on {}", listener.local_addr()?);
    let limit = Duration::from_secs(cfg.max_seconds);
    let refuse = cfg.refuse;
    let _ = tokio::time::timeout(limit, async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                if let Err(e) = smtp_session(sock, refuse).await {
                    tracing::debug!(error = %e, "SMTP session ended");
                }
            });
        }
    })
    .await;
    Ok(())
}

async fn smtp_session(sock: tokio::net::TcpStream, refuse: bool) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 genki-loadtest ESMTP sink\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::<String>::new());
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-genki-loadtest\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            b"250 ok\r\n"
        } else if upper.starts_with("RSET") {
            from.clear();
            to.clear();
            b"250 ok\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            if refuse {
                emit(&json!({"refused": true, "from": cmd[10..].trim()}));
                b"550 5.7.1 relaying refused by the sink\r\n"
            } else {
                from = cmd[10..].trim().to_string();
                b"250 ok\r\n"
            }
        } else if upper.starts_with("RCPT TO:") {
            to.push(cmd[8..].trim().to_string());
            b"250 ok\r\n"
        } else if upper == "DATA" {
            w.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                data.push_str(&line);
            }
            let header = |name: &str| {
                data.lines()
                    .take_while(|l| !l.is_empty())
                    .find_map(|l| {
                        l.split_once(':')
                            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                            .map(|(_, v)| v.trim().to_string())
                    })
                    .unwrap_or_default()
            };
            emit(
                &json!({"refused": false, "from": from, "to": to, "message_id": header("Message-ID"),
                         "subject": header("Subject"), "bytes": data.len()}),
            );
            b"250 ok: queued\r\n"
        } else if upper.starts_with("QUIT") {
            w.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"502 command not implemented\r\n"
        };
        w.write_all(reply).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_accepts_a_good_signature_only() {
        let body = b"{\"event_id\":\"ntf-1\"}";
        let mut mac = Hmac::<Sha256>::new_from_slice(b"0123456789abcdef").unwrap();
        mac.update(b"1000.");
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let h = format!("t=1000,v1={hex}");
        assert_eq!(
            verify(b"0123456789abcdef", &h, body, 1100, 300),
            (true, true)
        );
        assert_eq!(
            verify(b"0123456789abcdef", &h, body, 1400, 300),
            (true, false)
        );
        assert!(!verify(b"wrong-secret-000", &h, body, 1000, 300).0);
        assert!(!verify(b"0123456789abcdef", &h, b"{}", 1000, 300).0);
        assert_eq!(
            verify(b"0123456789abcdef", "t=x,v1=zz", body, 1000, 300),
            (false, false)
        );
        assert_eq!(
            verify(b"0123456789abcdef", "", body, 1000, 300),
            (false, false)
        );
    }
}
