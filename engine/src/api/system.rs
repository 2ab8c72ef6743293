//! `GET /healthz`, `GET /metrics`, `GET /v1/openapi.json`, `POST
//! /v1/backup` (a consistent copy of the database while genki runs), and
//! the JSON 404 for every other path.
//!
//! Depends on: [`super::common`], [`crate::metrics`].

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::common::*;

/// What is up: storage, the SIP socket, every media worker; and the
/// carrier as genki sees it.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    storage: bool,
    sip: bool,
    media: bool,
    /// The trunk's circuit: `closed` (calls go out), `open` (the carrier
    /// is failing: nobody is dialled, checks are held, the operator was
    /// told), `probing` (a few calls test whether it recovered). Not a
    /// fault of this node, so it does not make the status 503.
    trunk: &'static str,
    /// The trunk's registration: `off` (not required), `registering`,
    /// `registered`, or `failing` (the registrar refuses or does not
    /// answer: nobody is dialled through the trunk, checks are held, the
    /// operator was told). Not a fault of this node either.
    registration: &'static str,
    /// The trunk's targets and whether each answered its last OPTIONS
    /// keep-alive (`[trunk] keepalive_s`); a down one is tried last.
    trunk_targets: Vec<TargetHealth>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TargetHealth {
    addr: String,
    up: bool,
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "system",
    summary = "200 when storage, SIP and every media worker are up; 503 otherwise. `trunk` says whether the carrier is taking calls",
    responses(
        (status = 200, body = Health),
        (status = 503, body = Health),
    ),
)]
pub(crate) async fn healthz(State(api): S) -> Response {
    // Reads work and the last write did not fail.
    let storage = api.svc.store.next_due_ms().is_ok() && api.svc.store.writes_ok();
    let sip = api.sip_up.load(std::sync::atomic::Ordering::Relaxed);
    // Every media worker running (a dead one fails its calls as system faults).
    let (alive, started) = api.svc.calls.placer.media_health();
    let media = alive == started;
    let code = if storage && sip && media {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    reply(
        code,
        &Health {
            storage,
            sip,
            media,
            trunk: api.svc.circuit().state().as_str(),
            registration: api.svc.calls.placer.registration().as_str(),
            trunk_targets: api
                .svc
                .calls
                .placer
                .trunk_targets()
                .into_iter()
                .map(|(a, up)| TargetHealth {
                    addr: a.to_string(),
                    up,
                })
                .collect(),
        },
    )
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "system",
    summary = "Prometheus text exposition (the operator's token, or `[api] metrics_token`)",
    responses((status = 200, body = String, content_type = "text/plain; version=0.0.4"), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn metrics(State(api): S, headers: axum::http::HeaderMap) -> R<Response> {
    // The whole service's counts are the operator's: a scrape token of
    // its own (so Prometheus holds no admin token), or the operator's.
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| hash_token(t.trim()));
    let scrape_ok = match (presented, api.metrics_hash) {
        (Some(h), Some(m)) => same_hash(&h, &m),
        _ => false,
    };
    if !scrape_ok && caller(&api, &headers)? != Caller::Operator {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "metrics need the operator's token or the scrape token",
        ));
    }
    let mut text = api.svc.metrics.render();
    // Storage's own health: 0 while writes fail (no call is admitted then).
    text.push_str(&format!(
        "# HELP genki_storage_writes_ok 1 when storage accepts writes, 0 while they fail (no call is started then).\n\
         # TYPE genki_storage_writes_ok gauge\ngenki_storage_writes_ok {}\n\
         # HELP genki_storage_write_failures_total Writes storage refused.\n\
         # TYPE genki_storage_write_failures_total counter\ngenki_storage_write_failures_total {}\n\
         # HELP genki_storage_quarantined_total Undecodable records moved aside (never read again; kept in the quarantine column family).\n\
         # TYPE genki_storage_quarantined_total counter\ngenki_storage_quarantined_total {}\n\
         # HELP genki_operator_notices_total Notices raised for the operator (trunk down or recovered, storage failing or recovered).\n\
         # TYPE genki_operator_notices_total counter\ngenki_operator_notices_total {}\n",
        u8::from(api.svc.store.writes_ok()),
        api.svc.store.write_failures(),
        api.svc.store.quarantined(),
        api.svc.notices.raised.get()
    ));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "system",
    summary = "This document",
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object)),
)]
pub(crate) async fn openapi_doc() -> Response {
    axum::Json(openapi()).into_response()
}

