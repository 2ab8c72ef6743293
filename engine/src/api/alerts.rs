//! The alert routes of the admin API: watchers, ladders, cases (list,
//! timeline, ack, resolve). Same rules as [`crate::api`]: bearer tokens,
//! tenant isolation (other tenants' ids answer 404), JSON errors naming
//! the field, nothing changed by a request that fails validation.
//!
//! Depends on: axum, genki-storage, [`crate::api`] (auth, errors, parsing),
//! [`crate::alerts::cases`].

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use genki_store::{
    AlertCase, CaseEvent, CaseOutcome, CaseState, Ladder, LadderOf, Notification, Severity, Told,
    Watcher,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::alerts::cases::CaseError;
use crate::api::common::{
    audit_read, clearable, load_subscriber, load_tenant, now_ms, phone_allowed, reply,
    validate_name, validate_phone, Api, ApiError, Caller, ErrorBody, Route, StrictJson, R, S,
};
use crate::checks::schedule::parse_hhmm;

/// A watcher as the API shows it: the webhook secret never leaves
/// (`webhook_secret` is always null; `webhook_secret_set` tells if one is set).
#[derive(Serialize, ToSchema)]
pub(crate) struct WatcherView {
    id: u64,
    tenant_id: u64,
    name: String,
    phone: Option<String>,
    email: Option<String>,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    webhook_secret_set: bool,
    quiet_start: Option<String>,
    quiet_end: Option<String>,
    created_at_ms: u64,
}

fn watcher_view(w: &Watcher) -> WatcherView {
    WatcherView {
        id: w.id,
        tenant_id: w.tenant_id,
        name: w.name.clone(),
        phone: w.phone.clone(),
        email: w.email.clone(),
        webhook_url: w.webhook_url.clone(),
        webhook_secret: None,
        webhook_secret_set: w.webhook_secret.is_some(),
        quiet_start: w.quiet_start.clone(),
        quiet_end: w.quiet_end.clone(),
        created_at_ms: w.created_at_ms,
    }
}

/// A tenant's watchers.
#[derive(Serialize, ToSchema)]
pub(crate) struct WatcherList {
    watchers: Vec<WatcherView>,
}

/// A watcher to create (name required), or the fields of one to change.
#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WatcherPatch {
    name: Option<String>,
    #[serde(default, deserialize_with = "clearable")]
    phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "clearable")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "clearable")]
    webhook_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "clearable")]
    webhook_secret: Option<Option<String>>,
    #[serde(default, deserialize_with = "clearable")]
    quiet_start: Option<Option<String>>,
    #[serde(default, deserialize_with = "clearable")]
    quiet_end: Option<Option<String>>,
}

/// Seal a webhook secret the patch just set (one already stored is
/// sealed): only the notifier opens it, to sign.
fn seal_secret(api: &Api, w: &mut Watcher) {
    if let Some(s) = &w.webhook_secret {
        if !crate::secrets::SecretBox::is_sealed(s) {
            w.webhook_secret = Some(api.secrets.seal(s));
        }
    }
}

