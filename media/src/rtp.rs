//! RTP (RFC 3550) playout and reception for one G.711 stream, sans-IO.
//!
//! [`RtpSender`] paces one packet every 20 ms from an instant the owner
//! passes in: prompt frames when something is queued, silence otherwise (a
//! continuous stream keeps NAT bindings and carrier media timers alive),
//! and RFC 4733 telephone-event packets while a digit is being sent.
//! Packets are written into a caller's buffer: no allocation per packet.
//! [`RtpReceiver`] parses with `rtp-rs`, counts, and keeps sequence-number
//! state with wrapping arithmetic (rtp-rs's own ordering is unsound across
//! wrap-around) and the RFC 3550 §A.8 interarrival jitter.
//!
//! Depends on: rtp-rs, [`crate::prompt`], [`crate::dtmf`]. No IO, no clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};
use thiserror::Error;

use crate::dtmf::{event_code, Rfc4733Payload};
use crate::prompt::{Law, Prompt, FRAME_SAMPLES};

/// Packet interval (RFC 3551 §4.5: 20 ms default for G.711).
pub const PTIME: Duration = Duration::from_millis(20);

/// If the owner falls this far behind schedule (process stalled), the
/// sender skips ahead instead of bursting the backlog.
pub const MAX_CATCH_UP: Duration = Duration::from_millis(100);

/// What playout reports to the call flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayoutEvent {
    /// The last frame of a queued prompt was sent.
    Finished { name: String },
}

#[derive(Debug)]
struct DtmfSend {
    code: u8,
    /// RTP timestamp of the event's start (same in every packet, RFC 4733 §2.5.1.1).
    ts: u32,
    /// Total duration, in packets.
    packets: u32,
    sent: u32,
    /// End packets still to send (the end is sent three times, §2.5.1.4).
    ends_left: u32,
}

/// Paces one outgoing RTP stream.
#[derive(Debug)]
pub struct RtpSender {
    ssrc: u32,
    seq: u16,
    /// Media clock of the next audio packet.
    ts: u32,
    law: Law,
    payload_type: u8,
    te_payload_type: Option<u8>,
    next_due: Option<Instant>,
    queue: VecDeque<Prompt>,
    frame: usize,
    marker: bool,
    dtmf: VecDeque<DtmfSend>,
    events: VecDeque<PlayoutEvent>,
    /// Packets sent.
    pub sent: u64,
    /// Times the sender skipped ahead after falling behind by more than [`MAX_CATCH_UP`].
    pub resyncs: u64,
}

impl RtpSender {
    /// `ssrc`, initial `seq` and `ts` should be random (RFC 3550 §5.1).
    pub fn new(ssrc: u32, seq: u16, ts: u32, law: Law, payload_type: u8) -> RtpSender {
        RtpSender {
            ssrc,
            seq,
            ts,
            law,
            payload_type,
            te_payload_type: None,
            next_due: None,
            queue: VecDeque::new(),
            frame: 0,
            marker: true,
            dtmf: VecDeque::new(),
            events: VecDeque::new(),
            sent: 0,
            resyncs: 0,
        }
    }

    /// Payload type for RFC 4733 events, as negotiated.
    pub fn set_telephone_event(&mut self, pt: Option<u8>) {
        self.te_payload_type = pt;
    }

    /// Start sending: the first packet is due at `now`.
    pub fn start(&mut self, now: Instant) {
        if self.next_due.is_none() {
            self.next_due = Some(now);
        }
    }

    /// Stop sending (the call ended).
    pub fn stop(&mut self) {
        self.next_due = None;
    }

    /// Queue a prompt after whatever is playing.
    pub fn play(&mut self, prompt: Prompt) {
        if self.queue.is_empty() {
            self.frame = 0;
        }
        self.queue.push_back(prompt);
    }

    /// Barge-in: drop the current and queued prompts; silence follows.
    pub fn stop_playout(&mut self) {
        self.queue.clear();
        self.frame = 0;
    }

