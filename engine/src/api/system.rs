//! `GET /healthz`, `GET /metrics`, `GET /v1/openapi.json`, and the JSON
//! 404 for every other path.
//!
//! Depends on: [`super::common`], [`crate::metrics`].

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::common::*;

pub(crate) async fn healthz(State(api): S) -> Response {
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

pub(crate) async fn metrics(State(api): S) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        api.svc.metrics.render(),
    )
        .into_response()
}

pub(crate) async fn openapi_doc() -> Response {
    axum::Json(openapi()).into_response()
}

pub(crate) async fn fallback() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        "no such route; see GET /v1/openapi.json",
    )
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
            "/v1/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "the OpenAPI 3.1 document"}}}},
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
