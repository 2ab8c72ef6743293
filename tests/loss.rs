//! End-to-end: 500 calls of the load driver's behaviour mix through 10 %
//! random loss of every UDP datagram (issue 11), in a network namespace
//! the test creates. A binary of its own: cargo runs test binaries one
//! after another, so no other round shares the two cores with this one
//! (under that contention, phones that answer after up to 3 s raced a
//! 5 s ring timeout; this test uses the load test's 10 s).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

#[test]
/// 500 calls of the load driver's behaviour mix through 10 % random loss of
/// every UDP datagram (SIP and RTP, both ways), inside a network namespace
/// this test creates (`unshare -rn`, an nftables rule on loopback's input;
/// this kernel kind has no sch_netem, so there is no delay or jitter):
/// the ledger holds — every stored outcome is what the phone did.
fn five_hundred_calls_through_ten_percent_loss_match_the_ledger() {
    let dir = temp_dir("faults-loss");
    let bin_dir = genki().parent().unwrap().to_path_buf();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = dir.join("report.json");
    let script = r#"set -e
ip link set lo up
nft add table inet impair
nft add chain inet impair lossy '{ type filter hook input priority 0; }'
nft add rule inet impair lossy meta l4proto udp numgen random mod 10 0 counter drop
scripts/loadtest 500 --seed 11 --max-seconds 400 > "$LOG" 2>&1 || echo "loadtest exit $?" >> "$LOG"
nft list ruleset >> "$LOG"
"#;
    let log = dir.join("loadtest.log");
    let child = Command::new("unshare")
        .args(["-rn", "sh", "-c", script])
        .current_dir(&root)
        .env("GENKI_BIN_DIR", &bin_dir)
        .env("PROFILE", "debug")
        .env("CPS", "100")
        .env("OUT", &out)
        .env("LOG", &log)
        // genki's log, with each call's progress, is kept for a failure.
        .env("KEEP_DATA", "1")
        .env("GENKI_LOG", "warn,genki_engine::telephony=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) creates the test's network namespace");
    let status = wait_bounded(child, Duration::from_secs(600));
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.status.success(),
        "the namespace could not be set up: {}\n{log_text}",
        String::from_utf8_lossy(&status.stderr)
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap_or_default())
        .unwrap_or_else(|e| panic!("no report ({e}):\n{log_text}"));
    eprintln!("{log_text}");
    // The data directory the load test kept: removed unless a problem
    // needs genki's account of a call.
    let kept = log_text
        .lines()
        .find_map(|l| l.strip_prefix("data and log kept in "))
        .map(|d| std::path::PathBuf::from(d.trim()));
    let genki_log = kept
        .as_ref()
        .and_then(|d| std::fs::read_to_string(d.join("genki.log")).ok())
        .unwrap_or_default();
    if r["ledger"]["ok"] != true {
        // genki's lines about each call the ledger names.
        let mut about = String::new();
        for p in r["ledger"]["first_problems"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some(call) = p
                .as_str()
                .and_then(|p| p.split("call ").nth(1))
                .and_then(|c| c.split(' ').next())
            else {
                continue;
            };
            for l in genki_log.lines().filter(|l| l.contains(call)) {
                about.push_str(l);
                about.push('\n');
            }
        }
        panic!(
            "ledger: {}\ngenki's log (kept in {kept:?}) about those calls:\n{about}",
            r["ledger"]
        );
    }
    if let Some(d) = kept {
        let _ = std::fs::remove_dir_all(d);
    }
    assert_eq!(r["calls"], 500, "{r}");
    // The loss was real: SIP was retransmitted and RTP arrived with gaps.
    assert!(
        r["sip_retransmissions"]["genki_sent"].as_f64() > Some(10.0),
        "{}",
        r["sip_retransmissions"]
    );
    let dropped: u64 = log_text
        .lines()
        .find_map(|l| l.split("packets ").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or(0);
    assert!(dropped > 10_000, "datagrams dropped: {dropped}\n{log_text}");
}
