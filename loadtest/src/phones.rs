//! Simulated phones: a UAS population on one SIP socket that answers (or
//! not) and presses keys the way a configured behaviour says, and reports
//! what each call did as one JSON line — the ground truth a test or a load
//! run compares genki's results with.
//!
//! An outside peer: talks to genki only over SIP/RTP, built on genki-sip's
//! [`UasCall`] and genki-media's RTP/DTMF, never on genki-engine.
//!
//! Depends on: genki-sip, genki-media, tokio.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use genki_media::dtmf::{info_body, tone};
use genki_media::mux::{Lateness, StreamConfig, StreamId, StreamStats};
use genki_media::{Law, Prompt};
use genki_sip::auth;
use genki_sip::message::{Message, Method};
use genki_sip::sdp::{self, Codec, MediaDescription};
use genki_sip::uas::{UasCall, UasEvent};
use genki_sip::Timers;
use genki_udp::worker;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// What a phone does with an incoming call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// Ring for --answer-delay-ms, answer, press --digits, wait for BYE.
    Answer,
    /// Ring forever (until CANCEL).
    NoAnswer,
    /// 486 Busy Here.
    Busy,
    /// 404 Not Found.
    NotFound,
    /// 503 Service Unavailable.
    Unavailable,
    /// Refuse with --reject-status (e.g. 410, 433, 484, 603).
    Reject,
    /// A network announcement: 183 Session Progress with SDP, an
    /// announcement as early media for --announce-ms (special information
    /// tones, 950/1400/1800 Hz), then --reject-status (a number not in
    /// service: 404).
    Announce,
    /// Never respond at all (the caller ends by Timer B).
    Silent,
    /// Answer, then hang up with BYE after --hangup-after-ms (mid-prompt).
    Hangup,
    /// Answer with only a codec genki does not speak (G.729).
    NoCommonCodec,
    /// Answer, then send no RTP at all (media that never starts: a broken
    /// gateway, a firewall eating the media); wait for BYE.
    Mute,
}

/// How a phone's answer describes its media (real peers differ; genki
/// must work with each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MediaShape {
    /// The phones' one media address, and an `a=ssrc` (RFC 5576).
    #[default]
    Declared,
    /// The one media address shared by every call, no `a=ssrc` (as sipp).
    Shared,
    /// The SDP names another address than the RTP comes from (NAT, a
    /// multi-homed host, baresip naming its LAN interface): 127.0.0.3 on
    /// loopback, else the RTCP port; `a=ssrc` declared.
    Elsewhere,
}

/// How keys are pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DtmfMode {
    Rfc4733,
    Inband,
    Info,
}

