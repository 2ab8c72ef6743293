//! `PUT /v1/tenants/{id}/prompts/{name}`: a tenant's own WAV prompts.
//!
//! Depends on: [`super::common`], genki-media (WAV).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use genki_media::wav;
use serde_json::json;

use super::common::*;

pub(crate) async fn put_prompt(
    State(api): S,
    who: Caller,
    Path((tid, name)): Path<(u64, String)>,
    body: Bytes,
) -> R<Response> {
    let t = load_tenant(&api, who, tid)?;
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ApiError::bad(
            "name",
            "1–64 characters of a-z, 0-9, _ and -",
        ));
    }
    let pcm = wav::read_wav_8k(&body[..]).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_wav",
            e.to_string(),
        )
        .field("body")
    })?;
    api.svc.store.put_prompt(t.id, &name, &body)?;
    api.svc.calls.invalidate_prompts(t.id);
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"name": name, "duration_ms": pcm.len() as u64 / 8})),
    )
        .into_response())
}
