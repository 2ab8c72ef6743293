//! `POST /v1/tenants`, `GET|PATCH /v1/tenants/{id}`: organisations, their
//! calendar, calling window, retry policy, limits, script and alert rules;
//! `/v1/tenants/{id}/tokens`: issuing, listing and revoking their API
//! tokens (rotation is a new token, then the old one revoked).
//!
//! Depends on: [`super::common`], [`crate::checks::schedule`], [`crate::checks::script`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use genki_store::{RetryPolicy, Tenant};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::checks::schedule::Calendar;
use crate::checks::script::Script;

use super::common::*;

/// A new tenant, or the fields of one to change (every field optional;
/// `name` required on creation).
#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantPatch {
    name: Option<String>,
    time_zone: Option<String>,
    window_start: Option<String>,
    window_end: Option<String>,
    skip_holidays: Option<bool>,
    retry: Option<RetryPolicy>,
    #[serde(default, deserialize_with = "clearable")]
    cps: Option<Option<f64>>,
    #[serde(default, deserialize_with = "clearable")]
    max_calls: Option<Option<u32>>,
    /// The tenant's watch script (README \"Watch script\"); null: the default.
    #[schema(value_type = Option<Object>)]
    #[serde(default, deserialize_with = "clearable")]
    script: Option<Option<Value>>,
    alerts: Option<genki_store::AlertRules>,
    /// Days finished checks and resolved cases are kept (30–3650); null: until erased.
    #[serde(default, deserialize_with = "clearable")]
    retention_days: Option<Option<u32>>,
    /// Operator only: number prefixes this tenant may enrol and dial (1–32
    /// of up to 16 digits, a leading + allowed); null: any number.
    #[serde(default, deserialize_with = "clearable")]
    dial_allow: Option<Option<Vec<String>>>,
    /// Operator only: the number presented when calling this tenant's
    /// people (1–16 digits, a leading + allowed; the trunk must own it);
    /// null: the trunk's `caller_id`.
    #[serde(default, deserialize_with = "clearable")]
    caller_id: Option<Option<String>>,
    /// Seconds of the person's audio kept after each prompt for a
    /// coordinator to listen to (0–15; 0: none, the default).
    record_answers_s: Option<u32>,
    /// Listen after the answer before the first prompt (through a call
    /// recorder's ringback, past a machine's greeting); null: the daemon's
    /// `[sip] answer_wait`.
    #[serde(default, deserialize_with = "clearable")]
    listen_first: Option<Option<bool>>,
    /// A person who calls genki and hangs up while it still rings has
    /// checked in (`fine`); false (the default): only a key counts.
    checkin_by_ringing: Option<bool>,
}

/// A tenant created: its id and its API token (shown this once).
#[derive(Serialize, ToSchema)]
pub(crate) struct TenantCreated {
    id: u64,
    token: String,
}

