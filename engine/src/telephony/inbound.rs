//! One call to genki's own number (a person calling back after a missed
//! check), answered: its own RTP port as for an outgoing call, the answer
//! to the caller's SDP offer, a short menu ("fine: 1, please call me: 2")
//! for a known caller or a polite message for an unknown one, then BYE.
//! What it heard comes back as an [`Attempt`] and the key; recording the
//! check-in is the caller's (`checks::inbound`).
//!
//! Depends on: [`crate::telephony::endpoint`], [`crate::telephony::media`],
//! [`crate::telephony::call`] (the call set-up it shares), genki-media,
//! genki-sip (SDP), genki-store (the attempt record), tokio.

use std::collections::HashMap;
use std::time::Duration;

use genki_media::dtmf::{DtmfCollector, DtmfTransport};
use genki_media::Prompt;
use genki_sip::sdp::{self, Codec, MediaDescription};
use genki_sip::uas::UasEvent;
use genki_store::{Attempt, DtmfTransport as RecordedTransport, EndReason};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::telephony::call::CallSetup;
use crate::telephony::endpoint::InboundCall;
use crate::telephony::media::{MediaEvent, Peer};

/// The menu a known caller hears, and what each key means.
pub const MENU: &str = "checkin_menu";
/// What an unknown caller hears.
pub const UNKNOWN: &str = "unknown_caller";
/// Quiet after the menu before it plays again (once), then genki hangs up.
const MENU_WAIT: Duration = Duration::from_secs(8);
/// The longest an incoming call may last.
const MAX_CALL: Duration = Duration::from_secs(120);

/// What a call-in gave.
#[derive(Debug)]
pub struct CallIn {
    pub attempt: Attempt,
    /// The menu key the person pressed ('1' or '2'), if any.
    pub key: Option<char>,
}

/// The presented number of an incoming call: the user part of
/// `P-Asserted-Identity` (the carrier's assertion, RFC 3325 §9.1) if
/// present, else of `From`.
pub fn caller_number(invite: &genki_sip::Message) -> String {
    let uri = invite
        .header("P-Asserted-Identity")
        .or_else(|| invite.header("From"))
        .unwrap_or("");
    let inner = uri
        .split_once('<')
        .map(|(_, r)| r.split('>').next().unwrap_or(""))
        .unwrap_or_else(|| uri.split(';').next().unwrap_or(""));
    inner
        .trim()
        .trim_start_matches("sips:")
        .trim_start_matches("sip:")
        .trim_start_matches("tel:")
        .split(['@', ';'])
        .next()
        .unwrap_or("")
        .to_string()
}

/// How long genki lets a call-in ring before it answers, for a tenant
/// whose people check in by ringing and hanging up.
pub const RING_CHECKIN: Duration = Duration::from_secs(8);

/// Let `call` ring (180) for `window`: true when the caller hung up
/// meanwhile (CANCEL, answered 487 by the endpoint) — their check-in.
pub async fn ring_for(setup: &CallSetup, call: &mut InboundCall, window: Duration) -> bool {
    setup.endpoint.respond_inbound(&call.call_id, 180, None);
    let until = Instant::now() + window;
    loop {
        tokio::select! {
            ev = call.events.recv() => match ev {
                Some(UasEvent::Cancelled) | None => return true,
                Some(_) => {}
            },
            _ = tokio::time::sleep_until(until) => return false,
        }
    }
}

