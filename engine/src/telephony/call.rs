//! One watch call in the daemon: place it through the shared SIP
//! [`Endpoint`], run the tenant's [`Script`] on it with its own RTP port on
//! a media worker ([`MediaRuntime`]), and return what happened as a storage
//! [`Attempt`] plus the cause of a failure (for the retry policy).
//!
//! A call always ends: media that cannot be set up, never starts or stops
//! ends it with a system cause (`failed`, retried), as does the hard
//! maximum call length; none of these is ever taken for the person's
//! silence.
//!
//! Depends on: [`crate::telephony::endpoint`], [`crate::telephony::media`], [`crate::checks::script`],
//! genki-media, genki-sip, genki-store (records), tokio.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use genki_media::answer::{AnswerClassifier, AnswerParams, Decision};
use genki_media::dtmf::{parse_info, DtmfCollector, DtmfTransport};
use genki_media::mux::StreamStats;
use genki_media::Prompt;
use genki_sip::sdp::{self, Codec};
use genki_sip::uac::{CallEnd, UacConfig, UacEvent};
use genki_sip::Timers;
use genki_store::{Attempt, Cause, DtmfTransport as RecordedTransport, EndReason, Outcome};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;
use crate::telephony::endpoint::{Endpoint, RegStatus};
use crate::telephony::media::{
    AttachError, CallMedia, Latching, MediaEvent, MediaFailure, MediaRuntime, Peer,
};

pub use super::dialogue::{Dialogue, FlowCmd};

/// A call being placed, as a boxed future (a trait object's method).
pub type CallFuture<'a> = Pin<Box<dyn Future<Output = CallResult> + Send + 'a>>;

/// How calls are placed: the daemon's SIP/RTP path ([`CallSetup`]), or a
/// scripted stand-in when a test exercises what runs above it (the due
/// loop, the alert worker) on virtual time without sockets.
pub trait Placer: Send + Sync {
    /// Place one call to `to` and run `dialogue` on it (see [`run_call`]).
    fn place<'a>(
        &'a self,
        dial: Dial<'a>,
        n: u32,
        started_at_ms: u64,
        dialogue: &'a mut dyn Dialogue,
        prompts: &'a HashMap<String, Prompt>,
    ) -> CallFuture<'a>;
    /// How long a call may ring before genki gives up on it.
    fn ring_timeout(&self) -> Duration;
    /// Media workers (alive, started), for `/healthz`.
    fn media_health(&self) -> (usize, usize);
    /// Where the trunk's registration stands (`Off`: none needed).
    fn registration(&self) -> RegStatus {
        RegStatus::Off
    }
    /// The trunk's targets and whether each answered its last keep-alive.
    fn trunk_targets(&self) -> Vec<(SocketAddr, bool)> {
        Vec::new()
    }
}

impl Placer for CallSetup {
    fn place<'a>(
        &'a self,
        dial: Dial<'a>,
        n: u32,
        started_at_ms: u64,
        dialogue: &'a mut dyn Dialogue,
        prompts: &'a HashMap<String, Prompt>,
    ) -> CallFuture<'a> {
        Box::pin(run_call(self, dial, n, started_at_ms, dialogue, prompts))
    }
    fn ring_timeout(&self) -> Duration {
        self.ring_timeout
    }
    fn media_health(&self) -> (usize, usize) {
        (self.media.workers_alive(), self.media.workers())
    }
    fn registration(&self) -> RegStatus {
        self.endpoint.registration()
    }
    fn trunk_targets(&self) -> Vec<(SocketAddr, bool)> {
        self.endpoint.targets().all()
    }
}

/// Dynamic payload type we offer for telephone-event (RFC 4733 §7.1.1).
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// How many turns of a call's loop a due timer may wait behind waiting
/// events before it has a turn of its own (the loop serves waiting events
/// before a due timer, so a key pressed in time beats the input timeout).
pub(crate) const TIMER_TURNS: u32 = 64;

/// Which header carries the presented number to the trunk (RFC 3325 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdentityHeader {
    /// P-Asserted-Identity: the trunk trusts genki's assertion (§9.1).
    #[default]
    Asserted,
    /// P-Preferred-Identity: the trunk asserts it itself (§9.2).
    Preferred,
    None,
}

/// Who genki says is calling.
#[derive(Debug, Clone, Default)]
pub struct Presentation {
    /// The trunk's number (a tenant may have its own); None: From is
    /// [`CallSetup::from`] and no identity header is sent.
    pub number: Option<String>,
    /// Host of the caller's URIs (the trunk's domain, else genki's address).
    pub domain: String,
    pub identity: IdentityHeader,
    /// Withhold the number from the person (RFC 3323): From anonymous,
    /// `Privacy: id`; the identity header still tells the trunk.
    pub anonymous: bool,
}

impl Presentation {
    /// The From URI and the extra INVITE headers for a call presenting
    /// `number` (the tenant's, else the trunk's).
    pub fn headers(
        &self,
        default_from: &str,
        number: Option<&str>,
    ) -> (String, Vec<(String, String)>) {
        let Some(n) = number.or(self.number.as_deref()) else {
            let mut h = Vec::new();
            if self.anonymous {
                h.push(("Privacy".to_string(), "id".to_string()));
            }
            let from = if self.anonymous {
                ANONYMOUS.to_string()
            } else {
                default_from.to_string()
            };
            return (from, h);
        };
        let uri = format!("sip:{n}@{}", self.domain);
        let mut h = Vec::new();
        match self.identity {
            IdentityHeader::Asserted => h.push(("P-Asserted-Identity".into(), format!("<{uri}>"))),
            IdentityHeader::Preferred => {
                h.push(("P-Preferred-Identity".into(), format!("<{uri}>")))
            }
            IdentityHeader::None => {}
        }
        if self.anonymous {
            h.push(("Privacy".into(), "id".into()));
            (ANONYMOUS.to_string(), h)
        } else {
            (uri, h)
        }
    }
}

/// The From URI of a call whose caller is withheld (RFC 3323 §4.1.1.3).
pub const ANONYMOUS: &str = "sip:anonymous@anonymous.invalid";

/// Whom a call goes to, the number it presents (a tenant's own; None:
/// the trunk's), and under what name its early media is kept (a check's
/// `<check>-<attempt>`; None: not kept).
#[derive(Debug, Clone, Copy)]
pub struct Dial<'a> {
    pub to: &'a str,
    pub caller_id: Option<&'a str>,
    pub keep_as: Option<&'a str>,
    /// Seconds of the person's audio kept after each prompt (0: none).
    pub record_s: u32,
    /// The tenant's choice to listen before the first prompt (None: the
    /// daemon's [`CallSetup::answer`]).
    pub listen_first: Option<bool>,
}

