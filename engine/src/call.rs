//! `genki call`: place one watch call and report what happened.
//!
//! This is the IO shell around the sans-IO cores: it owns one SIP socket
//! and one RTP socket, feeds datagrams and instants to
//! [`genki_sip::uac::UacCall`], [`genki_media::rtp::RtpSender`] and the DTMF
//! detectors, and runs the small call flow "play the prompt (repeating it
//! while waiting), gather N digits with barge-in, hang up".
//!
//! Depends on: genki-sip, genki-media, tokio, [`crate::net`].

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use genki_media::dtmf::{parse_info, DtmfCollector, DtmfTransport};
use genki_media::rtp::PlayoutEvent;
use genki_media::Prompt;
use genki_sip::message::{reason_phrase, Builder, Message, Method};
use genki_sip::sdp::{self, Codec};
use genki_sip::uac::{CallEnd, UacCall, UacConfig, UacEvent};
use genki_sip::Timers;
use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::time::Instant as TokioInstant;
use tracing::{debug, info, warn};

use crate::net::{self, NetError};
use crate::rtp_session::RtpSession;

/// Dynamic payload type we offer for telephone-event (RFC 4733 §7.1.1).
pub const TELEPHONE_EVENT_PT: u8 = 101;
/// Pause between repeats of the prompt while waiting for a key.
pub const REPLAY_PAUSE: Duration = Duration::from_secs(1);

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
    pub gather_timeout: Duration,
    pub gather: usize,
    pub prompt: Prompt,
    pub timers: Timers,
}

/// What happened on the call: printed as one JSON object by `--json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CallReport {
    pub answered: bool,
    /// Final response code to the INVITE (None when nothing answered at all).
    pub sip_status: Option<u16>,
    pub digits: String,
    pub dtmf_transport: Option<&'static str>,
    /// INVITE sent → answer (or → final response / end when not answered).
    pub ring_ms: u64,
    /// Answer → end of call (0 when not answered).
    pub talk_ms: u64,
    pub end_reason: &'static str,
    pub call_id: String,
    pub codec: Option<&'static str>,
    pub prompt_plays: u32,
    pub rtp_sent: u64,
    pub rtp_received: u64,
    /// Lateness of our RTP sends against the 20 ms schedule, microseconds.
    pub rtp_send_late_p50_us: u64,
    pub rtp_send_late_p99_us: u64,
    pub rtp_send_late_max_us: u64,
    pub sip_retransmissions: u32,
    pub malformed_sip: u64,
    pub malformed_rtp: u64,
    /// Times the call's event loop ran: about one per datagram or timer.
    /// Far more than packets means the loop spins (a bug, burning CPU).
    pub event_loop_wakeups: u64,
}

impl CallReport {
    /// True when the call could not be placed: nothing answered at all
    /// (Timer B) or the first hop was unreachable.
    pub fn not_placed(&self) -> bool {
        matches!(self.end_reason, "timeout" | "unreachable")
    }

