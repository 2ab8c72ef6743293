//! `POST /v1/tenants`, `GET|PATCH /v1/tenants/{id}`: organisations, their
//! calendar, calling window, retry policy, limits, script and alert rules.
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
    cps: Option<Option<f64>>,
    max_calls: Option<Option<u32>>,
    /// The tenant's watch script (README \"Watch script\"); null: the default.
    #[schema(value_type = Option<Object>)]
    script: Option<Option<Value>>,
    alerts: Option<genki_store::AlertRules>,
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