impl<'a> Dial<'a> {
    /// A call to `to` with the trunk's number, nothing kept.
    pub fn to(to: &'a str) -> Dial<'a> {
        Dial {
            to,
            caller_id: None,
            keep_as: None,
            record_s: 0,
            listen_first: None,
        }
    }
}

/// What a call needs besides its target.
#[derive(Clone)]
pub struct CallSetup {
    pub endpoint: Endpoint,
    pub from: String,
    /// The presented number, its identity header and privacy.
    pub presentation: Presentation,
    /// The trunk's outbound proxy, resolved; None: each call goes to its URI's host.
    pub proxy: Option<SocketAddr>,
    pub credentials: Option<(String, String)>,
    /// Where `credentials` may answer a digest challenge: None, on every
    /// call (`genki call`, whose user typed them for this call); Some(host),
    /// only on calls through the trunk's proxy or to that host (the trunk's
    /// domain; empty: through the proxy only). A tenant who names a phone
    /// `sip:x@somewhere` must not collect the trunk's credentials there.
    pub credentials_host: Option<String>,
    /// The trunk's digest realm; Some: only its challenges are answered.
    pub realm: Option<String>,
    pub rtp_ip: IpAddr,
    /// The media workers every call's RTP runs on.
    pub media: Arc<MediaRuntime>,
    pub ring_timeout: Duration,
    pub timers: Timers,
    pub metrics: Arc<Metrics>,
    /// Which RTP sources calls through the trunk's proxy accept.
    pub trunk_latching: Latching,
    /// Which RTP sources calls dialled straight to a SIP URI accept.
    pub direct_latching: Latching,
    /// Hard limit on a call, from its INVITE to its end.
    pub max_call: Duration,
    /// The session interval asked for (RFC 4028), seconds; 0: none.
    pub session_expires: u32,
    /// The trunk's targets when its proxy is a domain (RFC 3263), looked
    /// up for every call; None: `proxy` as resolved at start.
    pub route: Option<Arc<crate::telephony::dns::TrunkRoute>>,
    /// How calls through the proxy travel (its URI's `;transport=`).
    pub trunk_transport: genki_sip::stream::Transport,
    /// Where early media is kept (None: not kept).
    pub audio: Option<Arc<crate::telephony::audio::AudioStore>>,
    /// Listen after the answer before the first prompt (who answered:
    /// [`genki_media::answer`]); None: the prompt starts at the answer.
    pub answer: Option<AnswerParams>,
}

/// The result of one call for the scheduler.
#[derive(Debug, Clone)]
pub struct CallResult {
    pub attempt: Attempt,
    /// The script's outcome when the person was reached.
    pub outcome: Option<Outcome>,
    /// Why the person was not reached.
    pub cause: Option<Cause>,
    /// How the call went technically (for `genki call`'s report and logs).
    pub stats: CallStats,
}

/// Technical facts of one call, beside its attempt record.
#[derive(Debug, Clone, Default)]
pub struct CallStats {
    /// The negotiated codec ("PCMU", "PCMA"), once answered.
    pub codec: Option<&'static str>,
    /// Prompts started (a repeated prompt counts each time).
    pub prompt_plays: u32,
    /// Times the call's task woke: about one per SIP event, key, playout
    /// end or timer. Far more means it spins (a bug, burning CPU).
    pub wakeups: u64,
    /// The call's RTP counters, when media ran.
    pub rtp: Option<StreamStats>,
    /// How long the final response asked genki to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
}

/// How a call ended, as [`conclude`] needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    /// What SIP reported.
    pub sip: CallEnd,
    pub answered: bool,
    /// The script's outcome, if it reached one.
    pub outcome: Option<Outcome>,
    /// The script ran to its end (genki hung up for it).
    pub script_done: bool,
    /// genki ended the call for a fault of its own or of the network
    /// (media, an unusable SDP answer): never the person's silence.
    pub fault: Option<EndReason>,
    /// genki heard that no person took the call and hung up: an answering
    /// machine, an announcement, a fax, or a recorder's ringing nobody
    /// answered ([`EndReason::Machine`] … [`EndReason::NotLifted`]).
    pub not_person: Option<EndReason>,
}

/// A call's target as logs show it: the user part (a person's phone
/// number) hidden, the host kept (what an operator needs to see which
/// route failed). Logs travel further than the database.
pub fn redacted(to: &str) -> String {
    match to.split_once('@') {
        Some((user, host)) => {
            let scheme = user.split_once(':').map(|(s, _)| s).unwrap_or("sip");
            format!("{scheme}:***@{host}")
        }
        None => "***".to_string(),
    }
}

/// Whether the trunk's credentials may answer a challenge on a call to `to`
/// (see [`CallSetup::credentials_host`]).
fn credentials_allowed(setup: &CallSetup, to: &str) -> bool {
    setup.credentials_host.is_none() || through_trunk(setup, to)
}

/// Whether a call to `to` goes through the trunk: through its proxy, or
/// to its domain's host.
fn through_trunk(setup: &CallSetup, to: &str) -> bool {
    if setup.proxy.is_some() {
        return true;
    }
    let Some(host) = &setup.credentials_host else {
        return false;
    };
    let trunk = host.split(':').next().unwrap_or("");
    !trunk.is_empty()
        && genki_sip::message::uri_host_port(to).is_some_and(|(h, _)| h.eq_ignore_ascii_case(trunk))
}

