//! Who answered — a person, an anti-fraud call recorder, an answering
//! machine, a network announcement, a fax, or nobody audible — and when
//! the first prompt may start, decided from what [`crate::listen`] hears
//! after the answer.
//!
//! Why: genki used to play its prompt the moment a call was answered. A
//! call recorder (自動通話録音機, lent to many older people in Japan)
//! answers first, plays 「この電話は防犯のため録音されます」 and then rings
//! the handset: the prompt played over the announcement and the ringback,
//! the person lifted the handset after the gather had timed out, and a
//! person who was well was reported as not responding. An answering
//! machine recorded half a prompt and was reported the same way.
//!
//! The rules (times from the answer; the defaults in [`AnswerParams`]):
//! - **silence**: nothing heard for `initial_silence` → prompt now;
//! - **human**: a short greeting (at most `greeting_max` of voice in at
//!   most `max_words` runs: 「はい」「もしもし」「はい、山田です」) then
//!   `after_greeting_silence` of quiet → prompt now;
//! - a longer greeting then a second of quiet → prompt (verdict
//!   **unknown**: a person who said more, or a machine without a beep);
//! - **recorder**: ringback (a 380–500 Hz tone of 0.7–1.3 s) after the
//!   answer: wait through it; when a voice follows the ringing (the person
//!   lifting the handset: 「もしもし」) or the ringing stops, prompt. A
//!   ringback heard *after* the prompt started (a recorder taken for a
//!   person) stops the prompt ([`Decision::Hold`]) and the script starts
//!   again when the person lifts the handset;
//! - **machine**: a beep (any other steady tone of 0.1–2.5 s) after a
//!   voice, or a greeting longer than `long_greeting` then quiet → leave the
//!   message ([`Decision::Machine`]);
//! - **announcement**: the special information tones (950, 1400, 1800 Hz
//!   in turn, ITU-T Q.35) or a busy tone after the answer → hang up;
//! - **fax**: CED (2100 Hz, ≥ 0.4 s) or CNG (1100 Hz, 0.35–0.8 s) → hang up.
//!
//! A verdict is evidence, never an outcome: "fine" still needs the
//! person's key, which no recorder, machine or announcement presses.
//!
//! Depends on: [`crate::listen`]. No IO, no clock (time is passed in).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::listen::{Heard, Sound};

/// Who (or what) answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnsweredBy {
    Human,
    /// A call recorder: an announcement, then ringback until the person
    /// lifts the handset.
    Recorder,
    /// An answering machine or voicemail.
    Machine,
    /// A network announcement (special information tones) or a busy tone.
    Announcement,
    Fax,
    /// Nothing was heard before the prompt.
    Silence,
    Unknown,
}

impl AnsweredBy {
    pub fn as_str(self) -> &'static str {
        match self {
            AnsweredBy::Human => "human",
            AnsweredBy::Recorder => "recorder",
            AnsweredBy::Machine => "machine",
            AnsweredBy::Announcement => "announcement",
            AnsweredBy::Fax => "fax",
            AnsweredBy::Silence => "silence",
            AnsweredBy::Unknown => "unknown",
        }
    }
}

/// What the call should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start (or, after [`Decision::Hold`], restart) the script.
    Prompt { by: AnsweredBy },
    /// Stop the prompt: a recorder's ringback is playing; a `Prompt`
    /// follows when the person lifts the handset.
    Hold,
    /// An answering machine finished its greeting (`beep`: with a beep):
    /// leave the message now.
    Machine { beep: bool },
    /// Nobody to talk to: hang up.
    HangUp { by: AnsweredBy },
}

#[derive(Debug, Clone, Copy)]
pub struct AnswerParams {
    pub initial_silence: Duration,
    pub greeting_max: Duration,
    pub max_words: u32,
    pub after_greeting_silence: Duration,
    /// Quiet after a greeting longer than `greeting_max`.
    pub after_long_greeting_silence: Duration,
    /// A greeting at least this long is a machine's (or a recorder's,
    /// if ringback follows).
    pub long_greeting: Duration,
    /// Quiet after a recorder's last ring that means the ringing stopped.
    pub ring_stopped: Duration,
    /// Quiet after the person's first words once the ringing stopped.
    pub after_lift_silence: Duration,
    /// The longest wait before the prompt when no recorder rings.
    pub max_wait: Duration,
    /// The longest a recorder may ring the handset.
    pub max_ringing: Duration,
    /// How many times a late-found recorder may restart the script.
    pub max_restarts: u32,
}

