//! What the far end sounds like, 20 ms at a time: quiet, a voice, or a
//! steady tone — and the runs of them ([`Heard`] events) from which
//! [`crate::answer`] decides who answered (a person, a call recorder, an
//! answering machine, a network announcement, a fax).
//!
//! Per frame of 160 samples (RFC 3551 §4.5.14: G.711 at 8 kHz, 20 ms):
//! - its power, against an adaptive noise floor: a frame is *quiet* below
//!   12 dB over the floor or below −50 dBov. The floor falls at once to a
//!   quieter frame and rises 1 dB/s; a sound that stays within 6 dB for
//!   half a second without being a tone (line hum, hiss, a fan) is taken
//!   for background and lifts the floor to it, since a voice comes in
//!   syllables whose power dips by more than that several times a second;
//! - for a frame that is not quiet, whether it is one *pure tone*: the
//!   frequency is estimated from the zero crossings (with a hysteresis
//!   band so that noise near zero does not count), then three Goertzel
//!   filters at and around it must hold at least 60 % of the frame's
//!   power. Ringback (Japan 400 Hz with 16 Hz modulation, Europe 425 Hz,
//!   North America 440+480 Hz), busy, fax CNG (1100 Hz) and CED (2100 Hz),
//!   special information tones (950/1400/1800 Hz) and answering-machine
//!   beeps all pass; speech, whose power spreads over harmonics and
//!   formants, does not;
//! - anything else above the floor is *voice*.
//!
//! Runs become [`Heard::Start`] and [`Heard::End`]: a voice after 60 ms,
//! ended by 200 ms of anything else (a word or a short phrase per run); a
//! tone after 60 ms of one frequency (±30 Hz), ended by 60 ms without it.
//!
//! Written by hand: the voice detectors in Rust (earshot, the WebRTC VAD
//! ports) cost more per frame than this whole module's budget at 2,000
//! calls (issue 14: under 10 % of genki's CPU), expect 16 kHz or 30 ms
//! frames, keep kilobytes per call, and do not tell a tone from a voice,
//! which is the distinction that matters here. Quiet frames — most of a
//! call — cost one integer pass; only frames with sound pay for the
//! filters.
//!
//! Depends on: nothing outside this crate. No IO, no clock (time is passed in).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Samples in one frame (20 ms at 8 kHz).
pub const FRAME: usize = 160;
const FRAME_MS: u32 = 20;

/// Full scale of 16-bit audio, squared: the power of 0 dBov.
const FULL_SCALE: f64 = 32768.0 * 32768.0;

/// What a run of frames was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sound {
    /// Speech, or any other sound that is neither quiet nor one steady tone.
    Voice,
    /// One steady tone, its frequency rounded to 10 Hz.
    Tone { hz: u16 },
}

/// A run of sound began or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// `sound` began at `at` (the start of its first frame).
    Start { sound: Sound, at: Instant },
    /// `sound` ended at `at` (the end of its last frame), `ms` long.
    End { sound: Sound, at: Instant, ms: u32 },
}

/// One frame's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Quiet,
    Voice,
    Tone(u16),
}

/// Tuning; the defaults are what the tests and the corpus use.
#[derive(Debug, Clone, Copy)]
pub struct ListenParams {
    /// Below this power (dBov) a frame is quiet whatever the floor.
    pub min_dbov: f64,
    /// A frame must be this many dB above the noise floor to be a sound.
    pub above_floor_db: f64,
    /// Share of a frame's power one tone must hold.
    pub tone_share: f64,
    /// Frames a voice or tone must last before it starts.
    pub start_frames: u32,
    /// Frames without it that end a voice.
    pub voice_hangover: u32,
    /// Frames without it that end a tone.
    pub tone_hangover: u32,
}

impl Default for ListenParams {
    fn default() -> Self {
        ListenParams {
            min_dbov: -50.0,
            above_floor_db: 12.0,
            tone_share: 0.6,
            start_frames: 3,
            voice_hangover: 10,
            tone_hangover: 3,
        }
    }
}

/// Frames of background kept to tell a steady noise from a voice (0.5 s).
const STEADY_FRAMES: usize = 25;