/// Answer `call`: the menu when `known`, else the message for strangers.
pub async fn answer(
    setup: &CallSetup,
    mut call: InboundCall,
    known: bool,
    prompts: &HashMap<String, Prompt>,
    started_at_ms: u64,
) -> CallIn {
    let id = call.call_id.clone();
    let mut attempt = Attempt {
        n: 1,
        call_id: id.clone(),
        started_at_ms,
        inbound: true,
        ..Default::default()
    };
    let refuse = |attempt: Attempt, status: u16| {
        setup.endpoint.respond_inbound(&id, status, None);
        CallIn {
            attempt: Attempt {
                sip_status: Some(status),
                end_reason: EndReason::Rejected(status),
                ..attempt
            },
            key: None,
        }
    };
    let Ok(offer) = MediaDescription::parse(&call.invite.body) else {
        // §13.3.1.3: an offer we cannot take.
        return refuse(attempt, 488);
    };
    let Ok(slot) = setup.media.reserve() else {
        return refuse(attempt, 503);
    };
    let (local, ssrc) = (slot.local, slot.ssrc);
    let peer = Peer {
        latching: setup.direct_latching,
        signalling_ip: Some(call.source.ip()),
        listen: false,
    };
    let (media, mut media_rx) = match setup.media.attach(slot, &call.invite.body, peer) {
        Ok(m) => m,
        Err(e) => {
            warn!(call_id = %id, error = %e, "incoming call's media not set up");
            return refuse(attempt, 488);
        }
    };
    let codec: Codec = media.codec;
    let answer = sdp::build_with_ssrc(
        rand::random::<u32>() as u64,
        setup.rtp_ip,
        local.port(),
        &[codec],
        offer.telephone_event,
        Some(ssrc),
    );
    setup
        .endpoint
        .respond_inbound(&id, 200, Some(answer.into_bytes()));
    attempt.answered = true;
    attempt.sip_status = Some(200);
    let start = Instant::now();
    let name = if known { MENU } else { UNKNOWN };
    let play = |name: &str| match prompts.get(name) {
        Some(p) => media.play(p.clone()),
        None => warn!(prompt = name, "prompt missing"),
    };
    play(name);
    let mut plays = 1;
    let mut wait_until: Option<Instant> = None;
    let mut key: Option<char> = None;
    let mut closing = false;
    let mut hung_up = false;
    let mut collector = DtmfCollector::default();
    let mut turns_since_timer: u32 = 0;
    let end = loop {
        turns_since_timer = turns_since_timer.saturating_add(1);
        let deadline = wait_until.unwrap_or(start + MAX_CALL).min(start + MAX_CALL);
        // Waiting events before a due timer, as in an outgoing call
        // (`super::call::TIMER_TURNS`): a key pressed in time counts.
        let starved = turns_since_timer > super::call::TIMER_TURNS && Instant::now() >= deadline;
        tokio::select! {
            biased;
            ev = call.events.recv(), if !starved => match ev {
                Some(UasEvent::Acked) => debug!(call_id = %id, "incoming call acknowledged"),
                Some(UasEvent::RemoteBye) => break EndReason::RemoteBye,
                Some(UasEvent::ByeDone { .. }) => break EndReason::ScriptDone,
                Some(UasEvent::Cancelled) => break EndReason::NoAnswer,
                Some(UasEvent::AckTimeout) | None => break EndReason::Timeout,
                Some(UasEvent::InfoDone { .. }) => {}
            },
            ev = media_rx.recv(), if !starved => match ev.map(|e| *e) {
                Some(MediaEvent::Digit(d, t)) if known && key.is_none() => {
                    let now = Instant::now().into_std();
                    if let Some((d, t)) = collector.push(d, t, now) {
                        if d == '1' || d == '2' {
                            key = Some(d);
                            attempt.digits.push(d);
                            attempt.dtmf_transport.get_or_insert(match t {
                                DtmfTransport::Rfc4733 => RecordedTransport::Rfc4733,
                                DtmfTransport::Inband => RecordedTransport::Inband,
                                DtmfTransport::Info => RecordedTransport::Info,
                            });
                            media.stop_playout();
                            play(if d == '1' { "thanks" } else { "will_contact" });
                            closing = true;
                            wait_until = None;
                        }
                    }
                }
                Some(MediaEvent::PlayFinished) => {
                    if closing || !known {
                        if !hung_up {
                            hung_up = true;
                            setup.endpoint.hangup_inbound(&id);
                        }
                    } else {
                        wait_until = Some(Instant::now() + MENU_WAIT);
                    }
                }
                Some(MediaEvent::Failed(f)) => {
                    warn!(call_id = %id, reason = f.as_str(), "incoming call's media failed");
                    if !hung_up {
                        hung_up = true;
                        setup.endpoint.hangup_inbound(&id);
                    }
                }
                _ => {}
            },
            _ = tokio::time::sleep_until(deadline) => {
                turns_since_timer = 0;
                if Instant::now() >= start + MAX_CALL || plays >= 2 {
                    if !hung_up {
                        hung_up = true;
                        setup.endpoint.hangup_inbound(&id);
                    }
                    wait_until = Some(Instant::now() + Duration::from_secs(5));
                    if Instant::now() >= start + MAX_CALL + Duration::from_secs(30) {
                        break EndReason::Timeout;
                    }
                } else {
                    plays += 1;
                    wait_until = None;
                    play(MENU);
                }
            }
        }
    };
    attempt.talk_ms = (Instant::now() - start).as_millis() as u64;
    attempt.end_reason = end;
    media.finish().await;
    info!(call_id = %id, known, key = ?key, "incoming call ended");
    CallIn { attempt, key }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_presented_number_is_the_asserted_one_else_from() {
        let m = |h: &str| {
            genki_sip::Message::parse(
                format!(
                    "INVITE sip:genki@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK1\r\n{h}To: <sip:genki@127.0.0.1>\r\nCall-ID: a\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap()
        };
        assert_eq!(
            caller_number(&m("From: \"Yamada\" <sip:0471234567@10.0.0.1>;tag=x\r\n")),
            "0471234567"
        );
        assert_eq!(
            caller_number(&m("From: <sip:anonymous@anonymous.invalid>;tag=x\r\nP-Asserted-Identity: <tel:+81471234567>\r\n")),
            "+81471234567"
        );
        assert_eq!(caller_number(&m("From: sip:123@h;tag=x\r\n")), "123");
    }
}