    pub fn is_playing(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Send a digit as RFC 4733 events lasting `duration` (rounded to 20 ms).
    /// Returns false when no telephone-event payload type was negotiated.
    pub fn send_digit(&mut self, digit: char, duration: Duration) -> bool {
        let (Some(_), Some(code)) = (self.te_payload_type, event_code(digit)) else {
            return false;
        };
        let packets = (duration.as_millis() as u32 / 20).max(2);
        self.dtmf.push_back(DtmfSend {
            code,
            ts: 0,
            packets,
            sent: 0,
            ends_left: 3,
        });
        true
    }

    /// The instant the next packet is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_due
    }

    /// How late `now` is against the packet schedule (zero if not late).
    pub fn lateness(&self, now: Instant) -> Duration {
        self.next_due
            .map(|d| now.saturating_duration_since(d))
            .unwrap_or_default()
    }

    pub fn poll_event(&mut self) -> Option<PlayoutEvent> {
        self.events.pop_front()
    }

    /// If a packet is due at `now`, write it into `buf` (≥ 172 bytes) and
    /// return its length. Call repeatedly until `None`.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let due = self.next_due?;
        if now < due {
            return None;
        }
        if now - due > MAX_CATCH_UP {
            // Skip the backlog; advance the media clock by the time skipped
            // so timestamps keep following the sampling instants (RFC 3550 §5.1).
            let skipped = ((now - due).as_millis() / 20) as u32;
            self.ts = self.ts.wrapping_add(skipped * FRAME_SAMPLES as u32);
            self.next_due = Some(due + PTIME * skipped);
            self.resyncs += 1;
            self.marker = true;
        }
        self.next_due = Some(self.next_due? + PTIME);
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        self.sent += 1;
        let audio_ts = self.ts;
        self.ts = self.ts.wrapping_add(FRAME_SAMPLES as u32);

        if let (Some(te), Some(d)) = (self.te_payload_type, self.dtmf.front_mut()) {
            let first = d.sent == 0;
            if first {
                d.ts = audio_ts;
            }
            d.sent += 1;
            let end = d.sent >= d.packets;
            let dur = (d.sent.min(d.packets) * FRAME_SAMPLES as u32).min(u16::MAX as u32) as u16;
            let payload = Rfc4733Payload {
                event: d.code,
                end,
                volume: 10,
                duration: dur,
            }
            .encode();
            let ts = d.ts;
            if end {
                d.ends_left -= 1;
                if d.ends_left == 0 {
                    self.dtmf.pop_front();
                    self.marker = true;
                }
            }
            return build(buf, te, first, seq, ts, self.ssrc, &payload);
        }

        let marker = std::mem::take(&mut self.marker);
        let silence = [self.law.silence(); FRAME_SAMPLES];
        let payload: &[u8] = match self.queue.front() {
            Some(p) => p.frame(self.law, self.frame),
            None => &silence,
        };
        let n = build(
            buf,
            self.payload_type,
            marker,
            seq,
            audio_ts,
            self.ssrc,
            payload,
        );
        if let Some(p) = self.queue.front() {
            self.frame += 1;
            if self.frame >= p.frames() {
                let name = p.name().to_string();
                self.queue.pop_front();
                self.frame = 0;
                self.events.push_back(PlayoutEvent::Finished { name });
            }
        }
        n
    }
}

fn build(
    buf: &mut [u8],
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: &[u8],
) -> Option<usize> {
    RtpPacketBuilder::new()
        .payload_type(pt)
        .marked(marker)
        .sequence(Seq::from(seq))
        .timestamp(ts)
        .ssrc(ssrc)
        .payload(payload)
        .build_into(buf)
        .ok()
}

/// Why an incoming datagram is not RTP we accept.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RtpError {
    /// Too short, wrong version, bad padding or extension lengths.
    #[error("malformed RTP packet")]
    Malformed,
    /// An RTCP packet (payload types 72–76 in the second byte, RFC 5761 §4) on the RTP port.
    #[error("RTCP on the RTP port")]
    Rtcp,
}

