//! `/v1/tenants/{id}/subscribers` (enrol, list, CSV import) and
//! `/v1/subscribers/{id}` (read, change, remove): the people genki calls.
//!
//! Depends on: [`super::common`], [`crate::checks::schedule`].

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use genki_store::{Schedule, Subscriber};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::checks::schedule::validate_schedule;

use super::common::*;
use super::csv_import::{self, CsvError};

/// A person to enrol.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSubscriber {
    name: String,
    phone: String,
    #[serde(default)]
    schedule: Option<Schedule>,
    #[serde(default)]
    paused_until: Option<String>,
    #[serde(default)]
    notes: String,
}

/// The fields of a person to change (every field optional; null clears).
#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscriberPatch {
    name: Option<String>,
    phone: Option<String>,
    #[serde(default, deserialize_with = "clearable")]
    pub(crate) schedule: Option<Option<Schedule>>,
    #[serde(default, deserialize_with = "clearable")]
    pub(crate) paused_until: Option<Option<String>>,
    notes: Option<String>,
}

/// A page of people; `next_after` is the id to ask after for the next page.
#[derive(Serialize, ToSchema)]
pub(crate) struct SubscriberPage {
    items: Vec<Subscriber>,
    next_after: Option<u64>,
}

/// What a CSV import did: the people created, and the rows refused.
#[derive(Serialize, ToSchema)]
pub(crate) struct Imported {
    imported: usize,
    ids: Vec<u64>,
    /// The first [`MAX_ROW_ERRORS`] rows refused.
    errors: Vec<RowError>,
    /// Rows refused beyond those listed.
    #[serde(skip_serializing_if = "is_zero")]
    errors_omitted: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Refused rows listed in an import's answer; the rest are counted.
pub(crate) const MAX_ROW_ERRORS: usize = 1_000;

pub(crate) fn validate_subscriber(s: &Subscriber) -> R<()> {
    if s.name.trim().is_empty() || s.name.chars().count() > 200 {
        return Err(ApiError::bad("name", "1–200 characters"));
    }
    validate_phone(&s.phone).map_err(|m| ApiError::bad("phone", m))?;
    if let Some(sch) = &s.schedule {
        validate_schedule(sch).map_err(|e| ApiError::bad(e.field, e.message))?;
    }
    if let Some(p) = &s.paused_until {
        p.parse::<jiff::civil::Date>().map_err(|_| {
            ApiError::bad("paused_until", format!("{p:?} is not a date YYYY-MM-DD"))
        })?;
    }
    if s.notes.len() > 4000 {
        return Err(ApiError::bad("notes", "at most 4000 bytes"));
    }
    Ok(())
}

#[utoipa::path(
    post,
    path = "/v1/tenants/{id}/subscribers",
    tag = "subscribers",
    summary = "Enrol a person",
    params(("id" = u64, Path, description = "tenant id")),
    request_body = NewSubscriber,
    responses((status = 201, body = Created), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn create_subscriber(
    State(api): S,
    who: Caller,
    Path(tid): Path<u64>,
    StrictJson(n): StrictJson<NewSubscriber>,
) -> R<Response> {
    let t = load_tenant(&api, who, tid)?;
    let s = Subscriber {
        id: 0,
        tenant_id: t.id,
        name: n.name,
        phone: n.phone,
        schedule: n.schedule,
        paused_until: n.paused_until,
        notes: n.notes,
        created_at_ms: now_ms(&api),
    };
    validate_subscriber(&s)?;
    phone_allowed(&api, &t, "phone", &s.phone)?;
    let s = api.svc.store.create_subscriber(s)?;
    Ok(reply(StatusCode::CREATED, &Created { id: s.id }))
}

/// A page of a list: ids after `after`, at most `limit` (1–1000, default 100).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Page {
    after: Option<u64>,
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/subscribers",
    tag = "subscribers",
    summary = "List a tenant's people, a page at a time",
    params(("id" = u64, Path, description = "tenant id"), Page),
    responses((status = 200, body = SubscriberPage), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn list_subscribers(
    State(api): S,
    who: Caller,
    Path(tid): Path<u64>,
    Query(p): Query<Page>,
) -> R<Response> {
    let t = load_tenant(&api, who, tid)?;
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let items = api
        .svc
        .store
        .subscribers_of(t.id, p.after.unwrap_or(0), limit)?;
    let next = (items.len() == limit)
        .then(|| items.last().map(|s| s.id))
        .flatten();
    audit_read(
        &api,
        who,
        t.id,
        json!({"did": "list_subscribers", "after": p.after.unwrap_or(0), "count": items.len()}),
    )?;
    Ok(reply(
        StatusCode::OK,
        &SubscriberPage {
            items,
            next_after: next,
        },
    ))
}

#[utoipa::path(
    get,
    path = "/v1/subscribers/{id}",
    tag = "subscribers",
    summary = "Read a person",
    params(("id" = u64, Path, description = "subscriber id")),
    responses((status = 200, body = Subscriber), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn get_subscriber(State(api): S, who: Caller, Path(id): Path<u64>) -> R<Response> {
    let s = load_subscriber(&api, who, id)?;
    audit_read(
        &api,
        who,
        s.tenant_id,
        json!({"did": "read_subscriber", "subscriber": s.id}),
    )?;
    Ok(axum::Json(s).into_response())
}

#[utoipa::path(
    patch,
    path = "/v1/subscribers/{id}",
    tag = "subscribers",
    summary = "Change a person",
    params(("id" = u64, Path, description = "subscriber id")),
    request_body = SubscriberPatch,
    responses((status = 200, body = Subscriber), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn patch_subscriber(
    State(api): S,
    who: Caller,
    Path(id): Path<u64>,
    StrictJson(p): StrictJson<SubscriberPatch>,
) -> R<Response> {
    let mut s = load_subscriber(&api, who, id)?;
    if let Some(v) = p.name {
        s.name = v;
    }
    if let Some(v) = p.phone {
        s.phone = v;
    }
    if let Some(v) = p.schedule {
        s.schedule = v;
    }
    if let Some(v) = p.paused_until {
        s.paused_until = v;
    }
    if let Some(v) = p.notes {
        s.notes = v;
    }
    validate_subscriber(&s)?;
    let t = load_tenant(&api, who, s.tenant_id)?;
    phone_allowed(&api, &t, "phone", &s.phone)?;
    api.svc.store.put_subscriber(&s)?;
    let tenant = api.svc.store.tenant(s.tenant_id)?;
    if tenant.is_some_and(|t| crate::checks::service::is_paused(&s, &t, now_ms(&api))) {
        // Paused: checks that come due meanwhile end not_attempted, and an
        // open case closes now (nobody is told after it).
        api.alerts
            .close_for_lifecycle(s.id, "the person is paused")?;
    }
    Ok(axum::Json(s).into_response())
}

/// `?erase=true`: erase instead of remove.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EraseQ {
    /// Erase everything about the person (APPI), keeping only anonymous
    /// counts; without it the person is removed and their history stays.
    erase: Option<bool>,
}

#[utoipa::path(
    delete,
    path = "/v1/subscribers/{id}",
    tag = "subscribers",
    summary = "Remove a person (their checks and outcomes stay as history), or with erase=true erase every record of them (only anonymous counts stay)",
    params(("id" = u64, Path, description = "subscriber id"), EraseQ),
    responses((status = 204, description = "removed"), (status = 200, description = "erased: what went", body = Object), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn delete_subscriber(
    State(api): S,
    who: Caller,
    Path(id): Path<u64>,
    Query(q): Query<EraseQ>,
) -> R<Response> {
    let s = load_subscriber(&api, who, id)?;
    if q.erase == Some(true) {
        return erase_subscriber(&api, who, &s);
    }
    api.svc.store.delete_subscriber(&s)?;
    // Their planned checks end not_attempted when they come due (nobody is
    // called); an open case closes now, and nobody is told after it.
    api.alerts
        .close_for_lifecycle(s.id, "the person was removed")?;
    api.svc.store.audit(
        s.tenant_id,
        now_ms(&api),
        &json!({"by": format!("{who:?}"), "did": "delete_subscriber", "id": s.id}),
    )?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Erase a person: refused while a call to them is in progress (its
/// result would have nowhere to go); their open case is closed first (its
/// pending notifications cancelled, nobody told), then every record of
/// them goes in one step. The audit trail records that an erasure
/// happened and what it removed, not whom.
fn erase_subscriber(api: &Api, who: Caller, s: &Subscriber) -> R<Response> {
    if api
        .svc
        .store
        .inflight()?
        .iter()
        .any(|c| c.id.subscriber_id == s.id)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "call_in_progress",
            "a call to this person is in progress; erase again in a minute",
        ));
    }
    api.alerts
        .close_for_lifecycle(s.id, "the person was erased")?;
    let erased = api.svc.store.erase_subscriber(s)?;
    // Their early media too (files beside the database).
    if let Some(audio) = &api.svc.calls.audio {
        if let Err(e) = audio.forget_subscriber(s.id) {
            tracing::error!(subscriber = s.id, error = %e, "early media of an erased person not removed");
        }
    }
    api.svc.calls.invalidate_prompts(s.tenant_id);
    api.svc.store.audit(
        s.tenant_id,
        now_ms(api),
        &json!({"by": format!("{who:?}"), "did": "erase_subscriber", "removed": &erased}),
    )?;
    Ok(reply(StatusCode::OK, &erased))
}

/// CSV import: header row with name, phone and optional days ("1-5" or
/// "1,3,5"), times ("09:30;17:00"), paused_until, notes. UTF-8, Excel's BOM accepted.
#[utoipa::path(
    post,
    path = "/v1/tenants/{id}/subscribers/import",
    tag = "subscribers",
    summary = "Import people from CSV (name, phone, days, times, paused_until, notes; UTF-8, BOM accepted)",
    params(("id" = u64, Path, description = "tenant id")),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = Imported), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn import_subscribers(
    State(api): S,
    who: Caller,
    Path(tid): Path<u64>,
    body: Bytes,
) -> R<Response> {
    let t = load_tenant(&api, who, tid)?;
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_csv",
            "the CSV is not UTF-8",
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rule = |p: &str| phone_rule(&api, &t, p);
    let (subs, mut errors) = parse_csv(text, t.id, now_ms(&api), &rule)?;
    let imported = api.svc.store.create_subscribers(subs)?;
    let errors_omitted = errors.len().saturating_sub(MAX_ROW_ERRORS) as u64;
    errors.truncate(MAX_ROW_ERRORS);
    Ok(reply(
        StatusCode::OK,
        &Imported {
            imported: imported.len(),
            ids: imported.iter().map(|s| s.id).collect(),
            errors,
            errors_omitted,
        },
    ))
}

/// A CSV row that was not imported, and why.
#[derive(Serialize, ToSchema)]
pub(crate) struct RowError {
    pub(crate) line: u64,
    pub(crate) field: String,
    pub(crate) message: String,
}

/// [`csv_import::parse_rows`] with the API's validation and errors.
pub(crate) fn parse_csv(
    text: &str,
    tenant_id: u64,
    now: u64,
    phone_rule: &dyn Fn(&str) -> Result<(), String>,
) -> R<(Vec<Subscriber>, Vec<RowError>)> {
    let validate = |s: &Subscriber| {
        validate_subscriber(s).map_err(|e| (e.field.unwrap_or_default(), e.message))?;
        phone_rule(&s.phone).map_err(|m| ("phone".to_string(), m))
    };
    let (subs, issues) =
        csv_import::parse_rows(text, tenant_id, now, &validate).map_err(|e| match e {
            CsvError::Header(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_csv", m),
            CsvError::TooManyRows => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_rows",
                e.to_string(),
            ),
            CsvError::Columns(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_csv",
                e.to_string(),
            )
            .field("header"),
        })?;
    Ok((
        subs,
        issues
            .into_iter()
            .map(|i| RowError {
                line: i.line,
                field: i.field,
                message: i.message,
            })
            .collect(),
    ))
}