/// A run of one sound.
#[derive(Debug, Clone, Copy)]
struct Run {
    sound: Sound,
    start: Instant,
    /// End of the last frame that matched.
    last: Instant,
    frames: u32,
    /// Frames since the last that matched.
    misses: u32,
}

/// A listener on one stream's received audio.
#[derive(Debug)]
pub struct Listener {
    params: ListenParams,
    min_power: f64,
    above: f64,
    /// Noise floor, as mean power per sample.
    floor: f64,
    /// Powers of the last frames that were sound but not a tone.
    steady: VecDeque<f64>,
    /// The sound being heard (its Start reported).
    run: Option<Run>,
    /// Another sound, not long enough yet to start.
    candidate: Option<Run>,
    /// Samples of a frame not yet complete (packets need not be 20 ms).
    partial: Vec<i16>,
    events: VecDeque<Heard>,
}

impl Default for Listener {
    fn default() -> Self {
        Self::new(ListenParams::default())
    }
}

fn db_to_ratio(db: f64) -> f64 {
    10f64.powf(db / 10.0)
}

impl Listener {
    pub fn new(params: ListenParams) -> Listener {
        let min_power = FULL_SCALE * db_to_ratio(params.min_dbov);
        Listener {
            params,
            min_power,
            above: db_to_ratio(params.above_floor_db),
            floor: min_power / db_to_ratio(params.above_floor_db),
            steady: VecDeque::with_capacity(STEADY_FRAMES),
            run: None,
            candidate: None,
            partial: Vec::new(),
            events: VecDeque::new(),
        }
    }

    /// Feed decoded samples that end at `now` (any count; 20 ms frames are
    /// formed inside).
    pub fn feed(&mut self, samples: &[i16], now: Instant) {
        let mut rest = samples;
        // Time of the end of each complete frame: counted back from `now`.
        let total = self.partial.len() + samples.len();
        let mut frames_left = total / FRAME;
        if !self.partial.is_empty() {
            let need = FRAME - self.partial.len();
            if rest.len() < need {
                self.partial.extend_from_slice(rest);
                return;
            }
            let mut f = [0i16; FRAME];
            f[..self.partial.len()].copy_from_slice(&self.partial);
            f[self.partial.len()..].copy_from_slice(&rest[..need]);
            self.partial.clear();
            rest = &rest[need..];
            frames_left -= 1;
            let end = now - frame_dur(frames_left as u32) - sample_dur(rest.len() % FRAME);
            self.frame(&f, end);
        }
        while rest.len() >= FRAME {
            let (f, r) = rest.split_at(FRAME);
            rest = r;
            frames_left -= 1;
            let end = now - frame_dur(frames_left as u32) - sample_dur(rest.len() % FRAME);
            let f: &[i16; FRAME] = f.try_into().expect("a frame");
            self.frame(f, end);
        }
        self.partial.extend_from_slice(rest);
    }

    pub fn poll(&mut self) -> Option<Heard> {
        self.events.pop_front()
    }

    /// The noise floor now, in dBov (for evidence and tests).
    pub fn floor_dbov(&self) -> f64 {
        10.0 * (self.floor / FULL_SCALE).log10()
    }

    fn frame(&mut self, x: &[i16; FRAME], end: Instant) {
        let kind = self.kind(x);
        self.step(kind, end);
    }

