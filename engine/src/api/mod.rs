//! The admin HTTP API (axum): JSON, `Authorization: Bearer <token>`. The
//! operator token can do everything; a tenant token sees only its tenant
//! (other tenants' ids answer 404). Every error is
//! `{"error": {"code", "message", "field"?}}` with the right 4xx, and a
//! request that fails validation changes nothing stored.
//!
//! Routes are listed in [`openapi`] (served at `GET /v1/openapi.json`) and README.md.
//!
//! Depends on: axum, genki-storage, [`crate::checks::service`], [`crate::checks::schedule`], [`crate::checks::script`].

pub mod alerts;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use genki_media::wav;
use genki_store::{
    CheckId, CheckStatus, Outcome, RetryPolicy, Schedule, Store, StoreError, Subscriber, Tenant,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::checks::schedule::{validate_schedule, Calendar};
use crate::checks::script::Script;
use crate::checks::service::Service;

/// API state.
pub struct Api {
    pub svc: Arc<Service>,
    pub alerts: Arc<crate::alerts::cases::Alerts>,
    pub operator_hash: [u8; 32],
    pub sip_up: Arc<std::sync::atomic::AtomicBool>,
}

pub(crate) type S = State<Arc<Api>>;

/// An API error: status, machine code, human message, and the field at fault.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }
    pub(crate) fn field(mut self, f: impl Into<String>) -> ApiError {
        self.field = Some(f.into());
        self
    }
    pub(crate) fn bad(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).field(field)
    }
    pub(crate) fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut e = json!({"code": self.code, "message": self.message});
        if let Some(f) = self.field {
            e["field"] = Value::String(f);
        }
        (self.status, axum::Json(json!({ "error": e }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "storage error in the API");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_error",
            "storage is unavailable; nothing was changed",
        )
    }
}

pub(crate) type R<T> = Result<T, ApiError>;

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    Operator,
    Tenant(u64),
}

impl Caller {
    pub(crate) fn can_see(self, tenant: u64) -> bool {
        self == Caller::Operator || self == Caller::Tenant(tenant)
    }
}

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn new_token() -> String {
    let a: u128 = rand::random();
    let b: u128 = rand::random();
    format!("gk_{a:032x}{b:032x}")
}

pub(crate) fn caller(api: &Api, headers: &HeaderMap) -> R<Caller> {
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown bearer token",
        )
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(unauthorized)?;
    let h = hash_token(token.trim());
    if h == api.operator_hash {
        return Ok(Caller::Operator);
    }
    match api.svc.store.token(&h)? {
        Some(0) => Ok(Caller::Operator),
        Some(t) => Ok(Caller::Tenant(t)),
        None => Err(unauthorized()),
    }
}

/// Parse a JSON body strictly; errors name the field (serde_path_to_error).
pub(crate) fn parse<T: DeserializeOwned>(body: &Bytes) -> R<T> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        // serde_path_to_error's path already ends at an unknown field; a
        // missing field is named only in the message.
        let field = match msg
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            Some(f) if path == "." => f.to_string(),
            Some(f) => format!("{path}.{f}"),
            None => path,
        };
        let status = if inner.is_syntax() || inner.is_eof() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let code = if inner.is_syntax() || inner.is_eof() {
            "invalid_json"
        } else {
            "invalid_field"
        };
        let mut err = ApiError::new(status, code, msg);
        if field != "." && !field.is_empty() {
            err = err.field(field);
        }
        err
    })
}

pub(crate) fn load_tenant(api: &Api, who: Caller, id: u64) -> R<Tenant> {
    match api.svc.store.tenant(id)? {
        Some(t) if who.can_see(t.id) => Ok(t),
        _ => Err(ApiError::not_found("tenant")),
    }
}

pub(crate) fn load_subscriber(api: &Api, who: Caller, id: u64) -> R<Subscriber> {
    match api.svc.store.subscriber(id)? {
        Some(s) if who.can_see(s.tenant_id) => Ok(s),
        _ => Err(ApiError::not_found("subscriber")),
    }
}

pub(crate) fn now_ms(api: &Api) -> u64 {
    api.svc.clock.now_ms()
}

