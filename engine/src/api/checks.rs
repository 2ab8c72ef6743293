//! `POST /v1/subscribers/{id}/checks` (call this person now) and
//! `GET /v1/checks/{id}` (a check with its attempts).
//!
//! Depends on: [`super::common`], [`crate::checks::service`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use genki_store::{Attempt, Cause, CheckId, CheckStatus, Outcome};
use serde::Serialize;
use utoipa::ToSchema;

use super::common::*;

#[utoipa::path(
    post,
    path = "/v1/subscribers/{id}/checks",
    tag = "checks",
    summary = "Call this person now (a one-off check, inside the calling window; at most [scheduler] one_off_per_day in 24 h, then 429)",
    params(("id" = u64, Path, description = "subscriber id")),
    responses((status = 202, body = CheckRequested), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn request_check(State(api): S, who: Caller, Path(id): Path<u64>) -> R<Response> {
    let s = load_subscriber(&api, who, id)?;
    let day_ago = now_ms(&api).saturating_sub(86_400_000);
    if api.svc.store.one_offs_since(s.id, day_ago)? >= api.one_off_per_day {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_checks",
            format!(
                "this person was asked to be called {} times in the last 24 hours; no more today",
                api.one_off_per_day
            ),
        ));
    }
    let check_id = api.svc.request_check(&s)?;
    Ok(reply(StatusCode::ACCEPTED, &CheckRequested { check_id }))
}

/// A check requested: its id, to follow it with `GET /v1/checks/{id}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct CheckRequested {
    check_id: CheckId,
}

/// A check as coordinators see it: where it is, its outcome, every call.
#[derive(Serialize, ToSchema)]
pub(crate) struct CheckView {
    check_id: CheckId,
    tenant_id: u64,
    subscriber_id: u64,
    status: CheckStatus,
    outcome: Option<Outcome>,
    due_at_ms: u64,
    attempts_made: u32,
    /// Why the last attempt did not reach the person.
    last_cause: Option<Cause>,
    finished_at_ms: Option<u64>,
    attempts: Vec<Attempt>,
}

pub(crate) fn check_view(api: &Api, c: &genki_store::Check) -> R<CheckView> {
    // The attempts first, then the check again: an attempt and its check's
    // update are one batch, so a check read after its attempts is at least
    // as new as they are (never a pending check beside its final attempt).
    let attempts = api.svc.store.attempts(&c.id)?;
    let fresh = api.svc.store.check(&c.id)?;
    let c = fresh.as_ref().unwrap_or(c);
    Ok(CheckView {
        check_id: c.id,
        tenant_id: c.tenant_id,
        subscriber_id: c.id.subscriber_id,
        status: c.status,
        outcome: c.outcome,
        due_at_ms: c.due_at_ms,
        attempts_made: c.attempts,
        last_cause: c.last_cause.clone(),
        finished_at_ms: c.finished_at_ms,
        attempts,
    })
}

#[utoipa::path(
    get,
    path = "/v1/checks/{id}",
    tag = "checks",
    summary = "A check: status, outcome, every attempt",
    params(("id" = String, Path, description = "check id, e.g. 7-s1795000000")),
    responses((status = 200, body = CheckView), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn get_check(State(api): S, who: Caller, Path(id): Path<String>) -> R<Response> {
    let cid: CheckId = id.parse().map_err(|_| ApiError::not_found("check"))?;
    match api.svc.store.check(&cid)? {
        Some(c) if who.can_see(c.tenant_id) => {
            audit_read(
                &api,
                who,
                c.tenant_id,
                serde_json::json!({"did": "read_check", "subscriber": c.id.subscriber_id}),
            )?;
            Ok(reply(StatusCode::OK, &check_view(&api, &c)?))
        }
        _ => Err(ApiError::not_found("check")),
    }
}