    fn kind(&mut self, x: &[i16; FRAME]) -> Kind {
        let energy: i64 = x.iter().map(|&v| i64::from(v) * i64::from(v)).sum();
        let p = energy as f64 / FRAME as f64;
        if p < self.floor {
            self.floor = p.max(self.min_power / self.above);
        } else {
            // 1 dB a second.
            self.floor *= db_to_ratio(1.0 / 50.0);
        }
        if p < self.min_power || p < self.floor * self.above {
            self.steady.clear();
            return Kind::Quiet;
        }
        if let Some(hz) = pure_tone(x, p, self.params.tone_share) {
            self.steady.clear();
            return Kind::Tone(hz);
        }
        if self.steady.len() == STEADY_FRAMES {
            self.steady.pop_front();
        }
        self.steady.push_back(p);
        if self.steady.len() == STEADY_FRAMES {
            let (lo, hi) = self
                .steady
                .iter()
                .fold((f64::MAX, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            if hi < lo * db_to_ratio(6.0) {
                // Half a second without a syllable's dip: background.
                self.floor = lo;
                self.steady.clear();
                return Kind::Quiet;
            }
        }
        Kind::Voice
    }

    fn step(&mut self, kind: Kind, end: Instant) {
        let same = |sound: Sound| match (sound, kind) {
            (Sound::Voice, Kind::Voice) => true,
            (Sound::Tone { hz }, Kind::Tone(f)) => hz.abs_diff(f) <= 30,
            _ => false,
        };
        if let Some(run) = self.run.as_mut() {
            if same(run.sound) {
                run.last = end;
                run.misses = 0;
                self.candidate = None;
                return;
            }
            run.misses += 1;
        }
        // Another sound: a candidate, which ends the run only once it has
        // lasted long enough to start (one odd frame in a voice does not
        // cut it in two).
        let sound = match kind {
            Kind::Quiet => None,
            Kind::Voice => Some(Sound::Voice),
            Kind::Tone(hz) => Some(Sound::Tone { hz }),
        };
        match (sound, self.candidate.as_mut()) {
            (Some(_), Some(c)) if same(c.sound) => {
                c.frames += 1;
                c.last = end;
                c.misses = 0;
            }
            // One odd frame does not break a candidate (a modulated
            // ringback's dips, a vowel's pure frame).
            (_, Some(c)) if c.misses == 0 => c.misses = 1,
            (None, _) => self.candidate = None,
            (Some(sound), _) => {
                self.candidate = Some(Run {
                    sound,
                    start: end - frame_dur(1),
                    last: end,
                    frames: 1,
                    misses: 0,
                })
            }
        }
        if self
            .candidate
            .is_some_and(|c| c.frames >= self.params.start_frames)
        {
            self.end_run();
            let c = self.candidate.take().expect("a candidate");
            self.events.push_back(Heard::Start {
                sound: c.sound,
                at: c.start,
            });
            self.run = Some(c);
            return;
        }
        let hangover = |sound| match sound {
            Sound::Voice => self.params.voice_hangover,
            Sound::Tone { .. } => self.params.tone_hangover,
        };
        if self.run.is_some_and(|r| r.misses >= hangover(r.sound)) {
            self.end_run();
        }
    }

    fn end_run(&mut self) {
        if let Some(run) = self.run.take() {
            self.events.push_back(Heard::End {
                sound: run.sound,
                at: run.last,
                ms: (run.last - run.start).as_millis() as u32,
            });
        }
    }
}

fn frame_dur(frames: u32) -> Duration {
    Duration::from_millis(u64::from(frames * FRAME_MS))
}

fn sample_dur(samples: usize) -> Duration {
    Duration::from_micros(samples as u64 * 125)
}

/// The frequency of the one tone that holds `share` of the frame's power
/// `p` (mean per sample), if there is one, rounded to 10 Hz.
fn pure_tone(x: &[i16; FRAME], p: f64, share: f64) -> Option<u16> {
    // Zero crossings, with a hysteresis band of a quarter of the RMS so
    // that noise near zero does not count; the frequency from the mean
    // interval between them (intervals far from the median — a crossing
    // lost in a modulated tone's dip — left out).
    let band = (p.sqrt() / 4.0) as i32;
    let mut at = [0u16; FRAME];
    let mut n = 0usize;
    let mut sign = 0i8;
    for (i, &v) in x.iter().enumerate() {
        let v = i32::from(v);
        let s = if v > band {
            1
        } else if v < -band {
            -1
        } else {
            continue;
        };
        if sign != 0 && s != sign {
            at[n] = i as u16;
            n += 1;
        }
        sign = s;
    }
    // Below 250 Hz (fewer than ~10 crossings a frame) or above 3,400 Hz is
    // not a telephone tone.
    if n < 8 {
        return None;
    }
    let mut gaps = [0u16; FRAME];
    for i in 1..n {
        gaps[i - 1] = at[i] - at[i - 1];
    }
    let gaps = &mut gaps[..n - 1];
    gaps.sort_unstable();
    let median = f64::from(gaps[gaps.len() / 2]);
    // Intervals are whole samples: a 1,400 Hz tone's alternate 2 and 3.
    let window = (0.3 * median).max(1.0);
    let (sum, count) = gaps
        .iter()
        .map(|&g| f64::from(g))
        .filter(|g| (g - median).abs() <= window)
        .fold((0.0, 0u32), |(s, c), g| (s + g, c + 1));
    // A tone's crossings are evenly spaced; a voice's are not (most
    // voice frames end here, before any filter runs).
    if (count as usize) * 4 < gaps.len() * 3 {
        return None;
    }
    let half_period = sum / f64::from(count.max(1));
    let estimate = 8000.0 / (2.0 * half_period);
    if !(250.0..=3400.0).contains(&estimate) {
        return None;
    }
    let mut f = [0f32; FRAME];
    for (o, &v) in f.iter_mut().zip(x) {
        *o = f32::from(v);
    }
    // A 20 ms filter passes 88 % of a tone 10 Hz off, 57 % at 20 Hz: three
    // filters 10 Hz apart around the estimate.
    let freqs = [estimate - 10.0, estimate, estimate + 10.0];
    let powers = goertzel3(&f, freqs);
    let (best, at) =
        powers.iter().zip(freqs).fold(
            (0f64, estimate),
            |a, (&pw, fr)| if pw > a.0 { (pw, fr) } else { a },
        );
    // Per-sample power of a sine found by a filter: 2·P/N².
    let n = FRAME as f64;
    let tone_power = 2.0 * best / (n * n);
    (tone_power >= share * p).then(|| ((at / 10.0).round() * 10.0) as u16)
}

/// Goertzel power at three frequencies in one pass (the three recursions
/// are independent, so they run side by side).
fn goertzel3(x: &[f32; FRAME], freqs: [f64; 3]) -> [f64; 3] {
    let coeff = freqs.map(|f| (2.0 * (2.0 * std::f64::consts::PI * f / 8000.0).cos()) as f32);
    let mut s1 = [0f32; 3];
    let mut s2 = [0f32; 3];
    for &v in x {
        for k in 0..3 {
            let s0 = v + coeff[k] * s1[k] - s2[k];
            s2[k] = s1[k];
            s1[k] = s0;
        }
    }
    let mut out = [0f64; 3];
    for k in 0..3 {
        out[k] = f64::from(s1[k] * s1[k] + s2[k] * s2[k] - coeff[k] * s1[k] * s2[k]);
    }
    out
}

/// Test and corpus signals (also used by the simulated phones' tests).
pub mod synth {
    use std::f64::consts::PI;

    /// A sine of `hz` at `dbov`, `ms` long.
    pub fn tone(hz: f64, dbov: f64, ms: u32) -> Vec<i16> {
        let amp = 32768.0 * 10f64.powf(dbov / 20.0) * 2f64.sqrt();
        (0..ms * 8)
            .map(|i| (amp * (2.0 * PI * hz * f64::from(i) / 8000.0).sin()) as i16)
            .collect()
    }

    /// Japanese ringback: 400 Hz amplitude-modulated at 16 Hz, 1 s on and
    /// 2 s off, for `cycles` cycles.
    pub fn ringback_jp(dbov: f64, cycles: u32) -> Vec<i16> {
        let amp = 32768.0 * 10f64.powf(dbov / 20.0) * 2f64.sqrt();
        let mut out = Vec::new();
        for _ in 0..cycles {
            for i in 0..8000 {
                let t = f64::from(i) / 8000.0;
                let m = 0.5 + 0.5 * (2.0 * PI * 16.0 * t).sin();
                out.push((amp * m * (2.0 * PI * 400.0 * t).sin()) as i16);
            }
            out.extend(std::iter::repeat_n(0i16, 16000));
        }
        out
    }

    /// Silence.
    pub fn quiet(ms: u32) -> Vec<i16> {
        vec![0; (ms * 8) as usize]
    }

    /// White noise at `dbov` (a fixed seed: the same every run).
    pub fn noise(dbov: f64, ms: u32, seed: u64) -> Vec<i16> {
        let amp = 32768.0 * 10f64.powf(dbov / 20.0) * 3f64.sqrt();
        let mut s = seed | 1;
        (0..ms * 8)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let u = (s >> 11) as f64 / (1u64 << 53) as f64;
                (amp * (2.0 * u - 1.0)) as i16
            })
            .collect()
    }

