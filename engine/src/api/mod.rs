//! The admin HTTP API (axum): JSON, `Authorization: Bearer <token>`. The
//! operator token can do everything; a tenant token sees only its tenant
//! (other tenants' ids answer 404). Every error is
//! `{"error": {"code", "message", "field"?}}` with the right 4xx, and a
//! request that fails validation changes nothing stored.
//!
//! One file per resource; [`common`] holds what they share (state, errors,
//! the caller and strict-JSON extractors). Routes are listed in
//! [`system::openapi`] (served at `GET /v1/openapi.json`) and README.md.
//!
//! Depends on: axum, genki-storage, [`crate::checks::service`], [`crate::checks::schedule`], [`crate::checks::script`].

pub mod alerts;
pub mod checks;
pub mod common;
pub mod csv_import;
pub mod limits;
pub mod prompts;
pub mod reports;
pub mod server;
pub mod staff;
pub mod subscribers;
pub mod system;
pub mod tenants;

pub use common::{hash_token, Api};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use common::ApiError;

use std::sync::Arc;

use axum::routing::{get, post, put};

use axum::Router;
use common::Route;
use genki_store::Storage;

/// Every route of the API but the alert resources' ([`alerts::routes`]).
fn routes() -> Vec<Route> {
    vec![
        ("/healthz", &["get"], get(system::healthz)),
        ("/metrics", &["get"], get(system::metrics)),
        ("/v1/openapi.json", &["get"], get(system::openapi_doc)),
        ("/v1/backup", &["post"], post(system::backup)),
        ("/v1/audit", &["get"], get(system::audit)),
        ("/v1/tenants", &["post"], post(tenants::create_tenant)),
        (
            "/v1/tenants/{id}",
            &["get", "patch"],
            get(tenants::get_tenant).patch(tenants::patch_tenant),
        ),
        (
            "/v1/tenants/{id}/tokens",
            &["post", "get"],
            post(tenants::issue_token).get(tenants::list_tokens),
        ),
        (
            "/v1/tenants/{id}/tokens/{token_id}",
            &["delete"],
            axum::routing::delete(tenants::revoke_token),
        ),
        (
            "/v1/tenants/{id}/subscribers",
            &["post", "get"],
            post(subscribers::create_subscriber).get(subscribers::list_subscribers),
        ),
        (
            "/v1/tenants/{id}/subscribers/import",
            &["post"],
            post(subscribers::import_subscribers),
        ),
        (
            "/v1/tenants/{id}/outcomes",
            &["get"],
            get(reports::outcomes),
        ),
        ("/v1/tenants/{id}/summary", &["get"], get(reports::summary)),
        (
            "/v1/tenants/{id}/prompts/{name}",
            &["put"],
            put(prompts::put_prompt),
        ),
        (
            "/v1/subscribers/{id}",
            &["get", "patch", "delete"],
            get(subscribers::get_subscriber)
                .patch(subscribers::patch_subscriber)
                .delete(subscribers::delete_subscriber),
        ),
        (
            "/v1/subscribers/{id}/checks",
            &["post"],
            post(checks::request_check),
        ),
        ("/v1/checks/{id}", &["get"], get(checks::get_check)),
        ("/v1/staff", &["post"], post(staff::create_staff)),
        ("/v1/tenants/{id}/staff", &["get"], get(staff::list_staff)),
        (
            "/v1/staff/{id}",
            &["patch", "delete"],
            axum::routing::patch(staff::patch_staff).delete(staff::delete_staff),
        ),
    ]
}

/// The API's router: every route, the JSON 404, a 16 MiB body limit,
/// per-caller request rates ([`limits`]).
pub fn router(api: Arc<Api>) -> Router {
    routes()
        .into_iter()
        .chain(alerts::routes())
        .fold(Router::new(), |r, (path, _, handlers)| {
            r.route(path, handlers)
        })
        .fallback(system::fallback)
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024))
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            rate_limit,
        ))
        .with_state(api)
}

