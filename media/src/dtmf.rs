//! DTMF from the three transports a carrier may use, each reported with
//! the transport that carried it, and de-duplicated across them:
//! - RFC 4733 telephone-events ([`Rfc4733Receiver`]): one digit per event,
//!   however often its packets (and its end packet) are repeated;
//! - in-band tones ([`InbandDetector`]): a Goertzel detector after ITU-T Q.24;
//! - SIP INFO bodies ([`parse_info`]): `application/dtmf-relay` and `application/dtmf`.
//!
//! Also the sending side for the simulated phones: [`tone`] and [`info_body`].
//!
//! Written by hand: no maintained crate does this (the crates found are unmaintained or fix the block size).
//!
//! Depends on: nothing outside this crate. No IO, no clock (time is passed in).

use std::f64::consts::PI;
use std::time::{Duration, Instant};

/// How a digit arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtmfTransport {
    Rfc4733,
    Inband,
    Info,
}

impl DtmfTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            DtmfTransport::Rfc4733 => "rfc4733",
            DtmfTransport::Inband => "inband",
            DtmfTransport::Info => "info",
        }
    }
}

/// RFC 4733 §3.2 event code of a DTMF digit (0–9, * = 10, # = 11, A–D = 12–15).
pub fn event_code(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(12 + digit as u8 - b'A'),
        'a'..='d' => Some(12 + digit as u8 - b'a'),
        _ => None,
    }
}

/// The digit of an RFC 4733 event code.
pub fn digit_of(code: u8) -> Option<char> {
    match code {
        0..=9 => Some((b'0' + code) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + code - 12) as char),
        _ => None,
    }
}

