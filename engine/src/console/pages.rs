//! The console's pages (GET): what a coordinator reads. Each page loads
//! only what it shows, checks the tenant through the API's lookups (a
//! case or person of another tenant is the 404 page), and writes the
//! same audit entries as the API's reads of personal data.
//!
//! Depends on: axum, minijinja, genki-store, [`crate::api`] (lookups,
//! the day's bounds, the outcomes export), [`super::auth`], [`super::i18n`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use genki_store::{AlertCase, CaseState, CheckStatus, Outcome, StaffRole, Tenant};
use minijinja::{context, Value};
use serde::Deserialize;
use serde_json::json;

use super::auth::{self, Signed};
use super::i18n::{self, word, Locale};
use super::{Console, Flash};
use crate::api::common::{audit_read, load_subscriber, load_tenant, ApiError};
use crate::checks::schedule::Calendar;

type C = State<Arc<Console>>;

/// A stored word as serde writes it (`high`, `given_up`).
pub(crate) fn serde_word<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub(crate) fn loc(s: &Signed) -> Locale {
    Locale::parse(&s.session.locale)
}

/// An instant in the tenant's zone, "2026-11-30 09:31".
pub(crate) fn local(tz: &jiff::tz::TimeZone, ms: u64, fmt: &str) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.to_zoned(tz.clone()).strftime(fmt).to_string())
        .unwrap_or_default()
}

fn tz_of(t: &Tenant) -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get(&t.time_zone).unwrap_or(jiff::tz::TimeZone::UTC)
}

/// An API error as a page: 404 is the not-found page, the rest say why.
pub(crate) fn api_error_page(c: &Console, s: &Signed, e: ApiError) -> Response {
    let l = loc(s);
    if e.status == StatusCode::NOT_FOUND {
        return c.error_page(
            StatusCode::NOT_FOUND,
            l,
            Some(s),
            i18n::t(l, "not_found"),
            i18n::t(l, "not_found_text"),
        );
    }
    let text = if e.code == "storage_error" {
        i18n::t(l, "storage").to_string()
    } else {
        e.message.clone()
    };
    c.error_page(e.status, l, Some(s), i18n::t(l, "refused"), &text)
}

/// `?ok=<word>` or `?err=<text>` after an action (post, redirect, get).
#[derive(Deserialize, Default)]
pub(crate) struct FlashQ {
    ok: Option<String>,
    err: Option<String>,
}

/// The words an action may report as done (anything else is ignored, so
/// a link cannot make the page say something genki did not do).
const DONE: &[&str] = &[
    "taken",
    "passed",
    "resolved",
    "paused_saved",
    "call_queued",
    "settings_saved",
    "prompt_saved",
    "watcher_added",
    "ladder_saved",
    "staff_added",
];

fn flash(l: Locale, q: &FlashQ) -> Option<Flash> {
    if let Some(e) = &q.err {
        return Some(Flash {
            kind: "error",
            label: i18n::t(l, "error"),
            text: e.chars().take(300).collect(),
        });
    }
    q.ok.as_deref().filter(|k| DONE.contains(k)).map(|k| Flash {
        kind: "ok",
        label: i18n::t(l, "done"),
        text: i18n::t(l, k).to_string(),
    })
}

pub(crate) async fn home() -> Redirect {
    Redirect::to("/console/today")
}

/// `?err=wrong|locked|csrf&until=…`.
#[derive(Deserialize, Default)]
pub(crate) struct SignInQ {
    err: Option<String>,
    until: Option<String>,
    lang: Option<String>,
}

/// The sign-in form, with a fresh double-submit token in a cookie.
pub(crate) async fn signin_page(
    State(c): C,
    headers: HeaderMap,
    Query(q): Query<SignInQ>,
) -> Response {
    let l = Locale::parse(q.lang.as_deref().unwrap_or("ja"));
    let token = auth::random_token();
    let text = match q.err.as_deref() {
        Some("wrong") => Some(i18n::t(l, "wrong_login").to_string()),
        Some("locked") => {
            // Only a time (HH:MM): a crafted link cannot put words here.
            let until = q.until.as_deref().filter(|u| {
                u.len() == 5
                    && u.bytes().enumerate().all(|(i, b)| {
                        if i == 2 {
                            b == b':'
                        } else {
                            b.is_ascii_digit()
                        }
                    })
            });
            Some(format!("{} {}", i18n::t(l, "locked"), until.unwrap_or("")))
        }
        Some("csrf") => Some(i18n::t(l, "csrf").to_string()),
        Some("storage") => Some(i18n::t(l, "storage").to_string()),
        _ => None,
    };
    let ctx = context! { ..super::anonymous(l), ..context! {
        title => i18n::t(l, "signin_title"),
        signin_token => token.clone(),
        login => "",
        flash => text.map(|t| Flash { kind: "error", label: i18n::t(l, "error"), text: t }),
    }};
    let mut r = c.render("signin.html", ctx);
    r.headers_mut().append(
        header::SET_COOKIE,
        auth::set_cookie(auth::SIGNIN_COOKIE, &token, 1800, auth::over_tls(&headers)),
    );
    r
}

