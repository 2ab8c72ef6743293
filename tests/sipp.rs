//! End-to-end: `genki call` against sipp (Debian's sip-tester) as the
//! callee, which answers and replays /usr/share/sip-tester/dtmf_2833_1.pcap:
//! genki must report the digit "1" carried by RFC 4733 telephone-events.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[test]
fn sipp_callee_pressing_1_over_rfc2833() {
    let pcap = "/usr/share/sip-tester/dtmf_2833_1.pcap";
    assert!(
        Path::new(pcap).exists() && Command::new("sipp").arg("-v").output().is_ok(),
        "sipp and {pcap} are needed: apt-get install sip-tester (the README's test command does)"
    );
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../loadtest/sipp/uas_dtmf_2833.xml"
    );
    let port = free_port();
    let media = free_port();
    let dir = std::env::temp_dir().join(format!("genki-sipp-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let sipp = Command::new("sipp")
        .current_dir(&dir)
        .args(["-sf", scenario, "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mi", "127.0.0.1", "-mp", &media.to_string()])
        .args([
            "-key", "pcap", pcap, "-m", "1", "-timeout", "40s", "-nostdin",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sipp");
    std::thread::sleep(Duration::from_millis(500));
    let r = call_phones(port, &[]);
    let out = wait_bounded(sipp, Duration::from_secs(60));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.report["answered"], true);
    assert_eq!(r.report["digits"], "1");
    assert_eq!(r.report["dtmf_transport"], "rfc4733");
    assert_eq!(r.report["end_reason"], "digits");
    assert!(
        out.status.success(),
        "sipp failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}