/// Phone population settings (the `phones` subcommand's flags).
#[derive(Debug, Clone, clap::Args)]
pub struct PhoneConfig {
    /// SIP address to listen on (UDP).
    #[arg(long, default_value = "127.0.0.1:5080")]
    pub listen: SocketAddr,
    #[arg(long, value_enum, default_value_t = Behaviour::Answer)]
    pub behaviour: Behaviour,
    /// Ring time before answering.
    #[arg(long, default_value_t = 300)]
    pub answer_delay_ms: u64,
    /// Keys to press after answering ("" presses nothing).
    #[arg(long, default_value = "1")]
    pub digits: String,
    /// Delay from the ACK to the first key.
    #[arg(long, default_value_t = 1000)]
    pub digit_delay_ms: u64,
    /// Pause between keys.
    #[arg(long, default_value_t = 300)]
    pub inter_digit_ms: u64,
    /// Length of each key press.
    #[arg(long, default_value_t = 120)]
    pub digit_duration_ms: u64,
    #[arg(long, value_enum, default_value_t = DtmfMode::Rfc4733)]
    pub dtmf: DtmfMode,
    /// How the answer's SDP describes the phone's media.
    #[arg(long, value_enum, default_value_t = MediaShape::Declared)]
    pub media: MediaShape,
    /// For --behaviour hangup: time from the ACK to our BYE.
    #[arg(long, default_value_t = 1500)]
    pub hangup_after_ms: u64,
    /// For --behaviour announce: how long the announcement plays.
    #[arg(long, default_value_t = 3000)]
    pub announce_ms: u64,
    /// The final status of --behaviour reject and announce (300–699).
    #[arg(long, default_value_t = 603, value_parser = clap::value_parser!(u16).range(300..700))]
    pub reject_status: u16,
    /// Challenge every INVITE with digest auth: user:password.
    #[arg(long)]
    pub auth: Option<String>,
    /// Challenge with 407 Proxy-Authenticate instead of 401.
    #[arg(long)]
    pub auth_proxy: bool,
    /// Ignore the first INVITE of each call (the caller must retransmit).
    #[arg(long)]
    pub drop_first_invite: bool,
    /// Ignore the first BYE of each call.
    #[arg(long)]
    pub drop_first_bye: bool,
    /// Codec to prefer in the answer.
    #[arg(long, value_enum, default_value_t = CodecArg::Pcmu)]
    pub codec: CodecArg,
    /// For --behaviour silent: how long a call is listened to (counting
    /// the caller's retransmissions) before it is recorded.
    #[arg(long, default_value_t = 40000)]
    pub silent_ms: u64,
    /// Hang up an answered call that is still up after this long (a caller
    /// that vanished without BYE, e.g. killed).
    #[arg(long, default_value_t = 120_000)]
    pub max_call_ms: u64,
    /// Exit after this many calls have finished (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub calls: u64,
    /// Exit after this many seconds whatever happens.
    #[arg(long, default_value_t = 300)]
    pub max_seconds: u64,
    /// Copy every SIP datagram received to this UDP address (an
    /// eavesdropper on the path, for tests of spoofed messages).
    #[arg(long)]
    pub leak_to: Option<SocketAddr>,
    /// Print one JSON line per finished call on stdout.
    #[arg(long)]
    pub json: bool,
    /// Play this WAV (8 kHz mono 16-bit) as the far end's audio from the
    /// answer on: a call recorder, an answering machine, a person saying
    /// もしもし (`scripts/make-corpus` makes them). Keys still follow
    /// --digits and --digit-delay-ms (from the ACK).
    #[arg(long)]
    pub play: Option<std::path::PathBuf>,
    /// The --play audio, read once (not a flag).
    #[arg(skip)]
    pub play_audio: Option<Prompt>,
    /// First RTP port to use (even); each call takes the next free one.
    #[arg(long, default_value_t = 40000)]
    pub rtp_base: u16,
    /// Give each call a socket of its own (an ephemeral port) instead of
    /// the one shared media socket: for callers that send every call's
    /// media from one address without `a=ssrc` (sipp), which the shared
    /// socket cannot tell apart, so that every such call's media is sent
    /// and its answer received (scripts/compare-sipp).
    #[arg(long)]
    pub socket_per_call: bool,
    /// Per-callee profiles (set by the load driver, not a flag).
    #[arg(skip)]
    pub mix: Mix,
}

/// What one phone does with one call: from the flags, or chosen per
/// callee by a [`Mix`] (the load driver's seeded population).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub behaviour: Behaviour,
    pub answer_delay_ms: u64,
    pub digits: String,
    pub digit_delay_ms: u64,
    pub inter_digit_ms: u64,
    pub digit_duration_ms: u64,
    pub dtmf: DtmfMode,
    pub hangup_after_ms: u64,
    pub media: MediaShape,
}

/// Chooses a call's profile from the user part of its Request-URI (None:
/// the flags' profile).
#[derive(Clone, Default)]
pub struct Mix(pub Option<Arc<ProfileFn>>);

/// Callee user part → that callee's profile.
pub type ProfileFn = dyn Fn(&str) -> Option<Profile> + Send + Sync;

impl std::fmt::Debug for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Mix(per callee)"
        } else {
            "Mix(none)"
        })
    }
}

impl PhoneConfig {
    /// The profile the flags describe.
    pub fn profile(&self) -> Profile {
        Profile {
            behaviour: self.behaviour,
            answer_delay_ms: self.answer_delay_ms,
            digits: self.digits.clone(),
            digit_delay_ms: self.digit_delay_ms,
            inter_digit_ms: self.inter_digit_ms,
            digit_duration_ms: self.digit_duration_ms,
            dtmf: self.dtmf,
            hangup_after_ms: self.hangup_after_ms,
            media: self.media,
        }
    }