impl Default for AnswerParams {
    fn default() -> Self {
        AnswerParams {
            initial_silence: Duration::from_millis(2000),
            greeting_max: Duration::from_millis(1500),
            max_words: 3,
            after_greeting_silence: Duration::from_millis(700),
            after_long_greeting_silence: Duration::from_millis(1000),
            long_greeting: Duration::from_millis(3500),
            ring_stopped: Duration::from_millis(3300),
            after_lift_silence: Duration::from_millis(500),
            max_wait: Duration::from_secs(12),
            max_ringing: Duration::from_secs(45),
            max_restarts: 2,
        }
    }
}

/// A tone heard: its frequency, when it started (ms after the answer)
/// and how long it lasted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToneHeard {
    pub hz: u16,
    pub at_ms: u32,
    pub ms: u32,
}

/// What the verdict rests on (stored with the attempt).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    pub by: Option<AnsweredBy>,
    /// First sound after the answer (ms).
    pub first_sound_ms: Option<u32>,
    /// Voice before the first prompt (ms) and its runs.
    pub greeting_ms: u32,
    pub words: u32,
    /// Ringback heard after the answer (ms).
    pub ringback_ms: u32,
    /// Answer → first prompt (ms): what waiting costs the person.
    pub prompt_at_ms: Option<u32>,
    /// Voice after the prompt started (ms): a person who speaks.
    pub spoke_ms: u32,
    /// Times a late-found recorder restarted the script.
    pub restarts: u32,
    /// The first tones heard (at most [`MAX_TONES`]).
    pub tones: Vec<ToneHeard>,
}

pub const MAX_TONES: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the prompt: who is it?
    Listening,
    /// A recorder rings the handset.
    Ringing,
    /// The script runs.
    Prompting,
    /// Decided for good (machine, hang-up).
    Done,
}

/// One call's classifier, from its answer.
#[derive(Debug)]
pub struct AnswerClassifier {
    p: AnswerParams,
    answered: Instant,
    state: State,
    ev: Evidence,
    voice_since: Option<Instant>,
    tone_since: Option<(u16, Instant)>,
    /// End of the last sound.
    last_end: Option<Instant>,
    /// End of the recorder's last ring, and when the ringing began.
    last_ring: Option<Instant>,
    ringing_since: Option<Instant>,
    /// A voice began after the ringing (the person lifted the handset).
    lifted: bool,
    /// How far the special information tones have gone (0–2).
    sit: u8,
    busy: u32,
    decisions: VecDeque<Decision>,
}

fn within(hz: u16, lo: u16, hi: u16) -> bool {
    (lo..=hi).contains(&hz)
}

impl AnswerClassifier {
    pub fn new(p: AnswerParams, answered: Instant) -> AnswerClassifier {
        AnswerClassifier {
            p,
            answered,
            state: State::Listening,
            ev: Evidence::default(),
            voice_since: None,
            tone_since: None,
            last_end: None,
            last_ring: None,
            ringing_since: None,
            lifted: false,
            sit: 0,
            busy: 0,
            decisions: VecDeque::new(),
        }
    }

    pub fn evidence(&self) -> &Evidence {
        &self.ev
    }

    fn ms(&self, at: Instant) -> u32 {
        at.saturating_duration_since(self.answered).as_millis() as u32
    }

    /// What the listener heard (in order). Sounds from before the answer
    /// (early media) are not the answerer's and are ignored.
    pub fn heard(&mut self, h: Heard) {
        let at = match h {
            Heard::Start { at, .. } | Heard::End { at, .. } => at,
        };
        if at < self.answered || self.state == State::Done {
            return;
        }
        if self.ev.first_sound_ms.is_none() {
            self.ev.first_sound_ms = Some(self.ms(at));
        }
        match h {
            Heard::Start {
                sound: Sound::Voice,
                at,
            } => {
                self.voice_since = Some(at);
                if self.state == State::Ringing && self.last_ring.is_some() {
                    self.lifted = true;
                }
            }
            Heard::End {
                sound: Sound::Voice,
                at,
                ms,
            } => {
                self.voice_since = None;
                self.last_end = Some(at);
                match self.state {
                    State::Listening => {
                        self.ev.greeting_ms += ms;
                        self.ev.words += 1;
                    }
                    State::Prompting => self.ev.spoke_ms += ms,
                    _ => {}
                }
            }
            Heard::Start {
                sound: Sound::Tone { hz },
                at,
            } => self.tone_since = Some((hz, at)),
            Heard::End {
                sound: Sound::Tone { hz },
                at,
                ms,
            } => {
                self.tone_since = None;
                self.last_end = Some(at);
                if self.ev.tones.len() < MAX_TONES {
                    self.ev.tones.push(ToneHeard {
                        hz,
                        at_ms: self.ms(at).saturating_sub(ms),
                        ms,
                    });
                }
                self.tone(hz, ms, at);
            }
        }
    }

