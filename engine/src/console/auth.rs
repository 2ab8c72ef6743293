//! Who is at the console: staff sign-in with argon2id password hashes,
//! sessions kept by the hash of an HttpOnly, SameSite=Strict cookie
//! (Secure when the request came over TLS), a form token on every change
//! (the synchronizer-token pattern; the sign-in form uses a
//! double-submitted cookie, as there is no session yet), and a lockout
//! after [`LOCK_AFTER`] wrong passwords in a row, kept on the staff record
//! so a restart does not reset it.
//!
//! Why by hand and not a session crate: the session must live in genki's
//! own storage seam (one record of who may do what, a later multi-node
//! mode shares it), and the whole of it is a cookie, a hash and a lookup.
//! The password hashing itself is [`crate::passwords`] (argon2).
//!
//! Depends on: axum, argon2, genki-store, [`crate::api::common`] (the
//! state, the caller, token hashing).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use genki_store::{Session, Staff, StaffRole};

use super::Console;
use crate::api::common::{hash_token, Caller};
pub use crate::passwords::{hash_password, password_rule, verify_password};

/// Wrong passwords in a row before sign-in is refused for [`LOCK_FOR_MS`].
pub const LOCK_AFTER: u32 = 10;
/// How long a locked account stays locked (15 minutes).
pub const LOCK_FOR_MS: u64 = 15 * 60 * 1000;
/// The session cookie.
pub const SESSION_COOKIE: &str = "genki_session";
/// The sign-in form's double-submit cookie.
pub const SIGNIN_COOKIE: &str = "genki_signin";

/// 32 random bytes as hex: a session token or a form token.
pub fn random_token() -> String {
    let a: u128 = rand::random();
    let b: u128 = rand::random();
    format!("{a:032x}{b:032x}")
}

