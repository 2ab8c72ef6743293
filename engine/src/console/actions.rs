//! The console's changes (POST): sign-in and out, and every action on the
//! calls' consequences. Each checks the form token and the staff
//! member's role, then calls the API's handler for the same change (its
//! validation, its audit entry), and answers with a redirect to the page
//! with a message (post/redirect/get), so a reload never repeats it.
//!
//! Depends on: axum (forms, multipart), [`crate::api`] (the handlers),
//! [`super::auth`], [`super::pages`] (error pages), [`super::i18n`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Form, Multipart, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use genki_store::StaffRole;
use minijinja::context;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::auth::{self, Signed};
use super::i18n::{self, Locale};
use super::pages::{api_error_page, loc};
use super::Console;
use crate::api::common::{parse, ApiError, StrictJson};

type C = State<Arc<Console>>;
type Fields = HashMap<String, String>;

/// A form field, trimmed ("" when absent).
fn field<'a>(f: &'a Fields, k: &str) -> &'a str {
    f.get(k).map(|v| v.trim()).unwrap_or("")
}

/// The form token is this session's, or the action is refused (403 page).
fn guard(c: &Console, s: &Signed, f: &Fields, need: StaffRole) -> Result<(), Box<Response>> {
    let l = loc(s);
    if !auth::csrf_ok(s, f.get("_csrf").map(String::as_str)) {
        return Err(Box::new(c.error_page(
            StatusCode::FORBIDDEN,
            l,
            Some(s),
            i18n::t(l, "refused"),
            i18n::t(l, "csrf"),
        )));
    }
    if s.staff.role < need {
        return Err(Box::new(c.error_page(
            StatusCode::FORBIDDEN,
            l,
            Some(s),
            i18n::t(l, "refused"),
            i18n::t(l, "forbidden"),
        )));
    }
    Ok(())
}

/// A multipart form from someone with role `need`: the role is checked
/// before the body is read (a viewer's 16 MB upload is not buffered), the
/// form token once it is (it travels in the body).
async fn upload(
    c: &Console,
    s: &Signed,
    m: Multipart,
    need: StaffRole,
) -> Result<(Fields, Option<Bytes>), Box<Response>> {
    let own = Fields::from([("_csrf".to_string(), s.session.csrf.clone())]);
    guard(c, s, &own, need)?;
    let (f, file) = multipart(m)
        .await
        .map_err(|e| Box::new(api_error_page(c, s, e)))?;
    guard(c, s, &f, need)?;
    Ok((f, file))
}

/// A JSON body for an API handler, parsed by the API's own strict rules.
fn body<T: DeserializeOwned>(v: Value) -> Result<StrictJson<T>, ApiError> {
    parse::<T>(&Bytes::from(v.to_string())).map(StrictJson)
}

/// Back to `to` saying it was done, or why not.
fn back(to: &str, r: Result<(), ApiError>, ok: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    let url = match r {
        Ok(()) => format!("{to}{sep}ok={ok}"),
        Err(e) => format!("{to}{sep}err={}", urlencode(&e.message)),
    };
    Redirect::to(&url).into_response()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The result of an API handler, without its body.
fn done(r: Result<Response, ApiError>) -> Result<(), ApiError> {
    r.map(|_| ())
}

// ---- sign-in ----

pub(crate) async fn sign_in(State(c): C, headers: HeaderMap, Form(f): Form<Fields>) -> Response {
    let l = Locale::parse(field(&f, "locale"));
    let lang = l.as_str();
    let given = f.get("_csrf").map(String::as_str).unwrap_or("");
    let expected = auth::cookie(&headers, auth::SIGNIN_COOKIE).unwrap_or("");
    if expected.is_empty() || !auth::same_token(given, expected) {
        return Redirect::to(&format!("/console/signin?err=csrf&lang={lang}")).into_response();
    }
    let login = field(&f, "login").to_lowercase();
    let password = f.get("password").map(String::as_str).unwrap_or("");
    let staff = match auth::check_password(&c, &login, password).await {
        Ok(s) => s,
        Err(auth::Refused::Wrong) => {
            return Redirect::to(&format!("/console/signin?err=wrong&lang={lang}")).into_response()
        }
        Err(auth::Refused::Locked { until_ms }) => {
            let until = jiff::Timestamp::from_millisecond(until_ms as i64)
                .map(|t| {
                    t.to_zoned(jiff::tz::TimeZone::system())
                        .strftime("%H:%M")
                        .to_string()
                })
                .unwrap_or_default();
            return Redirect::to(&format!(
                "/console/signin?err=locked&until={until}&lang={lang}"
            ))
            .into_response();
        }
        Err(auth::Refused::Storage) => {
            return Redirect::to(&format!("/console/signin?err=storage&lang={lang}"))
                .into_response()
        }
    };
    let (token, session) = match auth::start_session(&c, &staff, lang) {
        Ok(v) => v,
        Err(_) => {
            return Redirect::to(&format!("/console/signin?err=storage&lang={lang}"))
                .into_response()
        }
    };
    let _ = c.api.svc.store.audit(
        session.tenant_id,
        c.api.svc.clock.now_ms(),
        &json!({"by": format!("staff:{}", staff.id), "did": "sign_in"}),
    );
    tracing::info!(
        staff = staff.id,
        tenant = session.tenant_id,
        "console sign-in"
    );
    let secure = auth::over_tls(&headers);
    let mut r = Redirect::to("/console/today").into_response();
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        auth::set_cookie(auth::SESSION_COOKIE, &token, c.session_ms / 1000, secure),
    );
    h.append(
        header::SET_COOKIE,
        auth::set_cookie(auth::SIGNIN_COOKIE, "", 0, secure),
    );
    r
}

