//! What every API resource shares: the state ([`Api`]), errors
//! ([`ApiError`]: status, code, message, field), the caller extracted
//! from its bearer token ([`Caller`]), the strict JSON body extractor
//! ([`StrictJson`]), tenant/subscriber lookups that answer 404 across
//! tenants, and the validators more than one resource uses.
//!
//! Depends on: axum, genki-store, [`crate::checks::service`], [`crate::alerts::cases`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use genki_store::{StoreError, Subscriber, Tenant};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::checks::service::Service;

/// API state.
pub struct Api {
    pub svc: Arc<Service>,
    pub alerts: Arc<crate::alerts::cases::Alerts>,
    pub operator_hash: [u8; 32],
    pub sip_up: Arc<std::sync::atomic::AtomicBool>,
    /// Per-caller request rates ([`super::limits`]).
    pub limiter: super::limits::RateLimiter,
    /// One-off checks a person may be given in 24 hours.
    pub one_off_per_day: u64,
    /// Seals the watchers' webhook secrets before they are stored.
    pub secrets: Arc<crate::secrets::SecretBox>,
    /// `[api] metrics_token`'s hash: may read `/metrics` and nothing else.
    pub metrics_hash: Option<[u8; 32]>,
}

pub(crate) type S = State<Arc<Api>>;

/// An API error: status, machine code, human message, and the field at fault.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) field: Option<String>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }
    pub(crate) fn field(mut self, f: impl Into<String>) -> ApiError {
        self.field = Some(f.into());
        self
    }
    pub(crate) fn bad(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).field(field)
    }
    pub(crate) fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
}

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong: a machine code, a message for people, the field at fault.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// e.g. invalid_json, invalid_field, not_found, unauthorized, forbidden, conflict, storage_error.
    code: &'static str,
    message: String,
    /// The request field at fault (`tiers.0.deadline_s`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        reply(
            self.status,
            &ErrorBody {
                error: ErrorDetail {
                    code: self.code,
                    message: self.message,
                    field: self.field,
                },
            },
        )
    }
}

/// Answer `body` as JSON. It goes through `serde_json::Value`, so keys
/// come in the sorted order the API has always answered with, whatever the
/// order of a type's fields (tests/golden).
pub(crate) fn reply<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let v = serde_json::to_value(body).expect("API types serialise");
    (status, axum::Json(v)).into_response()
}

/// `{"id": …}`: what was created.
#[derive(Serialize, ToSchema)]
pub(crate) struct Created {
    pub(crate) id: u64,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        if let StoreError::Busy(m) = e {
            return ApiError::new(StatusCode::CONFLICT, "call_in_progress", m);
        }
        if let StoreError::Conflict(m) = e {
            // Another node changed the record between this one's read and
            // its write: nothing was changed; the client reads again.
            return ApiError::new(StatusCode::CONFLICT, "changed_meanwhile", m);
        }
        if let StoreError::NotFound(what) = e {
            // Gone between the API's read and its write (an erasure).
            return ApiError::not_found(what);
        }
        tracing::error!(error = %e, "storage error in the API");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_error",
            "storage is unavailable; nothing was changed",
        )
    }
}

pub(crate) type R<T> = Result<T, ApiError>;

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    Operator,
    Tenant(u64),
    /// A staff member signed in to the console ([`crate::console`]), acting
    /// within one tenant; the console checks their role before it calls.
    Staff {
        tenant: u64,
        staff: u64,
    },
}

impl Caller {
    pub(crate) fn can_see(self, tenant: u64) -> bool {
        match self {
            Caller::Operator => true,
            Caller::Tenant(t) | Caller::Staff { tenant: t, .. } => t == tenant,
        }
    }
}

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compare two token hashes in constant time (no early exit that would
/// tell a guesser how many leading bytes were right).
pub(crate) fn same_hash(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

pub(crate) fn new_token() -> String {
    let a: u128 = rand::random();
    let b: u128 = rand::random();
    format!("gk_{a:032x}{b:032x}")
}

/// Who is asking, from `Authorization: Bearer <token>` (RFC 6750 §2.1):
/// every handler that takes a `Caller` is authenticated before it runs.
impl FromRequestParts<Arc<Api>> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> R<Caller> {
        caller(api, &parts.headers)
    }
}

/// A JSON body parsed strictly: unknown fields refused, errors naming the
/// field at fault ([`parse`]), 400 for broken JSON, 422 for a wrong field.
pub(crate) struct StrictJson<T>(pub T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequest<St> for StrictJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &St) -> R<StrictJson<T>> {
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text()))?;
        parse(&body).map(StrictJson)
    }
}