/// Per-caller request rates ([`limits`]): 429 with `Retry-After` (RFC
/// 6585 §4) before any handler (or storage) runs; the operator's token
/// is not limited, a request without a token is keyed by its address.
pub(crate) async fn rate_limit(State(api): State<Arc<Api>>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| hash_token(t.trim()));
    // A token genki knows has its own bucket; anything else (no token, or
    // one nobody issued) is keyed by the client's address, so a client
    // cannot get a fresh burst by inventing tokens.
    let known = |h: &[u8; 32]| {
        api.metrics_hash.is_some_and(|m| common::same_hash(h, &m))
            || matches!(api.svc.store.token(h), Ok(Some(_)))
    };
    let key = match token {
        Some(h) if common::same_hash(&h, &api.operator_hash) => return next.run(req).await,
        Some(h) if known(&h) => limits::Key::Token(h),
        _ => match server::peer_of(&req) {
            Some(p) => limits::Key::Addr(p.ip()),
            None => return next.run(req).await,
        },
    };
    match api.limiter.take(key, std::time::Instant::now()) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            api.svc.metrics.api_rate_limited.inc();
            let secs = wait.as_secs().max(1);
            let mut r = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "too many requests: at most {} a second for this token; retry in {secs} s",
                    api.limiter.rate
                ),
            )
            .into_response();
            if let Ok(v) = secs.to_string().parse() {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
    }
}

/// Expose the store for the binary (it creates the operator token file).
pub fn store_of(api: &Api) -> &dyn Storage {
    api.svc.store.as_ref()
}

#[cfg(test)]
mod tests {
    use super::common::validate_phone;
    use super::csv_import::parse_days;
    use super::subscribers::parse_csv;
    use super::{alerts, routes, system};
    use std::collections::BTreeSet;

    /// A path with its parameters' names erased: `/v1/x/{}`.
    fn shape(path: &str) -> String {
        let mut out = String::new();
        let mut inside = false;
        for c in path.chars() {
            match c {
                '{' => {
                    inside = true;
                    out.push_str("{}");
                }
                '}' => inside = false,
                c if !inside => out.push(c),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_is_served() {
        let served: BTreeSet<(String, String)> = routes()
            .into_iter()
            .chain(alerts::routes())
            .flat_map(|(p, methods, _)| methods.iter().map(move |m| (shape(p), m.to_string())))
            .collect();
        let doc = system::openapi();
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(p, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| *k != "parameters")
                    .map(|m| (shape(p), m.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let missing: Vec<_> = served.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&served).collect();
        assert!(missing.is_empty(), "served but not documented: {missing:?}");
        assert!(extra.is_empty(), "documented but not served: {extra:?}");
        assert!(served.len() >= 30, "{} routes", served.len());
    }

    /// Generated from the types: every operation that takes a body names
    /// its schema, every answer but a 204 has one, and every schema it
    /// refers to is in the document.
    #[test]
    fn the_document_has_request_and_response_schemas() {
        let doc = system::openapi();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "Tenant",
            "TenantPatch",
            "Subscriber",
            "CheckView",
            "Attempt",
            "CaseView",
            "Ladder",
            "ErrorBody",
        ] {
            assert!(schemas.contains_key(name), "no schema {name}");
        }
        for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = r.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "dangling $ref to {name}");
        }
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                for (status, resp) in op["responses"].as_object().unwrap() {
                    if status != "204" {
                        assert!(
                            resp["content"].is_object(),
                            "{method} {path} {status}: no schema"
                        );
                    }
                }
                if ["post", "put", "patch"].contains(&method.as_str()) && !path.ends_with("/checks")
                {
                    assert!(
                        op["requestBody"]["content"].is_object(),
                        "{method} {path}: no body schema"
                    );
                }
            }
        }
    }

    /// In a PATCH, `null` clears a field and absence leaves it.
    #[test]
    fn null_clears_and_absence_leaves() {
        use super::subscribers::SubscriberPatch;
        let p: SubscriberPatch =
            super::common::parse(&br#"{"paused_until": null}"#[..].into()).unwrap();
        assert_eq!(p.paused_until, Some(None));
        assert_eq!(p.schedule, None);
        let p: SubscriberPatch =
            super::common::parse(&br#"{"paused_until": "2099-01-01"}"#[..].into()).unwrap();
        assert_eq!(p.paused_until, Some(Some("2099-01-01".to_string())));
    }

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
        let (subs, errors) = parse_csv(csv, 1, 0, &|_| Ok(())).unwrap();
        assert_eq!(subs.len(), 2);
        assert_eq!(subs[0].schedule.as_ref().unwrap().days, vec![1, 2, 3, 4, 5]);
        assert!(subs[1].schedule.is_none());
        let fields: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.field.as_str())).collect();
        assert_eq!(fields, vec![(3, "name"), (4, "phone"), (5, "days")]);
        assert!(parse_csv("nom,tel\n", 1, 0, &|_| Ok(())).is_err());
        assert!(parse_csv("name,phone,colour\n", 1, 0, &|_| Ok(())).is_err());
    }
}
