//! `POST /v1/subscribers/{id}/checks` (call this person now) and
//! `GET /v1/checks/{id}` (a check with its attempts).
//!
//! Depends on: [`super::common`], [`crate::checks::service`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use genki_store::{CheckId, CheckStatus};
use serde_json::{json, Value};

use super::common::*;

pub(crate) async fn request_check(State(api): S, who: Caller, Path(id): Path<u64>) -> R<Response> {
    let s = load_subscriber(&api, who, id)?;
    let check_id = api.svc.request_check(&s)?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"check_id": check_id})),
    )
        .into_response())
}

pub(crate) fn check_json(api: &Api, c: &genki_store::Check) -> R<Value> {
    let attempts = api.svc.store.attempts(&c.id)?;
    let status = match c.status {
        CheckStatus::Pending => "pending",
        CheckStatus::Dialing => "dialing",
        CheckStatus::Done => "done",
    };
    Ok(json!({
        "check_id": c.id,
        "tenant_id": c.tenant_id,
        "subscriber_id": c.id.subscriber_id,
        "status": status,
        "outcome": c.outcome,
        "due_at_ms": c.due_at_ms,
        "attempts_made": c.attempts,
        "last_cause": c.last_cause,
        "finished_at_ms": c.finished_at_ms,
        "attempts": attempts,
    }))
}

pub(crate) async fn get_check(State(api): S, who: Caller, Path(id): Path<String>) -> R<Response> {
    let cid: CheckId = id.parse().map_err(|_| ApiError::not_found("check"))?;
    match api.svc.store.check(&cid)? {
        Some(c) if who.can_see(c.tenant_id) => {
            Ok(axum::Json(check_json(&api, &c)?).into_response())
        }
        _ => Err(ApiError::not_found("check")),
    }
}
