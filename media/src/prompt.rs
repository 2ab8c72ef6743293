//! Prompts: audio encoded once to G.711 and cut into 20 ms frames of 160
//! bytes, shared by reference (`Arc`) between every call that plays them.
//!
//! Depends on: [`crate::g711`]. No IO, no clock.

use std::sync::Arc;

use crate::g711::{alaw_encode, ulaw_encode, ALAW_SILENCE, ULAW_SILENCE};

/// Samples (and G.711 bytes) in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// The two G.711 laws (RFC 3551 §4.5.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    Ulaw,
    Alaw,
}

impl Law {
    pub fn silence(self) -> u8 {
        match self {
            Law::Ulaw => ULAW_SILENCE,
            Law::Alaw => ALAW_SILENCE,
        }
    }
    pub fn encode(self, s: i16) -> u8 {
        match self {
            Law::Ulaw => ulaw_encode(s),
            Law::Alaw => alaw_encode(s),
        }
    }
    pub fn decode(self, b: u8) -> i16 {
        match self {
            Law::Ulaw => crate::g711::ulaw_decode(b),
            Law::Alaw => crate::g711::alaw_decode(b),
        }
    }
}

#[derive(Debug)]
struct Encoded {
    name: String,
    ulaw: Vec<u8>,
    alaw: Vec<u8>,
}

/// A prompt ready to play: cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
pub struct Prompt(Arc<Encoded>);

impl Prompt {
    /// Encode 8 kHz PCM once for both laws; the last frame is padded with silence.
    pub fn from_pcm(name: &str, pcm: &[i16]) -> Prompt {
        let frames = pcm.len().div_ceil(FRAME_SAMPLES).max(1);
        let mut ulaw = Vec::with_capacity(frames * FRAME_SAMPLES);
        let mut alaw = Vec::with_capacity(frames * FRAME_SAMPLES);
        for s in pcm {
            ulaw.push(ulaw_encode(*s));
            alaw.push(alaw_encode(*s));
        }
        ulaw.resize(frames * FRAME_SAMPLES, ULAW_SILENCE);
        alaw.resize(frames * FRAME_SAMPLES, ALAW_SILENCE);
        Prompt(Arc::new(Encoded {
            name: name.to_string(),
            ulaw,
            alaw,
        }))
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Number of 20 ms frames.
    pub fn frames(&self) -> usize {
        self.0.ulaw.len() / FRAME_SAMPLES
    }

    pub fn duration_ms(&self) -> u64 {
        self.frames() as u64 * 20
    }

    /// Frame `i` (0-based) in the given law.
    pub fn frame(&self, law: Law, i: usize) -> &[u8] {
        let data = match law {
            Law::Ulaw => &self.0.ulaw,
            Law::Alaw => &self.0.alaw,
        };
        &data[i * FRAME_SAMPLES..(i + 1) * FRAME_SAMPLES]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_padded_and_shared() {
        let p = Prompt::from_pcm("x", &[1000; 161]);
        assert_eq!(p.frames(), 2);
        assert_eq!(p.duration_ms(), 40);
        assert_eq!(p.frame(Law::Ulaw, 1)[1], ULAW_SILENCE);
        assert_eq!(p.frame(Law::Alaw, 1)[0], alaw_encode(1000));
        let q = p.clone();
        assert!(std::ptr::eq(p.frame(Law::Ulaw, 0), q.frame(Law::Ulaw, 0)));
    }
}
