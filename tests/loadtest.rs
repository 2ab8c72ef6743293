//! End-to-end: the load driver (`genki-loadtest run`) against the real
//! `genki serve`: a 200-call round with the seeded behaviour mix must end
//! with every stored outcome matching what the phones did, so the load
//! test cannot rot.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[test]
fn a_200_call_round_matches_the_ledger() {
    let dir = temp_dir("loadtest");
    let d = Daemon::start(
        dir.clone(),
        &[
            ("GENKI_SIP_T1_MS", "200"),
            ("GENKI_SIP_RING_TIMEOUT_S", "5"),
            ("GENKI_TRUNK_CPS", "100"),
            ("GENKI_TRUNK_MAX_CALLS", "400"),
        ],
        &[],
    );
    let pid = d.child.as_ref().unwrap().id().to_string();
    let phones = format!("127.0.0.1:{}", free_port());
    let child = Command::new(loadtest())
        .args([
            "run",
            "--api",
            &format!("http://{}", d.api),
            "--calls",
            "200",
            "--seed",
            "7",
        ])
        .args([
            "--phones",
            &phones,
            "--rtp-base",
            "32000",
            "--genki-pid",
            &pid,
        ])
        .args(["--max-seconds", "240", "--json"])
        .arg("--token-file")
        .arg(dir.join("operator-token"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start genki-loadtest run");
    let out = wait_bounded(child, Duration::from_secs(300));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "load test failed:\n{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    assert_eq!(r["ledger"]["ok"], true, "{r}");
    assert_eq!(r["ledger"]["problems"], 0);
    assert_eq!(r["calls"], 200);
    // The mix really was mixed, and the phones heard genki's media.
    assert!(r["mix"].as_object().unwrap().len() >= 8, "{}", r["mix"]);
    assert!(
        r["rtp_from_genki"]["received"].as_u64().unwrap() > 10_000,
        "{r}"
    );
    assert!(
        r["peak_concurrent_calls"]["phones"].as_i64().unwrap() >= 100,
        "{r}"
    );
    assert!(r["genki"]["cpu_s"].as_f64().unwrap() > 0.0, "{r}");
    assert!(
        r["digit_to_outcome_stored_ms"]["n"].as_u64().unwrap() > 100,
        "{r}"
    );
}