// ---- tenants ----

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TenantPatch {
    name: Option<String>,
    time_zone: Option<String>,
    window_start: Option<String>,
    window_end: Option<String>,
    skip_holidays: Option<bool>,
    retry: Option<RetryPolicy>,
    cps: Option<Option<f64>>,
    max_calls: Option<Option<u32>>,
    script: Option<Option<Value>>,
    alerts: Option<genki_store::AlertRules>,
}

/// A display name: 1–200 characters, not only spaces.
pub(crate) fn validate_name(n: &str) -> R<()> {
    if n.trim().is_empty() || n.len() > 200 {
        return Err(ApiError::bad("name", "1–200 characters"));
    }
    Ok(())
}

fn apply_tenant_patch(api: &Api, t: &mut Tenant, p: TenantPatch) -> R<()> {
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

async fn create_tenant(State(api): S, headers: HeaderMap, body: Bytes) -> R<Response> {
    if caller(&api, &headers)? != Caller::Operator {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the operator creates tenants",
        ));
    }
    let p: TenantPatch = parse(&body)?;
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
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"id": t.id, "token": token})),
    )
        .into_response())
}

async fn get_tenant(State(api): S, headers: HeaderMap, Path(id): Path<u64>) -> R<Response> {
    let who = caller(&api, &headers)?;
    Ok(axum::Json(load_tenant(&api, who, id)?).into_response())
}

async fn patch_tenant(
    State(api): S,
    headers: HeaderMap,
    Path(id): Path<u64>,
    body: Bytes,
) -> R<Response> {
    let who = caller(&api, &headers)?;
    let mut t = load_tenant(&api, who, id)?;
    let p: TenantPatch = parse(&body)?;
    apply_tenant_patch(&api, &mut t, p)?;
    api.svc.store.put_tenant(&t)?;
    api.svc.store.audit(
        t.id,
        now_ms(&api),
        &json!({"by": format!("{who:?}"), "did": "patch_tenant"}),
    )?;
    Ok(axum::Json(t).into_response())
}

// ---- subscribers ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSubscriber {
    name: String,
    phone: String,
    #[serde(default)]
    schedule: Option<Schedule>,
    #[serde(default)]
    paused_until: Option<String>,
    #[serde(default)]
    notes: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SubscriberPatch {
    name: Option<String>,
    phone: Option<String>,
    schedule: Option<Option<Schedule>>,
    paused_until: Option<Option<String>>,
    notes: Option<String>,
}

/// A phone is a SIP URI or a number the trunk dials (optional +, 2–20 digits).
pub fn validate_phone(phone: &str) -> Result<(), String> {
    if phone.starts_with("sip:") || phone.starts_with("sips:") {
        if genki_sip::message::is_valid_sip_uri(phone) {
            return Ok(());
        }
        return Err(format!("{phone:?} is not a valid SIP URI"));
    }
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    if (2..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!(
            "{phone:?} is neither a SIP URI nor a phone number (digits, optional leading +)"
        ))
    }
}

