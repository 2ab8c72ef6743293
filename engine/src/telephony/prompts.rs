//! The default prompts, shipped inside the binary (Japanese, synthesised
//! with espeak-ng from kana; see prompts/README.md), and loading of prompt
//! files given on the command line.
//!
//! Depends on: genki-media.

use std::path::Path;

use genki_media::{wav, Prompt};

/// Name and WAV bytes of every default prompt.
pub const DEFAULTS: &[(&str, &[u8])] = &[
    ("greeting", include_bytes!("../../../prompts/greeting.wav")),
    ("thanks", include_bytes!("../../../prompts/thanks.wav")),
    (
        "will_contact",
        include_bytes!("../../../prompts/will_contact.wav"),
    ),
    ("invalid", include_bytes!("../../../prompts/invalid.wav")),
    (
        "goodbye_no_input",
        include_bytes!("../../../prompts/goodbye_no_input.wav"),
    ),
    (
        "watcher_alert",
        include_bytes!("../../../prompts/watcher_alert.wav"),
    ),
    (
        "all_clear",
        include_bytes!("../../../prompts/all_clear.wav"),
    ),
    (
        "watcher_menu",
        include_bytes!("../../../prompts/watcher_menu.wav"),
    ),
    (
        "alert_taken",
        include_bytes!("../../../prompts/alert_taken.wav"),
    ),
    (
        "alert_passed",
        include_bytes!("../../../prompts/alert_passed.wav"),
    ),
    (
        "alert_resolved",
        include_bytes!("../../../prompts/alert_resolved.wav"),
    ),
    (
        "checkin_menu",
        include_bytes!("../../../prompts/checkin_menu.wav"),
    ),
    (
        "unknown_caller",
        include_bytes!("../../../prompts/unknown_caller.wav"),
    ),
];

/// Why a prompt could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("cannot read prompt file {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("prompt file {path}: {error}")]
    Wav { path: String, error: wav::WavError },
    #[error("no default prompt named {0:?}")]
    UnknownDefault(String),
}

/// A default prompt by name, decoded and encoded once.
pub fn default_prompt(name: &str) -> Result<Prompt, PromptError> {
    let (_, bytes) = DEFAULTS
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| PromptError::UnknownDefault(name.to_string()))?;
    let pcm = wav::read_wav_8k(*bytes).map_err(|error| PromptError::Wav {
        path: format!("<built-in {name}>"),
        error,
    })?;
    Ok(Prompt::from_pcm(name, &pcm))
}

/// A prompt from a WAV file.
pub fn load_prompt(path: &Path) -> Result<Prompt, PromptError> {
    let p = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|error| PromptError::Io {
        path: p.clone(),
        error,
    })?;
    let pcm = wav::read_wav_8k(std::io::BufReader::new(f))
        .map_err(|error| PromptError::Wav { path: p, error })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "prompt".into());
    Ok(Prompt::from_pcm(&name, &pcm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_prompt_decodes() {
        for (name, _) in DEFAULTS {
            let p = default_prompt(name).unwrap();
            assert!(p.duration_ms() > 1000 && p.duration_ms() < 15000, "{name}");
        }
        assert!(default_prompt("nope").is_err());
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let e = load_prompt(Path::new("/nonexistent.wav")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent.wav"));
        let dir = std::env::temp_dir().join(format!("genki-prompt-{}", std::process::id()));
        std::fs::write(&dir, b"not a wav").unwrap();
        let e = load_prompt(&dir).unwrap_err();
        assert!(e.to_string().contains("not a readable WAV"), "{e}");
        std::fs::remove_file(&dir).ok();
    }
}
