//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617 §3, RFC 8760):
//! answering a 401 `WWW-Authenticate` or 407 `Proxy-Authenticate` challenge,
//! and (for the simulated phones) issuing and checking one.
//!
//! MD5 and MD5-sess with `qop=auth` or without qop are supported; SHA-256
//! (RFC 8760) challenges are refused with [`AuthError::UnsupportedAlgorithm`]
//! so that the caller can end the call with a clear reason. Written here
//! because rsip's digest helper covers only part of this and no maintained
//! crate does SIP digest; MD5 itself comes from `md-5`.
//!
//! Depends on: md-5. No IO, no clock.

use md5::{Digest as _, Md5};
use thiserror::Error;

/// Why a challenge cannot be answered or a credential not checked.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The header is not a `Digest` challenge/credential.
    #[error("not a Digest challenge")]
    NotDigest,
    /// A parameter the scheme needs (`realm`, `nonce`, `response`…) is missing.
    #[error("digest parameter {0} is missing")]
    MissingParam(&'static str),
    /// The algorithm is not MD5 or MD5-sess.
    #[error("digest algorithm {0:?} is not supported")]
    UnsupportedAlgorithm(String),
    /// `qop` offers only `auth-int`, which we do not implement.
    #[error("digest qop {0:?} is not supported")]
    UnsupportedQop(String),
}

/// A parsed `Digest` challenge (RFC 2617 §3.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Option<String>,
    /// True when the server offered `qop=auth`.
    pub qop_auth: bool,
    pub stale: bool,
}

/// Parse `key=value, key="value"` parameters of a Digest header.
fn params(value: &str) -> Result<Vec<(String, String)>, AuthError> {
    let v = value.trim();
    let rest = v
        .get(..6)
        .filter(|s| s.eq_ignore_ascii_case("digest"))
        .map(|_| &v[6..])
        .ok_or(AuthError::NotDigest)?;
    let mut out = Vec::new();
    for part in crate::message::split_list(rest) {
        if let Some((k, val)) = part.split_once('=') {
            out.push((
                k.trim().to_ascii_lowercase(),
                val.trim().trim_matches('"').to_string(),
            ));
        }
    }
    Ok(out)
}

fn get<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

impl Challenge {
    pub fn parse(value: &str) -> Result<Challenge, AuthError> {
        let p = params(value)?;
        let algorithm = get(&p, "algorithm").map(str::to_string);
        if let Some(a) = &algorithm {
            if !a.eq_ignore_ascii_case("MD5") && !a.eq_ignore_ascii_case("MD5-sess") {
                return Err(AuthError::UnsupportedAlgorithm(a.clone()));
            }
        }
        let qop_auth = match get(&p, "qop") {
            None => false,
            Some(q) => {
                if q.split(',').any(|x| x.trim().eq_ignore_ascii_case("auth")) {
                    true
                } else {
                    return Err(AuthError::UnsupportedQop(q.to_string()));
                }
            }
        };
        Ok(Challenge {
            realm: get(&p, "realm")
                .ok_or(AuthError::MissingParam("realm"))?
                .to_string(),
            nonce: get(&p, "nonce")
                .ok_or(AuthError::MissingParam("nonce"))?
                .to_string(),
            opaque: get(&p, "opaque").map(str::to_string),
            stale: get(&p, "stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
            algorithm,
            qop_auth,
        })
    }

    fn is_sess(&self) -> bool {
        self.algorithm
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case("MD5-sess"))
    }

    /// The `Authorization`/`Proxy-Authorization` value answering this
    /// challenge for `method` and `uri` (the Request-URI), with nonce-count
    /// `nc` and client nonce `cnonce` chosen by the caller.
    pub fn answer(
        &self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let nc_s = format!("{nc:08x}");
        let response = digest_response(
            user,
            password,
            &self.realm,
            &self.nonce,
            method,
            uri,
            self.qop_auth.then_some((nc_s.as_str(), cnonce)),
            self.is_sess(),
        );
        let mut s = format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\"",
            self.realm, self.nonce
        );
        if let Some(a) = &self.algorithm {
            s.push_str(&format!(", algorithm={a}"));
        }
        if self.qop_auth {
            s.push_str(&format!(", qop=auth, nc={nc_s}, cnonce=\"{cnonce}\""));
        }
        if let Some(o) = &self.opaque {
            s.push_str(&format!(", opaque=\"{o}\""));
        }
        s
    }
}