    fn profile_for(&self, invite: &Message) -> Profile {
        let user = match &invite.start {
            genki_sip::message::StartLine::Request { uri, .. } => uri
                .trim_start_matches("sips:")
                .trim_start_matches("sip:")
                .split('@')
                .next()
                .unwrap_or(""),
            _ => "",
        };
        self.mix
            .0
            .as_ref()
            .and_then(|m| m(user))
            .unwrap_or_else(|| self.profile())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CodecArg {
    Pcmu,
    Pcma,
}

/// What one call did: the ground truth of the run.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CallRecord {
    pub call_id: String,
    pub from: String,
    /// The INVITE's identity and privacy headers (RFC 3325, RFC 3323), as
    /// received: what the person's phone would show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_asserted_identity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_preferred_identity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privacy: Option<String>,
    /// A 183 with SDP and an announcement were sent (--behaviour announce).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub early_media: bool,
    pub behaviour: Option<Behaviour>,
    pub answered: bool,
    pub final_status: Option<u16>,
    pub digits_sent: String,
    pub dtmf: Option<DtmfMode>,
    /// remote_bye | local_bye | cancelled | rejected | ack_timeout | dropped
    pub ended_by: String,
    pub invites_received: u32,
    pub byes_received: u32,
    pub acked: bool,
    pub auth_ok: Option<bool>,
    pub rtp_received: u64,
    pub rtp_sent: u64,
    pub rtp_gaps: u64,
    pub rtp_jitter_ms: f64,
    /// Mean and longest gap between packets from genki.
    pub rtp_interarrival_mean_ms: f64,
    pub rtp_interarrival_max_ms: f64,
    pub duration_ms: u64,
    /// The user part of the Request-URI (the load driver's subscriber key).
    pub callee: String,
    /// Unix ms the INVITE arrived, the 200 OK was sent, the first RTP
    /// packet from genki arrived, the first key was sent.
    pub invite_at_ms: u64,
    pub answered_at_ms: Option<u64>,
    pub first_rtp_at_ms: Option<u64>,
    pub first_digit_at_ms: Option<u64>,
    /// Unix ms the last key was sent (the deciding one: after a wrong
    /// key, the right one).
    pub last_digit_at_ms: Option<u64>,
    /// Unix ms the call ended for this phone (BYE or CANCEL received or
    /// sent, or the last answer given): when a carrier stops counting it.
    pub ended_at_ms: Option<u64>,
}

/// Wall-clock unix milliseconds (records are compared with genki's).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The phones' media: one worker thread and one socket for every call
/// (genki-udp's worker over a MediaMux), like a media server: streams
/// are told apart by genki's address (a port per call) and its SSRC.
struct Media {
    tx: std::sync::mpsc::Sender<worker::Cmd<NoEvents>>,
    local: SocketAddr,
    next_id: u64,
    /// The phones' own send lateness, drained from the worker each second.
    lateness: Arc<Mutex<Lateness>>,
}

/// The phones do not act on what genki sends (they only measure it).
struct NoEvents;

impl worker::EventSink for NoEvents {
    fn deliver(&self, _: genki_media::mux::MuxEvent) {}
}

impl Media {
    fn start(ip: std::net::IpAddr, base: u16) -> anyhow::Result<Media> {
        let mut port = base + base % 2;
        let sock = loop {
            if let Ok(s) = std::net::UdpSocket::bind(SocketAddr::new(ip, port)) {
                break s;
            }
            port = port
                .checked_add(2)
                .ok_or_else(|| anyhow::anyhow!("no free RTP port from {base}"))?;
        };
        sock.set_nonblocking(true)?;
        let local = sock.local_addr()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let lateness = Arc::new(Mutex::new(Lateness::default()));
        let l2 = lateness.clone();
        std::thread::Builder::new()
            .name("phones-media".into())
            .spawn(move || {
                let io = match genki_udp::sockets::open(genki_udp::sockets::IoKind::Epoll) {
                    Ok(io) => io,
                    Err(e) => {
                        warn!(error = %e, "phones' media IO cannot start");
                        return;
                    }
                };
                worker::run(
                    io,
                    Some(sock),
                    rx,
                    Duration::from_millis(1),
                    Duration::ZERO,
                    |mux| {
                        let taken = mux.lateness.take();
                        let mut l = l2.lock().unwrap_or_else(|e| e.into_inner());
                        for (a, b) in l.buckets.iter_mut().zip(taken.buckets.iter()) {
                            *a += b;
                        }
                    },
                    |_| {},
                )
            })?;
        Ok(Media {
            tx,
            local,
            next_id: 1,
            lateness,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Answer,
    /// The announcement is over: the final response.
    Final,
    Digit(usize),
    Hangup,
}

struct PhoneCall {
    uas: UasCall,
    profile: Profile,
    record: CallRecord,
    started: Instant,
    action: Option<(Instant, Action)>,
    media: Option<StreamId>,
    ended_at: Option<Instant>,
    dropped_bye: bool,
    /// Hang up at this instant if the call is still up.
    max_until: Option<Instant>,
}

/// What a phones run saw: each call's record, and the phones' own RTP send lateness.
pub struct PhonesReport {
    pub records: Vec<CallRecord>,
    pub send_lateness: Lateness,
}

/// Run the phones until `calls` have finished or `max_seconds` pass.
pub async fn run(mut cfg: PhoneConfig) -> anyhow::Result<PhonesReport> {
    if let Some(path) = &cfg.play {
        let f = std::fs::File::open(path)
            .map_err(|e| anyhow::anyhow!("--play {}: {e}", path.display()))?;
        let pcm = genki_media::wav::read_wav_8k(f)
            .map_err(|e| anyhow::anyhow!("--play {}: {e}", path.display()))?;
        cfg.play_audio = Some(Prompt::from_pcm("play", &pcm));
    }
    let sock = UdpSocket::bind(cfg.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind {}: {e}", cfg.listen))?;
    let local = sock.local_addr()?;
    info!(%local, behaviour = ?cfg.behaviour, "phones listening");
    let timers = Timers::default();
    let nonce = format!("{:016x}", rand::random::<u64>());
    let deadline = Instant::now() + Duration::from_secs(cfg.max_seconds);
    let mut calls: HashMap<String, PhoneCall> = HashMap::new();
    let mut seen_invite: HashMap<String, u32> = HashMap::new();
    let mut done: Vec<CallRecord> = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut media = Media::start(local.ip(), cfg.rtp_base)?;
    let mut malformed = 0u64;
    // Only calls that got a message or whose next timer is due are visited:
    // a scan of every call per wake-up was O(calls²) per second at scale
    // (measured: the phones' SIP loop took 87 % of a core at 2,000 calls).
    let mut timers_heap: BinaryHeap<Reverse<(Instant, String)>> = BinaryHeap::new();
    let mut dirty: Vec<String> = Vec::new();

    loop {
        let now = Instant::now();
        while let Some(Reverse((at, _))) = timers_heap.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, id))) = timers_heap.pop() {
                dirty.push(id);
            }
        }
        dirty.sort_unstable();
        dirty.dedup();
        // Actions, transmissions and finished calls.
        for id in std::mem::take(&mut dirty) {
            let Some(c) = calls.get_mut(&id) else {
                continue;
            };
            c.uas.handle_timeout(now.into_std());
            if let Some((at, action)) = c.action {
                if now >= at {
                    c.action = None;
                    perform(&cfg, c, action, local, &mut media, now);
                }
            }
            if c.max_until.is_some_and(|t| now >= t) && c.ended_at.is_none() {
                c.max_until = None;
                debug!(call_id = %id, "call outlived --max-call-ms; hanging up");
                c.uas.hangup(now.into_std());
            }
            while let Some(t) = c.uas.poll_transmit() {
                let _ = sock.send_to(&t.data, t.dest).await;
            }
            while let Some(ev) = c.uas.poll_event() {
                on_event(&cfg, c, ev, now);
            }
            let finished = c.ended_at.is_some_and(|e| {
                now >= e && (c.uas.is_finished() || now >= e + Duration::from_secs(2))
            });
            if finished {
                let mut c = calls.remove(&id).expect("present");
                if let Some(id) = c.media.take() {
                    let (tx, rx) = oneshot::channel();
                    let reply: worker::Reply = Box::new(move |s| {
                        let _ = tx.send(s);
                    });
                    let cmd = worker::Cmd::Remove {
                        id,
                        reply: Some(reply),
                    };
                    if media.tx.send(cmd).is_ok() {
                        if let Ok(s) = rx.await {
                            fill_stats(&mut c.record, &s);
                        }
                    }
                }
                c.record.duration_ms = (now - c.started).as_millis() as u64;
                // On the INVITE's clock (a busy loop reaches this line
                // late; the end itself is when it happened).
                if let Some(e) = c.ended_at {
                    c.record.ended_at_ms = Some(
                        c.record.invite_at_ms
                            + e.saturating_duration_since(c.started).as_millis() as u64,
                    );
                }
                if c.record.ended_by == "challenged" {
                    // The caller never came back with credentials: not a call of its own.
                    debug!(call_id = %c.record.call_id, "challenge not answered");
                    continue;
                }
                if cfg.json {
                    println!("{}", serde_json::to_string(&c.record)?);
                }
                debug!(call_id = %c.record.call_id, ended_by = %c.record.ended_by, "call finished");
                done.push(c.record);
                continue;
            }
            let next = [
                c.action.map(|a| a.0),
                c.max_until.filter(|_| c.ended_at.is_none()),
                c.uas.poll_timeout().map(Instant::from_std),
                c.ended_at.map(|e| e + Duration::from_secs(2)),
            ]
            .into_iter()
            .flatten()
            .min();
            if let Some(at) = next {
                timers_heap.push(Reverse((at, id)));
            }
        }
        if (cfg.calls > 0 && done.len() as u64 >= cfg.calls) || now >= deadline {
            break;
        }
        let wake = timers_heap
            .peek()
            .map(|Reverse((at, _))| *at)
            .unwrap_or(deadline)
            .min(deadline);
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let Ok((n, src)) = r else { continue };
                let now = Instant::now();
                if let Some(to) = cfg.leak_to {
                    let _ = sock.send_to(&buf[..n], to).await;
                }
                let msg = match Message::parse(&buf[..n]) {
                    Ok(m) => m,
                    Err(e) => {
                        malformed += 1;
                        warn!(%src, error = %e, "malformed SIP dropped");
                        continue;
                    }
                };
                // An OPTIONS outside any call (a keep-alive, RFC 3261
                // §11): 200, as any user agent answers it.
                if msg.method() == Some(&Method::Options) && !calls.contains_key(&msg.call_id) {
                    if let Some(reply) = genki_sip::endpoint::stateless_reply(&msg) {
                        let _ = sock.send_to(&reply, src).await;
                    }
                    continue;
                }
                dirty.push(msg.call_id.clone());
                on_message(&cfg, &mut calls, &mut seen_invite, msg, src, local, timers, &nonce, now);
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
    info!(finished = done.len(), malformed, "phones done");
    let send_lateness = media
        .lateness
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(PhonesReport {
        records: done,
        send_lateness,
    })
}

#[allow(clippy::too_many_arguments)]
fn on_message(
    cfg: &PhoneConfig,
    calls: &mut HashMap<String, PhoneCall>,
    seen_invite: &mut HashMap<String, u32>,
    msg: Message,
    src: SocketAddr,
    local: SocketAddr,
    timers: Timers,
    nonce: &str,
    now: Instant,
) {
    let id = msg.call_id.clone();
    let is_new_invite = msg.method() == Some(&Method::Invite)
        && calls.get(&id).is_none_or(|c| {
            c.uas.invite().branch != msg.branch && c.uas.final_status().is_some_and(|s| s >= 300)
        });
    if msg.method() == Some(&Method::Invite) {
        let n = seen_invite.entry(id.clone()).or_insert(0);
        *n += 1;
        if cfg.drop_first_invite && *n == 1 {
            debug!(call_id = %id, "dropping the first INVITE on purpose");
            return;
        }
        if cfg.profile_for(&msg).behaviour == Behaviour::Silent {
            if !calls.contains_key(&id) {
                let uas = UasCall::new(msg, src, local, tag(), timers);
                let mut c = new_call(uas, cfg, now);
                c.record.ended_by = "dropped".into();
                c.ended_at = Some(now + Duration::from_millis(cfg.silent_ms));
                calls.insert(id.clone(), c);
            }
            if let Some(c) = calls.get_mut(&id) {
                c.record.invites_received = seen_invite[&id];
            }
            return;
        }
    }
    if is_new_invite {
        let previous = calls.remove(&id);
        let uas = UasCall::new(msg, src, local, tag(), timers);
        let mut c = new_call(uas, cfg, now);
        if let Some(p) = previous {
            c.record.auth_ok = p.record.auth_ok;
            c.started = p.started;
        }
        c.record.invites_received = seen_invite.get(&id).copied().unwrap_or(1);
        start_call(cfg, &mut c, nonce, now);
        calls.insert(id, c);
        return;
    }
    let Some(c) = calls.get_mut(&id) else {
        return;
    };
    match msg.method() {
        Some(Method::Invite) => c.record.invites_received += 1,
        Some(Method::Bye) => {
            c.record.byes_received += 1;
            if cfg.drop_first_bye && !c.dropped_bye {
                c.dropped_bye = true;
                debug!(call_id = %id, "dropping the first BYE on purpose");
                return;
            }
        }
        _ => {}
    }
    c.uas.handle_message(msg, src, now.into_std());
}

fn tag() -> String {
    format!("{:08x}", rand::random::<u32>())
}

fn new_call(uas: UasCall, cfg: &PhoneConfig, now: Instant) -> PhoneCall {
    let profile = cfg.profile_for(uas.invite());
    let callee = match &uas.invite().start {
        genki_sip::message::StartLine::Request { uri, .. } => uri
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .unwrap_or("")
            .to_string(),
        _ => String::new(),
    };
    let record = CallRecord {
        callee,
        invite_at_ms: unix_ms(),
        call_id: uas.invite().call_id.clone(),
        from: uas.invite().header("From").unwrap_or("").to_string(),
        p_asserted_identity: uas
            .invite()
            .header("P-Asserted-Identity")
            .map(str::to_string),
        p_preferred_identity: uas
            .invite()
            .header("P-Preferred-Identity")
            .map(str::to_string),
        privacy: uas.invite().header("Privacy").map(str::to_string),
        behaviour: Some(profile.behaviour),
        dtmf: (!profile.digits.is_empty()).then_some(profile.dtmf),
        ..Default::default()
    };
    PhoneCall {
        uas,
        profile,
        record,
        started: now,
        action: None,
        media: None,
        ended_at: None,
        dropped_bye: false,
        max_until: None,
    }
}

/// Decide what to do with a new INVITE.
fn start_call(cfg: &PhoneConfig, c: &mut PhoneCall, nonce: &str, now: Instant) {
    let now_std = now.into_std();
    if let Some(cred) = &cfg.auth {
        let (user, pass) = cred.split_once(':').unwrap_or((cred, ""));
        let header = if cfg.auth_proxy {
            "Proxy-Authorization"
        } else {
            "Authorization"
        };
        let verdict = c
            .uas
            .invite()
            .header(header)
            .map(|a| auth::verify(a, "INVITE", pass, nonce).ok().flatten());
        match verdict {
            Some(Some(u)) if u == user => c.record.auth_ok = Some(true),
            Some(_) => {
                c.record.auth_ok = Some(false);
                reject(c, 403, now);
                return;
            }
            None => {
                let (status, name) = if cfg.auth_proxy {
                    (407, "Proxy-Authenticate")
                } else {
                    (401, "WWW-Authenticate")
                };
                let challenge = format!(
                    "Digest realm=\"genki-phones\", nonce=\"{nonce}\", qop=\"auth\", algorithm=MD5"
                );
                c.uas.respond(status, &[(name, &challenge)], None, now_std);
                c.record.final_status = Some(status);
                c.record.ended_by = "challenged".into();
                return;
            }
        }
    }
    match c.profile.behaviour {
        Behaviour::Busy => reject(c, 486, now),
        Behaviour::NotFound => reject(c, 404, now),
        Behaviour::Unavailable => reject(c, 503, now),
        Behaviour::Reject => reject(c, cfg.reject_status, now),
        Behaviour::Announce => {
            c.uas.respond(100, &[], None, now_std);
            c.action = Some((now, Action::Answer));
        }
        Behaviour::NoAnswer => {
            c.uas.respond(100, &[], None, now_std);
            c.uas.respond(180, &[], None, now_std);
        }
        Behaviour::Silent => {}
        Behaviour::Answer | Behaviour::Hangup | Behaviour::NoCommonCodec | Behaviour::Mute => {
            c.uas.respond(100, &[], None, now_std);
            c.uas.respond(180, &[], None, now_std);
            c.action = Some((
                now + Duration::from_millis(c.profile.answer_delay_ms),
                Action::Answer,
            ));
        }
    }
}

/// Special information tones (950, 1400, 1800 Hz, 330 ms each, ITU-T
/// E.180 §6) repeated with a pause: what networks play before a "number
/// not in service" announcement, and easy to find again in a recording.
fn announcement(ms: u64) -> Prompt {
    let mut pcm = Vec::new();
    while (pcm.len() as u64) < ms * 8 {
        for f in [950.0f64, 1400.0, 1800.0] {
            for i in 0..(330 * 8) {
                let t = i as f64 / 8000.0;
                pcm.push((8000.0 * (2.0 * std::f64::consts::PI * f * t).sin()) as i16);
            }
        }
        pcm.extend(std::iter::repeat_n(0i16, 1000 * 8));
    }
    pcm.truncate((ms * 8) as usize);
    Prompt::from_pcm("announcement", &pcm)
}

fn reject(c: &mut PhoneCall, status: u16, now: Instant) {
    c.uas.respond(status, &[], None, now.into_std());
    c.record.final_status = Some(status);
    c.record.ended_by = "rejected".into();
    c.ended_at = Some(now);
}

fn perform(
    cfg: &PhoneConfig,
    c: &mut PhoneCall,
    action: Action,
    local: SocketAddr,
    media: &mut Media,
    now: Instant,
) {
    let now_std = now.into_std();
    match action {
        Action::Answer => {
            let offer = MediaDescription::parse(&c.uas.invite().body);
            let Ok(offer) = offer else {
                reject(c, 488, now);
                return;
            };
            if c.profile.behaviour == Behaviour::NoCommonCodec {
                let body = format!(
                    "v=0\r\no=phone 1 1 IN IP4 {ip}\r\ns=phone\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n",
                    ip = local.ip()
                );
                c.uas.respond(
                    200,
                    &[],
                    Some(("application/sdp", body.as_bytes())),
                    now_std,
                );
                c.record.answered = true;
                c.record.final_status = Some(200);
                return;
            }
            let want = match cfg.codec {
                CodecArg::Pcmu => Codec::Pcmu,
                CodecArg::Pcma => Codec::Pcma,
            };
            let codec = if offer
                .formats
                .iter()
                .any(|pt| offer.codec_for(*pt) == Some(want))
            {
                want
            } else {
                match offer.first_common_codec() {
                    Some((_, c)) => c,
                    None => {
                        reject(c, 488, now);
                        return;
                    }
                }
            };
            let te = offer.telephone_event;
            let ssrc: u32 = rand::random();
            let own = if cfg.socket_per_call {
                match std::net::UdpSocket::bind(SocketAddr::new(media.local.ip(), 0))
                    .and_then(|s| s.set_nonblocking(true).map(|_| s))
                {
                    Ok(s) => Some(s),
                    Err(_) => {
                        reject(c, 503, now);
                        return;
                    }
                }
            } else {
                None
            };
            let own_port = own
                .as_ref()
                .and_then(|s| s.local_addr().ok())
                .map(|a| a.port());
            let (sdp_ip, sdp_port) = match c.profile.media {
                _ if own_port.is_some() => (media.local.ip(), own_port.unwrap_or(0)),
                MediaShape::Elsewhere => match media.local.ip() {
                    std::net::IpAddr::V4(v4) if v4.is_loopback() => {
                        (std::net::IpAddr::from([127, 0, 0, 3]), media.local.port())
                    }
                    ip => (ip, media.local.port() + 1),
                },
                _ => (media.local.ip(), media.local.port()),
            };
            let answer = sdp::build_with_ssrc(
                rand::random::<u32>() as u64,
                sdp_ip,
                sdp_port,
                &[codec],
                te,
                (c.profile.media != MediaShape::Shared).then_some(ssrc),
            );
            let announce = c.profile.behaviour == Behaviour::Announce;
            let announce_len = cfg.announce_ms;
            let play = cfg.play_audio.clone();
            c.uas.respond(
                if announce { 183 } else { 200 },
                &[],
                Some(("application/sdp", answer.as_bytes())),
                now_std,
            );
            if announce {
                c.record.early_media = true;
                c.action = Some((now + Duration::from_millis(cfg.announce_ms), Action::Final));
            } else {
                c.record.answered = true;
                c.record.answered_at_ms = Some(unix_ms());
                c.record.final_status = Some(200);
            }
            if c.profile.behaviour == Behaviour::Mute {
                return;
            }
            let law = if codec == Codec::Pcmu {
                Law::Ulaw
            } else {
                Law::Alaw
            };
            let id = media.next_id;
            media.next_id += 1;
            let mut cfg = StreamConfig::new(
                SocketAddr::new(offer.addr, offer.port),
                law,
                codec.payload_type(),
                te,
            );
            cfg.remote_ssrc = offer.ssrc;
            cfg.ssrc = ssrc;
            cfg.seq = rand::random();
            cfg.ts = rand::random();
            cfg.detect_inband = false;
            let _ = media.tx.send(worker::Cmd::Add {
                id,
                cfg,
                sock: own,
                events: NoEvents,
            });
            if announce {
                let _ = media
                    .tx
                    .send(worker::Cmd::Play(id, announcement(announce_len)));
            } else if let Some(p) = play {
                let _ = media.tx.send(worker::Cmd::Play(id, p));
            }
            c.media = Some(id);
        }
        Action::Final => reject(c, cfg.reject_status, now),
        Action::Digit(i) => {
            let p = c.profile.clone();
            let Some(d) = p.digits.chars().nth(i) else {
                return;
            };
            c.record.digits_sent.push(d);
            let at = unix_ms();
            c.record.first_digit_at_ms.get_or_insert(at);
            c.record.last_digit_at_ms = Some(at);
            match p.dtmf {
                DtmfMode::Info => {
                    let body = info_body(d, Duration::from_millis(p.digit_duration_ms));
                    c.uas
                        .send_info("application/dtmf-relay", body.as_bytes(), now_std);
                }
                mode => {
                    if let Some(id) = c.media {
                        let _ = media.tx.send(worker::Cmd::Digit {
                            id,
                            digit: d,
                            duration: Duration::from_millis(p.digit_duration_ms),
                            tone: Prompt::from_pcm(
                                "dtmf",
                                &tone(d, p.digit_duration_ms as u32, 6000.0, 0.0),
                            ),
                            inband_only: mode == DtmfMode::Inband,
                        });
                    }
                }
            }
            if i + 1 < p.digits.chars().count() {
                let gap = p.digit_duration_ms + p.inter_digit_ms;
                c.action = Some((now + Duration::from_millis(gap), Action::Digit(i + 1)));
            }
        }
        Action::Hangup => c.uas.hangup(now_std),
    }
}

fn on_event(cfg: &PhoneConfig, c: &mut PhoneCall, ev: UasEvent, now: Instant) {
    match ev {
        UasEvent::Acked => {
            if c.record.final_status.is_some_and(|s| s >= 300) {
                c.ended_at.get_or_insert(now);
                return;
            }
            c.record.acked = true;
            c.max_until = Some(now + Duration::from_millis(cfg.max_call_ms));
            let p = &c.profile;
            if p.behaviour == Behaviour::Hangup {
                c.action = Some((
                    now + Duration::from_millis(p.hangup_after_ms),
                    Action::Hangup,
                ));
            } else if !p.digits.is_empty() && p.behaviour == Behaviour::Answer {
                c.action = Some((
                    now + Duration::from_millis(p.digit_delay_ms),
                    Action::Digit(0),
                ));
            }
        }
        UasEvent::Cancelled => {
            c.record.ended_by = "cancelled".into();
            c.record.final_status = Some(487);
            c.ended_at = Some(now);
        }
        UasEvent::RemoteBye => {
            c.record.ended_by = "remote_bye".into();
            c.action = None;
            c.ended_at = Some(now);
        }
        UasEvent::ByeDone { .. } => {
            c.record.ended_by = "local_bye".into();
            c.ended_at = Some(now);
        }
        UasEvent::AckTimeout => {
            if c.record.ended_by.is_empty() || c.record.ended_by == "challenged" {
                c.record.ended_by = "ack_timeout".into();
            }
            c.ended_at = Some(now);
        }
        UasEvent::InfoDone { .. } => {}
    }
}

fn fill_stats(r: &mut CallRecord, s: &StreamStats) {
    r.rtp_received = s.received;
    r.rtp_sent = s.sent;
    r.rtp_gaps = s.gaps;
    r.rtp_jitter_ms = s.jitter_ms;
    r.rtp_interarrival_max_ms = s.max_interarrival.as_secs_f64() * 1000.0;
    if let Some(first) = s.first_rx {
        // The arrival instant in wall-clock time, for answer → first RTP.
        r.first_rtp_at_ms = Some(unix_ms().saturating_sub(first.elapsed().as_millis() as u64));
        if let (Some(last), true) = (s.last_rx, s.received > 1) {
            let span = last.saturating_duration_since(first).as_secs_f64() * 1000.0;
            r.rtp_interarrival_mean_ms = span / (s.received - 1) as f64;
        }
    }
}