fn validate_subscriber(s: &Subscriber) -> R<()> {
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

async fn create_subscriber(
    State(api): S,
    headers: HeaderMap,
    Path(tid): Path<u64>,
    body: Bytes,
) -> R<Response> {
    let who = caller(&api, &headers)?;
    let t = load_tenant(&api, who, tid)?;
    let n: NewSubscriber = parse(&body)?;
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
    let s = api.svc.store.create_subscriber(s)?;
    Ok((StatusCode::CREATED, axum::Json(json!({"id": s.id}))).into_response())
}

#[derive(Deserialize)]
struct Page {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn list_subscribers(
    State(api): S,
    headers: HeaderMap,
    Path(tid): Path<u64>,
    Query(p): Query<Page>,
) -> R<Response> {
    let who = caller(&api, &headers)?;
    let t = load_tenant(&api, who, tid)?;
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let items = api
        .svc
        .store
        .subscribers_of(t.id, p.after.unwrap_or(0), limit)?;
    let next = (items.len() == limit)
        .then(|| items.last().map(|s| s.id))
        .flatten();
    Ok(axum::Json(json!({"items": items, "next_after": next})).into_response())
}

async fn get_subscriber(State(api): S, headers: HeaderMap, Path(id): Path<u64>) -> R<Response> {
    let who = caller(&api, &headers)?;
    Ok(axum::Json(load_subscriber(&api, who, id)?).into_response())
}

async fn patch_subscriber(
    State(api): S,
    headers: HeaderMap,
    Path(id): Path<u64>,
    body: Bytes,
) -> R<Response> {
    let who = caller(&api, &headers)?;
    let mut s = load_subscriber(&api, who, id)?;
    let p: SubscriberPatch = parse(&body)?;
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
    api.svc.store.put_subscriber(&s)?;
    Ok(axum::Json(s).into_response())
}

async fn delete_subscriber(State(api): S, headers: HeaderMap, Path(id): Path<u64>) -> R<Response> {
    let who = caller(&api, &headers)?;
    let s = load_subscriber(&api, who, id)?;
    api.svc.store.delete_subscriber(&s)?;
    api.svc.store.audit(
        s.tenant_id,
        now_ms(&api),
        &json!({"by": format!("{who:?}"), "did": "delete_subscriber", "id": s.id}),
    )?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// CSV import: header row with name, phone and optional days ("1-5" or
/// "1,3,5"), times ("09:30;17:00"), paused_until, notes. UTF-8, Excel's BOM accepted.
async fn import_subscribers(
    State(api): S,
    headers: HeaderMap,
    Path(tid): Path<u64>,
    body: Bytes,
) -> R<Response> {
    let who = caller(&api, &headers)?;
    let t = load_tenant(&api, who, tid)?;
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_csv",
            "the CSV is not UTF-8",
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (subs, errors) = parse_csv(text, t.id, now_ms(&api))?;
    let imported = api.svc.store.create_subscribers(subs)?;
    Ok(axum::Json(json!({"imported": imported.len(), "ids": imported.iter().map(|s| s.id).collect::<Vec<_>>(), "errors": errors})).into_response())
}

fn parse_days(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for part in s.split([',', ' ']).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let (a, b): (u8, u8) = (
                a.parse().map_err(|_| format!("bad day {part:?}"))?,
                b.parse().map_err(|_| format!("bad day {part:?}"))?,
            );
            if a > b {
                return Err(format!("bad day range {part:?}"));
            }
            out.extend(a..=b);
        } else {
            out.push(part.parse().map_err(|_| format!("bad day {part:?}"))?);
        }
    }
    Ok(out)
}

#[derive(Serialize)]
struct RowError {
    line: u64,
    field: String,
    message: String,
}

fn parse_csv(text: &str, tenant_id: u64, now: u64) -> R<(Vec<Subscriber>, Vec<RowError>)> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_csv",
                format!("header row: {e}"),
            )
        })?
        .clone();
    let col = |n: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(n));
    let (Some(name_c), Some(phone_c)) = (col("name"), col("phone")) else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_csv",
            "the header row needs name and phone columns",
        )
        .field("header"));
    };
    let known = ["name", "phone", "days", "times", "paused_until", "notes"];
    if let Some(h) = headers
        .iter()
        .find(|h| !known.iter().any(|k| k.eq_ignore_ascii_case(h)))
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_csv",
            format!("unknown column {h:?}; known: {}", known.join(", ")),
        )
        .field("header"));
    }
    let (days_c, times_c, paused_c, notes_c) =
        (col("days"), col("times"), col("paused_until"), col("notes"));
    let mut subs = Vec::new();
    let mut errors = Vec::new();
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                errors.push(RowError {
                    line,
                    field: "row".into(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or("").to_string();
        let days = get(days_c);
        let times = get(times_c);
        let schedule = if days.is_empty() && times.is_empty() {
            None
        } else {
            match parse_days(&days) {
                Ok(d) => Some(Schedule {
                    days: d,
                    times: times
                        .split([';', ' '])
                        .filter(|t| !t.is_empty())
                        .map(str::to_string)
                        .collect(),
                }),
                Err(m) => {
                    errors.push(RowError {
                        line,
                        field: "days".into(),
                        message: m,
                    });
                    continue;
                }
            }
        };
        let paused = get(paused_c);
        let s = Subscriber {
            id: 0,
            tenant_id,
            name: get(Some(name_c)),
            phone: get(Some(phone_c)),
            schedule,
            paused_until: (!paused.is_empty()).then_some(paused),
            notes: get(notes_c),
            created_at_ms: now,
        };
        match validate_subscriber(&s) {
            Ok(()) => subs.push(s),
            Err(e) => errors.push(RowError {
                line,
                field: e.field.unwrap_or_default(),
                message: e.message,
            }),
        }
    }
    Ok((subs, errors))
}

// ---- checks and outcomes ----

async fn request_check(State(api): S, headers: HeaderMap, Path(id): Path<u64>) -> R<Response> {
    let who = caller(&api, &headers)?;
    let s = load_subscriber(&api, who, id)?;
    let check_id = api.svc.request_check(&s)?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"check_id": check_id})),
    )
        .into_response())
}

