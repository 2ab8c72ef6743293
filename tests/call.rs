//! End-to-end: `genki call` (the real binary) against the simulated phones
//! (the real `genki-loadtest` binary) over loopback SIP/RTP: every DTMF
//! transport, every callee behaviour, digest auth, SIP loss, Timer B,
//! unreachable first hop, bad input and malformed packets. `genki call`
//! runs the daemon's own call path (endpoint, media workers, script), so
//! its end reasons are the daemon's (tests/daemon_call.rs has the same
//! faults through `genki serve`).

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;

fn assert_answered_with(r: &CallResult, digits: &str, transport: &str) {
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    assert_eq!(r.report["answered"], true);
    assert_eq!(r.report["sip_status"], 200);
    assert_eq!(r.report["digits"], digits);
    assert_eq!(r.report["dtmf_transport"], transport);
    assert_eq!(r.report["end_reason"], "script_done");
    assert_eq!(
        r.report["outcome"],
        serde_json::Value::Null,
        "the flags' script sets none"
    );
    assert_no_spin(r);
}

/// The event loop wakes about once per datagram or timer, never spins.
fn assert_no_spin(r: &CallResult) {
    let packets =
        r.report["rtp_sent"].as_u64().unwrap() + r.report["rtp_received"].as_u64().unwrap();
    let wakeups = r.report["event_loop_wakeups"].as_u64().unwrap();
    assert!(
        wakeups <= 2 * packets + 200,
        "{wakeups} wakeups for {packets} RTP packets"
    );
}

fn assert_cadence(rec: &serde_json::Value) {
    // The phone measured genki's RTP: one packet per 20 ms.
    let mean = rec["rtp_interarrival_mean_ms"].as_f64().unwrap();
    assert!((18.0..=22.0).contains(&mean), "interarrival mean {mean} ms");
    assert!(
        rec["rtp_interarrival_max_ms"].as_f64().unwrap() < 60.0,
        "{rec}"
    );
    assert!(rec["rtp_received"].as_u64().unwrap() >= 40, "{rec}");
    assert_eq!(rec["rtp_gaps"], 0);
}

#[test]
fn rfc4733_digit_from_phone() {
    let port = free_port();
    let ph = phones(port, &["--dtmf", "rfc4733", "--digits", "1"]);
    let r = call_phones(port, &[]);
    assert_answered_with(&r, "1", "rfc4733");
    let recs = phone_records(ph);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["call_id"], r.report["call_id"]);
    assert_eq!(recs[0]["ended_by"], "remote_bye");
    assert_eq!(recs[0]["acked"], true);
    assert_cadence(&recs[0]);
    assert_eq!(r.report["sip_retransmissions"], 0);
}

#[test]
fn inband_digit_from_phone_with_pcma() {
    let port = free_port();
    let ph = phones(
        port,
        &["--dtmf", "inband", "--digits", "2", "--codec", "pcma"],
    );
    let r = call_phones(port, &[]);
    assert_answered_with(&r, "2", "inband");
    assert_eq!(r.report["codec"], "PCMA");
    assert_cadence(&phone_records(ph)[0]);
}

#[test]
fn sip_info_digit_from_phone() {
    let port = free_port();
    let ph = phones(port, &["--dtmf", "info", "--digits", "9"]);
    let r = call_phones(port, &[]);
    assert_answered_with(&r, "9", "info");
    assert_eq!(phone_records(ph)[0]["digits_sent"], "9");
}

#[test]
fn two_digits_gathered() {
    let port = free_port();
    let ph = phones(port, &["--digits", "12"]);
    let r = call_phones(port, &["--gather", "2"]);
    assert_answered_with(&r, "12", "rfc4733");
    phone_records(ph);
}

#[test]
fn busy_not_found_and_unavailable_are_final_outcomes() {
    for (beh, status, reason, cause) in [
        ("busy", 486, "rejected:486", "busy"),
        ("not-found", 404, "rejected:404", "invalid_number"),
        // The carrier's fault, not the person's (held by the daemon).
        ("unavailable", 503, "rejected:503", "carrier"),
    ] {
        let port = free_port();
        let ph = phones(port, &["--behaviour", beh]);
        let r = call_phones(port, &[]);
        assert_eq!(r.code, 0, "{beh}: {}", r.stderr);
        assert_eq!(r.report["answered"], false, "{beh}");
        assert_eq!(r.report["sip_status"], status, "{beh}");
        assert_eq!(r.report["end_reason"], reason, "{beh}");
        assert_eq!(r.report["cause"], cause, "{beh}");
        let recs = phone_records(ph);
        assert_eq!(recs[0]["final_status"], status);
        assert_eq!(recs[0]["ended_by"], "rejected");
    }
}

