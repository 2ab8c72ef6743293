//! End-to-end: `genki serve` (the real binary) with the admin API, against
//! the simulated phones: one-off checks by behaviour, retries, outcomes as
//! JSON and CSV, tenant isolation, bad input, SIGTERM, and a SIGKILL in the
//! middle of a 200-call round after which every check still ends with
//! exactly one final outcome.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// A Tuesday morning in Tokyo that is not a holiday, so windows and
/// holidays do not depend on when the tests run.
const CLOCK: &str = "2026-11-24T10:00:00+09:00";

fn tenant(http: &Http, extra: serde_json::Value) -> (u64, String) {
    let mut body = json!({"name": "松戸", "window_start": "08:00", "window_end": "20:00"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = http.post("/v1/tenants", &body);
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    (
        v["id"].as_u64().unwrap(),
        v["token"].as_str().unwrap().to_string(),
    )
}

fn subscriber(http: &Http, tid: u64, phone: &str) -> u64 {
    let r = http.post(
        &format!("/v1/tenants/{tid}/subscribers"),
        &json!({"name": "山田 花子", "phone": phone}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_u64().unwrap()
}

#[test]
fn one_off_checks_give_the_right_outcome_for_each_behaviour() {
    let dir = temp_dir("serve-outcomes");
    let mut d = Daemon::start(
        dir.clone(),
        &[
            ("GENKI_SIP_T1_MS", "100"),
            ("GENKI_SIP_RING_TIMEOUT_S", "2"),
        ],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    let (tid, _) = tenant(
        &http,
        json!({"retry": {"max_attempts": 2, "spacing_minutes": 1, "retry_no_answer": true,
        "retry_busy": true, "retry_failed": true, "retry_no_input": false, "carry_to_next_window": false}}),
    );
    let cases = [
        ("press1", vec!["--digits", "1"], "fine"),
        (
            "press2",
            vec!["--digits", "2", "--dtmf", "inband"],
            "needs_contact",
        ),
        ("info1", vec!["--digits", "1", "--dtmf", "info"], "fine"),
    ];
    let mut running = vec![];
    for (name, flags, want) in cases {
        let port = free_port();
        let mut args = vec!["--answer-delay-ms", "200", "--digit-delay-ms", "800"];
        args.extend(flags);
        let ph = phones(port, &args);
        let sid = subscriber(&http, tid, &format!("sip:{name}@127.0.0.1:{port}"));
        running.push((name, want, ph, check_now(&http, sid)));
    }
    for (name, want, ph, cid) in running {
        let v = wait_done(&http, &cid, Duration::from_secs(60));
        assert_eq!(v["outcome"], want, "{name}: {v}");
        let a = &v["attempts"][0];
        assert_eq!(a["answered"], true, "{name}");
        assert!(a["digits"].as_str().unwrap().len() == 1, "{name}: {a}");
        let recs = phone_records(ph);
        assert_eq!(
            recs[0]["ended_by"], "remote_bye",
            "{name}: genki hung up after the thanks prompt"
        );
    }
    // Busy: retried once after 1 minute (of the shifted clock, real time) — too slow here, so
    // check the first attempt and the retry plan instead.
    let port = free_port();
    let ph = phones(port, &["--behaviour", "busy"]);
    let sid = subscriber(&http, tid, &format!("sip:busy@127.0.0.1:{port}"));
    let cid = check_now(&http, sid);
    let start = Instant::now();
    let v = loop {
        let v = http.get(&format!("/v1/checks/{cid}")).json();
        if v["attempts"].as_array().is_some_and(|a| !a.is_empty()) {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(v["status"], "pending", "busy is retried: {v}");
    assert_eq!(v["last_cause"], "busy");
    assert_eq!(v["attempts"][0]["sip_status"], 486);
    phone_records(ph);

    // A tenant that tries once, with a short script, so that "answered but
    // silent" and "never answered" end quickly.
    let (t2, _) = tenant(
        &http,
        json!({"retry": {"max_attempts": 1, "spacing_minutes": 1, "retry_no_answer": true,
        "retry_busy": true, "retry_failed": true, "retry_no_input": false, "carry_to_next_window": false},
        "script": {"start": "ask", "nodes": {
            "ask": {"play": ["invalid"], "gather": {"max_digits": 1, "timeout_s": 1, "max_plays": 1},
                    "on": {"1": "ok", "timeout": "silent"}},
            "ok": {"play": ["thanks"], "outcome": "fine", "hangup": true},
            "silent": {"outcome": "no_response", "hangup": true}}}}),
    );
    let silent_port = free_port();
    let ph_silent = phones(silent_port, &["--digits", "", "--answer-delay-ms", "100"]);
    let s_silent = subscriber(&http, t2, &format!("sip:silent@127.0.0.1:{silent_port}"));
    let ring_port = free_port();
    let ph_ring = phones(ring_port, &["--behaviour", "no-answer"]);
    let s_ring = subscriber(&http, t2, &format!("sip:ring@127.0.0.1:{ring_port}"));
    let (c_silent, c_ring) = (check_now(&http, s_silent), check_now(&http, s_ring));
    let v = wait_done(&http, &c_silent, Duration::from_secs(30));
    assert_eq!(v["outcome"], "no_response", "{v}");
    assert_eq!(v["attempts"][0]["answered"], true);
    let v = wait_done(&http, &c_ring, Duration::from_secs(30));
    assert_eq!(v["outcome"], "missed", "{v}");
    assert_eq!(v["last_cause"], "no_answer");
    assert_eq!(v["attempts"][0]["sip_status"], 487);
    phone_records(ph_silent);
    phone_records(ph_ring);

    // Outcomes as JSON and CSV.
    let r = http.get(&format!("/v1/tenants/{tid}/outcomes"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 3);
    let r = http.request(
        "GET",
        &format!("/v1/tenants/{tid}/outcomes?from=2026-11-24"),
        None,
        &[("Accept", "text/csv")],
    );
    assert_eq!(r.status, 200);
    assert!(r.headers.to_ascii_lowercase().contains("text/csv"));
    let lines: Vec<&str> = r.body.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(lines.len(), 4, "{}", r.body);
    assert!(lines[0].starts_with("check_id,subscriber_id,name,phone,outcome"));
    assert!(r.body.contains("山田 花子"));
    let s = http
        .get(&format!("/v1/tenants/{tid}/summary?date=2026-11-24"))
        .json();
    assert_eq!(s["outcomes"]["fine"], 2, "{s}");
    assert_eq!(s["outcomes"]["needs_contact"], 1);
    assert_eq!(s["pending"], 1, "the busy one waits for its retry");
    // Who is not yet fine, in the order to look at them: the one who
    // needs contact, then the busy one waiting for a retry; one a page.
    let nf = s["not_yet_fine"].as_array().unwrap().clone();
    assert_eq!(nf.len(), 2, "{s}");
    assert_eq!(nf[0]["outcome"], "needs_contact", "{s}");
    assert_eq!(nf[1]["status"], "pending", "{s}");
    assert_eq!(nf[1]["last_cause"], "busy", "{s}");
    let day = format!("/v1/tenants/{tid}/summary?date=2026-11-24&limit=1");
    let p1 = http.get(&day).json();
    assert_eq!(p1["not_yet_fine"].as_array().unwrap(), &nf[..1], "{p1}");
    let next = p1["next"].as_str().expect("a second page").to_string();
    let p2 = http.get(&format!("{day}&after={next}")).json();
    assert_eq!(p2["not_yet_fine"].as_array().unwrap(), &nf[1..], "{p2}");
    assert!(p2["next"].is_null(), "{p2}");
    assert_eq!(p2["total"], s["total"], "every page counts the day");
    let bad = http.get(&format!("{day}&after=12-s34"));
    assert_eq!(bad.status, 422, "{}", bad.body);
    // The outcomes one a page: the same three rows, in the same order.
    let all: Vec<serde_json::Value> = http.get(&format!("/v1/tenants/{tid}/outcomes")).json()
        ["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["check_id"].clone())
        .collect();
    let mut paged = Vec::new();
    let mut after = String::new();
    loop {
        let page = http
            .get(&format!("/v1/tenants/{tid}/outcomes?limit=1{after}"))
            .json();
        paged.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["check_id"].clone()),
        );
        match page["next"].as_str() {
            Some(n) => after = format!("&after={n}"),
            None => break,
        }
        assert!(paged.len() < 10, "paging does not end: {page}");
    }
    assert_eq!(paged, all);
    let r = http.request(
        "GET",
        &format!("/v1/tenants/{tid}/outcomes?limit=2"),
        None,
        &[("Accept", "text/csv")],
    );
    assert!(
        r.headers.to_ascii_lowercase().contains("x-genki-next:"),
        "{}",
        r.headers
    );

    let m = http.get("/metrics");
    assert!(
        m.body.contains("genki_checks_total{outcome=\"fine\"} 2"),
        "{}",
        m.body
    );
    assert!(m.body.contains("genki_dtmf_total{transport=\"inband\"} 1"));

    let (code, stderr) = d.terminate();
    assert_eq!(code, 0, "SIGTERM ends cleanly: {stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn tenants_are_isolated_and_bad_input_changes_nothing() {
    let dir = temp_dir("serve-api");
    let d = Daemon::start(dir.clone(), &[], &["--clock-start", CLOCK]);
    let op = d.http();
    let (t1, tok1) = tenant(&op, json!({}));
    let (t2, tok2) = tenant(&op, json!({}));
    let a = op.with_token(&tok1);
    let b = op.with_token(&tok2);
    let s1 = subscriber(&a, t1, "+81471234567");
    // Tenant 2 cannot see tenant 1's tenant, subscribers or their checks.
    assert_eq!(b.get(&format!("/v1/tenants/{t1}")).status, 404);
    assert_eq!(b.get(&format!("/v1/subscribers/{s1}")).status, 404);
    assert_eq!(
        b.post(
            &format!("/v1/tenants/{t1}/subscribers"),
            &json!({"name": "x", "phone": "123"})
        )
        .status,
        404
    );
    assert_eq!(
        b.request("POST", &format!("/v1/subscribers/{s1}/checks"), None, &[])
            .status,
        404
    );
    assert_eq!(b.post("/v1/tenants", &json!({"name": "x"})).status, 403);
    assert_eq!(a.get(&format!("/v1/tenants/{t2}")).status, 404);
    assert_eq!(
        op.with_token("wrong")
            .get(&format!("/v1/tenants/{t1}"))
            .status,
        401
    );
    assert_eq!(
        op.with_token("").get(&format!("/v1/tenants/{t1}")).status,
        401
    );

    // Bad input: each a 4xx with a JSON error naming the field; nothing stored changes.
    let before = a.get(&format!("/v1/subscribers/{s1}")).body;
    let cases: Vec<(Vec<u8>, u16, Option<&str>)> = vec![
        (b"{not json".to_vec(), 400, None),
        (br#"{"phone": 12}"#.to_vec(), 422, Some("phone")),
        (br#"{"colour": "red"}"#.to_vec(), 422, Some("colour")),
        (br#"{"phone": "not a number"}"#.to_vec(), 422, Some("phone")),
        (
            br#"{"schedule": {"days": [9], "times": ["09:00"]}}"#.to_vec(),
            422,
            Some("schedule.days"),
        ),
        (
            br#"{"schedule": {"days": [1], "times": ["9am"]}}"#.to_vec(),
            422,
            Some("schedule.times"),
        ),
        (
            br#"{"paused_until": "tomorrow"}"#.to_vec(),
            422,
            Some("paused_until"),
        ),
    ];
    for (body, status, field) in cases {
        let r = a.request(
            "PATCH",
            &format!("/v1/subscribers/{s1}"),
            Some(&body),
            &[("Content-Type", "application/json")],
        );
        assert_eq!(
            r.status,
            status,
            "{}: {}",
            String::from_utf8_lossy(&body),
            r.body
        );
        let e = r.json();
        assert!(
            e["error"]["code"].is_string() && e["error"]["message"].is_string(),
            "{e}"
        );
        if let Some(f) = field {
            assert_eq!(e["error"]["field"], f, "{e}");
        }
    }
    assert_eq!(
        a.get(&format!("/v1/subscribers/{s1}")).body,
        before,
        "nothing changed"
    );
    let r = a.patch(
        &format!("/v1/tenants/{t1}"),
        &json!({"time_zone": "Mars/Olympus"}),
    );
    assert_eq!(
        (r.status, r.json()["error"]["field"].clone()),
        (422, json!("time_zone"))
    );
    let r = a.patch(
        &format!("/v1/tenants/{t1}"),
        &json!({"script": {"start": "x", "nodes": {}}}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let r = a.request(
        "PUT",
        &format!("/v1/tenants/{t1}/prompts/greeting"),
        Some(b"not a wav"),
        &[],
    );
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (422, json!("invalid_wav"))
    );
    assert_eq!(a.get("/v1/nope").status, 404);
    assert_eq!(a.get("/v1/checks/garbage").status, 404);

    // CSV import: bad rows are rejected alone; Excel's BOM is accepted.
    let csv = "\u{feff}name,phone,days,times\n佐藤 一郎,+81471111111,1-5,09:30\n鈴木,bad phone,1,09:00\n田中,0472222222,,\n";
    let r = a.request(
        "POST",
        &format!("/v1/tenants/{t1}/subscribers/import"),
        Some(csv.as_bytes()),
        &[("Content-Type", "text/csv")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["imported"], 2);
    assert_eq!(v["errors"][0]["line"], 3);
    assert_eq!(v["errors"][0]["field"], "phone");
    let list = a
        .get(&format!("/v1/tenants/{t1}/subscribers?limit=2"))
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let next = list["next_after"].as_u64().unwrap();
    let rest = a
        .get(&format!("/v1/tenants/{t1}/subscribers?after={next}"))
        .json();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    let names: HashSet<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["items"].as_array().unwrap())
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains("佐藤 一郎") && names.contains("田中"));

    // The OpenAPI document the daemon serves passes an outside validator
    // (openapi-spec-validator, installed by scripts/deps).
    let doc = a.get("/v1/openapi.json");
    assert_eq!(doc.status, 200);
    assert!(doc.json()["paths"]["/v1/checks/{id}"]["get"]["responses"]["200"].is_object());
    let file = dir.join("openapi.json");
    std::fs::write(&file, &doc.body).unwrap();
    let v = std::process::Command::new("openapi-spec-validator")
        .arg(&file)
        .output()
        .expect("openapi-spec-validator is installed (scripts/deps)");
    assert!(
        v.status.success(),
        "the OpenAPI document is invalid: {}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn config_errors_name_the_key_and_print_config_masks_secrets() {
    let out = std::process::Command::new(genki())
        .args(["serve", "--print-config"])
        .env("GENKI_TRUNK_PASSWORD", "hunter2")
        .env("GENKI_API_LISTEN", "127.0.0.1:9000")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("127.0.0.1:9000") && !text.contains("hunter2") && text.contains("********"),
        "{text}"
    );
    let dir = temp_dir("serve-config");
    let cfg = dir.join("genki.toml");
    std::fs::write(&cfg, "[trunk]\ncsp = 10\n").unwrap();
    let out = std::process::Command::new(genki())
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("csp"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A misspelt variable is refused, not ignored.
    let out = std::process::Command::new(genki())
        .args(["serve", "--print-config"])
        .env("GENKI_TRUNK_PASWORD", "hunter2")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("GENKI_TRUNK_PASWORD") && err.contains("GENKI_TRUNK_PASSWORD"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sigkill_mid_round_every_check_ends_with_exactly_one_outcome() {
    const N: usize = 200;
    let dir = temp_dir("serve-kill9");
    let port = free_port();
    // Phones: everyone answers and presses 1 after a while; a call left without
    // BYE by the killed daemon is hung up by the phone after 15 s.
    let ph = std::process::Command::new(loadtest())
        .args([
            "phones",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--max-seconds",
            "240",
            "--calls",
            "100000",
        ])
        .args([
            "--answer-delay-ms",
            "300",
            "--digit-delay-ms",
            "1500",
            "--max-call-ms",
            "15000",
            "--rtp-base",
            "46000",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _phones = KillOnDrop(ph);
    let env = [
        ("GENKI_TRUNK_CPS", "40"),
        ("GENKI_TRUNK_MAX_CALLS", "400"),
        ("GENKI_SIP_RTP_PORTS", "30000-33999"),
    ];
    let mut d = Daemon::start(dir.clone(), &env, &["--clock-start", CLOCK]);
    let http = d.http();
    let (tid, _) = tenant(&http, json!({}));
    let mut csv = String::from("name,phone\n");
    for i in 0..N {
        csv.push_str(&format!("person {i},sip:{i}@127.0.0.1:{port}\n"));
    }
    let r = http.request(
        "POST",
        &format!("/v1/tenants/{tid}/subscribers/import"),
        Some(csv.as_bytes()),
        &[],
    );
    assert_eq!(r.json()["imported"], N as u64);
    let ids: Vec<u64> = r.json()["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let checks: Vec<String> = ids.iter().map(|s| check_now(&http, *s)).collect();
    // Kill -9 once some checks are done and others are in flight.
    let start = Instant::now();
    loop {
        let s = http
            .get(&format!("/v1/tenants/{tid}/summary?date=2026-11-24"))
            .json();
        let fine = s["outcomes"]["fine"].as_u64().unwrap();
        if fine >= 20 && s["in_progress"].as_u64().unwrap() > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "round did not progress: {s}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    d.kill9();
    d.spawn();
    let http = d.http();
    let mut outcomes = 0;
    for c in &checks {
        let v = wait_done(&http, c, Duration::from_secs(120));
        assert!(v["outcome"].is_string(), "{v}");
        outcomes += 1;
    }
    assert_eq!(outcomes, N);
    // Exactly one outcome row per check, none missing, none twice.
    let items = http.get(&format!("/v1/tenants/{tid}/outcomes")).json()["items"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(items.len(), N, "one outcome row per check");
    let unique: HashSet<String> = items
        .iter()
        .map(|i| i["check_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(unique.len(), N);
    let fine = items.iter().filter(|i| i["outcome"] == "fine").count();
    assert_eq!(fine, N, "every phone pressed 1");
    let recovered = metric(&http, "genki_recovered_inflight_total");
    assert!(recovered > 0, "the restart found checks in flight");
    let (code, _) = d.terminate();
    assert_eq!(code, 0);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_check_requested_after_hours_waits_for_the_next_window() {
    let dir = temp_dir("serve-window");
    // Friday 2026-11-20 21:00 JST: the window (08:00–20:00) is closed until Saturday 08:00.
    let d = Daemon::start(
        dir.clone(),
        &[],
        &["--clock-start", "2026-11-20T21:00:00+09:00"],
    );
    let http = d.http();
    let (tid, _) = tenant(&http, json!({}));
    let sid = subscriber(&http, tid, "sip:1@127.0.0.1:9");
    let cid = check_now(&http, sid);
    std::thread::sleep(Duration::from_millis(1500));
    let v = http.get(&format!("/v1/checks/{cid}")).json();
    assert_eq!(v["status"], "pending", "{v}");
    assert_eq!(
        v["attempts"].as_array().unwrap().len(),
        0,
        "no call outside the window"
    );
    let saturday_8 = 1_795_215_600_000u64; // 2026-11-21T08:00:00+09:00
    assert_eq!(v["due_at_ms"], saturday_8, "{v}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Scheduling policy and real-time priority of `pid`'s thread named
/// `name` (`/proc/<pid>/task/<tid>/stat` fields 40 and 41, proc(5)).
fn thread_policy(pid: u32, name: &str) -> Option<(u32, u32)> {
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let t = t.ok()?.path();
        let comm = std::fs::read_to_string(t.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(t.join("stat")).ok()?;
        // Fields after the ")" that closes comm start at field 3.
        let rest: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
        return Some((rest[40 - 3].parse().ok()?, rest[41 - 3].parse().ok()?));
    }
    None
}

#[test]
fn media_workers_run_at_real_time_priority_or_say_why_not() {
    const SCHED_OTHER: u32 = 0;
    const SCHED_RR: u32 = 2;
    let dir = temp_dir("serve-priority");
    let mut d = Daemon::start(dir.clone(), &[], &["--clock-start", CLOCK]);
    let pid = d.child.as_ref().unwrap().id();
    let media = thread_policy(pid, "genki-media-0").expect("a media worker thread");
    let log = d.log();
    let refused = log.contains("could not have real-time priority");
    if refused {
        // Without CAP_SYS_NICE: the default scheduler, and the operator told how.
        assert_eq!(media, (0, SCHED_OTHER), "{log}");
        assert!(log.contains("LimitRTPRIO"), "{log}");
    } else {
        assert_eq!(media, (10, SCHED_RR), "{log}");
    }
    // Only the media workers: the API thread keeps the default scheduler.
    assert_eq!(
        thread_policy(pid, "genki-api").map(|p| p.1),
        Some(SCHED_OTHER)
    );
    // And a call still works through a real-time worker (media both ways,
    // the key heard).
    let http = d.http();
    let (tid, _) = tenant(&http, json!({}));
    let port = free_port();
    let ph = phones(
        port,
        &[
            "--answer-delay-ms",
            "200",
            "--digit-delay-ms",
            "800",
            "--digits",
            "1",
        ],
    );
    let sid = subscriber(&http, tid, &format!("sip:rt@127.0.0.1:{port}"));
    let cid = check_now(&http, sid);
    let v = wait_done(&http, &cid, Duration::from_secs(60));
    assert_eq!(v["outcome"], "fine", "{v}");
    assert_eq!(v["attempts"][0]["digits"], "1", "{v}");
    let recs = phone_records(ph);
    assert_eq!(recs[0]["ended_by"], "remote_bye", "{recs:?}");
    assert_eq!(d.terminate().0, 0);

    // `normal`: the default scheduler, no warning.
    let mut d = Daemon::start(
        dir.clone(),
        &[("GENKI_SIP_MEDIA_PRIORITY", "normal")],
        &["--clock-start", CLOCK],
    );
    let pid = d.child.as_ref().unwrap().id();
    assert_eq!(thread_policy(pid, "genki-media-0"), Some((0, SCHED_OTHER)));
    assert_eq!(d.terminate().0, 0);

    // Without CAP_SYS_NICE (dropped from the bounding set, so even root
    // lacks it): genki still serves, on the default scheduler, and says
    // how to allow real-time.
    let has_setpriv = std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(has_setpriv, "setpriv (util-linux) is needed by this test");
    let log = dir.join("refused.stderr");
    let child = std::process::Command::new("setpriv")
        .args(["--bounding-set", "-sys_nice"])
        .arg(genki())
        .args(["serve", "--clock-start", CLOCK])
        .env("GENKI_STORAGE_PATH", dir.join("refused"))
        .env("GENKI_API_LISTEN", format!("127.0.0.1:{}", free_tcp_port()))
        .env("GENKI_SIP_BIND", format!("127.0.0.1:{}", free_port()))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start genki under setpriv");
    let child = KillOnDrop(child);
    let start = Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("genki: serving") {
            break text;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(text.contains("could not have real-time priority"), "{text}");
    assert!(text.contains("LimitRTPRIO"), "{text}");
    assert_eq!(
        thread_policy(child.0.id(), "genki-media-0"),
        Some((0, SCHED_OTHER))
    );
    drop(child);
    std::fs::remove_dir_all(&dir).ok();
}