/// The 4-byte telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc4733Payload {
    pub event: u8,
    /// E bit: the last packets of the event.
    pub end: bool,
    /// Power level, 0 to −63 dBm0, as a positive number (6 bits).
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl Rfc4733Payload {
    pub fn decode(b: &[u8]) -> Option<Rfc4733Payload> {
        if b.len() < 4 {
            return None;
        }
        Some(Rfc4733Payload {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    pub fn encode(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (if self.end { 0x80 } else { 0 }) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// Turns a stream of telephone-event payloads into digits, one per event.
/// An event is identified by its RTP timestamp (RFC 4733 §2.5.1.1: all
/// packets of one event carry the event's start timestamp), so repeated
/// start, update and end packets produce one digit.
#[derive(Debug, Default)]
pub struct Rfc4733Receiver {
    last: Option<(u32, u8)>,
}

impl Rfc4733Receiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// One telephone-event packet's payload and RTP timestamp.
    pub fn handle(&mut self, payload: &[u8], timestamp: u32) -> Option<char> {
        let p = Rfc4733Payload::decode(payload)?;
        let digit = digit_of(p.event)?;
        if self.last == Some((timestamp, p.event)) {
            return None;
        }
        self.last = Some((timestamp, p.event));
        Some(digit)
    }
}

/// The digit in a SIP INFO body (RFC 6086 carries it; the formats are
/// de facto): `application/dtmf-relay` with `Signal=1`, or
/// `application/dtmf` with the digit alone (some send `Signal=` there too).
pub fn parse_info(content_type: &str, body: &[u8]) -> Option<char> {
    let text = std::str::from_utf8(body).ok()?;
    let signal = text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
    });
    let value = match content_type.trim().to_ascii_lowercase().as_str() {
        "application/dtmf-relay" => signal?,
        "application/dtmf" => signal.unwrap_or(text.trim()),
        _ => return None,
    };
    // Some gateways send the event code ("10" for *, "11" for #).
    if let Ok(code @ 10..=15) = value.parse::<u8>() {
        return digit_of(code);
    }
    let mut chars = value.chars();
    let c = chars.next()?;
    if chars.next().is_some() {
        return None;
    }
    event_code(c).map(|_| c.to_ascii_uppercase())
}

/// An `application/dtmf-relay` body for a digit.
pub fn info_body(digit: char, duration: Duration) -> String {
    format!("Signal={digit}\r\nDuration={}\r\n", duration.as_millis())
}

const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// 8 kHz PCM of a DTMF digit's two tones (for the simulated phones and tests):
/// `ms` of tone at `amplitude` per tone, frequencies scaled by `1 + detune`.
pub fn tone(digit: char, ms: u32, amplitude: f64, detune: f64) -> Vec<i16> {
    let Some((r, c)) = KEYS.iter().enumerate().find_map(|(r, row)| {
        row.iter()
            .position(|k| *k == digit.to_ascii_uppercase())
            .map(|c| (r, c))
    }) else {
        return Vec::new();
    };
    let (f1, f2) = (ROWS[r] * (1.0 + detune), COLS[c] * (1.0 + detune));
    (0..(ms as usize * 8))
        .map(|i| {
            let t = i as f64 / 8000.0;
            (amplitude * ((2.0 * PI * f1 * t).sin() + (2.0 * PI * f2 * t).sin())) as i16
        })
        .collect()
}

/// Thresholds of the in-band detector (ITU-T Q.24 leaves values to each
/// administration; these accept NTT-style signalling and refuse speech).
#[derive(Debug, Clone, Copy)]
pub struct InbandParams {
    /// Minimum power of each tone, as the amplitude of a sine (≈ −36 dBm0 at 230).
    pub min_amplitude: f64,
    /// Largest allowed dB by which the high-group tone exceeds the low (Q.24 "normal" twist).
    pub max_normal_twist_db: f64,
    /// Largest allowed dB by which the low-group tone exceeds the high ("reverse" twist).
    pub max_reverse_twist_db: f64,
    /// The two tones must carry at least this share of the window's power.
    pub min_tone_share: f64,
    /// Each tone must exceed the others of its group by this many dB.
    pub min_peak_ratio_db: f64,
    /// Consecutive 20 ms windows (10 ms apart) a digit must be seen in.
    pub min_windows: u32,
    /// Consecutive windows without it before the next digit may start.
    pub min_gap_windows: u32,
}

impl Default for InbandParams {
    fn default() -> Self {
        InbandParams {
            min_amplitude: 230.0,
            max_normal_twist_db: 8.0,
            max_reverse_twist_db: 8.0,
            min_tone_share: 0.75,
            min_peak_ratio_db: 8.0,
            min_windows: 3,
            min_gap_windows: 2,
        }
    }
}

const WINDOW: usize = 160;
const HOP: usize = 80;

/// Goertzel power of `x` at `freq` (Hz), 8 kHz sampling.
fn goertzel(x: &[f32], freq: f64) -> f64 {
    let coeff = (2.0 * (2.0 * PI * freq / 8000.0).cos()) as f32;
    let (mut s1, mut s2) = (0f32, 0f32);
    for &v in x {
        let s0 = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) as f64
}

/// In-band DTMF detector: 20 ms Goertzel windows every 10 ms.
///
/// Q.24 points it follows: each tone must be within ±1.5% to be accepted
/// and is refused beyond ±3.5% (checked by comparing the nominal bin with
/// bins at ±3.5%: a tone nearer the off-nominal bin loses), limits on twist,
/// a minimum duration (three windows ≈ 40 ms of tone) and a minimum pause
/// between digits. Speech and music are refused because two pure tones must
/// carry most of the window's power and stand clear of their group.
#[derive(Debug)]
pub struct InbandDetector {
    params: InbandParams,
    /// The last 20 ms of samples; kept as integers so that the energy gate,
    /// which rejects nearly every window of a call (silence, speech pauses),
    /// costs one integer pass and no conversion.
    buf: [i16; WINDOW],
    filled: usize,
    candidate: Option<char>,
    hits: u32,
    misses: u32,
    reported: bool,
    /// The digit reported last must be absent this long before it counts again.
    armed: bool,
    /// Samples lost since the last analysed window ([`Self::gap`]), with
    /// those received between two losses and never analysed: a hole up to
    /// [`MAX_BRIDGE`] counts as the candidate digit if the next window
    /// shows it again.
    hole: usize,
    /// Windows of the candidate actually analysed (`hits` also counts
    /// bridged holes): a digit needs two, so a sender's timestamps that
    /// jump cannot make one window a key.
    seen: u32,
}

/// The longest loss bridged, in samples: three 20 ms packets. Tone before
/// and after such a hole is one key held (a person's press lasts 100 ms or
/// more); a longer hole is not guessed across.
const MAX_BRIDGE: usize = 480;

impl Default for InbandDetector {
    fn default() -> Self {
        Self::new(InbandParams::default())
    }
}

impl InbandDetector {
    pub fn new(params: InbandParams) -> Self {
        InbandDetector {
            params,
            buf: [0; WINDOW],
            filled: 0,
            candidate: None,
            hits: 0,
            misses: 0,
            reported: false,
            armed: true,
            hole: 0,
            seen: 0,
        }
    }

    /// `samples` of audio are missing here (RTP packets lost: the sender's
    /// timestamp jumped, RFC 3550 §5.1). Without this, the audio either
    /// side would be joined, and a window across the join — a phase jump
    /// in both tones — fails the tests and counts as absence; a key whose
    /// 120 ms lost three of its six packets went unheard, and a person who
    /// pressed 1 was stored as not answering.
    ///
    /// No window spans the hole. A hole of up to [`MAX_BRIDGE`] (what was
    /// lost, and what arrived between losses too short to analyse) between
    /// windows of the same digit counts as that digit (Q.24's minimum
    /// duration is of the tone sent, and a loss is not its absence). Every
    /// window still passes every test on its own and a key needs two
    /// analysed windows, so speech gains little from it (a talk-off test
    /// through loss checks it). A longer hole, or a new timeline (`usize::MAX`),
    /// starts the digit afresh.
    pub fn gap(&mut self, samples: usize) {
        // Audio received since the last window but not yet a window of its
        // own is lost to analysis as well.
        let unheard = if self.filled < WINDOW { self.filled } else { 0 };
        self.filled = 0;
        self.hole = self.hole.saturating_add(unheard).saturating_add(samples);
    }

    /// Feed samples (any count); returns a digit when one is recognised.
    pub fn feed(&mut self, samples: &[i16]) -> Option<char> {
        let mut out = None;
        for chunk in samples.chunks(HOP) {
            // Slide the window by the chunk (HOP samples at a time).
            let n = chunk.len();
            self.buf.copy_within(n.., 0);
            self.buf[WINDOW - n..].copy_from_slice(chunk);
            self.filled = (self.filled + n).min(WINDOW);
            if self.filled < WINDOW || n < HOP {
                continue;
            }
            let d = self.analyse();
            if let Some(digit) = self.step(d) {
                out = Some(digit);
            }
        }
        out
    }

    fn step(&mut self, d: Option<char>) -> Option<char> {
        let hole = std::mem::take(&mut self.hole);
        if hole > MAX_BRIDGE {
            // Too long to guess across: what follows starts afresh (still
            // not armed: a key held through the hole is not a second press).
            self.candidate = None;
            self.hits = 0;
            self.seen = 0;
        }
        // The hole, in windows, if the same digit shows on both sides of it.
        let bridge = if self.misses == 0 && hole <= MAX_BRIDGE {
            (hole / HOP) as u32
        } else {
            0
        };
        match d {
            Some(c) if Some(c) == self.candidate => {
                self.hits = self.hits.saturating_add(1 + bridge);
                self.seen = self.seen.saturating_add(1);
                self.misses = 0;
            }
            Some(c) => {
                self.candidate = Some(c);
                self.hits = 1;
                self.seen = 1;
                self.misses = 0;
                self.reported = false;
            }
            None => {
                self.misses = self.misses.saturating_add(1);
                if self.misses >= self.params.min_gap_windows {
                    self.candidate = None;
                    self.hits = 0;
                    self.seen = 0;
                    self.armed = true;
                    self.reported = false;
                }
            }
        }
        if self.armed
            && !self.reported
            && self.hits >= self.params.min_windows
            && self.seen >= self.params.min_windows.min(2)
        {
            self.reported = true;
            self.armed = false;
            return self.candidate;
        }
        None
    }

    fn analyse(&self) -> Option<char> {
        let n = WINDOW as f64;
        let energy: i64 = self.buf.iter().map(|v| *v as i64 * *v as i64).sum();
        let total = energy as f64 / n;
        // Per-sample power of a sine found at a bin: 2·P/N².
        let to_power = |p: f64| 2.0 * p / (n * n);
        let min_power = self.params.min_amplitude * self.params.min_amplitude / 2.0;
        if total < min_power {
            return None;
        }
        let mut x = [0f32; WINDOW];
        for (o, v) in x.iter_mut().zip(&self.buf) {
            *o = *v as f32;
        }
        let x = &x;
        let rows: Vec<f64> = ROWS.iter().map(|f| to_power(goertzel(x, *f))).collect();
        let cols: Vec<f64> = COLS.iter().map(|f| to_power(goertzel(x, *f))).collect();
        let best = |v: &[f64]| {
            let (i, p) = v
                .iter()
                .enumerate()
                .fold((0, 0.0), |a, (i, p)| if *p > a.1 { (i, *p) } else { a });
            let second = v
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| *p)
                .fold(0.0, f64::max);
            (i, p, second)
        };
        let (r, _, r2) = best(&rows);
        let (c, _, c2) = best(&cols);
        // Refine each candidate tone (Q.24 frequency tolerance): its power is
        // the best of the bins at nominal and ±1.5 %, and it must beat the
        // bins at ±3.5 %, which a tone beyond tolerance lands nearer to.
        let refine = |f: f64| -> Option<f64> {
            let accepted = [0.985, 1.0, 1.015]
                .iter()
                .map(|k| to_power(goertzel(x, f * k)))
                .fold(0.0, f64::max);
            let refused = [0.965, 1.035]
                .iter()
                .map(|k| to_power(goertzel(x, f * k)))
                .fold(0.0, f64::max);
            (accepted > refused).then_some(accepted)
        };
        let pr = refine(ROWS[r])?;
        let pc = refine(COLS[c])?;
        if pr < min_power || pc < min_power {
            return None;
        }
        let db = |a: f64, b: f64| 10.0 * (a / b.max(1e-9)).log10();
        if db(pc, pr) > self.params.max_normal_twist_db
            || db(pr, pc) > self.params.max_reverse_twist_db
        {
            return None;
        }
        if db(pr, r2) < self.params.min_peak_ratio_db || db(pc, c2) < self.params.min_peak_ratio_db
        {
            return None;
        }
        if (pr + pc) < self.params.min_tone_share * total {
            return None;
        }
        Some(KEYS[r][c])
    }
}

/// Merges digits from all transports into one sequence. A carrier that
/// sends a key both as RFC 4733 events and as audio (or INFO) must not
/// produce two digits: the same digit from a *different* transport within
/// `window` of the first report is dropped.
#[derive(Debug)]
pub struct DtmfCollector {
    window: Duration,
    last: Option<(char, DtmfTransport, Instant)>,
}

impl DtmfCollector {
    pub fn new(window: Duration) -> Self {
        DtmfCollector { window, last: None }
    }

    /// A digit from one transport at `now`; returns it when it is new.
    pub fn push(
        &mut self,
        digit: char,
        transport: DtmfTransport,
        now: Instant,
    ) -> Option<(char, DtmfTransport)> {
        if let Some((d, t, at)) = self.last {
            if d == digit && t != transport && now.saturating_duration_since(at) < self.window {
                return None;
            }
        }
        self.last = Some((digit, transport, now));
        Some((digit, transport))
    }
}

impl Default for DtmfCollector {
    fn default() -> Self {
        Self::new(Duration::from_millis(500))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect_all(samples: &[i16]) -> String {
        let mut d = InbandDetector::default();
        let mut out = String::new();
        for frame in samples.chunks(160) {
            if let Some(c) = d.feed(frame) {
                out.push(c);
            }
        }
        out
    }

    fn with_gaps(digits: &str, tone_ms: u32, gap_ms: u32, amp: f64, detune: f64) -> Vec<i16> {
        let mut v = vec![0i16; 400];
        for c in digits.chars() {
            v.extend(tone(c, tone_ms, amp, detune));
            v.extend(std::iter::repeat_n(0, gap_ms as usize * 8));
        }
        v
    }

    #[test]
    fn rfc4733_one_digit_per_event() {
        let mut r = Rfc4733Receiver::new();
        let p = |e, end, dur| {
            Rfc4733Payload {
                event: e,
                end,
                volume: 10,
                duration: dur,
            }
            .encode()
        };
        assert_eq!(r.handle(&p(1, false, 160), 1000), Some('1'));
        assert_eq!(r.handle(&p(1, false, 320), 1000), None);
        for _ in 0..3 {
            assert_eq!(
                r.handle(&p(1, true, 800), 1000),
                None,
                "repeated end packets"
            );
        }
        assert_eq!(
            r.handle(&p(1, false, 160), 3000),
            Some('1'),
            "same key again"
        );
        assert_eq!(r.handle(&p(11, true, 160), 5000), Some('#'));
        assert_eq!(
            r.handle(&p(16, false, 160), 7000),
            None,
            "flash is not a digit"
        );
        assert_eq!(r.handle(&[1, 2], 9000), None, "short payload");
    }

    #[test]
    fn info_bodies() {
        assert_eq!(
            parse_info("application/dtmf-relay", b"Signal=1\r\nDuration=160\r\n"),
            Some('1')
        );
        assert_eq!(
            parse_info("Application/DTMF-Relay", b"Signal= #\r\n"),
            Some('#')
        );
        assert_eq!(parse_info("application/dtmf", b"5"), Some('5'));
        assert_eq!(
            parse_info("application/dtmf-relay", b"Signal=10\r\n"),
            Some('*')
        );
        assert_eq!(parse_info("application/dtmf-relay", b"Duration=160"), None);
        assert_eq!(parse_info("text/plain", b"1"), None);
        assert_eq!(parse_info("application/dtmf", b"\xff"), None);
        assert_eq!(
            parse_info(
                "application/dtmf-relay",
                info_body('7', Duration::from_millis(100)).as_bytes()
            ),
            Some('7')
        );
    }

    #[test]
    fn inband_detects_every_key() {
        assert_eq!(
            detect_all(&with_gaps("1234567890*#ABCD", 80, 60, 4000.0, 0.0)),
            "1234567890*#ABCD"
        );
    }

    #[test]
    fn inband_q24_frequency_tolerance() {
        // Accept at ±1.5 %, refuse at ±3.5 %.
        assert_eq!(
            detect_all(&with_gaps("159#", 80, 60, 4000.0, 0.015)),
            "159#"
        );
        assert_eq!(
            detect_all(&with_gaps("159#", 80, 60, 4000.0, -0.015)),
            "159#"
        );
        assert_eq!(detect_all(&with_gaps("159#", 80, 60, 4000.0, 0.035)), "");
        assert_eq!(detect_all(&with_gaps("159#", 80, 60, 4000.0, -0.035)), "");
    }

    /// A key of 120 ms (six 20 ms packets) through every pattern of
    /// loss: told of the holes ([`InbandDetector::gap`]), the detector
    /// hears it whenever two of its packets arrive no more than three
    /// packets apart; joined without being told, two patterns more go
    /// unheard (a window across a join is a phase jump, not a tone).
    #[test]
    fn inband_hears_a_key_through_lost_packets() {
        let t = tone('1', 120, 6000.0, 0.0);
        let heard = |kept: u32, told: bool| {
            let mut d = InbandDetector::default();
            let silence = [0i16; 160];
            let mut got = String::new();
            let mut lost = 0;
            for i in 0..6 {
                if kept & (1 << i) == 0 {
                    lost += 1;
                    continue;
                }
                if lost > 0 && told {
                    d.gap(lost * 160);
                }
                lost = 0;
                got.extend(d.feed(&t[i * 160..(i + 1) * 160]));
            }
            for _ in 0..10 {
                got.extend(d.feed(&silence));
            }
            got
        };
        for kept in 0u32..64 {
            let first = kept.trailing_zeros();
            let last = 31 - kept.leading_zeros().min(31);
            // Two packets or more, the first two no more than 3 apart.
            let pairs_close = (0..6).any(|i| {
                kept & (1 << i) != 0 && (i + 1..(i + 5).min(6)).any(|j| kept & (1 << j) != 0)
            });
            let expect = if pairs_close { "1" } else { "" };
            assert_eq!(
                heard(kept, true),
                expect,
                "packets kept {kept:06b} (first {first}, last {last})"
            );
        }
        // Joined without being told: lost in between made two unheard.
        assert_eq!(heard(0b010001, false), "");
        assert_eq!(heard(0b010001, true), "1");
    }

    #[test]
    fn inband_duration_level_and_twist() {
        assert_eq!(
            detect_all(&with_gaps("1", 50, 60, 4000.0, 0.0)),
            "1",
            "50 ms tone"
        );
        assert_eq!(
            detect_all(&with_gaps("1", 20, 60, 4000.0, 0.0)),
            "",
            "20 ms blip"
        );
        assert_eq!(
            detect_all(&with_gaps("1", 80, 60, 100.0, 0.0)),
            "",
            "below −36 dBm0"
        );
        assert_eq!(
            detect_all(&with_gaps("11", 80, 60, 4000.0, 0.0)),
            "11",
            "repeated key after a pause"
        );
        // A long press is one digit.
        assert_eq!(detect_all(&with_gaps("5", 1500, 60, 4000.0, 0.0)), "5");
        // Twist: 6 dB accepted, 12 dB refused.
        let twisted = |db: f64| -> Vec<i16> {
            let g = 10f64.powf(-db / 20.0);
            let mut v = vec![0i16; 400];
            v.extend((0..800).map(|i| {
                let t = i as f64 / 8000.0;
                (4000.0 * (2.0 * PI * 697.0 * t).sin() + 4000.0 * g * (2.0 * PI * 1209.0 * t).sin())
                    as i16
            }));
            v.extend([0i16; 800]);
            v
        };
        assert_eq!(detect_all(&twisted(6.0)), "1");
        assert_eq!(detect_all(&twisted(12.0)), "");
    }

    #[test]
    fn inband_ignores_noise_music_and_tones_with_a_third_partner() {
        // White-ish noise (xorshift).
        let mut s = 0x1234_5678u32;
        let noise: Vec<i16> = (0..16000)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as i16) / 4
            })
            .collect();
        assert_eq!(detect_all(&noise), "");
        // A chord (A major: 440, 554, 659 Hz) with harmonics.
        let chord: Vec<i16> = (0..16000)
            .map(|i| {
                let t = i as f64 / 8000.0;
                let mut v = 0.0;
                for f in [440.0, 554.37, 659.25] {
                    for h in 1..4 {
                        v += 3000.0 / h as f64 * (2.0 * PI * f * h as f64 * t).sin();
                    }
                }
                v as i16
            })
            .collect();
        assert_eq!(detect_all(&chord), "");
        // DTMF pair plus a strong third tone (music hitting DTMF frequencies).
        let mixed: Vec<i16> = tone('5', 500, 3000.0, 0.0)
            .iter()
            .enumerate()
            .map(|(i, v)| v + (6000.0 * (2.0 * PI * 1000.0 * i as f64 / 8000.0).sin()) as i16)
            .collect();
        assert_eq!(detect_all(&mixed), "");
    }

    #[test]
    fn collector_dedups_across_transports_only() {
        let t0 = Instant::now();
        let mut c = DtmfCollector::default();
        assert_eq!(
            c.push('1', DtmfTransport::Rfc4733, t0),
            Some(('1', DtmfTransport::Rfc4733))
        );
        assert_eq!(
            c.push('1', DtmfTransport::Inband, t0 + Duration::from_millis(60)),
            None
        );
        assert_eq!(
            c.push('1', DtmfTransport::Rfc4733, t0 + Duration::from_millis(300)),
            Some(('1', DtmfTransport::Rfc4733)),
            "a second press on the same transport counts"
        );
        assert_eq!(
            c.push('1', DtmfTransport::Info, t0 + Duration::from_secs(2)),
            Some(('1', DtmfTransport::Info))
        );
    }
}

