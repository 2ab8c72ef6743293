//! Staff passwords: argon2id hashes (the argon2 crate, RustCrypto) and
//! the rule a new password must meet. Shared by the API (which creates
//! console users) and the console (which checks them at sign-in).
//!
//! Depends on: argon2.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};

/// A password as stored: argon2id with the crate's defaults (19 MiB, two
/// passes: OWASP's minimum), a random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Does `password` match the stored PHC string? A string that is not one
/// matches nothing.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A password a staff member may choose: 10–128 characters (NIST SP
/// 800-63B §5.1.1.2 asks for at least 8 and no composition rules).
pub fn password_rule(p: &str) -> Result<(), String> {
    let n = p.chars().count();
    if !(10..=128).contains(&n) {
        return Err("a password has 10–128 characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterx", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(password_rule("short").is_err());
        assert!(password_rule("ながいパスワードです十文字").is_ok());
    }
}
