//! End-to-end: the daemon's media path (`genki serve`, one RTP port per
//! call, latching) against peers that behave as real ones do:
//! - one sipp instance answering 300 concurrent checks from one media
//!   address without `a=ssrc`, then a SIGKILL mid-round and a restart;
//! - baresip (Debian's baresip-core) naming another address in SDP than it
//!   sends RTP from, pressing "1" in-band from a WAV made with sox;
//! - strangers spraying RTP (RFC 4733 "1") at genki's RTP ports during
//!   calls, which must never change an outcome;
//! - a callee whose media never starts: a system cause within seconds,
//!   and a retry.

mod common;

use std::collections::HashSet;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// A Tuesday morning in Tokyo that is not a holiday.
const CLOCK: &str = "2026-11-24T10:00:00+09:00";

fn tenant(http: &Http, retry: Value) -> u64 {
    let r = http.post(
        "/v1/tenants",
        &json!({"name": "media", "window_start": "08:00", "window_end": "20:00", "retry": retry}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_u64().unwrap()
}

fn retry_once() -> Value {
    json!({"max_attempts": 2, "spacing_minutes": 1, "retry_no_answer": true,
        "retry_busy": true, "retry_failed": true, "retry_no_input": false, "carry_to_next_window": false})
}

fn enrol(http: &Http, tid: u64, phones: &[String]) -> Vec<u64> {
    let mut csv = String::from("name,phone\n");
    for (i, p) in phones.iter().enumerate() {
        csv.push_str(&format!("person {i},{p}\n"));
    }
    let r = http.request(
        "POST",
        &format!("/v1/tenants/{tid}/subscribers/import"),
        Some(csv.as_bytes()),
        &[],
    );
    assert_eq!(r.json()["imported"], phones.len() as u64, "{}", r.body);
    r.json()["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

/// Acceptance 1: 300 concurrent daemon checks answered by one sipp (one
/// media address for every call, no a=ssrc, RFC 2833 "1" from its pcap)
/// all end `fine`; then a SIGKILL in the middle of a second 300-call round
/// and a restart: every check ends with exactly one outcome.
#[test]
fn one_sipp_answers_300_concurrent_checks_and_a_kill_loses_none() {
    const N: usize = 300;
    let dir = temp_dir("media-sipp");
    let port = free_port();
    let media_port = free_port();
    let _sipp = KillOnDrop(sipp_uas(&dir, port, media_port, &["-timeout", "400s"]));
    let env = [
        ("GENKI_TRUNK_CPS", "150"),
        ("GENKI_TRUNK_MAX_CALLS", "600"),
        ("GENKI_SIP_RTP_PORTS", "36000-37999"),
    ];
    let mut d = Daemon::start(dir.clone(), &env, &["--clock-start", CLOCK]);
    let http = d.http();
    let tid = tenant(&http, retry_once());
    let phones: Vec<String> = (0..N)
        .map(|i| format!("sip:s{i}@127.0.0.1:{port}"))
        .collect();
    let ids = enrol(&http, tid, &phones);

    let round1: Vec<String> = ids.iter().map(|s| check_now(&http, *s)).collect();
    let mut peak = 0;
    let start = Instant::now();
    for c in &round1 {
        loop {
            peak = peak.max(metric(&http, "genki_active_calls"));
            let v = http.get(&format!("/v1/checks/{c}")).json();
            if v["status"] == "done" {
                assert_eq!(v["outcome"], "fine", "{v}");
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(120), "{v}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    eprintln!("round 1: {N} fine, peak {peak} calls at once");
    assert!(peak >= 200, "the checks overlapped ({peak} at once)");
    assert_eq!(metric(&http, "genki_media_failures_total"), 0);

    // Round 2: kill -9 while calls are up, restart, nothing lost or doubled.
    let round2: Vec<String> = ids.iter().map(|s| check_now(&http, *s)).collect();
    let start = Instant::now();
    while metric(&http, "genki_active_calls") < 100 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "round 2 did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    d.kill9();
    d.spawn();
    let http = d.http();
    for c in &round2 {
        let v = wait_done(&http, c, Duration::from_secs(180));
        assert!(v["outcome"].is_string(), "{v}");
    }
    let items = http.get(&format!("/v1/tenants/{tid}/outcomes")).json()["items"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(items.len(), 2 * N, "one outcome row per check");
    let unique: HashSet<String> = items
        .iter()
        .map(|i| i["check_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(unique.len(), 2 * N);
    let fine = items.iter().filter(|i| i["outcome"] == "fine").count();
    assert_eq!(fine, 2 * N, "sipp pressed 1 on every call");
    // (Calls past their key at the kill have their outcome stored already
    // and are not recovered; tests/faults.rs kills calls before their key.)
    let (code, _) = d.terminate();
    assert_eq!(code, 0);
    std::fs::remove_dir_all(&dir).ok();
}

/// Acceptance 2: concurrent daemon checks of one baresip (auto-answer, an
/// in-band "1" in its WAV; its SDP names another address than its RTP
/// comes from) all end `fine` with genki's default configuration.
#[test]
fn baresip_checks_end_fine_with_the_default_configuration() {
    let dir = temp_dir("media-baresip");
    let port = free_port();
    let _baresip = baresip(&dir, port);
    let mut d = Daemon::start(
        dir.clone(),
        &[("GENKI_SIP_RTP_PORTS", "38000-38199")],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    let tid = tenant(&http, retry_once());
    // Four people behind one user agent (one account, concurrent calls).
    let ids = enrol(
        &http,
        tid,
        &(0..4)
            .map(|_| format!("sip:watch@127.0.0.1:{port}"))
            .collect::<Vec<_>>(),
    );
    let checks: Vec<String> = ids.iter().map(|s| check_now(&http, *s)).collect();
    for c in &checks {
        let v = wait_done(&http, c, Duration::from_secs(60));
        assert_eq!(v["outcome"], "fine", "{v}");
        assert_eq!(v["attempts"][0]["dtmf_transport"], "inband", "{v}");
        assert_eq!(v["attempts"].as_array().unwrap().len(), 1, "{v}");
    }
    assert!(
        metric(&http, "genki_rtp_relatched_total") >= 4,
        "baresip sends from another address than its SDP names"
    );
    let (code, _) = d.terminate();
    assert_eq!(code, 0);
    std::fs::remove_dir_all(&dir).ok();
}

/// Spray RFC 4733 "1" packets (many SSRCs) from `from` at every port of
/// `ports` until `stop`.
fn spray(
    from: &str,
    ports: std::ops::RangeInclusive<u16>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    let sock = UdpSocket::bind(from).unwrap();
    std::thread::spawn(move || {
        let mut sent = 0u64;
        let mut seq = 0u16;
        while !stop.load(Ordering::Relaxed) {
            for port in ports.clone() {
                for ssrc in [1u32, 0x1234_5678, rand_ssrc(seq)] {
                    // RTP v2, PT 101, event 1, E bit on the last of three, volume 10.
                    for (k, end) in [(0u16, false), (1, false), (2, true)] {
                        let mut p = vec![0x80, 101];
                        p.extend_from_slice(&seq.wrapping_add(k).to_be_bytes());
                        p.extend_from_slice(&(seq as u32 * 160).to_be_bytes());
                        p.extend_from_slice(&ssrc.to_be_bytes());
                        p.extend_from_slice(&[1, if end { 0x80 | 10 } else { 10 }, 0x03, 0x20]);
                        let _ = sock.send_to(&p, ("127.0.0.1", port));
                        sent += 1;
                    }
                }
            }
            seq = seq.wrapping_add(3);
            std::thread::sleep(Duration::from_millis(20));
        }
        sent
    })
}

fn rand_ssrc(seed: u16) -> u32 {
    (seed as u32).wrapping_mul(2_654_435_761)
}

/// Acceptance 3: strangers sending RTP — RFC 4733 "1" with many SSRCs, at
/// every port genki may use — from another address during calls never
/// change an outcome: a callee who presses nothing stays `no_response`,
/// one who presses 2 stays `needs_contact`.
#[test]
fn strangers_rtp_never_changes_an_outcome() {
    let dir = temp_dir("media-stranger");
    let ports = 38400u16..=38419;
    let mut d = Daemon::start(
        dir.clone(),
        &[
            ("GENKI_SIP_RTP_PORTS", "38400-38419"),
            ("GENKI_SIP_T1_MS", "100"),
        ],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    let tid = tenant(
        &http,
        json!({"max_attempts": 1, "spacing_minutes": 1, "retry_no_answer": false,
            "retry_busy": false, "retry_failed": false, "retry_no_input": false, "carry_to_next_window": false}),
    );
    // From another host: sprayed before and during the calls.
    let stop = Arc::new(AtomicBool::new(false));
    let far = spray("127.0.0.2:0", ports.clone(), stop.clone());
    let silent_port = free_port();
    let silent = phones(silent_port, &["--digits", "", "--answer-delay-ms", "200"]);
    let two_port = free_port();
    let two = phones(
        two_port,
        &[
            "--digits",
            "2",
            "--answer-delay-ms",
            "200",
            "--digit-delay-ms",
            "3000",
        ],
    );
    let ids = enrol(
        &http,
        tid,
        &[
            format!("sip:silent@127.0.0.1:{silent_port}"),
            format!("sip:two@127.0.0.1:{two_port}"),
        ],
    );
    let checks: Vec<String> = ids.iter().map(|s| check_now(&http, *s)).collect();
    // From the callees' own host, once the calls are up (after latching).
    std::thread::sleep(Duration::from_millis(1500));
    let near = spray("127.0.0.1:0", ports, stop.clone());
    let silent_v = wait_done(&http, &checks[0], Duration::from_secs(90));
    let two_v = wait_done(&http, &checks[1], Duration::from_secs(90));
    stop.store(true, Ordering::Relaxed);
    let sent = far.join().unwrap() + near.join().unwrap();
    assert_eq!(silent_v["outcome"], "no_response", "{silent_v}");
    assert_eq!(silent_v["attempts"][0]["digits"], "", "{silent_v}");
    assert_eq!(two_v["outcome"], "needs_contact", "{two_v}");
    assert_eq!(two_v["attempts"][0]["digits"], "2", "{two_v}");
    let foreign = metric(&http, "genki_rtp_foreign_total");
    assert!(
        sent > 1000 && foreign > 100,
        "sent {sent}, dropped as foreign {foreign}"
    );
    phone_records(silent);
    phone_records(two);
    let (code, _) = d.terminate();
    assert_eq!(code, 0);
    std::fs::remove_dir_all(&dir).ok();
}

/// Acceptance 4: a callee that answers but never sends media: the call
/// ends within 5 s of the answer with a system cause and is retried.
#[test]
fn media_that_never_starts_ends_the_call_with_a_system_cause_and_a_retry() {
    let dir = temp_dir("media-mute");
    let mut d = Daemon::start(
        dir.clone(),
        &[("GENKI_SIP_RTP_PORTS", "38500-38599")],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    let tid = tenant(&http, retry_once());
    let port = free_port();
    let ph = phones(port, &["--behaviour", "mute", "--answer-delay-ms", "200"]);
    let ids = enrol(&http, tid, &[format!("sip:mute@127.0.0.1:{port}")]);
    let cid = check_now(&http, ids[0]);
    let start = Instant::now();
    let v = loop {
        let v = http.get(&format!("/v1/checks/{cid}")).json();
        if v["attempts"].as_array().is_some_and(|a| !a.is_empty()) {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let a = &v["attempts"][0];
    assert_eq!(a["answered"], true, "{v}");
    assert_eq!(a["end_reason"], "no_media", "{v}");
    let talk = a["talk_ms"].as_u64().unwrap();
    assert!(
        (4500..5800).contains(&talk),
        "ended {talk} ms after the answer: {v}"
    );
    assert_eq!(v["status"], "pending", "retried: {v}");
    assert_eq!(
        v["last_cause"], "failed",
        "a system cause, not the person's: {v}"
    );
    assert!(v["outcome"].is_null(), "{v}");
    let recs = phone_records(ph);
    assert_eq!(recs[0]["ended_by"], "remote_bye", "genki hung up: {recs:?}");
    assert_eq!(
        metric(&http, "genki_media_failures_total{reason=\"no_media\"}"),
        1
    );
    let (code, _) = d.terminate();
    assert_eq!(code, 0);
    std::fs::remove_dir_all(&dir).ok();
}
