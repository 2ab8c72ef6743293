//! Golden fixtures: records and API answers as genki wrote them before the
//! vocabulary was typed (tests/golden/README.md), decoded and re-encoded by
//! today's types. Records must come back byte for byte; every word in an
//! API answer must be one this release knows (never `Other`).

use std::path::PathBuf;

use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

use crate::records::{decode, encode};
use crate::{
    Attempt, CaseEvent, Cause, Check, CheckId, DtmfTransport, EndReason, EventKind, WatcherAnswer,
};

fn golden(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden")
        .join(sub)
}

/// Each line of a records fixture decodes and encodes to the same bytes.
fn same_bytes<T: Serialize + DeserializeOwned>(file: &str) -> Vec<T> {
    let text = std::fs::read_to_string(golden("records").join(file)).expect("fixture");
    let mut out = vec![];
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut stored = vec![crate::records::FORMAT];
        stored.extend_from_slice(line.as_bytes());
        let v: T = decode("golden", &stored).unwrap_or_else(|e| panic!("{file}: {e}: {line}"));
        assert_eq!(
            String::from_utf8(encode(&v)[1..].to_vec()).unwrap(),
            line,
            "{file}: re-encoded differently"
        );
        out.push(v);
    }
    out
}

#[test]
fn stored_records_are_byte_compatible() {
    let attempts: Vec<Attempt> = same_bytes("attempts.jsonl");
    assert!(attempts.len() >= 20);
    // Every end reason of the fixture is a known word but the in-progress one.
    let unknown: Vec<_> = attempts
        .iter()
        .filter(|a| matches!(&a.end_reason, EndReason::Other(s) if !s.is_empty()))
        .collect();
    assert!(unknown.is_empty(), "{unknown:?}");
    let checks: Vec<Check> = same_bytes("checks.jsonl");
    assert!(checks
        .iter()
        .all(|c| !matches!(c.last_cause, Some(Cause::Other(_)))));
    let events: Vec<CaseEvent> = same_bytes("case_events.jsonl");
    assert!(events
        .iter()
        .all(|e| !matches!(e.kind, EventKind::Other(_))));
}

/// Decode `v` as `T`, re-encode it, and demand the same JSON.
fn same_json<T: Serialize + DeserializeOwned>(v: &Value, what: &str, file: &str) -> T {
    let t: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{file}: {what}: {e}"));
    assert_eq!(&serde_json::to_value(&t).unwrap(), v, "{file}: {what}");
    t
}

/// Walk an API answer and check every vocabulary field in it.
fn walk(v: &Value, file: &str, seen: &mut usize) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("attempts", Value::Array(_)) => {
                        let a: Vec<Attempt> = same_json(x, k, file);
                        *seen += a.len();
                        for a in &a {
                            assert!(
                                !matches!(a.end_reason, EndReason::Other(_)),
                                "{file}: {a:?}"
                            );
                        }
                    }
                    ("last_cause" | "cause", Value::String(_)) => {
                        let c: Cause = same_json(x, k, file);
                        assert!(!matches!(c, Cause::Other(_)), "{file}: {c:?}");
                        *seen += 1;
                    }
                    ("end_reason", _) => {
                        let e: EndReason = same_json(x, k, file);
                        assert!(!matches!(e, EndReason::Other(_)), "{file}: {e:?}");
                    }
                    ("response", Value::String(_)) => {
                        let a: WatcherAnswer = same_json(x, k, file);
                        assert!(!matches!(a, WatcherAnswer::Other(_)), "{file}: {a:?}");
                        *seen += 1;
                    }
                    ("dtmf_transport", Value::String(_)) => {
                        same_json::<DtmfTransport>(x, k, file);
                    }
                    ("check_id", Value::String(_)) => {
                        same_json::<CheckId>(x, k, file);
                        *seen += 1;
                    }
                    ("timeline", Value::Array(_)) => {
                        let t: Vec<CaseEvent> = same_json(x, k, file);
                        assert!(t.iter().all(|e| !matches!(e.kind, EventKind::Other(_))));
                        *seen += t.len();
                    }
                    _ => walk(x, file, seen),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| walk(x, file, seen)),
        _ => {}
    }
}

#[test]
fn api_answers_decode_and_re_encode_unchanged() {
    let mut files = 0;
    let mut seen = 0;
    for entry in std::fs::read_dir(golden("api")).expect("tests/golden/api") {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        walk(&v, &path.display().to_string(), &mut seen);
        files += 1;
    }
    assert!(files >= 20, "{files} fixtures");
    assert!(seen >= 100, "only {seen} vocabulary values checked");
}