#[test]
fn ring_timeout_cancels() {
    let port = free_port();
    let ph = phones(port, &["--behaviour", "no-answer"]);
    let r = call_phones(port, &["--ring-timeout", "2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.report["end_reason"], "no_answer");
    assert_eq!(r.report["cause"], "no_answer");
    assert_eq!(r.report["sip_status"], 487);
    let ring = r.report["ring_ms"].as_u64().unwrap();
    assert!((1900..=2600).contains(&ring), "ring_ms {ring}");
    assert_eq!(phone_records(ph)[0]["ended_by"], "cancelled");
}

#[test]
fn callee_hangs_up_mid_prompt() {
    let port = free_port();
    let ph = phones(
        port,
        &["--behaviour", "hangup", "--hangup-after-ms", "1200"],
    );
    let r = call_phones(port, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.report["answered"], true);
    assert_eq!(r.report["end_reason"], "remote_bye");
    assert_eq!(r.report["cause"], "no_input");
    assert_eq!(r.report["digits"], "");
    let talk = r.report["talk_ms"].as_u64().unwrap();
    assert!((1000..=2500).contains(&talk), "talk_ms {talk}");
    assert_eq!(phone_records(ph)[0]["ended_by"], "local_bye");
}

#[test]
fn no_key_ends_by_gather_timeout_after_repeating_the_prompt() {
    let port = free_port();
    let ph = phones(port, &["--digits", ""]);
    let r = call_phones(
        port,
        &["--builtin-prompt", "invalid", "--gather-timeout", "4"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The script ran to its end with no key: its "timeout" branch.
    assert_eq!(r.report["end_reason"], "script_done");
    assert_eq!(r.report["cause"], "no_input");
    assert_no_spin(&r);
    assert_eq!(r.report["digits"], "");
    assert_eq!(r.report["prompt_plays"], 2, "{}", r.report);
    let talk = r.report["talk_ms"].as_u64().unwrap();
    assert!(
        talk >= 8000,
        "two 4 s waits after the plays: talk_ms {talk}"
    );
    assert_eq!(phone_records(ph)[0]["ended_by"], "remote_bye");
}

#[test]
fn digest_challenge_on_invite() {
    for proxy in [false, true] {
        let port = free_port();
        let mut args = vec!["--auth", "alice:s3cret"];
        if proxy {
            args.push("--auth-proxy");
        }
        let ph = phones(port, &args);
        let r = call_phones(port, &["--user", "alice", "--password", "s3cret"]);
        assert_answered_with(&r, "1", "rfc4733");
        let recs = phone_records(ph);
        assert_eq!(recs[0]["auth_ok"], true);
        assert_eq!(
            recs[0]["invites_received"], 2,
            "challenged once, then authorised"
        );
    }
    // A wrong password is refused (403 to the answered challenge) and
    // reported as credentials refused, not retried forever.
    let port = free_port();
    let ph = phones(port, &["--auth", "alice:s3cret"]);
    let r = call_phones(port, &["--user", "alice", "--password", "wrong"]);
    assert_eq!(r.code, 0);
    assert_eq!(r.report["sip_status"], 403);
    assert_eq!(r.report["end_reason"], "auth_failed:403");
    assert_eq!(
        r.report["cause"], "carrier",
        "the trunk's credentials, not the line"
    );
    assert_eq!(phone_records(ph)[0]["auth_ok"], false);
}

#[test]
fn lost_first_invite_and_first_bye_are_retransmitted() {
    let port = free_port();
    let ph = phones(port, &["--drop-first-invite", "--drop-first-bye"]);
    let r = call_phones(port, &[]);
    assert_answered_with(&r, "1", "rfc4733");
    assert!(
        r.report["sip_retransmissions"].as_u64().unwrap() >= 2,
        "{}",
        r.report
    );
    let rec = &phone_records(ph)[0];
    assert_eq!(rec["invites_received"], 2);
    assert_eq!(rec["byes_received"], 2);
    assert_eq!(rec["ended_by"], "remote_bye");
}

#[test]
fn silent_callee_ends_by_timer_b() {
    let port = free_port();
    let ph = phones(port, &["--behaviour", "silent", "--silent-ms", "2500"]);
    // T1 = 50 ms → Timer B = 3.2 s.
    let r = call_phones(port, &["--sip-t1-ms", "50"]);
    assert_eq!(r.code, 3, "not placed: {}", r.stderr);
    assert_eq!(r.report["end_reason"], "timeout");
    assert_eq!(r.report["sip_status"], serde_json::Value::Null);
    assert_eq!(
        r.report["sip_retransmissions"], 6,
        "Timer A fired six times before B"
    );
    let ring = r.report["ring_ms"].as_u64().unwrap();
    assert!((3100..=3800).contains(&ring), "Timer B at {ring} ms");
    assert!(r.stderr.contains("could not be placed"), "{}", r.stderr);
    let rec = &phone_records(ph)[0];
    assert_eq!(rec["invites_received"], 7);
}

#[test]
fn answer_without_common_codec_is_hung_up() {
    let port = free_port();
    let ph = phones(port, &["--behaviour", "no-common-codec"]);
    let r = call_phones(port, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.report["end_reason"], "no_common_codec");
    assert_eq!(r.report["cause"], "failed");
    assert_eq!(r.report["rtp_sent"], 0);
    assert_eq!(r.report["sip_retransmissions"], 0);
    assert_eq!(phone_records(ph)[0]["ended_by"], "remote_bye");
}

#[test]
fn unreachable_first_hop_fails_fast() {
    let port = free_port(); // nobody listens
    let r = call_phones(port, &[]);
    assert_eq!(r.code, 3);
    assert_eq!(r.report["end_reason"], "unreachable");
    assert_eq!(r.report["cause"], "carrier");
    assert!(r.report["ring_ms"].as_u64().unwrap() < 1000);
}

#[test]
fn setup_errors_exit_non_zero_with_a_message() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let bind = taken.local_addr().unwrap().to_string();
    let r = genki_call(&["--to", "sip:1@127.0.0.1:9", "--bind", &bind]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("cannot bind"), "{}", r.stderr);
    assert_eq!(r.report, serde_json::Value::Null, "nothing on stdout");

    let r = genki_call(&["--to", "mailto:x@y"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("sip: URI"), "{}", r.stderr);

    let r = genki_call(&["--to", "sip:1@127.0.0.1:9", "--prompt", "/etc/hostname"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("WAV"), "{}", r.stderr);

    let r = genki_call(&["--to", "sip:1@127.0.0.1:9", "--rtp-ports", "9-1"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("port range"), "{}", r.stderr);

    let r = genki_call(&["--to"]);
    assert_eq!(r.code, 2, "clap usage error");
}

#[test]
fn malformed_packets_are_counted_not_fatal() {
    let port = free_port();
    let sip_port = free_port();
    let (rtp_port, range) = free_rtp_range();
    let ph = phones(port, &["--digit-delay-ms", "1500"]);
    let spammer = std::thread::spawn(move || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let junk: [&[u8]; 5] = [
            b"\x00\x01garbage",
            b"INVITE sip:x SIP/2.0\r\nVia: broken\r\n\r\n",
            b"SIP/2.0 999999 Nope\r\n\r\n",
            &[0xFF; 300],
            b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 99999\r\n\r\nv=0",
        ];
        for i in 0..40 {
            std::thread::sleep(Duration::from_millis(25));
            let _ = s.send_to(junk[i % junk.len()], ("127.0.0.1", sip_port));
            let _ = s.send_to(b"\x80", ("127.0.0.1", rtp_port));
        }
    });
    let to = format!("sip:1001@127.0.0.1:{port}");
    let bind = format!("127.0.0.1:{sip_port}");
    let r = genki_call(&["--to", &to, "--bind", &bind, "--rtp-ports", &range]);
    spammer.join().unwrap();
    assert_answered_with(&r, "1", "rfc4733");
    assert!(
        r.report["malformed_sip"].as_u64().unwrap() >= 10,
        "{}",
        r.report
    );
    // Junk on the call's RTP port is dropped (counted while the call has
    // not latched to its phone; once latched, its connected socket never
    // sees it): the key above still arrived and was the phone's.
    phone_records(ph);
}
