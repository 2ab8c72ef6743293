//! Many RTP streams sharing one socket, sans-IO: the core of a media worker.
//!
//! One UDP socket per call costs one send and one receive system call per
//! packet and one task wake-up per packet each way; at 2,000 calls that is
//! 200,000 system calls a second before any work is done. A [`MediaMux`]
//! instead owns every stream of one worker: incoming datagrams are matched
//! to their stream by source address (the address the peer's SDP named),
//! and [`MediaMux::poll_transmit`] writes every packet due by a tick into
//! one [`PacketBatch`] that the owner sends with a single `sendmmsg`. The
//! owner ticks every couple of milliseconds and may send up to `early`
//! ahead of a packet's due time, so many calls share one wake-up while
//! each packet still leaves within its 20 ms schedule.
//!
//! A stream is bound to a socket of its owner in one of two ways
//! ([`Binding`]): **own** — the stream has a local port of its own (what
//! genki's daemon does, as every mature SIP stack does: any number of calls
//! may share one remote address, and nothing a peer does can make two
//! calls collide), and its packets are accepted by the stream's
//! [`Latching`] rule; or **shared** — many streams on one socket, told
//! apart by source address and the SSRC the peer declared (the simulated
//! phones, which behave like one big media server).
//!
//! Which source is the peer (RFC 3550 §8.2, RFC 4961 symmetric RTP,
//! "comedia"/latching in Asterisk and FreeSWITCH): a stream on its own
//! socket accepts the first packet that *proves itself* — RTP version 2, a
//! negotiated payload type, and (from any address but the SDP's) the SSRC
//! the answer declared — from a source its [`Latching`] rule allows, then
//! locks to that source for the rest of the call: it sends there and drops
//! (and counts, [`MediaMux::foreign`]) every packet from anywhere else, so
//! a stranger cannot re-latch a call mid-way or press a key in it.
//!
//! A stream may also watch for media that never starts or stops
//! ([`MediaTimeout`]): the mux then reports [`MuxEvent::NoMedia`] once, so
//! the owner can end the call with a system cause instead of waiting.
//!
//! No allocation per packet: packets are written into the batch's fixed
//! buffers; per-stream state is allocated when a stream is added. Send
//! lateness is kept in a fixed bucket array ([`Lateness`]).
//!
//! Depends on: [`crate::rtp`], [`crate::dtmf`], [`crate::prompt`],
//! [`crate::listen`]. No IO, no clock.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::dtmf::{DtmfTransport, InbandDetector, Rfc4733Receiver};
use crate::listen::{Heard, Listener};
use crate::prompt::{Law, Prompt};
use crate::rtp::{PlayoutEvent, RtpReceiver, RtpSender};

/// Caller-chosen identity of a stream (e.g. a call's number).
pub type StreamId = u64;

/// Largest packet a stream writes: 12-byte header + 160 bytes of G.711.
pub const MAX_PACKET: usize = 12 + 160 + 28;

/// A socket of the mux's owner (an index the owner chose).
pub type SockToken = u32;

/// Which socket a stream sends and receives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// The stream's own socket: every datagram arriving on it is offered
    /// to this stream ([`MediaMux::handle_own_datagram`]) and judged by the
    /// stream's [`Latching`] rule.
    Own(SockToken),
    /// A socket shared with other streams: datagrams are routed to the
    /// stream by source address, and by the SSRC the peer declared
    /// ([`MediaMux::handle_datagram`]).
    Shared(SockToken),
}

/// From which sources a stream on its own socket accepts media (its first
/// proving packet latches the stream to that source for good).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latching {
    /// Only the address and port the SDP answer names.
    Off,
    /// The SDP's address, or any port of the SDP's IP or of the IP the SIP
    /// answer came from (peers behind one NAT, multi-homed hosts, user
    /// agents that name another interface in SDP than they send from).
    #[default]
    Host,
    /// Any source (phones behind NAT reached through a proxy). With a
    /// declared `a=ssrc`, only a packet carrying it can latch.
    Any,
}

/// How long a stream waits for its peer's media before reporting
/// [`MuxEvent::NoMedia`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaTimeout {
    /// From the stream's start to its first accepted packet.
    pub start: Duration,
    /// Between two accepted packets later on.
    pub gap: Duration,
}

/// How one stream is set up (from the SDP answer).
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Where the peer receives (the SDP answer's `c=`/`m=`, RFC 4566 §5.7,
    /// §5.14): where packets go until the stream latches.
    pub remote: SocketAddr,
    pub law: Law,
    pub payload_type: u8,
    /// RFC 4733 payload type, if negotiated.
    pub telephone_event: Option<u8>,
    /// The SSRC the peer declared in SDP (a=ssrc): streams from one
    /// address are then told apart by it.
    pub remote_ssrc: Option<u32>,
    /// Random initial values (RFC 3550 §5.1).
    pub ssrc: u32,
    pub seq: u16,
    pub ts: u32,
    /// Run the in-band (Goertzel) detector on received audio.
    pub detect_inband: bool,
    /// Which sources a stream on its own socket may latch to.
    pub latching: Latching,
    /// The IP the SIP answer came from ([`Latching::Host`] accepts it).
    pub signalling_ip: Option<IpAddr>,
    /// Report media that never starts, or stops.
    pub media_timeout: Option<MediaTimeout>,
    /// Keep up to this many bytes of the peer's audio payload (the
    /// negotiated G.711 law, 8,000 a second) from the stream's start until
    /// [`MediaMux::answered`]: the early media a network plays before the
    /// final response (an announcement), for the owner to keep. 0: none.
    pub capture: usize,
    /// Hear voices and tones in the peer's audio ([`crate::listen`]) and
    /// report them as [`MuxEvent::Heard`]: who answered is decided from
    /// them. Quiet frames cost one integer pass.
    pub listen: bool,
}

impl StreamConfig {
    /// A stream to `remote` with the given codec and RFC 4733 payload
    /// type; random SSRC, sequence and timestamp must be set by the caller
    /// (RFC 3550 §5.1); no latching beyond the SDP's host, no timeout.
    pub fn new(
        remote: SocketAddr,
        law: Law,
        payload_type: u8,
        telephone_event: Option<u8>,
    ) -> Self {
        StreamConfig {
            remote,
            law,
            payload_type,
            telephone_event,
            remote_ssrc: None,
            ssrc: 0,
            seq: 0,
            ts: 0,
            detect_inband: true,
            latching: Latching::default(),
            signalling_ip: None,
            media_timeout: None,
            capture: 0,
            listen: false,
        }
    }
}

/// What streams report to their owners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MuxEvent {
    Digit {
        id: StreamId,
        digit: char,
        transport: DtmfTransport,
    },
    /// A queued prompt's last frame was sent.
    PlayFinished { id: StreamId },
    /// The peer's media did not start, or stopped, within the stream's
    /// [`MediaTimeout`] (reported once).
    NoMedia { id: StreamId, received_any: bool },
    /// A stream on its own socket latched to `source` (reported once): the
    /// owner may connect the socket to it, so the kernel drops strangers
    /// and routes sends without a lookup per packet.
    Latched { id: StreamId, source: SocketAddr },
    /// A voice or tone began or ended in the peer's audio
    /// ([`StreamConfig::listen`]).
    Heard { id: StreamId, heard: Heard },
}

