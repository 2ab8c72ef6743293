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
use genki_store::{AlertCase, CaseState, Ladder, LadderOf, Watcher};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::alerts::cases::CaseError;
use crate::api::common::{
    load_subscriber, load_tenant, now_ms, validate_name, validate_phone, Api, ApiError, Caller,
    Route, StrictJson, R, S,
};
use crate::checks::schedule::parse_hhmm;

/// A watcher as the API shows it: the webhook secret never leaves.
fn watcher_json(w: &Watcher) -> Value {
    let mut v = serde_json::to_value(w).expect("JSON");
    v["webhook_secret"] = Value::Null;
    v["webhook_secret_set"] = Value::Bool(w.webhook_secret.is_some());
    v
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct WatcherPatch {
    name: Option<String>,
    phone: Option<Option<String>>,
    email: Option<Option<String>>,
    webhook_url: Option<Option<String>>,
    webhook_secret: Option<Option<String>>,
    quiet_start: Option<Option<String>>,
    quiet_end: Option<Option<String>>,
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

async fn create_watcher(
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
    let w = api.svc.store.put_watcher(w)?;
    Ok((StatusCode::CREATED, axum::Json(watcher_json(&w))).into_response())
}

async fn list_watchers(State(api): S, who: Caller, Path(tid): Path<u64>) -> R<Response> {
    let t = load_tenant(&api, who, tid)?;
    let ws: Vec<Value> = api
        .svc
        .store
        .watchers_of(t.id)?
        .iter()
        .map(watcher_json)
        .collect();
    Ok(axum::Json(json!({ "watchers": ws })).into_response())
}

async fn get_watcher(State(api): S, who: Caller, Path(id): Path<u64>) -> R<Response> {
    Ok(axum::Json(watcher_json(&load_watcher(&api, who, id)?)).into_response())
}

async fn patch_watcher(
    State(api): S,
    who: Caller,
    Path(id): Path<u64>,
    StrictJson(p): StrictJson<WatcherPatch>,
) -> R<Response> {
    let mut w = load_watcher(&api, who, id)?;
    apply_watcher_patch(&mut w, p)?;
    let w = api.svc.store.put_watcher(w)?;
    Ok(axum::Json(watcher_json(&w)).into_response())
}

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

fn case_summary(c: &AlertCase) -> Value {
    json!({
        "id": c.id, "tenant_id": c.tenant_id, "subscriber_id": c.subscriber_id,
        "state": c.state, "severity": c.severity, "opened_at_ms": c.opened_at_ms,
        "tier": c.tier, "tier_deadline_ms": c.tier_deadline_ms, "exhausted": c.exhausted,
        "outcomes": c.outcomes, "acked_by": c.acked_by, "acked_at_ms": c.acked_at_ms,
        "resolved_by": c.resolved_by, "resolved_at_ms": c.resolved_at_ms, "note": c.note,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CaseQuery {
    state: Option<String>,
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

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
    let next_after = out.last().and_then(|c| c["id"].as_u64());
    Ok(axum::Json(json!({"alerts": out, "next_after": next_after})).into_response())
}

fn load_case(api: &Api, who: Caller, id: u64) -> R<AlertCase> {
    match api.svc.store.alert_case(id)? {
        Some(c) if who.can_see(c.tenant_id) => Ok(c),
        _ => Err(ApiError::not_found("alert")),
    }
}

async fn get_alert(State(api): S, who: Caller, Path(id): Path<u64>) -> R<Response> {
    let c = load_case(&api, who, id)?;
    let mut v = case_summary(&c);
    v["told"] = serde_json::to_value(&c.told).expect("JSON");
    v["timeline"] = serde_json::to_value(&c.timeline).expect("JSON");
    v["notifications"] = serde_json::to_value(api.svc.store.notifications_of(c.id)?).expect("JSON");
    Ok(axum::Json(v).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CaseAction {
    by: String,
    #[serde(default)]
    note: Option<String>,
}

fn case_error(e: CaseError) -> ApiError {
    match e {
        CaseError::NotFound => ApiError::not_found("alert"),
        CaseError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
        CaseError::Store(e) => e.into(),
    }
}

async fn case_action(
    api: Arc<Api>,
    who: Caller,
    id: u64,
    a: CaseAction,
    resolve: bool,
) -> R<Response> {
    load_case(&api, who, id)?;
    if a.by.trim().is_empty() || a.by.len() > 200 {
        return Err(ApiError::bad("by", "1–200 characters: who is acting"));
    }
    if a.note.as_ref().is_some_and(|n| n.len() > 4000) {
        return Err(ApiError::bad("note", "at most 4000 characters"));
    }
    let alerts = api.alerts.clone();
    let r = tokio::task::spawn_blocking(move || {
        if resolve {
            alerts.resolve(id, &a.by, a.note.as_deref())
        } else {
            alerts.ack(id, &a.by, a.note.as_deref())
        }
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
        &json!({"by": format!("{who:?}"), "did": if resolve { "resolve_alert" } else { "ack_alert" }, "case": c.id}),
    )?;
    Ok(axum::Json(case_summary(&c)).into_response())
}

async fn ack_alert(
    State(api): S,
    who: Caller,
    Path(id): Path<u64>,
    StrictJson(a): StrictJson<CaseAction>,
) -> R<Response> {
    case_action(api, who, id, a, false).await
}

async fn resolve_alert(
    State(api): S,
    who: Caller,
    Path(id): Path<u64>,
    StrictJson(a): StrictJson<CaseAction>,
) -> R<Response> {
    case_action(api, who, id, a, true).await
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
            put(|s, h, Path(id), b| put_ladder(s, h, "tenants", id, b))
                .get(|s, h, Path(id)| get_ladder(s, h, "tenants", id))
                .delete(|s, h, Path(id)| delete_ladder(s, h, "tenants", id)),
        ),
        (
            "/v1/subscribers/{id}/ladder",
            &["put", "get", "delete"],
            put(|s, h, Path(id), b| put_ladder(s, h, "subscribers", id, b))
                .get(|s, h, Path(id)| get_ladder(s, h, "subscribers", id))
                .delete(|s, h, Path(id)| delete_ladder(s, h, "subscribers", id)),
        ),
        ("/v1/tenants/{id}/alerts", &["get"], get(list_alerts)),
        ("/v1/alerts/{id}", &["get"], get(get_alert)),
        ("/v1/alerts/{id}/ack", &["post"], post(ack_alert)),
        ("/v1/alerts/{id}/resolve", &["post"], post(resolve_alert)),
    ]
}

/// OpenAPI paths of these routes.
pub fn openapi_paths(op: impl Fn(&str, &str) -> Value, id: impl Fn(&str) -> Value) -> Value {
    json!({
        "/v1/tenants/{tenant_id}/watchers": {"parameters": [id("tenant_id")], "post": op("Create a watcher (name, phone, email, webhook_url + webhook_secret, quiet_start/quiet_end)", "201"), "get": op("List the tenant's watchers", "200")},
        "/v1/watchers/{id}": {"parameters": [id("id")], "get": op("Read a watcher (the secret is never returned)", "200"), "patch": op("Change a watcher", "200"), "delete": op("Remove a watcher", "204")},
        "/v1/tenants/{tenant_id}/ladder": {"parameters": [id("tenant_id")], "put": op("Set the tenant's default ladder: {tiers: [{watchers: [ids], deadline_s}]}", "200"), "get": op("Read it", "200"), "delete": op("Remove it", "204")},
        "/v1/subscribers/{id}/ladder": {"parameters": [id("id")], "put": op("Set a subscriber's own ladder", "200"), "get": op("Read it", "200"), "delete": op("Remove it (the tenant's applies)", "204")},
        "/v1/tenants/{tenant_id}/alerts": {"parameters": [id("tenant_id")], "get": op("Alert cases (state=open|unacknowledged|acknowledged|resolved|all, after, limit)", "200")},
        "/v1/alerts/{id}": {"parameters": [id("id")], "get": op("A case with its whole timeline and notifications", "200")},
        "/v1/alerts/{id}/ack": {"parameters": [id("id")], "post": op("Take the case: {by, note?}; 409 if already taken or resolved", "200")},
        "/v1/alerts/{id}/resolve": {"parameters": [id("id")], "post": op("Close an acknowledged case: {by, note?}; everyone told gets the all-clear", "200")}
    })
}
