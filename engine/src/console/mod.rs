//! The coordinator's console (issue 15): Japanese-first web pages for the
//! people who act on the calls, served by the daemon itself beside the
//! API (`/console/…`), with its templates, CSS and a little progressive
//! JavaScript embedded in the binary (no separate server, no build step).
//!
//! Server-rendered with minijinja; every change goes through the API's
//! own handler for it ([`actions`]), so a rule (validation, who may see
//! what, the audit trail) exists once. Staff sign in ([`auth`]); their
//! role decides what they may change (viewers nothing, coordinators the
//! calls' consequences, admins the settings), checked on every POST, not
//! only by hiding buttons. Reads of personal data are audited as the API's are.
//!
//! Depends on: axum, minijinja, genki-store, [`crate::api`] (state,
//! handlers, rules), [`crate::checks`] (calendar), [`crate::telephony::audio`].

pub mod actions;
pub mod auth;
pub mod i18n;
pub mod pages;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::{context, Environment, Value};
use serde::Serialize;

use crate::api::Api;
use auth::Signed;
use i18n::Locale;

/// The pages and fragments, embedded (name, text).
pub(crate) const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("assets/base.html")),
    ("signin.html", include_str!("assets/signin.html")),
    ("error.html", include_str!("assets/error.html")),
    ("today.html", include_str!("assets/today.html")),
    ("today_live.html", include_str!("assets/today_live.html")),
    ("cases.html", include_str!("assets/cases.html")),
    ("case.html", include_str!("assets/case.html")),
    ("people.html", include_str!("assets/people.html")),
    ("person.html", include_str!("assets/person.html")),
    ("import.html", include_str!("assets/import.html")),
    ("report.html", include_str!("assets/report.html")),
    ("settings.html", include_str!("assets/settings.html")),
];

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The console's state: the API's (one service layer), the templates, and
/// how long a session lasts.
pub struct Console {
    pub api: Arc<Api>,
    pub env: Environment<'static>,
    pub session_ms: u64,
    /// An argon2 hash of nothing anybody knows: checked against when the
    /// login does not exist, so both cost the same time.
    pub dummy_hash: String,
    /// Password checks at once (each holds 19 MiB for tens of ms).
    pub hashing: tokio::sync::Semaphore,
}

impl Console {
    pub fn new(api: Arc<Api>, session_hours: u64) -> Arc<Console> {
        let mut env = Environment::new();
        for (name, text) in TEMPLATES {
            env.add_template(name, text)
                .expect("the console's templates parse (tested)");
        }
        Arc::new(Console {
            api,
            env,
            session_ms: session_hours.max(1) * 3_600_000,
            dummy_hash: auth::hash_password(&auth::random_token()).unwrap_or_default(),
            hashing: tokio::sync::Semaphore::new(2),
        })
    }

    /// Render a template; a template error is a 500 page (and a log line),
    /// never a panic.
    pub fn render(&self, name: &str, ctx: Value) -> Response {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => page_headers(Html(html).into_response()),
            Err(e) => {
                tracing::error!(template = name, error = %e, "console template failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be drawn",
                )
                    .into_response()
            }
        }
    }

    /// An error page in the visitor's language (`status` 403, 404, …).
    pub fn error_page(
        &self,
        status: StatusCode,
        locale: Locale,
        who: Option<&Signed>,
        heading: &str,
        message: &str,
    ) -> Response {
        let base = match who {
            Some(s) => self.base(s, ""),
            None => anonymous(locale),
        };
        let ctx = context! { ..base, ..context! { title => heading, heading, message } };
        let mut r = self.render("error.html", ctx);
        *r.status_mut() = status;
        r
    }

    /// What every signed-in page has: who, which tenant, the form token,
    /// the words.
    pub fn base(&self, s: &Signed, nav: &str) -> Value {
        let l = Locale::parse(&s.session.locale);
        let tenant = self
            .api
            .svc
            .store
            .tenant(s.session.tenant_id)
            .ok()
            .flatten();
        let tenants: Vec<Value> = if s.staff.role == genki_store::StaffRole::Operator {
            self.api
                .svc
                .store
                .tenants()
                .unwrap_or_default()
                .into_iter()
                .map(|t| context! { id => t.id, name => t.name })
                .collect()
        } else {
            Vec::new()
        };
        context! {
            lang => l.as_str(),
            other_lang => l.other().as_str(),
            tr => i18n::table(l),
            nav,
            csrf => s.session.csrf.clone(),
            me => context! {
                name => s.staff.name.clone(),
                login => s.staff.login.clone(),
                role_label => i18n::word(l, "r", s.staff.role.as_str()),
                act => s.can_act(),
                admin => s.can_admin(),
            },
            tenant => context! {
                id => s.session.tenant_id,
                name => tenant.map(|t| t.name).unwrap_or_default(),
            },
            tenants => (!tenants.is_empty()).then_some(tenants),
        }
    }
}

