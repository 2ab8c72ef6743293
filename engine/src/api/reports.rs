//! `GET /v1/tenants/{id}/outcomes` (JSON or CSV) and
//! `GET /v1/tenants/{id}/summary` (a day's round for coordinators).
//!
//! Depends on: [`super::common`], [`crate::checks::schedule`].

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use genki_store::{Cause, CheckId, CheckStatus, Outcome};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::checks::schedule::Calendar;

use super::common::*;

/// One final outcome, with the person it is about.
#[derive(Serialize, ToSchema)]
pub(crate) struct OutcomeRow {
    check_id: CheckId,
    subscriber_id: u64,
    name: String,
    phone: String,
    outcome: Option<Outcome>,
    attempts: u32,
    last_cause: Option<Cause>,
    finished_at_ms: Option<u64>,
    /// The same instant in the tenant's time zone.
    finished_at: String,
}

/// Final outcomes in time order (then check id).
#[derive(Serialize, ToSchema)]
pub(crate) struct Outcomes {
    items: Vec<OutcomeRow>,
    /// More remain: pass this as `after` (same `from`/`to`) for the next
    /// page. As CSV: the `X-Genki-Next` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// A check of the day that has not (yet) ended fine.
#[derive(Serialize, ToSchema)]
pub(crate) struct NotYetFine {
    check_id: CheckId,
    subscriber_id: u64,
    status: CheckStatus,
    outcome: Option<Outcome>,
    last_cause: Option<Cause>,
}

/// A day's round for coordinators.
#[derive(Serialize, ToSchema)]
pub(crate) struct Summary {
    date: String,
    total: usize,
    /// Checks done, by outcome (fine, needs_contact, no_response, missed).
    outcomes: BTreeMap<String, u64>,
    pending: u64,
    in_progress: u64,
    /// Checks not (yet) fine that have been called, at most `limit` of
    /// them, in the order a coordinator looks at them: needs contact, no
    /// response, missed, spoke, not attempted, in a call, waiting for a
    /// retry; by due time within each. Checks not called yet are only
    /// counted (in `pending`): before a round they would be every check.
    not_yet_fine: Vec<NotYetFine>,
    /// More remain: pass this as `after` for the next page (an opaque
    /// place in that order, so a row that moves meanwhile is not shown
    /// twice on one page).
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// An interval: unix ms, an RFC 3339 instant, or a local date (its start).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Range {
    from: Option<String>,
    to: Option<String>,
    /// Rows at most (1–100000, default 100000).
    limit: Option<usize>,
    /// Only rows after this place (the `next` of the page before).
    after: Option<String>,
}

/// Where a page of outcomes ended: the last row's end time (unix ms) and
/// check id, written `finished_ms.check_id`.
fn parse_outcome_at(a: &str) -> Option<(u64, CheckId)> {
    let (ms, id) = a.split_once('.')?;
    Some((ms.parse().ok()?, id.parse().ok()?))
}

/// Parse an instant: unix ms, or an RFC 3339 timestamp, or a local date (start of day in `cal`).
pub(crate) fn parse_instant(field: &str, v: &str, cal: &Calendar) -> R<u64> {
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

/// A cell a spreadsheet will not run as a formula (CSV injection, OWASP):
/// text starting with `=`, `@`, a tab or a carriage return, or with `+` or
/// `-` not followed by a plain number (a phone number like `+81 3…` stays
/// as it is), gets a leading apostrophe.
pub(crate) fn csv_safe(cell: &str) -> String {
    let mut chars = cell.chars();
    let risky = match chars.next() {
        Some('=' | '@' | '\t' | '\r') => true,
        Some('+' | '-') => !chars
            .as_str()
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')')),
        _ => false,
    };
    if risky {
        format!("'{cell}")
    } else {
        cell.to_string()
    }
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/outcomes",
    tag = "reports",
    summary = "Final outcomes from..to, as JSON, or as CSV for Excel with Accept: text/csv",
    params(("id" = u64, Path, description = "tenant id"), Range),
    responses((status = 200, body = Outcomes, content_type = "application/json"), (status = 200, body = String, content_type = "text/csv"), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn outcomes(
    State(api): S,
    who: Caller,
    headers: HeaderMap,
    Path(tid): Path<u64>,
    Query(r): Query<Range>,
) -> R<Response> {
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
    let limit = r.limit.unwrap_or(100_000).clamp(1, 100_000);
    let after = r
        .after
        .as_deref()
        .map(|a| {
            parse_outcome_at(a).ok_or_else(|| {
                ApiError::bad(
                    "after",
                    format!("{a:?} is not the `next` of an outcomes page"),
                )
            })
        })
        .transpose()?;
    // A page goes on from its last row's time (and id), never before `from`.
    let (start, after_id) = match after {
        Some((ms, id)) if ms >= from => (ms, Some(id)),
        _ => (from, None),
    };
    let mut checks = api
        .svc
        .store
        .outcomes(t.id, start, to, limit + 1, after_id.as_ref())?;
    let next = (checks.len() > limit)
        .then(|| {
            checks
                .get(limit - 1)
                .map(|c| format!("{}.{}", c.finished_at_ms.unwrap_or(start), c.id))
        })
        .flatten();
    checks.truncate(limit);
    audit_read(
        &api,
        who,
        t.id,
        serde_json::json!({"did": "export_outcomes", "from": from, "to": to, "count": checks.len()}),
    )?;
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
                csv_safe(&name),
                csv_safe(&phone),
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
        let mut resp = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response();
        if let Some(n) = next.as_deref().and_then(|n| n.parse().ok()) {
            resp.headers_mut().insert("x-genki-next", n);
        }
        return Ok(resp);
    }
    let items: Vec<OutcomeRow> = checks
        .iter()
        .map(|c| {
            let (name, phone) = names.get(&c.id.subscriber_id).cloned().unwrap_or_default();
            OutcomeRow {
                check_id: c.id,
                subscriber_id: c.id.subscriber_id,
                name,
                phone,
                outcome: c.outcome,
                attempts: c.attempts,
                last_cause: c.last_cause.clone(),
                finished_at_ms: c.finished_at_ms,
                finished_at: local(c.finished_at_ms),
            }
        })
        .collect();
    Ok(reply(StatusCode::OK, &Outcomes { items, next }))
}

/// The day of a round (YYYY-MM-DD, the tenant's local date; default today).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DateQ {
    date: Option<String>,
    /// Rows of `not_yet_fine` at most (1–1000, default 1000).
    limit: Option<usize>,
    /// Only `not_yet_fine` rows after this place (the `next` of the page before).
    after: Option<String>,
}