fn apply_watcher_patch(w: &mut Watcher, p: WatcherPatch) -> R<()> {
    if let Some(n) = p.name {
        validate_name(&n)?;
        w.name = n;
    }
    if let Some(v) = p.phone {
        if let Some(ph) = &v {
            validate_phone(ph).map_err(|e| ApiError::bad("phone", e))?;
        }
        w.phone = v;
    }
    if let Some(v) = p.email {
        if let Some(e) = &v {
            // lettre's parser refuses CR/LF and anything that is not one mailbox.
            e.parse::<lettre::message::Mailbox>()
                .map_err(|err| ApiError::bad("email", format!("not an e-mail address: {err}")))?;
        }
        w.email = v;
    }
    if let Some(v) = p.webhook_url {
        if let Some(u) = &v {
            let url = reqwest::Url::parse(u)
                .map_err(|e| ApiError::bad("webhook_url", format!("not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(ApiError::bad(
                    "webhook_url",
                    "must be an http(s) URL with a host",
                ));
            }
        }
        w.webhook_url = v;
    }
    if let Some(v) = p.webhook_secret {
        if v.as_ref().is_some_and(|s| s.len() < 16 || s.len() > 200) {
            return Err(ApiError::bad("webhook_secret", "16–200 characters"));
        }
        if v.as_deref()
            .is_some_and(crate::secrets::SecretBox::is_sealed)
        {
            return Err(ApiError::bad(
                "webhook_secret",
                "a secret may not begin with \"sealed1:\" (genki's mark of a sealed one)",
            ));
        }
        w.webhook_secret = v;
    }
    if let Some(v) = p.quiet_start {
        w.quiet_start = v;
    }
    if let Some(v) = p.quiet_end {
        w.quiet_end = v;
    }
    match (&w.quiet_start, &w.quiet_end) {
        (Some(a), Some(b)) => {
            parse_hhmm("quiet_start", a).map_err(|e| ApiError::bad(e.field, e.message))?;
            parse_hhmm("quiet_end", b).map_err(|e| ApiError::bad(e.field, e.message))?;
        }
        (None, None) => {}
        (Some(_), None) => {
            return Err(ApiError::bad(
                "quiet_end",
                "give both quiet_start and quiet_end, or neither",
            ))
        }
        (None, Some(_)) => {
            return Err(ApiError::bad(
                "quiet_start",
                "give both quiet_start and quiet_end, or neither",
            ))
        }
    }
    if w.webhook_url.is_some() && w.webhook_secret.is_none() {
        return Err(ApiError::bad(
            "webhook_secret",
            "required with webhook_url (events are signed with it)",
        ));
    }
    if w.phone.is_none() && w.email.is_none() && w.webhook_url.is_none() {
        return Err(ApiError::bad(
            "phone",
            "a watcher needs at least one of phone, email, webhook_url",
        ));
    }
    Ok(())
}

fn load_watcher(api: &Api, who: Caller, id: u64) -> R<Watcher> {
    match api.svc.store.watcher(id)? {
        Some(w) if who.can_see(w.tenant_id) => Ok(w),
        _ => Err(ApiError::not_found("watcher")),
    }
}

