//! Audio kept beside the database: the early media a network played
//! before its final response (an announcement as 183 with SDP),
//! `<dir>/<check>-<attempt>-early.wav`, for classifying what answered and
//! for a coordinator to listen to why a number failed; and, where the
//! tenant asks for it (`record_answers_s`), the person's first seconds
//! after each prompt, `<check>-<attempt>-answer.wav`, for a coordinator to
//! listen to a spoken answer.
//!
//! Files, not database values: a few seconds of audio per failed attempt
//! would swell every read of attempts and every backup's hot path. They
//! follow the database's rules for personal data: erasing a person
//! removes theirs ([`AudioStore::forget_subscriber`], names start with
//! the person's id), and none outlives [`KEEP`], which is no longer than
//! the shortest retention a tenant may set (30 days).
//!
//! Depends on: genki-media (G.711, WAV), std.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use genki_media::Law;

/// The longest any early media is kept.
pub const KEEP: Duration = Duration::from_secs(30 * 24 * 3600);

/// Which audio of an attempt a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// What the network played before the answer.
    Early,
    /// The person after the prompts (the tenant's `record_answers_s`).
    Answer,
}

impl Kept {
    pub fn as_str(self) -> &'static str {
        match self {
            Kept::Early => "early",
            Kept::Answer => "answer",
        }
    }
}

/// Where early media is kept.
#[derive(Debug, Clone)]
pub struct AudioStore {
    dir: PathBuf,
}

impl AudioStore {
    pub fn new(dir: PathBuf) -> AudioStore {
        AudioStore { dir }
    }

    /// The file an attempt's early media is kept in.
    pub fn path(&self, name: &str) -> PathBuf {
        self.path_of(name, Kept::Early)
    }

    /// The file an attempt's audio of `kind` is kept in.
    pub fn path_of(&self, name: &str, kind: Kept) -> PathBuf {
        self.dir.join(format!("{name}-{}.wav", kind.as_str()))
    }

    /// Keep an attempt's early media.
    pub fn keep(&self, name: &str, law: Law, audio: &[u8]) -> std::io::Result<PathBuf> {
        self.keep_as(name, Kept::Early, law, audio)
    }

    /// Keep `audio` (G.711 in `law`) as `name`'s `kind` (written whole,
    /// then renamed, so a crash never leaves half a file under the name).
    pub fn keep_as(
        &self,
        name: &str,
        kind: Kept,
        law: Law,
        audio: &[u8],
    ) -> std::io::Result<PathBuf> {
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a file name",
            ));
        }
        std::fs::create_dir_all(&self.dir)?;
        let pcm: Vec<i16> = audio.iter().map(|b| law.decode(*b)).collect();
        let path = self.path_of(name, kind);
        let tmp = self.dir.join(format!(".{name}-{}.tmp", kind.as_str()));
        std::fs::write(&tmp, genki_media::wav::write_wav_8k(&pcm))?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }

    /// Remove every file of subscriber `id` (names begin `<id>-`).
    /// Returns how many.
    pub fn forget_subscriber(&self, id: u64) -> std::io::Result<usize> {
        let prefix = format!("{id}-");
        self.remove_where(|name, _| name.starts_with(&prefix))
    }

    /// Remove files older than `age`. Returns how many.
    pub fn prune_older_than(&self, age: Duration) -> std::io::Result<usize> {
        let now = SystemTime::now();
        self.remove_where(|_, path| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() >= age)
        })
    }

    fn remove_where(&self, pred: impl Fn(&str, &Path) -> bool) -> std::io::Result<usize> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut n = 0;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let path = e.path();
            if pred(&name, &path) && std::fs::remove_file(&path).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_per_attempt_and_forgotten_per_person() {
        let dir = std::env::temp_dir().join(format!("genki-audio-{}", std::process::id()));
        let a = AudioStore::new(dir.clone());
        let p = a.keep("7-s1795000000-1", Law::Ulaw, &[0xff; 800]).unwrap();
        let wav = std::fs::read(&p).unwrap();
        assert_eq!(
            genki_media::wav::read_wav_8k(&wav[..]).unwrap().len(),
            800,
            "100 ms at 8 kHz"
        );
        a.keep("70-o1795000000000-2", Law::Alaw, &[0xd5; 80])
            .unwrap();
        assert!(a.keep("../x", Law::Ulaw, &[]).is_err());
        assert_eq!(a.forget_subscriber(7).unwrap(), 1, "not person 70's");
        assert!(a.path("70-o1795000000000-2").exists());
        assert_eq!(a.prune_older_than(Duration::from_secs(3600)).unwrap(), 0);
        assert_eq!(a.prune_older_than(Duration::ZERO).unwrap(), 1);
        std::fs::remove_dir_all(&dir).ok();
    }
}
