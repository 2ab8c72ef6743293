//! Secrets genki must keep in its database but not in the clear: the
//! watchers' webhook secrets (genki signs each POST with one, so it needs
//! the secret itself, not a hash). They are sealed with ChaCha20-Poly1305
//! (RFC 8439) under a 256-bit key that is not in the database: from
//! `[storage] secret_key` (64 hex digits, or the environment's
//! `GENKI_STORAGE_SECRET_KEY`), else a key genki generates once into
//! `<storage.path>/secret-key` (mode 0600, beside `db/`, never inside it:
//! a copy of the database or a backup of it alone does not reveal them).
//!
//! Stored form: `sealed1:` + base64(nonce ‖ ciphertext+tag), a random
//! 96-bit nonce each time. A value without the prefix is an older, plain
//! secret: it is still read, and sealed at the next start
//! ([`SecretBox::is_sealed`]).
//!
//! Depends on: chacha20poly1305, base64, rand.

use std::path::Path;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

const PREFIX: &str = "sealed1:";
/// Binds a sealed value to what it is (RFC 8439 §2.8 additional data).
const AAD: &[u8] = b"genki webhook_secret v1";

/// Why a secret could not be sealed, opened or its key loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("[storage] secret_key: 64 hex digits (a 256-bit key) expected")]
    BadKey,
    #[error("secret key file {path}: {error}")]
    KeyFile { path: String, error: std::io::Error },
    #[error("a sealed secret cannot be opened with this key (another [storage] secret_key?)")]
    WrongKey,
}

/// The sealing key.
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(********)")
    }
}

fn parse_hex(s: &str) -> Result<[u8; 32], SecretError> {
    let s = s.trim();
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SecretError::BadKey);
    }
    let mut k = [0u8; 32];
    for (i, k) in k.iter_mut().enumerate() {
        *k = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| SecretError::BadKey)?;
    }
    Ok(k)
}

impl SecretBox {
    fn new(key: [u8; 32]) -> SecretBox {
        SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// The key from the configuration (64 hex digits).
    pub fn from_hex(hex: &str) -> Result<SecretBox, SecretError> {
        Ok(SecretBox::new(parse_hex(hex)?))
    }

    /// A random key for this process only (tests).
    pub fn ephemeral() -> SecretBox {
        SecretBox::new(rand::random())
    }

    /// `<dir>/secret-key`, created (mode 0600) with a random key when missing.
    pub fn load_or_create(dir: &Path) -> Result<SecretBox, SecretError> {
        let path = dir.join("secret-key");
        let err = |error| SecretError::KeyFile {
            path: path.display().to_string(),
            error,
        };
        if let Ok(t) = std::fs::read_to_string(&path) {
            return SecretBox::from_hex(&t);
        }
        let key: [u8; 32] = rand::random();
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        use std::io::Write;
        let mut f = opts.open(&path).map_err(err)?;
        f.write_all(hex.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        Ok(SecretBox::new(key))
    }

    /// Seal a secret for storage.
    pub fn seal(&self, plain: &str) -> String {
        let nonce: [u8; 12] = rand::random();
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: AAD,
                },
            )
            .expect("ChaCha20-Poly1305 seals any message under 256 GiB");
        let mut out = nonce.to_vec();
        out.extend(ct);
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        )
    }

    /// The secret a stored value holds (an older plain one as it is).
    pub fn open(&self, stored: &str) -> Result<String, SecretError> {
        let Some(b64) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| SecretError::WrongKey)?;
        if raw.len() < 12 + 16 {
            return Err(SecretError::WrongKey);
        }
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(&raw[..12]),
                Payload {
                    msg: &raw[12..],
                    aad: AAD,
                },
            )
            .map_err(|_| SecretError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| SecretError::WrongKey)
    }

    /// Whether a stored value is sealed (not an older plain secret).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_with_their_key_only() {
        let a = SecretBox::ephemeral();
        let b = SecretBox::ephemeral();
        let s = a.seal("watcher-secret-0123");
        assert!(SecretBox::is_sealed(&s));
        assert!(!s.contains("watcher-secret"));
        assert_ne!(s, a.seal("watcher-secret-0123"), "a fresh nonce each time");
        assert_eq!(a.open(&s).unwrap(), "watcher-secret-0123");
        assert!(matches!(b.open(&s), Err(SecretError::WrongKey)));
        let mut t = s.clone();
        t.pop();
        t.push('A');
        assert!(a.open(&t).is_err(), "tampering is detected");
        assert_eq!(a.open("plain-old-secret").unwrap(), "plain-old-secret");
        assert!(a.open("sealed1:!!").is_err());
        assert!(SecretBox::from_hex("abc").is_err());
        let hex = "00".repeat(32);
        let k = SecretBox::from_hex(&hex).unwrap();
        assert_eq!(k.open(&k.seal("x")).unwrap(), "x");
    }

    #[test]
    fn the_key_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("genki-secret-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = SecretBox::load_or_create(&dir).unwrap();
        let b = SecretBox::load_or_create(&dir).unwrap();
        assert_eq!(b.open(&a.seal("s")).unwrap(), "s");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("secret-key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