fn check_json(api: &Api, c: &genki_store::Check) -> R<Value> {
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

async fn get_check(State(api): S, headers: HeaderMap, Path(id): Path<String>) -> R<Response> {
    let who = caller(&api, &headers)?;
    let cid: CheckId = id.parse().map_err(|_| ApiError::not_found("check"))?;
    match api.svc.store.check(&cid)? {
        Some(c) if who.can_see(c.tenant_id) => {
            Ok(axum::Json(check_json(&api, &c)?).into_response())
        }
        _ => Err(ApiError::not_found("check")),
    }
}

#[derive(Deserialize)]
struct Range {
    from: Option<String>,
    to: Option<String>,
}

/// Parse an instant: unix ms, or an RFC 3339 timestamp, or a local date (start of day in `cal`).
fn parse_instant(field: &str, v: &str, cal: &Calendar) -> R<u64> {
    if let Ok(ms) = v.parse::<u64>() {
        return Ok(ms);
    }
    if let Ok(ts) = v.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond().max(0) as u64);
    }
    if let Ok(d) = v.parse::<jiff::civil::Date>() {
        if let Ok(z) = d.to_zoned(cal.tz.clone()) {
            return Ok(z.timestamp().as_millisecond().max(0) as u64);
        }
    }
    Err(ApiError::bad(
        field,
        format!("{v:?} is not unix ms, an RFC 3339 time or a date YYYY-MM-DD"),
    ))
}

