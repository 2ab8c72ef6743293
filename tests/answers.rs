//! Who answered, over a corpus (issue 14 acceptance 1): `scripts/make-corpus`
//! builds what the far end of a call may sound like from its answer on —
//! people saying はい / もしもし / げんきです in several voices and levels,
//! call recorders (announcement, ringback, the person), answering machines
//! with and without a beep, network announcements, fax tones, silence and
//! line noise — with espeak-ng's Japanese voice and sox. Each file goes
//! through G.711 µ-law (as the line carries it) into genki's listener and
//! answer classifier, 20 ms at a time, as the media worker feeds them; the
//! script's prompt starts when the classifier says so.
//!
//! Asserted: at least 95 % of the verdicts right; no machine, announcement
//! or fax ever taken for a person; every recorder's prompt starts only
//! after its ringing (the person hears it whole). The table is printed
//! (docs/answers.md holds the committed one).
//!
//! Then end to end (acceptance 2): the daemon calls simulated phones that
//! play a call recorder (announcement, two rings, もしもし); the person
//! presses 1 six seconds after lifting → `fine`; the same without a key →
//! `no_response`, never `fine`. Both attempts say `recorder`. A person who
//! answers silently and then speaks over the prompt without a key is
//! `spoke`, and what they said is kept for a coordinator (the tenant's
//! `record_answers_s`).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use genki_media::answer::{AnswerClassifier, AnswerParams, AnsweredBy, Decision};
use genki_media::listen::{Listener, FRAME};
use genki_media::Law;
use serde_json::json;

use common::*;

/// A Tuesday morning in Tokyo that is not a holiday.
const CLOCK: &str = "2026-11-24T10:00:00+09:00";

/// espeak-ng and sox make the corpus and the talk-off set.
fn need_tools() {
    for tool in ["espeak-ng", "sox"] {
        assert!(
            Command::new(tool).arg("--version").output().is_ok(),
            "{tool} is needed: apt-get install espeak-ng sox (the README's test command does)"
        );
    }
}

