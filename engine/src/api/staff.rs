//! The console's users through the API: `POST /v1/staff`, `GET
//! /v1/tenants/{id}/staff`, `PATCH` and `DELETE /v1/staff/{id}`. The
//! operator adds the first admin of a tenant (or its own staff, tenant 0,
//! role `operator`); a tenant's token or a console admin adds the rest of
//! that tenant's. Passwords are stored only as argon2id hashes and never
//! answered.
//!
//! Depends on: [`super::common`], [`crate::passwords`], genki-store.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use genki_store::{Staff, StaffRole, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::common::*;
use crate::passwords::{hash_password, password_rule};

/// A console user as the API shows it (never the password's hash).
#[derive(Serialize, ToSchema)]
pub(crate) struct StaffView {
    id: u64,
    tenant_id: u64,
    login: String,
    name: String,
    role: StaffRole,
    disabled: bool,
    /// Sign-in is refused until then (too many wrong passwords).
    locked_until_ms: Option<u64>,
    created_at_ms: u64,
}

fn view(s: &Staff) -> StaffView {
    StaffView {
        id: s.id,
        tenant_id: s.tenant_id,
        login: s.login.clone(),
        name: s.name.clone(),
        role: s.role,
        disabled: s.disabled,
        locked_until_ms: s.locked_until_ms,
        created_at_ms: s.created_at_ms,
    }
}

/// A new console user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewStaff {
    /// 0: the operator's staff (operator token only; role must be operator).
    pub(crate) tenant_id: u64,
    /// 3–64 characters of a-z, 0-9, `.`, `_`, `-`, `@`; unique across tenants.
    pub(crate) login: String,
    pub(crate) name: String,
    pub(crate) role: StaffRole,
    /// 10–128 characters.
    pub(crate) password: String,
}

/// A change to a console user; `unlock` clears a lockout.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct StaffPatch {
    name: Option<String>,
    role: Option<StaffRole>,
    password: Option<String>,
    disabled: Option<bool>,
    #[serde(default)]
    unlock: bool,
}

/// A page of console users.
#[derive(Serialize, ToSchema)]
pub(crate) struct StaffList {
    staff: Vec<StaffView>,
}

/// A password's argon2id hash, made on a blocking thread.
async fn hashed(password: String) -> R<String> {
    let internal = |m: String| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", m);
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| internal("hashing did not finish".into()))?
        .map_err(internal)
}

fn login_rule(l: &str) -> R<()> {
    let ok = (3..=64).contains(&l.len())
        && l.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'@')
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad(
            "login",
            "3–64 characters of a-z, 0-9, '.', '_', '-', '@'",
        ))
    }
}

/// A role fits the tenant: `operator` exactly for tenant 0.
fn role_rule(tenant_id: u64, role: StaffRole) -> R<()> {
    if (tenant_id == 0) != (role == StaffRole::Operator) {
        return Err(ApiError::bad(
            "role",
            "the operator's staff (tenant_id 0) have the role operator, and only they",
        ));
    }
    Ok(())
}

fn load_staff(api: &Api, who: Caller, id: u64) -> R<Staff> {
    match api.svc.store.staff(id)? {
        Some(s)
            if (s.tenant_id == 0 && who == Caller::Operator)
                || (s.tenant_id != 0 && who.can_see(s.tenant_id)) =>
        {
            Ok(s)
        }
        _ => Err(ApiError::not_found("staff member")),
    }
}