async fn outcomes(
    State(api): S,
    headers: HeaderMap,
    Path(tid): Path<u64>,
    Query(r): Query<Range>,
) -> R<Response> {
    let who = caller(&api, &headers)?;
    let t = load_tenant(&api, who, tid)?;
    let cal = Calendar::of(&t).map_err(|e| ApiError::bad(e.field, e.message))?;
    let from = r
        .from
        .as_deref()
        .map(|v| parse_instant("from", v, &cal))
        .transpose()?
        .unwrap_or(0);
    let to =
        r.to.as_deref()
            .map(|v| parse_instant("to", v, &cal))
            .transpose()?
            .unwrap_or(u64::MAX);
    let checks = api.svc.store.outcomes(t.id, from, to, 100_000)?;
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/csv"));
    let names: BTreeMap<u64, (String, String)> = checks
        .iter()
        .map(|c| c.id.subscriber_id)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter_map(|id| {
            api.svc
                .store
                .subscriber(id)
                .ok()
                .flatten()
                .map(|s| (id, (s.name, s.phone)))
        })
        .collect();
    let local = |ms: Option<u64>| {
        ms.and_then(|m| jiff::Timestamp::from_millisecond(m as i64).ok())
            .map(|ts| {
                ts.to_zoned(cal.tz.clone())
                    .strftime("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_default()
    };
    if wants_csv {
        let mut w = csv::Writer::from_writer(Vec::new());
        let _ = w.write_record([
            "check_id",
            "subscriber_id",
            "name",
            "phone",
            "outcome",
            "attempts",
            "last_cause",
            "finished_at",
        ]);
        for c in &checks {
            let (name, phone) = names.get(&c.id.subscriber_id).cloned().unwrap_or_default();
            let _ = w.write_record([
                c.id.to_string(),
                c.id.subscriber_id.to_string(),
                name,
                phone,
                c.outcome.map(|o| o.as_str()).unwrap_or("").to_string(),
                c.attempts.to_string(),
                c.last_cause
                    .as_ref()
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                local(c.finished_at_ms),
            ]);
        }
        // Excel opens UTF-8 CSV correctly only with a BOM.
        let mut body = "\u{feff}".as_bytes().to_vec();
        body.extend(w.into_inner().unwrap_or_default());
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response());
    }
    let items: Vec<Value> = checks
        .iter()
        .map(|c| {
            let (name, phone) = names.get(&c.id.subscriber_id).cloned().unwrap_or_default();
            json!({"check_id": c.id, "subscriber_id": c.id.subscriber_id, "name": name, "phone": phone, "outcome": c.outcome,
                   "attempts": c.attempts, "last_cause": c.last_cause, "finished_at_ms": c.finished_at_ms, "finished_at": local(c.finished_at_ms)})
        })
        .collect();
    Ok(axum::Json(json!({"items": items})).into_response())
}

#[derive(Deserialize)]
struct DateQ {
    date: Option<String>,
}

async fn summary(
    State(api): S,
    headers: HeaderMap,
    Path(tid): Path<u64>,
    Query(q): Query<DateQ>,
) -> R<Response> {
    let who = caller(&api, &headers)?;
    let t = load_tenant(&api, who, tid)?;
    let cal = Calendar::of(&t).map_err(|e| ApiError::bad(e.field, e.message))?;
    let date = match &q.date {
        Some(d) => d
            .parse::<jiff::civil::Date>()
            .map_err(|_| ApiError::bad("date", format!("{d:?} is not a date YYYY-MM-DD")))?,
        None => cal.local_date(now_ms(&api)),
    };
    let start = parse_instant("date", &date.to_string(), &cal)?;
    let end = parse_instant(
        "date",
        &date
            .tomorrow()
            .map_err(|_| ApiError::bad("date", "out of range"))?
            .to_string(),
        &cal,
    )?;
    let checks = api.svc.store.checks_of(t.id, start, end, 1_000_000)?;
    let mut counts: BTreeMap<&str, u64> = Outcome::ALL.iter().map(|o| (o.as_str(), 0)).collect();
    let (mut pending, mut dialing) = (0u64, 0u64);
    let mut not_reached = Vec::new();
    for c in &checks {
        match (c.status, c.outcome) {
            (CheckStatus::Done, Some(o)) => *counts.entry(o.as_str()).or_default() += 1,
            (CheckStatus::Dialing, _) => dialing += 1,
            _ => pending += 1,
        }
        if !matches!(c.outcome, Some(Outcome::Fine)) {
            not_reached.push(json!({"check_id": c.id, "subscriber_id": c.id.subscriber_id, "status": c.status, "outcome": c.outcome, "last_cause": c.last_cause}));
        }
    }
    Ok(axum::Json(json!({"date": date.to_string(), "total": checks.len(), "outcomes": counts, "pending": pending, "in_progress": dialing, "not_yet_fine": not_reached})).into_response())
}

async fn put_prompt(
    State(api): S,
    headers: HeaderMap,
    Path((tid, name)): Path<(u64, String)>,
    body: Bytes,
) -> R<Response> {
    let who = caller(&api, &headers)?;
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

async fn healthz(State(api): S) -> Response {
    let storage = api.svc.store.next_due_ms().is_ok();
    let sip = api.sip_up.load(std::sync::atomic::Ordering::Relaxed);
    // Every media worker running (a dead one fails its calls as system faults).
    let (alive, started) = api.svc.calls.placer.media_health();
    let media = alive == started;
    let code = if storage && sip && media {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        axum::Json(json!({"storage": storage, "sip": sip, "media": media})),
    )
        .into_response()
}

async fn metrics(State(api): S) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        api.svc.metrics.render(),
    )
        .into_response()
}

async fn openapi_doc() -> Response {
    axum::Json(openapi()).into_response()
}

async fn fallback() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        "no such route; see GET /v1/openapi.json",
    )
}

pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi_doc))
        .route("/v1/tenants", post(create_tenant))
        .route("/v1/tenants/{id}", get(get_tenant).patch(patch_tenant))
        .route(
            "/v1/tenants/{id}/subscribers",
            post(create_subscriber).get(list_subscribers),
        )
        .route(
            "/v1/tenants/{id}/subscribers/import",
            post(import_subscribers),
        )
        .route("/v1/tenants/{id}/outcomes", get(outcomes))
        .route("/v1/tenants/{id}/summary", get(summary))
        .route("/v1/tenants/{id}/prompts/{name}", put(put_prompt))
        .route(
            "/v1/subscribers/{id}",
            get(get_subscriber)
                .patch(patch_subscriber)
                .delete(delete_subscriber),
        )
        .route("/v1/subscribers/{id}/checks", post(request_check))
        .route("/v1/checks/{id}", get(get_check))
        .merge(crate::api::alerts::routes())
        .fallback(fallback)
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024))
        .with_state(api)
}