    /// Something voice-like: a gliding 110–180 Hz pitch with its first
    /// twenty harmonics shaped by two moving formants, in syllables of
    /// about 180 ms with 40 ms dips between them; `syllables` of them.
    pub fn voice(dbov: f64, syllables: u32, seed: u64) -> Vec<i16> {
        let mut out: Vec<f64> = Vec::new();
        let mut phase = 0.0f64;
        let mut s = seed | 1;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        for syl in 0..syllables {
            let len = 1200 + (rnd() * 600.0) as usize;
            let f1 = 300.0 + rnd() * 500.0;
            let f2 = 900.0 + rnd() * 1400.0;
            let f0a = 110.0 + rnd() * 70.0;
            let f0b = 110.0 + rnd() * 70.0;
            for i in 0..len {
                let t = i as f64 / len as f64;
                let f0 = f0a + (f0b - f0a) * t;
                phase += 2.0 * PI * f0 / 8000.0;
                let env = (PI * t).sin().powf(0.6);
                let mut v = 0.0;
                for h in 1..=20 {
                    let fh = f0 * f64::from(h);
                    if fh > 3400.0 {
                        break;
                    }
                    let g = 1.0 / (1.0 + ((fh - f1) / 150.0).powi(2))
                        + 0.6 / (1.0 + ((fh - f2) / 200.0).powi(2));
                    v += g * (phase * f64::from(h)).sin();
                }
                out.push(env * v + (rnd() - 0.5) * 0.05);
            }
            if syl + 1 < syllables {
                out.extend(std::iter::repeat_n(0.0, 320));
            }
        }
        let rms = (out.iter().map(|v| v * v).sum::<f64>() / out.len().max(1) as f64).sqrt();
        let target = 32768.0 * 10f64.powf(dbov / 20.0);
        out.iter()
            .map(|v| (v / rms.max(1e-9) * target).clamp(-32768.0, 32767.0) as i16)
            .collect()
    }