fn md5_hex(s: &str) -> String {
    let d = Md5::digest(s.as_bytes());
    let mut out = String::with_capacity(32);
    for b in d {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// RFC 2617 §3.2.2.1 request-digest.
#[allow(clippy::too_many_arguments)]
fn digest_response(
    user: &str,
    password: &str,
    realm: &str,
    nonce: &str,
    method: &str,
    uri: &str,
    qop: Option<(&str, &str)>,
    sess: bool,
) -> String {
    let mut ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    if sess {
        let cnonce = qop.map(|(_, c)| c).unwrap_or("");
        ha1 = md5_hex(&format!("{ha1}:{nonce}:{cnonce}"));
    }
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    match qop {
        Some((nc, cnonce)) => md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")),
        None => md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// Check an `Authorization` value against a password (server side, for the
/// simulated phones and tests). Returns the username when it is right.
pub fn verify(
    authorization: &str,
    method: &str,
    password: &str,
    expected_nonce: &str,
) -> Result<Option<String>, AuthError> {
    let p = params(authorization)?;
    let user = get(&p, "username").ok_or(AuthError::MissingParam("username"))?;
    let realm = get(&p, "realm").ok_or(AuthError::MissingParam("realm"))?;
    let nonce = get(&p, "nonce").ok_or(AuthError::MissingParam("nonce"))?;
    let uri = get(&p, "uri").ok_or(AuthError::MissingParam("uri"))?;
    let response = get(&p, "response").ok_or(AuthError::MissingParam("response"))?;
    let qop = match (get(&p, "qop"), get(&p, "nc"), get(&p, "cnonce")) {
        (Some(_), Some(nc), Some(c)) => Some((nc, c)),
        _ => None,
    };
    let sess = get(&p, "algorithm").is_some_and(|a| a.eq_ignore_ascii_case("MD5-sess"));
    let want = digest_response(user, password, realm, nonce, method, uri, qop, sess);
    Ok((nonce == expected_nonce && want == response).then(|| user.to_string()))
}

/// The credentials header answering a 401 (`Authorization`, from
/// `WWW-Authenticate`) or 407 (`Proxy-Authorization`, from
/// `Proxy-Authenticate`) response `msg` for `method` and `uri` (§22.2,
/// §22.3): its name and value. None when there are no credentials, no
/// usable challenge, or the challenge is of another realm than `realm`
/// (§22.1: a response computed for another protection space is material
/// for guessing the password offline).
pub fn answer_challenge(
    msg: &crate::message::Message,
    status: u16,
    credentials: Option<&(String, String)>,
    realm: Option<&str>,
    method: &str,
    uri: &str,
    cnonce: &str,
) -> Option<(&'static str, String)> {
    let (name, header) = if status == 401 {
        ("Authorization", "WWW-Authenticate")
    } else {
        ("Proxy-Authorization", "Proxy-Authenticate")
    };
    let (user, pass) = credentials?;
    let challenge = Challenge::parse(msg.header(header)?).ok()?;
    if realm.is_some_and(|r| r != challenge.realm) {
        return None;
    }
    Some((name, challenge.answer(user, pass, method, uri, 1, cnonce)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 §3.5's worked example (an HTTP GET, same algorithm).
    #[test]
    fn rfc2617_example() {
        let c = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert!(c.qop_auth);
        let a = c.answer(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            1,
            "0a4f113b",
        );
        assert!(
            a.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{a}"
        );
        assert!(a.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
        assert_eq!(
            verify(
                &a,
                "GET",
                "Circle Of Life",
                "dcd98b7102dd2f0e8b11d0f600bfb0c093"
            )
            .unwrap(),
            Some("Mufasa".into())
        );
        assert_eq!(
            verify(&a, "GET", "wrong", "dcd98b7102dd2f0e8b11d0f600bfb0c093").unwrap(),
            None
        );
    }

    #[test]
    fn no_qop_and_errors() {
        let c = Challenge::parse("Digest realm=\"r\", nonce=\"n\"").unwrap();
        assert!(!c.qop_auth);
        let a = c.answer("u", "p", "INVITE", "sip:x@y", 1, "c");
        assert!(!a.contains("qop"));
        assert_eq!(verify(&a, "INVITE", "p", "n").unwrap(), Some("u".into()));
        assert_eq!(
            Challenge::parse("Basic realm=\"r\""),
            Err(AuthError::NotDigest)
        );
        assert!(matches!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256"),
            Err(AuthError::UnsupportedAlgorithm(_))
        ));
        assert_eq!(
            Challenge::parse("Digest realm=\"r\""),
            Err(AuthError::MissingParam("nonce"))
        );
        assert!(Challenge::parse("Dig").is_err());
    }
}