// ---- Today ----

/// One tile of the round's progress.
fn tile(l: Locale, key: &str, prefix: &str, mark: &str, count: u64) -> Value {
    context! { key, mark, label => word(l, prefix, key), count }
}

/// The Today page's live part: counts and the people not yet fine.
fn today_ctx(c: &Console, s: &Signed) -> Result<Value, ApiError> {
    let api = &c.api;
    let l = loc(s);
    let t = load_tenant(api, s.caller(), s.session.tenant_id)?;
    let (date, start, end) = crate::api::reports::day_of(api, &t, None)?;
    let tz = tz_of(&t);
    // The day at a glance (counts kept with every write, not a read of the
    // day's checks: a tenant of a million people renders as fast as one of
    // ten), and the checks to look at first.
    const SHOWN: usize = 200;
    let view = api.svc.store.day_view(t.id, start, end, SHOWN, None)?;
    let counts = &view.counts;
    let pending = counts.get("pending").copied().unwrap_or(0);
    let dialing = counts.get("dialing").copied().unwrap_or(0);
    let retrying = counts.get("retrying").copied().unwrap_or(0);
    let more = view.waiting.len() >= SHOWN;
    let rows: Vec<Value> = view
        .waiting
        .iter()
        .map(|ch| {
            let name = api
                .svc
                .store
                .subscriber(ch.id.subscriber_id)
                .ok()
                .flatten()
                .map(|p| p.name)
                .unwrap_or_else(|| format!("#{}", ch.id.subscriber_id));
            let (state_key, state, mark) = match (ch.status, ch.outcome) {
                (_, Some(o)) => (o.as_str().to_string(), word(l, "o", o.as_str()), outcome_mark(o)),
                (CheckStatus::Dialing, _) => ("dialing".into(), word(l, "s", "dialing"), "☎"),
                (_, None) if ch.attempts > 0 => ("retrying".into(), word(l, "s", "retrying"), "↻"),
                _ => ("pending".into(), word(l, "s", "pending"), "…"),
            };
            let next = if ch.status == CheckStatus::Pending {
                local(&tz, ch.due_at_ms, "%H:%M")
            } else {
                String::new()
            };
            let case_id = api
                .svc
                .store
                .open_case_of(ch.id.subscriber_id)
                .ok()
                .flatten()
                .map(|c| c.id);
            context! {
                subscriber_id => ch.id.subscriber_id,
                name,
                state_key,
                state,
                mark,
                reason => ch.last_cause.as_ref().map(|c| word(l, "c", c.as_str())).unwrap_or_default(),
                next,
                case_id,
            }
        })
        .collect();
    let n = |k: &str| counts.get(k).copied().unwrap_or(0);
    let tiles = vec![
        tile(l, "pending", "s", "…", pending),
        tile(l, "dialing", "s", "☎", dialing),
        tile(l, "retrying", "s", "↻", retrying),
        tile(l, "fine", "o", "○", n("fine")),
        tile(l, "needs_contact", "o", "！", n("needs_contact")),
        tile(l, "no_response", "o", "？", n("no_response")),
        tile(l, "missed", "o", "×", n("missed")),
        tile(l, "spoke", "o", "♪", n("spoke")),
        tile(l, "not_attempted", "o", "－", n("not_attempted")),
    ];
    Ok(context! {
        date => date.to_string(),
        tiles,
        rows,
        more,
        total => view.total,
        updated => local(&tz, api.svc.clock.now_ms(), "%H:%M:%S"),
    })
}

fn outcome_mark(o: Outcome) -> &'static str {
    match o {
        Outcome::Fine => "○",
        Outcome::NeedsContact => "！",
        Outcome::NoResponse => "？",
        Outcome::Missed => "×",
        Outcome::Spoke => "♪",
        _ => "－",
    }
}

/// [`today_ctx`] on a blocking thread: the first view of a tenant after a
/// start is built by a scan (seconds at a million people).
async fn today_blocking(c: &Arc<Console>, s: &Signed) -> Result<Value, ApiError> {
    let (c2, s2) = (c.clone(), s.clone());
    tokio::task::spawn_blocking(move || today_ctx(&c2, &s2))
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the page could not be made",
            ))
        })
}

pub(crate) async fn today(State(c): C, s: Signed, Query(q): Query<FlashQ>) -> Response {
    let live = match today_blocking(&c, &s).await {
        Ok(v) => v,
        Err(e) => return api_error_page(&c, &s, e),
    };
    let l = loc(&s);
    let ctx = context! { ..c.base(&s, "today"), ..live, ..context! {
        title => i18n::t(l, "today_title"),
        flash => flash(l, &q),
    }};
    c.render("today.html", ctx)
}

/// The live part alone, for the page's script to swap in.
pub(crate) async fn today_live(State(c): C, s: Signed) -> Response {
    match today_blocking(&c, &s).await {
        Ok(v) => c.render("today_live.html", context! { ..c.base(&s, "today"), ..v }),
        Err(e) => api_error_page(&c, &s, e),
    }
}