pub(crate) fn apply_tenant_patch(api: &Api, t: &mut Tenant, p: TenantPatch) -> R<()> {
    if let Some(n) = p.name {
        validate_name(&n)?;
        t.name = n;
    }
    if let Some(v) = p.time_zone {
        t.time_zone = v;
    }
    if let Some(v) = p.window_start {
        t.window_start = v;
    }
    if let Some(v) = p.window_end {
        t.window_end = v;
    }
    if let Some(v) = p.skip_holidays {
        t.skip_holidays = v;
    }
    if let Some(r) = p.retry {
        if r.max_attempts == 0 || r.max_attempts > 10 {
            return Err(ApiError::bad("retry.max_attempts", "1–10"));
        }
        if r.spacing_minutes == 0 || r.spacing_minutes > 24 * 60 {
            return Err(ApiError::bad("retry.spacing_minutes", "1–1440"));
        }
        t.retry = r;
    }
    if let Some(v) = p.cps {
        if v.is_some_and(|c| !(c > 0.0 && c <= 10_000.0)) {
            return Err(ApiError::bad("cps", "above 0 and at most 10000, or null"));
        }
        t.cps = v;
    }
    if let Some(v) = p.max_calls {
        if v == Some(0) {
            return Err(ApiError::bad("max_calls", "at least 1, or null"));
        }
        t.max_calls = v;
    }
    if let Some(v) = p.script {
        if let Some(v) = &v {
            let script: Script = serde_json::from_value(v.clone())
                .map_err(|e| ApiError::bad("script", e.to_string()))?;
            let prompts = api.svc.calls.prompts_for(t.id)?;
            script
                .validate(|p| prompts.contains_key(p))
                .map_err(|e| ApiError::bad(&e.field, e.message))?;
        }
        t.script = v;
    }
    if let Some(a) = p.alerts {
        if a.urgent_after_missed_days > 30 {
            return Err(ApiError::bad(
                "alerts.urgent_after_missed_days",
                "0 (never) to 30",
            ));
        }
        t.alerts = a;
    }
    if let Some(v) = p.dial_allow {
        if let Some(list) = &v {
            if list.is_empty()
                || list.len() > 32
                || !list.iter().all(|x| crate::config::is_phone_number(x))
            {
                return Err(ApiError::bad(
                    "dial_allow",
                    "1–32 prefixes of 1–16 digits (a leading + allowed), or null",
                ));
            }
        }
        t.dial_allow = v;
    }
    if let Some(v) = p.caller_id {
        if v.as_deref()
            .is_some_and(|n| !crate::config::is_phone_number(n))
        {
            return Err(ApiError::bad(
                "caller_id",
                "a number of 1–16 digits (a leading + allowed), or null",
            ));
        }
        t.caller_id = v;
    }
    if let Some(v) = p.checkin_by_ringing {
        t.checkin_by_ringing = v;
    }
    if let Some(v) = p.listen_first {
        t.listen_first = v;
    }
    if let Some(v) = p.record_answers_s {
        if v > 15 {
            return Err(ApiError::bad("record_answers_s", "0 (none) to 15 seconds"));
        }
        t.record_answers_s = v;
    }
    if let Some(v) = p.retention_days {
        // At least a month: the alert rules look back over recent days
        // (urgent_after_missed_days, up to 30).
        if v.is_some_and(|d| !(30..=3650).contains(&d)) {
            return Err(ApiError::bad("retention_days", "30–3650 days, or null"));
        }
        t.retention_days = v;
    }
    Calendar::of(t).map_err(|e| ApiError::bad(e.field, e.message))?;
    Ok(())
}

#[utoipa::path(
    post,
    path = "/v1/tenants",
    tag = "tenants",
    summary = "Create a tenant (operator only); returns its id and token",
    request_body = TenantPatch,
    responses((status = 201, body = TenantCreated), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn create_tenant(
    State(api): S,
    who: Caller,
    StrictJson(p): StrictJson<TenantPatch>,
) -> R<Response> {
    if who != Caller::Operator {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the operator creates tenants",
        ));
    }
    if p.name.is_none() {
        return Err(ApiError::bad("name", "required"));
    }
    let mut t = Tenant::with_defaults("", now_ms(&api));
    apply_tenant_patch(&api, &mut t, p)?;
    let t = api.svc.store.create_tenant(t)?;
    let token = new_token();
    api.svc.store.put_token(&hash_token(&token), t.id)?;
    api.svc.store.audit(
        t.id,
        now_ms(&api),
        &json!({"by": "operator", "did": "create_tenant"}),
    )?;
    Ok(reply(
        StatusCode::CREATED,
        &TenantCreated { id: t.id, token },
    ))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}",
    tag = "tenants",
    summary = "Read a tenant",
    params(("id" = u64, Path, description = "tenant id")),
    responses((status = 200, body = Tenant), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn get_tenant(State(api): S, who: Caller, Path(id): Path<u64>) -> R<Response> {
    Ok(axum::Json(load_tenant(&api, who, id)?).into_response())
}

#[utoipa::path(
    patch,
    path = "/v1/tenants/{id}",
    tag = "tenants",
    summary = "Change time zone, window, holidays, retry, limits, script, alert rules",
    params(("id" = u64, Path, description = "tenant id")),
    request_body = TenantPatch,
    responses((status = 200, body = Tenant), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn patch_tenant(
    State(api): S,
    who: Caller,
    Path(id): Path<u64>,
    StrictJson(p): StrictJson<TenantPatch>,
) -> R<Response> {
    let mut t = load_tenant(&api, who, id)?;
    // The trunk is the operator's: a tenant cannot raise its own share.
    if who != Caller::Operator {
        for (field, set) in [
            ("cps", p.cps.is_some()),
            ("max_calls", p.max_calls.is_some()),
            ("dial_allow", p.dial_allow.is_some()),
            ("caller_id", p.caller_id.is_some()),
        ] {
            if set {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!("{field} is set by the operator"),
                )
                .field(field));
            }
        }
    }
    apply_tenant_patch(&api, &mut t, p)?;
    api.svc.store.put_tenant(&t)?;
    api.svc.store.audit(
        t.id,
        now_ms(&api),
        &json!({"by": format!("{who:?}"), "did": "patch_tenant"}),
    )?;
    Ok(axum::Json(t).into_response())
}

