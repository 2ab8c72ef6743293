//! The daemon's media runtime: a few worker threads, each running a
//! [`genki_media::mux::MediaMux`] over many sockets — one local RTP port
//! per call, as every mature SIP stack does.
//!
//! Why a port per call: a call must be identified by something the local
//! side controls. Telling calls apart by the remote address the SDP names
//! fails with everyday peers — sipp answers every call from one media
//! address, NATs and SBCs send from another address than their SDP names —
//! and any remote behaviour could make two calls collide. With its own
//! port, a call receives only its own packets; its [`Latching`] rule then
//! says which source on that port is the peer (locked after the first
//! proving packet, so a stranger cannot take over mid-call).
//!
//! Why workers and batching: one socket and one task per call cost a
//! system call and a task wake-up per packet each way. A worker wakes every
//! [`TICK`] (2 ms), sends every packet due within the next tick as one
//! batch and takes every waiting datagram; with io_uring (the default where
//! the kernel allows it) the whole tick is a couple of system calls however
//! many sockets there are (docs/media-io.md has the measurements).
//!
//! Media can never fail silently: a stream that cannot be set up, a worker
//! that dies, media that never starts or stops ([`MediaTimeout`]) reach the
//! call as [`MediaEvent::Failed`], and the call ends with a system cause
//! ([`MediaFailure`]), counted in `/metrics`.
//!
//! Depends on: genki-media (mux), genki-udp (IO and the worker loop),
//! genki-sip (SDP), [`crate::metrics`], std threads and channels, tokio's
//! mpsc for events (call tasks are async).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

pub use genki_media::mux::{Latching, MediaTimeout};
use genki_media::mux::{Lateness, MuxEvent, StreamConfig, StreamId, StreamStats};
use genki_media::{DtmfTransport, Law, Prompt};
use genki_sip::sdp::{Codec, MediaDescription, SdpError};
use genki_udp::sockets::IoKind;
use genki_udp::worker::{self, EventSink};
use tokio::sync::mpsc;
use tracing::{error, warn};

use crate::metrics::Metrics;

/// How often a worker wakes, and how early it may send a packet.
///
/// 2 ms: each wake-up costs a sleep, a context switch, an entry into the
/// kernel and a pass over every stream, whatever the packet rate; at 1 ms
/// these were about a sixth of the media thread's CPU (docs/capacity.md).
/// A packet leaving up to 2 ms before its 20 ms slot is well inside what
/// any receiver's jitter buffer absorbs (networks jitter by tens of ms),
/// and a key or the peer's media is heard at most 2 ms later.
pub const TICK: Duration = Duration::from_millis(2);

/// Why genki ended a call for its media (a system cause: the call is
/// retried as `failed`, never taken for the person's silence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaFailure {
    /// No local RTP port, a dead worker, or a stream the worker refused.
    Setup,
    /// Nothing accepted from the peer within the start timeout.
    NoMediaStart,
    /// The peer's media stopped for longer than the gap timeout.
    MediaStopped,
    /// The call reached the hard maximum call length.
    MaxCallLength,
}

impl From<MediaFailure> for genki_store::EndReason {
    fn from(f: MediaFailure) -> Self {
        use genki_store::EndReason;
        match f {
            MediaFailure::Setup => EndReason::MediaSetupFailed,
            MediaFailure::NoMediaStart => EndReason::NoMedia,
            MediaFailure::MediaStopped => EndReason::MediaStopped,
            MediaFailure::MaxCallLength => EndReason::MaxCallLength,
        }
    }
}

impl MediaFailure {
    pub const ALL: [MediaFailure; 4] = [
        MediaFailure::Setup,
        MediaFailure::NoMediaStart,
        MediaFailure::MediaStopped,
        MediaFailure::MaxCallLength,
    ];
    /// The attempt's `end_reason` and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaFailure::Setup => "media_setup_failed",
            MediaFailure::NoMediaStart => "no_media",
            MediaFailure::MediaStopped => "media_stopped",
            MediaFailure::MaxCallLength => "max_call_length",
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Early media kept per call: 10 s of G.711 (8,000 bytes a second) —
/// the length of the announcements a network plays before its final
/// response («おかけになった電話番号は現在使われておりません…», 6–8 s),
/// grown only as audio arrives, and bounded so that 2,000 calls all
/// hearing announcements hold at most 160 MB.
pub const EARLY_CAPTURE: usize = 10 * 8000;

/// What a call hears from its media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    Digit(char, DtmfTransport),
    PlayFinished,
    /// The media failed; the call must end (a system cause).
    Failed(MediaFailure),
    /// A voice or tone began or ended in the peer's audio.
    Heard(genki_media::listen::Heard),
}