    /// `a` with `b` added sample by sample (the longer one's length).
    pub fn mix(a: &[i16], b: &[i16]) -> Vec<i16> {
        (0..a.len().max(b.len()))
            .map(|i| {
                let v = i32::from(a.get(i).copied().unwrap_or(0))
                    + i32::from(b.get(i).copied().unwrap_or(0));
                v.clamp(-32768, 32767) as i16
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::synth::*;
    use super::*;

    /// Feed `pcm` in 20 ms packets from `t0`; every event.
    fn listen(pcm: &[i16], t0: Instant) -> Vec<Heard> {
        let mut l = Listener::default();
        let mut out = vec![];
        for (i, p) in pcm.chunks(FRAME).enumerate() {
            l.feed(p, t0 + frame_dur(i as u32 + 1));
            while let Some(e) = l.poll() {
                out.push(e);
            }
        }
        out
    }

    fn ends(ev: &[Heard]) -> Vec<(Sound, u32)> {
        ev.iter()
            .filter_map(|e| match e {
                Heard::End { sound, ms, .. } => Some((*sound, *ms)),
                _ => None,
            })
            .collect()
    }

    fn ms_since(t0: Instant, at: Instant) -> u64 {
        (at - t0).as_millis() as u64
    }

    #[test]
    fn tones_are_heard_with_their_frequency_and_length() {
        let t0 = Instant::now();
        for hz in [400.0, 425.0, 950.0, 1000.0, 1100.0, 1400.0, 1800.0, 2100.0] {
            for level in [-10.0, -25.0, -40.0] {
                let mut pcm = quiet(300);
                pcm.extend(tone(hz, level, 500));
                pcm.extend(quiet(300));
                let ev = listen(&pcm, t0);
                let e = ends(&ev);
                assert_eq!(e.len(), 1, "{hz} Hz at {level}: {ev:?}");
                let Sound::Tone { hz: got } = e[0].0 else {
                    panic!("{hz} Hz at {level}: {ev:?}")
                };
                assert!(
                    (f64::from(got) - hz).abs() <= 25.0,
                    "{hz} Hz heard as {got}"
                );
                assert!((460..=520).contains(&e[0].1), "{hz} Hz: {} ms", e[0].1);
                let Heard::Start { at, .. } = ev[0] else {
                    panic!("{ev:?}")
                };
                assert!((280..=320).contains(&ms_since(t0, at)), "{ev:?}");
            }
        }
    }

    #[test]
    fn japanese_ringback_is_one_tone_a_second_every_three() {
        let t0 = Instant::now();
        let ev = listen(&ringback_jp(-20.0, 3), t0);
        let e = ends(&ev);
        assert_eq!(e.len(), 3, "{ev:?}");
        for (sound, ms) in e {
            assert!(
                matches!(sound, Sound::Tone { hz } if (380..=420).contains(&hz)),
                "{sound:?}"
            );
            assert!((900..=1020).contains(&ms), "{ms} ms");
        }
    }

    #[test]
    fn a_voice_is_a_voice_and_never_a_tone() {
        let t0 = Instant::now();
        for seed in 1..=20 {
            for level in [-15.0, -30.0, -42.0] {
                let mut pcm = quiet(500);
                pcm.extend(voice(level, 6, seed));
                pcm.extend(quiet(600));
                let ev = listen(&pcm, t0);
                assert!(
                    ev.iter().all(|e| matches!(
                        e,
                        Heard::Start {
                            sound: Sound::Voice,
                            ..
                        } | Heard::End {
                            sound: Sound::Voice,
                            ..
                        }
                    )),
                    "seed {seed} at {level}: {ev:?}"
                );
                let spoken: u32 = ends(&ev).iter().map(|e| e.1).sum();
                // Six syllables of ~190 ms with 40 ms dips: one run or a few.
                assert!(
                    (900..=1600).contains(&spoken),
                    "seed {seed} at {level}: {spoken} ms: {ev:?}"
                );
            }
        }
    }

    #[test]
    fn quiet_and_steady_noise_are_not_sounds_but_a_voice_over_noise_is() {
        let t0 = Instant::now();
        assert!(listen(&quiet(3000), t0).is_empty());
        // Hiss at −45 dBov: under the absolute gate.
        assert!(listen(&noise(-55.0, 3000, 7), t0).is_empty());
        // A louder steady noise: at most one short run before the floor
        // learns it, then nothing.
        let ev = listen(&noise(-35.0, 4000, 9), t0);
        let e = ends(&ev);
        assert!(e.len() <= 1 && e.iter().all(|x| x.1 <= 600), "{ev:?}");
        // A voice 15 dB over that noise is heard once the floor knows it.
        let mut pcm = noise(-35.0, 2000, 9);
        let talk = mix(&noise(-35.0, 2000, 11), &voice(-20.0, 6, 3));
        pcm.extend(talk);
        pcm.extend(noise(-35.0, 1000, 13));
        let ev = listen(&pcm, t0);
        let late: Vec<_> = ev
            .iter()
            .filter(|e| matches!(e, Heard::Start { sound: Sound::Voice, at } if ms_since(t0, *at) >= 1900))
            .collect();
        assert!(!late.is_empty(), "{ev:?}");
    }

    #[test]
    fn packets_of_any_size_give_the_same_events_at_the_same_times() {
        let t0 = Instant::now();
        let mut pcm = quiet(200);
        pcm.extend(tone(1400.0, -20.0, 400));
        pcm.extend(quiet(200));
        let whole = listen(&pcm, t0);
        let mut l = Listener::default();
        let mut odd = vec![];
        let mut fed = 0usize;
        for p in pcm.chunks(240) {
            fed += p.len();
            l.feed(p, t0 + sample_dur(fed));
            while let Some(e) = l.poll() {
                odd.push(e);
            }
        }
        assert_eq!(whole, odd);
    }
}
