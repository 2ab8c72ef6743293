//! `genki demo`: the main job on embedded defaults, with nothing external.
//!
//! Starts the daemon (in this process, on a temporary data directory and
//! free loopback ports), starts the simulated phones of `genki-loadtest` as
//! separate processes — the engine stays ignorant of them — acting as the
//! carrier for a realistic mix (most press 1, some press 2, some never
//! answer, some are busy), enrols the subscribers through the admin API,
//! runs one round of checks, shows progress, and prints the round's summary.
//! The tenant has a watcher (a simulated welfare office that answers and
//! presses 1): every bad outcome opens an alert case that the office takes
//! by phone, and the demo ends when every case has been taken.
//!
//! Depends on: [`crate::cli::serve`], [`crate::config`], tokio (process, net).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::config::Config;

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(
        "cannot find genki-loadtest beside {0} (build it: cargo build --workspace --all-targets)"
    )]
    NoPhones(String),
    #[error("cannot start genki-loadtest: {0}")]
    Spawn(std::io::Error),
    #[error("no free local port: {0}")]
    Port(std::io::Error),
    #[error("the daemon did not start: {0}")]
    Daemon(String),
    #[error("API call {what} failed: {detail}")]
    Api { what: String, detail: String },
    #[error("the round did not finish within {0:?}")]
    Timeout(Duration),
}

/// One group of simulated phones.
struct Group {
    label: &'static str,
    share_percent: usize,
    flags: &'static [&'static str],
}

const GROUPS: &[Group] = &[
    Group {
        label: "press 1 (RFC 4733)",
        share_percent: 60,
        flags: &["--digits", "1", "--dtmf", "rfc4733"],
    },
    Group {
        label: "press 1 (in-band)",
        share_percent: 10,
        flags: &["--digits", "1", "--dtmf", "inband"],
    },
    Group {
        label: "press 2 (SIP INFO)",
        share_percent: 10,
        flags: &["--digits", "2", "--dtmf", "info"],
    },
    Group {
        label: "never answer",
        share_percent: 10,
        flags: &["--behaviour", "no-answer"],
    },
    Group {
        label: "busy",
        share_percent: 10,
        flags: &["--behaviour", "busy"],
    },
];

fn loadtest_binary() -> Result<PathBuf, DemoError> {
    let me = std::env::current_exe().map_err(|e| DemoError::NoPhones(e.to_string()))?;
    let p = me.with_file_name("genki-loadtest");
    if p.exists() {
        Ok(p)
    } else {
        Err(DemoError::NoPhones(me.display().to_string()))
    }
}

fn free_udp() -> Result<u16, DemoError> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").map_err(DemoError::Port)?;
    Ok(s.local_addr().map_err(DemoError::Port)?.port())
}

fn free_tcp() -> Result<u16, DemoError> {
    let s = std::net::TcpListener::bind("127.0.0.1:0").map_err(DemoError::Port)?;
    Ok(s.local_addr().map_err(DemoError::Port)?.port())
}

/// A one-request HTTP/1.1 exchange with the local API.
async fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: &[u8],
) -> Result<(u16, Value), String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(body).await.map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n").ok_or("no HTTP header")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut r = rest;
        while let Some((len, after)) = r.split_once("\r\n") {
            let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
            if n == 0 || after.len() < n {
                break;
            }
            out.push_str(&after[..n]);
            r = &after[(n + 2).min(after.len())..];
        }
        out
    } else {
        rest.to_string()
    };
    Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

async fn api(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: &[u8],
    want: u16,
) -> Result<Value, DemoError> {
    let what = format!("{method} {path}");
    let (status, v) = http(addr, method, path, token, body)
        .await
        .map_err(|detail| DemoError::Api {
            what: what.clone(),
            detail,
        })?;
    if status != want {
        return Err(DemoError::Api {
            what,
            detail: format!("status {status}: {v}"),
        });
    }
    Ok(v)
}