/// Build the corpus into a fresh directory (espeak-ng and sox needed).
fn corpus(name: &str) -> std::path::PathBuf {
    need_tools();
    let dir = std::env::temp_dir().join(format!("genki-corpus-{name}-{}", std::process::id()));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-corpus");
    let out = Command::new(&script)
        .arg(&dir)
        .output()
        .expect("run make-corpus");
    assert!(
        out.status.success(),
        "make-corpus: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

struct Run {
    by: Option<AnsweredBy>,
    decisions: Vec<(u32, Decision)>,
    /// End of the last ringback burst heard (ms), if any.
    last_ring_end_ms: Option<u32>,
}

fn classify(pcm: &[i16]) -> Run {
    let t0 = Instant::now();
    let mut l = Listener::default();
    let mut c = AnswerClassifier::new(AnswerParams::default(), t0);
    let mut decisions = vec![];
    let mut last_ring_end_ms = None;
    let mut frame = [0i16; FRAME];
    for (i, chunk) in pcm.chunks(FRAME).enumerate() {
        for (o, v) in frame.iter_mut().zip(chunk) {
            *o = Law::Ulaw.decode(Law::Ulaw.encode(*v));
        }
        let now = t0 + Duration::from_millis(20 * (i as u64 + 1));
        l.feed(&frame[..chunk.len()], now);
        while let Some(h) = l.poll() {
            if let genki_media::listen::Heard::End {
                sound: genki_media::listen::Sound::Tone { hz },
                at,
                ms,
            } = h
            {
                if (380..=500).contains(&hz) && (700..=1300).contains(&ms) {
                    last_ring_end_ms = Some((at - t0).as_millis() as u32);
                }
            }
            c.heard(h);
        }
        while let Some(d) = c.poll(now) {
            decisions.push(((now - t0).as_millis() as u32, d));
        }
    }
    Run {
        by: c.evidence().by,
        decisions,
        last_ring_end_ms,
    }
}

#[test]
fn the_corpus_is_classified_and_no_machine_is_taken_for_a_person() {
    let dir = corpus("table");
    let index = std::fs::read_to_string(dir.join("index.tsv")).unwrap();
    let mut table: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    let (mut right, mut total) = (0u32, 0u32);
    let mut wrong = vec![];
    let mut unsafe_ = vec![];
    for line in index.lines() {
        let mut f = line.split('\t');
        let (file, expected, note) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap_or(""));
        let pcm = genki_media::wav::read_wav_8k(std::fs::File::open(dir.join(file)).unwrap())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let r = classify(&pcm);
        let got = r.by.map_or("none", |b| b.as_str());
        *table
            .entry(expected.to_string())
            .or_default()
            .entry(got.to_string())
            .or_default() += 1;
        total += 1;
        if got == expected {
            right += 1;
        } else {
            wrong.push(format!(
                "{file} ({note}): {expected} heard as {got}: {:?}",
                r.decisions
            ));
        }
        // Never a person where there is none.
        if matches!(expected, "machine" | "announcement" | "fax") && got == "human" {
            unsafe_.push(format!("{file}: {expected} taken for a person"));
        }
        // A recorder's person hears the prompt whole: the last prompt
        // starts after the ringing ended.
        if expected == "recorder" {
            let last_prompt = r
                .decisions
                .iter()
                .rev()
                .find(|d| matches!(d.1, Decision::Prompt { .. }))
                .map(|d| d.0);
            match (last_prompt, r.last_ring_end_ms) {
                (Some(p), Some(ring)) if p > ring => {}
                other => unsafe_.push(format!(
                    "{file}: prompt/ringing {other:?}: {:?}",
                    r.decisions
                )),
            }
        }
    }
    let kinds = [
        "human",
        "recorder",
        "machine",
        "announcement",
        "fax",
        "silence",
        "unknown",
        "none",
    ];
    let mut md = String::from("| expected \\ heard | ");
    md += &kinds.join(" | ");
    md += " | right |\n|---|";
    md += &"---|".repeat(kinds.len() + 1);
    md.push('\n');
    for (exp, row) in &table {
        let n: u32 = row.values().sum();
        md += &format!("| {exp} ({n}) | ");
        for k in kinds {
            md += &format!("{} | ", row.get(k).copied().unwrap_or(0));
        }
        md += &format!(
            "{} % |\n",
            row.get(exp.as_str()).copied().unwrap_or(0) * 100 / n.max(1)
        );
    }
    println!("{md}\nright: {right}/{total}");
    for w in &wrong {
        println!("wrong: {w}");
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(unsafe_.is_empty(), "{unsafe_:#?}");
    assert!(
        right * 100 >= total * 95,
        "{right}/{total} right:\n{md}\n{wrong:#?}"
    );
}

#[test]
fn a_recorder_then_a_key_is_fine_and_without_a_key_never_fine() {
    let corpus = corpus("e2e");
    let wav = corpus.join("recorder_2_speaks.wav");
    let pcm = genki_media::wav::read_wav_8k(std::fs::File::open(&wav).unwrap()).unwrap();
    // The file ends with 6 s of quiet after もしもし (about 1 s): the
    // person lifted ~7 s before its end; the key comes 6 s after that.
    let lift_ms = (pcm.len() / 8) as u64 - 7000;
    let dir = temp_dir("answers-recorder");
    let mut d = Daemon::start(
        dir.clone(),
        &[("GENKI_SIP_RTP_PORTS", "38700-38799")],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    let tid = create_tenant(
        &http,
        &json!({"name": "recorders", "window_start": "08:00", "window_end": "20:00", "retry": no_retries(),
            "record_answers_s": 4}),
    );
    let wav_arg = wav.to_string_lossy().to_string();
    let delay = (lift_ms + 6000).to_string();
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let keyed = phones(
        p1,
        &[
            "--play",
            &wav_arg,
            "--digits",
            "1",
            "--digit-delay-ms",
            &delay,
        ],
    );
    let silent = phones(p2, &["--play", &wav_arg, "--digits", ""]);
    let spoke_wav = corpus
        .join("spoke_after_prompt.wav")
        .to_string_lossy()
        .to_string();
    let speaker = phones(p3, &["--play", &spoke_wav, "--digits", ""]);
    let mut checks = vec![];
    for (name, port) in [("keyed", p1), ("silent", p2), ("speaker", p3)] {
        let r = http.post(
            &format!("/v1/tenants/{tid}/subscribers"),
            &json!({"name": name, "phone": format!("sip:{name}@127.0.0.1:{port}")}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        checks.push(check_now(&http, r.json()["id"].as_u64().unwrap()));
    }
    let fine = wait_done(&http, &checks[0], Duration::from_secs(90));
    let quiet = wait_done(&http, &checks[1], Duration::from_secs(90));
    let spoke = wait_done(&http, &checks[2], Duration::from_secs(90));
    assert_eq!(fine["outcome"], "fine", "{fine}");
    let a = &fine["attempts"][0];
    assert_eq!(a["answered_by"], "recorder", "{a}");
    assert_eq!(a["digits"], "1", "{a}");
    let h = &a["hearing"];
    assert!(h["ringback_ms"].as_u64().unwrap() >= 1800, "{h}");
    let prompt_at = h["prompt_at_ms"].as_u64().unwrap();
    assert!(
        prompt_at > lift_ms,
        "the prompt waited for the person ({prompt_at} ms; lifted at {lift_ms} ms): {h}"
    );
    assert_ne!(quiet["outcome"], "fine", "{quiet}");
    assert_eq!(quiet["outcome"], "no_response", "{quiet}");
    assert_eq!(quiet["attempts"][0]["answered_by"], "recorder", "{quiet}");
    // Silence, then a voice over the prompt and no key: `spoke`, not
    // silent (the tenant's default: retried while attempts remain).
    assert_eq!(spoke["outcome"], "spoke", "{spoke}");
    assert_eq!(spoke["last_cause"], "spoke", "{spoke}");
    assert_eq!(spoke["attempts"][0]["answered_by"], "silence", "{spoke}");
    assert!(
        spoke["attempts"][0]["hearing"]["spoke_ms"]
            .as_u64()
            .unwrap()
            >= 250,
        "{spoke}"
    );
    // The tenant keeps the person during each prompt and 4 s after it: the
    // speaker's words are there for a coordinator to listen to, as a file.
    let kept = spoke["attempts"][0]["recorded_ms"].as_u64().unwrap_or(0);
    // Each play of the prompt and 4 s after it (at most three plays).
    assert!((4000..=60_000).contains(&kept), "{spoke}");
    let wav = dir
        .join("audio")
        .join(format!("{}-1-answer.wav", checks[2]));
    let heard = genki_media::wav::read_wav_8k(std::fs::File::open(&wav).unwrap()).unwrap();
    assert!(
        heard.iter().any(|v| v.unsigned_abs() > 2000),
        "the recording holds the person's voice, not silence"
    );
    phone_records(speaker);
    let recs = phone_records(keyed);
    assert_eq!(recs[0]["digits_sent"], "1", "{recs:?}");
    phone_records(silent);
    let (code, _) = d.terminate();
    assert_eq!(code, 0);
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&corpus).ok();
}

/// Talk-off (acceptance 5): Japanese speech (several voices, speeds,
/// levels, half over line noise) and synthetic music played as the
/// answer, through G.711 and genki's in-band DTMF detector as the media
/// worker runs it: not one digit. `TALKOFF_MINUTES` sets the speech
/// minutes (default 60, with 15 of music: the hour the issue asks for).
#[test]
fn an_hour_of_speech_and_music_presses_no_key() {
    let minutes: u32 = std::env::var("TALKOFF_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    need_tools();
    let dir = std::env::temp_dir().join(format!("genki-talkoff-{}", std::process::id()));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-talkoff");
    let out = Command::new(&script)
        .arg(&dir)
        .arg(minutes.to_string())
        .output()
        .expect("run make-talkoff");
    assert!(
        out.status.success(),
        "make-talkoff: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let (mut seconds, mut digits) = (0f64, vec![]);
    for f in &files {
        let pcm = genki_media::wav::read_wav_8k(std::fs::File::open(f).unwrap()).unwrap();
        seconds += pcm.len() as f64 / 8000.0;
        for law in [Law::Ulaw, Law::Alaw] {
            let mut det = genki_media::dtmf::InbandDetector::default();
            let mut frame = [0i16; FRAME];
            for (i, chunk) in pcm.chunks(FRAME).enumerate() {
                for (o, v) in frame.iter_mut().zip(chunk) {
                    *o = law.decode(law.encode(*v));
                }
                if let Some(d) = det.feed(&frame[..chunk.len()]) {
                    digits.push(format!(
                        "{}: {d} at {:.2} s ({law:?})",
                        f.display(),
                        i as f64 * 0.02
                    ));
                }
            }
        }
    }
    println!(
        "talk-off: {:.0} s of speech and music ({} files), each law: {} false digits",
        seconds,
        files.len(),
        digits.len()
    );
    // The same detector does hear a real key over the same speech.
    let speech =
        genki_media::wav::read_wav_8k(std::fs::File::open(&files[files.len() - 1]).unwrap())
            .unwrap();
    let key = genki_media::dtmf::tone('1', 120, 6000.0, 0.0);
    let mut det = genki_media::dtmf::InbandDetector::default();
    let heard: Vec<char> = speech[..8000]
        .iter()
        .chain(&key)
        .copied()
        .collect::<Vec<_>>()
        .chunks(FRAME)
        .filter_map(|c| det.feed(c))
        .collect();
    assert_eq!(heard, vec!['1'], "the control key");
    std::fs::remove_dir_all(&dir).ok();
    assert!(seconds >= f64::from(minutes) * 60.0, "{seconds} s");
    assert!(digits.is_empty(), "{digits:#?}");
}

/// Call-ins (acceptance 3): a person whose check was missed calls genki's
/// number (sipp as the caller, From their number, pressing 1 by RFC 2833):
/// the menu answers, the call is recorded as a check of its own whose
/// attempt is marked inbound, and the open case closes with the all-clear
/// to the watcher who was told. An unknown number hears the message and
/// leaves no record of anyone. A tenant whose people check in by ringing
/// and hanging up records that as `fine`.
#[test]
fn a_person_calling_back_closes_their_case_and_a_stranger_leaves_no_record() {
    const SECRET: &str = "s3cret-callin-0123456789";
    let dir = temp_dir("answers-callin");
    let hook = Peer::start(
        &dir,
        "webhook",
        true,
        &["--secret", SECRET, "--max-seconds", "180"],
    );
    let nobody = Peer::start(
        &dir,
        "phones",
        false,
        &[
            "--behaviour",
            "no-answer",
            "--calls",
            "0",
            "--max-seconds",
            "180",
        ],
    );
    let mut d = Daemon::start(
        dir.clone(),
        &[
            ("GENKI_SIP_RING_TIMEOUT_S", "2"),
            ("GENKI_ALERTS_WEBHOOK_ALLOW", "127.0.0.0/8"),
            ("GENKI_SIP_RTP_PORTS", "38800-38899"),
        ],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    let tid = create_tenant(
        &http,
        &json!({"name": "callins", "window_start": "08:00", "window_end": "20:00", "retry": no_retries()}),
    );
    webhook_ladder(&http, tid, &format!("http://{}/genki", hook.addr), SECRET);
    let r = http.post(
        &format!("/v1/tenants/{tid}/subscribers"),
        &json!({"name": "山田 花子", "phone": format!("sip:0471234567@{}", nobody.addr)}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let sid = r.json()["id"].as_u64().unwrap();
    let missed = wait_done(&http, &check_now(&http, sid), Duration::from_secs(60));
    assert_eq!(missed["outcome"], "missed", "{missed}");
    let open = poll(
        &http,
        &format!("/v1/tenants/{tid}/alerts?state=open"),
        Duration::from_secs(15),
        |v| v["alerts"].as_array().is_some_and(|a| a.len() == 1),
    );
    let case_id = open["alerts"][0]["id"].as_u64().unwrap();
    hook.wait_for("the alert webhook", Duration::from_secs(20), |r| {
        r.iter().any(|e| e["type"] == "alert")
    });

    // She calls back and presses 1.
    let call = |scenario: &str, caller: &str| {
        let port = free_port();
        let media = free_port();
        let sdir = dir.join(format!("sipp-{scenario}-{caller}"));
        std::fs::create_dir_all(&sdir).unwrap();
        let sipp = sipp_scenario(
            &sdir,
            scenario,
            port,
            media,
            &[
                "-key",
                "caller",
                caller,
                "-key",
                "dtmf",
                "/usr/share/sip-tester/dtmf_2833_1.pcap",
                "-m",
                "1",
                "-timeout",
                "60s",
                &format!("127.0.0.1:{}", d.sip_port),
            ],
        );
        let out = wait_bounded(sipp, Duration::from_secs(70));
        assert!(
            out.status.success(),
            "sipp ({caller}): {}",
            std::fs::read_to_string(sdir.join("sipp.stderr")).unwrap_or_default()
        );
    };
    let call_in = |caller: &str| call("uac_callin.xml", caller);
    call_in("0471234567");
    let closed = poll(
        &http,
        &format!("/v1/alerts/{case_id}"),
        Duration::from_secs(15),
        |v| v["state"] == "resolved",
    );
    assert_eq!(closed["resolved_by"], "subscriber", "{closed}");
    hook.wait_for("the all-clear webhook", Duration::from_secs(20), |r| {
        r.iter().any(|e| e["type"] == "all_clear")
    });
    let rows = http.get(&format!("/v1/tenants/{tid}/outcomes")).json();
    let items = rows["items"].as_array().unwrap();
    let fine: Vec<_> = items.iter().filter(|i| i["outcome"] == "fine").collect();
    assert_eq!(fine.len(), 1, "{rows}");
    let check = http
        .get(&format!(
            "/v1/checks/{}",
            fine[0]["check_id"].as_str().unwrap()
        ))
        .json();
    let a = &check["attempts"][0];
    assert_eq!(a["inbound"], true, "{check}");
    assert_eq!(a["digits"], "1", "{check}");
    assert_eq!(a["dtmf_transport"], "rfc4733", "{check}");

    // A stranger: the message, and nothing recorded.
    call_in("0399999999");
    let after = http.get(&format!("/v1/tenants/{tid}/outcomes")).json();
    assert_eq!(
        after["items"].as_array().unwrap().len(),
        items.len(),
        "{after}"
    );
    assert_eq!(metric(&http, "genki_inbound_calls_total"), 2);
    assert!(d.log().contains("call-in from an unknown number"), "log");

    // A tenant whose people check in by ringing and hanging up.
    let r = http.patch(
        &format!("/v1/tenants/{tid}"),
        &json!({"checkin_by_ringing": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    call("uac_ring_hangup.xml", "+81471234567");
    let rows = http.get(&format!("/v1/tenants/{tid}/outcomes")).json();
    let fine: Vec<_> = rows["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["outcome"] == "fine")
        .collect();
    assert_eq!(fine.len(), 2, "{rows}");
    let rung = fine
        .iter()
        .map(|f| {
            http.get(&format!("/v1/checks/{}", f["check_id"].as_str().unwrap()))
                .json()
        })
        .find(|c| c["attempts"][0]["end_reason"] == "no_answer")
        .expect("the check-in by ringing");
    assert_eq!(rung["attempts"][0]["inbound"], true, "{rung}");
    assert_eq!(rung["attempts"][0]["answered"], false, "{rung}");
    let (code, _) = d.terminate();
    assert_eq!(code, 0);
    std::fs::remove_dir_all(&dir).ok();
}

/// Every call recorder of the corpus, end to end at once (acceptance 1:
/// "every recorder case ends with the person's real key"): the daemon
/// calls 13 simulated phones, each playing one recorder file (one to four
/// rings, the person speaking or lifting silently) and pressing 1 about
/// six seconds after lifting. Every check ends `fine` with the key, every
/// attempt says `recorder`, and no prompt started before the ringing ended.
#[test]
fn every_recorder_of_the_corpus_ends_with_the_persons_key() {
    let corpus = corpus("recorders");
    let index = std::fs::read_to_string(corpus.join("index.tsv")).unwrap();
    let files: Vec<String> = index
        .lines()
        .filter(|l| l.split('\t').nth(1) == Some("recorder"))
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    assert!(files.len() >= 10, "{files:?}");
    let dir = temp_dir("answers-recorders");
    let mut d = Daemon::start(
        dir.clone(),
        &[("GENKI_SIP_RTP_PORTS", "38900-38999")],
        &["--clock-start", CLOCK],
    );
    let http = d.http();
    let tid = create_tenant(
        &http,
        &json!({"name": "recorders", "window_start": "08:00", "window_end": "20:00", "retry": no_retries()}),
    );
    let mut running = vec![];
    for (i, f) in files.iter().enumerate() {
        let wav = corpus.join(f);
        let pcm = genki_media::wav::read_wav_8k(std::fs::File::open(&wav).unwrap()).unwrap();
        let ms = (pcm.len() / 8) as u64;
        // Each file ends with 6 s of quiet after the lift: the key comes
        // about six seconds after it, a second before the file's end.
        let delay = (ms - 1000).to_string();
        let port = free_port();
        let phone = phones(
            port,
            &[
                "--play",
                &wav.to_string_lossy(),
                "--digits",
                "1",
                "--digit-delay-ms",
                &delay,
            ],
        );
        let r = http.post(
            &format!("/v1/tenants/{tid}/subscribers"),
            &json!({"name": format!("p{i}"), "phone": format!("sip:r{i}@127.0.0.1:{port}")}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let check = check_now(&http, r.json()["id"].as_u64().unwrap());
        running.push((f.clone(), ms, check, phone));
    }
    for (f, ms, check, phone) in running {
        let done = wait_done(&http, &check, Duration::from_secs(120));
        assert_eq!(done["outcome"], "fine", "{f}: {done}");
        let a = &done["attempts"][0];
        assert_eq!(a["answered_by"], "recorder", "{f}: {a}");
        assert_eq!(a["digits"], "1", "{f}: {a}");
        let prompt_at = a["hearing"]["prompt_at_ms"].as_u64().unwrap_or(0);
        assert!(
            prompt_at + 8000 > ms,
            "{f}: the prompt started at {prompt_at} ms, the ringing ended ~{} ms: {a}",
            ms - 8000
        );
        phone_records(phone);
    }
    let (code, _) = d.terminate();
    assert_eq!(code, 0);
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&corpus).ok();
}
