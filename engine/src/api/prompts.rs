//! `PUT /v1/tenants/{id}/prompts/{name}`: a tenant's own WAV prompts.
//!
//! Depends on: [`super::common`], genki-media (WAV).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use genki_media::wav;
use serde::Serialize;
use utoipa::ToSchema;

use super::common::*;

/// Script prompts a tenant may keep (a script names a handful; each up to
/// 120 s of audio, stored as uploaded, at most the 16 MiB body limit);
/// people's `name-<id>` prompts are not counted (one a person at most).
pub(crate) const MAX_PROMPTS: usize = 64;

/// A prompt stored: its name and length.
#[derive(Serialize, ToSchema)]
pub(crate) struct PromptStored {
    name: String,
    duration_ms: u64,
}

#[utoipa::path(
    put,
    path = "/v1/tenants/{id}/prompts/{name}",
    tag = "prompts",
    summary = "Upload a WAV prompt (PCM or float, any rate and channels; up to 120 s)",
    params(("id" = u64, Path, description = "tenant id"), ("name" = String, Path, description = "the prompt's name, as scripts name it")),
    request_body(content = Vec<u8>, content_type = "audio/wav"),
    responses((status = 201, body = PromptStored), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
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
    // A person's name prompt (played in watcher calls) exists once per
    // person of this tenant, so it is bounded by the roll, not the cap.
    if let Some(id) = name.strip_prefix("name-") {
        let person = id
            .parse::<u64>()
            .ok()
            .map(|id| api.svc.store.subscriber(id))
            .transpose()?
            .flatten();
        if person.is_none_or(|s| s.tenant_id != t.id) {
            return Err(ApiError::bad(
                "name",
                "name-<id> is the name prompt of a person of this tenant: no such person",
            ));
        }
    }
    let names: Vec<String> = api
        .svc
        .store
        .prompt_names(t.id)?
        .into_iter()
        .filter(|n| !n.starts_with("name-"))
        .collect();
    if !name.starts_with("name-") && names.len() >= MAX_PROMPTS && !names.contains(&name) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_prompts",
            format!("a tenant keeps at most {MAX_PROMPTS} prompts; replace one by its name"),
        )
        .field("name"));
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
    Ok(reply(
        StatusCode::CREATED,
        &PromptStored {
            duration_ms: pcm.len() as u64 / 8,
            name,
        },
    ))
}