/// Events go straight into the call task's channel, boxed: a channel
/// allocates room for 32 events at once (1 KiB a call inline, measured).
pub type MediaEvents = mpsc::UnboundedReceiver<Box<MediaEvent>>;

/// Events go straight into the call task's channel.
struct Sink(mpsc::UnboundedSender<Box<MediaEvent>>);

impl EventSink for Sink {
    fn deliver(&self, e: MuxEvent) {
        let ev = match e {
            MuxEvent::Digit {
                digit, transport, ..
            } => MediaEvent::Digit(digit, transport),
            MuxEvent::PlayFinished { .. } => MediaEvent::PlayFinished,
            MuxEvent::NoMedia {
                received_any: false,
                ..
            } => MediaEvent::Failed(MediaFailure::NoMediaStart),
            MuxEvent::NoMedia {
                received_any: true, ..
            } => MediaEvent::Failed(MediaFailure::MediaStopped),
            // The worker connects the call's socket; nothing for the call.
            MuxEvent::Latched { .. } => return,
            MuxEvent::Heard { heard, .. } => MediaEvent::Heard(heard),
        };
        let _ = self.0.send(Box::new(ev));
    }
    fn setup_failed(&self, why: &str) {
        warn!(error = %why, "media stream not set up");
        let _ = self
            .0
            .send(Box::new(MediaEvent::Failed(MediaFailure::Setup)));
    }
    fn retarget_failed(&self, why: &str) {
        warn!(error = %why, "the peer moved its media; the call keeps the old address");
    }
}

type Cmd = worker::Cmd<Sink>;

struct Worker {
    tx: std_mpsc::Sender<Cmd>,
    alive: Arc<AtomicBool>,
}

/// How calls' media is set up (from `[sip]` and `[trunk]`).
#[derive(Debug, Clone)]
pub struct MediaOptions {
    pub ip: IpAddr,
    pub ports: RangeInclusive<u16>,
    pub workers: usize,
    pub io: IoKind,
    pub timeout: MediaTimeout,
    /// Media addresses accepted whatever the signalling peer
    /// ([`media_address_ok`]); `[sip] media_allow`.
    pub allow: Vec<ipnet::IpNet>,
    /// Ask for real-time scheduling (`SCHED_RR` at this priority) for the
    /// workers ([`genki_udp::set_realtime`]); `[sip] media_priority`.
    pub realtime: Option<i32>,
}

/// The real-time priority a media worker asks for with `[sip]
/// media_priority = "realtime"`: low among real-time threads (the kernel's
/// own run at 50 and above), above every normal one, as Asterisk's `-p`.
pub const REALTIME_PRIORITY: i32 = 10;

/// How the kernel schedules the media workers (logged at start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaScheduling {
    /// The default scheduler, as configured.
    Normal,
    /// `SCHED_RR` at this priority.
    Realtime(i32),
    /// Real-time was asked for and refused (why); the default scheduler.
    Refused(String),
}

/// The media workers of one daemon.
pub struct MediaRuntime {
    workers: Vec<Worker>,
    next: AtomicUsize,
    ids: AtomicU64,
    ip: IpAddr,
    ports: RangeInclusive<u16>,
    /// Next even port to try (round-robin over the range, so a port is
    /// reused as late as possible and a previous call's late packets find
    /// no one listening).
    port_cursor: AtomicUsize,
    timeout: MediaTimeout,
    allow: Vec<ipnet::IpNet>,
    /// "io_uring" or "epoll".
    pub io_name: &'static str,
    /// How the workers are scheduled.
    pub scheduling: MediaScheduling,
    metrics: Arc<Metrics>,
}

/// Why the media runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("the RTP port range {0} holds no even port")]
    NoPorts(String),
    #[error("cannot start a media worker: {0}")]
    Thread(std::io::Error),
}

