//! Real carriers (issue 13), through the real `genki serve` and a real
//! carrier edge: Kamailio (Debian's package) configured by
//! `tests/kamailio/carrier.cfg` to relay calls only from a trunk that has
//! registered with digest, record-routing them to the simulated phones.
//!
//! - genki registers, and its calls go through Kamailio to the phones
//!   with the registered name as the caller; Kamailio restarted (every
//!   binding forgotten) mid-round → the refused call makes genki register
//!   again, the call is held (not the person's), and the round completes
//!   with exactly one outcome per check and one answered call per check.
//! - Registration refused (a wrong password) → `/healthz` says `failing`,
//!   the failure is counted, and no INVITE leaves genki.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// A weekday morning inside every calling window.
const CLOCK: &str = "2026-11-24T10:00:00+09:00";

fn trunk_env(kamailio_port: u16, password: &str) -> Vec<(String, String)> {
    [
        ("GENKI_SIP_T1_MS", "100".to_string()),
        (
            "GENKI_TRUNK_PROXY",
            format!("sip:127.0.0.1:{kamailio_port}"),
        ),
        ("GENKI_TRUNK_DOMAIN", "carrier.test".into()),
        ("GENKI_TRUNK_USER", "genki".into()),
        ("GENKI_TRUNK_PASSWORD", password.into()),
        ("GENKI_TRUNK_REGISTER", "true".into()),
        ("GENKI_TRUNK_REGISTER_EXPIRES", "60".into()),
        ("GENKI_TRUNK_CIRCUIT_OPEN_S", "2".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn start_daemon(dir: &std::path::Path, env: &[(String, String)]) -> Daemon {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Daemon::start(dir.to_path_buf(), &env, &["--clock-start", CLOCK])
}

fn enrol(http: &Http, tid: u64, n: usize) -> Vec<u64> {
    (0..n)
        .map(|i| {
            let r = http.post(
                &format!("/v1/tenants/{tid}/subscribers"),
                &json!({"name": format!("利用者{i}"), "phone": format!("03123450{i:02}")}),
            );
            assert_eq!(r.status, 201, "{}", r.body);
            r.json()["id"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn genki_registers_with_kamailio_and_survives_its_restart() {
    let dir = temp_dir("carrier-register");
    let phones = Peer::start(&dir, "phones", false, &["--answer-delay-ms", "200"]);
    let mut k = Kamailio::start(&dir, &phones.addr, "genki", "s3cret");
    let d = start_daemon(&dir, &trunk_env(k.port, "s3cret"));
    let http = d.http();
    poll(&http, "/healthz", Duration::from_secs(15), |v| {
        v["registration"] == "registered"
    });
    assert_eq!(metric(&http, "genki_trunk_registered"), 1);
    let tid = create_tenant(&http, &json!({"name": "キャリア経由"}));
    let people = enrol(&http, tid, 6);

    // The first half of the round: through Kamailio to the phones.
    for sid in &people[..3] {
        let v = wait_done(&http, &check_now(&http, *sid), Duration::from_secs(30));
        assert_eq!(v["outcome"], "fine", "{v}");
    }
    // The carrier edge restarts and forgets every binding; genki's own
    // refresh is 30 s away.
    k.restart();
    let checks: Vec<String> = people[3..].iter().map(|s| check_now(&http, *s)).collect();
    let mut held = 0;
    for c in &checks {
        let v = wait_done(&http, c, Duration::from_secs(60));
        assert_eq!(v["outcome"], "fine", "{v}");
        let attempts = v["attempts"].as_array().unwrap();
        // Whatever failed before genki registered again was held (the
        // carrier's), never counted as the person's: refused by the
        // carrier, or not dialled while the binding was being renewed.
        for a in &attempts[..attempts.len() - 1] {
            assert!(
                a["end_reason"] == "auth_failed:403" || a["end_reason"] == "unregistered",
                "{v}"
            );
            assert_eq!(a["held"], true, "{v}");
            held += 1;
        }
    }
    let log = k.log();
    assert!(
        log.contains("carrier: refused INVITE"),
        "after its restart Kamailio refused a call: {log}"
    );
    assert!(held >= 1, "the refused call was held and called again");
    assert!(
        log.matches("carrier: registered").count() >= 2,
        "genki registered again after the restart: {log}"
    );
    // The ledger: one answered call per check, every one from the
    // registered name, each one relayed by Kamailio.
    let recs = phones.wait_for("six answered calls", Duration::from_secs(20), |r| {
        r.iter().filter(|x| x["answered"] == true).count() >= 6
    });
    let answered: Vec<_> = recs.iter().filter(|x| x["answered"] == true).collect();
    assert_eq!(answered.len(), 6, "{recs:?}");
    for r in &answered {
        assert!(
            r["from"]
                .as_str()
                .unwrap_or("")
                .contains("sip:genki@carrier.test"),
            "the caller is the registered trunk: {r}"
        );
    }
    assert_eq!(
        log.matches("carrier: INVITE").count(),
        6,
        "every answered call went through Kamailio: {log}"
    );
    assert_eq!(metric(&http, "genki_trunk_registered"), 1);
}

#[test]
fn refused_registration_places_no_call() {
    let dir = temp_dir("carrier-unregistered");
    let phones = Peer::start(&dir, "phones", false, &[]);
    let k = Kamailio::start(&dir, &phones.addr, "genki", "s3cret");
    let d = start_daemon(&dir, &trunk_env(k.port, "not-the-password"));
    let http = d.http();
    let v = poll(&http, "/healthz", Duration::from_secs(15), |v| {
        v["registration"] == "failing"
    });
    // Not a fault of this node: the daemon stays up (200).
    assert_eq!(v["storage"], true, "{v}");
    assert!(metric(&http, "genki_trunk_registration_failures_total") >= 1);
    assert_eq!(metric(&http, "genki_trunk_registered"), 0);
    let tid = create_tenant(&http, &json!({"name": "未登録"}));
    let sid = enrol(&http, tid, 1)[0];
    let cid = check_now(&http, sid);
    std::thread::sleep(Duration::from_secs(3));
    let v = http.get(&format!("/v1/checks/{cid}")).json();
    assert_eq!(v["status"], "pending", "held, not ended: {v}");
    assert_eq!(v["attempts"].as_array().map(|a| a.len()), Some(0), "{v}");
    let log = k.log();
    assert!(
        !log.contains("INVITE"),
        "no INVITE reached the carrier: {log}"
    );
    assert!(phones.records().is_empty(), "no phone rang");
    assert!(
        d.log().contains("trunk_unregistered"),
        "the operator was told: {}",
        d.log()
    );
}