/// Where to write a backup.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupRequest {
    /// An absolute path on the daemon's machine that does not exist yet;
    /// its parent must. Becomes a data directory (`<dir>/db`).
    dir: String,
}

/// A backup written.
#[derive(Serialize, ToSchema)]
pub(crate) struct BackupDone {
    dir: String,
    /// The database inside it.
    db: String,
    took_ms: u64,
}

/// Which audit entries: a tenant's, from a time on, a page at a time.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQ {
    /// The tenant whose trail to read.
    tenant: u64,
    /// Unix ms: entries at or after it (default 0).
    from: Option<u64>,
    /// The `next` of the page before ("<at_ms>-<seq>"): entries after it.
    after: Option<String>,
    /// Entries at most (1–1000, default 100).
    limit: Option<usize>,
}

/// One audit entry: when, its sequence number, and what was done (who,
/// what, on which record).
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditEntry {
    at_ms: u64,
    seq: u64,
    #[schema(value_type = Object)]
    entry: Value,
}

/// A page of a tenant's audit trail.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditPage {
    entries: Vec<AuditEntry>,
    /// Pass as `after` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "system",
    summary = "A tenant's audit trail: every API change and every read of personal data (operator only)",
    params(AuditQ),
    responses((status = 200, body = AuditPage), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn audit(
    State(api): S,
    who: Caller,
    axum::extract::Query(q): axum::extract::Query<AuditQ>,
) -> R<Response> {
    if who != Caller::Operator {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the audit trail is the operator's",
        ));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let from = match q.after.as_deref().filter(|a| !a.is_empty()) {
        Some(a) => {
            let (at, seq) = a
                .split_once('-')
                .and_then(|(x, y)| Some((x.parse::<u64>().ok()?, y.parse::<u64>().ok()?)))
                .ok_or_else(|| ApiError::bad("after", "the next of a page: <at_ms>-<seq>"))?;
            (at, seq.saturating_add(1))
        }
        None => (q.from.unwrap_or(0), 0),
    };
    let rows = api.svc.store.audit_of(q.tenant, from, limit)?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| format!("{}-{}", r.0, r.1)))
        .flatten();
    let entries = rows
        .into_iter()
        .map(|(at_ms, seq, entry)| AuditEntry { at_ms, seq, entry })
        .collect();
    Ok(reply(StatusCode::OK, &AuditPage { entries, next }))
}

