//! `genki call`: place one watch call and report what happened.
//!
//! It is a one-call run of the daemon's own call path, not a second
//! implementation: the same SIP endpoint task ([`crate::telephony::endpoint`]), the
//! same media workers ([`crate::telephony::media`]) and the same [`run_call`]
//! running a [`Script`]. By default the script is built from the flags
//! (play the prompt, gather N keys with barge-in, repeat the prompt while
//! waiting, hang up); `--script` runs a tenant's script file instead, so an
//! operator can try a script on a real phone before enrolling anyone.
//!
//! Depends on: [`crate::telephony::endpoint`], [`crate::telephony::media`], [`crate::telephony::call`],
//! [`crate::checks::script`], [`crate::telephony::net`], genki-sip, genki-store (records).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use genki_media::Prompt;
use genki_sip::Timers;
use genki_store::{Cause, DtmfTransport, EndReason, Outcome};
use serde::Serialize;
use tokio::sync::watch;
use tracing::info;

use crate::checks::script::{Action, Flow, Gather, Node, Script};
use crate::metrics::Metrics;
use crate::telephony::call::{run_call, CallSetup};
use crate::telephony::endpoint::Endpoint;
use crate::telephony::media::{Latching, MediaOptions, MediaRuntime, MediaTimeout};
use crate::telephony::net::{self, NetError};

/// Everything `genki call` needs.
#[derive(Debug, Clone)]
pub struct CallOptions {
    pub to: String,
    pub proxy: Option<String>,
    pub from: Option<String>,
    pub credentials: Option<(String, String)>,
    pub bind: SocketAddr,
    pub rtp_ports: RangeInclusive<u16>,
    pub ring_timeout: Duration,
    /// What the call runs: see [`simple_script`] for the flags' script.
    pub script: Script,
    /// The prompts the script names.
    pub prompts: HashMap<String, Prompt>,
    pub timers: Timers,
    /// Seconds without RTP (before the first packet, or between two) that
    /// end the call as `no_media` / `media_stopped`.
    pub media_timeout: Duration,
    /// Hard limit on the call.
    pub max_call: Duration,
    /// Session interval asked for (RFC 4028), seconds; 0: none.
    pub session_expires: u32,
    /// Which RTP sources the call accepts.
    pub latching: Latching,
    /// Listen after the answer before the first prompt (who answered).
    pub answer_wait: bool,
}