    fn tone(&mut self, hz: u16, ms: u32, at: Instant) {
        // Fax: CED, or CNG.
        if (within(hz, 2050, 2150) && ms >= 400)
            || (within(hz, 1050, 1150) && (350..=800).contains(&ms))
        {
            return self.finish(
                Decision::HangUp {
                    by: AnsweredBy::Fax,
                },
                AnsweredBy::Fax,
            );
        }
        // Special information tones, in turn (ITU-T Q.35: 950, 1400, 1800),
        // which open a network's announcement (a machine's beep comes
        // after a greeting instead).
        let sit_len = (200..=450).contains(&ms) && self.ev.words == 0;
        if sit_len && within(hz, 910, 990) {
            self.sit = 1;
            return;
        }
        if sit_len && self.sit == 1 && within(hz, 1350, 1450) {
            self.sit = 2;
            return;
        }
        if sit_len && self.sit == 2 && within(hz, 1750, 1850) {
            return self.finish(
                Decision::HangUp {
                    by: AnsweredBy::Announcement,
                },
                AnsweredBy::Announcement,
            );
        }
        self.sit = 0;
        if within(hz, 380, 500) {
            if (700..=1300).contains(&ms) {
                self.ev.ringback_ms += ms;
                self.last_ring = Some(at);
                self.lifted = false;
                match self.state {
                    State::Listening => {
                        self.state = State::Ringing;
                        self.ringing_since = Some(at);
                        self.ev.by = Some(AnsweredBy::Recorder);
                    }
                    State::Prompting if self.ev.restarts < self.p.max_restarts => {
                        self.state = State::Ringing;
                        self.ringing_since = Some(at);
                        self.ev.by = Some(AnsweredBy::Recorder);
                        self.decisions.push_back(Decision::Hold);
                    }
                    _ => {}
                }
                return;
            }
            if (300..700).contains(&ms) && self.state != State::Ringing {
                // Busy: 0.5 s on, 0.5 s off.
                self.busy += 1;
                if self.busy >= 2 {
                    self.finish(
                        Decision::HangUp {
                            by: AnsweredBy::Announcement,
                        },
                        AnsweredBy::Announcement,
                    );
                }
                return;
            }
        }
        // A beep after a greeting: an answering machine waits for the message.
        if self.state == State::Listening && (100..=2500).contains(&ms) && self.ev.words > 0 {
            self.finish(Decision::Machine { beep: true }, AnsweredBy::Machine);
        }
    }

    fn finish(&mut self, d: Decision, by: AnsweredBy) {
        self.ev.by = Some(by);
        self.state = State::Done;
        self.decisions.push_back(d);
    }

    fn prompt(&mut self, by: AnsweredBy, now: Instant) -> Decision {
        if self.ev.prompt_at_ms.is_none() {
            self.ev.prompt_at_ms = Some(self.ms(now));
        } else {
            self.ev.restarts += 1;
        }
        self.ev.by.get_or_insert(by);
        self.state = State::Prompting;
        Decision::Prompt {
            by: self.ev.by.unwrap_or(by),
        }
    }

    /// The person pressed a key before the prompt, or while a recorder's
    /// ringback held it: a person is there (no recorder, machine or
    /// announcement presses one) and the script runs from now.
    pub fn key_pressed(&mut self, now: Instant) {
        match self.state {
            State::Listening => {
                self.prompt(AnsweredBy::Human, now);
            }
            State::Ringing => {
                self.prompt(AnsweredBy::Recorder, now);
            }
            State::Prompting | State::Done => {}
        }
    }