#[utoipa::path(
    post,
    path = "/v1/staff",
    tag = "staff",
    summary = "Add a console user (argon2id-hashed password); 409 if the login is taken",
    request_body = NewStaff,
    responses((status = 201, body = StaffView), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn create_staff(
    State(api): S,
    who: Caller,
    StrictJson(n): StrictJson<NewStaff>,
) -> R<Response> {
    if n.tenant_id == 0 {
        if who != Caller::Operator {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "only the operator adds the operator's staff",
            ));
        }
    } else {
        load_tenant(&api, who, n.tenant_id)?;
    }
    login_rule(&n.login)?;
    validate_name(&n.name)?;
    role_rule(n.tenant_id, n.role)?;
    password_rule(&n.password).map_err(|m| ApiError::bad("password", m))?;
    let hash = hashed(n.password).await?;
    let s = api
        .svc
        .store
        .create_staff(Staff {
            id: 0,
            tenant_id: n.tenant_id,
            login: n.login,
            name: n.name,
            role: n.role,
            password: hash,
            failed: 0,
            locked_until_ms: None,
            disabled: false,
            created_at_ms: now_ms(&api),
            generation: 0,
        })
        .map_err(|e| match e {
            StoreError::Exists(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", "that login is taken")
                    .field("login")
            }
            e => e.into(),
        })?;
    api.svc.store.audit(
        s.tenant_id,
        now_ms(&api),
        &json!({"by": format!("{who:?}"), "did": "create_staff", "staff": s.id, "role": s.role}),
    )?;
    Ok(reply(StatusCode::CREATED, &view(&s)))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/staff",
    tag = "staff",
    summary = "A tenant's console users (0: the operator's, operator token only)",
    params(("id" = u64, Path, description = "tenant id")),
    responses((status = 200, body = StaffList), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn list_staff(State(api): S, who: Caller, Path(tid): Path<u64>) -> R<Response> {
    if tid == 0 {
        if who != Caller::Operator {
            return Err(ApiError::not_found("tenant"));
        }
    } else {
        load_tenant(&api, who, tid)?;
    }
    let staff = api.svc.store.staff_of(tid)?.iter().map(view).collect();
    Ok(reply(StatusCode::OK, &StaffList { staff }))
}

#[utoipa::path(
    patch,
    path = "/v1/staff/{id}",
    tag = "staff",
    summary = "Change a console user (name, role, password, disabled; unlock: true clears a lockout)",
    params(("id" = u64, Path, description = "staff id")),
    request_body = StaffPatch,
    responses((status = 200, body = StaffView), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn patch_staff(
    State(api): S,
    who: Caller,
    Path(id): Path<u64>,
    StrictJson(p): StrictJson<StaffPatch>,
) -> R<Response> {
    let s = load_staff(&api, who, id)?;
    if let Some(n) = &p.name {
        validate_name(n)?;
    }
    if let Some(r) = p.role {
        role_rule(s.tenant_id, r)?;
    }
    let password = match p.password {
        Some(pw) => {
            password_rule(&pw).map_err(|m| ApiError::bad("password", m))?;
            Some(hashed(pw).await?)
        }
        None => None,
    };
    // Applied to the record as it is now (a sign-in may be counting a
    // wrong password meanwhile); a new password or disabling ends every
    // session of theirs.
    let s = api
        .svc
        .store
        .update_staff(s.id, &|m| {
            if let Some(n) = &p.name {
                m.name = n.clone();
            }
            if let Some(r) = p.role {
                m.role = r;
            }
            if let Some(d) = p.disabled {
                if d && !m.disabled {
                    m.generation += 1;
                }
                m.disabled = d;
            }
            if p.unlock {
                m.failed = 0;
                m.locked_until_ms = None;
            }
            if let Some(h) = &password {
                m.password = h.clone();
                m.generation += 1;
            }
        })?
        .ok_or_else(|| ApiError::not_found("staff member"))?;
    api.svc.store.audit(
        s.tenant_id,
        now_ms(&api),
        &json!({"by": format!("{who:?}"), "did": "change_staff", "staff": s.id}),
    )?;
    Ok(reply(StatusCode::OK, &view(&s)))
}

#[utoipa::path(
    delete,
    path = "/v1/staff/{id}",
    tag = "staff",
    summary = "Remove a console user; their sessions end",
    params(("id" = u64, Path, description = "staff id")),
    responses((status = 204, description = "removed"), (status = "4XX", description = "`{\"error\": {code, message, field?}}`", body = ErrorBody)),
    security(("bearer" = [])),
)]
pub(crate) async fn delete_staff(State(api): S, who: Caller, Path(id): Path<u64>) -> R<Response> {
    let s = load_staff(&api, who, id)?;
    api.svc.store.delete_staff(&s)?;
    api.svc.store.audit(
        s.tenant_id,
        now_ms(&api),
        &json!({"by": format!("{who:?}"), "did": "delete_staff", "staff": s.id}),
    )?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