    /// The one-line human summary.
    pub fn summary(&self) -> String {
        format!(
            "{} end={} sip={} digits={:?}{} ring={}ms talk={}ms codec={} rtp_sent={} rtp_received={}",
            if self.answered { "answered" } else { "not answered" },
            self.end_reason,
            self.sip_status.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            self.digits,
            self.dtmf_transport.map(|t| format!(" via {t}")).unwrap_or_default(),
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
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Our own decision to end the call, which takes precedence over what SIP reports.
#[derive(Debug, Clone, Copy)]
enum LocalEnd {
    Digits,
    GatherTimeout,
    Played,
    NoCommonCodec,
}

fn end_reason(local: Option<LocalEnd>, end: &CallEnd, unreachable: bool) -> &'static str {
    if let Some(l) = local {
        return match l {
            LocalEnd::Digits => "digits",
            LocalEnd::GatherTimeout => "gather_timeout",
            LocalEnd::Played => "played",
            LocalEnd::NoCommonCodec => "no_common_codec",
        };
    }
    match end {
        CallEnd::RemoteBye => "remote_bye",
        CallEnd::Rejected { status: 486 | 600 } => "busy",
        CallEnd::Rejected {
            status: 480 | 408 | 487,
        }
        | CallEnd::Cancelled => "no_answer",
        CallEnd::Rejected { .. } => "rejected",
        CallEnd::AuthFailed { .. } => "auth_failed",
        CallEnd::Timeout if unreachable => "unreachable",
        CallEnd::Unreachable => "unreachable",
        CallEnd::Timeout => "timeout",
        CallEnd::LocalBye => "hangup",
    }
}

/// A stateless answer to a request that matches no call (RFC 3261 §8.2):
/// 200 to OPTIONS (trunk keep-alives), nothing to ACK, 481 otherwise.
pub fn stateless_reply(msg: &Message) -> Option<Vec<u8>> {
    let status = match msg.method()? {
        Method::Ack => return None,
        Method::Options => 200,
        _ => 481,
    };
    Some(Builder::response_to(msg, status, reason_phrase(status), Some("genki-stateless")).build())
}

fn percentile(sorted: &[u32], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as u64
}

fn is_unreachable(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::HostUnreachable
            | std::io::ErrorKind::NetworkUnreachable
    )
}

/// Place the call and run it to its end.
pub async fn place_call(opts: CallOptions) -> Result<CallReport, CallError> {
    if !opts.to.starts_with("sip:") && !opts.to.starts_with("sips:") {
        return Err(CallError::BadTarget(opts.to.clone()));
    }
    let next_hop = net::resolve_uri(opts.proxy.as_deref().unwrap_or(&opts.to)).await?;
    let sip = net::bind_udp(opts.bind).await?;
    let bound = sip.local_addr()?;
    let adv_ip = if bound.ip().is_unspecified() {
        net::local_ip_for(next_hop).unwrap_or(bound.ip())
    } else {
        bound.ip()
    };
    let local_addr = SocketAddr::new(adv_ip, bound.port());
    let rtp = net::bind_rtp(adv_ip, &opts.rtp_ports, rand::random()).await?;
    let rtp_port = rtp.local_addr()?.port();

    let call_id = format!("{:016x}@genki", rand::random::<u64>());
    let from = opts
        .from
        .clone()
        .unwrap_or_else(|| format!("sip:genki@{adv_ip}"));
    let offer = sdp::build(
        rand::random::<u32>() as u64,
        adv_ip,
        rtp_port,
        &[Codec::Pcmu, Codec::Pcma],
        Some(TELEPHONE_EVENT_PT),
    );
    let cfg = UacConfig {
        target: opts.to.clone(),
        from,
        local_addr,
        next_hop,
        outbound_proxy: opts.proxy.is_some(),
        credentials: opts.credentials.clone(),
        sdp_offer: offer.into_bytes(),
        call_id: call_id.clone(),
        local_tag: format!("{:08x}", rand::random::<u32>()),
        ring_timeout: opts.ring_timeout,
        timers: opts.timers,
        user_agent: concat!("genki/", env!("CARGO_PKG_VERSION")).to_string(),
    };
    info!(%call_id, to = %opts.to, %next_hop, %local_addr, rtp_port, "placing call");
    let start = TokioInstant::now();
    let mut uac =
        UacCall::new(cfg, start.into_std()).map_err(|e| CallError::BadRequest(e.to_string()))?;
    run(&opts, &sip, &rtp, &mut uac, start, call_id).await
}

async fn run(
    opts: &CallOptions,
    sip: &UdpSocket,
    rtp: &UdpSocket,
    uac: &mut UacCall,
    start: TokioInstant,
    call_id: String,
) -> Result<CallReport, CallError> {
    let mut sip_buf = vec![0u8; 65536];
    let mut rtp_buf = vec![0u8; 2048];
    let mut media: Option<RtpSession> = None;
    let mut collector = DtmfCollector::default();
    let mut digits = String::new();
    let mut transport: Option<DtmfTransport> = None;
    let mut gather_deadline: Option<TokioInstant> = None;
    let mut replay_at: Option<TokioInstant> = None;
    let mut plays = 0u32;
    let mut local_end: Option<LocalEnd> = None;
    let mut answered_at: Option<TokioInstant> = None;
    let mut ended: Option<(CallEnd, TokioInstant)> = None;
    let mut unreachable = false;
    let mut malformed_sip = 0u64;
    // After the end, linger one T1 to absorb retransmissions of final messages.
    let linger = opts.timers.t1;

    let mut iterations = 0u64;
    loop {
        iterations += 1;
        let now = TokioInstant::now();
        // 1. SIP output.
        while let Some(t) = uac.poll_transmit() {
            if let Err(e) = sip.send_to(&t.data, t.dest).await {
                warn!(%call_id, dest = %t.dest, error = %e, "SIP send failed");
                if is_unreachable(&e) {
                    unreachable = true;
                    uac.handle_transport_error(now.into_std());
                }
            }
        }
        // 2. SIP events.
        while let Some(ev) = uac.poll_event() {
            match ev {
                UacEvent::Progress { status } => debug!(%call_id, status, "progress"),
                UacEvent::Answered { sdp } => {
                    answered_at = Some(now);
                    match RtpSession::from_answer(&sdp, now.into_std()) {
                        Ok(mut m) => {
                            info!(%call_id, codec = m.codec_name(), remote = %m.remote, "answered");
                            m.sender.play(opts.prompt.clone());
                            plays = 1;
                            media = Some(m);
                        }
                        Err(e) => {
                            warn!(%call_id, error = %e, "unusable SDP answer; hanging up");
                            local_end = Some(LocalEnd::NoCommonCodec);
                            uac.hangup(now.into_std());
                        }
                    }
                }
                UacEvent::Info { content_type, body } => {
                    if let Some(d) = parse_info(&content_type, &body) {
                        if let Some(x) = collector.push(d, DtmfTransport::Info, now.into_std()) {
                            on_digit(x, &mut digits, &mut transport);
                        }
                    }
                }
                UacEvent::Ended { end } => {
                    info!(%call_id, ?end, "call ended");
                    ended = Some((end, now));
                    if let Some(m) = media.as_mut() {
                        m.sender.stop();
                    }
                }
            }
        }
        if uac.has_transmit() {
            // Reacting to an event queued SIP output (e.g. a BYE): send it now.
            continue;
        }
        // 3. Call flow: react to digits and playout.
        if ended.is_none() && local_end.is_none() {
            if let Some(m) = media.as_mut() {
                while let Some(PlayoutEvent::Finished { .. }) = m.sender.poll_event() {
                    if opts.gather == 0 {
                        local_end = Some(LocalEnd::Played);
                        uac.hangup(now.into_std());
                        break;
                    }
                    if digits.is_empty() {
                        let deadline = *gather_deadline.get_or_insert(now + opts.gather_timeout);
                        if now + REPLAY_PAUSE < deadline {
                            replay_at = Some(now + REPLAY_PAUSE);
                        }
                    }
                }
                if !digits.is_empty() && (m.sender.is_playing() || replay_at.is_some()) {
                    // Barge-in: the first key stops the prompt.
                    m.sender.stop_playout();
                    replay_at = None;
                    gather_deadline = Some(now + opts.gather_timeout);
                }
                if replay_at.is_some_and(|t| now >= t) {
                    replay_at = None;
                    m.sender.play(opts.prompt.clone());
                    plays += 1;
                }
            }
            if opts.gather > 0 && digits.chars().count() >= opts.gather {
                local_end = Some(LocalEnd::Digits);
                uac.hangup(now.into_std());
            } else if gather_deadline.is_some_and(|t| now >= t) {
                local_end = Some(LocalEnd::GatherTimeout);
                uac.hangup(now.into_std());
            }
            if local_end.is_some() {
                if let Some(m) = media.as_mut() {
                    m.sender.stop_playout();
                }
                continue;
            }
        }
        // 4. RTP output.
        if ended.is_none() {
            if let Some(m) = media.as_mut() {
                m.send_due(rtp, now.into_std()).await;
            }
        }
        // 5. Done?
        if let Some((_, at)) = &ended {
            if uac.is_finished() || now >= *at + linger {
                break;
            }
        }
        // 6. Wait for the next input or deadline.
        let deadline = [
            uac.poll_timeout().map(TokioInstant::from_std),
            media
                .as_ref()
                .filter(|_| ended.is_none())
                .and_then(|m| m.sender.poll_timeout())
                .map(TokioInstant::from_std),
            // The call flow's timers matter only while it still runs; a
            // passed one left in here would make this loop spin.
            gather_deadline.filter(|_| local_end.is_none() && ended.is_none()),
            replay_at.filter(|_| local_end.is_none() && ended.is_none()),
            ended.as_ref().map(|(_, at)| *at + linger),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + Duration::from_secs(1));
        tokio::select! {
            r = sip.recv_from(&mut sip_buf) => match r {
                Ok((n, src)) => {
                    let now = TokioInstant::now().into_std();
                    match Message::parse(&sip_buf[..n]) {
                        Ok(msg) if msg.call_id == uac.call_id() => uac.handle_message(msg, src, now),
                        Ok(msg) => {
                            if let Some(reply) = stateless_reply(&msg) {
                                let _ = sip.send_to(&reply, src).await;
                            }
                        }
                        Err(e) => {
                            malformed_sip += 1;
                            warn!(%src, error = %e, "malformed SIP datagram dropped");
                        }
                    }
                }
                Err(e) if is_unreachable(&e) => {
                    warn!(%call_id, error = %e, "first hop unreachable (ICMP)");
                    unreachable = true;
                    uac.handle_transport_error(TokioInstant::now().into_std());
                }
                Err(e) => warn!(error = %e, "SIP receive error"),
            },
            r = rtp.recv_from(&mut rtp_buf) => {
                if let (Ok((n, _src)), Some(m)) = (r, media.as_mut()) {
                    let now = TokioInstant::now().into_std();
                    if let Some(x) = m.on_datagram(&rtp_buf[..n], now, &mut collector) {
                        on_digit(x, &mut digits, &mut transport);
                    }
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
                uac.handle_timeout(TokioInstant::now().into_std());
            }
        }
    }

    let (end, end_at) = ended.expect("loop exits only after the end");
    let end_reason = end_reason(local_end, &end, unreachable);
    let mut late: Vec<u32> = media
        .as_ref()
        .map(|m| m.lateness_us.clone())
        .unwrap_or_default();
    late.sort_unstable();
    Ok(CallReport {
        answered: answered_at.is_some(),
        sip_status: uac.final_status,
        digits,
        dtmf_transport: transport.map(|t| t.as_str()),
        ring_ms: (answered_at.unwrap_or(end_at) - start).as_millis() as u64,
        talk_ms: answered_at
            .map(|a| (end_at - a).as_millis() as u64)
            .unwrap_or(0),
        end_reason,
        call_id,
        codec: media.as_ref().map(|m| m.codec_name()),
        prompt_plays: plays,
        rtp_sent: media.as_ref().map_or(0, |m| m.sender.sent),
        rtp_received: media.as_ref().map_or(0, |m| m.receiver.received),
        rtp_send_late_p50_us: percentile(&late, 0.5),
        rtp_send_late_p99_us: percentile(&late, 0.99),
        rtp_send_late_max_us: late.last().copied().unwrap_or(0) as u64,
        sip_retransmissions: uac.total_retransmissions(),
        malformed_sip,
        malformed_rtp: media.as_ref().map_or(0, |m| m.receiver.malformed),
        event_loop_wakeups: iterations,
    })
}

fn on_digit(x: (char, DtmfTransport), digits: &mut String, transport: &mut Option<DtmfTransport>) {
    debug!(digit = %x.0, transport = x.1.as_str(), "digit");
    digits.push(x.0);
    transport.get_or_insert(x.1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_reasons() {
        assert_eq!(
            end_reason(None, &CallEnd::Rejected { status: 486 }, false),
            "busy"
        );
        assert_eq!(
            end_reason(None, &CallEnd::Rejected { status: 404 }, false),
            "rejected"
        );
        assert_eq!(end_reason(None, &CallEnd::Cancelled, false), "no_answer");
        assert_eq!(end_reason(None, &CallEnd::Timeout, false), "timeout");
        assert_eq!(end_reason(None, &CallEnd::Timeout, true), "unreachable");
        assert_eq!(
            end_reason(Some(LocalEnd::Digits), &CallEnd::LocalBye, false),
            "digits"
        );
        assert_eq!(end_reason(None, &CallEnd::RemoteBye, false), "remote_bye");
    }

    #[test]
    fn stateless_replies() {
        let req = |m: &str| {
            Message::parse(
                format!(
                    "{m} sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: other\r\nCSeq: 1 {m}\r\nContent-Length: 0\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap()
        };
        let r = Message::parse(&stateless_reply(&req("OPTIONS")).unwrap()).unwrap();
        assert_eq!(r.status(), Some(200));
        let r = Message::parse(&stateless_reply(&req("BYE")).unwrap()).unwrap();
        assert_eq!(r.status(), Some(481));
        assert!(stateless_reply(&req("ACK")).is_none());
    }
}