#[cfg(test)]
mod speech_tests {
    use super::*;

    /// The shipped Japanese prompts are speech: no digit may be heard in
    /// them, in either law after G.711 round trip.
    #[test]
    fn no_digits_in_the_default_prompts() {
        for (name, wav) in [
            (
                "greeting",
                &include_bytes!("../../prompts/greeting.wav")[..],
            ),
            ("thanks", &include_bytes!("../../prompts/thanks.wav")[..]),
            (
                "will_contact",
                &include_bytes!("../../prompts/will_contact.wav")[..],
            ),
            (
                "watcher_alert",
                &include_bytes!("../../prompts/watcher_alert.wav")[..],
            ),
            (
                "all_clear",
                &include_bytes!("../../prompts/all_clear.wav")[..],
            ),
        ] {
            let pcm = crate::wav::read_wav_8k(wav).unwrap();
            for law in [crate::Law::Ulaw, crate::Law::Alaw] {
                let coded: Vec<i16> = pcm.iter().map(|s| law.decode(law.encode(*s))).collect();
                let mut d = InbandDetector::default();
                let heard: String = coded.chunks(160).filter_map(|f| d.feed(f)).collect();
                assert_eq!(heard, "", "{name} ({law:?}) falsely detected");
            }
            // Through loss (10 % and 30 % of 20 ms packets, told to the
            // detector as holes): still no digit in speech.
            for loss in [10u64, 30] {
                let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ loss;
                let mut d = InbandDetector::default();
                let mut heard = String::new();
                let mut lost = 0;
                for f in pcm.chunks(160) {
                    seed = seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    if (seed >> 33) % 100 < loss {
                        lost += f.len();
                        continue;
                    }
                    if lost > 0 {
                        d.gap(lost);
                        lost = 0;
                    }
                    heard.extend(d.feed(f));
                }
                assert_eq!(heard, "", "{name} through {loss} % loss falsely detected");
            }
            // And a digit pressed over the prompt's end is still heard.
            let mut d = InbandDetector::default();
            let mut v = pcm[pcm.len() - 800..].to_vec();
            v.extend(tone('1', 100, 4000.0, 0.0));
            v.extend([0i16; 800]);
            let heard: String = v.chunks(160).filter_map(|f| d.feed(f)).collect();
            assert_eq!(heard, "1", "{name}");
        }
    }
}