/// The script `genki call` runs without `--script`: play `prompt` (named
/// "prompt"), gather `gather` keys (barge-in stops the prompt), waiting
/// `timeout_s` after each play and playing it `plays` times in all; then
/// hang up. With `gather` 0 it plays the prompt once and hangs up. No node
/// sets an outcome: `genki call` tests the line, not the person.
pub fn simple_script(gather: usize, timeout_s: u64, plays: u32) -> Script {
    let mut nodes = BTreeMap::new();
    let hangup = Node {
        hangup: true,
        ..Default::default()
    };
    let ask = if gather == 0 {
        Node {
            play: vec!["prompt".into()],
            hangup: true,
            ..Default::default()
        }
    } else {
        Node {
            play: vec!["prompt".into()],
            gather: Some(Gather {
                max_digits: gather,
                timeout_s,
                max_plays: plays,
            }),
            on: [("other", "keys"), ("timeout", "no_keys")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    };
    nodes.insert("ask".to_string(), ask);
    nodes.insert("keys".to_string(), hangup.clone());
    nodes.insert("no_keys".to_string(), hangup);
    Script {
        start: "ask".into(),
        nodes,
    }
}

/// What happened on the call: printed as one JSON object by `--json`.
/// `end_reason` and `cause` use the daemon's vocabulary (the attempt
/// records and API of README "API").
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CallReport {
    pub answered: bool,
    /// Who answered, as genki heard it, and what that rests on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<genki_store::AnsweredBy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hearing: Option<genki_store::Hearing>,
    /// Final response code to the INVITE (None when nothing answered at all).
    pub sip_status: Option<u16>,
    /// The script's outcome (None for the flags' script, which sets none).
    pub outcome: Option<Outcome>,
    /// Why the person was not reached (no_answer, busy, failed, no_input).
    pub cause: Option<Cause>,
    /// Actions the script asked for.
    pub actions: Vec<Action>,
    pub digits: String,
    pub dtmf_transport: Option<DtmfTransport>,
    /// INVITE sent → answer (or → end when not answered).
    pub ring_ms: u64,
    /// Answer → end of call (0 when not answered).
    pub talk_ms: u64,
    pub end_reason: EndReason,
    pub call_id: String,
    pub codec: Option<&'static str>,
    pub prompt_plays: u32,
    pub rtp_sent: u64,
    pub rtp_received: u64,
    /// RTP datagrams from sources the call did not accept (dropped).
    pub rtp_foreign: u64,
    /// Lateness of our RTP sends against the 20 ms schedule, microseconds.
    pub rtp_send_late_p50_us: u64,
    pub rtp_send_late_p99_us: u64,
    pub rtp_send_late_max_us: u64,
    pub sip_retransmissions: u64,
    pub malformed_sip: u64,
    pub malformed_rtp: u64,
    /// Times the call's task woke. Far more than its packets means it spins.
    pub event_loop_wakeups: u64,
}

impl CallReport {
    /// True when the call could not be placed: nothing answered at all
    /// (Timer B), the first hop was unreachable or could not be resolved.
    pub fn not_placed(&self) -> bool {
        matches!(
            self.end_reason,
            EndReason::Timeout | EndReason::Unreachable | EndReason::Unresolvable
        ) && !self.answered
    }

    /// The one-line human summary.
    pub fn summary(&self) -> String {
        format!(
            "{} end={} sip={} outcome={} digits={:?}{} ring={}ms talk={}ms codec={} rtp_sent={} rtp_received={}",
            if self.answered { "answered" } else { "not answered" },
            self.end_reason,
            self.sip_status.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            self.outcome
                .map(|o| o.as_str().to_string())
                .or_else(|| self.cause.as_ref().map(|c| c.to_string()))
                .unwrap_or_else(|| "-".into()),
            self.digits,
            self.dtmf_transport
                .as_ref()
                .map(|t| format!(" via {}", t.as_str()))
                .unwrap_or_default(),
            self.ring_ms,
            self.talk_ms,
            self.codec.unwrap_or("-"),
            self.rtp_sent,
            self.rtp_received,
        )
    }
}

/// Why a call could not even be attempted.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("--to {0:?} must be a sip: URI")]
    BadTarget(String),
    #[error("--to/--from do not make a valid SIP request: {0}")]
    BadRequest(String),
    #[error("the script cannot run: {0}")]
    BadScript(#[from] crate::checks::script::ScriptError),
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Media(#[from] crate::telephony::media::MediaError),
}

/// Place the call and run it to its end.
pub async fn place_call(opts: CallOptions) -> Result<CallReport, CallError> {
    if !opts.to.starts_with("sip:") && !opts.to.starts_with("sips:") {
        return Err(CallError::BadTarget(opts.to.clone()));
    }
    opts.script
        .validate(|name| opts.prompts.contains_key(name))?;
    let next_hop = net::resolve_uri(opts.proxy.as_deref().unwrap_or(&opts.to)).await?;
    let sip = net::bind_udp(opts.bind).await?;
    let bound = sip.local_addr()?;
    let adv_ip = if bound.ip().is_unspecified() {
        net::local_ip_for(next_hop).unwrap_or(bound.ip())
    } else {
        bound.ip()
    };
    let metrics = Arc::new(Metrics::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut endpoint = Endpoint::spawn(sip, metrics.clone(), shutdown_rx)?;
    endpoint.local_addr = SocketAddr::new(adv_ip, bound.port());
    let media = MediaRuntime::start(
        &MediaOptions {
            ip: adv_ip,
            ports: opts.rtp_ports.clone(),
            workers: 1,
            io: genki_udp::sockets::IoKind::Auto,
            timeout: MediaTimeout {
                start: opts.media_timeout,
                gap: opts.media_timeout,
            },
            allow: Vec::new(),
            // One call from a terminal: nothing to compete with.
            realtime: None,
        },
        metrics.clone(),
    )?;
    let setup = CallSetup {
        endpoint,
        from: opts
            .from
            .clone()
            .unwrap_or_else(|| format!("sip:genki@{adv_ip}")),
        presentation: Default::default(),
        proxy: opts.proxy.as_ref().map(|_| next_hop),
        credentials: opts.credentials.clone(),
        credentials_host: None,
        realm: None,
        rtp_ip: adv_ip,
        media,
        ring_timeout: opts.ring_timeout,
        timers: opts.timers,
        metrics: metrics.clone(),
        trunk_latching: opts.latching,
        direct_latching: opts.latching,
        max_call: opts.max_call,
        session_expires: opts.session_expires,
        trunk_transport: opts
            .proxy
            .as_deref()
            .map(genki_sip::stream::Transport::of_uri)
            .unwrap_or_default(),
        audio: None,
        route: None,
        answer: opts
            .answer_wait
            .then(genki_media::answer::AnswerParams::default),
    };
    info!(to = %opts.to, %next_hop, local = %setup.endpoint.local_addr, "placing call");
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut flow = Flow::new(opts.script.clone());
    let dial = crate::telephony::call::Dial::to(&opts.to);
    let r = run_call(&setup, dial, 1, now_ms, &mut flow, &opts.prompts).await;
    if r.attempt.end_reason == EndReason::InvalidTarget {
        return Err(CallError::BadRequest(opts.to.clone()));
    }
    // Let the endpoint finish: the last ACK or 200 to a BYE goes out, and
    // it lingers only as long as a retransmission could still come.
    let _ = shutdown_tx.send(true);
    let rtp = r.stats.rtp.unwrap_or_default();
    let a = r.attempt;
    Ok(CallReport {
        answered: a.answered,
        answered_by: a.answered_by.clone(),
        hearing: a.hearing.clone(),
        sip_status: a.sip_status,
        outcome: r.outcome,
        cause: r.cause,
        actions: flow.actions().to_vec(),
        digits: a.digits,
        dtmf_transport: a.dtmf_transport,
        ring_ms: a.ring_ms,
        talk_ms: a.talk_ms,
        end_reason: a.end_reason,
        call_id: a.call_id,
        codec: r.stats.codec,
        prompt_plays: r.stats.prompt_plays,
        rtp_sent: rtp.sent,
        rtp_received: rtp.received,
        rtp_foreign: rtp.foreign,
        rtp_send_late_p50_us: metrics.rtp_send_lateness.quantile_us(0.5),
        rtp_send_late_p99_us: metrics.rtp_send_lateness.quantile_us(0.99),
        rtp_send_late_max_us: metrics.rtp_send_lateness.max_us(),
        sip_retransmissions: metrics.sip_retransmissions.get(),
        malformed_sip: metrics.malformed_sip.get(),
        malformed_rtp: rtp.malformed,
        event_loop_wakeups: r.stats.wakeups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_script_is_valid_and_sets_no_outcome() {
        for gather in [0, 1, 4] {
            let s = simple_script(gather, 5, 2);
            s.validate(|p| p == "prompt").unwrap();
            assert!(s.nodes.values().all(|n| n.outcome.is_none()));
        }
    }
}