impl MuxEvent {
    /// The stream the event is about.
    pub fn stream(&self) -> StreamId {
        match self {
            MuxEvent::Digit { id, .. }
            | MuxEvent::PlayFinished { id }
            | MuxEvent::NoMedia { id, .. }
            | MuxEvent::Latched { id, .. }
            | MuxEvent::Heard { id, .. } => *id,
        }
    }
}

/// A stream's counters when it is removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamStats {
    pub sent: u64,
    pub received: u64,
    pub malformed: u64,
    pub gaps: u64,
    pub jitter_ms: f64,
    /// When the first and the last packet arrived, and the longest gap between two.
    pub first_rx: Option<Instant>,
    pub last_rx: Option<Instant>,
    pub max_interarrival: Duration,
    /// Datagrams on the stream's own socket from sources it does not accept.
    pub foreign: u64,
    /// The source the stream latched to (own socket only).
    pub latched: Option<SocketAddr>,
    /// The peer's audio kept ([`StreamConfig::capture`]), in its G.711 law.
    pub captured: Vec<u8>,
    /// The peer's audio kept after prompts ([`MediaMux::record`]).
    pub recorded: Vec<u8>,
}

/// Why a stream could not be added.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MuxError {
    #[error("stream {0} exists")]
    DuplicateId(StreamId),
    /// Two streams cannot share a remote address: packets could not be told apart.
    #[error("another stream already receives from {0}")]
    RemoteInUse(SocketAddr),
}

struct Stream {
    id: StreamId,
    binding: Binding,
    remote: SocketAddr,
    remote_ssrc: Option<u32>,
    latching: Latching,
    signalling_ip: Option<IpAddr>,
    latched: Option<SocketAddr>,
    /// The source latched before the peer moved its media
    /// ([`MediaMux::retarget`]): its packets still in flight must not
    /// latch the stream back to where the peer no longer listens.
    left: Option<SocketAddr>,
    foreign: u64,
    media_timeout: Option<MediaTimeout>,
    /// When missing media is reported (kept as an instant so the check
    /// every tick is one comparison, not a subtraction).
    media_deadline: Option<Instant>,
    law: Law,
    payload_type: u8,
    telephone_event: Option<u8>,
    sender: RtpSender,
    receiver: RtpReceiver,
    rfc4733: Rfc4733Receiver,
    inband: Option<InbandDetector>,
    /// The SSRC and RTP timestamp the next audio packet should carry
    /// (G.711: one unit a sample): a jump is lost audio, which the in-band
    /// detector must not join across ([`InbandDetector::gap`]).
    next_audio: Option<(u32, u32)>,
    listener: Option<Box<Listener>>,
    first_rx: Option<Instant>,
    last_rx: Option<Instant>,
    max_interarrival: Duration,
    capture_limit: usize,
    captured: Vec<u8>,
    /// The person's audio kept after a prompt ([`MediaMux::record`]).
    record_limit: usize,
    recorded: Vec<u8>,
}