pub(crate) async fn sign_out(State(c): C, s: Signed, Form(f): Form<Fields>) -> Response {
    if let Err(r) = guard(&c, &s, &f, StaffRole::Viewer) {
        return *r;
    }
    let _ = c.api.svc.store.delete_session(&s.hash);
    let _ = c.api.svc.store.audit(
        s.session.tenant_id,
        c.api.svc.clock.now_ms(),
        &json!({"by": format!("staff:{}", s.staff.id), "did": "sign_out"}),
    );
    let mut r = Redirect::to(&format!("/console/signin?lang={}", s.session.locale)).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        auth::set_cookie(auth::SESSION_COOKIE, "", 0, s.secure),
    );
    r
}

pub(crate) async fn set_locale(
    State(c): C,
    s: Signed,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    if let Err(r) = guard(&c, &s, &f, StaffRole::Viewer) {
        return *r;
    }
    let mut session = s.session.clone();
    session.locale = Locale::parse(field(&f, "locale")).as_str().to_string();
    if let Err(e) = c.api.svc.store.put_session(&s.hash, &session) {
        return api_error_page(&c, &s, e.into());
    }
    Redirect::to(referer(&headers)).into_response()
}

/// Where the form was (a console page), else Today.
fn referer(h: &HeaderMap) -> &str {
    h.get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.find("/console/").map(|i| &r[i..]))
        .filter(|p| !p.contains("signin"))
        .unwrap_or("/console/today")
}

/// The operator's staff choose which tenant's pages they see.
pub(crate) async fn set_tenant(State(c): C, s: Signed, Form(f): Form<Fields>) -> Response {
    if let Err(r) = guard(&c, &s, &f, StaffRole::Operator) {
        return *r;
    }
    let Ok(tid) = field(&f, "tenant_id").parse::<u64>() else {
        return api_error_page(&c, &s, ApiError::not_found("tenant"));
    };
    match c.api.svc.store.tenant(tid) {
        Ok(Some(_)) => {}
        Ok(None) => return api_error_page(&c, &s, ApiError::not_found("tenant")),
        Err(e) => return api_error_page(&c, &s, e.into()),
    }
    let mut session = s.session.clone();
    session.tenant_id = tid;
    if let Err(e) = c.api.svc.store.put_session(&s.hash, &session) {
        return api_error_page(&c, &s, e.into());
    }
    Redirect::to("/console/today").into_response()
}

// ---- cases ----

pub(crate) async fn case_action(
    State(c): C,
    s: Signed,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<Fields>,
) -> Response {
    if let Err(r) = guard(&c, &s, &f, StaffRole::Coordinator) {
        return *r;
    }
    use crate::api::alerts::{case_action, Act, CaseAction};
    let (act, ok) = match action.as_str() {
        "ack" => (Act::Ack, "taken"),
        "pass" => (Act::Pass, "passed"),
        "resolve" => (Act::Resolve, "resolved"),
        _ => return api_error_page(&c, &s, ApiError::not_found("action")),
    };
    let Ok(id) = id.parse::<u64>() else {
        return api_error_page(&c, &s, ApiError::not_found("alert"));
    };
    let note = Some(field(&f, "note").to_string()).filter(|n| !n.is_empty());
    if act == Act::Resolve && note.is_none() {
        return back(
            &format!("/console/cases/{id}"),
            Err(ApiError::bad("note", i18n::t(loc(&s), "resolve_note"))),
            "",
        );
    }
    let r = case_action(
        c.api.clone(),
        s.caller(),
        id,
        CaseAction { by: s.by(), note },
        act,
    )
    .await;
    match r {
        Err(e) if e.status == StatusCode::NOT_FOUND => api_error_page(&c, &s, e),
        r => back(&format!("/console/cases/{id}"), done(r), ok),
    }
}

