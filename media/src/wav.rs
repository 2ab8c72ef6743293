//! Reading prompt audio from WAV (via `hound`) into 8 kHz mono 16-bit PCM,
//! the form every prompt is kept in before G.711 encoding.
//!
//! Accepted: PCM integer 8/16/24/32-bit and IEEE float 32-bit, any channel
//! count (mixed down to mono), any sample rate from 4 kHz to 192 kHz
//! (resampled to 8 kHz: a box low-pass over each output period when
//! downsampling, linear interpolation when upsampling — adequate for speech
//! prompts, which are band-limited to telephone quality anyway).
//! Refused with a clear [`WavError`]: μ-law/A-law WAV (hound cannot read
//! them), empty audio, prompts longer than [`MAX_SECONDS`].
//!
//! Depends on: hound. No IO beyond the reader handed in, no clock.

use std::io::Read;

use thiserror::Error;

/// Longest prompt accepted, in seconds; bounds memory per prompt (~1 MB of G.711 per codec).
pub const MAX_SECONDS: u32 = 120;

/// Why a WAV file cannot be used as a prompt.
#[derive(Debug, Error)]
pub enum WavError {
    /// Not a RIFF/WAVE file, or truncated header.
    #[error("not a readable WAV file: {0}")]
    NotWav(String),
    /// A sample format hound cannot decode (μ-law/A-law WAV, ADPCM…).
    #[error("unsupported WAV encoding ({0}); convert it to 16-bit PCM, e.g. `sox in.wav -e signed -b 16 -r 8000 -c 1 out.wav`")]
    UnsupportedFormat(String),
    /// Sample rate outside 4–192 kHz.
    #[error("unsupported sample rate {0} Hz (4000–192000 accepted)")]
    UnsupportedRate(u32),
    /// No samples.
    #[error("the WAV file has no audio")]
    Empty,
    /// Longer than [`MAX_SECONDS`].
    #[error("prompt is {0} s long; at most {MAX_SECONDS} s is accepted")]
    TooLong(u32),
    /// The sample data ends early or is corrupt.
    #[error("corrupt WAV sample data: {0}")]
    Corrupt(String),
}

/// Decode a WAV file to 8 kHz mono i16 samples.
pub fn read_wav_8k<R: Read>(reader: R) -> Result<Vec<i16>, WavError> {
    let mut r = hound::WavReader::new(reader).map_err(|e| match e {
        hound::Error::Unsupported => {
            WavError::UnsupportedFormat("not integer PCM or IEEE float".into())
        }
        other => WavError::NotWav(other.to_string()),
    })?;
    let spec = r.spec();
    if !(4000..=192_000).contains(&spec.sample_rate) {
        return Err(WavError::UnsupportedRate(spec.sample_rate));
    }
    let channels = spec.channels.max(1) as usize;
    let frames = r.duration();
    if frames == 0 {
        return Err(WavError::Empty);
    }
    let secs = frames / spec.sample_rate;
    if secs > MAX_SECONDS {
        return Err(WavError::TooLong(secs));
    }
    let corrupt = |e: hound::Error| WavError::Corrupt(e.to_string());
    // Samples as f32 in [-1, 1].
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => r
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(corrupt)?,
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(corrupt)?
        }
        (f, b) => return Err(WavError::UnsupportedFormat(format!("{f:?} {b}-bit"))),
    };
    let mono: Vec<f32> = interleaved
        .chunks(channels)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect();
    if mono.is_empty() {
        return Err(WavError::Empty);
    }
    let out = resample_to_8k(&mono, spec.sample_rate);
    Ok(out
        .into_iter()
        .map(|v| (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect())
}

fn resample_to_8k(x: &[f32], rate: u32) -> Vec<f32> {
    if rate == 8000 {
        return x.to_vec();
    }
    let ratio = rate as f64 / 8000.0;
    let n_out = ((x.len() as f64) / ratio).floor().max(1.0) as usize;
    let mut out = Vec::with_capacity(n_out);
    for i in 0..n_out {
        let center = i as f64 * ratio;
        if ratio > 1.0 {
            let lo = (center - ratio / 2.0).max(0.0) as usize;
            let hi = ((center + ratio / 2.0).ceil() as usize).min(x.len());
            let hi = hi.max(lo + 1).min(x.len());
            let s: f32 = x[lo..hi].iter().sum();
            out.push(s / (hi - lo) as f32);
        } else {
            let j = center.floor() as usize;
            let frac = (center - j as f64) as f32;
            let a = x[j.min(x.len() - 1)];
            let b = x[(j + 1).min(x.len() - 1)];
            out.push(a + (b - a) * frac);
        }
    }
    out
}

/// Write 8 kHz mono 16-bit PCM as a WAV file (for tools and tests).
pub fn write_wav_8k(samples: &[i16]) -> Vec<u8> {
    let mut cur = std::io::Cursor::new(Vec::new());
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(&mut cur, spec).expect("in-memory WAV writer");
        for s in samples {
            w.write_sample(*s).expect("in-memory write");
        }
        w.finalize().expect("in-memory finalize");
    }
    cur.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(rate: u32, channels: u16, bits: u16, n: usize, f: impl Fn(usize) -> i32) -> Vec<u8> {
        let mut cur = std::io::Cursor::new(Vec::new());
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(&mut cur, spec).unwrap();
        for i in 0..n {
            for _ in 0..channels {
                w.write_sample(f(i)).unwrap();
            }
        }
        w.finalize().unwrap();
        cur.into_inner()
    }

    #[test]
    fn reads_8k_mono_exactly() {
        let w = write_wav_8k(&[0, 1000, -1000, 32767]);
        assert_eq!(read_wav_8k(&w[..]).unwrap(), vec![0, 1000, -1000, 32767]);
    }

    #[test]
    fn resamples_and_downmixes() {
        // 1 s of 16 kHz stereo 400 Hz tone → 8000 samples at 8 kHz, same frequency.
        let w = wav(16000, 2, 16, 16000, |i| {
            (10000.0 * (2.0 * std::f64::consts::PI * 400.0 * i as f64 / 16000.0).sin()) as i32
        });
        let s = read_wav_8k(&w[..]).unwrap();
        assert_eq!(s.len(), 8000);
        let crossings = s.windows(2).filter(|p| p[0] < 0 && p[1] >= 0).count();
        assert!((398..=402).contains(&crossings), "{crossings}");
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        assert!(matches!(
            read_wav_8k(&b"RIFFxxxxWAVE"[..]),
            Err(WavError::NotWav(_))
        ));
        assert!(matches!(
            read_wav_8k(&b"hello"[..]),
            Err(WavError::NotWav(_))
        ));
        assert!(matches!(
            read_wav_8k(&wav(8000, 1, 16, 0, |_| 0)[..]),
            Err(WavError::Empty)
        ));
        assert!(matches!(
            read_wav_8k(&wav(2000, 1, 16, 10, |_| 0)[..]),
            Err(WavError::UnsupportedRate(2000))
        ));
        assert!(matches!(
            read_wav_8k(&wav(8000, 1, 8, 8000 * (MAX_SECONDS as usize + 1), |_| 0)[..]),
            Err(WavError::TooLong(_))
        ));
        // A μ-law WAV (format tag 7) is refused with advice, not misread.
        let mut mulaw = write_wav_8k(&[0; 16]);
        mulaw[20] = 7;
        mulaw[34] = 8;
        let e = read_wav_8k(&mulaw[..]).unwrap_err();
        assert!(e.to_string().contains("sox"), "{e}");
    }
}
