//! End-to-end: hostile input (issue 12), through the real `genki serve`.
//!
//! - Spoofed answers: during a live call, from sockets that are not the
//!   callee, a 200 OK with a wrong branch and one with the right branch, a
//!   BYE and an INFO `Signal=1` with the dialog's tags, RFC 4733 "1" from a
//!   third address and from the callee's host with an undeclared SSRC. The
//!   stored outcome is what the real phone pressed, the person's open case
//!   is not resolved, and each SIP spoof is counted.
//! - The trunk's digest credentials never answer a challenge from a host a
//!   tenant names as a phone (no proxy, the trunk's domain elsewhere).
//! - Webhooks never reach loopback, link-local or the API itself.
//! - Tenants cannot raise their limits; CSV cells are never formulas.
//! - Under a live 200-call round: junk uploads, 500 idle connections and
//!   20,000 datagrams/s of stray SIP change nothing in the round.
//! - Tokens rotate and revoke; `/metrics` needs a token.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;
use genki_sip::message::Message;
use serde_json::json;

/// A Tuesday morning in Tokyo that is not a holiday.
const CLOCK: &str = "2026-11-24T10:00:00+09:00";

/// The next SIP message the eavesdropper sees whose first line starts with `start`.
fn overhear(leak: &UdpSocket, start: &str) -> Message {
    let mut buf = vec![0u8; 65536];
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < until, "never overheard {start}");
        let Ok((n, _)) = leak.recv_from(&mut buf) else {
            continue;
        };
        if buf[..n].starts_with(start.as_bytes()) {
            return Message::parse(&buf[..n]).expect("SIP");
        }
    }
}

/// RFC 4733 "1" (three packets, the last with E) from `sock` to `to`.
fn key_one(sock: &UdpSocket, to: (&str, u16), ssrc: u32, seq: u16) {
    for (k, end) in [(0u16, false), (1, false), (2, true)] {
        let mut p = vec![0x80, 101];
        p.extend_from_slice(&seq.wrapping_add(k).to_be_bytes());
        p.extend_from_slice(&(seq as u32 * 160).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[1, if end { 0x80 | 10 } else { 10 }, 0x03, 0x20]);
        let _ = sock.send_to(&p, to);
    }
}