// ---- cases ----

#[derive(Deserialize)]
pub(crate) struct CasesQ {
    state: Option<String>,
    #[serde(default)]
    after: u64,
    #[serde(flatten)]
    flash: HashMap<String, String>,
}

fn severity_mark(key: &str) -> &'static str {
    match key {
        "urgent" => "‼",
        "high" => "！",
        _ => "・",
    }
}

fn case_row(c: &Console, l: Locale, tz: &jiff::tz::TimeZone, k: &AlertCase) -> Value {
    let name = c
        .api
        .svc
        .store
        .subscriber(k.subscriber_id)
        .ok()
        .flatten()
        .map(|p| p.name)
        .unwrap_or_else(|| format!("#{}", k.subscriber_id));
    let sev = serde_word(&k.severity);
    let sev = sev.as_str();
    context! {
        id => k.id,
        subscriber_id => k.subscriber_id,
        name,
        severity_key => sev,
        severity_mark => severity_mark(sev),
        severity => word(l, "sev", sev),
        state_key => k.state.as_str(),
        state => word(l, "cs", k.state.as_str()),
        opened => local(tz, k.opened_at_ms, "%Y-%m-%d %H:%M"),
        acked_by => k.acked_by.clone().unwrap_or_default(),
        resolved_by => k.resolved_by.clone().unwrap_or_default(),
        note => k.note.clone(),
    }
}

pub(crate) async fn cases(State(c): C, s: Signed, Query(q): Query<CasesQ>) -> Response {
    let l = loc(&s);
    let t = match load_tenant(&c.api, s.caller(), s.session.tenant_id) {
        Ok(t) => t,
        Err(e) => return api_error_page(&c, &s, e),
    };
    let tz = tz_of(&t);
    let state = q.state.clone().unwrap_or_else(|| "open".into());
    let want: Option<&[CaseState]> = match state.as_str() {
        "open" => Some(&[CaseState::Open, CaseState::Acknowledged]),
        "unacknowledged" => Some(&[CaseState::Open]),
        "acknowledged" => Some(&[CaseState::Acknowledged]),
        "resolved" => Some(&[CaseState::Resolved]),
        _ => None,
    };
    let mut found = Vec::new();
    let mut after = q.after;
    let mut next_after = None;
    const PAGE: usize = 50;
    // The newest first would need a reverse index; cases come by id, a
    // page of matches at a time (as the API's list).
    loop {
        let page = match c.api.svc.store.cases_of(t.id, after, 1000) {
            Ok(p) => p,
            Err(e) => return api_error_page(&c, &s, e.into()),
        };
        let full = page.len() == 1000;
        let mut last_shown = None;
        for k in page.iter() {
            after = k.id;
            if want.is_none_or(|w| w.contains(&k.state)) {
                if found.len() == PAGE {
                    // One more matches: the next page starts after the last shown.
                    next_after = last_shown;
                    break;
                }
                found.push(case_row(&c, l, &tz, k));
                last_shown = Some(k.id);
            }
        }
        if next_after.is_some() || !full {
            break;
        }
    }
    let filters: Vec<Value> = ["open", "unacknowledged", "acknowledged", "resolved", "all"]
        .iter()
        .map(|k| context! { key => k, label => word(l, "cs", k) })
        .collect();
    let fq = FlashQ {
        ok: q.flash.get("ok").cloned(),
        err: q.flash.get("err").cloned(),
    };
    let ctx = context! { ..c.base(&s, "cases"), ..context! {
        title => i18n::t(l, "cases_title"),
        cases => found,
        state,
        filters,
        next_after,
        flash => flash(l, &fq),
    }};
    c.render("cases.html", ctx)
}

