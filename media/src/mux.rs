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
//! No allocation per packet: packets are written into the batch's fixed
//! buffers; per-stream state is allocated when a stream is added. Send
//! lateness is kept in a fixed bucket array ([`Lateness`]).
//!
//! Depends on: [`crate::rtp`], [`crate::dtmf`], [`crate::prompt`]. No IO, no clock.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::dtmf::{DtmfTransport, InbandDetector, Rfc4733Receiver};
use crate::prompt::{Law, Prompt};
use crate::rtp::{PlayoutEvent, RtpReceiver, RtpSender};

/// Caller-chosen identity of a stream (e.g. a call's number).
pub type StreamId = u64;

/// Largest packet a stream writes: 12-byte header + 160 bytes of G.711.
pub const MAX_PACKET: usize = 12 + 160 + 28;

/// How one stream is set up (from the SDP answer).
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Where the peer receives, and where its packets come from.
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
    remote: SocketAddr,
    remote_ssrc: Option<u32>,
    law: Law,
    payload_type: u8,
    telephone_event: Option<u8>,
    sender: RtpSender,
    receiver: RtpReceiver,
    rfc4733: Rfc4733Receiver,
    inband: Option<InbandDetector>,
    first_rx: Option<Instant>,
    last_rx: Option<Instant>,
    max_interarrival: Duration,
}

/// Packets ready to send: fixed buffers reused every tick.
pub struct PacketBatch {
    bufs: Vec<[u8; MAX_PACKET]>,
    lens: Vec<usize>,
    dests: Vec<SocketAddr>,
}

impl PacketBatch {
    /// Room for `capacity` packets per poll.
    pub fn new(capacity: usize) -> PacketBatch {
        PacketBatch {
            bufs: vec![[0; MAX_PACKET]; capacity.max(1)],
            lens: Vec::with_capacity(capacity),
            dests: Vec::with_capacity(capacity),
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
    }
    /// Packet `i`: its bytes and destination.
    pub fn get(&self, i: usize) -> (&[u8], SocketAddr) {
        (&self.bufs[i][..self.lens[i]], self.dests[i])
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
    free: Vec<usize>,
    by_id: HashMap<StreamId, usize>,
    by_remote: HashMap<SocketAddr, usize>,
    by_ssrc: HashMap<(SocketAddr, u32), usize>,
    events: VecDeque<MuxEvent>,
    /// Where the sweep of the last full batch stopped (fairness across ticks).
    cursor: usize,
    pub lateness: Lateness,
    /// Datagrams from addresses no stream expects (dropped).
    pub unknown_source: u64,
}

impl MediaMux {
    pub fn new() -> MediaMux {
        MediaMux::default()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Add a stream; its first packet is due at `now`.
    pub fn add(&mut self, id: StreamId, cfg: StreamConfig, now: Instant) -> Result<(), MuxError> {
        if self.by_id.contains_key(&id) {
            return Err(MuxError::DuplicateId(id));
        }
        let taken = match cfg.remote_ssrc {
            Some(x) => self.by_ssrc.contains_key(&(cfg.remote, x)),
            None => self.by_remote.contains_key(&cfg.remote),
        };
        if taken {
            return Err(MuxError::RemoteInUse(cfg.remote));
        }
        let mut sender = RtpSender::new(cfg.ssrc, cfg.seq, cfg.ts, cfg.law, cfg.payload_type);
        sender.set_telephone_event(cfg.telephone_event);
        sender.start(now);
        let s = Stream {
            id,
            remote: cfg.remote,
            remote_ssrc: cfg.remote_ssrc,
            law: cfg.law,
            payload_type: cfg.payload_type,
            telephone_event: cfg.telephone_event,
            sender,
            receiver: RtpReceiver::new(),
            rfc4733: Rfc4733Receiver::new(),
            inband: cfg.detect_inband.then(InbandDetector::default),
            first_rx: None,
            last_rx: None,
            max_interarrival: Duration::ZERO,
        };
        let slot = match self.free.pop() {
            Some(i) => {
                self.streams[i] = Some(s);
                i
            }
            None => {
                self.streams.push(Some(s));
                self.streams.len() - 1
            }
        };
        self.by_id.insert(id, slot);
        match cfg.remote_ssrc {
            Some(x) => self.by_ssrc.insert((cfg.remote, x), slot),
            None => self.by_remote.insert(cfg.remote, slot),
        };
        Ok(())
    }

    /// Remove a stream and return its counters.
    pub fn remove(&mut self, id: StreamId) -> Option<StreamStats> {
        let slot = self.by_id.remove(&id)?;
        let s = self.streams[slot].take()?;
        match s.remote_ssrc {
            Some(x) => self.by_ssrc.remove(&(s.remote, x)),
            None => self.by_remote.remove(&s.remote),
        };
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
        })
    }

    fn stream(&mut self, id: StreamId) -> Option<&mut Stream> {
        let slot = *self.by_id.get(&id)?;
        self.streams[slot].as_mut()
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
        let n = self.streams.len();
        for k in 0..n {
            let i = (self.cursor + k) % n;
            let Some(s) = self.streams[i].as_mut() else {
                continue;
            };
            while !out.is_full() {
                let late = s.sender.lateness(now);
                let j = out.lens.len();
                let Some(len) = s.sender.poll_transmit(horizon, &mut out.bufs[j]) else {
                    break;
                };
                self.lateness.record(late);
                out.lens.push(len);
                out.dests.push(s.remote);
            }
            while let Some(PlayoutEvent::Finished { .. }) = s.sender.poll_event() {
                self.events.push_back(MuxEvent::PlayFinished { id: s.id });
            }
            if out.is_full() {
                self.cursor = i;
                return;
            }
        }
    }

    /// One received datagram from `src`.
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
        let Some(s) = self.streams[slot].as_mut() else {
            return;
        };
        let Ok(p) = s.receiver.handle(data, now) else {
            return;
        };
        s.first_rx.get_or_insert(now);
        if let Some(last) = s.last_rx.replace(now) {
            s.max_interarrival = s.max_interarrival.max(now.saturating_duration_since(last));
        }
        if Some(p.payload_type) == s.telephone_event {
            if let Some(digit) = s.rfc4733.handle(p.payload, p.timestamp) {
                self.events.push_back(MuxEvent::Digit {
                    id: s.id,
                    digit,
                    transport: DtmfTransport::Rfc4733,
                });
            }
            return;
        }
        if p.payload_type != s.payload_type {
            return;
        }
        let Some(det) = s.inband.as_mut() else {
            return;
        };
        let mut pcm = [0i16; 160];
        for chunk in p.payload.chunks(pcm.len()) {
            for (o, b) in pcm.iter_mut().zip(chunk) {
                *o = s.law.decode(*b);
            }
            if let Some(digit) = det.feed(&pcm[..chunk.len()]) {
                self.events.push_back(MuxEvent::Digit {
                    id: s.id,
                    digit,
                    transport: DtmfTransport::Inband,
                });
            }
        }
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
        StreamConfig {
            remote: SocketAddr::from(([127, 0, 0, 1], port)),
            law: Law::Ulaw,
            payload_type: 0,
            telephone_event: Some(101),
            remote_ssrc: None,
            ssrc: port as u32,
            seq: 1,
            ts: 0,
            detect_inband: true,
        }
    }