/// The one mapping from a call's end to what its attempt records: the end
/// reason, the outcome, and the cause (the retry policy's input) when the
/// person was not reached.
pub fn conclude(e: &Ending) -> (EndReason, Option<Outcome>, Option<Cause>) {
    let reason = match (&e.fault, &e.sip) {
        (Some(f), _) => f.clone(),
        (None, _) if e.not_person.is_some() && e.outcome.is_none() => {
            e.not_person.clone().unwrap_or_default()
        }
        (None, _) if e.script_done => EndReason::ScriptDone,
        (None, CallEnd::RemoteBye) => EndReason::RemoteBye,
        (None, CallEnd::SessionExpired) => EndReason::SessionExpired,
        (None, CallEnd::LocalBye) => EndReason::Hangup,
        (None, CallEnd::Cancelled) => EndReason::NoAnswer,
        (None, CallEnd::Timeout) => EndReason::Timeout,
        (None, CallEnd::Unreachable) => EndReason::Unreachable,
        (None, CallEnd::AuthFailed { status }) => EndReason::AuthFailed(*status),
        (None, CallEnd::Rejected { status }) => EndReason::Rejected(*status),
    };
    let (outcome, cause) = match (e.answered, e.outcome) {
        // A fault is genki's or the network's, never the person's silence:
        // no outcome the script reached without hearing them stands.
        (true, _) if e.fault.is_some() => (None, Some(Cause::Failed)),
        // The session timer ended the call before the person's answer:
        // the network's doing, not their silence.
        (true, None) if e.sip == CallEnd::SessionExpired => (None, Some(Cause::Failed)),
        // Heard: not the person. A machine or a handset nobody lifted is
        // the person not answering; an announcement or a fax is not their
        // line at all.
        (true, None) if e.not_person.is_some() => (
            None,
            Some(match reason {
                EndReason::Machine => Cause::Machine,
                EndReason::Fax => Cause::Fax,
                EndReason::NotLifted => Cause::NoAnswer,
                _ => Cause::Announcement,
            }),
        ),
        (true, Some(o)) => (Some(o), None),
        // Answered, but the line dropped before the script gave an outcome.
        (true, None) => (None, Some(Cause::NoInput)),
        // The carrier failed before anyone's phone rang (5xx, no response,
        // an unreachable hop, trunk credentials): the path's fault.
        (false, _) if reason.is_carrier_fault() => (None, Some(Cause::Carrier)),
        (false, _) => (
            None,
            Some(match e.sip {
                CallEnd::Rejected { status: 486 | 600 } => Cause::Busy,
                // The network says the number is wrong (RFC 3261 §21.4.5,
                // §21.4.6, §21.4.12, §21.6.4): the coordinator's to fix.
                CallEnd::Rejected {
                    status: 404 | 410 | 484 | 604,
                } => Cause::InvalidNumber,
                // The line refused genki's call (§21.4.4, §21.6.2; 433:
                // RFC 5079 §5, anonymity disallowed).
                CallEnd::Rejected {
                    status: 403 | 433 | 603,
                } => Cause::Rejected,
                CallEnd::Rejected {
                    status: 480 | 408 | 487,
                }
                | CallEnd::Cancelled => Cause::NoAnswer,
                _ => Cause::Failed,
            }),
        ),
    };
    (reason, outcome, cause)
}