/// The parts of a received packet the call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub marker: bool,
    pub payload: &'a [u8],
}

/// Reception statistics for one stream.
#[derive(Debug, Default, Clone)]
pub struct RtpReceiver {
    highest_seq: Option<u16>,
    pub received: u64,
    pub malformed: u64,
    /// Packets older than the highest seen (reordered or duplicated).
    pub out_of_order: u64,
    /// Gaps in sequence numbers (lost or not yet arrived).
    pub gaps: u64,
    last_arrival: Option<(Instant, u32)>,
    /// RFC 3550 §A.8 interarrival jitter, in timestamp units (1/8000 s).
    jitter: f64,
    /// Largest gap between two arrivals.
    pub max_interarrival: Duration,
}

impl RtpReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse and account for one datagram received at `now`.
    pub fn handle<'a>(&mut self, data: &'a [u8], now: Instant) -> Result<Received<'a>, RtpError> {
        if data.len() >= 2 && (200..=204).contains(&data[1]) {
            return Err(RtpError::Rtcp);
        }
        let r = match RtpReader::new(data) {
            Ok(r) if r.version() == 2 => r,
            _ => {
                self.malformed += 1;
                return Err(RtpError::Malformed);
            }
        };
        let seq: u16 = r.sequence_number().into();
        let ts = r.timestamp();
        self.received += 1;
        match self.highest_seq {
            None => self.highest_seq = Some(seq),
            Some(h) => {
                let delta = seq.wrapping_sub(h) as i16;
                if delta > 0 {
                    self.gaps += (delta - 1) as u64;
                    self.highest_seq = Some(seq);
                } else {
                    self.out_of_order += 1;
                }
            }
        }
        if let Some((t0, ts0)) = self.last_arrival {
            let arrival = now.saturating_duration_since(t0);
            self.max_interarrival = self.max_interarrival.max(arrival);
            let d = arrival.as_secs_f64() * 8000.0 - ts.wrapping_sub(ts0) as i32 as f64;
            self.jitter += (d.abs() - self.jitter) / 16.0;
        }
        self.last_arrival = Some((now, ts));
        Ok(Received {
            payload_type: r.payload_type(),
            seq,
            timestamp: ts,
            ssrc: r.ssrc(),
            marker: r.mark(),
            payload: r.payload(),
        })
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter / 8.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_every_20ms_with_seq_ts_and_marker() {
        let t0 = Instant::now();
        let mut s = RtpSender::new(0x1234, 65534, 4_294_967_000, Law::Ulaw, 0);
        s.play(Prompt::from_pcm("p", &[500; 320]));
        s.start(t0);
        let mut buf = [0u8; 256];
        let mut r = RtpReceiver::new();
        let mut pkts = vec![];
        for i in 0..5u32 {
            let now = t0 + PTIME * i;
            let n = s.poll_transmit(now, &mut buf).unwrap();
            assert!(s.poll_transmit(now, &mut buf).is_none(), "one per tick");
            let p = r.handle(&buf[..n], now).unwrap();
            pkts.push((p.seq, p.timestamp, p.marker, p.payload[0]));
        }
        assert_eq!(
            pkts[0],
            (65534, 4_294_967_000, true, crate::g711::ulaw_encode(500))
        );
        assert_eq!(pkts[1].0, 65535);
        assert_eq!(pkts[2].0, 0, "sequence wraps");
        assert_eq!(
            pkts[2].1,
            4_294_967_000u32.wrapping_add(320),
            "timestamp +160 per packet, wrapping"
        );
        assert!(!pkts[1].2);
        assert_eq!(
            pkts[2].3,
            crate::g711::ULAW_SILENCE,
            "silence after the prompt"
        );
        assert_eq!(
            s.poll_event(),
            Some(PlayoutEvent::Finished { name: "p".into() })
        );
        assert_eq!(r.gaps, 0);
        assert_eq!(r.out_of_order, 0);
        assert!(r.jitter_ms() < 0.01);
    }

    #[test]
    fn barge_in_and_catch_up() {
        let t0 = Instant::now();
        let mut s = RtpSender::new(1, 0, 0, Law::Alaw, 8);
        s.play(Prompt::from_pcm("long", &[500; 8000]));
        s.start(t0);
        let mut buf = [0u8; 256];
        s.poll_transmit(t0, &mut buf).unwrap();
        s.stop_playout();
        assert!(!s.is_playing());
        let n = s.poll_transmit(t0 + PTIME, &mut buf).unwrap();
        assert_eq!(buf[12..n][0], crate::g711::ALAW_SILENCE);
        // A 1 s stall: one packet, then back on schedule, timestamp jumped.
        let late = t0 + Duration::from_millis(1040);
        let n = s.poll_transmit(late, &mut buf).unwrap();
        let r = RtpReader::new(&buf[..n]).unwrap();
        assert!(r.mark());
        assert_eq!(r.timestamp(), 52 * 160);
        assert!(s.poll_transmit(late, &mut buf).is_none());
        assert_eq!(s.resyncs, 1);
    }

    #[test]
    fn rfc4733_digit_packets() {
        let t0 = Instant::now();
        let mut s = RtpSender::new(1, 0, 1000, Law::Ulaw, 0);
        assert!(
            !s.send_digit('5', Duration::from_millis(100)),
            "no event PT yet"
        );
        s.set_telephone_event(Some(101));
        assert!(s.send_digit('5', Duration::from_millis(100)));
        s.start(t0);
        let mut buf = [0u8; 256];
        let mut got = vec![];
        for i in 0..10u32 {
            let n = s.poll_transmit(t0 + PTIME * i, &mut buf).unwrap();
            let r = RtpReader::new(&buf[..n]).unwrap();
            got.push((
                r.payload_type(),
                r.mark(),
                r.timestamp(),
                r.payload().to_vec(),
            ));
        }
        // 5 packets of 20 ms with growing duration, end packet ×3, then audio.
        assert!(got[..7].iter().all(|g| g.0 == 101 && g.2 == 1000));
        assert!(got[0].1 && !got[1].1);
        let p = Rfc4733Payload::decode(&got[0].3).unwrap();
        assert_eq!((p.event, p.end, p.duration), (5, false, 160));
        for g in &got[4..7] {
            let p = Rfc4733Payload::decode(&g.3).unwrap();
            assert!(p.end);
            assert_eq!(p.duration, 800);
        }
        assert_eq!(got[7].0, 0);
        assert!(got[7].1, "marker on the first audio packet after the event");
        assert_eq!(got[7].2, 1000 + 7 * 160);
    }

    #[test]
    fn receiver_counts_gaps_reorder_and_garbage() {
        let now = Instant::now();
        let mut r = RtpReceiver::new();
        let mk = |seq: u16| {
            RtpPacketBuilder::new()
                .payload_type(0)
                .sequence(Seq::from(seq))
                .ssrc(9)
                .timestamp(seq as u32 * 160)
                .payload(&[0xFF; 160])
                .build()
                .unwrap()
        };
        for seq in [65533u16, 65534, 1, 0] {
            r.handle(&mk(seq), now).unwrap();
        }
        assert_eq!(r.gaps, 2, "65535 and 0 missing when 1 arrived");
        assert_eq!(r.out_of_order, 1);
        assert_eq!(r.handle(&[0x80], now), Err(RtpError::Malformed));
        assert_eq!(r.handle(&[0x00; 20], now), Err(RtpError::Malformed));
        assert_eq!(r.handle(&[0x80, 200, 0, 1], now), Err(RtpError::Rtcp));
        assert_eq!(r.malformed, 2);
    }
}