    #[test]
    fn many_streams_share_ticks_and_keep_their_schedule() {
        let t0 = Instant::now();
        let mut mux = MediaMux::new();
        // 100 streams started 0.1 ms apart: a 2 ms tick sends each on time.
        for i in 0..100u16 {
            mux.add(
                i as u64,
                cfg(40000 + i * 2),
                t0 + Duration::from_micros(i as u64 * 100),
            )
            .unwrap();
        }
        assert_eq!(mux.add(0, cfg(1), t0), Err(MuxError::DuplicateId(0)));
        assert_eq!(
            mux.add(500, cfg(40000), t0),
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

    #[test]
    fn streams_from_one_address_are_told_apart_by_declared_ssrc() {
        let t0 = Instant::now();
        let mut mux = MediaMux::new();
        let shared = SocketAddr::from(([127, 0, 0, 1], 43000));
        for (id, ssrc) in [(1u64, 111u32), (2, 222)] {
            let mut c = cfg(43000);
            c.remote_ssrc = Some(ssrc);
            mux.add(id, c, t0).unwrap();
        }
        let mut dup = cfg(43000);
        dup.remote_ssrc = Some(111);
        assert_eq!(mux.add(3, dup, t0), Err(MuxError::RemoteInUse(shared)));
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
            mux.add(i as u64, cfg(41000 + i * 2), t0).unwrap();
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

    #[test]
    fn digits_and_playout_events_come_back_by_stream() {
        let t0 = Instant::now();
        let mut mux = MediaMux::new();
        mux.add(1, cfg(42000), t0).unwrap();
        mux.add(2, cfg(42002), t0).unwrap();
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
}
