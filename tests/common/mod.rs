//! Helpers for the end-to-end tests: run the real `genki` binary against
//! real peers (the simulated phones of `genki-loadtest`, sipp) on loopback,
//! every process bounded in time.

#![allow(dead_code)]

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn genki() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_genki"))
}

/// The genki-loadtest binary, built beside genki by `cargo build --workspace --bins`.
pub fn loadtest() -> PathBuf {
    let p = genki().with_file_name("genki-loadtest");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the tests (the README's test command does)",
        p.display()
    );
    p
}

/// A free UDP port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two free even ports P and P+1 range for RTP, as "P-P+1".
pub fn free_rtp_range() -> (u16, String) {
    loop {
        let p = free_port();
        let p = p - p % 2;
        if UdpSocket::bind(("127.0.0.1", p)).is_ok()
            && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return (p, format!("{p}-{}", p + 1));
        }
    }
}

/// Wait for a child with a deadline; kill it when the deadline passes.
pub fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        match child.try_wait().unwrap() {
            Some(_) => return child.wait_with_output().unwrap(),
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "process still running after {limit:?}; stderr:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Start simulated phones on `port` with extra flags; they exit after one call.
pub fn phones(port: u16, args: &[&str]) -> Child {
    let child = Command::new(loadtest())
        .args([
            "phones",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--calls",
            "1",
            "--max-seconds",
            "60",
            "--json",
        ])
        .args(["--rtp-base", &(40000 + (port % 1000) * 20).to_string()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start genki-loadtest");
    // Let it bind before genki dials.
    std::thread::sleep(Duration::from_millis(300));
    child
}

pub struct CallResult {
    pub code: i32,
    pub report: Value,
    pub stderr: String,
}

/// Run `genki call --json` with the given flags.
pub fn genki_call(args: &[&str]) -> CallResult {
    let child = Command::new(genki())
        .arg("call")
        .arg("--json")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start genki");
    let out = wait_bounded(child, Duration::from_secs(90));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = stdout.lines().collect();
    let report = if lines.len() == 1 {
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("bad JSON {stdout:?}: {e}"))
    } else {
        assert!(
            lines.is_empty(),
            "--json must print exactly one object, got {stdout:?}"
        );
        Value::Null
    };
    CallResult {
        code: out.status.code().unwrap_or(-1),
        report,
        stderr,
    }
}

/// The phones' per-call records (one JSON line each).
pub fn phone_records(child: Child) -> Vec<Value> {
    let out = wait_bounded(child, Duration::from_secs(90));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad phone JSON {l:?}: {e}")))
        .collect()
}

/// Dial simulated phones at `port` from genki bound at a free port.
pub fn call_phones(port: u16, genki_args: &[&str]) -> CallResult {
    let bind = format!("127.0.0.1:{}", free_port());
    let to = format!("sip:1001@127.0.0.1:{port}");
    let mut args = vec!["--to", &to, "--bind", &bind];
    args.extend_from_slice(genki_args);
    genki_call(&args)
}