/// The OpenAPI 3.1 description of every route.
pub fn openapi() -> Value {
    let op = |summary: &str, ok: &str| json!({"summary": summary, "security": [{"bearer": []}], "responses": {ok: {"description": "success"}, "4XX": {"$ref": "#/components/responses/Error"}}});
    let id = |name: &str| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}});
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "genki admin API", "version": env!("CARGO_PKG_VERSION")},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {"description": "error", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"error": {"type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}}}}}}}
        },
        "paths": {
            "/healthz": {"get": {"summary": "200 when storage and SIP are up", "responses": {"200": {"description": "up"}, "503": {"description": "down"}}}},
            "/metrics": {"get": {"summary": "Prometheus text", "responses": {"200": {"description": "metrics"}}}},
            "/v1/tenants": {"post": op("Create a tenant (operator); returns its id and token", "201")},
            "/v1/tenants/{tenant_id}": {"parameters": [id("tenant_id")], "get": op("Read a tenant", "200"), "patch": op("Change time zone, window, holidays, retry, limits, script", "200")},
            "/v1/tenants/{tenant_id}/subscribers": {"parameters": [id("tenant_id")], "post": op("Enrol a subscriber", "201"), "get": op("List subscribers (after, limit)", "200")},
            "/v1/tenants/{tenant_id}/subscribers/import": {"parameters": [id("tenant_id")], "post": op("Import subscribers from CSV (name, phone, days, times, paused_until, notes)", "200")},
            "/v1/tenants/{tenant_id}/outcomes": {"parameters": [id("tenant_id")], "get": op("Final outcomes from..to, JSON or CSV (Accept: text/csv)", "200")},
            "/v1/tenants/{tenant_id}/summary": {"parameters": [id("tenant_id")], "get": op("A day's round: counts by outcome, who is not yet fine", "200")},
            "/v1/tenants/{tenant_id}/prompts/{name}": {"parameters": [id("tenant_id"), id("name")], "put": op("Upload a WAV prompt", "201")},
            "/v1/subscribers/{id}": {"parameters": [id("id")], "get": op("Read a subscriber", "200"), "patch": op("Change a subscriber", "200"), "delete": op("Remove a subscriber (history stays)", "204")},
            "/v1/subscribers/{id}/checks": {"parameters": [id("id")], "post": op("Call this person now", "202")},
            "/v1/checks/{check_id}": {"parameters": [id("check_id")], "get": op("A check: status, outcome, attempts", "200")}
        }
    });
    if let (Some(paths), Value::Object(more)) = (
        doc["paths"].as_object_mut(),
        crate::api::alerts::openapi_paths(op, id),
    ) {
        paths.extend(more);
    }
    doc
}

/// Expose the store for the binary (it creates the operator token file).
pub fn store_of(api: &Api) -> &Store {
    &api.svc.store
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_and_days() {
        assert!(validate_phone("sip:1001@127.0.0.1:5080").is_ok());
        assert!(validate_phone("+81471234567").is_ok());
        assert!(validate_phone("0471234567").is_ok());
        for bad in ["", "abc", "sip:", "sip:a b@x", "12-34", "+", "1"] {
            assert!(validate_phone(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_days("1-5").unwrap(), vec![1, 2, 3, 4, 5]);
        assert_eq!(parse_days("1,3, 5").unwrap(), vec![1, 3, 5]);
        assert!(parse_days("5-1").is_err());
        assert!(parse_days("x").is_err());
    }

    #[test]
    fn csv_rows_fail_alone() {
        let csv = "name,phone,days,times\n山田 花子,+81471234567,1-5,09:30\n,+8147,1,09:00\n佐藤,not a phone,1,09:00\n鈴木,sip:1@127.0.0.1,9,09:00\n田中,0471234567,,\n";
        let (subs, errors) = parse_csv(csv, 1, 0).unwrap();
        assert_eq!(subs.len(), 2);
        assert_eq!(subs[0].schedule.as_ref().unwrap().days, vec![1, 2, 3, 4, 5]);
        assert!(subs[1].schedule.is_none());
        let fields: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.field.as_str())).collect();
        assert_eq!(
            fields,
            vec![(3, "name"), (4, "phone"), (5, "schedule.days")]
        );
        assert!(parse_csv("nom,tel\n", 1, 0).is_err());
        assert!(parse_csv("name,phone,colour\n", 1, 0).is_err());
    }
}