pub(crate) async fn case(
    State(c): C,
    s: Signed,
    Path(id): Path<String>,
    Query(q): Query<FlashQ>,
) -> Response {
    let l = loc(&s);
    let api = &c.api;
    let Ok(id) = id.parse::<u64>() else {
        return api_error_page(&c, &s, ApiError::not_found("alert"));
    };
    let k = match crate::api::alerts::load_case(api, s.caller(), id) {
        Ok(k) => k,
        Err(e) => return api_error_page(&c, &s, e),
    };
    if let Err(e) = audit_read(
        api,
        s.caller(),
        k.tenant_id,
        json!({"did": "read_alert", "case": k.id}),
    ) {
        return api_error_page(&c, &s, e);
    }
    // Notifications first, then the case (see the API's GET /v1/alerts/{id}).
    let notifications = api.svc.store.notifications_of(k.id).unwrap_or_default();
    let k = api.svc.store.alert_case(k.id).ok().flatten().unwrap_or(k);
    let t = match load_tenant(api, s.caller(), k.tenant_id) {
        Ok(t) => t,
        Err(e) => return api_error_page(&c, &s, e),
    };
    let tz = tz_of(&t);
    let watchers: HashMap<u64, String> = api
        .svc
        .store
        .watchers_of(t.id)
        .unwrap_or_default()
        .into_iter()
        .map(|w| (w.id, w.name))
        .collect();
    let told: Vec<Value> = notifications
        .iter()
        .map(|n| {
            context! {
                watcher => watchers.get(&n.watcher_id).cloned().unwrap_or_else(|| format!("#{}", n.watcher_id)),
                channel => word(l, "ch", n.channel.as_str()),
                state => word(l, "n", &serde_word(&n.state)),
                tries => n.tries,
                error => n.last_error.clone().unwrap_or_default(),
            }
        })
        .collect();
    let timeline: Vec<Value> = k
        .timeline
        .iter()
        .map(|e| {
            let kind = e.kind.to_string();
            context! {
                at => local(&tz, e.at_ms, "%Y-%m-%d %H:%M:%S"),
                kind_key => kind.clone(),
                kind => word(l, "e", &kind),
                detail => event_detail(l, &e.detail, &watchers),
            }
        })
        .collect();
    let why: Vec<String> = k
        .outcomes
        .iter()
        .map(|o| word(l, "o", o.outcome.as_str()))
        .collect();
    let name = api
        .svc
        .store
        .subscriber(k.subscriber_id)
        .ok()
        .flatten()
        .map(|p| p.name)
        .unwrap_or_else(|| format!("#{}", k.subscriber_id));
    let row = case_row(&c, l, &tz, &k);
    let ctx = context! { ..c.base(&s, "cases"), ..context! {
        title => format!("{} #{}", i18n::t(l, "case"), k.id),
        case => context! { ..row, ..context! { why => why.join("、") } },
        name,
        told,
        timeline,
        flash => flash(l, &q),
    }};
    c.render("case.html", ctx)
}

/// A timeline event's detail in words: who, which tier, which outcome.
fn event_detail(l: Locale, d: &serde_json::Value, watchers: &HashMap<u64, String>) -> String {
    let mut parts = Vec::new();
    if let Some(by) = d.get("by").and_then(|v| v.as_str()) {
        parts.push(by.to_string());
    }
    if let Some(w) = d.get("watcher_id").and_then(|v| v.as_u64()) {
        parts.push(watchers.get(&w).cloned().unwrap_or_else(|| format!("#{w}")));
    }
    if let Some(t) = d.get("tier").and_then(|v| v.as_u64()) {
        parts.push(format!("{} {}", i18n::t(l, "tier"), t + 1));
    }
    if let Some(o) = d.get("outcome").and_then(|v| v.as_str()) {
        parts.push(word(l, "o", o));
    }
    if let Some(ch) = d.get("channel").and_then(|v| v.as_str()) {
        parts.push(word(l, "ch", ch));
    }
    if let Some(n) = d.get("note").and_then(|v| v.as_str()) {
        parts.push(format!("「{n}」"));
    }
    parts.join(" · ")
}

// ---- people ----

#[derive(Deserialize, Default)]
pub(crate) struct PeopleQ {
    #[serde(default)]
    q: String,
    #[serde(default)]
    after: u64,
}

fn schedule_text(l: Locale, p: &genki_store::Subscriber) -> String {
    match &p.schedule {
        None => i18n::t(l, "not_scheduled").to_string(),
        Some(sc) => {
            let days: Vec<String> = sc.days.iter().map(|d| weekday(l, *d).to_string()).collect();
            let days = if sc.days.len() == 7 {
                i18n::t(l, "every_day").to_string()
            } else {
                days.join("・")
            };
            format!("{days} {}", sc.times.join("、"))
        }
    }
}

/// ISO weekday 1 (Monday) … 7 (Sunday).
fn weekday(l: Locale, d: u8) -> &'static str {
    let ja = ["月", "火", "水", "木", "金", "土", "日"];
    let en = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let i = (d.clamp(1, 7) - 1) as usize;
    if l == Locale::Ja {
        ja[i]
    } else {
        en[i]
    }
}

pub(crate) async fn people(State(c): C, s: Signed, Query(q): Query<PeopleQ>) -> Response {
    let l = loc(&s);
    let api = &c.api;
    let t = match load_tenant(api, s.caller(), s.session.tenant_id) {
        Ok(t) => t,
        Err(e) => return api_error_page(&c, &s, e),
    };
    const PAGE: usize = 50;
    // A search reads the roll a page at a time, at most this many people
    // per request, so one search cannot hold the API's threads for long.
    const SCAN: usize = 50_000;
    let needle = q.q.trim().to_lowercase();
    let digits: String = needle.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut found = Vec::new();
    let (mut after, mut scanned) = (q.after, 0usize);
    let mut next_after = None;
    'scan: loop {
        let page = match api.svc.store.subscribers_of(t.id, after, 1000) {
            Ok(p) => p,
            Err(e) => return api_error_page(&c, &s, e.into()),
        };
        if page.is_empty() {
            break;
        }
        for p in &page {
            after = p.id;
            scanned += 1;
            let hit = needle.is_empty()
                || p.name.to_lowercase().contains(&needle)
                || (!digits.is_empty() && p.phone.contains(&digits));
            if hit {
                if found.len() == PAGE {
                    next_after = Some(found_last(&found));
                    break 'scan;
                }
                found.push(p.clone());
            }
            if scanned >= SCAN {
                next_after = Some(p.id);
                break 'scan;
            }
        }
        if page.len() < 1000 {
            break;
        }
    }
    if let Err(e) = audit_read(
        api,
        s.caller(),
        t.id,
        json!({"did": "list_subscribers", "count": found.len()}),
    ) {
        return api_error_page(&c, &s, e);
    }
    let rows: Vec<Value> = found
        .iter()
        .map(|p| {
            context! {
                id => p.id,
                name => p.name.clone(),
                phone => p.phone.clone(),
                schedule => schedule_text(l, p),
                paused => p.paused_until.clone().unwrap_or_default(),
            }
        })
        .collect();
    let ctx = context! { ..c.base(&s, "people"), ..context! {
        title => i18n::t(l, "people_title"),
        people => rows,
        q => q.q.clone(),
        next_after,
        prev_after => (q.after > 0).then_some(0),
    }};
    c.render("people.html", ctx)
}