#[utoipa::path(
    post,
    path = "/v1/tenants/{id}/watchers",
    tag = "alerts",
    summary = "Create a watcher (name; phone, email, webhook_url + webhook_secret, quiet hours)",
    params(("id" = u64, Path, description = "tenant id")),
    request_body = WatcherPatch,
    responses((status = 201, body = WatcherView), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn create_watcher(
    State(api): S,
    who: Caller,
    Path(tid): Path<u64>,
    StrictJson(p): StrictJson<WatcherPatch>,
) -> R<Response> {
    let t = load_tenant(&api, who, tid)?;
    if p.name.is_none() {
        return Err(ApiError::bad("name", "required"));
    }
    let mut w = Watcher {
        id: 0,
        tenant_id: t.id,
        name: String::new(),
        phone: None,
        email: None,
        webhook_url: None,
        webhook_secret: None,
        quiet_start: None,
        quiet_end: None,
        created_at_ms: now_ms(&api),
    };
    apply_watcher_patch(&mut w, p)?;
    if let Some(ph) = &w.phone {
        phone_allowed(&api, &t, "phone", ph)?;
    }
    seal_secret(&api, &mut w);
    let w = api.svc.store.put_watcher(w)?;
    Ok(reply(StatusCode::CREATED, &watcher_view(&w)))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/watchers",
    tag = "alerts",
    summary = "List the tenant's watchers",
    params(("id" = u64, Path, description = "tenant id")),
    responses((status = 200, body = WatcherList), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn list_watchers(State(api): S, who: Caller, Path(tid): Path<u64>) -> R<Response> {
    let t = load_tenant(&api, who, tid)?;
    let watchers = api
        .svc
        .store
        .watchers_of(t.id)?
        .iter()
        .map(watcher_view)
        .collect();
    Ok(reply(StatusCode::OK, &WatcherList { watchers }))
}

#[utoipa::path(
    get,
    path = "/v1/watchers/{id}",
    tag = "alerts",
    summary = "Read a watcher (the secret is never returned)",
    params(("id" = u64, Path, description = "watcher id")),
    responses((status = 200, body = WatcherView), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn get_watcher(State(api): S, who: Caller, Path(id): Path<u64>) -> R<Response> {
    Ok(reply(
        StatusCode::OK,
        &watcher_view(&load_watcher(&api, who, id)?),
    ))
}

#[utoipa::path(
    patch,
    path = "/v1/watchers/{id}",
    tag = "alerts",
    summary = "Change a watcher",
    params(("id" = u64, Path, description = "watcher id")),
    request_body = WatcherPatch,
    responses((status = 200, body = WatcherView), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn patch_watcher(
    State(api): S,
    who: Caller,
    Path(id): Path<u64>,
    StrictJson(p): StrictJson<WatcherPatch>,
) -> R<Response> {
    let mut w = load_watcher(&api, who, id)?;
    apply_watcher_patch(&mut w, p)?;
    if let Some(ph) = &w.phone {
        let t = load_tenant(&api, who, w.tenant_id)?;
        phone_allowed(&api, &t, "phone", ph)?;
    }
    seal_secret(&api, &mut w);
    let w = api.svc.store.put_watcher(w)?;
    Ok(reply(StatusCode::OK, &watcher_view(&w)))
}

#[utoipa::path(
    delete,
    path = "/v1/watchers/{id}",
    tag = "alerts",
    summary = "Remove a watcher",
    params(("id" = u64, Path, description = "watcher id")),
    responses((status = 204, description = "removed"), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn delete_watcher(State(api): S, who: Caller, Path(id): Path<u64>) -> R<Response> {
    let w = load_watcher(&api, who, id)?;
    api.svc.store.delete_watcher(&w)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Tiers: 1–10, each with 1–50 watchers of this tenant and a deadline of 10 s – 7 days.
fn validate_ladder(api: &Api, tenant_id: u64, l: &Ladder) -> R<()> {
    if l.tiers.is_empty() || l.tiers.len() > 10 {
        return Err(ApiError::bad("tiers", "1–10 tiers"));
    }
    for (i, t) in l.tiers.iter().enumerate() {
        if t.watchers.is_empty() || t.watchers.len() > 50 {
            return Err(ApiError::bad(
                &format!("tiers[{i}].watchers"),
                "1–50 watcher ids",
            ));
        }
        for (j, w) in t.watchers.iter().enumerate() {
            if api
                .svc
                .store
                .watcher(*w)?
                .is_none_or(|w| w.tenant_id != tenant_id)
            {
                return Err(ApiError::bad(
                    &format!("tiers[{i}].watchers[{j}]"),
                    format!("no watcher {w} in this tenant"),
                ));
            }
        }
        if !(10..=7 * 86_400).contains(&t.deadline_s) {
            return Err(ApiError::bad(
                &format!("tiers[{i}].deadline_s"),
                "10–604800 seconds",
            ));
        }
    }
    Ok(())
}

/// Whose ladder a path names, after checking the caller may see it.
fn ladder_target(api: &Api, who: Caller, kind: &str, id: u64) -> R<(LadderOf, u64)> {
    if kind == "tenants" {
        let t = load_tenant(api, who, id)?;
        Ok((LadderOf::Tenant(t.id), t.id))
    } else {
        let s = load_subscriber(api, who, id)?;
        Ok((LadderOf::Subscriber(s.id), s.tenant_id))
    }
}

async fn put_ladder(
    State(api): S,
    who: Caller,
    kind: &str,
    id: u64,
    StrictJson(l): StrictJson<Ladder>,
) -> R<Response> {
    let (of, tenant) = ladder_target(&api, who, kind, id)?;
    validate_ladder(&api, tenant, &l)?;
    api.svc.store.put_ladder(of, &l)?;
    Ok(axum::Json(l).into_response())
}

async fn get_ladder(State(api): S, who: Caller, kind: &str, id: u64) -> R<Response> {
    let (of, _) = ladder_target(&api, who, kind, id)?;
    match api.svc.store.ladder(of)? {
        Some(l) => Ok(axum::Json(l).into_response()),
        None => Err(ApiError::not_found("ladder")),
    }
}

async fn delete_ladder(State(api): S, who: Caller, kind: &str, id: u64) -> R<Response> {
    let (of, _) = ladder_target(&api, who, kind, id)?;
    api.svc.store.delete_ladder(of)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    put,
    path = "/v1/tenants/{id}/ladder",
    tag = "alerts",
    summary = "Set the tenant's default ladder: tiers of watchers with deadlines",
    params(("id" = u64, Path, description = "tenant id")),
    request_body = Ladder,
    responses((status = 200, body = Ladder), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn put_tenant_ladder(
    s: S,
    who: Caller,
    Path(id): Path<u64>,
    l: StrictJson<Ladder>,
) -> R<Response> {
    put_ladder(s, who, "tenants", id, l).await
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/ladder",
    tag = "alerts",
    summary = "Read the tenant's ladder",
    params(("id" = u64, Path, description = "tenant id")),
    responses((status = 200, body = Ladder), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn get_tenant_ladder(s: S, who: Caller, Path(id): Path<u64>) -> R<Response> {
    get_ladder(s, who, "tenants", id).await
}

#[utoipa::path(
    delete,
    path = "/v1/tenants/{id}/ladder",
    tag = "alerts",
    summary = "Remove the tenant's ladder",
    params(("id" = u64, Path, description = "tenant id")),
    responses((status = 204, description = "removed"), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn delete_tenant_ladder(s: S, who: Caller, Path(id): Path<u64>) -> R<Response> {
    delete_ladder(s, who, "tenants", id).await
}

#[utoipa::path(
    put,
    path = "/v1/subscribers/{id}/ladder",
    tag = "alerts",
    summary = "Set the subscriber's own ladder: tiers of watchers with deadlines",
    params(("id" = u64, Path, description = "subscriber id")),
    request_body = Ladder,
    responses((status = 200, body = Ladder), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn put_subscriber_ladder(
    s: S,
    who: Caller,
    Path(id): Path<u64>,
    l: StrictJson<Ladder>,
) -> R<Response> {
    put_ladder(s, who, "subscribers", id, l).await
}

#[utoipa::path(
    get,
    path = "/v1/subscribers/{id}/ladder",
    tag = "alerts",
    summary = "Read the subscriber's ladder",
    params(("id" = u64, Path, description = "subscriber id")),
    responses((status = 200, body = Ladder), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn get_subscriber_ladder(s: S, who: Caller, Path(id): Path<u64>) -> R<Response> {
    get_ladder(s, who, "subscribers", id).await
}

#[utoipa::path(
    delete,
    path = "/v1/subscribers/{id}/ladder",
    tag = "alerts",
    summary = "Remove the subscriber's ladder (the tenant's applies)",
    params(("id" = u64, Path, description = "subscriber id")),
    responses((status = 204, description = "removed"), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn delete_subscriber_ladder(s: S, who: Caller, Path(id): Path<u64>) -> R<Response> {
    delete_ladder(s, who, "subscribers", id).await
}

/// An alert case in a list (without its timeline).
#[derive(Serialize, ToSchema)]
pub(crate) struct CaseSummary {
    id: u64,
    tenant_id: u64,
    subscriber_id: u64,
    state: CaseState,
    severity: Severity,
    opened_at_ms: u64,
    tier: u32,
    tier_deadline_ms: Option<u64>,
    exhausted: bool,
    outcomes: Vec<CaseOutcome>,
    acked_by: Option<String>,
    acked_at_ms: Option<u64>,
    resolved_by: Option<String>,
    resolved_at_ms: Option<u64>,
    note: Option<String>,
}

fn case_summary(c: &AlertCase) -> CaseSummary {
    CaseSummary {
        id: c.id,
        tenant_id: c.tenant_id,
        subscriber_id: c.subscriber_id,
        state: c.state,
        severity: c.severity,
        opened_at_ms: c.opened_at_ms,
        tier: c.tier,
        tier_deadline_ms: c.tier_deadline_ms,
        exhausted: c.exhausted,
        outcomes: c.outcomes.clone(),
        acked_by: c.acked_by.clone(),
        acked_at_ms: c.acked_at_ms,
        resolved_by: c.resolved_by.clone(),
        resolved_at_ms: c.resolved_at_ms,
        note: c.note.clone(),
    }
}

/// A page of cases; `next_after` is the case id to ask after for the next.
#[derive(Serialize, ToSchema)]
pub(crate) struct CaseList {
    alerts: Vec<CaseSummary>,
    next_after: Option<u64>,
}

/// A case with who was told, its whole timeline and its notifications.
#[derive(Serialize, ToSchema)]
pub(crate) struct CaseView {
    #[serde(flatten)]
    case: CaseSummary,
    told: Vec<Told>,
    timeline: Vec<CaseEvent>,
    notifications: Vec<Notification>,
}

/// Which cases: `state` open (not yet resolved), unacknowledged,
/// acknowledged, resolved or all (default); a page after `after`, at most
/// `limit` (1–1000, default 100).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct CaseQuery {
    state: Option<String>,
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/alerts",
    tag = "alerts",
    summary = "Alert cases, a page at a time",
    params(("id" = u64, Path, description = "tenant id"), CaseQuery),
    responses((status = 200, body = CaseList), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn list_alerts(
    State(api): S,
    who: Caller,
    Path(tid): Path<u64>,
    q: Result<Query<CaseQuery>, axum::extract::rejection::QueryRejection>,
) -> R<Response> {
    let t = load_tenant(&api, who, tid)?;
    let Query(q) = q.map_err(|e| ApiError::bad("query", e.body_text()))?;
    let want: Option<Vec<CaseState>> = match q.state.as_deref() {
        None | Some("all") => None,
        // "open" is what still needs someone: not yet resolved.
        Some("open") => Some(vec![CaseState::Open, CaseState::Acknowledged]),
        Some("unacknowledged") => Some(vec![CaseState::Open]),
        Some("acknowledged") => Some(vec![CaseState::Acknowledged]),
        Some("resolved") => Some(vec![CaseState::Resolved]),
        Some(other) => {
            return Err(ApiError::bad(
                "state",
                format!("{other:?}: one of open, unacknowledged, acknowledged, resolved, all"),
            ))
        }
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let mut out = Vec::new();
    let mut after = q.after;
    // Filtered pages: scan on until `limit` matches or the tenant's cases end.
    loop {
        let page = api.svc.store.cases_of(t.id, after, 1000)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for c in &page {
            if want.as_ref().is_none_or(|w| w.contains(&c.state)) && out.len() < limit {
                out.push(case_summary(c));
            }
        }
        if out.len() >= limit || page.len() < 1000 {
            break;
        }
    }
    let next_after = out.last().map(|c| c.id);
    Ok(reply(
        StatusCode::OK,
        &CaseList {
            alerts: out,
            next_after,
        },
    ))
}

pub(crate) fn load_case(api: &Api, who: Caller, id: u64) -> R<AlertCase> {
    match api.svc.store.alert_case(id)? {
        Some(c) if who.can_see(c.tenant_id) => Ok(c),
        _ => Err(ApiError::not_found("alert")),
    }
}

#[utoipa::path(
    get,
    path = "/v1/alerts/{id}",
    tag = "alerts",
    summary = "A case with its whole timeline and notifications",
    params(("id" = u64, Path, description = "case id")),
    responses((status = 200, body = CaseView), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn get_alert(State(api): S, who: Caller, Path(id): Path<u64>) -> R<Response> {
    let c = load_case(&api, who, id)?;
    audit_read(
        &api,
        who,
        c.tenant_id,
        json!({"did": "read_alert", "case": c.id}),
    )?;
    // The notifications first, then the case again: a delivery's state and
    // its timeline event are one batch, so a case read after its
    // notifications is at least as new as they are (never a notification
    // `given_up` beside a timeline that lacks it — a torn read the slow
    // audit write above made likely).
    let notifications = api.svc.store.notifications_of(c.id)?;
    let c = api.svc.store.alert_case(c.id)?.unwrap_or(c);
    let view = CaseView {
        case: case_summary(&c),
        notifications,
        told: c.told,
        timeline: c.timeline,
    };
    Ok(reply(StatusCode::OK, &view))
}

/// Who takes or closes the case, and a note.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CaseAction {
    pub(crate) by: String,
    #[serde(default)]
    pub(crate) note: Option<String>,
}

fn case_error(e: CaseError) -> ApiError {
    match e {
        CaseError::NotFound => ApiError::not_found("alert"),
        CaseError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
        CaseError::Store(e) => e.into(),
    }
}

/// What is done to a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    Ack,
    Pass,
    Resolve,
}

impl Act {
    fn audit_word(self) -> &'static str {
        match self {
            Act::Ack => "ack_alert",
            Act::Pass => "pass_alert",
            Act::Resolve => "resolve_alert",
        }
    }
}

/// Take, pass or resolve a case: the one rule for the API and the console.
pub(crate) async fn case_action(
    api: Arc<Api>,
    who: Caller,
    id: u64,
    a: CaseAction,
    act: Act,
) -> R<Response> {
    load_case(&api, who, id)?;
    if a.by.trim().is_empty() || a.by.len() > 200 {
        return Err(ApiError::bad("by", "1–200 characters: who is acting"));
    }
    if a.note.as_ref().is_some_and(|n| n.len() > 4000) {
        return Err(ApiError::bad("note", "at most 4000 characters"));
    }
    let alerts = api.alerts.clone();
    let r = tokio::task::spawn_blocking(move || match act {
        Act::Ack => alerts.ack(id, &a.by, a.note.as_deref()),
        Act::Pass => alerts.pass(id, &a.by, a.note.as_deref()),
        Act::Resolve => alerts.resolve(id, &a.by, a.note.as_deref()),
    })
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the action did not finish",
        )
    })?;
    let c = r.map_err(case_error)?;
    api.svc.store.audit(
        c.tenant_id,
        now_ms(&api),
        &json!({"by": format!("{who:?}"), "did": act.audit_word(), "case": c.id}),
    )?;
    Ok(reply(StatusCode::OK, &case_summary(&c)))
}

#[utoipa::path(
    post,
    path = "/v1/alerts/{id}/ack",
    tag = "alerts",
    summary = "Take the case; 409 if already taken or resolved",
    params(("id" = u64, Path, description = "case id")),
    request_body = CaseAction,
    responses((status = 200, body = CaseSummary), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn ack_alert(
    State(api): S,
    who: Caller,
    Path(id): Path<u64>,
    StrictJson(a): StrictJson<CaseAction>,
) -> R<Response> {
    case_action(api, who, id, a, Act::Ack).await
}

#[utoipa::path(
    post,
    path = "/v1/alerts/{id}/pass",
    tag = "alerts",
    summary = "Pass an open case on: the next tier of the ladder is told now; 409 if taken, resolved or every tier was told",
    params(("id" = u64, Path, description = "case id")),
    request_body = CaseAction,
    responses((status = 200, body = CaseSummary), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn pass_alert(
    State(api): S,
    who: Caller,
    Path(id): Path<u64>,
    StrictJson(a): StrictJson<CaseAction>,
) -> R<Response> {
    case_action(api, who, id, a, Act::Pass).await
}

#[utoipa::path(
    post,
    path = "/v1/alerts/{id}/resolve",
    tag = "alerts",
    summary = "Close a taken case; everyone told gets the all-clear",
    params(("id" = u64, Path, description = "case id")),
    request_body = CaseAction,
    responses((status = 200, body = CaseSummary), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
async fn resolve_alert(
    State(api): S,
    who: Caller,
    Path(id): Path<u64>,
    StrictJson(a): StrictJson<CaseAction>,
) -> R<Response> {
    case_action(api, who, id, a, Act::Resolve).await
}

/// The alert resources' routes (see [`Route`]).
pub fn routes() -> Vec<Route> {
    vec![
        (
            "/v1/tenants/{id}/watchers",
            &["post", "get"],
            post(create_watcher).get(list_watchers),
        ),
        (
            "/v1/watchers/{id}",
            &["get", "patch", "delete"],
            get(get_watcher).patch(patch_watcher).delete(delete_watcher),
        ),
        (
            "/v1/tenants/{id}/ladder",
            &["put", "get", "delete"],
            put(put_tenant_ladder)
                .get(get_tenant_ladder)
                .delete(delete_tenant_ladder),
        ),
        (
            "/v1/subscribers/{id}/ladder",
            &["put", "get", "delete"],
            put(put_subscriber_ladder)
                .get(get_subscriber_ladder)
                .delete(delete_subscriber_ladder),
        ),
        ("/v1/tenants/{id}/alerts", &["get"], get(list_alerts)),
        ("/v1/alerts/{id}", &["get"], get(get_alert)),
        ("/v1/alerts/{id}/ack", &["post"], post(ack_alert)),
        ("/v1/alerts/{id}/pass", &["post"], post(pass_alert)),
        ("/v1/alerts/{id}/resolve", &["post"], post(resolve_alert)),
    ]
}