// ---- a person ----

pub(crate) async fn pause(
    State(c): C,
    s: Signed,
    Path(id): Path<u64>,
    Form(f): Form<Fields>,
) -> Response {
    if let Err(r) = guard(&c, &s, &f, StaffRole::Coordinator) {
        return *r;
    }
    let until = field(&f, "until");
    let v = if until.is_empty() {
        Value::Null
    } else {
        json!(until)
    };
    let r = match body(json!({ "paused_until": v })) {
        Ok(b) => {
            crate::api::subscribers::patch_subscriber(State(c.api.clone()), s.caller(), Path(id), b)
                .await
        }
        Err(e) => Err(e),
    };
    match r {
        Err(e) if e.status == StatusCode::NOT_FOUND => api_error_page(&c, &s, e),
        r => back(&format!("/console/people/{id}"), done(r), "paused_saved"),
    }
}

pub(crate) async fn call_now(
    State(c): C,
    s: Signed,
    Path(id): Path<u64>,
    Form(f): Form<Fields>,
) -> Response {
    if let Err(r) = guard(&c, &s, &f, StaffRole::Coordinator) {
        return *r;
    }
    let r = crate::api::checks::request_check(State(c.api.clone()), s.caller(), Path(id)).await;
    match r {
        Err(e) if e.status == StatusCode::NOT_FOUND => api_error_page(&c, &s, e),
        r => back(&format!("/console/people/{id}"), done(r), "call_queued"),
    }
}

// ---- files ----

/// A multipart form's text fields and its one file.
async fn multipart(mut m: Multipart) -> Result<(Fields, Option<Bytes>), ApiError> {
    let mut fields = Fields::new();
    let mut file = None;
    while let Some(part) = m
        .next_field()
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text()))?
    {
        let name = part.name().unwrap_or("").to_string();
        if part.file_name().is_some() {
            file = Some(part.bytes().await.map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text())
            })?);
        } else {
            let v = part.text().await.map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text())
            })?;
            fields.insert(name, v);
        }
    }
    Ok((fields, file))
}

/// A CSV import: the API's import, its per-row errors shown in the page.
pub(crate) async fn import(State(c): C, s: Signed, m: Multipart) -> Response {
    let l = loc(&s);
    let (_, file) = match upload(&c, &s, m, StaffRole::Coordinator).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let r = crate::api::subscribers::import_subscribers(
        State(c.api.clone()),
        s.caller(),
        Path(s.session.tenant_id),
        file.unwrap_or_default(),
    )
    .await;
    let result = match r {
        Ok(resp) => {
            let bytes = axum::body::to_bytes(resp.into_body(), 16 * 1024 * 1024)
                .await
                .unwrap_or_default();
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let errors: Vec<minijinja::Value> = v["errors"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|e| context! { line => e["line"].as_u64(), field => e["field"].as_str(), message => e["message"].as_str() })
                        .collect()
                })
                .unwrap_or_default();
            context! {
                summary => format!("{} {} {}", v["imported"].as_u64().unwrap_or(0), i18n::t(l, "imported_n"), errors.len() as u64 + v["errors_omitted"].as_u64().unwrap_or(0)),
                errors,
            }
        }
        Err(e) => context! {
            summary => format!("{} {}", i18n::t(l, "error"), e.message),
            errors => vec![context! { line => 1, field => e.field.clone().unwrap_or_default(), message => e.message.clone() }],
        },
    };
    c.render(
        "import.html",
        context! { ..c.base(&s, "import"), ..context! { title => i18n::t(l, "import_title"), result } },
    )
}

// ---- settings (tenant admins) ----

pub(crate) async fn save_settings(State(c): C, s: Signed, Form(f): Form<Fields>) -> Response {
    if let Err(r) = guard(&c, &s, &f, StaffRole::Admin) {
        return *r;
    }
    let api = &c.api;
    let t = match crate::api::common::load_tenant(api, s.caller(), s.session.tenant_id) {
        Ok(t) => t,
        Err(e) => return api_error_page(&c, &s, e),
    };
    let num = |k: &str| -> Result<u32, ApiError> {
        field(&f, k)
            .parse::<u32>()
            .map_err(|_| ApiError::bad(k, "a whole number"))
    };
    let r: Result<(), ApiError> = async {
        let mut retry = serde_json::to_value(&t.retry).map_err(|_| ApiError::bad("retry", "?"))?;
        retry["max_attempts"] = json!(num("max_attempts")?);
        retry["spacing_minutes"] = json!(num("spacing_minutes")?);
        retry["retry_no_input"] = json!(field(&f, "retry_no_input") == "true");
        let script = field(&f, "script");
        let script = if script.is_empty() {
            Value::Null
        } else {
            serde_json::from_str::<Value>(script)
                .map_err(|e| ApiError::bad("script", format!("not JSON: {e}")))?
        };
        let b = body(json!({
            "window_start": field(&f, "window_start"),
            "window_end": field(&f, "window_end"),
            "skip_holidays": field(&f, "skip_holidays") == "true",
            "retry": retry,
            "script": script,
        }))?;
        done(crate::api::tenants::patch_tenant(State(api.clone()), s.caller(), Path(t.id), b).await)
    }
    .await;
    back("/console/settings", r, "settings_saved")
}