fn found_last(found: &[genki_store::Subscriber]) -> u64 {
    found.last().map(|p| p.id).unwrap_or(0)
}

/// A day of the 90-day chart.
#[derive(Clone, Copy, PartialEq)]
enum Day {
    None,
    Fine,
    Answered,
    Missed,
}

pub(crate) async fn person(
    State(c): C,
    s: Signed,
    Path(id): Path<String>,
    Query(q): Query<FlashQ>,
) -> Response {
    let l = loc(&s);
    let api = &c.api;
    let Ok(id) = id.parse::<u64>() else {
        return api_error_page(&c, &s, ApiError::not_found("subscriber"));
    };
    let p = match load_subscriber(api, s.caller(), id) {
        Ok(p) => p,
        Err(e) => return api_error_page(&c, &s, e),
    };
    if let Err(e) = audit_read(
        api,
        s.caller(),
        p.tenant_id,
        json!({"did": "read_subscriber", "subscriber": p.id}),
    ) {
        return api_error_page(&c, &s, e);
    }
    let t = match load_tenant(api, s.caller(), p.tenant_id) {
        Ok(t) => t,
        Err(e) => return api_error_page(&c, &s, e),
    };
    let tz = tz_of(&t);
    let cal = Calendar::of(&t).ok();
    let now = api.svc.clock.now_ms();
    let from = now.saturating_sub(90 * 86_400_000);
    let checks = api
        .svc
        .store
        .checks_of_subscriber(p.id, from, now + 86_400_000)
        .unwrap_or_default();
    // The chart: the best of each local day (fine over answered over missed).
    let today = cal.as_ref().map(|c| c.local_date(now));
    let mut days: BTreeMap<String, Day> = BTreeMap::new();
    let mut history = Vec::new();
    for ch in &checks {
        let day = cal
            .as_ref()
            .map(|c| c.local_date(ch.due_at_ms).to_string())
            .unwrap_or_default();
        let attempts = api.svc.store.attempts(&ch.id).unwrap_or_default();
        let answered = attempts.iter().any(|a| a.answered);
        if let Some(o) = ch.outcome {
            let d = match o {
                Outcome::Fine => Day::Fine,
                Outcome::NotAttempted => Day::None,
                _ if answered => Day::Answered,
                _ => Day::Missed,
            };
            let e = days.entry(day).or_insert(Day::None);
            let rank = |d: Day| match d {
                Day::Fine => 3,
                Day::Answered => 2,
                Day::Missed => 1,
                Day::None => 0,
            };
            if rank(d) > rank(*e) {
                *e = d;
            }
        }
        for a in &attempts {
            let mut detail = Vec::new();
            if a.inbound {
                detail.push(i18n::t(l, "inbound").to_string());
            }
            if let Some(by) = &a.answered_by {
                detail.push(format!(
                    "{}: {}",
                    i18n::t(l, "answered_by"),
                    word(l, "a", by.as_str())
                ));
            }
            if !a.digits.is_empty() {
                detail.push(format!("{} {}", i18n::t(l, "key"), a.digits));
            }
            if let Some(o) = a.outcome {
                detail.push(word(l, "o", o.as_str()));
            } else {
                detail.push(word(l, "er", &a.end_reason.to_string()));
            }
            let recording = a
                .recorded_ms
                .filter(|ms| *ms > 0)
                .map(|_| format!("/console/recordings/{}-{}-answer.wav", ch.id, a.n));
            history.push((
                a.started_at_ms,
                context! {
                    at => local(&tz, a.started_at_ms, "%Y-%m-%d %H:%M"),
                    kind => "attempt",
                    title => format!("{} {}", i18n::t(l, "attempt"), a.n),
                    detail => detail.join(" · "),
                    recording,
                },
            ));
        }
        if let (Some(o), Some(at)) = (ch.outcome, ch.finished_at_ms) {
            history.push((
                at,
                context! {
                    at => local(&tz, at, "%Y-%m-%d %H:%M"),
                    kind => "outcome",
                    title => i18n::t(l, "check_result"),
                    detail => format!("{} {}", outcome_mark(o), word(l, "o", o.as_str())),
                },
            ));
        }
    }
    // The person's cases: at most the tenant's last few thousand are read.
    let mut after = 0;
    let mut scanned = 0;
    loop {
        let page = api
            .svc
            .store
            .cases_of(t.id, after, 1000)
            .unwrap_or_default();
        let Some(last) = page.last() else { break };
        after = last.id;
        scanned += page.len();
        for k in page
            .iter()
            .filter(|k| k.subscriber_id == p.id && k.opened_at_ms >= from)
        {
            history.push((
                k.opened_at_ms,
                context! {
                    at => local(&tz, k.opened_at_ms, "%Y-%m-%d %H:%M"),
                    kind => "case",
                    title => format!("{} #{}", i18n::t(l, "case"), k.id),
                    detail => word(l, "cs", k.state.as_str()),
                    case_id => k.id,
                },
            ));
        }
        if page.len() < 1000 || scanned >= 20_000 {
            break;
        }
    }
    history.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    let history: Vec<Value> = history.into_iter().map(|(_, v)| v).collect();
    let mut chart = Vec::new();
    let (mut fine, mut ans, mut missed) = (0, 0, 0);
    if let Some(mut d) = today.and_then(|t| t.checked_sub(jiff::Span::new().days(89)).ok()) {
        for _ in 0..90 {
            let key = d.to_string();
            let v = days.get(&key).copied().unwrap_or(Day::None);
            let (k, mark, label) = match v {
                Day::Fine => {
                    fine += 1;
                    ("fine", "○", i18n::t(l, "legend_fine"))
                }
                Day::Answered => {
                    ans += 1;
                    ("answered", "△", i18n::t(l, "legend_answered"))
                }
                Day::Missed => {
                    missed += 1;
                    ("missed", "×", i18n::t(l, "legend_missed"))
                }
                Day::None => ("none", "·", i18n::t(l, "legend_none")),
            };
            chart.push(context! { key => k, mark, label => format!("{key}: {label}") });
            match d.tomorrow() {
                Ok(n) => d = n,
                Err(_) => break,
            }
        }
    }
    let (ladder, ladder_from) = ladder_view(&c, l, t.id, p.id);
    let ctx = context! { ..c.base(&s, "people"), ..context! {
        title => p.name.clone(),
        p => context! {
            id => p.id,
            name => p.name.clone(),
            phone => p.phone.clone(),
            schedule => schedule_text(l, &p),
            paused => p.paused_until.clone().unwrap_or_else(|| i18n::t(l, "not_paused").to_string()),
            paused_raw => p.paused_until.clone().unwrap_or_default(),
            notes => p.notes.clone(),
        },
        open_case => api.svc.store.open_case_of(p.id).ok().flatten().map(|k| k.id),
        days => chart,
        chart_totals => i18n::t(l, "chart_totals").replace("{fine}", &fine.to_string()).replace("{answered}", &ans.to_string()).replace("{missed}", &missed.to_string()),
        history,
        ladder,
        ladder_from,
        flash => flash(l, &q),
    }};
    c.render("person.html", ctx)
}