/// A token as listed: its id (the first 16 hex digits of its SHA-256,
/// which identifies it without being it). The token itself is shown only
/// when it is issued.
#[derive(Serialize, ToSchema)]
pub(crate) struct TokenView {
    id: String,
}

/// A token issued: its id and the token (shown this once).
#[derive(Serialize, ToSchema)]
pub(crate) struct TokenIssued {
    id: String,
    token: String,
}

/// The tokens of a tenant.
#[derive(Serialize, ToSchema)]
pub(crate) struct TokenList {
    tokens: Vec<TokenView>,
}

fn token_id(hash: &[u8; 32]) -> String {
    hash[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[utoipa::path(
    post,
    path = "/v1/tenants/{id}/tokens",
    tag = "tenants",
    summary = "Issue another API token for the tenant (rotation: issue, switch, then revoke the old one)",
    params(("id" = u64, Path, description = "tenant id")),
    request_body(content = Object, description = "empty, or `{}`"),
    responses((status = 201, body = TokenIssued), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn issue_token(State(api): S, who: Caller, Path(id): Path<u64>) -> R<Response> {
    let t = load_tenant(&api, who, id)?;
    if api.svc.store.tokens_of(t.id)?.len() >= 20 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_tokens",
            "a tenant has at most 20 tokens; revoke one first",
        ));
    }
    let token = new_token();
    let hash = hash_token(&token);
    api.svc.store.put_token(&hash, t.id)?;
    api.svc.store.audit(
        t.id,
        now_ms(&api),
        &json!({"by": format!("{who:?}"), "did": "issue_token", "token": token_id(&hash)}),
    )?;
    Ok(reply(
        StatusCode::CREATED,
        &TokenIssued {
            id: token_id(&hash),
            token,
        },
    ))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/tokens",
    tag = "tenants",
    summary = "List the tenant's API tokens (their ids, never the tokens)",
    params(("id" = u64, Path, description = "tenant id")),
    responses((status = 200, body = TokenList), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn list_tokens(State(api): S, who: Caller, Path(id): Path<u64>) -> R<Response> {
    let t = load_tenant(&api, who, id)?;
    let tokens = api
        .svc
        .store
        .tokens_of(t.id)?
        .iter()
        .map(|h| TokenView { id: token_id(h) })
        .collect();
    Ok(reply(StatusCode::OK, &TokenList { tokens }))
}

#[utoipa::path(
    delete,
    path = "/v1/tenants/{id}/tokens/{token_id}",
    tag = "tenants",
    summary = "Revoke a token at once (a tenant may revoke its own, even the one it asks with)",
    params(("id" = u64, Path, description = "tenant id"), ("token_id" = String, Path, description = "the token's id")),
    responses((status = 204, description = "revoked"), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn revoke_token(
    State(api): S,
    who: Caller,
    Path((id, token)): Path<(u64, String)>,
) -> R<Response> {
    let t = load_tenant(&api, who, id)?;
    let Some(hash) = api
        .svc
        .store
        .tokens_of(t.id)?
        .into_iter()
        .find(|h| token_id(h) == token)
    else {
        return Err(ApiError::not_found("token"));
    };
    api.svc.store.delete_token(&hash)?;
    api.svc.store.audit(
        t.id,
        now_ms(&api),
        &json!({"by": format!("{who:?}"), "did": "revoke_token", "token": token}),
    )?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