    /// The next decision due at `now`, if any.
    pub fn poll(&mut self, now: Instant) -> Option<Decision> {
        if let Some(d) = self.decisions.pop_front() {
            return Some(d);
        }
        let busy = self.voice_since.is_some() || self.tone_since.is_some();
        let quiet_for = now.saturating_duration_since(self.last_end.unwrap_or(self.answered));
        match self.state {
            State::Listening => {
                if now.saturating_duration_since(self.answered) >= self.p.max_wait {
                    return Some(self.prompt(AnsweredBy::Unknown, now));
                }
                if busy {
                    return None;
                }
                let greeting = Duration::from_millis(u64::from(self.ev.greeting_ms));
                if self.ev.words == 0 {
                    if self.last_end.is_none() && quiet_for >= self.p.initial_silence {
                        return Some(self.prompt(AnsweredBy::Silence, now));
                    }
                    // Only tones so far (none that decided): as quiet.
                    if self.last_end.is_some() && quiet_for >= self.p.initial_silence {
                        return Some(self.prompt(AnsweredBy::Unknown, now));
                    }
                    return None;
                }
                if greeting <= self.p.greeting_max
                    && self.ev.words <= self.p.max_words
                    && quiet_for >= self.p.after_greeting_silence
                {
                    return Some(self.prompt(AnsweredBy::Human, now));
                }
                if greeting >= self.p.long_greeting {
                    if quiet_for >= self.p.after_long_greeting_silence * 2 {
                        self.finish(Decision::Machine { beep: false }, AnsweredBy::Machine);
                        return self.decisions.pop_front();
                    }
                    return None;
                }
                if quiet_for >= self.p.after_long_greeting_silence {
                    return Some(self.prompt(AnsweredBy::Unknown, now));
                }
                None
            }
            State::Ringing => {
                let since = self.ringing_since.unwrap_or(self.answered);
                if now.saturating_duration_since(since) >= self.p.max_ringing && !self.lifted {
                    // Nobody lifted the handset.
                    self.finish(
                        Decision::HangUp {
                            by: AnsweredBy::Recorder,
                        },
                        AnsweredBy::Recorder,
                    );
                    return self.decisions.pop_front();
                }
                if busy {
                    return None;
                }
                if self.lifted && quiet_for >= self.p.after_lift_silence {
                    return Some(self.prompt(AnsweredBy::Recorder, now));
                }
                let rung = now.saturating_duration_since(self.last_ring.unwrap_or(since));
                if rung >= self.p.ring_stopped && quiet_for >= self.p.after_lift_silence {
                    return Some(self.prompt(AnsweredBy::Recorder, now));
                }
                None
            }
            State::Prompting | State::Done => None,
        }
    }