pub(crate) async fn upload_prompt(State(c): C, s: Signed, m: Multipart) -> Response {
    let (f, file) = match upload(&c, &s, m, StaffRole::Admin).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let name = field(&f, "name").to_string();
    let r = crate::api::prompts::put_prompt(
        State(c.api.clone()),
        s.caller(),
        Path((s.session.tenant_id, name)),
        file.unwrap_or_default(),
    )
    .await;
    back("/console/settings", done(r), "prompt_saved")
}

pub(crate) async fn add_watcher(State(c): C, s: Signed, Form(f): Form<Fields>) -> Response {
    if let Err(r) = guard(&c, &s, &f, StaffRole::Admin) {
        return *r;
    }
    let opt = |k: &str| Some(field(&f, k)).filter(|v| !v.is_empty());
    let r = match body(
        json!({"name": field(&f, "name"), "phone": opt("phone"), "email": opt("email")}),
    ) {
        Ok(b) => done(
            crate::api::alerts::create_watcher(
                State(c.api.clone()),
                s.caller(),
                Path(s.session.tenant_id),
                b,
            )
            .await,
        ),
        Err(e) => Err(e),
    };
    back("/console/settings", r, "watcher_added")
}

/// "1,2; 3" → tiers [[1,2],[3]], each with the same deadline.
fn parse_tiers(text: &str, deadline_s: u64) -> Result<Value, ApiError> {
    let mut tiers = Vec::new();
    for tier in text.split(';').map(str::trim).filter(|t| !t.is_empty()) {
        let ids = tier
            .split(',')
            .map(|w| w.trim().parse::<u64>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                ApiError::bad(
                    "tiers",
                    format!("{tier:?}: watcher ids separated by commas"),
                )
            })?;
        tiers.push(json!({"watchers": ids, "deadline_s": deadline_s}));
    }
    Ok(json!({ "tiers": tiers }))
}

pub(crate) async fn save_ladder(State(c): C, s: Signed, Form(f): Form<Fields>) -> Response {
    if let Err(r) = guard(&c, &s, &f, StaffRole::Admin) {
        return *r;
    }
    let r: Result<(), ApiError> = async {
        let minutes = field(&f, "deadline_min")
            .parse::<u64>()
            .map_err(|_| ApiError::bad("deadline_min", "a whole number of minutes"))?;
        let b = body(parse_tiers(field(&f, "tiers"), minutes * 60)?)?;
        done(
            crate::api::alerts::put_tenant_ladder(
                State(c.api.clone()),
                s.caller(),
                Path(s.session.tenant_id),
                b,
            )
            .await,
        )
    }
    .await;
    back("/console/settings", r, "ladder_saved")
}

pub(crate) async fn add_staff(State(c): C, s: Signed, Form(f): Form<Fields>) -> Response {
    if let Err(r) = guard(&c, &s, &f, StaffRole::Admin) {
        return *r;
    }
    let r: Result<(), ApiError> = async {
        let role: StaffRole = field(&f, "role")
            .parse()
            .map_err(|m: String| ApiError::bad("role", m))?;
        // An admin adds up to their own role, never the operator's.
        if role > StaffRole::Admin {
            return Err(ApiError::bad("role", "viewer, coordinator or admin"));
        }
        let b = body(json!({
            "tenant_id": s.session.tenant_id,
            "login": field(&f, "login").to_lowercase(),
            "name": field(&f, "name"),
            "role": role,
            "password": f.get("password").cloned().unwrap_or_default(),
        }))?;
        done(crate::api::staff::create_staff(State(c.api.clone()), s.caller(), b).await)
    }
    .await;
    back("/console/settings", r, "staff_added")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_parse_and_bad_ones_say_why() {
        let v = parse_tiers("1,2; 3", 600).unwrap();
        assert_eq!(v["tiers"][0]["watchers"], json!([1, 2]));
        assert_eq!(v["tiers"][1]["deadline_s"], json!(600));
        assert!(parse_tiers("1,x", 60).is_err());
        assert_eq!(urlencode("a b/é"), "a%20b%2F%C3%A9");
    }
}
