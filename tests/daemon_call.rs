//! End-to-end: the SIP behaviours tests/call.rs proves for `genki call`,
//! proved again on the path every real watch call takes — `genki serve`,
//! a check requested through the API, the daemon's endpoint and media
//! workers: digest 401 and 407 (right and wrong password), a lost first
//! INVITE, a silent callee (Timer B) and a flood of malformed datagrams
//! during a call, each ending with the right outcome or cause.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// A Tuesday morning in Tokyo that is not a holiday.
const CLOCK: &str = "2026-11-24T10:00:00+09:00";

/// A daemon with a short T1 (Timer B = 6.4 s), trunk credentials, and a
/// tenant that tries each check once.
fn daemon(name: &str, password: &str) -> (Daemon, Http, u64) {
    let dir = temp_dir(name);
    let d = Daemon::start(
        dir,
        &[
            ("GENKI_SIP_T1_MS", "100"),
            ("GENKI_TRUNK_USER", "alice"),
            ("GENKI_TRUNK_PASSWORD", password),
            // The phones stand for the trunk: credentials go only there.
            ("GENKI_TRUNK_DOMAIN", "127.0.0.1"),
            // and its people are SIP URIs on it.
            ("GENKI_TRUNK_URI_PHONES", "allow"),
        ],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    let r = http.post(
        "/v1/tenants",
        &json!({"name": "call-path", "window_start": "08:00", "window_end": "20:00",
            "retry": {"max_attempts": 1, "spacing_minutes": 1, "retry_no_answer": false,
            "retry_busy": false, "retry_failed": false, "retry_no_input": false,
            "carry_to_next_window": false}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let tid = r.json()["id"].as_u64().unwrap();
    (d, http, tid)
}

/// Enrol a person at the phones on `port` and check them now; the final check.
fn check_phone(http: &Http, tid: u64, port: u16) -> Value {
    let cid = check_phone_now(http, tid, port);
    wait_done(http, &cid, Duration::from_secs(60))
}

fn check_phone_now(http: &Http, tid: u64, port: u16) -> String {
    let r = http.post(
        &format!("/v1/tenants/{tid}/subscribers"),
        &json!({"name": "山田 花子", "phone": format!("sip:1001@127.0.0.1:{port}")}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let sid = r.json()["id"].as_u64().unwrap();
    check_now(http, sid)
}

/// The check once its first attempt is stored (it may still be pending).
fn first_attempt(http: &Http, cid: &str) -> Value {
    poll(
        http,
        &format!("/v1/checks/{cid}"),
        Duration::from_secs(60),
        |v| v["attempts"].as_array().is_some_and(|a| !a.is_empty()),
    )
}

#[test]
fn digest_401_and_407_on_the_daemon_path() {
    let (mut d, http, tid) = daemon("dc-auth", "s3cret");
    for proxy in [false, true] {
        let port = free_port();
        let mut args = vec!["--auth", "alice:s3cret", "--digit-delay-ms", "800"];
        if proxy {
            args.push("--auth-proxy");
        }
        let ph = phones(port, &args);
        let v = check_phone(&http, tid, port);
        assert_eq!(v["outcome"], "fine", "proxy={proxy}: {v}");
        let recs = phone_records(ph);
        assert_eq!(recs[0]["auth_ok"], true);
        assert_eq!(
            recs[0]["invites_received"], 2,
            "challenged once, then authorised"
        );
    }
    d.terminate();

    // A wrong password: the phone refuses the answered challenge (403);
    // the trunk's credentials, not the person's silence — the carrier's
    // fault, held (not counted against the person).
    let (mut d, http, tid) = daemon("dc-auth-wrong", "wrong");
    let port = free_port();
    let ph = phones(port, &["--auth", "alice:s3cret"]);
    let cid = check_phone_now(&http, tid, port);
    let v = first_attempt(&http, &cid);
    let a = &v["attempts"][0];
    assert_eq!(a["answered"], false, "{v}");
    assert_eq!(a["sip_status"], 403, "{v}");
    assert_eq!(a["end_reason"], "auth_failed:403", "{v}");
    assert_eq!(a["held"], true, "{v}");
    assert_eq!(v["last_cause"], "carrier", "{v}");
    assert_eq!(phone_records(ph)[0]["auth_ok"], false);
    d.terminate();
}

#[test]
fn a_lost_first_invite_is_retransmitted_and_a_silent_callee_ends_by_timer_b() {
    let (mut d, http, tid) = daemon("dc-timers", "s3cret");
    let port = free_port();
    let ph = phones(port, &["--drop-first-invite", "--digit-delay-ms", "800"]);
    let v = check_phone(&http, tid, port);
    assert_eq!(v["outcome"], "fine", "{v}");
    let recs = phone_records(ph);
    assert_eq!(
        recs[0]["invites_received"], 2,
        "one retransmission (Timer A)"
    );
    assert!(metric(&http, "genki_sip_retransmissions_total") >= 1);

    // Nothing answers at all: Timer B (64·T1 = 6.4 s), the carrier's
    // fault: held (not counted against the person, though the tenant
    // allows one attempt) and tried again later — never `missed`.
    let port = free_port();
    let ph = phones(port, &["--behaviour", "silent", "--silent-ms", "10000"]);
    let start = Instant::now();
    let cid = check_phone_now(&http, tid, port);
    let v = first_attempt(&http, &cid);
    let took = start.elapsed();
    let a = &v["attempts"][0];
    assert_eq!(a["end_reason"], "timeout", "{v}");
    assert!(a["sip_status"].is_null(), "{v}");
    assert_eq!(a["held"], true, "{v}");
    assert_eq!(v["last_cause"], "carrier", "{v}");
    assert_eq!(v["status"], "pending", "{v}");
    assert!(
        took >= Duration::from_millis(6000) && took < Duration::from_secs(15),
        "Timer B fired after {took:?}"
    );
    let recs = phone_records(ph);
    assert!(
        recs[0]["invites_received"].as_u64().unwrap() >= 6,
        "INVITE retransmitted until Timer B: {recs:?}"
    );
    d.terminate();
}

#[test]
fn malformed_datagrams_during_a_call_are_counted_and_change_nothing() {
    let (d, http, tid) = daemon("dc-flood", "s3cret");
    let sip_port = d.sip_port;
    let port = free_port();
    let ph = phones(port, &["--digit-delay-ms", "2500"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let spammer = std::thread::spawn(move || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let junk: [&[u8]; 6] = [
            b"\x00\x01garbage",
            b"INVITE sip:x SIP/2.0\r\nVia: broken\r\n\r\n",
            b"SIP/2.0 999999 Nope\r\n\r\n",
            &[0xFF; 300],
            b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 99999\r\n\r\nv=0",
            b"BYE sip:a@b SIP/2.0\r\nCall-ID: \r\nCSeq: x BYE\r\n\r\n",
        ];
        let mut i = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = s.send_to(junk[i % junk.len()], ("127.0.0.1", sip_port));
            // And at every RTP port the daemon may use.
            for p in (20000..20040).step_by(2) {
                let _ = s.send_to(b"\x80", ("127.0.0.1", p));
            }
            i += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
        i
    });
    let v = check_phone(&http, tid, port);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = spammer.join().unwrap();
    assert_eq!(v["outcome"], "fine", "{v}");
    assert_eq!(v["attempts"][0]["digits"], "1", "{v}");
    phone_records(ph);
    assert!(sent > 50);
    assert!(
        metric(&http, "genki_sip_malformed_total") >= 10,
        "{}",
        metric(&http, "genki_sip_malformed_total")
    );
    let h = http.get("/healthz");
    assert_eq!(h.status, 200, "{}", h.body);
}

/// A first hop that answers with ICMP port unreachable: the call ends at
/// once as `unreachable` (the carrier's cause: held, tried again), and the
/// error is not taken by another call in flight on the same SIP socket.
#[test]
fn an_unreachable_first_hop_fails_fast_and_only_its_own_call() {
    let (mut d, http, tid) = daemon("dc-icmp", "s3cret");
    let port = free_port();
    let ph = phones(port, &["--digit-delay-ms", "3000"]);
    let enrol = |phone: String| {
        let r = http.post(
            &format!("/v1/tenants/{tid}/subscribers"),
            &json!({"name": "佐藤 一郎", "phone": phone}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["id"].as_u64().unwrap()
    };
    let fine = check_now(&http, enrol(format!("sip:1001@127.0.0.1:{port}")));
    std::thread::sleep(Duration::from_millis(1000));
    // Nothing listens on this port: the kernel answers ICMP port unreachable.
    let closed = free_port();
    let start = Instant::now();
    let gone = check_now(&http, enrol(format!("sip:1002@127.0.0.1:{closed}")));
    let v = first_attempt(&http, &gone);
    let took = start.elapsed();
    let a = &v["attempts"][0];
    assert_eq!(a["end_reason"], "unreachable", "{v}");
    assert_eq!(v["last_cause"], "carrier", "{v}");
    assert_eq!(a["held"], true, "{v}");
    assert!(
        took < Duration::from_secs(3),
        "ended after {took:?}, not by Timer B"
    );
    let v = wait_done(&http, &fine, Duration::from_secs(30));
    assert_eq!(v["outcome"], "fine", "the other call is untouched: {v}");
    phone_records(ph);
    d.terminate();
}