/// What a page without a session has.
pub(crate) fn anonymous(l: Locale) -> Value {
    context! {
        lang => l.as_str(),
        other_lang => l.other().as_str(),
        tr => i18n::table(l),
    }
}

/// Headers every console page carries: no caching of personal data, no
/// framing (clickjacking), scripts and styles only from the console.
pub(crate) fn page_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, "no-store".parse().expect("ascii"));
    h.insert("x-frame-options", "DENY".parse().expect("ascii"));
    h.insert("x-content-type-options", "nosniff".parse().expect("ascii"));
    h.insert("referrer-policy", "same-origin".parse().expect("ascii"));
    h.insert(
        "content-security-policy",
        "default-src 'self'; media-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
            .parse()
            .expect("ascii"),
    );
    r
}

/// A message shown at the top of the page after an action.
#[derive(Serialize)]
pub(crate) struct Flash {
    pub kind: &'static str,
    pub label: &'static str,
    pub text: String,
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        JS,
    )
        .into_response()
}

async fn not_found(State(c): State<Arc<Console>>, headers: axum::http::HeaderMap) -> Response {
    let who = auth::signed(&c, &headers);
    let l = who
        .as_ref()
        .map(|s| Locale::parse(&s.session.locale))
        .unwrap_or(Locale::Ja);
    c.error_page(
        StatusCode::NOT_FOUND,
        l,
        who.as_ref(),
        i18n::t(l, "not_found"),
        i18n::t(l, "not_found_text"),
    )
}

/// The console's routes, to be merged into the API's router.
pub fn router(c: Arc<Console>) -> Router {
    let r = Router::new()
        .route("/console", get(pages::home))
        .route("/console/", get(pages::home))
        .route("/console/static/console.css", get(css))
        .route("/console/static/console.js", get(js))
        .route(
            "/console/signin",
            get(pages::signin_page).post(actions::sign_in),
        )
        .route("/console/signout", post(actions::sign_out))
        .route("/console/locale", post(actions::set_locale))
        .route("/console/tenant", post(actions::set_tenant))
        .route("/console/today", get(pages::today))
        .route("/console/today/live", get(pages::today_live))
        .route("/console/cases", get(pages::cases))
        .route("/console/cases/{id}", get(pages::case))
        .route("/console/cases/{id}/{action}", post(actions::case_action))
        .route("/console/people", get(pages::people))
        .route("/console/people/{id}", get(pages::person))
        .route("/console/people/{id}/pause", post(actions::pause))
        .route("/console/people/{id}/call", post(actions::call_now))
        .route("/console/recordings/{name}", get(pages::recording))
        .route(
            "/console/import",
            get(pages::import_page).post(actions::import),
        )
        .route("/console/report", get(pages::report))
        .route("/console/export/outcomes.csv", get(pages::export_csv))
        .route(
            "/console/settings",
            get(pages::settings).post(actions::save_settings),
        )
        .route("/console/settings/prompts", post(actions::upload_prompt))
        .route("/console/prompts/{file}", get(pages::prompt_wav))
        .route("/console/settings/watchers", post(actions::add_watcher))
        .route("/console/settings/ladder", post(actions::save_ladder))
        .route("/console/settings/staff", post(actions::add_staff))
        .route("/console/{*rest}", get(not_found).post(not_found))
        .with_state(c.clone());
    // The API's body limit (a CSV import) and per-address request rates.
    r.layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024))
        .layer(axum::middleware::from_fn_with_state(
            c.api.clone(),
            crate::api::rate_limit,
        ))
}
