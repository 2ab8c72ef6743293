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

/// Two people of tenant `tid` checked now: each ends `fine`, and its call
/// ends with genki's hang-up after the script (the outcome is stored at
/// the key; the attempt's end when the call ends).
fn two_fine_calls(http: &Http, tid: u64) {
    for sid in enrol(http, tid, 2) {
        let cid = check_now(http, sid);
        let v = poll(
            http,
            &format!("/v1/checks/{cid}"),
            Duration::from_secs(30),
            |v| v["status"] == "done" && v["attempts"][0]["end_reason"] != "",
        );
        assert_eq!(v["outcome"], "fine", "{v}");
        assert_eq!(v["attempts"][0]["end_reason"], "script_done", "{v}");
    }
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

/// Causes from the network, through the real daemon and the simulated
/// phones (README "Causes from the network"): a wrong number (404, 410,
/// 484) and an anonymity refusal (433) end the check at once,
/// `not_attempted`, for the coordinator; a decline (603) that never rang
/// ends `not_attempted` too; none of them opens a case for the watchers.
/// A busy line (486) was really tried: `missed`, and its case opens (the
/// control).
#[test]
fn network_causes_are_not_the_persons_silence() {
    let dir = temp_dir("carrier-causes");
    let d = Daemon::start(
        dir.clone(),
        &[("GENKI_SIP_T1_MS", "100")],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    let tid = create_tenant(&http, &json!({"name": "原因", "retry": no_retries()}));
    let cases = [
        ("not-found", 404, "invalid_number"),
        ("reject", 410, "invalid_number"),
        ("reject", 484, "invalid_number"),
        ("reject", 433, "rejected"),
        ("reject", 603, "rejected"),
    ];
    let mut phones = Vec::new();
    let mut checks = Vec::new();
    for (i, (beh, status, _)) in cases.iter().enumerate() {
        let port = free_port();
        phones.push(KillOnDrop(common::phones(
            port,
            &["--behaviour", beh, "--reject-status", &status.to_string()],
        )));
        let r = http.post(
            &format!("/v1/tenants/{tid}/subscribers"),
            &json!({"name": format!("番号{i}"), "phone": format!("sip:p{i}@127.0.0.1:{port}")}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        checks.push(check_now(&http, r.json()["id"].as_u64().unwrap()));
    }
    let busy_port = free_port();
    phones.push(KillOnDrop(common::phones(
        busy_port,
        &["--behaviour", "busy"],
    )));
    let r = http.post(
        &format!("/v1/tenants/{tid}/subscribers"),
        &json!({"name": "話し中", "phone": format!("sip:busy@127.0.0.1:{busy_port}")}),
    );
    let busy_sid = r.json()["id"].as_u64().unwrap();
    let busy = check_now(&http, busy_sid);
    for (c, (beh, status, cause)) in checks.iter().zip(cases) {
        let v = wait_done(&http, c, Duration::from_secs(30));
        assert_eq!(v["outcome"], "not_attempted", "{beh} {status}: {v}");
        assert_eq!(v["last_cause"], cause, "{beh} {status}: {v}");
        assert_eq!(v["attempts_made"], 1, "not retried: {v}");
        assert_eq!(
            v["attempts"][0]["end_reason"],
            format!("rejected:{status}"),
            "{v}"
        );
    }
    let v = wait_done(&http, &busy, Duration::from_secs(30));
    assert_eq!(v["outcome"], "missed", "{v}");
    assert_eq!(v["last_cause"], "busy", "{v}");
    // Only the busy line's case opened.
    let open = poll(
        &http,
        &format!("/v1/tenants/{tid}/alerts?state=open"),
        Duration::from_secs(10),
        |v| v["alerts"].as_array().is_some_and(|a| !a.is_empty()),
    );
    let subjects: Vec<u64> = open["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["subscriber_id"].as_u64())
        .collect();
    assert_eq!(subjects, vec![busy_sid], "{open}");
}

/// Caller ID through the carrier: the trunk's number in From and in
/// P-Preferred-Identity, which Kamailio (the trust domain's edge, RFC 3325
/// §9.1) turns into P-Asserted-Identity; a tenant's own number (set by
/// the operator; the tenant's token may not) instead of the trunk's. The
/// phone sees the number, never an anonymous caller.
#[test]
fn the_presented_number_reaches_the_phone() {
    let dir = temp_dir("carrier-caller-id");
    let phones = Peer::start(&dir, "phones", false, &["--answer-delay-ms", "100"]);
    let k = Kamailio::start(&dir, &phones.addr, "genki", "s3cret");
    let mut env = trunk_env(k.port, "s3cret");
    env.push(("GENKI_TRUNK_CALLER_ID".into(), "0312340000".into()));
    env.push(("GENKI_TRUNK_IDENTITY_HEADER".into(), "ppi".into()));
    let d = start_daemon(&dir, &env);
    let http = d.http();
    poll(&http, "/healthz", Duration::from_secs(15), |v| {
        v["registration"] == "registered"
    });
    let trunk_tenant = create_tenant(&http, &json!({"name": "番号なし"}));
    let own = create_tenant(&http, &json!({"name": "自前の番号"}));
    // The tenant's own token cannot choose the number it presents.
    let token = http
        .post(&format!("/v1/tenants/{own}/tokens"), &json!({"name": "t"}))
        .json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = http.with_token(&token).patch(
        &format!("/v1/tenants/{own}"),
        &json!({"caller_id": "0990000000"}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = http.patch(
        &format!("/v1/tenants/{own}"),
        &json!({"caller_id": "03-1234"}),
    );
    assert_eq!(r.status, 422, "not a number: {}", r.body);
    let r = http.patch(
        &format!("/v1/tenants/{own}"),
        &json!({"caller_id": "0120111222"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    for tid in [trunk_tenant, own] {
        let sid = enrol(&http, tid, 1)[0];
        let v = wait_done(&http, &check_now(&http, sid), Duration::from_secs(30));
        assert_eq!(v["outcome"], "fine", "{v}");
    }
    let recs = phones.wait_for("two answered calls", Duration::from_secs(20), |r| {
        r.iter().filter(|x| x["answered"] == true).count() >= 2
    });
    assert_eq!(recs.len(), 2, "{recs:?}");
    for (r, number) in recs.iter().zip(["0312340000", "0120111222"]) {
        let uri = format!("sip:{number}@carrier.test");
        assert!(r["from"].as_str().unwrap().contains(&uri), "From: {r}");
        assert_eq!(r["p_asserted_identity"], format!("<{uri}>"), "{r}");
        assert!(
            r["p_preferred_identity"].is_null(),
            "asserted by the carrier: {r}"
        );
        assert!(
            r["privacy"].is_null(),
            "never anonymous unless configured: {r}"
        );
    }
}

/// Early media (issue 13 acceptance 6): phones that answer 183 with SDP,
/// play an announcement (special information tones) as early media, then
/// refuse. The final response decides — 404 ends `not_attempted` /
/// `invalid_number`, 480 is a no-answer retried later, 433 ends
/// `not_attempted` / `rejected` — and the announcement is kept with the
/// attempt: its length in `early_media_ms`, its audio as
/// `audio/<check>-<n>-early.wav` (not silence), gone when the person is
/// erased.
#[test]
fn early_media_is_kept_and_the_final_response_decides() {
    let dir = temp_dir("carrier-early-media");
    let d = Daemon::start(
        dir.clone(),
        &[("GENKI_SIP_T1_MS", "100")],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    let tid = create_tenant(&http, &json!({"name": "アナウンス"}));
    let mut phones = Vec::new();
    let mut people = Vec::new();
    for (i, status) in [404u16, 480, 433].into_iter().enumerate() {
        let port = free_port();
        phones.push(KillOnDrop(common::phones(
            port,
            &[
                "--behaviour",
                "announce",
                "--announce-ms",
                "2000",
                "--reject-status",
                &status.to_string(),
            ],
        )));
        let r = http.post(
            &format!("/v1/tenants/{tid}/subscribers"),
            &json!({"name": format!("案内{i}"), "phone": format!("sip:a{i}@127.0.0.1:{port}")}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let sid = r.json()["id"].as_u64().unwrap();
        people.push((sid, status, check_now(&http, sid)));
    }
    for (sid, status, cid) in &people {
        let v = poll(
            &http,
            &format!("/v1/checks/{cid}"),
            Duration::from_secs(30),
            |v| v["attempts"].as_array().is_some_and(|a| !a.is_empty()),
        );
        let a = &v["attempts"][0];
        assert_eq!(a["end_reason"], format!("rejected:{status}"), "{v}");
        assert_eq!(a["answered"], false, "{v}");
        let ms = a["early_media_ms"].as_u64().unwrap_or(0);
        assert!(
            (1500..=2600).contains(&ms),
            "the announcement heard: {ms} ms: {v}"
        );
        let (status_word, cause) = match status {
            404 => ("done", "invalid_number"),
            480 => ("pending", "no_answer"),
            _ => ("done", "rejected"),
        };
        assert_eq!(v["status"], status_word, "{v}");
        assert_eq!(v["last_cause"], cause, "{v}");
        if status_word == "done" {
            assert_eq!(v["outcome"], "not_attempted", "{v}");
        }
        // The audio beside the database: a WAV of the tones.
        let wav = dir.join("audio").join(format!("{cid}-1-early.wav"));
        let bytes = std::fs::read(&wav).unwrap_or_else(|e| panic!("{}: {e}", wav.display()));
        let pcm = genki_media::wav::read_wav_8k(&bytes[..]).unwrap();
        assert!(pcm.len() >= 12_000, "{} samples", pcm.len());
        let loud = pcm.iter().filter(|s| s.unsigned_abs() > 2000).count();
        assert!(loud > 4000, "the tones, not silence: {loud} loud samples");
        let _ = sid;
    }
    // Erasing the person removes their early media.
    let (sid, _, cid) = &people[0];
    let r = http.request(
        "DELETE",
        &format!("/v1/subscribers/{sid}?erase=true"),
        None,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!dir
        .join("audio")
        .join(format!("{cid}-1-early.wav"))
        .exists());
    assert!(dir
        .join("audio")
        .join(format!("{}-1-early.wav", people[1].2))
        .exists());
}

/// SIP over TCP (RFC 3261 §18; issue 13 acceptance 1, TCP): the trunk's
/// proxy given as `;transport=tcp`. genki registers over TCP, its calls
/// go over TCP to Kamailio (which relays them over UDP to the phones),
/// its BYEs leave on the connection, and the BYE of phones that hang up
/// themselves comes back to genki over TCP.
#[test]
fn genki_registers_and_calls_over_tcp() {
    let dir = temp_dir("carrier-tcp");
    let phones = Peer::start(&dir, "phones", false, &["--answer-delay-ms", "100"]);
    let hangers = Peer::start(
        &dir,
        "phones",
        false,
        &[
            "--answer-delay-ms",
            "100",
            "--behaviour",
            "hangup",
            "--hangup-after-ms",
            "1500",
        ],
    );
    let k = Kamailio::start_with(&dir, &phones.addr, &hangers.addr, "genki", "s3cret");
    let mut env = trunk_env(k.port, "s3cret");
    for (key, v) in env.iter_mut() {
        if key == "GENKI_TRUNK_PROXY" {
            v.push_str(";transport=tcp");
        }
    }
    let d = start_daemon(&dir, &env);
    let http = d.http();
    poll(&http, "/healthz", Duration::from_secs(15), |v| {
        v["registration"] == "registered"
    });
    let tid = create_tenant(&http, &json!({"name": "TCP", "retry": no_retries()}));
    two_fine_calls(&http, tid);
    let r = http.post(
        &format!("/v1/tenants/{tid}/subscribers"),
        &json!({"name": "切る人", "phone": "0900000001"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let v = wait_done(
        &http,
        &check_now(&http, r.json()["id"].as_u64().unwrap()),
        Duration::from_secs(30),
    );
    assert_eq!(
        v["attempts"][0]["end_reason"], "remote_bye",
        "the phone's BYE reached genki over TCP: {v}"
    );
    let log = k.log();
    assert!(
        log.contains("carrier: registered sip:genki@carrier.test from 127.0.0.1")
            && log.contains("over tcp"),
        "registered over TCP: {log}"
    );
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("carrier: INVITE") && l.ends_with("over tcp"))
            .count(),
        3,
        "every INVITE came over TCP: {log}"
    );
    phones.wait_for("two answered calls", Duration::from_secs(20), |r| {
        r.iter().filter(|x| x["answered"] == true).count() == 2
    });
    hangers.wait_for("one answered call", Duration::from_secs(20), |r| {
        r.iter().filter(|x| x["answered"] == true).count() == 1
    });
    assert!(
        !d.log().contains("malformed"),
        "nothing unreadable on the stream: {}",
        d.log()
    );
}

/// A real user agent behind the carrier over TCP (issue 13 acceptance 2):
/// genki → Kamailio over TCP → baresip over TCP (auto-answer, an in-band
/// "1" in its audio). The check ends `fine`, the key heard in-band.
#[test]
fn a_call_through_kamailio_to_baresip_over_tcp_gets_the_key() {
    let dir = temp_dir("carrier-baresip-tcp");
    let phones = Peer::start(&dir, "phones", false, &[]);
    let bport = free_tcp_port();
    let _baresip = baresip(&dir, bport);
    let k = Kamailio::start_with(
        &dir,
        &phones.addr,
        &format!("127.0.0.1:{bport};transport=tcp"),
        "genki",
        "s3cret",
    );
    let mut env = trunk_env(k.port, "s3cret");
    for (key, v) in env.iter_mut() {
        if key == "GENKI_TRUNK_PROXY" {
            v.push_str(";transport=tcp");
        }
    }
    env.push(("GENKI_SIP_RTP_PORTS".into(), "38200-38399".into()));
    let d = start_daemon(&dir, &env);
    let http = d.http();
    poll(&http, "/healthz", Duration::from_secs(15), |v| {
        v["registration"] == "registered"
    });
    let tid = create_tenant(&http, &json!({"name": "baresip", "retry": no_retries()}));
    let r = http.post(
        &format!("/v1/tenants/{tid}/subscribers"),
        &json!({"name": "本物の電話", "phone": "0900000002"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let v = wait_done(
        &http,
        &check_now(&http, r.json()["id"].as_u64().unwrap()),
        Duration::from_secs(60),
    );
    assert_eq!(v["outcome"], "fine", "{v}");
    assert_eq!(v["attempts"][0]["dtmf_transport"], "inband", "{v}");
    let log = k.log();
    assert!(
        log.lines().any(|l| l.contains("carrier: INVITE")
            && l.contains("transport=tcp")
            && l.ends_with("over tcp")),
        "TCP on both sides of the carrier: {log}"
    );
}

/// SIP over TLS (RFC 3261 §26.2; issue 13 acceptance 1, TLS): the proxy
/// `;transport=tls`, Kamailio's certificate for carrier.test checked
/// against the test's CA (`[trunk] tls_ca`). genki registers and calls
/// over TLS. Checked against the Mozilla roots instead, the test CA is
/// not trusted: the handshake fails, the registration is `failing` at
/// once (not at Timer F), and nothing registers.
#[test]
fn genki_registers_and_calls_over_tls_and_checks_the_certificate() {
    let dir = temp_dir("carrier-tls");
    let phones = Peer::start(&dir, "phones", false, &["--answer-delay-ms", "100"]);
    let k = Kamailio::start_tls(&dir, &phones.addr, "genki", "s3cret");
    let (tls_port, ca) = k.tls.clone().unwrap();
    let tls_env = |ca: Option<&std::path::Path>| {
        let mut env = trunk_env(k.port, "s3cret");
        for (key, v) in env.iter_mut() {
            if key == "GENKI_TRUNK_PROXY" {
                *v = format!("sip:127.0.0.1:{tls_port};transport=tls");
            }
        }
        if let Some(ca) = ca {
            env.push(("GENKI_TRUNK_TLS_CA".into(), ca.display().to_string()));
        }
        env
    };
    // Untrusted: the system's roots do not know the test CA.
    let untrusted = dir.join("untrusted");
    std::fs::create_dir_all(&untrusted).unwrap();
    let d = start_daemon(&untrusted, &tls_env(None));
    let http = d.http();
    poll(&http, "/healthz", Duration::from_secs(15), |v| {
        v["registration"] == "failing"
    });
    assert!(
        !k.log().contains("carrier: registered"),
        "nothing registered over an untrusted connection"
    );
    drop(d);
    // Trusted: registered and calling over TLS.
    let d = start_daemon(&dir, &tls_env(Some(&ca)));
    let http = d.http();
    poll(&http, "/healthz", Duration::from_secs(15), |v| {
        v["registration"] == "registered"
    });
    let tid = create_tenant(&http, &json!({"name": "TLS", "retry": no_retries()}));
    two_fine_calls(&http, tid);
    let log = k.log();
    assert!(
        log.lines()
            .any(|l| l.contains("carrier: registered") && l.ends_with("over tls")),
        "registered over TLS: {log}"
    );
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("carrier: INVITE") && l.ends_with("over tls"))
            .count(),
        2,
        "every INVITE came over TLS: {log}"
    );
}

/// A trunk published in DNS (RFC 3263; issue 13 acceptance 3): NAPTR for
/// carrier.test names `_sip._udp.carrier.test`, whose SRV records name two
/// targets — a (priority 10, 127.0.0.2, nothing listening) and b
/// (priority 20, the phones). The first target is down: the call goes to
/// the second at once (the ICMP error), counted as a failover, and ends
/// `fine`. The records change (only a third target, other phones): once
/// their one-second TTL has passed, calls go there.
#[test]
fn a_trunk_in_dns_fails_over_to_its_second_target_and_ttls_are_honoured() {
    let dir = temp_dir("carrier-dns");
    let phones = Peer::start(&dir, "phones", false, &["--answer-delay-ms", "100"]);
    let later = Peer::start(&dir, "phones", false, &["--answer-delay-ms", "100"]);
    let port_of = |addr: &str| addr.rsplit(':').next().unwrap().to_string();
    let dead = free_port();
    let dns_port = free_tcp_and_udp_port();
    let records = |targets: &[(&str, &str, u16, &str)]| -> Vec<String> {
        let mut r =
            vec!["--naptr-record=carrier.test,10,50,s,SIP+D2U,,_sip._udp.carrier.test".to_string()];
        for (name, ip, prio, port) in targets {
            r.push(format!(
                "--srv-host=_sip._udp.carrier.test,{name}.carrier.test,{port},{prio},50"
            ));
            r.push(format!("--host-record={name}.carrier.test,{ip}"));
        }
        r
    };
    let dead_port = dead.to_string();
    let live_port = port_of(&phones.addr);
    let dns = dnsmasq(
        dns_port,
        &records(&[
            ("a", "127.0.0.2", 10, &dead_port),
            ("b", "127.0.0.1", 20, &live_port),
        ]),
    );
    let d = Daemon::start(
        dir.clone(),
        &[
            ("GENKI_SIP_T1_MS", "100"),
            ("GENKI_TRUNK_PROXY", "sip:carrier.test"),
            ("GENKI_TRUNK_DOMAIN", "carrier.test"),
            ("GENKI_TRUNK_DNS_SERVERS", &format!("127.0.0.1:{dns_port}")),
            // The failover itself, without the keep-alive's head start.
            ("GENKI_TRUNK_KEEPALIVE_S", "0"),
        ],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    let tid = create_tenant(&http, &json!({"name": "DNS", "retry": no_retries()}));
    let people = enrol(&http, tid, 2);
    let v = wait_done(&http, &check_now(&http, people[0]), Duration::from_secs(30));
    assert_eq!(v["outcome"], "fine", "{v}");
    assert_eq!(
        v["attempts"].as_array().unwrap().len(),
        1,
        "one attempt: {v}"
    );
    assert!(metric(&http, "genki_trunk_failovers_total") >= 1);
    phones.wait_for(
        "the call at the second target",
        Duration::from_secs(10),
        |r| r.iter().filter(|x| x["answered"] == true).count() == 1,
    );
    // New records: only c, the other phones. After the TTL, calls go there.
    drop(dns);
    let later_port = port_of(&later.addr);
    let _dns = dnsmasq(dns_port, &records(&[("c", "127.0.0.1", 10, &later_port)]));
    std::thread::sleep(Duration::from_millis(2500));
    let v = wait_done(&http, &check_now(&http, people[1]), Duration::from_secs(30));
    assert_eq!(v["outcome"], "fine", "{v}");
    later.wait_for("the call at the new target", Duration::from_secs(10), |r| {
        r.iter().filter(|x| x["answered"] == true).count() == 1
    });
}

/// OPTIONS keep-alive (RFC 3261 §11; `[trunk] keepalive_s`): of the two
/// DNS targets the first (127.0.0.2, nothing there) never answers and is
/// shown down in `/healthz`, the phones answer and are up; a call then
/// goes straight to the live target — no failover, no time lost on the
/// dead one.
#[test]
fn the_keepalive_marks_a_dead_target_down_and_calls_skip_it() {
    let dir = temp_dir("carrier-keepalive");
    let phones = Peer::start(&dir, "phones", false, &["--answer-delay-ms", "100"]);
    let live = phones.addr.rsplit(':').next().unwrap().to_string();
    let dead = free_port().to_string();
    let dns_port = free_tcp_and_udp_port();
    let _dns = dnsmasq(
        dns_port,
        &[
            "--naptr-record=carrier.test,10,50,s,SIP+D2U,,_sip._udp.carrier.test".to_string(),
            format!("--srv-host=_sip._udp.carrier.test,a.carrier.test,{dead},10,50"),
            "--host-record=a.carrier.test,127.0.0.2".to_string(),
            format!("--srv-host=_sip._udp.carrier.test,b.carrier.test,{live},20,50"),
            "--host-record=b.carrier.test,127.0.0.1".to_string(),
        ],
    );
    let d = Daemon::start(
        dir.clone(),
        &[
            ("GENKI_SIP_T1_MS", "100"),
            ("GENKI_TRUNK_PROXY", "sip:carrier.test"),
            ("GENKI_TRUNK_DOMAIN", "carrier.test"),
            ("GENKI_TRUNK_DNS_SERVERS", &format!("127.0.0.1:{dns_port}")),
            ("GENKI_TRUNK_KEEPALIVE_S", "1"),
        ],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    let dead_addr = format!("127.0.0.2:{dead}");
    let v = poll(&http, "/healthz", Duration::from_secs(15), |v| {
        let t = v["trunk_targets"].as_array().cloned().unwrap_or_default();
        t.iter()
            .any(|x| x["addr"] == dead_addr.as_str() && x["up"] == false)
            && t.iter()
                .any(|x| x["addr"] == phones.addr.as_str() && x["up"] == true)
    });
    assert_eq!(v["trunk"], "closed", "{v}");
    assert_eq!(metric(&http, "genki_trunk_targets_down"), 1);
    let tid = create_tenant(&http, &json!({"name": "keepalive", "retry": no_retries()}));
    let sid = enrol(&http, tid, 1)[0];
    let v = wait_done(&http, &check_now(&http, sid), Duration::from_secs(30));
    assert_eq!(v["outcome"], "fine", "{v}");
    assert_eq!(
        metric(&http, "genki_trunk_failovers_total"),
        0,
        "the dead target was never tried"
    );
}