/// Compare two strings in constant time for their common length.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// A cookie's value from the request (RFC 6265 §5.4).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Did the request reach genki over TLS? genki's API listens in plain
/// HTTP behind a TLS proxy, which says so in `X-Forwarded-Proto` (a
/// client that forges it only makes its own cookie stricter).
pub fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` for the console (RFC 6265 §4.1): HttpOnly, SameSite=
/// Strict, on /console only, Secure over TLS; `max_age_s` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age_s: u64, secure: bool) -> HeaderValue {
    let v = format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&v).expect("cookie is ASCII")
}

/// The signed-in staff member of a request, its session, and the caller
/// it is to the API's rules.
#[derive(Clone)]
pub struct Signed {
    pub staff: Staff,
    pub session: Session,
    pub hash: [u8; 32],
    pub secure: bool,
}

impl Signed {
    /// What the API's rules see: this tenant, this staff member.
    pub(crate) fn caller(&self) -> Caller {
        Caller::Staff {
            tenant: self.session.tenant_id,
            staff: self.staff.id,
        }
    }

    /// May act on the calls (take, pass, resolve, pause, import)?
    pub fn can_act(&self) -> bool {
        self.staff.role >= StaffRole::Coordinator
    }

    /// May change the tenant's settings and staff?
    pub fn can_admin(&self) -> bool {
        self.staff.role >= StaffRole::Admin
    }

    /// How this person is named in case timelines: their name and login.
    /// At most 200 bytes (the API's limit for who acts), cut at a character.
    pub fn by(&self) -> String {
        let full = format!("{} ({})", self.staff.name, self.staff.login);
        if full.len() <= 200 {
            return full;
        }
        let mut end = 197;
        while !full.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &full[..end])
    }
}

/// Not signed in (or the session ended): to the sign-in page.
pub struct SignIn;

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        Redirect::to("/console/signin").into_response()
    }
}

impl FromRequestParts<Arc<Console>> for Signed {
    type Rejection = SignIn;
    async fn from_request_parts(parts: &mut Parts, c: &Arc<Console>) -> Result<Signed, SignIn> {
        signed(c, &parts.headers).ok_or(SignIn)
    }
}

/// The session a request's cookie names, if it is live and its staff
/// member may still sign in.
pub fn signed(c: &Console, headers: &HeaderMap) -> Option<Signed> {
    {
        let token = cookie(headers, SESSION_COOKIE).ok_or(SignIn).ok()?;
        let hash = hash_token(token);
        let store = &c.api.svc.store;
        let session = store.session(&hash).ok().flatten()?;
        let now = c.api.svc.clock.now_ms();
        if session.expires_at_ms <= now {
            let _ = store.delete_session(&hash);
            return None;
        }
        let staff = store
            .staff(session.staff_id)
            .ok()
            .flatten()
            .filter(|s| !s.disabled && s.generation == session.generation)?;
        // A staff member moved to another tenant keeps no session of the old one.
        if staff.role != StaffRole::Operator && staff.tenant_id != session.tenant_id {
            return None;
        }
        Some(Signed {
            staff,
            session,
            hash,
            secure: over_tls(headers),
        })
    }
}

/// Why a sign-in was refused (the page says only "wrong login or
/// password" for the first two, so it tells a guesser nothing).
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Wrong,
    Locked { until_ms: u64 },
    Storage,
}

/// Check a login and password, counting wrong ones and locking the
/// account after [`LOCK_AFTER`]; the staff member on success. Runs the
/// hash (tens of milliseconds) on a blocking thread.
pub async fn check_password(
    c: &Arc<Console>,
    login: &str,
    password: &str,
) -> Result<Staff, Refused> {
    let store = c.api.svc.store.clone();
    let now = c.api.svc.clock.now_ms();
    // No password is longer than the rule allows: a longer one is wrong
    // without being hashed (megabytes of it would cost CPU for nothing).
    let too_long = password.chars().count() > 128;
    let staff = store.staff_by_login(login).map_err(|_| Refused::Storage)?;
    let staff = staff.filter(|s| !s.disabled);
    if let Some(until) = staff
        .as_ref()
        .and_then(|s| s.locked_until_ms)
        .filter(|u| *u > now)
    {
        return Err(Refused::Locked { until_ms: until });
    }
    // An unknown login is checked against a dummy hash: the time taken
    // does not tell which logins exist. At most `HASHING` run at once
    // (each takes 19 MiB): a flood of sign-ins waits, memory does not grow.
    let stored = staff
        .as_ref()
        .map(|s| s.password.clone())
        .unwrap_or_else(|| c.dummy_hash.clone());
    let ok = if too_long {
        false
    } else {
        let _permit = c.hashing.acquire().await.map_err(|_| Refused::Storage)?;
        let p = password.to_string();
        tokio::task::spawn_blocking(move || verify_password(&p, &stored))
            .await
            .unwrap_or(false)
    };
    let Some(staff) = staff else {
        return Err(Refused::Wrong);
    };
    if ok {
        if staff.failed != 0 || staff.locked_until_ms.is_some() {
            store
                .update_staff(staff.id, &|m| {
                    m.failed = 0;
                    m.locked_until_ms = None;
                })
                .map_err(|_| Refused::Storage)?;
        }
        return Ok(staff);
    }
    // Counted on the record as it is now (guesses in parallel all count).
    let after = store
        .update_staff(staff.id, &|m| {
            m.failed += 1;
            if m.failed >= LOCK_AFTER {
                m.failed = 0;
                m.locked_until_ms = Some(now + LOCK_FOR_MS);
            }
        })
        .map_err(|_| Refused::Storage)?;
    let locked = after
        .as_ref()
        .and_then(|m| m.locked_until_ms)
        .is_some_and(|u| u > now);
    let _ = store.audit(
        staff.tenant_id,
        now,
        &serde_json::json!({"by": format!("staff:{}", staff.id), "did": if locked { "sign_in_locked" } else { "sign_in_failed" }}),
    );
    if locked {
        tracing::warn!(
            staff = staff.id,
            "console sign-in locked after {LOCK_AFTER} wrong passwords"
        );
        return Err(Refused::Locked {
            until_ms: now + LOCK_FOR_MS,
        });
    }
    Err(Refused::Wrong)
}

/// Start a session for `staff`: its cookie's token (the store keeps only
/// the hash).
pub fn start_session(
    c: &Console,
    staff: &Staff,
    locale: &str,
) -> Result<(String, Session), genki_store::StoreError> {
    let now = c.api.svc.clock.now_ms();
    let token = random_token();
    let tenant_id = if staff.role == StaffRole::Operator {
        // The operator's staff start on the first tenant.
        c.api
            .svc
            .store
            .tenants()?
            .first()
            .map(|t| t.id)
            .unwrap_or(0)
    } else {
        staff.tenant_id
    };
    let session = Session {
        staff_id: staff.id,
        tenant_id,
        csrf: random_token(),
        locale: locale.to_string(),
        created_at_ms: now,
        expires_at_ms: now + c.session_ms,
        generation: staff.generation,
    };
    c.api.svc.store.put_session(&hash_token(&token), &session)?;
    Ok((token, session))
}

/// Is `given` this session's form token?
pub fn csrf_ok(s: &Signed, given: Option<&str>) -> bool {
    given.is_some_and(|g| same_token(g, &s.session.csrf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_and_written_strictly() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; genki_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        let c = set_cookie(SESSION_COOKIE, "abc", 60, true);
        let c = c.to_str().unwrap();
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/console",
            "Max-Age=60",
        ] {
            assert!(c.contains(part), "{c}");
        }
        assert!(!set_cookie(SESSION_COOKIE, "x", 0, false)
            .to_str()
            .unwrap()
            .contains("Secure"));
        assert!(same_token("abc", "abc") && !same_token("abc", "abd") && !same_token("ab", "abc"));
    }
}