impl Stream {
    /// The next instant [`MediaMux::poll_transmit`] has work on this
    /// stream: its next packet or its media deadline.
    fn next_wake(&self) -> Option<Instant> {
        match (self.sender.poll_timeout(), self.media_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Where packets go: the latched source (symmetric RTP, RFC 4961) or
    /// the SDP's address.
    fn dest(&self) -> SocketAddr {
        self.latched.unwrap_or(self.remote)
    }

    /// May a packet from `src` latch this stream?
    fn may_latch(&self, src: SocketAddr, data: &[u8]) -> bool {
        let allowed = src == self.remote
            || Some(src) != self.left
                && match self.latching {
                    Latching::Off => false,
                    Latching::Host => {
                        src.ip() == self.remote.ip() || Some(src.ip()) == self.signalling_ip
                    }
                    Latching::Any => true,
                };
        if !allowed || data.len() < 12 || data[0] >> 6 != 2 {
            return false;
        }
        // RFC 3550 §5.1: the payload type must be one negotiated; from any
        // source but the SDP's own, the SSRC must be the one declared
        // (RFC 5576 a=ssrc), which a stranger has to guess.
        let pt = data[1] & 0x7f;
        if pt != self.payload_type && Some(pt) != self.telephone_event {
            return false;
        }
        let ssrc = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        src == self.remote || self.remote_ssrc.is_none_or(|x| x == ssrc)
    }

    /// A packet accepted as the peer's: count it and detect digits.
    fn receive(&mut self, data: &[u8], now: Instant, events: &mut VecDeque<MuxEvent>) {
        let Ok(p) = self.receiver.handle(data, now) else {
            return;
        };
        self.first_rx.get_or_insert(now);
        if let Some(t) = self.media_timeout {
            self.media_deadline = Some(now + t.gap);
        }
        if let Some(last) = self.last_rx.replace(now) {
            self.max_interarrival = self
                .max_interarrival
                .max(now.saturating_duration_since(last));
        }
        if Some(p.payload_type) == self.telephone_event {
            if let Some(digit) = self.rfc4733.handle(p.payload, p.timestamp) {
                events.push_back(MuxEvent::Digit {
                    id: self.id,
                    digit,
                    transport: DtmfTransport::Rfc4733,
                });
            }
            return;
        }
        if p.payload_type != self.payload_type {
            return;
        }
        if self.captured.len() < self.capture_limit {
            let room = self.capture_limit - self.captured.len();
            self.captured
                .extend_from_slice(&p.payload[..p.payload.len().min(room)]);
        }
        if self.recorded.len() < self.record_limit {
            let room = self.record_limit - self.recorded.len();
            self.recorded
                .extend_from_slice(&p.payload[..p.payload.len().min(room)]);
        }
        if self.inband.is_none() && self.listener.is_none() {
            return;
        }
        // Packets lost before this one (RFC 3550 §5.1: the timestamp
        // counts samples). Another source, or a jump of a second or more
        // either way, is a new timeline: nothing is joined or bridged
        // across it. A late (or repeated) packet, a little behind, was
        // already counted in a hole: the in-band detector does not hear it
        // joined onto newer audio (two such joins in a row would read as
        // the key's release, and a key still held would count twice), nor
        // does it move the expected timestamp back.
        let ahead = match self.next_audio {
            Some((ssrc, ts)) if ssrc == p.ssrc => Some(p.timestamp.wrapping_sub(ts) as i32),
            // Another source, or the first audio (or the first since the
            // peer moved its media).
            _ => None,
        };
        let new_timeline = ahead.is_none_or(|a| !(-8000..8000).contains(&a));
        if let Some(d) = self.inband.as_mut() {
            if new_timeline {
                d.gap(usize::MAX);
            } else if let Some(a @ 1..) = ahead {
                d.gap(a as usize);
            }
        }
        let late = !new_timeline && ahead.is_some_and(|a| a < 0);
        if !late {
            self.next_audio = Some((p.ssrc, p.timestamp.wrapping_add(p.payload.len() as u32)));
        }
        let mut pcm = [0i16; 160];
        for chunk in p.payload.chunks(pcm.len()) {
            for (o, b) in pcm.iter_mut().zip(chunk) {
                *o = self.law.decode(*b);
            }
            let pcm = &pcm[..chunk.len()];
            if let Some(digit) = self
                .inband
                .as_mut()
                .filter(|_| !late)
                .and_then(|d| d.feed(pcm))
            {
                events.push_back(MuxEvent::Digit {
                    id: self.id,
                    digit,
                    transport: DtmfTransport::Inband,
                });
            }
            if let Some(l) = self.listener.as_mut() {
                l.feed(pcm, now);
                while let Some(heard) = l.poll() {
                    events.push_back(MuxEvent::Heard { id: self.id, heard });
                }
            }
        }
    }

    /// Report missing media once, when its timeout has passed.
    ///
    /// `read_until`: up to when the owner has read its sockets
    /// ([`MediaMux::read_until`]); media is missing only if the deadline
    /// passed before that — a worker that was itself held up (a paused
    /// process, a starved core) finds the peer's packets still queued in
    /// its sockets, and must read them before it blames the peer.
    fn check_media(
        &mut self,
        now: Instant,
        read_until: Option<Instant>,
        events: &mut VecDeque<MuxEvent>,
    ) {
        let passed = |d: Instant| now >= d && read_until.is_none_or(|r| r >= d);
        if self.media_deadline.is_some_and(passed) {
            self.media_timeout = None;
            self.media_deadline = None;
            events.push_back(MuxEvent::NoMedia {
                id: self.id,
                received_any: self.last_rx.is_some(),
            });
        }
    }
}

/// Packets ready to send: fixed buffers reused every tick.
pub struct PacketBatch {
    bufs: Vec<[u8; MAX_PACKET]>,
    lens: Vec<usize>,
    dests: Vec<SocketAddr>,
    socks: Vec<SockToken>,
}

impl PacketBatch {
    /// Room for `capacity` packets per poll.
    pub fn new(capacity: usize) -> PacketBatch {
        PacketBatch {
            bufs: vec![[0; MAX_PACKET]; capacity.max(1)],
            lens: Vec::with_capacity(capacity),
            dests: Vec::with_capacity(capacity),
            socks: Vec::with_capacity(capacity),
        }
    }
    pub fn len(&self) -> usize {
        self.lens.len()
    }
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }
    pub fn is_full(&self) -> bool {
        self.lens.len() >= self.bufs.len()
    }
    pub fn clear(&mut self) {
        self.lens.clear();
        self.dests.clear();
        self.socks.clear();
    }
    /// Packet `i`: its bytes and destination.
    pub fn get(&self, i: usize) -> (&[u8], SocketAddr) {
        (&self.bufs[i][..self.lens[i]], self.dests[i])
    }
    /// The socket packet `i` must leave from.
    pub fn sock(&self, i: usize) -> SockToken {
        self.socks[i]
    }
}

/// Send lateness in 50 µs buckets up to 51.2 ms (the last bucket holds the rest).
#[derive(Debug, Clone)]
pub struct Lateness {
    pub buckets: [u64; 1024],
}

impl Default for Lateness {
    fn default() -> Self {
        Lateness { buckets: [0; 1024] }
    }
}

impl Lateness {
    pub const BUCKET_US: u64 = 50;
    fn record(&mut self, late: Duration) {
        let i = (late.as_micros() as u64 / Self::BUCKET_US).min(1023) as usize;
        self.buckets[i] += 1;
    }
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
    /// The lateness at quantile `q` (upper edge of its bucket).
    pub fn quantile(&self, q: f64) -> Duration {
        let n = self.count();
        if n == 0 {
            return Duration::ZERO;
        }
        let want = ((n as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Duration::from_micros((i as u64 + 1) * Self::BUCKET_US);
            }
        }
        Duration::from_micros(1024 * Self::BUCKET_US)
    }
    /// Move the counts out (to an owner's histogram), leaving zeros.
    pub fn take(&mut self) -> Lateness {
        std::mem::take(self)
    }
}

/// Every stream of one media worker.
#[derive(Default)]
pub struct MediaMux {
    streams: Vec<Option<Stream>>,
    /// When each slot next has work ([`Stream::next_wake`]), in
    /// nanoseconds from `epoch`; [`NEVER`] for an empty slot or a stream
    /// with nothing scheduled. A tick scans this dense array (8 bytes a
    /// stream) and touches only the streams due: visiting all 3,000
    /// streams of a worker every 2 ms tick cost a cache miss or three each,
    /// for one packet in ten visits.
    wake: Vec<u64>,
    epoch: Option<Instant>,
    free: Vec<usize>,
    by_id: HashMap<StreamId, usize>,
    by_remote: HashMap<SocketAddr, usize>,
    by_ssrc: HashMap<(SocketAddr, u32), usize>,
    events: VecDeque<MuxEvent>,
    /// Where the sweep of the last full batch stopped (fairness across ticks).
    cursor: usize,
    pub lateness: Lateness,
    /// Datagrams on a shared socket from addresses no stream expects (dropped).
    pub unknown_source: u64,
    /// Datagrams on a stream's own socket from a source it does not accept
    /// (dropped): strangers, or a peer sending from an address the
    /// stream's [`Latching`] rule does not allow.
    pub foreign: u64,
    /// Streams that latched to another source than the SDP named.
    pub relatched: u64,
    /// Up to when the owner has read every socket ([`Self::read_until`]).
    read_until: Option<Instant>,
}

/// [`MediaMux::wake`] of a slot with nothing to do.
const NEVER: u64 = u64::MAX;

impl MediaMux {
    pub fn new() -> MediaMux {
        MediaMux::default()
    }

