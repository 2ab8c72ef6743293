//! `genki demo`: the main job on embedded defaults, with nothing external.
//!
//! Starts the simulated phones (the `genki-loadtest` binary, found beside
//! this one, run as a separate process so the engine stays ignorant of
//! them) on loopback with a few behaviours, places one watch call to each
//! with the built-in Japanese greeting, and prints what happened. The
//! watch-service issue grows this into a whole round against `genki serve`.
//!
//! Depends on: [`crate::call`], [`crate::prompts`], tokio (process).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use genki_sip::Timers;
use tokio::process::Command;

use crate::call::{place_call, CallOptions, CallReport};
use crate::prompts;

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot find genki-loadtest beside {0} (build it: cargo build --workspace --bins)")]
    NoPhones(String),
    #[error("cannot start genki-loadtest: {0}")]
    Spawn(std::io::Error),
    #[error(transparent)]
    Prompt(#[from] prompts::PromptError),
    #[error(transparent)]
    Call(#[from] crate::call::CallError),
    #[error("no free local port: {0}")]
    Port(std::io::Error),
}

fn loadtest_binary() -> Result<PathBuf, DemoError> {
    let me = std::env::current_exe().map_err(|e| DemoError::NoPhones(e.to_string()))?;
    let p = me.with_file_name("genki-loadtest");
    if p.exists() {
        Ok(p)
    } else {
        Err(DemoError::NoPhones(me.display().to_string()))
    }
}

fn free_port() -> Result<u16, DemoError> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").map_err(DemoError::Port)?;
    Ok(s.local_addr().map_err(DemoError::Port)?.port())
}

/// The demo's callees: a label and the phones' flags.
const CALLEES: &[(&str, &[&str])] = &[
    (
        "presses 1 (RFC 4733)",
        &["--digits", "1", "--dtmf", "rfc4733"],
    ),
    (
        "presses 2 (in-band tones)",
        &["--digits", "2", "--dtmf", "inband"],
    ),
    ("presses 1 (SIP INFO)", &["--digits", "1", "--dtmf", "info"]),
    ("is busy", &["--behaviour", "busy"]),
    ("does not answer", &["--behaviour", "no-answer"]),
];

/// Run the demo; returns the reports in the order of [`CALLEES`].
pub async fn run() -> Result<Vec<(String, CallReport)>, DemoError> {
    let phones = loadtest_binary()?;
    let greeting = prompts::default_prompt("greeting")?;
    let mut out = Vec::new();
    for (i, (label, flags)) in CALLEES.iter().enumerate() {
        let port = free_port()?;
        let mut child = Command::new(&phones)
            .args([
                "phones",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--calls",
                "1",
                "--max-seconds",
                "60",
            ])
            .args(["--answer-delay-ms", "800", "--digit-delay-ms", "2500"])
            .args(*flags)
            .kill_on_drop(true)
            .spawn()
            .map_err(DemoError::Spawn)?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        eprintln!(
            "[{}/{}] calling a phone that {label} …",
            i + 1,
            CALLEES.len()
        );
        let bind: SocketAddr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let report = place_call(CallOptions {
            to: format!("sip:demo{}@127.0.0.1:{port}", i + 1),
            proxy: None,
            from: None,
            credentials: None,
            bind,
            rtp_ports: 20000..=20999,
            ring_timeout: Duration::from_secs(4),
            gather_timeout: Duration::from_secs(5),
            gather: 1,
            prompt: greeting.clone(),
            timers: Timers::default(),
        })
        .await?;
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        out.push((label.to_string(), report));
    }
    Ok(out)
}