#[test]
fn spoofed_answers_keys_and_byes_from_strangers_change_nothing() {
    let dir = temp_dir("hostile-spoof");
    let d = Daemon::start(
        dir.clone(),
        &[("GENKI_SIP_T1_MS", "100")],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    let tid = create_tenant(&http, &json!({"name": "spoof", "retry": no_retries()}));
    let port = free_port();
    let r = http.post(
        &format!("/v1/tenants/{tid}/subscribers"),
        &json!({"name": "高橋 和子", "phone": format!("sip:1001@127.0.0.1:{port}")}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let sid = r.json()["id"].as_u64().unwrap();

    // First the line is busy: a missed check opens the person's case.
    let busy = phones(port, &["--behaviour", "busy"]);
    let v = wait_done(&http, &check_now(&http, sid), Duration::from_secs(30));
    assert_eq!(v["outcome"], "missed", "{v}");
    phone_records(busy);
    let open_case = poll(
        &http,
        &format!("/v1/tenants/{tid}/alerts"),
        Duration::from_secs(20),
        |v| v["alerts"].as_array().is_some_and(|a| !a.is_empty()),
    )["alerts"][0]["id"]
        .as_u64()
        .unwrap();

    // Then the person answers late and presses 2; an eavesdropper on the
    // path sees every SIP datagram the phone receives.
    let leak = UdpSocket::bind("127.0.0.1:0").unwrap();
    leak.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let leak_to = leak.local_addr().unwrap().to_string();
    let phone = phones(
        port,
        &[
            "--answer-delay-ms",
            "2000",
            "--digits",
            "2",
            "--digit-delay-ms",
            "3000",
            "--leak-to",
            &leak_to,
        ],
    );
    let cid = check_now(&http, sid);
    let invite = overhear(&leak, "INVITE");
    let genki = ("127.0.0.1", d.sip_port);
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sdp = String::from_utf8_lossy(&invite.body).to_string();
    let rtp_port: u16 = sdp
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("genki's RTP port in its offer");
    let h = |name: &str| invite.header(name).unwrap_or("").to_string();
    let stranger_rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let answer = |via: &str| {
        let body = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
            stranger_rtp.local_addr().unwrap().port()
        );
        format!(
            "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: {}\r\nTo: {};tag=spoofer\r\nCall-ID: {}\r\n\
             CSeq: {}\r\nContact: <sip:x@{}>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{body}",
            h("From"),
            h("To"),
            invite.call_id,
            h("CSeq"),
            stranger.local_addr().unwrap(),
            body.len()
        )
    };
    // While it rings: a 200 on a forged branch, and one on the right
    // branch, both from the stranger.
    let forged = h("Via").replace("branch=", "branch=z9hG4bKforged");
    stranger.send_to(answer(&forged).as_bytes(), genki).unwrap();
    stranger
        .send_to(answer(&h("Via")).as_bytes(), genki)
        .unwrap();
    // The real answer: genki's ACK carries the callee's tag.
    let ack = overhear(&leak, "ACK");
    let callee_tag = ack.to_tag.clone().expect("callee's tag");
    let genki_from = ack.header("From").unwrap().to_string();
    let in_dialog = |method: &str, cseq: u32, ctype: &str, body: &str| {
        format!(
            "{method} sip:genki@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKspoof{cseq}\r\n\
             From: <sip:1001@127.0.0.1:{port}>;tag={callee_tag}\r\nTo: {genki_from}\r\nCall-ID: {}\r\n\
             CSeq: {cseq} {method}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
            d.sip_port,
            stranger.local_addr().unwrap(),
            invite.call_id,
            body.len()
        )
    };
    // Before the real key (3 s after the answer): INFO "1", RFC 4733 "1"
    // from two strangers, then a BYE.
    stranger
        .send_to(
            in_dialog(
                "INFO",
                20,
                "application/dtmf-relay",
                "Signal=1\r\nDuration=160\r\n",
            )
            .as_bytes(),
            genki,
        )
        .unwrap();
    let third = UdpSocket::bind("127.0.0.2:0").unwrap();
    for i in 0..20u16 {
        key_one(&third, ("127.0.0.1", rtp_port), 0x0bad_cafe, i * 3);
        key_one(
            &stranger_rtp,
            ("127.0.0.1", rtp_port),
            0x5eed_0000 + i as u32,
            i * 3,
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stranger
        .send_to(in_dialog("BYE", 21, "text/plain", "").as_bytes(), genki)
        .unwrap();

    let v = wait_done(&http, &cid, Duration::from_secs(30));
    assert_eq!(v["outcome"], "needs_contact", "what the phone pressed: {v}");
    assert_eq!(v["attempts"][0]["digits"], "2", "{v}");
    let recs = phone_records(phone);
    assert_eq!(recs[0]["digits_sent"], "2");
    assert_eq!(
        recs[0]["ended_by"], "remote_bye",
        "genki hung up, not the spoof"
    );
    let case = http.get(&format!("/v1/alerts/{open_case}")).json();
    assert_ne!(case["state"], "resolved", "{case}");
    let spoofed = metric(&http, "genki_sip_spoofed_total");
    assert!(spoofed >= 4, "spoofs counted: {spoofed}");
    // (Strangers' RTP is not counted here: once the call latched to the
    // phone, its socket is connected to it and the kernel drops datagrams
    // from anyone else before genki reads them.)
}

/// One call to a phone that challenges every INVITE (realm
/// "genki-phones"), under the trunk settings `env`: the attempt's end
/// reason, and whether the phone ever received an `Authorization`.
fn credentials_sent_to_a_challenging_phone(name: &str, env: &[(&str, &str)]) -> (String, bool) {
    let dir = temp_dir(name);
    let mut all = vec![
        ("GENKI_SIP_T1_MS", "100"),
        ("GENKI_TRUNK_USER", "alice"),
        ("GENKI_TRUNK_PASSWORD", "s3cret"),
        // What the test is about: a phone given as a SIP URI.
        ("GENKI_TRUNK_URI_PHONES", "allow"),
    ];
    all.extend_from_slice(env);
    let d = Daemon::start(dir.clone(), &all, &["--clock-start", CLOCK]);
    let http = d.http();
    let tid = create_tenant(&http, &json!({"name": "creds", "retry": no_retries()}));
    let port = free_port();
    // The phone challenges every INVITE; an eavesdropper sees what it gets.
    let leak = UdpSocket::bind("127.0.0.1:0").unwrap();
    leak.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let leak_to = leak.local_addr().unwrap().to_string();
    let collector = KillOnDrop(phones(
        port,
        &["--auth", "alice:s3cret", "--leak-to", &leak_to],
    ));
    let r = http.post(
        &format!("/v1/tenants/{tid}/subscribers"),
        &json!({"name": "偽", "phone": format!("sip:x@127.0.0.1:{port}")}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let cid = check_now(&http, r.json()["id"].as_u64().unwrap());
    let v = poll(
        &http,
        &format!("/v1/checks/{cid}"),
        Duration::from_secs(30),
        |v| v["attempts"].as_array().is_some_and(|a| !a.is_empty()),
    );
    // Everything the phone received, until a second past the attempt.
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 65536];
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if let Ok((n, _)) = leak.recv_from(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
    }
    drop(collector);
    assert!(
        seen.iter().any(|m| m.starts_with("INVITE ")),
        "the phone was called: {seen:?}"
    );
    let sent = seen
        .iter()
        .any(|m| m.to_ascii_lowercase().contains("authorization:"));
    (
        v["attempts"][0]["end_reason"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        sent,
    )
}

/// A tenant names a phone at a host that challenges: genki never answers
/// the challenge with the trunk's credentials when the host is not the
/// trunk's (no proxy, the trunk's domain elsewhere), nor when the
/// challenge is of another realm than the trunk's (`[trunk] realm`); the
/// trunk's own host and realm get them (the control: the eavesdropper
/// does see credentials then).
#[test]
fn the_trunk_credentials_never_answer_a_challenge_from_elsewhere() {
    let (end, sent) = credentials_sent_to_a_challenging_phone(
        "hostile-creds-host",
        &[("GENKI_TRUNK_DOMAIN", "trunk.example.jp")],
    );
    assert_eq!(
        (end.as_str(), sent),
        ("auth_failed:401", false),
        "another host"
    );
    let (end, sent) = credentials_sent_to_a_challenging_phone(
        "hostile-creds-realm",
        &[
            ("GENKI_TRUNK_DOMAIN", "127.0.0.1"),
            ("GENKI_TRUNK_REALM", "carrier.example.jp"),
        ],
    );
    assert_eq!(
        (end.as_str(), sent),
        ("auth_failed:401", false),
        "another realm"
    );
    let (_, sent) = credentials_sent_to_a_challenging_phone(
        "hostile-creds-trunk",
        &[
            ("GENKI_TRUNK_DOMAIN", "127.0.0.1"),
            ("GENKI_TRUNK_REALM", "genki-phones"),
        ],
    );
    assert!(sent, "the trunk's host and realm get the credentials");
}

/// Watchers' webhooks aimed at genki's own network: the admin API itself,
/// the cloud metadata address, [::1], a name that resolves to loopback,
/// and an allowed receiver that answers 307 towards loopback. Each is
/// refused or not followed, and the timeline says so without the detail.
#[test]
fn webhooks_never_reach_genkis_own_network() {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    let dir = temp_dir("hostile-ssrf");
    // Where a followed redirect (or a loopback POST) would land.
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let target_port = target.local_addr().unwrap().port();
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for s in target.incoming().flatten() {
            h.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    // An allowed receiver that redirects (307 keeps the POST) to loopback.
    let redirector = TcpListener::bind("127.0.0.3:0").unwrap();
    let redirector_addr = redirector.local_addr().unwrap();
    let redirected = Arc::new(AtomicU64::new(0));
    let r2 = redirected.clone();
    std::thread::spawn(move || {
        for mut s in redirector.incoming().flatten() {
            r2.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 8192];
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{target_port}/stolen\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    let busy_port = free_port();
    let busy = phones(busy_port, &["--behaviour", "busy"]);
    let d = Daemon::start(
        dir.clone(),
        &[
            ("GENKI_SIP_T1_MS", "100"),
            ("GENKI_ALERTS_WEBHOOK_ALLOW", "127.0.0.3/32"),
            ("GENKI_ALERTS_BACKOFF_S", "1"),
            ("GENKI_ALERTS_MAX_TRIES", "2"),
        ],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    let tid = create_tenant(&http, &json!({"name": "ssrf", "retry": no_retries()}));
    let urls = [
        format!("http://{}/v1/tenants", d.api),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("http://[::1]:{target_port}/"),
        format!("http://localhost:{target_port}/"),
        format!("http://{redirector_addr}/hook"),
    ];
    let watchers: Vec<u64> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let r = http.post(
                &format!("/v1/tenants/{tid}/watchers"),
                &json!({"name": format!("w{i}"), "webhook_url": url, "webhook_secret": "watcher-secret-0123"}),
            );
            assert_eq!(r.status, 201, "{url}: {}", r.body);
            r.json()["id"].as_u64().unwrap()
        })
        .collect();
    let r = http.request(
        "PUT",
        &format!("/v1/tenants/{tid}/ladder"),
        Some(
            json!({"tiers": [{"watchers": watchers, "deadline_s": 3600}]})
                .to_string()
                .as_bytes(),
        ),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http.post(
        &format!("/v1/tenants/{tid}/subscribers"),
        &json!({"name": "山本", "phone": format!("sip:b@127.0.0.1:{busy_port}")}),
    );
    let sid = r.json()["id"].as_u64().unwrap();
    let v = wait_done(&http, &check_now(&http, sid), Duration::from_secs(30));
    assert_eq!(v["outcome"], "missed", "{v}");
    phone_records(busy);
    let case_id = poll(
        &http,
        &format!("/v1/tenants/{tid}/alerts?state=open"),
        Duration::from_secs(15),
        |v| v["alerts"].as_array().is_some_and(|a| a.len() == 1),
    )["alerts"][0]["id"]
        .as_u64()
        .unwrap();
    let case = poll(
        &http,
        &format!("/v1/alerts/{case_id}"),
        Duration::from_secs(60),
        |v| {
            v["notifications"]
                .as_array()
                .is_some_and(|ns| ns.len() == 5 && ns.iter().all(|n| n["state"] == "given_up"))
        },
    );
    let errors: Vec<String> = case["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["last_error"].as_str().unwrap_or("").to_string())
        .collect();
    for e in &errors {
        for detail in [
            "127.0.0",
            "169.254",
            "::1",
            "localhost",
            "os error",
            "tcp",
            "refused",
        ] {
            assert!(!e.contains(detail), "internal detail {detail:?} in {e:?}");
        }
    }
    assert_eq!(
        errors.iter().filter(|e| e.contains("not allowed")).count(),
        4,
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("307") && e.contains("not followed")),
        "{errors:#?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached loopback");
    assert!(
        redirected.load(Ordering::SeqCst) >= 1,
        "the allowed receiver was posted to"
    );
}

/// A tenant's token cannot raise its own trunk share (`cps`, `max_calls`:
/// the operator's), and the outcomes CSV never hands Excel a formula from
/// a name a tenant typed.
#[test]
fn tenants_cannot_raise_their_limits_and_csv_cells_are_not_formulas() {
    let dir = temp_dir("hostile-tenant");
    let d = Daemon::start(
        dir.clone(),
        &[("GENKI_SIP_T1_MS", "100")],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    let r = http.post(
        "/v1/tenants",
        &json!({"name": "limits", "cps": 2, "retry": no_retries()}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let tid = r.json()["id"].as_u64().unwrap();
    let tenant = http.with_token(r.json()["token"].as_str().unwrap());
    for body in [json!({"cps": 1000}), json!({"max_calls": 100000})] {
        let r = tenant.patch(&format!("/v1/tenants/{tid}"), &body);
        assert_eq!(r.status, 403, "{body}: {}", r.body);
    }
    assert_eq!(tenant.get(&format!("/v1/tenants/{tid}")).json()["cps"], 2.0);
    let r = http.patch(&format!("/v1/tenants/{tid}"), &json!({"cps": 5}));
    assert_eq!(r.status, 200, "the operator may: {}", r.body);

    let port = free_port();
    let busy = phones(port, &["--behaviour", "busy"]);
    let r = tenant.post(
        &format!("/v1/tenants/{tid}/subscribers"),
        &json!({"name": "=HYPERLINK(\"http://evil.example\",\"x\")", "phone": format!("sip:f@127.0.0.1:{port}")}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let v = wait_done(
        &tenant,
        &check_now(&tenant, r.json()["id"].as_u64().unwrap()),
        Duration::from_secs(30),
    );
    assert!(v["outcome"].is_string(), "{v}");
    phone_records(busy);
    let csv = tenant
        .request(
            "GET",
            &format!("/v1/tenants/{tid}/outcomes?from=0"),
            None,
            &[("Accept", "text/csv")],
        )
        .body;
    assert!(csv.contains("'=HYPERLINK"), "{csv}");
    assert!(
        !csv.contains(",=HYPERLINK") && !csv.contains(",\"=HYPERLINK"),
        "{csv}"
    );
}

/// A small valid WAV (8 kHz, mono, 16-bit, 0.1 s of a tone).
fn tiny_wav() -> Vec<u8> {
    let samples: Vec<i16> = (0..800)
        .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        w.extend_from_slice(&s.to_le_bytes());
    }
    w
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Issue 12's acceptance 4: under a live 200-call round, a tenant sends a
/// 16 MiB CSV of junk rows, a CSV whose `days` cells are `1-255`
/// repeated, 1,000 prompt uploads; 500 connections sit idle on the API;
/// 20,000 datagrams a second of unsolicited SIP arrive for 10 s. The
/// round's ledger is what it would have been (each of the 200 called
/// once, each check fine), the API answers 413/422/429 as it should, the
/// idle connections are closed within 30 s, RSS grows by less than 300 MB.
#[test]
fn a_live_round_survives_floods_of_junk_uploads_idle_connections_and_stray_sip() {
    use std::io::{Read, Write};
    let dir = temp_dir("hostile-floods");
    let port = free_port();
    let n = 200;
    let phones = phones_for(&dir, port, 0, &["--digit-delay-ms", "4000"]);
    let d = Daemon::start(
        dir.clone(),
        &[("GENKI_SIP_T1_MS", "100"), ("GENKI_TRUNK_CPS", "10")],
        &["--clock-start", CLOCK],
    );
    let pid = d.child.as_ref().unwrap().id();
    let http = d.http();
    let r = http.post(
        "/v1/tenants",
        &json!({"name": "floods", "cps": 10, "retry": no_retries()}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let tid = r.json()["id"].as_u64().unwrap();
    let tenant = http.with_token(r.json()["token"].as_str().unwrap());
    let mut roll = String::from("name,phone\n");
    for i in 0..n {
        roll.push_str(&format!("利用者{i},sip:p{i}@127.0.0.1:{port}\n"));
    }
    let r = http.request(
        "POST",
        &format!("/v1/tenants/{tid}/subscribers/import"),
        Some(roll.as_bytes()),
        &[("Content-Type", "text/csv")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let ids: Vec<u64> = r.json()["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), n);
    let rss_before = rss_kib(pid);
    let checks: Vec<String> = ids.iter().map(|id| check_now(&http, *id)).collect();

    // 500 idle connections: half say nothing, half send half a header.
    let api = d.api.clone();
    let idle = std::thread::spawn(move || {
        let t0 = Instant::now();
        let socks: Vec<std::net::TcpStream> = (0..500)
            .map(|i| {
                let mut s = std::net::TcpStream::connect(&api).expect("connect");
                if i % 2 == 1 {
                    let _ = s.write_all(b"GET /v1/tenants HTTP/1.1\r\nHost: x\r\n");
                }
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                s
            })
            .collect();
        let mut closed_after = Vec::new();
        for mut s in socks {
            let mut b = [0u8; 1024];
            // EOF, a reset or (for the half header) a 408 then EOF.
            loop {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => continue,
                }
            }
            closed_after.push(t0.elapsed());
        }
        closed_after.into_iter().max().unwrap()
    });

    // 20,000 datagrams a second of SIP for no call, for 10 s, from an
    // address no call was sent to (the phones are on 127.0.0.1).
    let sip_port = d.sip_port;
    let flood = std::thread::spawn(move || {
        let s = UdpSocket::bind("127.0.0.2:0").unwrap();
        let t0 = Instant::now();
        let mut sent = 0u64;
        while t0.elapsed() < Duration::from_secs(10) {
            let due = (t0.elapsed().as_micros() as u64) / 50;
            while sent < due {
                let m = match sent % 3 {
                    0 => "OPTIONS",
                    1 => "BYE",
                    _ => "INFO",
                };
                let msg = format!(
                    "{m} sip:genki@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{sent}\r\n\
                     From: <sip:x@127.0.0.1>;tag={sent}\r\nTo: <sip:genki@127.0.0.1>\r\n\
                     Call-ID: flood-{sent}\r\nCSeq: 1 {m}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                );
                let _ = s.send_to(msg.as_bytes(), ("127.0.0.1", sip_port));
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        sent
    });

    // A 16 MiB CSV of junk rows: refused whole (413), nothing stored.
    let mut junk = String::from("name,phone,days\n");
    let mut i = 0u64;
    while junk.len() < 16 * 1024 * 1024 - 64 {
        junk.push_str(&format!("x{i},junk{i},1-255\n"));
        i += 1;
    }
    let r = tenant.request(
        "POST",
        &format!("/v1/tenants/{tid}/subscribers/import"),
        Some(junk.as_bytes()),
        &[("Content-Type", "text/csv")],
    );
    assert_eq!(r.status, 413, "{}", &r.body[..r.body.len().min(300)]);
    assert!(r.body.contains("too_many_rows"), "{}", r.body);
    // Days cells of 1-255 repeated: every row refused, listed up to a bound.
    let mut days = String::from("name,phone,days,times\n");
    let cell = ["1-255"; 12].join(",");
    for i in 0..2000 {
        days.push_str(&format!("d{i},+8147000{i:04},\"{cell}\",09:00\n"));
    }
    let r = tenant.request(
        "POST",
        &format!("/v1/tenants/{tid}/subscribers/import"),
        Some(days.as_bytes()),
        &[("Content-Type", "text/csv")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["imported"], 0, "{}", &r.body[..300]);
    assert_eq!(v["errors"].as_array().unwrap().len(), 1000);
    assert_eq!(v["errors_omitted"], 1000);

    // 1,000 prompt uploads: 64 kept, then 422, and 429 once over the rate.
    let wav = tiny_wav();
    let mut by_status = std::collections::BTreeMap::<u16, u32>::new();
    for i in 0..1000 {
        let r = tenant.request(
            "PUT",
            &format!("/v1/tenants/{tid}/prompts/p{i}"),
            Some(&wav),
            &[("Content-Type", "audio/wav")],
        );
        *by_status.entry(r.status).or_default() += 1;
        if r.status == 429 {
            assert!(r.headers.to_ascii_lowercase().contains("retry-after"));
        }
    }
    assert_eq!(by_status.get(&201), Some(&64), "{by_status:?}");
    assert!(by_status.get(&422).is_some_and(|n| *n > 0), "{by_status:?}");
    assert!(by_status.get(&429).is_some_and(|n| *n > 0), "{by_status:?}");
    assert_eq!(
        by_status.keys().copied().collect::<Vec<_>>(),
        vec![201, 422, 429],
        "{by_status:?}"
    );

    let sent = flood.join().unwrap();
    let rss_peak = rss_kib(pid);
    let slowest_close = idle.join().unwrap();
    for c in &checks {
        let v = wait_done(&http, c, Duration::from_secs(120));
        assert_eq!(v["outcome"], "fine", "{v}");
    }
    let ledger = records_of(phones, n, Duration::from_secs(30));
    let mut called: Vec<&str> = ledger.iter().filter_map(|r| r["callee"].as_str()).collect();
    called.sort();
    called.dedup();
    assert_eq!(
        (ledger.len(), called.len()),
        (n, n),
        "each person called exactly once"
    );
    assert!(
        slowest_close <= Duration::from_secs(32),
        "an idle connection stayed open {slowest_close:?}"
    );
    let grown_mb = rss_peak.saturating_sub(rss_before) / 1024;
    assert!(grown_mb < 300, "RSS grew {grown_mb} MB");
    let dropped = metric(&http, "genki_sip_strangers_dropped_total");
    // At most 100 answers a second went out; the rest were dropped by
    // genki (or, in a debug build, by the kernel before genki read them).
    assert!(
        dropped > 10_000,
        "{dropped} of {sent} stray requests dropped"
    );
    assert!(metric(&http, "genki_api_rate_limited_total") > 0);
    let count = http.get(&format!("/v1/tenants/{tid}/subscribers?limit=1000"));
    assert_eq!(
        count.json()["items"].as_array().unwrap().len(),
        n,
        "nothing from the junk was stored"
    );
    eprintln!(
        "stray SIP sent {sent}, dropped {dropped}; RSS {rss_before} → {rss_peak} KiB; \
         slowest idle close {slowest_close:?}; prompts {by_status:?}"
    );
}

/// Tenant tokens rotate (issue a new one, revoke the old — even the one
/// asking) and another tenant cannot see or revoke them; `/metrics` needs
/// the operator's token or the scrape token, which opens nothing else.
#[test]
fn tokens_rotate_and_revoke_and_metrics_need_a_token() {
    let dir = temp_dir("hostile-tokens");
    let d = Daemon::start(
        dir.clone(),
        &[("GENKI_API_METRICS_TOKEN", "scrape-0123456789")],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    let made = |name: &str| {
        let r = http.post("/v1/tenants", &json!({ "name": name }));
        assert_eq!(r.status, 201, "{}", r.body);
        let v = r.json();
        (
            v["id"].as_u64().unwrap(),
            http.with_token(v["token"].as_str().unwrap()),
        )
    };
    let (tid, old) = made("rotating");
    let (other_tid, other) = made("other");
    let r = old.post(&format!("/v1/tenants/{tid}/tokens"), &json!({}));
    assert_eq!(r.status, 201, "{}", r.body);
    let new = http.with_token(r.json()["token"].as_str().unwrap());
    let new_id = r.json()["id"].as_str().unwrap().to_string();
    let list = new.get(&format!("/v1/tenants/{tid}/tokens")).json();
    let ids: Vec<String> = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    assert!(
        !list.to_string().contains(&new.token),
        "tokens are never listed"
    );
    let old_id = ids.iter().find(|i| **i != new_id).unwrap();
    // Another tenant sees none of it.
    assert_eq!(other.get(&format!("/v1/tenants/{tid}/tokens")).status, 404);
    assert_eq!(
        other
            .request(
                "DELETE",
                &format!("/v1/tenants/{tid}/tokens/{old_id}"),
                None,
                &[]
            )
            .status,
        404
    );
    // The old token revokes itself: refused from the next request on.
    let r = old.request(
        "DELETE",
        &format!("/v1/tenants/{tid}/tokens/{old_id}"),
        None,
        &[],
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(old.get(&format!("/v1/tenants/{tid}")).status, 401);
    assert_eq!(new.get(&format!("/v1/tenants/{tid}")).status, 200);
    assert_eq!(other.get(&format!("/v1/tenants/{other_tid}")).status, 200);

    // Metrics: the operator or the scrape token; not a tenant, not anonymous.
    assert_eq!(http.get("/metrics").status, 200);
    assert_eq!(new.get("/metrics").status, 403);
    assert_eq!(http.with_token("").get("/metrics").status, 401);
    let scrape = http.with_token("scrape-0123456789");
    let m = scrape.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(m.body.contains("genki_checks_total"));
    assert_eq!(scrape.get(&format!("/v1/tenants/{tid}")).status, 401);
    assert_eq!(scrape.get("/v1/tenants/1/subscribers").status, 401);
}

/// Issue 12's acceptance 5: a person with a year of history — a year of
/// daily checks and attempts in storage, and real calls through genki
/// (a fine one, and a "2" that opened a case and told a watcher by
/// webhook), their name prompt and their own ladder — is erased through
/// the API. A scan of every column family of the RocksDB then finds none
/// of their id, name, phone or prompt; another person's records are all
/// there; every day's counts of the tenant are what they were.
#[test]
fn erasing_a_person_with_a_year_of_history_leaves_no_trace_and_the_counts() {
    const W_SECRET: &str = "watcher-secret-0123";
    let dir = temp_dir("hostile-erase");
    let port = free_port();
    let hook = Peer::start(
        &dir,
        "webhook",
        true,
        &["--secret", W_SECRET, "--max-seconds", "120"],
    );
    let mut d = Daemon::start(
        dir.clone(),
        &[
            ("GENKI_SIP_T1_MS", "100"),
            ("GENKI_ALERTS_WEBHOOK_ALLOW", "127.0.0.0/8"),
        ],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    let tid = create_tenant(&http, &json!({"name": "erase", "retry": no_retries()}));
    let mut roll = String::from("name,phone\n");
    for i in 0..300 {
        if i == 259 {
            roll.push_str(&format!("消去 太郎,sip:erase-me-7731@127.0.0.1:{port}\n"));
        } else {
            roll.push_str(&format!("利用者{i},sip:k{i}@127.0.0.1:{port}\n"));
        }
    }
    let r = http.request(
        "POST",
        &format!("/v1/tenants/{tid}/subscribers/import"),
        Some(roll.as_bytes()),
        &[("Content-Type", "text/csv")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let ids: Vec<u64> = r.json()["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let (gone, kept) = (ids[259], ids[10]);
    assert!(gone >= 256, "an id whose bytes are distinctive: {gone}");
    webhook_ladder(&http, tid, &format!("http://{}/w", hook.addr), W_SECRET);
    // Their own ladder and their name prompt.
    let body = json!({"tiers": [{"watchers": [], "deadline_s": 600}]}).to_string();
    let _ = http.request(
        "PUT",
        &format!("/v1/subscribers/{gone}/ladder"),
        Some(body.as_bytes()),
        &[("Content-Type", "application/json")],
    );
    let r = http.request(
        "PUT",
        &format!("/v1/tenants/{tid}/prompts/name-{gone}"),
        Some(&tiny_wav()),
        &[("Content-Type", "audio/wav")],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // Real calls: fine, then "2" (a case opens, the watcher is told).
    for digits in ["1", "2"] {
        let phones = phones(port, &["--digits", digits]);
        let v = wait_done(&http, &check_now(&http, gone), Duration::from_secs(30));
        assert!(v["outcome"].is_string(), "{v}");
        let v = wait_done(&http, &check_now(&http, kept), Duration::from_secs(30));
        assert!(v["outcome"].is_string(), "{v}");
        phone_records(phones);
    }
    hook.wait_for("the watcher told", Duration::from_secs(30), |r| {
        !r.is_empty()
    });
    assert_eq!(http.get(&format!("/v1/subscribers/{gone}")).status, 200);
    let (code, _) = d.terminate();
    assert_eq!(code, 0);

    // A year of daily history for both, written through the storage API.
    let today = jiff::civil::date(2026, 11, 24);
    let days = seed_history(&dir, tid, &[gone, kept], today, 365);
    d.spawn();
    let http = d.http();
    let mut all_days = days.clone();
    all_days.push(today);
    let counts = |http: &Http| day_counts(http, tid, &all_days);
    let before = counts(&http);
    assert!(before[0].contains(" 2 "), "two checks a day: {}", before[0]);

    let r = http.request(
        "DELETE",
        &format!("/v1/subscribers/{gone}?erase=true"),
        None,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let removed = r.json();
    assert_eq!(removed["checks"], 367, "{removed}");
    // The "2" opened one; the seeded missed days opened more after the
    // restart (the alert engine reads every final outcome).
    assert!(removed["cases"].as_u64() >= Some(1), "{removed}");
    assert!(removed["notifications"].as_u64() >= Some(1), "{removed}");
    assert_eq!(removed["prompts"], 1, "{removed}");
    assert_eq!(http.get(&format!("/v1/subscribers/{gone}")).status, 404);
    assert_eq!(counts(&http), before, "the tenant's counts are unchanged");
    let trail = http
        .get(&format!("/v1/audit?tenant={tid}&limit=1000"))
        .json();
    let text = trail.to_string();
    assert!(text.contains("erase_subscriber") && text.contains("read_subscriber"));
    assert!(!text.contains(&format!("\"subscriber\":{gone}")), "{text}");
    // Paged one entry at a time, the trail moves on (entries of one
    // millisecond are told apart by their sequence).
    let mut after = String::new();
    let mut seqs = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let v = http
            .get(&format!("/v1/audit?tenant={tid}&limit=1&after={after}"))
            .json();
        let Some(seq) = v["entries"][0]["seq"].as_u64() else {
            break;
        };
        assert!(seqs.insert(seq), "entry {seq} came twice");
        match v["next"].as_str() {
            Some(n) => after = n.to_string(),
            None => break,
        }
    }
    assert_eq!(seqs.len(), 20, "twenty pages of one");
    let (code, _) = d.terminate();
    assert_eq!(code, 0);

    // Every column family, every key and value.
    let store = genki_storage::open(&dir.join("db")).unwrap();
    let id = gone.to_be_bytes();
    let needles: Vec<Vec<u8>> = vec![
        "消去 太郎".as_bytes().to_vec(),
        b"erase-me-7731".to_vec(),
        format!("name-{gone}").into_bytes(),
        format!("\"subscriber_id\":{gone},").into_bytes(),
        format!("\"subscriber_id\":{gone}}}").into_bytes(),
        format!("\"subscriber\":{gone}").into_bytes(),
        format!("seed-{gone}-").into_bytes(),
    ];
    let mut found = Vec::new();
    let mut kept_seen = 0;
    let mut plain_secret = Vec::new();
    for cf in genki_store::store::cf::ALL {
        store
            .kv()
            .scan(cf, &[], &mut |k, v| {
                for n in &needles {
                    if k.windows(n.len()).any(|w| w == &n[..])
                        || v.windows(n.len()).any(|w| w == &n[..])
                    {
                        found.push(format!("{cf}: {}", String::from_utf8_lossy(n)));
                    }
                }
                // Ids sit at offsets 0, 8 and 16 of genki's composite keys
                // (a tally's key is tenant, time and a counter of tallies,
                // which passes every number in time: not an id).
                for at in [0, 8, 16] {
                    if cf == genki_store::store::cf::TALLIES {
                        break;
                    }
                    if k.get(at..at + 8) == Some(&id[..]) {
                        found.push(format!("{cf}: key with the id at {at}"));
                    }
                }
                if v.windows(W_SECRET.len()).any(|w| w == W_SECRET.as_bytes()) {
                    plain_secret.push(cf);
                }
                if cf == genki_store::store::cf::CHECKS && k.starts_with(&kept.to_be_bytes()) {
                    kept_seen += 1;
                }
                true
            })
            .unwrap();
    }
    assert!(found.is_empty(), "traces of the erased person: {found:?}");
    assert!(
        plain_secret.is_empty(),
        "a webhook secret in the clear in {plain_secret:?}"
    );
    assert!(
        kept_seen >= 367,
        "the other person's records are there: {kept_seen}"
    );
}

/// Write `n` days of history before `today` for each of `people` of
/// tenant `tid` straight into genki's RocksDB (genki stopped): a check at
/// 09:30 Tokyo each day, claimed and finished with one attempt — fine,
/// missed every seventh day. Returns the days, newest first.
fn seed_history(
    dir: &std::path::Path,
    tid: u64,
    people: &[u64],
    today: jiff::civil::Date,
    n: i64,
) -> Vec<jiff::civil::Date> {
    use genki_store::{Attempt, Check, CheckId, Next, Outcome};
    let tz = jiff::tz::TimeZone::get("Asia/Tokyo").unwrap();
    let days: Vec<jiff::civil::Date> = (1..=n)
        .map(|k| today.checked_sub(jiff::Span::new().days(k)).unwrap())
        .collect();
    let store = genki_storage::open(&dir.join("db")).unwrap();
    for (k, day) in days.iter().enumerate() {
        let slot = day
            .at(9, 30, 0, 0)
            .to_zoned(tz.clone())
            .unwrap()
            .timestamp();
        let s = slot.as_second() as u64;
        for &who in people {
            let c = Check::pending(CheckId::scheduled(who, s), tid, s * 1000, s * 1000);
            store.create_check(&c).unwrap();
            store.claim(&c.id, "seed", u64::MAX).unwrap().unwrap();
            let outcome = if k % 7 == 3 {
                Outcome::Missed
            } else {
                Outcome::Fine
            };
            let attempt = Attempt {
                n: 1,
                call_id: format!("seed-{who}-{k}"),
                started_at_ms: s * 1000,
                answered: outcome == Outcome::Fine,
                digits: if outcome == Outcome::Fine {
                    "1".into()
                } else {
                    String::new()
                },
                outcome: Some(outcome),
                ..Default::default()
            };
            store
                .finish_attempt(
                    &c.id,
                    &attempt,
                    Next::Final {
                        outcome,
                        cause: None,
                    },
                    s * 1000 + 60_000,
                )
                .unwrap();
        }
    }
    store.flush().unwrap();
    days
}

/// Day summaries of tenant `tid` for `days`: total and counts by outcome.
fn day_counts(http: &Http, tid: u64, days: &[jiff::civil::Date]) -> Vec<String> {
    days.iter()
        .map(|day| {
            let v = http
                .get(&format!("/v1/tenants/{tid}/summary?date={day}"))
                .json();
            format!("{day} {} {}", v["total"], v["outcomes"])
        })
        .collect()
}

/// Retention: a tenant that keeps 30 days, with 60 days of history:
/// genki forgets the older checks at start — their records (a check's
/// page answers 404) — and keeps the recent ones, and every day's counts
/// stay what they were.
#[test]
fn retention_forgets_history_older_than_the_tenant_keeps_and_keeps_the_counts() {
    let dir = temp_dir("hostile-retention");
    let mut d = Daemon::start(dir.clone(), &[], &["--clock-start", CLOCK]);
    let http = d.http();
    let tid = create_tenant(&http, &json!({"name": "retention"}));
    let r = http.post(
        &format!("/v1/tenants/{tid}/subscribers"),
        &json!({"name": "佐藤 一郎", "phone": "+81471234567"}),
    );
    let who = r.json()["id"].as_u64().unwrap();
    let r = http.patch(
        &format!("/v1/tenants/{tid}"),
        &json!({"retention_days": 10}),
    );
    assert_eq!(r.status, 422, "fewer than 30 days: {}", r.body);
    let (code, _) = d.terminate();
    assert_eq!(code, 0);
    let today = jiff::civil::date(2026, 11, 24);
    let days = seed_history(&dir, tid, &[who], today, 60);
    d.spawn();
    let http = d.http();
    let before = day_counts(&http, tid, &days);
    let tz = jiff::tz::TimeZone::get("Asia/Tokyo").unwrap();
    let check_of = |day: &jiff::civil::Date| {
        let s = day
            .at(9, 30, 0, 0)
            .to_zoned(tz.clone())
            .unwrap()
            .timestamp()
            .as_second();
        format!("{who}-s{s}")
    };
    let (recent, old) = (check_of(&days[5]), check_of(&days[50]));
    assert_eq!(http.get(&format!("/v1/checks/{old}")).status, 200, "{old}");
    let r = http.patch(
        &format!("/v1/tenants/{tid}"),
        &json!({"retention_days": 30}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let (code, _) = d.terminate();
    assert_eq!(code, 0);
    d.spawn();
    let http = d.http();
    // The pass runs at start.
    let t0 = Instant::now();
    while http.get(&format!("/v1/checks/{old}")).status != 404 {
        assert!(t0.elapsed() < Duration::from_secs(20), "never forgotten");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(http.get(&format!("/v1/checks/{recent}")).status, 200);
    assert_eq!(day_counts(&http, tid, &days), before, "counts unchanged");
}

/// Once a trunk is configured, phones are numbers dialled through it: a
/// SIP URI (which genki would dial wherever a tenant points it) is refused
/// for a person, in a CSV row and for a watcher, unless the operator
/// allows them (`[trunk] uri_phones`). And a tenant's numbers stay within
/// the dial plan the operator gives it (`dial_allow`, which the tenant's
/// own token cannot change). And one person cannot be made to ring more
/// than ten times a day by "call now".
#[test]
fn phones_outside_what_the_operator_allows_are_refused() {
    let dir = temp_dir("hostile-uris");
    let d = Daemon::start(
        dir.clone(),
        &[("GENKI_TRUNK_DOMAIN", "trunk.example.jp")],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    let tid = create_tenant(&http, &json!({"name": "uris"}));
    let r = http.post(
        &format!("/v1/tenants/{tid}/subscribers"),
        &json!({"name": "a", "phone": "sip:premium@203.0.113.9"}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["error"]["field"], "phone");
    let r = http.post(
        &format!("/v1/tenants/{tid}/subscribers"),
        &json!({"name": "b", "phone": "+81471234567"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let sid = r.json()["id"].as_u64().unwrap();
    let r = http.patch(
        &format!("/v1/subscribers/{sid}"),
        &json!({"phone": "sip:x@203.0.113.9"}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    // "Call now" at most ten times a day for one person.
    for n in 0..10 {
        let r = http.post(&format!("/v1/subscribers/{sid}/checks"), &json!({}));
        assert_eq!(r.status, 202, "{n}: {}", r.body);
    }
    let r = http.post(&format!("/v1/subscribers/{sid}/checks"), &json!({}));
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("too_many_checks"), "{}", r.body);
    let csv = "name,phone\nc,sip:c@203.0.113.9\nd,0471234567\n";
    let r = http.request(
        "POST",
        &format!("/v1/tenants/{tid}/subscribers/import"),
        Some(csv.as_bytes()),
        &[("Content-Type", "text/csv")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["imported"], 1, "{}", r.body);
    assert_eq!(r.json()["errors"][0]["field"], "phone", "{}", r.body);
    let r = http.post(
        &format!("/v1/tenants/{tid}/watchers"),
        &json!({"name": "w", "phone": "sip:w@203.0.113.9"}),
    );
    assert_eq!(r.status, 422, "{}", r.body);

    // The dial plan: the operator's to set.
    let r = http.post("/v1/tenants", &json!({"name": "plan"}));
    let plan_tid = r.json()["id"].as_u64().unwrap();
    let tenant = http.with_token(r.json()["token"].as_str().unwrap());
    let r = tenant.patch(
        &format!("/v1/tenants/{plan_tid}"),
        &json!({"dial_allow": ["+"]}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    for bad in [json!([]), json!(["+81x"]), json!(["12345678901234567"])] {
        let r = http.patch(
            &format!("/v1/tenants/{plan_tid}"),
            &json!({ "dial_allow": bad }),
        );
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
    }
    let r = http.patch(
        &format!("/v1/tenants/{plan_tid}"),
        &json!({"dial_allow": ["+8147", "047"]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = tenant.post(
        &format!("/v1/tenants/{plan_tid}/subscribers"),
        &json!({"name": "市内", "phone": "+81471234567"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = tenant.post(
        &format!("/v1/tenants/{plan_tid}/subscribers"),
        &json!({"name": "有料", "phone": "0990123456"}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("dial plan"), "{}", r.body);
    let csv = "name,phone\ne,0471234567\nf,+442071234567\n";
    let r = tenant.request(
        "POST",
        &format!("/v1/tenants/{plan_tid}/subscribers/import"),
        Some(csv.as_bytes()),
        &[("Content-Type", "text/csv")],
    );
    assert_eq!(r.json()["imported"], 1, "{}", r.body);
    assert_eq!(r.json()["errors"][0]["line"], 3, "{}", r.body);
    let r = tenant.post(
        &format!("/v1/tenants/{plan_tid}/watchers"),
        &json!({"name": "w", "phone": "+819012345678"}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
}