/// Why a call's media could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("no free even RTP port in {range} on {ip}")]
    NoPort { ip: IpAddr, range: String },
    #[error("no media worker is running")]
    NoWorker,
    #[error("unusable SDP answer: {0}")]
    Sdp(#[from] SdpError),
    /// The answer's `c=` names an address genki will not send to.
    #[error("the SDP answer's media address {addr} is refused: {why}")]
    Address { addr: IpAddr, why: &'static str },
}

/// How far an address reaches, for [`media_address_ok`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    Loopback,
    LinkLocal,
    /// RFC 1918, shared (100.64/10, RFC 6598), IPv6 ULA (fc00::/7).
    Private,
    Global,
}

fn reach(ip: IpAddr) -> Reach {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Reach::Loopback
            } else if v4.is_link_local() {
                Reach::LinkLocal
            } else if v4.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
                Reach::Private
            } else {
                Reach::Global
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return reach(IpAddr::V4(v4));
            }
            let seg = v6.segments()[0];
            if v6.is_loopback() {
                Reach::Loopback
            } else if seg & 0xffc0 == 0xfe80 {
                Reach::LinkLocal
            } else if seg & 0xfe00 == 0xfc00 {
                Reach::Private
            } else {
                Reach::Global
            }
        }
    }
}

/// Whether genki may send a call's RTP to the answer's `c=` address
/// (RFC 4566 §5.7), given where the answer came from. The SDP is the far
/// end's to write, so without this a tenant's phone (or a forged answer)
/// could aim genki's media, with a tenant's uploaded audio, at loopback
/// services or a private network. Refused: the unspecified address (an
/// answer that puts the stream on hold, RFC 3264 §8.4, leaves genki
/// nobody to hear a key from), multicast and broadcast; an address of
/// narrower reach than the signalling peer's (loopback, link-local or
/// private media from a peer on a public address). Allowed: a global
/// address, one of the same reach as the peer, anything on `allow`.
pub fn media_address_ok(
    addr: IpAddr,
    signalling: Option<IpAddr>,
    allow: &[ipnet::IpNet],
) -> Result<(), &'static str> {
    if allow.iter().any(|n| n.contains(&addr)) {
        return Ok(());
    }
    if addr.is_unspecified() {
        return Err("the unspecified address (0.0.0.0 or ::) names no one to send to");
    }
    if addr.is_multicast() || addr == IpAddr::V4(std::net::Ipv4Addr::BROADCAST) {
        return Err("multicast and broadcast media are not sent");
    }
    let media = reach(addr);
    if media == Reach::Global {
        return Ok(());
    }
    match signalling.map(reach) {
        Some(peer) if peer == media => Ok(()),
        None => Ok(()),
        Some(_) => Err(match media {
            Reach::Loopback => "loopback media from a peer that is not on this machine",
            Reach::LinkLocal => "link-local media from a peer that is not on that link",
            _ => "private-network media from a peer on another network ([sip] media_allow lists such ranges)",
        }),
    }
}

/// A call's place before its answer: its own RTP socket (whose port the
/// SDP offer names) on a worker.
#[derive(Debug)]
pub struct Slot {
    worker: usize,
    sock: UdpSocket,
    pub local: SocketAddr,
    /// The SSRC this call's stream sends with (declared in the offer).
    pub ssrc: u32,
}

/// Which sources a call's media accepts, and from whom the answer came.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub latching: Latching,
    /// The IP the SIP answer came from (the next hop).
    pub signalling_ip: Option<IpAddr>,
    /// Hear voices and tones in the call's audio (who answered).
    pub listen: bool,
}

/// A call's stream; removed from its worker (and its socket closed) when
/// dropped or [finished](CallMedia::finish).
pub struct CallMedia {
    rt: Arc<MediaRuntime>,
    worker: usize,
    id: StreamId,
    removed: bool,
    pub codec: Codec,
    pub remote: SocketAddr,
    remote_ssrc: Option<u32>,
}