/// Run the demo round with `n` subscribers; returns the final summary JSON.
pub async fn run(n: usize) -> Result<Value, DemoError> {
    let phones_bin = loadtest_binary()?;
    let dir = std::env::temp_dir().join(format!("genki-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut children: Vec<Child> = Vec::new();
    let mut ports = Vec::new();
    for (i, g) in GROUPS.iter().enumerate() {
        let port = free_udp()?;
        let child = Command::new(&phones_bin)
            .args([
                "phones",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--max-seconds",
                "900",
            ])
            .args([
                "--answer-delay-ms",
                "1500",
                "--digit-delay-ms",
                "2500",
                "--rtp-base",
                &(40000 + i * 4000).to_string(),
            ])
            .args(g.flags)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(DemoError::Spawn)?;
        children.push(child);
        ports.push(port);
    }
    // The welfare office: answers alert calls and presses 1 (takes the case).
    let office_port = free_udp()?;
    children.push(
        Command::new(&phones_bin)
            .args([
                "phones",
                "--listen",
                &format!("127.0.0.1:{office_port}"),
                "--max-seconds",
                "1200",
                "--answer-delay-ms",
                "1000",
                "--digits",
                "1",
                "--digit-delay-ms",
                "2000",
                "--rtp-base",
                &(40000 + GROUPS.len() * 4000).to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(DemoError::Spawn)?,
    );
    let api_addr = format!("127.0.0.1:{}", free_tcp()?);
    let mut cfg = Config::default();
    cfg.storage.path = dir.clone();
    cfg.api.listen = api_addr
        .parse()
        .map_err(|_| DemoError::Daemon("bad API address".into()))?;
    cfg.sip.bind = format!("127.0.0.1:{}", free_udp()?)
        .parse()
        .map_err(|_| DemoError::Daemon("bad SIP address".into()))?;
    cfg.sip.ring_timeout_s = 8;
    cfg.trunk.cps = 20.0;
    cfg.trunk.max_calls = 100;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(crate::cli::serve::serve_until(
        cfg,
        Default::default(),
        async move {
            let _ = stop_rx.await;
        },
    ));

    // Wait for the API.
    let started = Instant::now();
    let token = loop {
        if let Ok(t) = std::fs::read_to_string(dir.join("operator-token")) {
            if let Ok((200, _)) = http(&api_addr, "GET", "/healthz", "", b"").await {
                break t.trim().to_string();
            }
        }
        if daemon.is_finished() {
            let e = daemon
                .await
                .map(|r| r.err().map(|e| e.to_string()).unwrap_or_default())
                .unwrap_or_default();
            return Err(DemoError::Daemon(e));
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(DemoError::Daemon("no answer on the API after 30 s".into()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // A tenant that may be called at any hour (so the demo works whenever it runs),
    // two attempts one minute apart.
    let tenant = serde_json::json!({"name": "デモ町会", "window_start": "00:00", "window_end": "23:59", "skip_holidays": false,
        "retry": {"max_attempts": 2, "spacing_minutes": 1, "retry_no_answer": true, "retry_busy": true,
                  "retry_failed": true, "retry_no_input": false, "carry_to_next_window": true}});
    let t = api(
        &api_addr,
        "POST",
        "/v1/tenants",
        &token,
        tenant.to_string().as_bytes(),
        201,
    )
    .await?;
    let tid = t["id"].as_u64().unwrap_or(0);
    let office = serde_json::json!({"name": "地域包括支援センター", "phone": format!("sip:office@127.0.0.1:{office_port}")});
    let w = api(
        &api_addr,
        "POST",
        &format!("/v1/tenants/{tid}/watchers"),
        &token,
        office.to_string().as_bytes(),
        201,
    )
    .await?;
    let ladder = serde_json::json!({"tiers": [{"watchers": [w["id"]], "deadline_s": 600}]});
    api(
        &api_addr,
        "PUT",
        &format!("/v1/tenants/{tid}/ladder"),
        &token,
        ladder.to_string().as_bytes(),
        200,
    )
    .await?;
    let mut csv = String::from("name,phone\n");
    let mut planned = Vec::new();
    for i in 0..n {
        let bucket = (i * 100 / n.max(1)) % 100;
        let mut acc = 0;
        let g = GROUPS.iter().position(|g| {
            acc += g.share_percent;
            bucket < acc
        });
        let g = g.unwrap_or(0);
        planned.push(g);
        csv.push_str(&format!("demo {i:04},sip:{i}@127.0.0.1:{}\n", ports[g]));
    }
    let imported = api(
        &api_addr,
        "POST",
        &format!("/v1/tenants/{tid}/subscribers/import"),
        &token,
        csv.as_bytes(),
        200,
    )
    .await?;
    let ids: Vec<u64> = imported["ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
        .unwrap_or_default();
    eprintln!(
        "genki demo: enrolled {} subscribers through the API; calling them now",
        ids.len()
    );
    for g in GROUPS.iter().enumerate() {
        eprintln!(
            "  {:>4} phones that {}",
            planned.iter().filter(|p| **p == g.0).count(),
            g.1.label
        );
    }
    for id in &ids {
        api(
            &api_addr,
            "POST",
            &format!("/v1/subscribers/{id}/checks"),
            &token,
            b"",
            202,
        )
        .await?;
    }
    let limit = Duration::from_secs(600);
    let round = Instant::now();
    let summary = loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let s = api(
            &api_addr,
            "GET",
            &format!("/v1/tenants/{tid}/summary"),
            &token,
            b"",
            200,
        )
        .await?;
        let o = &s["outcomes"];
        eprintln!(
            "  [{:>4}s] fine {:>4}  needs_contact {:>3}  no_response {:>3}  missed {:>3}  | in call {:>3}  waiting {:>4}",
            round.elapsed().as_secs(),
            o["fine"],
            o["needs_contact"],
            o["no_response"],
            o["missed"],
            s["in_progress"],
            s["pending"]
        );
        if s["pending"] == 0
            && s["in_progress"] == 0
            && s["total"].as_u64() == Some(ids.len() as u64)
        {
            break s;
        }
        if round.elapsed() > limit {
            return Err(DemoError::Timeout(limit));
        }
    };
    // Every bad outcome opened an alert case; the office takes each by phone.
    eprintln!("genki demo: round done; the welfare office is being called about each alert case");
    let bad = ["needs_contact", "no_response", "missed"]
        .iter()
        .filter_map(|k| summary["outcomes"][k].as_u64())
        .sum::<u64>();
    let cases = loop {
        let all = api(
            &api_addr,
            "GET",
            &format!("/v1/tenants/{tid}/alerts?state=all&limit=1000"),
            &token,
            b"",
            200,
        )
        .await?;
        let list = all["alerts"].as_array().cloned().unwrap_or_default();
        let taken = list.iter().filter(|c| c["state"] != "open").count();
        eprintln!(
            "  [{:>4}s] alert cases {:>3}  taken {:>3}",
            round.elapsed().as_secs(),
            list.len(),
            taken
        );
        if list.len() as u64 >= bad && taken == list.len() {
            break list;
        }
        if round.elapsed() > limit {
            return Err(DemoError::Timeout(limit));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let mut summary = summary;
    summary["alerts"] = serde_json::json!({
        "cases": cases.len(),
        "urgent": cases.iter().filter(|c| c["severity"] == "urgent").count(),
        "taken_by": cases.iter().filter_map(|c| c["acked_by"].as_str()).collect::<std::collections::BTreeSet<_>>(),
    });
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(90), daemon).await;
    for mut c in children {
        let _ = c.kill().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(summary)
}