    /// `t` as a wake time (instants before the first stream count as 0:
    /// due at once).
    fn wake_at(&self, t: Option<Instant>) -> u64 {
        match (t, self.epoch) {
            (Some(t), Some(e)) => t.saturating_duration_since(e).as_nanos() as u64,
            (Some(_), None) => 0,
            (None, _) => NEVER,
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Add a stream on `binding`; its first packet is due at `now`.
    pub fn add(
        &mut self,
        id: StreamId,
        binding: Binding,
        cfg: StreamConfig,
        now: Instant,
    ) -> Result<(), MuxError> {
        if self.by_id.contains_key(&id) {
            return Err(MuxError::DuplicateId(id));
        }
        let shared = matches!(binding, Binding::Shared(_));
        let taken = shared
            && match cfg.remote_ssrc {
                Some(x) => self.by_ssrc.contains_key(&(cfg.remote, x)),
                None => self.by_remote.contains_key(&cfg.remote),
            };
        if taken {
            return Err(MuxError::RemoteInUse(cfg.remote));
        }
        self.epoch.get_or_insert(now);
        let mut sender = RtpSender::new(cfg.ssrc, cfg.seq, cfg.ts, cfg.law, cfg.payload_type);
        sender.set_telephone_event(cfg.telephone_event);
        sender.start(now);
        let s = Stream {
            id,
            binding,
            remote: cfg.remote,
            remote_ssrc: cfg.remote_ssrc,
            latching: cfg.latching,
            signalling_ip: cfg.signalling_ip,
            latched: None,
            left: None,
            foreign: 0,
            media_timeout: cfg.media_timeout,
            media_deadline: cfg.media_timeout.map(|t| now + t.start),
            law: cfg.law,
            payload_type: cfg.payload_type,
            telephone_event: cfg.telephone_event,
            sender,
            receiver: RtpReceiver::new(),
            rfc4733: Rfc4733Receiver::new(),
            inband: cfg.detect_inband.then(InbandDetector::default),
            next_audio: None,
            listener: cfg.listen.then(Box::default),
            first_rx: None,
            last_rx: None,
            max_interarrival: Duration::ZERO,
            capture_limit: cfg.capture,
            captured: Vec::new(),
            record_limit: 0,
            recorded: Vec::new(),
        };
        let wake = self.wake_at(s.next_wake());
        let slot = match self.free.pop() {
            Some(i) => {
                self.streams[i] = Some(s);
                self.wake[i] = wake;
                i
            }
            None => {
                self.streams.push(Some(s));
                self.wake.push(wake);
                self.streams.len() - 1
            }
        };
        self.by_id.insert(id, slot);
        if shared {
            match cfg.remote_ssrc {
                Some(x) => self.by_ssrc.insert((cfg.remote, x), slot),
                None => self.by_remote.insert(cfg.remote, slot),
            };
        }
        Ok(())
    }

    /// Remove a stream and return its counters.
    pub fn remove(&mut self, id: StreamId) -> Option<StreamStats> {
        let slot = self.by_id.remove(&id)?;
        let s = self.streams[slot].take()?;
        self.wake[slot] = NEVER;
        if matches!(s.binding, Binding::Shared(_)) {
            match s.remote_ssrc {
                Some(x) => self.by_ssrc.remove(&(s.remote, x)),
                None => self.by_remote.remove(&s.remote),
            };
        }
        self.free.push(slot);
        Some(StreamStats {
            sent: s.sender.sent,
            received: s.receiver.received,
            malformed: s.receiver.malformed,
            gaps: s.receiver.gaps,
            jitter_ms: s.receiver.jitter_ms(),
            first_rx: s.first_rx,
            last_rx: s.last_rx,
            max_interarrival: s.max_interarrival,
            foreign: s.foreign,
            latched: s.latched,
            captured: s.captured,
            recorded: s.recorded,
        })
    }

    /// The call was answered: capture stops (what follows is the person's
    /// voice, not the network's early media), and the media timeout (if
    /// any) is armed from now — media that never started is measured from
    /// the answer, not from the 183. False when the stream is unknown.
    pub fn answered(&mut self, id: StreamId, timeout: Option<MediaTimeout>, now: Instant) -> bool {
        let Some(s) = self.stream(id) else {
            return false;
        };
        s.capture_limit = s.captured.len();
        if let Some(t) = timeout {
            s.media_timeout = Some(t);
            s.media_deadline = Some(now + if s.last_rx.is_some() { t.gap } else { t.start });
        }
        true
    }

    /// The peer moved its media (a re-INVITE or UPDATE offer, or a 2xx
    /// whose SDP differs from the 183's: RFC 3264 §8 lets either side
    /// change its address mid-call): packets now go to `remote`, and the
    /// stream latches afresh by its [`Latching`] rule, since the old source
    /// may be gone (an SBC that re-anchored the media) — never back to the
    /// source it had latched to, whose late packets may still arrive. `remote_ssrc` is
    /// the new description's `a=ssrc`, if any. Ok(false) when the stream
    /// is unknown; on a shared socket another stream may not already
    /// receive from the new address.
    pub fn retarget(
        &mut self,
        id: StreamId,
        remote: SocketAddr,
        remote_ssrc: Option<u32>,
    ) -> Result<bool, MuxError> {
        let Some(&slot) = self.by_id.get(&id) else {
            return Ok(false);
        };
        let Some(s) = self.streams[slot].as_mut() else {
            return Ok(false);
        };
        if matches!(s.binding, Binding::Shared(_)) {
            let key_taken = match remote_ssrc {
                Some(x) => self.by_ssrc.get(&(remote, x)),
                None => self.by_remote.get(&remote),
            }
            .is_some_and(|&other| other != slot);
            if key_taken {
                return Err(MuxError::RemoteInUse(remote));
            }
            match s.remote_ssrc {
                Some(x) => self.by_ssrc.remove(&(s.remote, x)),
                None => self.by_remote.remove(&s.remote),
            };
            match remote_ssrc {
                Some(x) => self.by_ssrc.insert((remote, x), slot),
                None => self.by_remote.insert(remote, slot),
            };
        }
        s.left = s.latched.take().filter(|&a| a != remote);
        s.remote = remote;
        s.remote_ssrc = remote_ssrc;
        // The new media's timestamps are its own.
        s.next_audio = None;
        Ok(true)
    }

    /// Keep the next `bytes` of the peer's audio (G.711: 8,000 a second),
    /// after what is kept already: the person's answer after a prompt, for
    /// a coordinator to listen to. False when the stream is unknown.
    pub fn record(&mut self, id: StreamId, bytes: usize) -> bool {
        let Some(s) = self.stream(id) else {
            return false;
        };
        s.record_limit = s.recorded.len() + bytes;
        true
    }

    /// A stream for a change of its owner's: it is visited at the next
    /// tick (a prompt, a key or a new media deadline may move its next
    /// wake-up earlier).
    fn stream(&mut self, id: StreamId) -> Option<&mut Stream> {
        let slot = *self.by_id.get(&id)?;
        self.wake[slot] = 0;
        self.streams[slot].as_mut()
    }

    /// After a packet was accepted on `slot`: its media deadline moved
    /// (earlier, when the gap timeout is shorter than the start one).
    fn rewake(&mut self, slot: usize) {
        let t = self.streams[slot].as_ref().and_then(|s| s.next_wake());
        self.wake[slot] = self.wake_at(t);
    }

    /// Queue a prompt on a stream. False when the stream is unknown.
    pub fn play(&mut self, id: StreamId, prompt: Prompt) -> bool {
        self.stream(id).map(|s| s.sender.play(prompt)).is_some()
    }

    /// Barge-in: drop what is playing.
    pub fn stop_playout(&mut self, id: StreamId) {
        if let Some(s) = self.stream(id) {
            s.sender.stop_playout();
        }
    }

    /// Send a key as RFC 4733 events; false when not negotiated (or unknown stream).
    pub fn send_digit(&mut self, id: StreamId, digit: char, duration: Duration) -> bool {
        self.stream(id)
            .is_some_and(|s| s.sender.send_digit(digit, duration))
    }

    /// Write every packet due by `now + early` into `out` (cleared first),
    /// until it is full. Lateness is measured against `now`.
    pub fn poll_transmit(&mut self, now: Instant, early: Duration, out: &mut PacketBatch) {
        out.clear();
        let horizon = now + early;
        let due_by = self.wake_at(Some(horizon));
        let n = self.streams.len();
        for k in 0..n {
            let i = (self.cursor + k) % n;
            if self.wake[i] > due_by {
                continue;
            }
            let Some(s) = self.streams[i].as_mut() else {
                continue;
            };
            let (dest, sock) = match s.binding {
                Binding::Own(t) | Binding::Shared(t) => (s.dest(), t),
            };
            while !out.is_full() {
                // Most streams have nothing due at a given tick: look at the
                // due instant before any arithmetic on it.
                match s.sender.poll_timeout() {
                    Some(due) if due <= horizon => {}
                    _ => break,
                }
                let late = s.sender.lateness(now);
                let j = out.lens.len();
                let Some(len) = s.sender.poll_transmit(horizon, &mut out.bufs[j]) else {
                    break;
                };
                self.lateness.record(late);
                out.lens.push(len);
                out.dests.push(dest);
                out.socks.push(sock);
            }
            while let Some(PlayoutEvent::Finished { .. }) = s.sender.poll_event() {
                self.events.push_back(MuxEvent::PlayFinished { id: s.id });
            }
            s.check_media(now, self.read_until, &mut self.events);
            let next = s.next_wake();
            self.wake[i] = self.wake_at(next);
            if out.is_full() {
                self.cursor = i;
                return;
            }
        }
    }

    /// One datagram from `src` on a shared socket: routed to its stream
    /// by source address (and the SSRC the peer declared).
    pub fn handle_datagram(&mut self, src: SocketAddr, data: &[u8], now: Instant) {
        // RTP header: SSRC at bytes 8..12 (RFC 3550 §5.1).
        let ssrc = data
            .get(8..12)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let slot = ssrc
            .filter(|_| !self.by_ssrc.is_empty())
            .and_then(|x| self.by_ssrc.get(&(src, x)))
            .or_else(|| self.by_remote.get(&src));
        let Some(&slot) = slot else {
            self.unknown_source += 1;
            return;
        };
        if let Some(s) = self.streams[slot].as_mut() {
            s.receive(data, now, &mut self.events);
            self.rewake(slot);
        }
    }

    /// One datagram from `src` on stream `id`'s own socket: accepted when
    /// it comes from the source the stream latched to, or latches it now
    /// (see [`Latching`]); anything else is counted in [`Self::foreign`].
    pub fn handle_own_datagram(
        &mut self,
        id: StreamId,
        src: SocketAddr,
        data: &[u8],
        now: Instant,
    ) {
        let Some(&slot) = self.by_id.get(&id) else {
            self.unknown_source += 1;
            return;
        };
        let Some(s) = self.streams[slot].as_mut() else {
            return;
        };
        match s.latched {
            Some(a) if a == src => {}
            None if s.may_latch(src, data) => {
                s.latched = Some(src);
                if src != s.remote {
                    self.relatched += 1;
                }
                self.events.push_back(MuxEvent::Latched { id, source: src });
            }
            _ => {
                s.foreign += 1;
                self.foreign += 1;
                return;
            }
        }
        s.receive(data, now, &mut self.events);
        self.rewake(slot);
    }

    /// The owner has read every datagram that reached its sockets by `t`:
    /// a stream's media counts as missing only once its deadline is
    /// before that. An owner that never says so is taken to read at once.
    pub fn read_until(&mut self, t: Instant) {
        self.read_until = Some(t);
    }

    pub fn poll_event(&mut self) -> Option<MuxEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtmf::tone;

    fn cfg(port: u16) -> StreamConfig {
        let mut c = StreamConfig::new(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Law::Ulaw,
            0,
            Some(101),
        );
        c.ssrc = port as u32;
        c.seq = 1;
        c
    }

    const SHARED: Binding = Binding::Shared(0);

    #[test]
    fn many_streams_share_ticks_and_keep_their_schedule() {
        let t0 = Instant::now();
        let mut mux = MediaMux::new();
        // 100 streams started 0.1 ms apart: a 2 ms tick sends each on time.
        for i in 0..100u16 {
            mux.add(
                i as u64,
                SHARED,
                cfg(40000 + i * 2),
                t0 + Duration::from_micros(i as u64 * 100),
            )
            .unwrap();
        }
        assert_eq!(
            mux.add(0, SHARED, cfg(1), t0),
            Err(MuxError::DuplicateId(0))
        );
        assert_eq!(
            mux.add(500, SHARED, cfg(40000), t0),
            Err(MuxError::RemoteInUse(SocketAddr::from((
                [127, 0, 0, 1],
                40000
            ))))
        );
        let mut batch = PacketBatch::new(512);
        let mut per_dest: HashMap<SocketAddr, u32> = HashMap::new();
        let mut ticks = 0;
        let mut t = t0;
        while t < t0 + Duration::from_secs(1) {
            mux.poll_transmit(t, Duration::from_millis(1), &mut batch);
            for i in 0..batch.len() {
                let (bytes, dest) = batch.get(i);
                assert_eq!(bytes.len(), 172);
                *per_dest.entry(dest).or_default() += 1;
            }
            ticks += 1;
            t += Duration::from_millis(2);
        }
        assert_eq!(ticks, 500);
        // One second of 20 ms packets each (50, or 51 counting the one due at 1 s minus early).
        assert!(
            per_dest.values().all(|n| (50..=51).contains(n)),
            "{per_dest:?}"
        );
        assert!(
            mux.lateness.quantile(1.0) <= Duration::from_millis(2),
            "{:?}",
            mux.lateness.quantile(1.0)
        );
        let stats = mux.remove(7).unwrap();
        assert!(stats.sent >= 50);
        assert!(mux.remove(7).is_none());
        assert_eq!(mux.len(), 99);
    }

    /// `record` keeps the next bytes of the peer's audio, and only those.
    #[test]
    fn record_keeps_just_the_asked_seconds_of_the_peers_audio() {
        let t0 = Instant::now();
        let mut mux = MediaMux::new();
        let remote = SocketAddr::from(([127, 0, 0, 1], 47000));
        mux.add(1, Binding::Own(3), cfg(47000), t0).unwrap();
        let mut peer = RtpSender::new(5, 1, 0, Law::Ulaw, 0);
        peer.start(t0);
        let mut buf = [0u8; 256];
        let mut t = t0;
        let mut send = |mux: &mut MediaMux, n: usize| {
            for _ in 0..n {
                let len = peer.poll_transmit(t, &mut buf).unwrap();
                mux.handle_own_datagram(1, remote, &buf[..len], t);
                t += Duration::from_millis(20);
            }
        };
        send(&mut mux, 2);
        assert!(mux.record(1, 400));
        assert!(!mux.record(9, 400));
        send(&mut mux, 5);
        let stats = mux.remove(1).unwrap();
        assert_eq!(stats.recorded.len(), 400, "2.5 packets' worth, no more");
        assert!(stats.captured.is_empty(), "no early media asked for");
    }

    /// A peer that moves its media mid-call: packets go to the new
    /// address, the old source is no longer heard (a stream on its own
    /// socket latches afresh, to the new source), and on a shared socket
    /// the new address routes to the stream.
    #[test]
    fn a_stream_follows_its_peer_to_a_new_address() {
        let t0 = Instant::now();
        let mut mux = MediaMux::new();
        let old = SocketAddr::from(([127, 0, 0, 1], 44000));
        let new = SocketAddr::from(([127, 0, 0, 1], 44002));
        mux.add(1, Binding::Own(7), cfg(44000), t0).unwrap();
        mux.add(2, SHARED, cfg(45000), t0).unwrap();
        let mut peer = RtpSender::new(9, 1, 0, Law::Ulaw, 0);
        peer.start(t0);
        let mut buf = [0u8; 256];
        let mut packet = |t| {
            let n = peer.poll_transmit(t, &mut buf).unwrap();
            buf[..n].to_vec()
        };
        let p = packet(t0);
        mux.handle_own_datagram(1, old, &p, t0);
        assert!(
            matches!(mux.poll_event(), Some(MuxEvent::Latched { source, .. }) if source == old)
        );
        let mut batch = PacketBatch::new(8);
        mux.poll_transmit(t0, Duration::from_millis(1), &mut batch);
        assert!((0..batch.len()).any(|i| batch.get(i).1 == old));

        assert_eq!(mux.retarget(1, new, None), Ok(true));
        assert_eq!(mux.retarget(99, new, None), Ok(false));
        let t1 = t0 + Duration::from_millis(20);
        let p = packet(t1);
        mux.handle_own_datagram(1, old, &p, t1);
        assert_eq!(mux.foreign, 1, "the old source is not the peer any more");
        mux.handle_own_datagram(1, new, &p, t1);
        assert!(
            matches!(mux.poll_event(), Some(MuxEvent::Latched { source, .. }) if source == new)
        );
        let mut batch = PacketBatch::new(8);
        mux.poll_transmit(t1, Duration::from_millis(1), &mut batch);
        let dests: Vec<_> = (0..batch.len()).map(|i| batch.get(i).1).collect();
        assert!(dests.contains(&new) && !dests.contains(&old), "{dests:?}");

        // Shared socket: re-routed, and never onto another stream's address.
        let shared_new = SocketAddr::from(([127, 0, 0, 1], 45002));
        assert_eq!(
            mux.retarget(2, SocketAddr::from(([127, 0, 0, 1], 45000)), None),
            Ok(true),
            "its own address again"
        );
        mux.add(3, SHARED, cfg(46000), t0).unwrap();
        assert_eq!(
            mux.retarget(2, SocketAddr::from(([127, 0, 0, 1], 46000)), None),
            Err(MuxError::RemoteInUse(SocketAddr::from((
                [127, 0, 0, 1],
                46000
            ))))
        );
        assert_eq!(mux.retarget(2, shared_new, None), Ok(true));
        let before = mux.unknown_source;
        mux.handle_datagram(SocketAddr::from(([127, 0, 0, 1], 45000)), &p, t1);
        assert_eq!(
            mux.unknown_source,
            before + 1,
            "the old address is nobody's"
        );
        mux.handle_datagram(shared_new, &p, t1);
        assert_eq!(mux.unknown_source, before + 1);
        assert_eq!(mux.remove(2).unwrap().received, 1);
    }

    #[test]
    fn streams_from_one_address_are_told_apart_by_declared_ssrc() {
        let t0 = Instant::now();
        let mut mux = MediaMux::new();
        let shared = SocketAddr::from(([127, 0, 0, 1], 43000));
        for (id, ssrc) in [(1u64, 111u32), (2, 222)] {
            let mut c = cfg(43000);
            c.remote_ssrc = Some(ssrc);
            mux.add(id, SHARED, c, t0).unwrap();
        }
        let mut dup = cfg(43000);
        dup.remote_ssrc = Some(111);
        assert_eq!(
            mux.add(3, SHARED, dup, t0),
            Err(MuxError::RemoteInUse(shared))
        );
        let mut buf = [0u8; 256];
        for (ssrc, digit) in [(222u32, '2'), (111, '1')] {
            let mut peer = RtpSender::new(ssrc, 1, 0, Law::Ulaw, 0);
            peer.set_telephone_event(Some(101));
            peer.start(t0);
            peer.send_digit(digit, Duration::from_millis(60));
            let mut t = t0;
            for _ in 0..8 {
                while let Some(n) = peer.poll_transmit(t, &mut buf) {
                    mux.handle_datagram(shared, &buf[..n], t);
                }
                t += Duration::from_millis(20);
            }
        }
        let mut got = vec![];
        while let Some(MuxEvent::Digit { id, digit, .. }) = mux.poll_event() {
            got.push((id, digit));
        }
        assert_eq!(got, vec![(2, '2'), (1, '1')]);
        // An undeclared SSRC from that address belongs to nobody.
        let mut stranger = RtpSender::new(999, 1, 0, Law::Ulaw, 0);
        stranger.start(t0);
        let n = stranger.poll_transmit(t0, &mut buf).unwrap();
        mux.handle_datagram(shared, &buf[..n], t0);
        assert_eq!(mux.unknown_source, 1);
    }

    #[test]
    fn a_full_batch_resumes_where_it_stopped() {
        let t0 = Instant::now();
        let mut mux = MediaMux::new();
        for i in 0..10u16 {
            mux.add(i as u64, SHARED, cfg(41000 + i * 2), t0).unwrap();
        }
        let mut batch = PacketBatch::new(4);
        let mut seen = HashMap::<SocketAddr, u32>::new();
        for _ in 0..3 {
            mux.poll_transmit(t0, Duration::ZERO, &mut batch);
            assert!(batch.len() <= 4);
            for i in 0..batch.len() {
                *seen.entry(batch.get(i).1).or_default() += 1;
            }
        }
        assert_eq!(seen.len(), 10, "every stream got its due packet: {seen:?}");
        assert!(seen.values().all(|n| *n == 1));
    }

    /// A 120 ms in-band key of which only the first and fifth packets
    /// arrive: the stream sees the hole in the RTP timestamps and the key
    /// is heard (joined, the two halves were not).
    #[test]
    fn an_inband_key_is_heard_across_lost_packets() {
        let t0 = Instant::now();
        let mut mux = MediaMux::new();
        mux.add(1, SHARED, cfg(42000), t0).unwrap();
        let mut phone = RtpSender::new(9, 1, 0, Law::Ulaw, 0);
        phone.start(t0);
        let mut pcm = vec![0i16; 800];
        pcm.extend(tone('7', 120, 6000.0, 0.0));
        pcm.extend(vec![0i16; 1600]);
        phone.play(Prompt::from_pcm("k", &pcm));
        let (mut buf, mut t, mut sent) = ([0u8; 256], t0, 0);
        for _ in 0..25 {
            while let Some(n) = phone.poll_transmit(t, &mut buf) {
                // Packets 5 to 10 carry the key; 6, 7, 8 and 10 are lost.
                if ![6, 7, 8, 10].contains(&sent) {
                    mux.handle_datagram(SocketAddr::from(([127, 0, 0, 1], 42000)), &buf[..n], t);
                }
                sent += 1;
            }
            t += Duration::from_millis(20);
        }
        assert_eq!(digits_heard(&mut mux), vec!['7']);
    }

    /// The digits the mux has reported, in order (other events dropped).
    fn digits_heard(mux: &mut MediaMux) -> Vec<char> {
        std::iter::from_fn(|| mux.poll_event())
            .filter_map(|e| match e {
                MuxEvent::Digit { digit, .. } => Some(digit),
                _ => None,
            })
            .collect()
    }

    /// A key held for 400 ms in 10 ms packets, two of them arriving
    /// swapped: the late one is not joined onto newer audio (two bad
    /// windows in a row read as the key's release), so it is one key.
    #[test]
    fn a_late_packet_does_not_make_a_held_key_two() {
        let t0 = Instant::now();
        let mut mux = MediaMux::new();
        mux.add(1, SHARED, cfg(42000), t0).unwrap();
        let mut pcm = vec![0i16; 800];
        pcm.extend(tone('4', 400, 6000.0, 0.0));
        pcm.extend(vec![0i16; 800]);
        let law = Law::Ulaw;
        let packet = |k: usize| {
            let mut b = vec![0x80, 0, 0, 0];
            b[2..4].copy_from_slice(&(k as u16).to_be_bytes());
            b.extend_from_slice(&((k * 80) as u32).to_be_bytes());
            b.extend_from_slice(&9u32.to_be_bytes());
            b.extend(pcm[k * 80..(k + 1) * 80].iter().map(|s| law.encode(*s)));
            b
        };
        let mut order: Vec<usize> = (0..pcm.len() / 80).collect();
        order.swap(25, 26);
        for (i, k) in order.into_iter().enumerate() {
            let t = t0 + Duration::from_millis(10 * i as u64);
            mux.handle_datagram(SocketAddr::from(([127, 0, 0, 1], 42000)), &packet(k), t);
        }
        assert_eq!(digits_heard(&mut mux), vec!['4']);
    }

    #[test]
    fn digits_and_playout_events_come_back_by_stream() {
        let t0 = Instant::now();
        let mut mux = MediaMux::new();
        mux.add(1, SHARED, cfg(42000), t0).unwrap();
        mux.add(2, SHARED, cfg(42002), t0).unwrap();
        // Stream 2's peer presses 5 in-band; stream 1's peer sends RFC 4733 "1".
        let mut peer = RtpSender::new(9, 1, 0, Law::Ulaw, 0);
        peer.set_telephone_event(Some(101));
        peer.start(t0);
        peer.send_digit('1', Duration::from_millis(100));
        let mut inband = RtpSender::new(8, 1, 0, Law::Ulaw, 0);
        inband.start(t0);
        inband.play(Prompt::from_pcm("k", &tone('5', 120, 6000.0, 0.0)));
        let mut buf = [0u8; 256];
        let mut t = t0;
        for _ in 0..20 {
            while let Some(n) = peer.poll_transmit(t, &mut buf) {
                mux.handle_datagram(SocketAddr::from(([127, 0, 0, 1], 42000)), &buf[..n], t);
            }
            while let Some(n) = inband.poll_transmit(t, &mut buf) {
                mux.handle_datagram(SocketAddr::from(([127, 0, 0, 1], 42002)), &buf[..n], t);
            }
            t += Duration::from_millis(20);
        }
        mux.handle_datagram(SocketAddr::from(([127, 0, 0, 1], 9)), &buf[..12], t);
        assert_eq!(mux.unknown_source, 1);
        let mut events = vec![];
        while let Some(e) = mux.poll_event() {
            events.push(e);
        }
        assert!(
            events.contains(&MuxEvent::Digit {
                id: 1,
                digit: '1',
                transport: DtmfTransport::Rfc4733
            }),
            "{events:?}"
        );
        assert!(
            events.contains(&MuxEvent::Digit {
                id: 2,
                digit: '5',
                transport: DtmfTransport::Inband
            }),
            "{events:?}"
        );
        // A prompt on stream 1 reports its end.
        assert!(mux.play(1, Prompt::from_pcm("p", &[0i16; 320])));
        let mut batch = PacketBatch::new(64);
        for k in 0..5 {
            mux.poll_transmit(
                t + Duration::from_millis(20 * k),
                Duration::ZERO,
                &mut batch,
            );
        }
        assert_eq!(mux.poll_event(), Some(MuxEvent::PlayFinished { id: 1 }));
        assert!(!mux.play(99, Prompt::from_pcm("p", &[0i16; 160])));
    }

    /// Feed `n` 20 ms packets of a peer pressing `digit` (RFC 4733) from `src`
    /// into stream `id`'s own socket.
    fn press(
        mux: &mut MediaMux,
        id: StreamId,
        src: SocketAddr,
        ssrc: u32,
        digit: char,
        t0: Instant,
    ) -> Instant {
        let mut peer = RtpSender::new(ssrc, 1, 0, Law::Ulaw, 0);
        peer.set_telephone_event(Some(101));
        peer.start(t0);
        peer.send_digit(digit, Duration::from_millis(100));
        let mut buf = [0u8; 256];
        let mut t = t0;
        for _ in 0..12 {
            while let Some(n) = peer.poll_transmit(t, &mut buf) {
                mux.handle_own_datagram(id, src, &buf[..n], t);
            }
            t += Duration::from_millis(20);
        }
        t
    }

    fn digits(mux: &mut MediaMux) -> Vec<(StreamId, char)> {
        let mut got = vec![];
        while let Some(e) = mux.poll_event() {
            if let MuxEvent::Digit { id, digit, .. } = e {
                got.push((id, digit));
            }
        }
        got
    }

    #[test]
    fn own_sockets_let_any_number_of_calls_share_one_remote_address() {
        let t0 = Instant::now();
        let mut mux = MediaMux::new();
        let remote = SocketAddr::from(([127, 0, 0, 1], 6000));
        for id in 0..50u64 {
            mux.add(id, Binding::Own(id as u32), cfg(6000), t0).unwrap();
        }
        assert_eq!(mux.len(), 50);
        // Each stream hears only what arrives on its own socket.
        let t = press(&mut mux, 7, remote, 1234, '1', t0);
        press(&mut mux, 8, remote, 1234, '2', t);
        assert_eq!(digits(&mut mux), vec![(7, '1'), (8, '2')]);
        // And sends from its own socket.
        let mut batch = PacketBatch::new(256);
        mux.poll_transmit(t0, Duration::ZERO, &mut batch);
        let socks: std::collections::HashSet<_> = (0..batch.len()).map(|i| batch.sock(i)).collect();
        assert_eq!(socks.len(), 50);
        assert!((0..batch.len()).all(|i| batch.get(i).1 == remote));
    }

    #[test]
    fn a_stream_latches_once_to_a_proving_source_and_then_ignores_strangers() {
        let t0 = Instant::now();
        let sdp = SocketAddr::from(([192, 0, 2, 2], 4000));
        let real = SocketAddr::from(([127, 0, 0, 1], 4002));
        let stranger = SocketAddr::from(([127, 0, 0, 2], 4000));
        let mut c = cfg(4000);
        c.remote = sdp;
        c.remote_ssrc = Some(777);
        c.signalling_ip = Some(real.ip());
        let mut mux = MediaMux::new();
        mux.add(1, Binding::Own(1), c.clone(), t0).unwrap();
        // A stranger from an address Host latching does not allow, even with the SSRC.
        let t = press(&mut mux, 1, stranger, 777, '1', t0);
        assert!(digits(&mut mux).is_empty());
        assert!(mux.foreign > 0);
        // The signalling peer's IP with a wrong SSRC does not prove itself.
        let t = press(&mut mux, 1, real, 778, '1', t);
        assert!(digits(&mut mux).is_empty());
        // With the declared SSRC it latches, and is heard.
        let t = press(&mut mux, 1, real, 777, '2', t);
        assert_eq!(digits(&mut mux), vec![(1, '2')]);
        assert_eq!(mux.relatched, 1);
        // Packets now go to the latched source (symmetric RTP).
        let mut batch = PacketBatch::new(16);
        mux.poll_transmit(t, Duration::ZERO, &mut batch);
        assert_eq!(batch.get(0).1, real);
        // Locked: even Any-allowed sources or the SDP's address cannot re-latch.
        let before = mux.foreign;
        let t = press(&mut mux, 1, stranger, 777, '1', t);
        press(&mut mux, 1, sdp, 777, '1', t);
        assert!(digits(&mut mux).is_empty());
        assert!(mux.foreign > before);
        let st = mux.remove(1).unwrap();
        assert_eq!(st.latched, Some(real));
        assert!(st.foreign > 0);

        // Off: only the SDP's own address.
        let mut off = c.clone();
        off.latching = Latching::Off;
        mux.add(2, Binding::Own(2), off, t0).unwrap();
        press(&mut mux, 2, real, 777, '1', t0);
        assert!(digits(&mut mux).is_empty());
        press(&mut mux, 2, sdp, 5, '3', t0);
        assert_eq!(
            digits(&mut mux),
            vec![(2, '3')],
            "the SDP address needs no SSRC proof"
        );

        // Any: a stranger with the declared SSRC could latch (the operator's choice),
        // without it it cannot.
        let mut any = c;
        any.latching = Latching::Any;
        mux.add(3, Binding::Own(3), any, t0).unwrap();
        press(&mut mux, 3, stranger, 1, '1', t0);
        assert!(digits(&mut mux).is_empty());
        press(&mut mux, 3, stranger, 777, '4', t0);
        assert_eq!(digits(&mut mux), vec![(3, '4')]);
    }

    #[test]
    fn garbage_and_unnegotiated_payloads_never_latch() {
        let t0 = Instant::now();
        let mut mux = MediaMux::new();
        let src = SocketAddr::from(([127, 0, 0, 1], 4000));
        mux.add(1, Binding::Own(1), cfg(4000), t0).unwrap();
        mux.handle_own_datagram(1, src, b"hello", t0);
        let mut pkt = [0u8; 172];
        pkt[0] = 0x80;
        pkt[1] = 18; // G.729: not negotiated
        mux.handle_own_datagram(1, src, &pkt, t0);
        mux.handle_own_datagram(99, src, &pkt, t0);
        assert_eq!(mux.foreign, 2);
        assert_eq!(mux.unknown_source, 1);
        assert_eq!(mux.remove(1).unwrap().latched, None);
    }

    #[test]
    fn a_stalled_owner_reads_its_sockets_before_it_blames_the_peer() {
        let t0 = Instant::now();
        let mut mux = MediaMux::new();
        let mut c = cfg(4000);
        c.media_timeout = Some(MediaTimeout {
            start: Duration::from_secs(2),
            gap: Duration::from_secs(2),
        });
        mux.add(1, Binding::Own(1), c, t0).unwrap();
        let src = SocketAddr::from(([127, 0, 0, 1], 4000));
        let t1 = press(&mut mux, 1, src, 9, '1', t0);
        mux.read_until(t1);
        digits(&mut mux);
        let no_media = |mux: &mut MediaMux| {
            let mut n = 0;
            while let Some(e) = mux.poll_event() {
                n += matches!(e, MuxEvent::NoMedia { .. }) as usize;
            }
            n
        };
        let mut batch = PacketBatch::new(1024);
        // The owner was held up for 5 s: its sockets were last read at t1.
        let late = t1 + Duration::from_secs(5);
        mux.poll_transmit(late, Duration::ZERO, &mut batch);
        assert_eq!(no_media(&mut mux), 0, "not before the sockets are read");
        // The peer's packets were waiting; read, they keep the call alive.
        press(&mut mux, 1, src, 9, '2', late);
        mux.read_until(late);
        mux.poll_transmit(late, Duration::ZERO, &mut batch);
        assert_eq!(no_media(&mut mux), 0);
        // Then truly nothing: read past the deadline, it is reported.
        let later = late + Duration::from_secs(3);
        mux.read_until(later);
        mux.poll_transmit(later, Duration::ZERO, &mut batch);
        assert_eq!(no_media(&mut mux), 1);
    }

    #[test]
    fn missing_media_is_reported_once_at_its_timeout() {
        let t0 = Instant::now();
        let mut mux = MediaMux::new();
        let mut c = cfg(4000);
        c.media_timeout = Some(MediaTimeout {
            start: Duration::from_secs(5),
            gap: Duration::from_secs(2),
        });
        mux.add(1, Binding::Own(1), c.clone(), t0).unwrap();
        mux.add(2, Binding::Own(2), c, t0).unwrap();
        let src = SocketAddr::from(([127, 0, 0, 1], 4000));
        // Stream 2 hears its peer for a while, then nothing.
        let t_last = press(&mut mux, 2, src, 9, '1', t0 + Duration::from_secs(1));
        digits(&mut mux);
        let mut batch = PacketBatch::new(1024);
        let mut events = vec![];
        let mut t = t0;
        while t < t0 + Duration::from_secs(8) {
            mux.poll_transmit(t, Duration::ZERO, &mut batch);
            while let Some(e) = mux.poll_event() {
                if let MuxEvent::NoMedia { .. } = e {
                    events.push((t - t0, e));
                }
            }
            t += Duration::from_millis(10);
        }
        assert_eq!(events.len(), 2, "{events:?}");
        let (at1, e1) = &events[1];
        assert_eq!(
            *e1,
            MuxEvent::NoMedia {
                id: 1,
                received_any: false
            }
        );
        assert!(
            *at1 >= Duration::from_secs(5) && *at1 < Duration::from_millis(5020),
            "{at1:?}"
        );
        let (at2, e2) = &events[0];
        assert_eq!(
            *e2,
            MuxEvent::NoMedia {
                id: 2,
                received_any: true
            }
        );
        let gap = *at2 - (t_last - t0);
        assert!(
            gap >= Duration::from_millis(1900) && gap < Duration::from_millis(2100),
            "{gap:?}"
        );
    }
}