/// Place one call to `to` and run `script` on it. Never panics on peer behaviour.
pub async fn run_call(
    setup: &CallSetup,
    dial: Dial<'_>,
    n: u32,
    started_at_ms: u64,
    flow: &mut (impl Dialogue + ?Sized),
    prompts: &HashMap<String, Prompt>,
) -> CallResult {
    let to = dial.to;
    let mut attempt = Attempt {
        n,
        started_at_ms,
        ..Default::default()
    };
    let fail = |mut attempt: Attempt, reason: EndReason| {
        attempt.end_reason = reason;
        CallResult {
            attempt,
            outcome: None,
            cause: Some(Cause::Failed),
            stats: CallStats::default(),
        }
    };
    // A trunk that requires registration refuses (or, worse, bills and
    // drops) calls while genki's binding does not hold: not dialled, held
    // as a carrier fault, never counted against the person.
    let trunk = through_trunk(setup, to);
    if trunk && !setup.endpoint.registration().allows_calls() {
        warn!(to = %redacted(to), "not registered with the trunk; not dialled");
        let mut r = fail(attempt, EndReason::Unregistered);
        r.cause = Some(Cause::Carrier);
        return r;
    }
    // The trunk's targets, in order (RFC 3263): the first is dialled, the
    // others take over if it fails.
    let mut alternates = Vec::new();
    let mut transport = if setup.proxy.is_some() {
        setup.trunk_transport
    } else {
        genki_sip::stream::Transport::of_uri(to)
    };
    let next_hop = match (setup.proxy, &setup.route) {
        (Some(_), Some(route)) => match route.targets().await {
            Ok(mut t) if !t.is_empty() => {
                // Targets the keep-alive found down go last (stable: the
                // DNS order stays among the others).
                let states = setup.endpoint.targets();
                t.sort_by_key(|x| states.is_down(x.addr));
                transport = t[0].transport;
                alternates = t[1..]
                    .iter()
                    .filter(|x| x.transport == transport)
                    .map(|x| x.addr)
                    .collect();
                t[0].addr
            }
            Ok(_) | Err(_) => {
                warn!(to = %redacted(to), "the trunk's domain did not resolve; not dialled");
                let mut r = fail(attempt, EndReason::Unresolvable);
                r.cause = Some(Cause::Carrier);
                return r;
            }
        },
        (Some(p), None) => p,
        (None, _) => match crate::telephony::net::resolve_uri(to).await {
            Ok(a) => a,
            Err(e) => {
                warn!(to = %redacted(to), error = %e, "cannot resolve the subscriber's address");
                return fail(attempt, EndReason::Unresolvable);
            }
        },
    };
    let m = &setup.metrics;
    let media_failed = |mut attempt: Attempt, f: MediaFailure| {
        m.media_failures[f.index()].inc();
        attempt.end_reason = f.into();
        CallResult {
            attempt,
            outcome: None,
            cause: Some(Cause::Failed),
            stats: CallStats::default(),
        }
    };
    // The call's own RTP port, bound before anything is dialled.
    let slot = match setup.media.reserve() {
        Ok(s) => s,
        Err(e) => {
            warn!(to = %redacted(to), error = %e, "no media for the call; not dialled");
            return media_failed(attempt, MediaFailure::Setup);
        }
    };
    let rtp_port = slot.local.port();
    let ssrc = slot.ssrc;
    let mut slot = Some(slot);
    // Listen before the first prompt? The tenant's choice, else the daemon's.
    let answer_params = match dial.listen_first {
        Some(true) => Some(setup.answer.unwrap_or_default()),
        Some(false) => None,
        None => setup.answer,
    };
    let peer = Peer {
        latching: if setup.proxy.is_some() {
            setup.trunk_latching
        } else {
            setup.direct_latching
        },
        signalling_ip: Some(next_hop.ip()),
        listen: answer_params.is_some(),
    };
    let call_id = format!("{:016x}@genki", rand::random::<u64>());
    attempt.call_id = call_id.clone();
    let offer = sdp::build_with_ssrc(
        rand::random::<u32>() as u64,
        setup.rtp_ip,
        rtp_port,
        &[Codec::Pcmu, Codec::Pcma],
        Some(TELEPHONE_EVENT_PT),
        Some(ssrc),
    );
    let (from, headers) = setup.presentation.headers(&setup.from, dial.caller_id);
    let cfg = UacConfig {
        target: to.to_string(),
        from,
        headers,
        alternates,
        session_expires: setup.session_expires,
        transport,
        local_addr: setup.endpoint.local_addr,
        next_hop,
        outbound_proxy: setup.proxy.is_some(),
        credentials: setup
            .credentials
            .clone()
            .filter(|_| credentials_allowed(setup, to)),
        realm: setup.realm.clone(),
        sdp_offer: offer.into_bytes(),
        call_id: call_id.clone(),
        local_tag: format!("{:08x}", rand::random::<u32>()),
        ring_timeout: setup.ring_timeout,
        timers: setup.timers,
        user_agent: concat!("genki/", env!("CARGO_PKG_VERSION")).to_string(),
    };
    let mut events = match setup.endpoint.start(cfg) {
        Ok(rx) => rx,
        Err(e) => {
            warn!(%call_id, to = %redacted(to), error = %e, "call not placed");
            return fail(attempt, EndReason::InvalidTarget);
        }
    };
    let start = Instant::now();
    let mut media: Option<CallMedia> = None;
    // None until media is attached (a placeholder channel cost ~1 KiB a call).
    let mut media_rx: Option<super::media::MediaEvents> = None;
    let mut collector = DtmfCollector::default();
    let mut pending_prompts = 0usize;
    let mut answered_at: Option<Instant> = None;
    let mut hung_up = false;
    let mut failure: Option<MediaFailure> = None;
    let mut codec_failed = false;
    let mut address_refused = false;
    // At the hard limit genki hangs up; if even the BYE's transaction
    // cannot end the call (Timer F is 64·T1), it stops waiting.
    let limit = start + setup.max_call;
    let give_up = limit + setup.timers.t1 * 64 + Duration::from_secs(1);
    let mut stats = CallStats::default();
    // Who answered, and where the script stands because of it.
    let mut ans = Answer::default();
    let mut reached = false;
    let mut stored_early = false;
    // A provisional response beyond 100 came: the request got past the trunk.
    let mut progressed = false;
    // Turns of this loop since the timer branch last ran (see `starved`).
    let mut turns_since_timer: u32 = 0;
    let mut end = loop {
        stats.wakeups += 1;
        turns_since_timer = turns_since_timer.saturating_add(1);
        let now = Instant::now();
        if !reached && failure.is_none() && flow.outcome().is_some() {
            reached = true;
        }
        // A script that ends silent (no key) while genki heard a voice is
        // `spoke`, decided at the call's end (by the tenant's policy), not
        // stored now as `no_response`.
        let spoke_now = ans
            .hearer
            .as_ref()
            .is_some_and(|h| h.evidence().spoke_ms >= SPOKE_MS);
        if reached && !stored_early && !(spoke_now && flow.outcome() == Some(Outcome::NoResponse)) {
            stored_early = true;
            let mut so_far = attempt.clone();
            so_far.digits = flow.digits().to_string();
            so_far.outcome = flow.outcome();
            so_far.sip_status = Some(200);
            so_far.talk_ms = answered_at
                .map(|a| (now - a).as_millis() as u64)
                .unwrap_or(0);
            if let Some(h) = ans.hearer.as_ref() {
                let (by, hearing) = hearing_of(h.evidence());
                so_far.answered_by = by;
                so_far.hearing = Some(hearing);
            }
            flow.reached(&so_far);
        }
        // What listening decided.
        while let Some(d) = ans.hearer.as_mut().and_then(|h| h.poll(now.into_std())) {
            if hung_up {
                break;
            }
            match d {
                Decision::Prompt { by } => {
                    debug!(%call_id, by = by.as_str(), "prompt starts");
                    ans.holding = false;
                    ans.started = true;
                    flow.start(now.into_std());
                }
                Decision::Hold => {
                    info!(%call_id, "a call recorder rings the handset; prompt held");
                    ans.holding = true;
                    pending_prompts = 0;
                    if let Some(s) = media.as_ref() {
                        s.stop_playout();
                    }
                }
                Decision::Machine { beep } => {
                    info!(%call_id, beep, "an answering machine");
                    ans.not_person = Some(EndReason::Machine);
                    match (prompts.get(MACHINE_MESSAGE), media.as_ref()) {
                        (Some(p), Some(s)) => {
                            s.play(p.clone());
                            stats.prompt_plays += 1;
                            ans.leaving_message = true;
                        }
                        _ => {
                            hung_up = true;
                            setup.endpoint.hangup(&call_id);
                        }
                    }
                }
                Decision::HangUp { by } => {
                    info!(%call_id, by = by.as_str(), "not a person; hanging up");
                    ans.not_person = Some(match by {
                        genki_media::answer::AnsweredBy::Fax => EndReason::Fax,
                        genki_media::answer::AnsweredBy::Recorder => EndReason::NotLifted,
                        _ => EndReason::Announcement,
                    });
                    hung_up = true;
                    setup.endpoint.hangup(&call_id);
                }
            }
        }
        // Flow commands.
        while let Some(cmd) = flow.poll_cmd() {
            match cmd {
                FlowCmd::Play(names) => {
                    if let Some(s) = media.as_ref() {
                        let mut played_ms = 0;
                        for name in names {
                            match prompts.get(&name) {
                                Some(p) => {
                                    s.play(p.clone());
                                    played_ms += p.duration_ms();
                                    pending_prompts += 1;
                                    stats.prompt_plays += 1;
                                }
                                None => warn!(%call_id, prompt = %name, "prompt missing; skipped"),
                            }
                        }
                        // The person answers over the prompt or after it:
                        // keep both, if the tenant asks.
                        if dial.record_s > 0 && played_ms > 0 && flow.outcome().is_none() {
                            s.record((played_ms / 1000) as u32 + dial.record_s);
                        }
                    }
                    if pending_prompts == 0 {
                        flow.on_play_finished(now.into_std());
                    }
                }
                FlowCmd::StopPlayout => {
                    if let Some(s) = media.as_ref() {
                        s.stop_playout();
                    }
                    pending_prompts = 0;
                }
                FlowCmd::Hangup => {
                    if !hung_up {
                        hung_up = true;
                        setup.endpoint.hangup(&call_id);
                    }
                }
            }
        }
        if flow.has_cmd() {
            continue;
        }
        let deadline = flow
            .poll_timeout()
            .filter(|_| !ans.holding)
            .into_iter()
            .chain(ans.hearer.as_ref().and_then(|h| h.poll_timeout()))
            .min()
            .map(Instant::from_std)
            .unwrap_or(now + Duration::from_secs(3600))
            .min(if hung_up { give_up } else { limit });
        // Events already waiting go before a timer that came due meanwhile:
        // on a busy machine a call task runs late, and a key the person
        // pressed in time must not lose a coin toss to the input timeout
        // that fell due while it waited (seen at 3,000 calls on one
        // saturated core: a phone's "1" stored as no_response). A flood of
        // events cannot hold a due timer off: after `TIMER_TURNS` turns
        // without it, it has one turn alone (and only one: a deadline that
        // stays in the past must not shut the events out for good).
        let starved = turns_since_timer > TIMER_TURNS && Instant::now() >= deadline;
        tokio::select! {
            biased;
            ev = events.recv(), if !starved => match ev.map(|e| *e) {
                Some(UacEvent::Progress { status, sdp }) => {
                    progressed |= status >= 180;
                    // Early media (a 183's SDP): the network's announcement
                    // or ringback, heard and kept until the answer.
                    if let (Some(sdp), true) = (sdp, media.is_none()) {
                        if let Some(early) = slot.take() {
                            match setup.media.attach_early(early, &sdp, peer) {
                                Ok((s, rx)) => {
                                    debug!(%call_id, status, "early media");
                                    media = Some(s);
                                    media_rx = Some(rx);
                                }
                                Err(e) => warn!(%call_id, error = %e, "early media not set up"),
                            }
                        }
                    }
                }
                Some(UacEvent::FailedOver { from, to }) => {
                    warn!(%call_id, %from, %to, "trunk target failed; the call goes to the next one");
                    m.trunk_failovers.inc();
                }
                Some(UacEvent::RetryAfter { seconds }) => {
                    stats.retry_after = Some(Duration::from_secs(u64::from(seconds)));
                }
                Some(UacEvent::Answered { sdp }) => {
                    answered_at = Some(Instant::now());
                    attempt.answered = true;
                    attempt.ring_ms = (Instant::now() - start).as_millis() as u64;
                    // Answered after early media: the same session goes
                    // on (RFC 3261 §13.2.1: the 183's SDP was the answer).
                    if let Some(s) = media.as_mut() {
                        s.answered();
                        // The 2xx may name other media than the 183 did
                        // (the announcement came from another box).
                        // (A 2xx after a reliable 183 may carry none.)
                        match s.retarget(&sdp, peer) {
                            Ok(true) => info!(%call_id, remote = %s.remote, "the answer moved the media"),
                            Ok(false) => {}
                            Err(_) if sdp.is_empty() => {}
                            Err(e) => warn!(%call_id, error = %e, "the answer's SDP is not followed; media stays where the 183 put it"),
                        }
                        info!(%call_id, codec = s.codec_name(), "answered (after early media)");
                        stats.codec = Some(s.codec_name());
                        ans.begin(answer_params, flow, Instant::now().into_std());
                        continue;
                    }
                    let Some(slot) = slot.take() else {
                        // The early media's set-up failed and took the port.
                        warn!(%call_id, "no media for the answered call; hanging up");
                        failure = Some(MediaFailure::Setup);
                        hung_up = true;
                        setup.endpoint.hangup(&call_id);
                        continue;
                    };
                    match setup.media.attach(slot, &sdp, peer) {
                        Ok((s, rx)) => {
                            info!(%call_id, codec = s.codec_name(), "answered");
                            stats.codec = Some(s.codec_name());
                            media = Some(s);
                            media_rx = Some(rx);
                            ans.begin(answer_params, flow, Instant::now().into_std());
                        }
                        Err(AttachError::Sdp(e)) => {
                            warn!(%call_id, error = %e, "unusable SDP answer; hanging up");
                            codec_failed = true;
                            hung_up = true;
                            setup.endpoint.hangup(&call_id);
                        }
                        Err(e @ AttachError::Address { .. }) => {
                            warn!(%call_id, error = %e, "hanging up");
                            address_refused = true;
                            hung_up = true;
                            setup.endpoint.hangup(&call_id);
                        }
                        Err(e) => {
                            warn!(%call_id, error = %e, "media not set up; hanging up");
                            failure = Some(MediaFailure::Setup);
                            hung_up = true;
                            setup.endpoint.hangup(&call_id);
                        }
                    }
                }
                Some(UacEvent::Info { content_type, body }) => {
                    if let Some(d) = parse_info(&content_type, &body) {
                        let now = Instant::now().into_std();
                        if let Some((d, t)) = collector.push(d, DtmfTransport::Info, now) {
                            on_digit(&mut attempt, m, d, t);
                            if ans.key(flow, now) {
                                flow.on_digit(d, now);
                            }
                        }
                    }
                }
                Some(UacEvent::MediaUpdate { sdp }) => {
                    if let Some(s) = media.as_mut() {
                        match s.retarget(&sdp, peer) {
                            Ok(true) => info!(%call_id, remote = %s.remote, "the peer moved its media"),
                            Ok(false) => {}
                            Err(e) => warn!(%call_id, error = %e, "the peer's new SDP is not followed; media stays"),
                        }
                    }
                }
                Some(UacEvent::Ended { end }) => break end,
                None => break CallEnd::Timeout,
            },
            ev = recv_some(&mut media_rx), if media.is_some() && failure.is_none() && !starved => match ev.map(|e| *e) {
                // Tones in early media are the network's, not a key.
                Some(MediaEvent::Digit(..)) if answered_at.is_none() => {}
                Some(MediaEvent::Digit(d, t)) => {
                    let now = Instant::now().into_std();
                    if let Some((d, t)) = collector.push(d, t, now) {
                        on_digit(&mut attempt, m, d, t);
                        if ans.key(flow, now) {
                            flow.on_digit(d, now);
                        }
                    }
                }
                Some(MediaEvent::PlayFinished) if ans.leaving_message => {
                    // The message is on the machine's tape.
                    ans.leaving_message = false;
                    if !hung_up {
                        hung_up = true;
                        setup.endpoint.hangup(&call_id);
                    }
                }
                Some(MediaEvent::PlayFinished) => {
                    pending_prompts = pending_prompts.saturating_sub(1);
                    if pending_prompts == 0 && !ans.holding {
                        flow.on_play_finished(Instant::now().into_std());
                    }
                }
                Some(MediaEvent::Heard(h)) => {
                    if let Some(l) = ans.hearer.as_mut() {
                        l.heard(h);
                    }
                }
                // The worker reported a fault, or died (its channel closed).
                other => {
                    let f = match other {
                        Some(MediaEvent::Failed(f)) => f,
                        _ => MediaFailure::Setup,
                    };
                    if flow.outcome().is_none() {
                        warn!(%call_id, reason = f.as_str(), "media failed; hanging up (retried, not the person's silence)");
                        failure = Some(f);
                        if !hung_up {
                            hung_up = true;
                            setup.endpoint.hangup(&call_id);
                        }
                    } else {
                        // The person already answered the script: their answer stands.
                        debug!(%call_id, reason = f.as_str(), "media ended after the outcome");
                        media = None;
                    }
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
                turns_since_timer = 0;
                let now = Instant::now();
                if now >= give_up {
                    warn!(%call_id, "call did not end after its hang-up; abandoned");
                    break CallEnd::Timeout;
                }
                if now >= limit && !hung_up {
                    warn!(%call_id, limit_s = setup.max_call.as_secs(), "maximum call length reached; hanging up");
                    if flow.outcome().is_none() {
                        failure = Some(MediaFailure::MaxCallLength);
                    }
                    hung_up = true;
                    setup.endpoint.hangup(&call_id);
                }
                if !ans.holding {
                    flow.handle_timeout(now.into_std());
                }
            }
        }
    };
    // A registering trunk that forbids a call before anything rang has
    // most likely lost our binding (a registrar restarted): register
    // again now, and count the call as the carrier's fault (held), not as
    // the person's line refusing — a 403 that repeats once the binding is
    // back is the line's.
    if end == (CallEnd::Rejected { status: 403 })
        && trunk
        && !progressed
        && setup.endpoint.registration() != RegStatus::Off
    {
        warn!(%call_id, "the trunk refused the call (403) before it rang; registering again");
        setup.endpoint.reregister();
        end = CallEnd::AuthFailed { status: 403 };
    }
    let ended = Instant::now();
    attempt.sip_status = match &end {
        _ if attempt.answered => Some(200),
        CallEnd::Rejected { status } | CallEnd::AuthFailed { status } => Some(*status),
        CallEnd::Cancelled => Some(487),
        _ => None,
    };
    if answered_at.is_none() {
        attempt.ring_ms = (ended - start).as_millis() as u64;
    }
    attempt.talk_ms = answered_at
        .map(|a| (ended - a).as_millis() as u64)
        .unwrap_or(0);
    attempt.digits = flow.digits().to_string();
    if let Some(f) = failure {
        m.media_failures[f.index()].inc();
    }
    // Remove the stream from its worker (which counts its packets).
    if let Some(s) = media.take() {
        let law = match s.codec {
            Codec::Pcmu => genki_media::Law::Ulaw,
            Codec::Pcma => genki_media::Law::Alaw,
        };
        stats.rtp = s.finish().await;
        let early = stats
            .rtp
            .as_mut()
            .map(|r| std::mem::take(&mut r.captured))
            .unwrap_or_default();
        let answer = stats
            .rtp
            .as_mut()
            .map(|r| std::mem::take(&mut r.recorded))
            .unwrap_or_default();
        if !answer.is_empty() {
            attempt.recorded_ms = Some(answer.len() as u64 / 8);
            if let (Some(store), Some(name)) = (setup.audio.clone(), dial.keep_as) {
                let name = name.to_string();
                let kept = tokio::task::spawn_blocking(move || {
                    store.keep_as(&name, crate::telephony::audio::Kept::Answer, law, &answer)
                })
                .await;
                match kept {
                    Ok(Ok(path)) => debug!(%call_id, path = %path.display(), "answer kept"),
                    Ok(Err(e)) => warn!(%call_id, error = %e, "answer not kept"),
                    Err(e) => warn!(%call_id, error = %e, "answer not kept"),
                }
            }
        }
        if !early.is_empty() {
            attempt.early_media_ms = Some(early.len() as u64 / 8);
            if let (Some(store), Some(name)) = (setup.audio.clone(), dial.keep_as) {
                let name = name.to_string();
                let kept =
                    tokio::task::spawn_blocking(move || store.keep(&name, law, &early)).await;
                match kept {
                    Ok(Ok(path)) => debug!(%call_id, path = %path.display(), "early media kept"),
                    Ok(Err(e)) => warn!(%call_id, error = %e, "early media not kept"),
                    Err(e) => warn!(%call_id, error = %e, "early media not kept"),
                }
            }
        }
    }
    let (reason, outcome, cause) = conclude(&Ending {
        sip: end,
        answered: attempt.answered,
        outcome: flow.outcome(),
        script_done: flow.is_done(),
        fault: failure
            .map(EndReason::from)
            .or(codec_failed.then_some(EndReason::NoCommonCodec))
            .or(address_refused.then_some(EndReason::MediaAddressRefused)),
        not_person: ans.not_person.clone(),
    });
    if let Some(h) = ans.hearer.as_ref() {
        let (by, hearing) = hearing_of(h.evidence());
        attempt.answered_by = by;
        attempt.hearing = Some(hearing);
    }
    attempt.end_reason = reason;
    attempt.outcome = outcome;
    // No key, but a voice answered the prompt: someone is there. The
    // tenant's policy decides what that becomes (checks::service).
    let spoke = attempt
        .hearing
        .as_ref()
        .is_some_and(|h| h.spoke_ms >= SPOKE_MS);
    let (outcome, cause) = match (outcome, cause) {
        (Some(Outcome::NoResponse), _) | (None, Some(Cause::NoInput)) if spoke => {
            (None, Some(Cause::Spoke))
        }
        other => other,
    };
    attempt.outcome = outcome;
    debug!(%call_id, ?outcome, ?cause, end = %attempt.end_reason, "call finished");
    CallResult {
        attempt,
        outcome,
        cause,
        stats,
    }
}

/// What the classifier heard, as the attempt stores it.
fn hearing_of(
    e: &genki_media::answer::Evidence,
) -> (Option<genki_store::AnsweredBy>, genki_store::Hearing) {
    use genki_media::answer::AnsweredBy as Heard;
    use genki_store::AnsweredBy as Stored;
    let by = e.by.map(|b| match b {
        Heard::Human => Stored::Human,
        Heard::Recorder => Stored::Recorder,
        Heard::Machine => Stored::Machine,
        Heard::Announcement => Stored::Announcement,
        Heard::Fax => Stored::Fax,
        Heard::Silence => Stored::Silence,
        Heard::Unknown => Stored::Unknown,
    });
    let hearing = genki_store::Hearing {
        first_sound_ms: e.first_sound_ms,
        greeting_ms: e.greeting_ms,
        words: e.words,
        ringback_ms: e.ringback_ms,
        prompt_at_ms: e.prompt_at_ms,
        spoke_ms: e.spoke_ms,
        restarts: e.restarts,
        tones: e
            .tones
            .iter()
            .map(|t| genki_store::HeardTone {
                hz: t.hz,
                at_ms: t.at_ms,
                ms: t.ms,
            })
            .collect(),
    };
    (by, hearing)
}

/// Voice heard after the prompt, with no key, that makes an answer
/// `spoke` rather than silent (a はい is ~300 ms).
pub const SPOKE_MS: u32 = 250;

/// The tenant prompt left on an answering machine after its greeting
/// (e.g. 「げんきコールです。折り返しお電話ください」); without it genki
/// hangs up without a word.
pub const MACHINE_MESSAGE: &str = "machine_message";

/// Who answered, and where the script stands because of it.
#[derive(Default)]
struct Answer {
    /// Listening (None: not answered yet, or genki does not listen).
    hearer: Option<AnswerClassifier>,
    /// The script has started.
    started: bool,
    /// A recorder's ringback holds the script until the person lifts.
    holding: bool,
    /// genki is leaving an answering machine its message.
    leaving_message: bool,
    /// genki heard that no person took the call.
    not_person: Option<EndReason>,
}

impl Answer {
    /// The call was answered: listen first (`params`), or start the
    /// script now.
    fn begin(
        &mut self,
        params: Option<AnswerParams>,
        flow: &mut (impl Dialogue + ?Sized),
        now: std::time::Instant,
    ) {
        match params {
            Some(p) => self.hearer = Some(AnswerClassifier::new(p, now)),
            None => {
                self.started = true;
                flow.start(now);
            }
        }
    }

    /// A key came. A key is a person (no recorder, machine or
    /// announcement sends one): before the prompt, or while a recorder's
    /// ringback held it, the script starts now and takes the key. False
    /// when the key must be ignored (genki already heard no person).
    fn key(&mut self, flow: &mut (impl Dialogue + ?Sized), now: std::time::Instant) -> bool {
        if self.not_person.is_some() {
            return false;
        }
        if !self.started || self.holding {
            if let Some(h) = self.hearer.as_mut() {
                h.key_pressed(now);
            }
            self.started = true;
            self.holding = false;
            flow.start(now);
        }
        true
    }
}

fn on_digit(attempt: &mut Attempt, m: &Metrics, _d: char, t: DtmfTransport) {
    match t {
        DtmfTransport::Rfc4733 => m.dtmf_rfc4733.inc(),
        DtmfTransport::Inband => m.dtmf_inband.inc(),
        DtmfTransport::Info => m.dtmf_info.inc(),
    }
    attempt.dtmf_transport.get_or_insert(match t {
        DtmfTransport::Rfc4733 => RecordedTransport::Rfc4733,
        DtmfTransport::Inband => RecordedTransport::Inband,
        DtmfTransport::Info => RecordedTransport::Info,
    });
}

/// The next event of a channel that may not exist yet (never, then).
async fn recv_some<T>(rx: &mut Option<tokio::sync::mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx.as_mut() {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ending(sip: CallEnd, answered: bool) -> Ending {
        Ending {
            sip,
            answered,
            outcome: None,
            script_done: false,
            fault: None,
            not_person: None,
        }
    }

    #[test]
    fn unanswered_calls_map_to_their_retry_cause() {
        for (end, reason, cause) in [
            (
                CallEnd::Rejected { status: 486 },
                EndReason::Rejected(486),
                Cause::Busy,
            ),
            (
                CallEnd::Rejected { status: 600 },
                EndReason::Rejected(600),
                Cause::Busy,
            ),
            (
                CallEnd::Rejected { status: 480 },
                EndReason::Rejected(480),
                Cause::NoAnswer,
            ),
            (CallEnd::Cancelled, EndReason::NoAnswer, Cause::NoAnswer),
            (
                CallEnd::Rejected { status: 404 },
                EndReason::Rejected(404),
                Cause::InvalidNumber,
            ),
            (
                CallEnd::Rejected { status: 410 },
                EndReason::Rejected(410),
                Cause::InvalidNumber,
            ),
            (
                CallEnd::Rejected { status: 484 },
                EndReason::Rejected(484),
                Cause::InvalidNumber,
            ),
            (
                CallEnd::Rejected { status: 433 },
                EndReason::Rejected(433),
                Cause::Rejected,
            ),
            (
                CallEnd::Rejected { status: 603 },
                EndReason::Rejected(603),
                Cause::Rejected,
            ),
            (
                CallEnd::Rejected { status: 408 },
                EndReason::Rejected(408),
                Cause::NoAnswer,
            ),
            (
                CallEnd::Rejected { status: 488 },
                EndReason::Rejected(488),
                Cause::Failed,
            ),
            (
                CallEnd::AuthFailed { status: 407 },
                EndReason::AuthFailed(407),
                Cause::Carrier,
            ),
            (
                CallEnd::Rejected { status: 503 },
                EndReason::Rejected(503),
                Cause::Carrier,
            ),
            (CallEnd::Timeout, EndReason::Timeout, Cause::Carrier),
            (CallEnd::Unreachable, EndReason::Unreachable, Cause::Carrier),
        ] {
            assert_eq!(
                conclude(&ending(end.clone(), false)),
                (reason, None, Some(cause)),
                "{end:?}"
            );
        }
    }

    #[test]
    fn logged_targets_hide_the_phone_number() {
        assert_eq!(
            redacted("sip:0312345678@trunk.example"),
            "sip:***@trunk.example"
        );
        assert_eq!(redacted("sips:x@[::1]:5061"), "sips:***@[::1]:5061");
        assert_eq!(redacted("0312345678"), "***");
    }

    #[test]
    fn an_outcome_stands_only_without_a_fault() {
        let mut e = ending(CallEnd::LocalBye, true);
        e.outcome = Some(Outcome::Fine);
        e.script_done = true;
        assert_eq!(
            conclude(&e),
            (EndReason::ScriptDone, Some(Outcome::Fine), None)
        );
        // Media stopped after the script heard "fine": genki's fault, retried.
        e.fault = Some(EndReason::MediaStopped);
        assert_eq!(
            conclude(&e),
            (EndReason::MediaStopped, None, Some(Cause::Failed))
        );
    }

    /// The presented number: in From and the chosen identity header; a
    /// tenant's own number first; withheld only when configured.
    #[test]
    fn the_caller_is_presented_as_configured() {
        let mut p = Presentation {
            number: Some("0312345678".into()),
            domain: "trunk.example.jp".into(),
            identity: IdentityHeader::Asserted,
            anonymous: false,
        };
        let (from, h) = p.headers("sip:genki@10.0.0.1", None);
        assert_eq!(from, "sip:0312345678@trunk.example.jp");
        assert_eq!(
            h,
            vec![(
                "P-Asserted-Identity".to_string(),
                "<sip:0312345678@trunk.example.jp>".to_string()
            )]
        );
        let (from, h) = p.headers("sip:genki@10.0.0.1", Some("0120111222"));
        assert_eq!(from, "sip:0120111222@trunk.example.jp");
        assert!(h[0].1.contains("0120111222"));
        p.identity = IdentityHeader::Preferred;
        p.anonymous = true;
        let (from, h) = p.headers("sip:genki@10.0.0.1", None);
        assert_eq!(from, ANONYMOUS);
        assert_eq!(h[0].0, "P-Preferred-Identity");
        assert_eq!(h[1], ("Privacy".to_string(), "id".to_string()));
        // No number configured: From as given, nothing else.
        let none = Presentation::default();
        assert_eq!(
            none.headers("sip:genki@10.0.0.1", None),
            ("sip:genki@10.0.0.1".to_string(), vec![])
        );
    }

    #[test]
    fn answered_without_an_outcome_is_no_input_unless_genki_failed() {
        assert_eq!(
            conclude(&ending(CallEnd::RemoteBye, true)),
            (EndReason::RemoteBye, None, Some(Cause::NoInput))
        );
        let mut e = ending(CallEnd::LocalBye, true);
        e.fault = Some(EndReason::NoCommonCodec);
        assert_eq!(
            conclude(&e),
            (EndReason::NoCommonCodec, None, Some(Cause::Failed))
        );
    }
}

/// A stand-in [`Placer`] for tests of what runs above telephony: it dials
/// nobody, records when each call was placed (on tokio's clock), waits
/// `talk` and returns `outcome` (or, with none, "no answer").
#[cfg(test)]
pub mod testing {
    use super::*;
    use std::sync::Mutex;

    pub struct FakePlacer {
        pub outcome: Option<Outcome>,
        pub talk: Duration,
        placed: Mutex<Vec<(String, tokio::time::Instant)>>,
        /// While set, every call ends this way at once, unanswered (a
        /// carrier answering 503, or not at all).
        failing: Mutex<Option<EndReason>>,
        /// When set, the callee presses this key as soon as the call is
        /// answered and the dialogue decides the outcome.
        press: Mutex<Option<char>>,
    }

    impl FakePlacer {
        pub fn new(outcome: Option<Outcome>, talk: Duration) -> FakePlacer {
            FakePlacer {
                outcome,
                talk,
                placed: Mutex::new(vec![]),
                failing: Mutex::new(None),
                press: Mutex::new(None),
            }
        }
        /// The callee presses `key` at once (the dialogue decides).
        pub fn set_press(&self, key: Option<char>) {
            *self.press.lock().unwrap() = key;
        }
        /// Make every call end `reason` (None: normal again).
        pub fn set_failing(&self, reason: Option<EndReason>) {
            *self.failing.lock().unwrap() = reason;
        }
        /// Who was called, and when.
        pub fn placed(&self) -> Vec<(String, tokio::time::Instant)> {
            self.placed.lock().unwrap().clone()
        }
    }

    impl Placer for FakePlacer {
        fn place<'a>(
            &'a self,
            dial: Dial<'a>,
            n: u32,
            started_at_ms: u64,
            dialogue: &'a mut dyn Dialogue,
            _prompts: &'a HashMap<String, Prompt>,
        ) -> CallFuture<'a> {
            Box::pin(async move {
                self.placed
                    .lock()
                    .unwrap()
                    .push((dial.to.to_string(), tokio::time::Instant::now()));
                let failing = self.failing.lock().unwrap().clone();
                if let Some(reason) = failing {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let (end_reason, outcome, cause) = conclude(&Ending {
                        sip: match reason {
                            EndReason::Timeout => CallEnd::Timeout,
                            EndReason::Rejected(status) => CallEnd::Rejected { status },
                            _ => CallEnd::Unreachable,
                        },
                        answered: false,
                        outcome: None,
                        script_done: false,
                        fault: None,
                        not_person: None,
                    });
                    return CallResult {
                        attempt: Attempt {
                            n,
                            started_at_ms,
                            end_reason,
                            ..Default::default()
                        },
                        outcome,
                        cause,
                        stats: CallStats::default(),
                    };
                }
                let press = *self.press.lock().unwrap();
                let mut outcome = self.outcome;
                if let Some(key) = press {
                    let now = std::time::Instant::now();
                    dialogue.start(now);
                    dialogue.on_digit(key, now);
                    outcome = dialogue.outcome();
                    dialogue.reached(&Attempt {
                        n,
                        started_at_ms,
                        answered: true,
                        digits: key.to_string(),
                        outcome,
                        ..Default::default()
                    });
                }
                tokio::time::sleep(self.talk).await;
                let answered = outcome.is_some();
                CallResult {
                    attempt: Attempt {
                        n,
                        started_at_ms,
                        answered,
                        sip_status: Some(if answered { 200 } else { 487 }),
                        end_reason: if answered {
                            EndReason::ScriptDone
                        } else {
                            EndReason::NoAnswer
                        },
                        digits: press.map(String::from).unwrap_or_default(),
                        outcome,
                        ..Default::default()
                    },
                    outcome,
                    cause: (!answered).then_some(Cause::NoAnswer),
                    stats: CallStats::default(),
                }
            })
        }
        fn ring_timeout(&self) -> Duration {
            Duration::from_secs(30)
        }
        fn media_health(&self) -> (usize, usize) {
            (1, 1)
        }
    }
}
