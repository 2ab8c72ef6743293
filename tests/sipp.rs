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