impl CallMedia {
    pub fn play(&self, p: Prompt) {
        let _ = self.rt.workers[self.worker].tx.send(Cmd::Play(self.id, p));
    }
    pub fn stop_playout(&self) {
        let _ = self.rt.workers[self.worker]
            .tx
            .send(Cmd::StopPlayout(self.id));
    }
    /// Keep the next `seconds` of the person's audio (after a prompt).
    pub fn record(&self, seconds: u32) {
        let _ = self.rt.workers[self.worker]
            .tx
            .send(Cmd::Record(self.id, seconds as usize * 8000));
    }

    /// The call was answered after early media: stop keeping its audio
    /// and time its media from now.
    pub fn answered(&self) {
        let _ = self.rt.workers[self.worker]
            .tx
            .send(Cmd::Answered(self.id, Some(self.rt.timeout)));
    }

    /// The peer described its media again (an offer in a re-INVITE or
    /// UPDATE, or a 2xx whose SDP differs from the 183's): when it names
    /// another address (or SSRC), the stream follows it there and latches
    /// afresh. Without this, a carrier that re-anchors its media mid-call
    /// would leave the person hearing nothing and their key unheard (a
    /// false "no response"). The address passes the same rule as the
    /// answer's ([`media_address_ok`]); the codec stays the one in use
    /// (genki answers with the offer it made). Ok(true) when it moved.
    pub fn retarget(&mut self, sdp: &[u8], peer: Peer) -> Result<bool, AttachError> {
        let n = MediaDescription::parse(sdp)?.negotiate_answer()?;
        media_address_ok(n.remote.ip(), peer.signalling_ip, &self.rt.allow).map_err(|why| {
            AttachError::Address {
                addr: n.remote.ip(),
                why,
            }
        })?;
        if n.remote == self.remote && n.ssrc == self.remote_ssrc {
            return Ok(false);
        }
        self.rt.workers[self.worker]
            .tx
            .send(Cmd::Retarget {
                id: self.id,
                remote: n.remote,
                remote_ssrc: n.ssrc,
            })
            .map_err(|_| AttachError::NoWorker)?;
        self.remote = n.remote;
        self.remote_ssrc = n.ssrc;
        Ok(true)
    }

    pub fn codec_name(&self) -> &'static str {
        match self.codec {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// Remove the stream and return its counters (None when its worker is
    /// gone or does not answer within a second). The runtime's metrics
    /// count them as they would on drop.
    pub async fn finish(mut self) -> Option<StreamStats> {
        self.removed = true;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let metrics = self.rt.metrics.clone();
        let reply: Box<dyn FnOnce(StreamStats) + Send> = Box::new(move |s| {
            metrics.rtp_sent.add(s.sent);
            metrics.rtp_received.add(s.received);
            metrics.rtp_malformed.add(s.malformed);
            let _ = tx.send(s);
        });
        self.rt.workers[self.worker]
            .tx
            .send(Cmd::Remove {
                id: self.id,
                reply: Some(reply),
            })
            .ok()?;
        tokio::time::timeout(Duration::from_secs(1), rx)
            .await
            .ok()?
            .ok()
    }
}

impl Drop for CallMedia {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        let _ = self.rt.workers[self.worker].tx.send(Cmd::Remove {
            id: self.id,
            reply: None,
        });
    }
}

