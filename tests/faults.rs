//! End-to-end: when things go wrong (issue 11's acceptance), through the
//! real `genki serve` and simulated phones, webhook receivers as peers.
//!
//! - A carrier answering 503 to every INVITE: the trunk's circuit opens,
//!   nobody is dialled but probes, the operator is told once (signed
//!   webhook), no person's check ends and no alert case opens; when the
//!   carrier recovers every held check is called and ends fine.
//! - Storage refusing writes for 10 s mid-round (the daemon's hidden
//!   `--fail-writes-while` failpoint): no INVITE meanwhile, `/healthz` 503
//!   within 2 s, the operator told; every check ends once, without a restart.
//! - An outcome stored at the key survives a SIGKILL before the call ends.
//! - `genki backup` during a round, restored into a new data directory.
//! - Undecodable records planted in a tenant, a due check and an inbox
//!   entry: quarantined and counted; other tenants called, alerts delivered.
//! - Two SIGKILLs in a row (the second during recovery) mid a 500-call
//!   round with a behaviour mix: one right outcome per check.
//! - Deleted, paused and pressed-8 people over three days: no call, no alert.
//! - A SIGKILL mid-plan of 250,000 people and a re-plan: exactly the checks
//!   the schedules give (planning syncs to disk once, at its end).
//!
//! (500 calls through 10 % loss are in tests/loss.rs: a binary of their
//! own, so that no other round shares the two cores with them.)

mod common;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// A Tuesday morning in Tokyo that is not a holiday.
const CLOCK: &str = "2026-11-24T10:00:00+09:00";
const SECRET: &str = "operator-secret-0123";
const W_SECRET: &str = "watcher-secret-0123";