/// A tenant's local day (YYYY-MM-DD; None: today) and its bounds in unix
/// ms, [start, end): the one rule for "a day" of the summary and the console.
pub(crate) fn day_of(
    api: &Api,
    t: &genki_store::Tenant,
    date: Option<&str>,
) -> R<(jiff::civil::Date, u64, u64)> {
    let cal = Calendar::of(t).map_err(|e| ApiError::bad(e.field, e.message))?;
    let date = match date {
        Some(d) => d
            .parse::<jiff::civil::Date>()
            .map_err(|_| ApiError::bad("date", format!("{d:?} is not a date YYYY-MM-DD")))?,
        None => cal.local_date(now_ms(api)),
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
    Ok((date, start, end))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/summary",
    tag = "reports",
    summary = "A day's round: counts by outcome, who is not yet fine",
    params(("id" = u64, Path, description = "tenant id"), DateQ),
    responses((status = 200, body = Summary), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn summary(
    State(api): S,
    who: Caller,
    Path(tid): Path<u64>,
    Query(q): Query<DateQ>,
) -> R<Response> {
    let t = load_tenant(&api, who, tid)?;
    let (date, start, end) = day_of(&api, &t, q.date.as_deref())?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 1000);
    let after = q
        .after
        .as_deref()
        .map(|a| {
            a.parse::<genki_store::RowAt>().map_err(|_| {
                ApiError::bad(
                    "after",
                    format!("{a:?} is not the `next` of a summary page"),
                )
            })
        })
        .transpose()?;
    // The day at a glance (kept in memory by the store, or counted by
    // the database): a request costs the page, not the day's checks.
    let view = api
        .svc
        .store
        .day_view(t.id, start, end, limit, after.as_ref())?;
    let n = |w: &str| view.counts.get(w).copied().unwrap_or(0);
    let outcomes: BTreeMap<String, u64> = Outcome::ALL
        .iter()
        .map(|o| (o.as_str().to_string(), n(o.as_str())))
        .collect();
    let rows = view.waiting;
    let next = view.next.map(|r| r.to_string());
    Ok(reply(
        StatusCode::OK,
        &Summary {
            next,
            date: date.to_string(),
            total: view.total as usize,
            outcomes,
            // Waiting for a first call or for a retry.
            pending: n("pending") + n("retrying"),
            in_progress: n("dialing"),
            not_yet_fine: rows
                .into_iter()
                .map(|c| NotYetFine {
                    check_id: c.id,
                    subscriber_id: c.id.subscriber_id,
                    status: c.status,
                    outcome: c.outcome,
                    last_cause: c.last_cause,
                })
                .collect(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::csv_safe;

    #[test]
    fn formulas_are_neutralised_and_phone_numbers_kept() {
        for bad in [
            "=HYPERLINK(\"http://x\")",
            "@SUM(A1)",
            "+cmd|' /C calc'!A0",
            "-2+3+cmd|x",
            "\t=1",
        ] {
            assert!(csv_safe(bad).starts_with('\''), "{bad}");
        }
        for ok in [
            "+81 3-1234-5678",
            "-1",
            "山田 花子",
            "sip:1001@127.0.0.1:5080",
            "",
        ] {
            assert_eq!(csv_safe(ok), ok);
        }
    }
}