pub(crate) fn caller(api: &Api, headers: &HeaderMap) -> R<Caller> {
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown bearer token",
        )
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(unauthorized)?;
    let h = hash_token(token.trim());
    if same_hash(&h, &api.operator_hash) {
        return Ok(Caller::Operator);
    }
    match api.svc.store.token(&h)? {
        Some(0) => Ok(Caller::Operator),
        Some(t) => Ok(Caller::Tenant(t)),
        None => Err(unauthorized()),
    }
}

/// For a PATCH field that may be cleared: absent leaves it (`None`),
/// `null` clears it (`Some(None)`), a value sets it. Serde alone reads a
/// `null` as absent for `Option<Option<T>>`, which made "null clears" a
/// silent no-op (a paused person could not be resumed early).
pub(crate) fn clearable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

/// Parse a JSON body strictly; errors name the field (serde_path_to_error).
pub(crate) fn parse<T: DeserializeOwned>(body: &Bytes) -> R<T> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        // serde_path_to_error's path already ends at an unknown field; a
        // missing field is named only in the message.
        let field = match msg
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            Some(f) if path == "." => f.to_string(),
            Some(f) => format!("{path}.{f}"),
            None => path,
        };
        let status = if inner.is_syntax() || inner.is_eof() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let code = if inner.is_syntax() || inner.is_eof() {
            "invalid_json"
        } else {
            "invalid_field"
        };
        let mut err = ApiError::new(status, code, msg);
        if field != "." && !field.is_empty() {
            err = err.field(field);
        }
        err
    })
}

pub(crate) fn load_tenant(api: &Api, who: Caller, id: u64) -> R<Tenant> {
    match api.svc.store.tenant(id)? {
        Some(t) if who.can_see(t.id) => Ok(t),
        _ => Err(ApiError::not_found("tenant")),
    }
}

pub(crate) fn load_subscriber(api: &Api, who: Caller, id: u64) -> R<Subscriber> {
    match api.svc.store.subscriber(id)? {
        Some(s) if who.can_see(s.tenant_id) => Ok(s),
        _ => Err(ApiError::not_found("subscriber")),
    }
}

/// Record a read of personal data in the tenant's audit trail (who,
/// when, what): APPI asks that access to a person's records can be
/// accounted for. Strict: a read that cannot be recorded is refused.
pub(crate) fn audit_read(
    api: &Api,
    who: Caller,
    tenant_id: u64,
    mut entry: serde_json::Value,
) -> R<()> {
    if let Some(o) = entry.as_object_mut() {
        o.insert("by".into(), format!("{who:?}").into());
    }
    api.svc.store.audit(tenant_id, now_ms(api), &entry)?;
    Ok(())
}

pub(crate) fn now_ms(api: &Api) -> u64 {
    api.svc.clock.now_ms()
}

/// A display name: 1–200 characters, not only spaces.
pub(crate) fn validate_name(n: &str) -> R<()> {
    if n.trim().is_empty() || n.len() > 200 {
        return Err(ApiError::bad("name", "1–200 characters"));
    }
    Ok(())
}

/// A phone is a SIP URI or a number the trunk dials (optional +, 2–20 digits).
pub fn validate_phone(phone: &str) -> Result<(), String> {
    if phone.starts_with("sip:") || phone.starts_with("sips:") {
        if genki_sip::message::is_valid_sip_uri(phone) {
            return Ok(());
        }
        return Err(format!("{phone:?} is not a valid SIP URI"));
    }
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    if (2..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!(
            "{phone:?} is neither a SIP URI nor a phone number (digits, optional leading +)"
        ))
    }
}

/// A phone the operator lets tenants enrol: a SIP URI only where
/// `[trunk] uri_phones` allows them (a number always goes through the trunk).
/// and a number only within the tenant's dial plan (`dial_allow`).
pub(crate) fn phone_allowed(api: &Api, t: &Tenant, field: &str, phone: &str) -> R<()> {
    phone_rule(api, t, phone).map_err(|m| ApiError::bad(field, m))
}

/// [`phone_allowed`]'s rule, as a message (CSV rows carry it).
pub(crate) fn phone_rule(api: &Api, t: &Tenant, phone: &str) -> Result<(), String> {
    if !api.svc.calls.may_dial(phone) {
        return Err("SIP URIs are not allowed as phones here ([trunk] uri_phones): give a phone number, dialled through the trunk".into());
    }
    if !crate::telephony::context::in_dial_plan(t.dial_allow.as_deref(), phone) {
        return Err(format!(
            "the number is outside this tenant's dial plan (it may begin with {})",
            t.dial_allow.as_deref().unwrap_or_default().join(", ")
        ));
    }
    Ok(())
}

/// One route: its path, the methods it serves (the OpenAPI document must
/// list exactly these: the test in `api/mod.rs`), and its handlers.
pub(crate) type Route = (
    &'static str,
    &'static [&'static str],
    MethodRouter<Arc<Api>>,
);