    /// When [`Self::poll`] should next be called (besides after an event).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let after = |d: Duration| Some(self.last_end.unwrap_or(self.answered) + d);
        match self.state {
            State::Listening => {
                let cap = self.answered + self.p.max_wait;
                let t = if self.voice_since.is_some() || self.tone_since.is_some() {
                    None
                } else if self.ev.words == 0 {
                    after(self.p.initial_silence)
                } else if Duration::from_millis(u64::from(self.ev.greeting_ms))
                    >= self.p.long_greeting
                {
                    after(self.p.after_long_greeting_silence * 2)
                } else if Duration::from_millis(u64::from(self.ev.greeting_ms))
                    <= self.p.greeting_max
                    && self.ev.words <= self.p.max_words
                {
                    after(self.p.after_greeting_silence)
                } else {
                    after(self.p.after_long_greeting_silence)
                };
                Some(t.map_or(cap, |t| t.min(cap)))
            }
            State::Ringing => {
                let since = self.ringing_since.unwrap_or(self.answered);
                // While a voice or tone goes on, `poll` decides nothing but
                // the ringing's cap (and nothing at all once lifted): the
                // next instant to look is when it ends, which comes as an
                // event. An instant `poll` would not act on makes the call
                // loop spin on a deadline in the past.
                if self.voice_since.is_some() || self.tone_since.is_some() {
                    return (!self.lifted).then_some(since + self.p.max_ringing);
                }
                let cap = since + self.p.max_ringing;
                let t = if self.lifted {
                    after(self.p.after_lift_silence)
                } else {
                    self.last_ring.map(|r| {
                        (r + self.p.ring_stopped)
                            .max(self.last_end.unwrap_or(r) + self.p.after_lift_silence)
                    })
                };
                Some(t.map_or(cap, |t| t.min(cap)))
            }
            State::Prompting | State::Done => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listen::synth::*;
    use crate::listen::{Listener, FRAME};

    /// Play `pcm` as the far end from the answer on; poll every 20 ms;
    /// the decisions with their times (ms after the answer). `prompt_ms`:
    /// how long the engine's prompt lasts once started (ignored here).
    fn run(pcm: &[i16], tail_ms: u32) -> (Vec<(u32, Decision)>, Evidence) {
        let mut out = vec![];
        let c = drive(pcm, tail_ms, |c, t0, now| {
            while let Some(d) = c.poll(now) {
                out.push((((now - t0).as_millis()) as u32, d));
            }
        });
        (out, c.evidence().clone())
    }

    /// Feed `pcm` (then `tail_ms` of quiet) frame by frame from the
    /// answer on, calling `each` after every frame's sounds were heard.
    fn drive(
        pcm: &[i16],
        tail_ms: u32,
        mut each: impl FnMut(&mut AnswerClassifier, Instant, Instant),
    ) -> AnswerClassifier {
        let t0 = Instant::now();
        let mut l = Listener::default();
        let mut c = AnswerClassifier::new(AnswerParams::default(), t0);
        let frames = pcm.len() / FRAME + (tail_ms / 20) as usize;
        for i in 0..frames {
            let now = t0 + Duration::from_millis(20 * (i as u64 + 1));
            let f = pcm.get(i * FRAME..(i + 1) * FRAME).unwrap_or(&[0; FRAME]);
            l.feed(f, now);
            while let Some(h) = l.poll() {
                c.heard(h);
            }
            each(&mut c, t0, now);
        }
        c
    }

    fn cat(parts: &[Vec<i16>]) -> Vec<i16> {
        parts.concat()
    }

    /// Whenever `poll` has nothing to say, the next instant it names is not
    /// in the past (else the owner's loop would wake at once, forever).
    fn assert_timeouts_are_ahead(pcm: &[i16], tail_ms: u32) {
        drive(pcm, tail_ms, |c, t0, now| {
            while c.poll(now).is_some() {}
            if let Some(t) = c.poll_timeout() {
                assert!(t > now, "at {:?}: timeout {:?} ago", now - t0, now - t);
            }
        });
    }

    #[test]
    fn the_next_instant_to_look_is_never_in_the_past() {
        assert_timeouts_are_ahead(&quiet(500), 3000);
        assert_timeouts_are_ahead(&cat(&[quiet(300), voice(-22.0, 2, 1)]), 2000);
        // A recorder: its announcement, ringback (a tone going on while
        // the ringing's own deadlines pass), then the person.
        assert_timeouts_are_ahead(
            &cat(&[
                quiet(200),
                voice(-20.0, 18, 5),
                quiet(500),
                ringback_jp(-22.0, 3),
                voice(-24.0, 3, 9),
            ]),
            2000,
        );
        assert_timeouts_are_ahead(
            &cat(&[voice(-20.0, 16, 2), quiet(400), ringback_jp(-22.0, 2)]),
            6000,
        );
    }

    #[test]
    fn a_person_who_says_hai_hears_the_prompt_soon_after() {
        let (d, ev) = run(&cat(&[quiet(300), voice(-22.0, 2, 1)]), 2000);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(
            d[0].1,
            Decision::Prompt {
                by: AnsweredBy::Human
            }
        );
        // 300 ms + ~0.45 s of voice + 0.2 s hangover + 0.7 s of quiet.
        assert!((1400..=2000).contains(&d[0].0), "{d:?}");
        assert_eq!(ev.words, 1, "{ev:?}");
    }

    #[test]
    fn a_silent_answer_hears_the_prompt_after_two_seconds() {
        let (d, ev) = run(&quiet(500), 3000);
        assert_eq!(
            d,
            vec![(
                2000,
                Decision::Prompt {
                    by: AnsweredBy::Silence
                }
            )]
        );
        assert_eq!(ev.prompt_at_ms, Some(2000));
    }

    #[test]
    fn a_recorder_announcement_then_ringback_waits_for_the_person() {
        // 「この電話は防犯のため録音されます」 (~4 s), ringback ×3, then the
        // person: 「もしもし」.
        let pcm = cat(&[
            quiet(200),
            voice(-20.0, 18, 5),
            quiet(500),
            ringback_jp(-22.0, 3),
            voice(-24.0, 3, 9),
        ]);
        let lift_ms = (pcm.len() / 8) as u32 - 720;
        let (d, ev) = run(&pcm, 2000);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(
            d[0].1,
            Decision::Prompt {
                by: AnsweredBy::Recorder
            }
        );
        assert!(
            d[0].0 > lift_ms + 600,
            "after the person spoke: {d:?} (lift at {lift_ms})"
        );
        assert!(ev.ringback_ms >= 2700, "{ev:?}");
    }

    #[test]
    fn a_recorder_whose_person_lifts_silently_gets_the_prompt_when_the_ringing_stops() {
        let pcm = cat(&[voice(-20.0, 16, 2), quiet(400), ringback_jp(-22.0, 2)]);
        let (d, _) = run(&pcm, 6000);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(
            d[0].1,
            Decision::Prompt {
                by: AnsweredBy::Recorder
            }
        );
    }

    #[test]
    fn ringback_after_the_prompt_started_holds_it_and_restarts_on_lift() {
        // A short announcement taken for a person, then the ringback.
        let pcm = cat(&[
            voice(-20.0, 2, 4),
            quiet(900),
            ringback_jp(-22.0, 2),
            voice(-24.0, 2, 6),
        ]);
        let (d, ev) = run(&pcm, 2000);
        let kinds: Vec<_> = d.iter().map(|x| x.1).collect();
        assert_eq!(
            kinds,
            vec![
                Decision::Prompt {
                    by: AnsweredBy::Human
                },
                Decision::Hold,
                Decision::Prompt {
                    by: AnsweredBy::Recorder
                }
            ],
            "{d:?}"
        );
        assert_eq!(ev.restarts, 1);
    }

    #[test]
    fn a_machine_greeting_with_a_beep_gets_the_message_after_the_beep() {
        let pcm = cat(&[voice(-18.0, 22, 3), quiet(300), tone(1000.0, -15.0, 400)]);
        let (d, ev) = run(&pcm, 1000);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].1, Decision::Machine { beep: true });
        assert_eq!(ev.by, Some(AnsweredBy::Machine));
        assert!(ev.greeting_ms > 3000, "{ev:?}");
    }

    #[test]
    fn a_long_greeting_without_a_beep_is_a_machine_once_it_stops() {
        let (d, _) = run(&voice(-18.0, 30, 8), 3000);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].1, Decision::Machine { beep: false });
    }

    #[test]
    fn special_information_tones_and_fax_hang_up() {
        let sit = cat(&[
            tone(950.0, -18.0, 330),
            tone(1400.0, -18.0, 330),
            tone(1800.0, -18.0, 330),
            voice(-20.0, 10, 1),
        ]);
        let (d, _) = run(&sit, 500);
        assert_eq!(
            d,
            vec![(
                d[0].0,
                Decision::HangUp {
                    by: AnsweredBy::Announcement
                }
            )]
        );
        let ced = cat(&[quiet(200), tone(2100.0, -15.0, 2600)]);
        let (d, _) = run(&ced, 500);
        assert_eq!(
            d[0].1,
            Decision::HangUp {
                by: AnsweredBy::Fax
            }
        );
        let cng = cat(&[
            tone(1100.0, -15.0, 500),
            quiet(3000),
            tone(1100.0, -15.0, 500),
        ]);
        let (d, _) = run(&cng, 500);
        assert_eq!(
            d[0].1,
            Decision::HangUp {
                by: AnsweredBy::Fax
            }
        );
    }

    #[test]
    fn a_person_never_waits_longer_than_the_limit() {
        // Talking on and on with short pauses (never a second of quiet).
        let mut pcm = vec![];
        for s in 0..20 {
            pcm.extend(voice(-20.0, 3, s));
            pcm.extend(quiet(300));
        }
        let (d, _) = run(&pcm, 0);
        assert_eq!(
            d[0].1,
            Decision::Prompt {
                by: AnsweredBy::Unknown
            },
            "{d:?}"
        );
        assert!(d[0].0 <= 12_000, "{d:?}");
    }
}