impl MediaRuntime {
    /// Start `opts.workers` threads, each on its own IO (io_uring or epoll).
    pub fn start(
        opts: &MediaOptions,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<MediaRuntime>, MediaError> {
        let first = *opts.ports.start() + *opts.ports.start() % 2;
        if first > *opts.ports.end() {
            return Err(MediaError::NoPorts(format!(
                "{}-{}",
                opts.ports.start(),
                opts.ports.end()
            )));
        }
        // A socket per call: let the process hold as many as it may.
        genki_udp::raise_fd_limit();
        let mut out = Vec::new();
        let mut io_name = "";
        let mut scheduling = MediaScheduling::Normal;
        let realtime = opts.realtime;
        for w in 0..opts.workers.max(1) {
            let (tx, rx) = std_mpsc::channel();
            let (ready_tx, ready_rx) = std_mpsc::sync_channel(1);
            let alive = Arc::new(AtomicBool::new(true));
            let alive2 = alive.clone();
            let m = metrics.clone();
            let kind = opts.io;
            std::thread::Builder::new()
                .name(format!("genki-media-{w}"))
                .spawn(move || {
                    let sched = match realtime {
                        None => MediaScheduling::Normal,
                        Some(p) => match genki_udp::set_realtime(p) {
                            Ok(()) => MediaScheduling::Realtime(p),
                            Err(e) => MediaScheduling::Refused(e.to_string()),
                        },
                    };
                    // At real-time priority the worker rests a quarter of a
                    // tick every tick even when behind, so that signalling and
                    // storage on its core still run if media alone fills it.
                    let rest = match sched {
                        MediaScheduling::Realtime(_) => TICK / 4,
                        _ => Duration::ZERO,
                    };
                    // The IO is opened on its own thread (an io_uring has one issuer).
                    let io = match genki_udp::sockets::open(kind) {
                        Ok(io) => {
                            let _ = ready_tx.send(Ok((io.name(), sched)));
                            io
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let m2 = m.clone();
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        worker::run(
                            io,
                            None,
                            rx,
                            TICK,
                            rest,
                            |mux| {
                                let l = mux.lateness.take();
                                m.rtp_send_lateness
                                    .record_buckets(&l.buckets, Lateness::BUCKET_US);
                                m.rtp_unknown_source
                                    .add(std::mem::take(&mut mux.unknown_source));
                                m.rtp_foreign.add(std::mem::take(&mut mux.foreign));
                                m.rtp_relatched.add(std::mem::take(&mut mux.relatched));
                            },
                            |s| {
                                m2.rtp_sent.add(s.sent);
                                m2.rtp_received.add(s.received);
                                m2.rtp_malformed.add(s.malformed);
                            },
                        )
                    }));
                    alive2.store(false, Ordering::Relaxed);
                    if r.is_err() {
                        // Its calls see their event channels close (MediaFailure::Setup).
                        error!(
                            worker = w,
                            "media worker died; its calls end and are retried"
                        );
                    }
                })
                .map_err(MediaError::Thread)?;
            (io_name, scheduling) = ready_rx
                .recv()
                .map_err(|_| MediaError::Thread(std::io::Error::other("worker exited")))?
                .map_err(MediaError::Thread)?;
            out.push(Worker { tx, alive });
        }
        Ok(Arc::new(MediaRuntime {
            workers: out,
            next: AtomicUsize::new(0),
            ids: AtomicU64::new(1),
            ip: opts.ip,
            ports: opts.ports.clone(),
            port_cursor: AtomicUsize::new(0),
            timeout: opts.timeout,
            allow: opts.allow.clone(),
            io_name,
            scheduling,
            metrics,
        }))
    }

    /// Workers started.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Workers still running.
    pub fn workers_alive(&self) -> usize {
        self.workers
            .iter()
            .filter(|w| w.alive.load(Ordering::Relaxed))
            .count()
    }

    /// Bind the next call's own RTP socket (an even port of the range,
    /// RFC 3550 §11) on a live worker (round-robin).
    pub fn reserve(&self) -> Result<Slot, AttachError> {
        let n = self.workers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let worker = (0..n)
            .map(|k| (start + k) % n)
            .find(|&w| self.workers[w].alive.load(Ordering::Relaxed))
            .ok_or(AttachError::NoWorker)?;
        let first = (*self.ports.start() + *self.ports.start() % 2) as usize;
        let count = ((*self.ports.end() as usize).saturating_sub(first)) / 2 + 1;
        for _ in 0..count {
            let k = self.port_cursor.fetch_add(1, Ordering::Relaxed) % count;
            let port = (first + 2 * k) as u16;
            if let Ok(sock) = UdpSocket::bind(SocketAddr::new(self.ip, port)) {
                let local = sock.local_addr().map_err(|_| AttachError::NoWorker)?;
                return Ok(Slot {
                    worker,
                    sock,
                    local,
                    ssrc: rand::random(),
                });
            }
        }
        Err(AttachError::NoPort {
            ip: self.ip,
            range: format!("{}-{}", self.ports.start(), self.ports.end()),
        })
    }

    /// Negotiate from the SDP answer and start the call's stream on its
    /// worker. Events (digits, playout ends, failures) arrive on the
    /// returned receiver; if it closes, the worker is gone.
    pub fn attach(
        self: &Arc<Self>,
        slot: Slot,
        sdp_answer: &[u8],
        peer: Peer,
    ) -> Result<(CallMedia, MediaEvents), AttachError> {
        self.attach_as(slot, sdp_answer, peer, false)
    }