#[utoipa::path(
    post,
    path = "/v1/backup",
    tag = "system",
    summary = "Write a consistent backup of the database while genki runs (operator only)",
    description = "A RocksDB checkpoint at one point in time, taken while calls go on: `<dir>/db` and a `backup.json` describing it. `<dir>` is a data directory: to restore, stop genki and start it with `storage.path = <dir>` (or copy `<dir>` into place). 409 if `<dir>` exists, 422 if it is not absolute or its parent does not exist.",
    request_body = BackupRequest,
    responses((status = 201, body = BackupDone), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn backup(
    State(api): S,
    who: Caller,
    StrictJson(req): StrictJson<BackupRequest>,
) -> R<Response> {
    if who != Caller::Operator {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the operator takes backups",
        ));
    }
    let dir = std::path::PathBuf::from(&req.dir);
    if !dir.is_absolute() {
        return Err(ApiError::bad(
            "dir",
            "an absolute path on the daemon's machine",
        ));
    }
    if !dir.parent().is_some_and(|p| p.is_dir()) {
        return Err(ApiError::bad("dir", "its parent directory does not exist"));
    }
    let started = std::time::Instant::now();
    // create_dir, not create_dir_all: an existing directory is refused
    // (a backup never overwrites anything).
    if let Err(e) = std::fs::create_dir(&dir) {
        return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
            ApiError::new(
                StatusCode::CONFLICT,
                "exists",
                "dir already exists; choose a new one",
            )
        } else {
            ApiError::bad("dir", format!("cannot create it: {e}"))
        });
    }
    let db = dir.join("db");
    let store = api.svc.store.clone();
    let taken = crate::rt::blocking(|| store.checkpoint(&db));
    if let Err(e) = taken {
        tracing::error!(dir = %dir.display(), error = %e, "backup failed");
        let _ = std::fs::remove_dir_all(&dir);
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "backup_failed",
            format!("the backup could not be written: {e}"),
        ));
    }
    let meta = serde_json::json!({
        "genki": env!("CARGO_PKG_VERSION"),
        "taken_at_ms": now_ms(&api),
        "restore": "stop genki; start it with storage.path set to this directory (or copy it into place)",
    });
    let _ = std::fs::write(dir.join("backup.json"), format!("{meta:#}\n"));
    let took_ms = started.elapsed().as_millis() as u64;
    tracing::info!(dir = %dir.display(), took_ms, "backup written");
    Ok(reply(
        StatusCode::CREATED,
        &BackupDone {
            dir: dir.display().to_string(),
            db: db.display().to_string(),
            took_ms,
        },
    ))
}

pub(crate) async fn fallback() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        "no such route; see GET /v1/openapi.json",
    )
}

/// The admin API's OpenAPI document, generated from the handlers'
/// `#[utoipa::path]` annotations and the request and response types.
#[derive(OpenApi)]
#[openapi(
    info(title = "genki admin API", description = "Welfare-check calls: tenants, the people they call, checks and their outcomes, alert cases and the watchers who act on them. `Authorization: Bearer <token>`: the operator token can do everything, a tenant token sees only its tenant (other tenants' ids answer 404)."),
    paths(
        healthz,
        metrics,
        openapi_doc,
        backup,
        audit,
        super::tenants::create_tenant,
        super::tenants::get_tenant,
        super::tenants::patch_tenant,
        super::tenants::issue_token,
        super::tenants::list_tokens,
        super::tenants::revoke_token,
        super::subscribers::create_subscriber,
        super::subscribers::list_subscribers,
        super::subscribers::import_subscribers,
        super::subscribers::get_subscriber,
        super::subscribers::patch_subscriber,
        super::subscribers::delete_subscriber,
        super::checks::request_check,
        super::checks::get_check,
        super::reports::outcomes,
        super::reports::summary,
        super::prompts::put_prompt,
        super::alerts::create_watcher,
        super::alerts::list_watchers,
        super::alerts::get_watcher,
        super::alerts::patch_watcher,
        super::alerts::delete_watcher,
        super::alerts::put_tenant_ladder,
        super::alerts::get_tenant_ladder,
        super::alerts::delete_tenant_ladder,
        super::alerts::put_subscriber_ladder,
        super::alerts::get_subscriber_ladder,
        super::alerts::delete_subscriber_ladder,
        super::alerts::list_alerts,
        super::alerts::get_alert,
        super::alerts::ack_alert,
        super::alerts::pass_alert,
        super::alerts::resolve_alert,
        super::staff::create_staff,
        super::staff::list_staff,
        super::staff::patch_staff,
        super::staff::delete_staff,
    ),
    modifiers(&Bearer)
)]
pub struct ApiDoc;

/// The bearer token scheme every authenticated route names.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// The OpenAPI 3.1 document of every route, as JSON.
pub fn openapi() -> Value {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    serde_json::to_value(doc).expect("the document serialises")
}