/// The ladder that applies to a person, in names, and where it comes from.
fn ladder_view(c: &Console, l: Locale, tenant_id: u64, subscriber_id: u64) -> (Vec<Value>, String) {
    let store = &c.api.svc.store;
    let own = store
        .ladder(genki_store::LadderOf::Subscriber(subscriber_id))
        .ok()
        .flatten();
    let (ladder, from) = match own {
        Some(l2) => (Some(l2), i18n::t(l, "own_ladder")),
        None => (
            store
                .ladder(genki_store::LadderOf::Tenant(tenant_id))
                .ok()
                .flatten(),
            i18n::t(l, "tenant_default"),
        ),
    };
    let names: HashMap<u64, String> = store
        .watchers_of(tenant_id)
        .unwrap_or_default()
        .into_iter()
        .map(|w| (w.id, w.name))
        .collect();
    let tiers = ladder
        .map(|lad| {
            lad.tiers
                .iter()
                .map(|t| {
                    context! {
                        deadline => format!("{} {}", t.deadline_s / 60, i18n::t(l, "minutes")),
                        watchers => t.watchers.iter().map(|w| names.get(w).cloned().unwrap_or_else(|| format!("#{w}"))).collect::<Vec<_>>(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    (tiers, from.to_string())
}

/// A recording of a person's answer (the tenant's `record_answers_s`),
/// `<check>-<attempt>-answer.wav`: only the person's tenant hears it, and
/// each listening is in the audit trail.
pub(crate) async fn recording(State(c): C, s: Signed, Path(name): Path<String>) -> Response {
    let api = &c.api;
    let parsed = name
        .strip_suffix("-answer.wav")
        .and_then(|stem| stem.rsplit_once('-'))
        .and_then(|(check, n)| {
            Some((
                check.parse::<genki_store::CheckId>().ok()?,
                n.parse::<u32>().ok()?,
            ))
        });
    let Some((check, n)) = parsed else {
        return api_error_page(&c, &s, ApiError::not_found("recording"));
    };
    if let Err(e) = load_subscriber(api, s.caller(), check.subscriber_id) {
        return api_error_page(&c, &s, e);
    }
    let Some(audio) = &api.svc.calls.audio else {
        return api_error_page(&c, &s, ApiError::not_found("recording"));
    };
    let path = audio.path_of(
        &format!("{check}-{n}"),
        crate::telephony::audio::Kept::Answer,
    );
    let Ok(bytes) = std::fs::read(&path) else {
        return api_error_page(&c, &s, ApiError::not_found("recording"));
    };
    if let Err(e) = audit_read(
        api,
        s.caller(),
        s.session.tenant_id,
        json!({"did": "play_recording", "check": check.to_string(), "attempt": n}),
    ) {
        return api_error_page(&c, &s, e);
    }
    super::page_headers(([(header::CONTENT_TYPE, "audio/wav")], bytes).into_response())
}

// ---- import, report, export ----

pub(crate) async fn import_page(State(c): C, s: Signed) -> Response {
    let l = loc(&s);
    c.render(
        "import.html",
        context! { ..c.base(&s, "import"), ..context! { title => i18n::t(l, "import_title") } },
    )
}

#[derive(Deserialize, Default)]
pub(crate) struct MonthQ {
    month: Option<String>,
}

/// The first day of a month ("2026-11") and of the one after it.
fn month_bounds(m: &str) -> Option<(jiff::civil::Date, jiff::civil::Date)> {
    let first: jiff::civil::Date = format!("{m}-01").parse().ok()?;
    let next = first.checked_add(jiff::Span::new().months(1)).ok()?;
    Some((first, next))
}

pub(crate) async fn report(State(c): C, s: Signed, Query(q): Query<MonthQ>) -> Response {
    let l = loc(&s);
    let api = &c.api;
    let t = match load_tenant(api, s.caller(), s.session.tenant_id) {
        Ok(t) => t,
        Err(e) => return api_error_page(&c, &s, e),
    };
    let Ok(cal) = Calendar::of(&t) else {
        return api_error_page(
            &c,
            &s,
            ApiError::bad("time_zone", "the tenant's calendar is not valid"),
        );
    };
    let month = q.month.clone().unwrap_or_else(|| {
        cal.local_date(api.svc.clock.now_ms())
            .strftime("%Y-%m")
            .to_string()
    });
    let Some((first, next)) = month_bounds(&month) else {
        return api_error_page(
            &c,
            &s,
            ApiError::bad("month", format!("{month:?} is not a month YYYY-MM")),
        );
    };
    let (Ok((_, start, _)), Ok((_, end, _))) = (
        crate::api::reports::day_of(api, &t, Some(&first.to_string())),
        crate::api::reports::day_of(api, &t, Some(&next.to_string())),
    ) else {
        return api_error_page(&c, &s, ApiError::bad("month", "out of range"));
    };
    let checks = match api.svc.store.checks_of(t.id, start, end, 5_000_000) {
        Ok(v) => v,
        Err(e) => return api_error_page(&c, &s, e.into()),
    };
    let tallied = api
        .svc
        .store
        .tallies_of(t.id, start, end)
        .unwrap_or_default();
    if let Err(e) = audit_read(
        api,
        s.caller(),
        t.id,
        json!({"did": "monthly_report", "month": month}),
    ) {
        return api_error_page(&c, &s, e);
    }
    let words = Outcome::ALL;
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    let mut daily: BTreeMap<String, BTreeMap<&str, u64>> = BTreeMap::new();
    for ch in &checks {
        if let Some(o) = ch.outcome {
            *totals.entry(o.as_str()).or_default() += 1;
            *daily
                .entry(cal.local_date(ch.due_at_ms).to_string())
                .or_default()
                .entry(o.as_str())
                .or_default() += 1;
        }
    }
    for o in &tallied {
        *totals.entry(o.as_str()).or_default() += 1;
    }
    let totals: Vec<Value> = words
        .iter()
        .map(|o| context! { label => word(l, "o", o.as_str()), count => totals.get(o.as_str()).copied().unwrap_or(0) })
        .collect();
    let daily: Vec<Value> = daily
        .iter()
        .map(|(d, m)| context! { date => d, counts => words.iter().map(|o| m.get(o.as_str()).copied().unwrap_or(0)).collect::<Vec<_>>() })
        .collect();
    let mut enrolled = 0u64;
    let mut after = 0;
    loop {
        let page = api
            .svc
            .store
            .subscribers_of(t.id, after, 10_000)
            .unwrap_or_default();
        let Some(last) = page.last() else { break };
        after = last.id;
        enrolled += page.len() as u64;
        if page.len() < 10_000 {
            break;
        }
    }
    let mut cases_opened = 0;
    let mut after = 0;
    loop {
        let page = api
            .svc
            .store
            .cases_of(t.id, after, 1000)
            .unwrap_or_default();
        let Some(last) = page.last() else { break };
        after = last.id;
        cases_opened += page
            .iter()
            .filter(|k| (start..end).contains(&k.opened_at_ms))
            .count();
        if page.len() < 1000 {
            break;
        }
    }
    let ctx = context! { ..c.base(&s, "report"), ..context! {
        title => format!("{} {month}", i18n::t(l, "report_title")),
        month,
        totals,
        daily,
        day_heads => words.iter().map(|o| word(l, "o", o.as_str())).collect::<Vec<_>>(),
        enrolled,
        cases_opened,
    }};
    c.render("report.html", ctx)
}

/// The month's outcomes as CSV for Excel: the API's export itself.
pub(crate) async fn export_csv(State(c): C, s: Signed, Query(q): Query<MonthQ>) -> Response {
    let month = q.month.clone().unwrap_or_default();
    let Some((first, next)) = month_bounds(&month) else {
        return api_error_page(
            &c,
            &s,
            ApiError::bad("month", format!("{month:?} is not a month YYYY-MM")),
        );
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, "text/csv".parse().expect("ascii"));
    let range: crate::api::reports::Range =
        match serde_json::from_value(json!({"from": first.to_string(), "to": next.to_string()})) {
            Ok(r) => r,
            Err(_) => return api_error_page(&c, &s, ApiError::bad("month", "out of range")),
        };
    match crate::api::reports::outcomes(
        State(c.api.clone()),
        s.caller(),
        headers,
        Path(s.session.tenant_id),
        Query(range),
    )
    .await
    {
        Ok(mut r) => {
            if let Ok(v) = format!("attachment; filename=\"genki-outcomes-{month}.csv\"").parse() {
                r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        Err(e) => api_error_page(&c, &s, e),
    }
}

// ---- settings ----

pub(crate) async fn settings(State(c): C, s: Signed, Query(q): Query<FlashQ>) -> Response {
    let l = loc(&s);
    if !s.can_admin() {
        return c.error_page(
            StatusCode::FORBIDDEN,
            l,
            Some(&s),
            i18n::t(l, "refused"),
            i18n::t(l, "forbidden"),
        );
    }
    let api = &c.api;
    let t = match load_tenant(api, s.caller(), s.session.tenant_id) {
        Ok(t) => t,
        Err(e) => return api_error_page(&c, &s, e),
    };
    let store = &api.svc.store;
    let watchers: Vec<Value> = store
        .watchers_of(t.id)
        .unwrap_or_default()
        .into_iter()
        .map(|w| context! { id => w.id, name => w.name, phone => w.phone.unwrap_or_default(), email => w.email.unwrap_or_default() })
        .collect();
    let ladder = store
        .ladder(genki_store::LadderOf::Tenant(t.id))
        .ok()
        .flatten();
    let ladder_text = ladder
        .as_ref()
        .map(|lad| {
            lad.tiers
                .iter()
                .map(|t| {
                    t.watchers
                        .iter()
                        .map(|w| w.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    let ladder_deadline = ladder
        .as_ref()
        .and_then(|lad| lad.tiers.first())
        .map(|t| t.deadline_s / 60)
        .unwrap_or(30);
    let now = api.svc.clock.now_ms();
    let staff: Vec<Value> = store
        .staff_of(t.id)
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let state = if m.disabled {
                i18n::t(l, "disabled")
            } else if m.locked_until_ms.is_some_and(|u| u > now) {
                i18n::t(l, "locked_state")
            } else {
                i18n::t(l, "active")
            };
            context! { login => m.login, name => m.name, role => word(l, "r", m.role.as_str()), state }
        })
        .collect();
    let roles: Vec<Value> = [StaffRole::Viewer, StaffRole::Coordinator, StaffRole::Admin]
        .iter()
        .map(|r| context! { key => r.as_str(), label => word(l, "r", r.as_str()) })
        .collect();
    let script = t
        .script
        .as_ref()
        .map(|v| serde_json::to_string_pretty(v).unwrap_or_default())
        .unwrap_or_default();
    let ctx = context! { ..c.base(&s, "settings"), ..context! {
        title => i18n::t(l, "settings_title"),
        t => Value::from_serialize(&t),
        script,
        prompts => store.prompt_names(t.id).unwrap_or_default(),
        watchers,
        ladder => ladder_text,
        ladder_deadline,
        staff,
        roles,
        flash => flash(l, &q),
    }};
    c.render("settings.html", ctx)
}

/// A prompt of the tenant's, to listen to before it is used.
pub(crate) async fn prompt_wav(State(c): C, s: Signed, Path(file): Path<String>) -> Response {
    let Some(name) = file.strip_suffix(".wav") else {
        return api_error_page(&c, &s, ApiError::not_found("prompt"));
    };
    match c.api.svc.store.prompt(s.session.tenant_id, name) {
        Ok(Some(wav)) => {
            super::page_headers(([(header::CONTENT_TYPE, "audio/wav")], wav).into_response())
        }
        Ok(None) => api_error_page(&c, &s, ApiError::not_found("prompt")),
        Err(e) => api_error_page(&c, &s, e.into()),
    }
}
