//! End-to-end: `genki call` against sipp (Debian's sip-tester) as the
//! callee, which answers and replays /usr/share/sip-tester/dtmf_2833_1.pcap:
//! genki must report the digit "1" carried by RFC 4733 telephone-events.
//! sipp sends its media from the port its SDP names, on the address the
//! SIP came from: the daemon's own media path (`genki call` runs it).

mod common;

use std::time::Duration;

use common::*;

#[test]
fn sipp_callee_pressing_1_over_rfc2833() {
    let port = free_port();
    let media = free_port();
    let dir = std::env::temp_dir().join(format!("genki-sipp-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let sipp = sipp_uas(&dir, port, media, &["-m", "1", "-timeout", "40s"]);
    let r = call_phones(port, &[]);
    let out = wait_bounded(sipp, Duration::from_secs(60));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.report["answered"], true);
    assert_eq!(r.report["digits"], "1");
    assert_eq!(r.report["dtmf_transport"], "rfc4733");
    assert_eq!(r.report["end_reason"], "script_done");
    assert!(
        out.status.success(),
        "sipp failed: {}",
        std::fs::read_to_string(dir.join("sipp.stderr")).unwrap_or_default()
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// sipp as a carrier-like callee (`loadtest/sipp/uas_carrier.xml`, issue
/// 13 acceptance 4 and 5): the first INVITE gets 422 with Min-SE 1900
/// and the next must ask for it; a reliable 183 with SDP must get its
/// PRACK; the 200 imposes `Session-Expires: 30;refresher=uac`, so genki
/// refreshes by UPDATE every 15 s; sipp's own re-INVITE mid-call must be
/// answered with a 200 retransmitted until sipp's ACK (1.5 s later); the
/// key comes after more than 60 s of call. sipp fails its call on any
/// missing step.
#[test]
fn a_carrier_with_422_100rel_session_timers_and_a_re_invite() {
    let port = free_port();
    let media = free_port();
    let dir = std::env::temp_dir().join(format!("genki-sipp-carrier-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let sipp = sipp_scenario(
        &dir,
        "uas_carrier.xml",
        port,
        media,
        &["-m", "1", "-timeout", "120s", "-trace_msg", "-trace_err"],
    );
    let r = call_phones(
        port,
        &[
            "--gather-timeout",
            "100",
            "--plays",
            "1",
            "--media-timeout",
            "90",
        ],
    );
    let out = wait_bounded(sipp, Duration::from_secs(30));
    let log = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with("_messages.log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(
        out.status.success(),
        "sipp failed: {}\n{log}",
        std::fs::read_to_string(dir.join("sipp.stderr")).unwrap_or_default()
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.report["answered"], true, "{}", r.report);
    assert_eq!(r.report["digits"], "1", "{}", r.report);
    assert_eq!(r.report["end_reason"], "script_done", "{}", r.report);
    let talk = r.report["talk_ms"].as_u64().unwrap();
    assert!(talk > 60_000, "a call of more than 60 s kept up: {talk} ms");
    // Every refresh and the retransmitted 200 as sipp saw them.
    let updates = log.matches("\nUPDATE sip:").count();
    assert!(updates >= 4, "four UPDATE refreshes: {updates}\n{log}");
    let reinvite_200s = log
        .split("message received")
        .filter(|m| m.contains("SIP/2.0 200 OK") && m.contains("CSeq: 1 INVITE"))
        .count();
    assert!(
        reinvite_200s >= 2,
        "the 200 to sipp's re-INVITE retransmitted until its ACK: {reinvite_200s}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A carrier that moves the media mid-call (`loadtest/sipp/uas_move_media.xml`):
/// sipp answers with its media on one port, then re-INVITEs with an offer
/// naming another. Only that new port is the person: the test listens
/// there, and once genki's prompt arrives it presses "1" (RFC 4733) from
/// it. genki must follow the offer (send there, and accept the key from
/// there), or the person would hear nothing and their answer would be
/// lost: a false "no response". (Without the move, the prompt never
/// reaches the new port and no key is pressed.)
#[test]
fn a_carrier_re_invite_that_moves_the_media_is_followed() {
    let port = free_port();
    let media = free_port();
    let new_port = free_port();
    let person = std::net::UdpSocket::bind(("127.0.0.1", new_port)).unwrap();
    person
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let dir = std::env::temp_dir().join(format!("genki-sipp-move-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let sipp = sipp_scenario(
        &dir,
        "uas_move_media.xml",
        port,
        media,
        &[
            "-m",
            "1",
            "-timeout",
            "60s",
            "-key",
            "newport",
            &new_port.to_string(),
            "-trace_err",
        ],
    );
    let listener = std::thread::spawn(move || {
        let t0 = std::time::Instant::now();
        let mut buf = [0u8; 2048];
        let (mut heard, mut heard_after_key, mut pressed) = (0u32, 0u32, false);
        let mut quiet_since = std::time::Instant::now();
        while t0.elapsed() < Duration::from_secs(40) {
            let Ok((n, src)) = person.recv_from(&mut buf) else {
                if pressed && quiet_since.elapsed() > Duration::from_secs(3) {
                    break;
                }
                continue;
            };
            quiet_since = std::time::Instant::now();
            if n < 12 || buf[0] >> 6 != 2 {
                continue;
            }
            heard += 1;
            if pressed {
                heard_after_key += 1;
            }
            if heard == 25 && !pressed {
                // Half a second of the prompt heard: press "1" (RFC 4733
                // §2.3: event 1, volume 10, growing duration, three ends).
                for i in 0..8u16 {
                    let end = i >= 5;
                    let dur = (i.min(5) + 1) * 160;
                    let mut p = vec![0x80, 101 | if i == 0 { 0x80 } else { 0 }];
                    p.extend_from_slice(&(1000 + i).to_be_bytes());
                    p.extend_from_slice(&160_000u32.to_be_bytes());
                    p.extend_from_slice(&0x5eed_u32.to_be_bytes());
                    p.extend_from_slice(&[1, if end { 0x80 | 10 } else { 10 }]);
                    p.extend_from_slice(&dur.to_be_bytes());
                    person.send_to(&p, src).unwrap();
                    std::thread::sleep(Duration::from_millis(20));
                }
                pressed = true;
            }
        }
        (heard, heard_after_key, pressed)
    });
    let r = call_phones(
        port,
        &[
            "--gather-timeout",
            "20",
            "--plays",
            "1",
            "--media-timeout",
            "30",
        ],
    );
    let out = wait_bounded(sipp, Duration::from_secs(30));
    let (heard, _after, pressed) = listener.join().unwrap();
    assert!(
        out.status.success(),
        "sipp failed: {}",
        std::fs::read_to_string(dir.join("sipp.stderr")).unwrap_or_default()
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        pressed,
        "genki's media never reached the new port: {heard} packets"
    );
    assert_eq!(r.report["answered"], true, "{}", r.report);
    assert_eq!(
        r.report["digits"], "1",
        "the key from the new port: {}",
        r.report
    );
    assert_eq!(r.report["end_reason"], "script_done", "{}", r.report);
    std::fs::remove_dir_all(&dir).ok();
}