    /// [`MediaRuntime::attach`] on a provisional answer (183 with SDP):
    /// early media, kept ([`EARLY_CAPTURE`]) and never timed out — a
    /// network may send none before its final response — until
    /// [`CallMedia::answered`].
    pub fn attach_early(
        self: &Arc<Self>,
        slot: Slot,
        sdp_answer: &[u8],
        peer: Peer,
    ) -> Result<(CallMedia, MediaEvents), AttachError> {
        self.attach_as(slot, sdp_answer, peer, true)
    }

    fn attach_as(
        self: &Arc<Self>,
        slot: Slot,
        sdp_answer: &[u8],
        peer: Peer,
        early: bool,
    ) -> Result<(CallMedia, MediaEvents), AttachError> {
        let n = MediaDescription::parse(sdp_answer)?.negotiate_answer()?;
        media_address_ok(n.remote.ip(), peer.signalling_ip, &self.allow).map_err(|why| {
            AttachError::Address {
                addr: n.remote.ip(),
                why,
            }
        })?;
        let law = match n.codec {
            Codec::Pcmu => Law::Ulaw,
            Codec::Pcma => Law::Alaw,
        };
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut cfg = StreamConfig::new(n.remote, law, n.payload_type, n.telephone_event);
        cfg.remote_ssrc = n.ssrc;
        cfg.ssrc = slot.ssrc;
        cfg.seq = rand::random();
        cfg.ts = rand::random();
        cfg.latching = peer.latching;
        cfg.signalling_ip = peer.signalling_ip;
        // Hear who answers (genki_media::answer decides from it).
        cfg.listen = peer.listen;
        if early {
            cfg.capture = EARLY_CAPTURE;
        } else {
            cfg.media_timeout = Some(self.timeout);
        }
        self.workers[slot.worker]
            .tx
            .send(Cmd::Add {
                id,
                cfg,
                sock: Some(slot.sock),
                events: Sink(tx),
            })
            .map_err(|_| AttachError::NoWorker)?;
        Ok((
            CallMedia {
                rt: self.clone(),
                worker: slot.worker,
                id,
                removed: false,
                codec: n.codec,
                remote: n.remote,
                remote_ssrc: n.ssrc,
            },
            rx,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_addresses_of_narrower_reach_than_the_peer_are_refused() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let public = Some(ip("203.0.113.5"));
        let lo = Some(ip("127.0.0.1"));
        let lan = Some(ip("10.1.2.3"));
        for (media, peer, ok) in [
            ("198.51.100.7", public, true),
            ("198.51.100.7", lo, true),
            ("127.0.0.1", lo, true),
            ("127.0.0.2", lo, true),
            ("127.0.0.1", public, false),
            ("10.0.0.1", public, false),
            ("192.168.1.1", public, false),
            ("100.64.0.1", public, false),
            ("169.254.169.254", public, false),
            ("169.254.169.254", lo, false),
            ("10.0.0.1", lan, true),
            ("127.0.0.1", lan, false),
            ("0.0.0.0", lo, false),
            ("224.0.0.1", public, false),
            ("255.255.255.255", lan, false),
            ("::1", Some(ip("::1")), true),
            ("::1", public, false),
            ("fd00::1", public, false),
            ("::ffff:127.0.0.1", public, false),
            ("2001:db8::1", public, true),
        ] {
            assert_eq!(
                media_address_ok(ip(media), peer, &[]).is_ok(),
                ok,
                "{media} from {peer:?}"
            );
        }
        let allow = ["10.0.0.0/8".parse().unwrap()];
        assert!(media_address_ok(ip("10.9.9.9"), public, &allow).is_ok());
        assert!(media_address_ok(ip("10.9.9.9"), public, &[]).is_err());
    }

    #[test]
    fn metric_labels_follow_the_failure_kinds() {
        let words: Vec<&str> = MediaFailure::ALL.iter().map(|f| f.as_str()).collect();
        assert_eq!(words, crate::metrics::MEDIA_FAILURES);
    }
}