#[test]
fn a_carrier_outage_holds_every_check_tells_the_operator_once_and_no_watcher() {
    let dir = temp_dir("faults-carrier");
    let operator = Peer::start(
        &dir,
        "webhook",
        true,
        &["--secret", SECRET, "--max-seconds", "240"],
    );
    let watchers = Peer::start(
        &dir,
        "webhook",
        true,
        &["--secret", W_SECRET, "--max-seconds", "240"],
    );
    let port = free_port();
    // The carrier: every INVITE answered 503 Service Unavailable.
    let down = phones_for(&dir, port, 0, &["--behaviour", "unavailable"]);
    let hook = format!("http://{}/operator", operator.addr);
    let d = Daemon::start(
        dir.clone(),
        &[
            ("GENKI_SIP_T1_MS", "100"),
            ("GENKI_TRUNK_CPS", "20"),
            ("GENKI_TRUNK_CIRCUIT_OPEN_S", "2"),
            ("GENKI_OPERATOR_WEBHOOK", &hook),
            ("GENKI_OPERATOR_WEBHOOK_SECRET", SECRET),
            ("GENKI_ALERTS_WEBHOOK_ALLOW", "127.0.0.0/8"),
        ],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    // The harshest policy for false alarms: one attempt per check.
    let tid = create_tenant(
        &http,
        &json!({"name": "outage", "window_start": "08:00", "window_end": "20:00",
            "retry": no_retries()}),
    );
    webhook_ladder(&http, tid, &format!("http://{}/w", watchers.addr), W_SECRET);
    let n = 200;
    let checks: Vec<String> = (0..n)
        .map(|i| {
            let r = http.post(
                &format!("/v1/tenants/{tid}/subscribers"),
                &json!({"name": format!("利用者{i}"), "phone": format!("sip:u{i}@127.0.0.1:{port}")}),
            );
            assert_eq!(r.status, 201, "{}", r.body);
            check_now(&http, r.json()["id"].as_u64().unwrap())
        })
        .collect();

    // The outage: the circuit opens, the operator hears once.
    poll(&http, "/healthz", Duration::from_secs(20), |v| {
        v["trunk"] != "closed"
    });
    let told = operator.wait_for("trunk_down", Duration::from_secs(20), |r| {
        kinds(r, "trunk_down") >= 1
    });
    assert!(told.iter().all(|r| r["signature_ok"] == true), "{told:?}");
    std::thread::sleep(Duration::from_secs(10));
    let during: Vec<Value> = (0..n)
        .map(|i| http.get(&format!("/v1/checks/{}", checks[i])).json())
        .collect();
    let ended: Vec<&Value> = during.iter().filter(|c| c["status"] == "done").collect();
    assert!(ended.is_empty(), "no check ends in an outage: {ended:?}");
    let held = metric(&http, "genki_attempts_held_total");
    let attempts = metric(&http, "genki_attempts_total");
    assert!(held >= 5, "held {held}");
    assert!(
        attempts < 60,
        "{attempts} calls placed during the outage: only the first and probes"
    );
    assert_eq!(kinds(&operator.records(), "trunk_down"), 1);

    // The carrier recovers: the phones answer and press 1.
    let refused = records_of(down, 0, Duration::ZERO);
    assert!(
        refused.iter().all(|r| r["final_status"] == 503),
        "{refused:?}"
    );
    let up = phones_for(&dir, port, n as u64, &["--digit-delay-ms", "500"]);
    let start = Instant::now();
    for c in &checks {
        let v = wait_done(&http, c, Duration::from_secs(120));
        assert_eq!(v["outcome"], "fine", "{v}");
        assert!(
            v["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .rev()
                .skip(1)
                .all(|a| a["held"] == true),
            "every attempt before the answer was held: {v}"
        );
    }
    eprintln!("all {n} fine {:?} after recovery", start.elapsed());
    let ledger = records_of(up, n, Duration::from_secs(30));
    let mut called: Vec<&str> = ledger.iter().filter_map(|r| r["callee"].as_str()).collect();
    called.sort();
    called.dedup();
    assert_eq!(
        (ledger.len(), called.len()),
        (n, n),
        "each person called once after recovery: {:?}",
        &ledger[..ledger.len().min(3)]
    );
    operator.wait_for("trunk_recovered", Duration::from_secs(20), |r| {
        kinds(r, "trunk_recovered") == 1
    });
    assert_eq!(
        kinds(&operator.records(), "trunk_down"),
        1,
        "one outage, one notice"
    );
    // Nobody's watchers heard anything: no case, no webhook.
    let cases = http
        .get(&format!("/v1/tenants/{tid}/alerts?state=all"))
        .json();
    assert_eq!(cases["alerts"].as_array().map(Vec::len), Some(0), "{cases}");
    assert!(watchers.records().is_empty(), "{:?}", watchers.records());
    assert_eq!(metric(&http, "genki_trunk_circuit_opened_total"), 1);
    assert_eq!(http.get("/healthz").json()["trunk"], "closed");
}

/// The outcome is stored at the key, before the acknowledgement plays: a
/// SIGKILL while the call is still up does not call the person again.
#[test]
fn an_outcome_stored_at_the_key_survives_a_kill_before_the_call_ends() {
    let dir = temp_dir("faults-key");
    let port = free_port();
    let phones = phones_for(
        &dir,
        port,
        0,
        &["--digit-delay-ms", "500", "--max-call-ms", "4000"],
    );
    let mut d = Daemon::start(
        dir.clone(),
        &[("GENKI_SIP_T1_MS", "100")],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    let r = http.post("/v1/tenants", &json!({"name": "key"}));
    assert_eq!(r.status, 201, "{}", r.body);
    let tid = r.json()["id"].as_u64().unwrap();
    let r = http.post(
        &format!("/v1/tenants/{tid}/subscribers"),
        &json!({"name": "鈴木 一郎", "phone": format!("sip:1001@127.0.0.1:{port}")}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let cid = check_now(&http, r.json()["id"].as_u64().unwrap());
    let v = wait_done(&http, &cid, Duration::from_secs(30));
    assert_eq!(v["outcome"], "fine", "{v}");
    // The call is still up (the phone records a call when it ends).
    let ended_before_kill = std::fs::read_to_string(&phones.1).unwrap_or_default();
    d.kill9();
    assert!(
        ended_before_kill.is_empty(),
        "the call had already ended: the test proves nothing: {ended_before_kill}"
    );
    d.spawn();
    let http = d.http();
    std::thread::sleep(Duration::from_secs(6));
    let v = http.get(&format!("/v1/checks/{cid}")).json();
    assert_eq!(
        (v["status"].as_str(), v["outcome"].as_str()),
        (Some("done"), Some("fine")),
        "{v}"
    );
    assert_eq!(metric(&http, "genki_recovered_inflight_total"), 0);
    // Wait for a second call that must not come.
    let calls = records_of(phones, 2, Duration::from_secs(8));
    assert_eq!(calls.len(), 1, "called once: {calls:?}");
    assert_eq!(calls[0]["digits_sent"], "1");
}

/// `genki backup` while a round of 300 calls runs: the backup opens as a
/// data directory of its own, every outcome stored before it is there, and
/// a daemon started on it runs (and calls).
#[test]
fn a_backup_taken_during_a_round_restores_every_outcome_stored_before_it() {
    let dir = temp_dir("faults-backup");
    let port = free_port();
    let phones = phones_for(&dir, port, 0, &["--digit-delay-ms", "1500"]);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let d = Daemon::start(
        dir.join("data"),
        &[("GENKI_SIP_T1_MS", "100"), ("GENKI_TRUNK_CPS", "30")],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    let r = http.post("/v1/tenants", &json!({"name": "backup"}));
    assert_eq!(r.status, 201, "{}", r.body);
    let tid = r.json()["id"].as_u64().unwrap();
    let n = 300;
    let mut subs = Vec::new();
    for i in 0..n {
        let r = http.post(
            &format!("/v1/tenants/{tid}/subscribers"),
            &json!({"name": format!("利用者{i}"), "phone": format!("sip:b{i}@127.0.0.1:{port}")}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let sid = r.json()["id"].as_u64().unwrap();
        check_now(&http, sid);
        subs.push(sid);
    }
    let outcomes = |http: &Http| -> Vec<Value> {
        http.get(&format!("/v1/tenants/{tid}/outcomes?from=0"))
            .json()["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    poll(
        &http,
        &format!("/v1/tenants/{tid}/outcomes?from=0"),
        Duration::from_secs(60),
        |v| v["items"].as_array().is_some_and(|a| a.len() >= 60),
    );
    let before = outcomes(&http);
    let backup = dir.join("backup");
    let out = Command::new(genki())
        .arg("backup")
        .arg(&backup)
        .args(["--api", &format!("http://{}", d.api)])
        .arg("--token-file")
        .arg(dir.join("data").join("operator-token"))
        .output()
        .expect("run genki backup");
    let after = outcomes(&http);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        after.len() < n,
        "the backup was taken during the round: {} of {n} done after it",
        after.len()
    );
    // A second backup into the same directory is refused.
    let again = http.post("/v1/backup", &json!({"dir": backup}));
    assert_eq!(again.status, 409, "{}", again.body);
    let rel = http.post("/v1/backup", &json!({"dir": "relative/dir"}));
    assert_eq!(rel.status, 422, "{}", rel.body);

    // Restore: a new data directory from the backup, a new daemon on it.
    let restored = dir.join("restored");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&backup)
        .arg(&restored)
        .status()
        .unwrap();
    assert!(cp.success());
    let d2 = Daemon::start(
        restored,
        &[("GENKI_SIP_T1_MS", "100")],
        &["--clock-start", CLOCK],
    );
    let http2 = d2.http();
    for o in &before {
        let id = o["check_id"].as_str().unwrap();
        let v = http2.get(&format!("/v1/checks/{id}")).json();
        assert_eq!(
            (v["status"].as_str(), &v["outcome"]),
            (Some("done"), &o["outcome"]),
            "{id} after restore: {v}"
        );
    }
    assert_eq!(http2.get("/healthz").status, 200);
    // The restored daemon runs: a new check on it is called and ends.
    let cid = check_now(&http2, subs[0]);
    let v = wait_done(&http2, &cid, Duration::from_secs(60));
    assert_eq!(v["outcome"], "fine", "{v}");
    drop(d2);
    drop(d);
    records_of(phones, 0, Duration::ZERO);
}

/// Storage refuses every write for 10 s in the middle of a 200-call round
/// (the daemon's failpoint, as a full disk would): no INVITE while it does,
/// `/healthz` 503 within 2 s, the operator told; then, without a restart,
/// every check ends with exactly one outcome matching the phones' ledger.
#[test]
fn ten_seconds_of_failing_writes_mid_round_lose_nothing_and_dial_nobody() {
    let dir = temp_dir("faults-disk");
    let operator = Peer::start(
        &dir,
        "webhook",
        true,
        &["--secret", SECRET, "--max-seconds", "240"],
    );
    let port = free_port();
    let phones = phones_for(&dir, port, 0, &["--digit-delay-ms", "1000"]);
    let trigger = dir.join("disk-full");
    let hook = format!("http://{}/operator", operator.addr);
    let d = Daemon::start(
        dir.clone(),
        &[
            ("GENKI_SIP_T1_MS", "100"),
            ("GENKI_TRUNK_CPS", "20"),
            ("GENKI_OPERATOR_WEBHOOK", &hook),
            ("GENKI_OPERATOR_WEBHOOK_SECRET", SECRET),
        ],
        &[
            "--clock-start",
            CLOCK,
            "--fail-writes-while",
            trigger.to_str().unwrap(),
        ],
    );
    let http = d.http();
    let r = http.post("/v1/tenants", &json!({"name": "disk"}));
    assert_eq!(r.status, 201, "{}", r.body);
    let tid = r.json()["id"].as_u64().unwrap();
    let n = 200;
    let mut checks = Vec::new();
    for i in 0..n {
        let r = http.post(
            &format!("/v1/tenants/{tid}/subscribers"),
            &json!({"name": format!("利用者{i}"), "phone": format!("sip:d{i}@127.0.0.1:{port}")}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        checks.push(check_now(&http, r.json()["id"].as_u64().unwrap()));
    }
    poll(
        &http,
        &format!("/v1/tenants/{tid}/outcomes?from=0"),
        Duration::from_secs(60),
        |v| v["items"].as_array().is_some_and(|a| a.len() >= 30),
    );
    let wall_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    std::fs::write(&trigger, b"").unwrap();
    let failing_from = wall_ms();
    let start = Instant::now();
    loop {
        if http.get("/healthz").status == 503 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "/healthz still 200 {:?} after writes began to fail",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let unhealthy_after = start.elapsed();
    std::thread::sleep(Duration::from_secs(10) - unhealthy_after);
    let failing_to = wall_ms();
    std::fs::remove_file(&trigger).unwrap();
    for c in &checks {
        let v = wait_done(&http, c, Duration::from_secs(120));
        assert_eq!(v["outcome"], "fine", "{v}");
    }
    assert_eq!(http.get("/healthz").status, 200);
    let ledger = records_of(phones, n, Duration::from_secs(30));
    let mut called: Vec<&str> = ledger.iter().filter_map(|r| r["callee"].as_str()).collect();
    called.sort();
    called.dedup();
    assert_eq!(
        (ledger.len(), called.len()),
        (n, n),
        "each person called exactly once"
    );
    let dialled_while_failing: Vec<u64> = ledger
        .iter()
        .filter_map(|r| r["invite_at_ms"].as_u64())
        .filter(|t| *t > failing_from + 200 && *t < failing_to)
        .collect();
    assert!(
        dialled_while_failing.is_empty(),
        "INVITEs while writes failed: {dialled_while_failing:?}"
    );
    assert!(
        ledger
            .iter()
            .any(|r| r["invite_at_ms"].as_u64() > Some(failing_to)),
        "the round went on after the fault"
    );
    let told = operator.wait_for("storage notices", Duration::from_secs(20), |r| {
        kinds(r, "storage_failing") == 1 && kinds(r, "storage_recovered") == 1
    });
    assert!(told.iter().all(|r| r["signature_ok"] == true));
    assert!(metric(&http, "genki_storage_write_failures_total") > 0);
    eprintln!("unhealthy {unhealthy_after:?} after the fault began");
}

/// Undecodable bytes planted (genki stopped) in a tenant, a due check and
/// an alert-inbox entry: genki starts, the other tenant's people are
/// called, its alerts delivered, the three records counted and moved
/// aside, and it starts again after that.
#[test]
fn undecodable_records_are_quarantined_and_everything_else_goes_on() {
    use genki_storage::kv::{Batch, Kv};
    use genki_storage::store::cf;
    use genki_storage::{CheckId, RocksKv};

    let dir = temp_dir("faults-poison");
    let hook = Peer::start(
        &dir,
        "webhook",
        true,
        &["--secret", W_SECRET, "--max-seconds", "240"],
    );
    let fine_port = free_port();
    let fine = phones_for(&dir, fine_port, 0, &["--digit-delay-ms", "500"]);
    let busy_port = free_port();
    let busy = phones_for(&dir, busy_port, 0, &["--behaviour", "busy"]);
    let env = [
        ("GENKI_SIP_T1_MS", "100"),
        ("GENKI_ALERTS_WEBHOOK_ALLOW", "127.0.0.0/8"),
    ];
    let mut d = Daemon::start(dir.clone(), &env, &["--clock-start", CLOCK]);
    let http = d.http();
    let tenant = |name: &str| {
        let r = http.post("/v1/tenants", &json!({"name": name, "retry": no_retries()}));
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["id"].as_u64().unwrap()
    };
    let victim = tenant("壊れる市");
    let healthy = tenant("元気町");
    let enrol = |tid: u64, phone: String| {
        let r = http.post(
            &format!("/v1/tenants/{tid}/subscribers"),
            &json!({"name": "利用者", "phone": phone}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["id"].as_u64().unwrap()
    };
    let answers = enrol(healthy, format!("sip:a@127.0.0.1:{fine_port}"));
    let is_busy = enrol(healthy, format!("sip:b@127.0.0.1:{busy_port}"));
    webhook_ladder(&http, healthy, &format!("http://{}/w", hook.addr), W_SECRET);
    let (code, _) = d.terminate();
    assert_eq!(code, 0);

    // Garbage where a tenant, a due check and an inbox entry are read.
    {
        let kv = RocksKv::open(&dir.join("db")).expect("open the stopped daemon's database");
        let due_at = 1_795_482_000_000u64; // 2026-11-24 10:00 JST
        let bad_check = CheckId::one_off(answers, due_at).key();
        let mut b = Batch::default();
        b.put(cf::TENANTS, victim.to_be_bytes(), b"\x01{\"id\": broken");
        b.put(cf::CHECKS, bad_check, b"\x07 a newer release's format");
        b.put(
            cf::DUE,
            [&due_at.to_be_bytes()[..], &bad_check].concat(),
            b"",
        );
        b.put(
            cf::ALERT_INBOX,
            CheckId::one_off(is_busy, due_at).key(),
            b"\x01[not an alert",
        );
        kv.write(b).expect("plant");
        kv.flush().unwrap();
    }

    d.spawn();
    let http = d.http();
    let v = wait_done(&http, &check_now(&http, answers), Duration::from_secs(30));
    assert_eq!(v["outcome"], "fine", "the other tenant is called: {v}");
    let v = wait_done(&http, &check_now(&http, is_busy), Duration::from_secs(30));
    assert_eq!(v["outcome"], "missed", "{v}");
    hook.wait_for("the other alert", Duration::from_secs(30), |r| {
        r.iter()
            .any(|e| e["subscriber_id"].as_u64() == Some(is_busy) && e["signature_ok"] == true)
    });
    let start = Instant::now();
    while metric(&http, "genki_storage_quarantined_total") < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "quarantined {}",
            metric(&http, "genki_storage_quarantined_total")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(http.get("/healthz").status, 200);
    assert_eq!(
        http.get(&format!("/v1/tenants/{victim}")).status,
        404,
        "the broken tenant is moved aside"
    );
    // And genki starts again with them moved aside.
    let (code, _) = d.terminate();
    assert_eq!(code, 0);
    d.spawn();
    assert_eq!(d.http().get("/healthz").status, 200);
    drop(d);
    records_of(fine, 0, Duration::ZERO);
    records_of(busy, 0, Duration::ZERO);
}

/// A SIGKILL in the middle of a 500-call round with a behaviour mix, and
/// another during the recovery that follows: every check ends with exactly
/// one final outcome, the one its phone's behaviour calls for.
#[test]
fn two_sigkills_in_a_row_mid_round_leave_every_check_one_right_outcome() {
    let dir = temp_dir("faults-kill2");
    // (phones flags, expected outcome), 100 people each.
    let mix: [(&[&str], &str); 5] = [
        (&["--digit-delay-ms", "800"], "fine"),
        (
            &["--digits", "2", "--digit-delay-ms", "800"],
            "needs_contact",
        ),
        (&["--behaviour", "busy"], "missed"),
        (&["--behaviour", "no-answer"], "missed"),
        (&["--digits", ""], "no_response"),
    ];
    let pops: Vec<(u16, (Child, PathBuf))> = mix
        .iter()
        .map(|(args, _)| {
            let port = free_port();
            let mut a = args.to_vec();
            a.extend(["--max-call-ms", "30000"]);
            (port, phones_for(&dir, port, 0, &a))
        })
        .collect();
    let env = [
        ("GENKI_SIP_T1_MS", "100"),
        ("GENKI_SIP_RING_TIMEOUT_S", "3"),
        ("GENKI_TRUNK_CPS", "100"),
        ("GENKI_TRUNK_MAX_CALLS", "600"),
        ("GENKI_SIP_RTP_PORTS", "38000-39999"),
    ];
    let mut d = Daemon::start(dir.clone(), &env, &["--clock-start", CLOCK]);
    let http = d.http();
    let r = http.post(
        "/v1/tenants",
        &json!({"name": "kill", "retry": no_retries()}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let tid = r.json()["id"].as_u64().unwrap();
    let mut checks: Vec<(String, &str)> = Vec::new();
    for (k, (port, _)) in pops.iter().enumerate() {
        for i in 0..100 {
            let r = http.post(
                &format!("/v1/tenants/{tid}/subscribers"),
                &json!({"name": format!("利用者{k}-{i}"), "phone": format!("sip:k{k}x{i}@127.0.0.1:{port}")}),
            );
            assert_eq!(r.status, 201, "{}", r.body);
            checks.push((check_now(&http, r.json()["id"].as_u64().unwrap()), mix[k].1));
        }
    }
    let wait_active = |http: &Http, n: u64, what: &str| {
        let start = Instant::now();
        while metric(http, "genki_active_calls") < n {
            assert!(start.elapsed() < Duration::from_secs(30), "{what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_active(&http, 150, "the round did not start");
    d.kill9();
    d.spawn();
    let http = d.http();
    // Recovery re-queues what was in flight and dials it again: kill now.
    wait_active(&http, 20, "recovery did not dial");
    let recovered_first = metric(&http, "genki_recovered_inflight_total");
    d.kill9();
    d.spawn();
    let http = d.http();
    for (c, want) in &checks {
        let v = wait_done(&http, c, Duration::from_secs(180));
        assert_eq!(v["outcome"], *want, "{v}");
    }
    let items = http
        .get(&format!("/v1/tenants/{tid}/outcomes?from=0"))
        .json()["items"]
        .as_array()
        .unwrap()
        .clone();
    let mut ids: Vec<&str> = items
        .iter()
        .filter_map(|i| i["check_id"].as_str())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (items.len(), ids.len()),
        (500, 500),
        "one outcome row per check"
    );
    let recovered_second = metric(&http, "genki_recovered_inflight_total");
    eprintln!(
        "recovered {recovered_first} after the first kill, {recovered_second} after the second"
    );
    assert!(recovered_first > 0 && recovered_second > 0);
    let (code, _) = d.terminate();
    assert_eq!(code, 0);
    for (_, p) in pops {
        records_of(p, 0, Duration::ZERO);
    }
}

/// Plan two days × two slots for four people, then delete one, pause
/// another through the API, and let a third press 8 (`pause_days:7`) on
/// the first call; the calendar runs a minute per second and jumps over
/// three days across a restart: zero calls to those three after, zero
/// cases, zero notifications; the fourth is called at every slot.
#[test]
fn deleted_and_paused_people_get_no_call_and_no_alert_over_three_days() {
    let dir = temp_dir("faults-lifecycle");
    let hook = Peer::start(
        &dir,
        "webhook",
        true,
        &["--secret", W_SECRET, "--max-seconds", "240"],
    );
    // A deleted, B paused by the API, C presses 8, D presses 1.
    let keys = ["1", "1", "8", "1"];
    let pops: Vec<(u16, (Child, PathBuf))> = keys
        .iter()
        .map(|k| {
            let port = free_port();
            (
                port,
                phones_for(&dir, port, 0, &["--digits", k, "--digit-delay-ms", "500"]),
            )
        })
        .collect();
    let env = [
        ("GENKI_SIP_T1_MS", "100"),
        ("GENKI_SCHEDULER_TICK_MS", "100"),
    ];
    let fast = |at: &str| -> Vec<String> {
        ["--clock-start", at, "--clock-rate", "60"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let mut d = Daemon::start(
        dir.clone(),
        &env,
        &["--clock-start", "2026-11-24T09:00:00+09:00"],
    );
    let http = d.http();
    let r = http.post(
        "/v1/tenants",
        &json!({"name": "lifecycle", "retry": no_retries(),
            "script": {"start": "ask", "nodes": {
                "ask": {"play": ["greeting"], "gather": {"max_digits": 1, "timeout_s": 3, "max_plays": 1},
                        "on": {"1": "ok", "8": "away", "timeout": "silent"}},
                "ok": {"play": ["thanks"], "outcome": "fine", "hangup": true},
                "away": {"play": ["thanks"], "outcome": "fine", "action": "pause_days:7", "hangup": true},
                "silent": {"outcome": "no_response", "hangup": true}}}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let tid = r.json()["id"].as_u64().unwrap();
    webhook_ladder(&http, tid, &format!("http://{}/w", hook.addr), W_SECRET);
    let people: Vec<u64> = pops
        .iter()
        .enumerate()
        .map(|(i, (port, _))| {
            let r = http.post(
                &format!("/v1/tenants/{tid}/subscribers"),
                &json!({"name": format!("利用者{i}"), "phone": format!("sip:p{i}@127.0.0.1:{port}"),
                    "schedule": {"days": [1, 2, 3, 4, 5, 6, 7], "times": ["10:00", "10:01"]}}),
            );
            assert_eq!(r.status, 201, "{}", r.body);
            r.json()["id"].as_u64().unwrap()
        })
        .collect();
    // Restart so that the planner plans them now (Tuesday and Wednesday,
    // two slots each), the calendar running a minute per second from 09:50.
    d.terminate();
    d.args = fast("2026-11-24T09:50:00+09:00");
    d.spawn();
    let http = d.http();
    let start = Instant::now();
    while metric(&http, "genki_checks_planned_total") < 16 {
        assert!(start.elapsed() < Duration::from_secs(5), "not planned");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = http.request(
        "DELETE",
        &format!("/v1/subscribers/{}", people[0]),
        None,
        &[],
    );
    assert!(r.status == 200 || r.status == 204, "{}", r.body);
    let r = http.patch(
        &format!("/v1/subscribers/{}", people[1]),
        &json!({"paused_until": "2026-11-30"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Tuesday 10:00 and 10:01 (10 and 11 s from the start).
    std::thread::sleep(Duration::from_secs(25));
    d.terminate();
    // Friday: Wednesday's slots are over; Friday and Saturday are planned.
    d.args = fast("2026-11-27T09:50:00+09:00");
    d.spawn();
    let http = d.http();
    std::thread::sleep(Duration::from_secs(25));
    let cases = http
        .get(&format!("/v1/tenants/{tid}/alerts?state=all"))
        .json();
    assert_eq!(cases["alerts"].as_array().map(Vec::len), Some(0), "{cases}");
    d.terminate();
    let calls: Vec<Vec<Value>> = pops
        .into_iter()
        .map(|(_, p)| records_of(p, 0, Duration::ZERO))
        .collect();
    let n: Vec<usize> = calls.iter().map(Vec::len).collect();
    assert_eq!(
        n,
        [0, 0, 1, 4],
        "calls to (deleted, paused, pressed 8, control)"
    );
    assert_eq!(calls[2][0]["digits_sent"], "8");
    assert!(hook.records().is_empty(), "{:?}", hook.records());
}

/// Planning writes its batches without waiting for the disk and syncs
/// once at the end (issue 17): a SIGKILL in the middle of planning two
/// days for 250,000 people, then planning again at the restart, leaves
/// exactly the checks their schedules give: none missing, none twice,
/// every one pending and due at its slot.
#[test]
fn a_kill_mid_plan_then_a_re_plan_gives_exactly_the_scheduled_checks() {
    const N: usize = 250_000;
    let dir = temp_dir("faults-plan-kill");
    let env = [("GENKI_SCHEDULER_PLAN_DAYS", "2"), ("GENKI_LOG", "info")];
    let mut d = Daemon::start(dir.clone(), &env, &["--clock-start", CLOCK]);
    let http = d.http();
    let tid = create_tenant(&http, &json!({"name": "plan"}));
    for b in (0..N).step_by(50_000) {
        let mut csv = String::from("name,phone,days,times\n");
        for i in b..(b + 50_000).min(N) {
            csv.push_str(&format!("p{i},+8147{i:07},1-7,11:00\n"));
        }
        let r = http.request(
            "POST",
            &format!("/v1/tenants/{tid}/subscribers/import"),
            Some(csv.as_bytes()),
            &[("Content-Type", "text/csv")],
        );
        assert_eq!(
            r.json()["imported"],
            50_000,
            "{}",
            &r.body[..r.body.len().min(500)]
        );
    }
    d.terminate();
    assert!(
        !d.log().contains("planned checks"),
        "the periodic plan ran during the import: the test proves nothing"
    );
    // The restart plans at once; kill it a fifth of the way through.
    let before = d.log().len();
    d.spawn();
    let start = Instant::now();
    while !d.log()[before..].contains("people=100000") {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no planning progress: {}",
            &d.log()[before..]
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    d.kill9();
    let db = dir.join("db");
    let partial = {
        let store = genki_storage::open(&db).expect("open after the kill");
        store.checks_of(tid, 0, u64::MAX, usize::MAX).unwrap().len()
    };
    assert!(
        partial > 0 && partial < 2 * N,
        "the kill did not land mid-plan: {partial} of {} checks",
        2 * N
    );
    // Planning again at the next start completes the same day.
    let before = d.log().len();
    d.spawn();
    let start = Instant::now();
    while !d.log()[before..].contains("planned checks") {
        assert!(start.elapsed() < Duration::from_secs(120), "no re-plan");
        std::thread::sleep(Duration::from_millis(50));
    }
    d.terminate();
    let store = genki_storage::open(&db).expect("open after the re-plan");
    let people = store.subscribers_of(tid, 0, 2 * N).unwrap();
    assert_eq!(people.len(), N);
    // 11:00 in Tokyo on Tue 24 and Wed 25 November 2026 (UTC+9).
    let slots = [1_795_485_600u64, 1_795_485_600 + 86_400];
    let mut want: Vec<(u64, u64)> = people
        .iter()
        .flat_map(|p| slots.iter().map(move |s| (p.id, *s)))
        .collect();
    want.sort_unstable();
    let checks = store.checks_of(tid, 0, u64::MAX, usize::MAX).unwrap();
    for c in &checks {
        assert_eq!(c.status, genki_storage::CheckStatus::Pending, "{c:?}");
        assert_eq!(c.due_at_ms, c.id.slot * 1000, "{c:?}");
        assert_eq!(c.attempts, 0, "{c:?}");
    }
    let mut got: Vec<(u64, u64)> = checks
        .iter()
        .map(|c| (c.id.subscriber_id, c.id.slot))
        .collect();
    got.sort_unstable();
    assert_eq!(got.len(), want.len(), "{partial} before the re-plan");
    assert!(got == want, "the planned set differs from the schedules");
}
