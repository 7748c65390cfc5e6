//! The operators' web dashboard (feature `dashboard`): an actix-web service to mount
//! under any path of an application, behind the application's own authentication.
//!
//! ```no_run
//! # async fn f(engine: pglane::Engine) -> std::io::Result<()> {
//! use actix_web::{App, HttpServer};
//! use pglane::dashboard::{Access, Dashboard};
//!
//! let dashboard = Dashboard::for_engine(&engine)
//!     // Who may see and do what: decided by the application for each request.
//!     .access(|req| match req.headers().get("x-role").and_then(|v| v.to_str().ok()) {
//!         Some("admin") => Access::Full,
//!         Some("staff") => Access::ReadOnly,
//!         _ => Access::None,
//!     });
//! HttpServer::new(move || App::new().service(dashboard.clone().scope("/admin/jobs")))
//!     .bind("127.0.0.1:8080")?
//!     .run()
//!     .await
//! # }
//! ```
//!
//! Pages: the overview (lanes with slots, running, waiting, oldest wait and the last
//! hour's wait p50/p99; throughput; jobs per queue and state; the engines connected now),
//! the job list (filters, keyset pages, actions on selected jobs or on every job matching
//! the filter, each confirmed with a count), job details, enqueue by hand, and lanes
//! (pause, resume, concurrency for every engine running the lane, through the database).
//!
//! Every link and asset is relative to the mount path. Assets (CSS, JS) are embedded in
//! the crate and served by the scope, so the pages work under a strict
//! Content-Security-Policy (`default-src 'none'`; scripts and styles from `'self'`),
//! which the dashboard sends itself. Actions need [`Access::Full`], are refused in
//! read-only mode, and carry a CSRF token (see the `csrf` module's notes).

mod actions;
mod chart;
mod csrf;
mod filter;
mod html;
mod jobs;
mod lanes;
mod overview;
mod pages;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};

use crate::config::IntoPgConfig;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::migrate::channel_for;
use crate::store::{Manager, Pool};

/// What a request may do, as the application's access hook decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Nothing: every page answers 403 Forbidden.
    None,
    /// See every page; no actions, no enqueueing.
    ReadOnly,
    /// See and act.
    Full,
}

type AccessHook = Arc<dyn Fn(&HttpRequest) -> Access + Send + Sync>;

/// The dashboard's settings and database handle; [`scope`](Dashboard::scope) turns it
/// into a service to mount. Cheap to clone (one per actix-web worker).
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    schema: String,
    channel: String,
    access: AccessHook,
    read_only: bool,
}

/// The Content-Security-Policy every response carries: nothing but the dashboard's own
/// assets, no inline script or style, no framing.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The longest a page may spend on the database before it answers 503.
const PAGE_BUDGET: Duration = Duration::from_secs(15);

impl Dashboard {
    /// A dashboard over `schema` on `pool` (any pglane pool, e.g. [`Engine::pool`]).
    /// Fails with [`Error::InvalidConfig`] for an invalid schema name.
    pub fn new(pool: Pool, schema: &str) -> Result<Self> {
        let channel = channel_for(schema)?;
        Ok(Dashboard {
            inner: Arc::new(Inner {
                pool,
                schema: schema.to_string(),
                channel,
                access: Arc::new(|_: &HttpRequest| Access::Full),
                read_only: false,
            }),
        })
    }

    /// A dashboard over a running engine's schema, on its handlers' pool.
    pub fn for_engine(engine: &Engine) -> Self {
        // INVARIANT: a running engine's schema name was validated at start.
        Dashboard::new(engine.pool().clone(), engine.schema()).expect("a valid schema")
    }

    /// A dashboard with its own small pool (up to 4 connections, each statement limited
    /// to 10 s), for running without an engine in the process (`pglane dashboard`).
    pub fn connect(database: impl IntoPgConfig, schema: &str) -> Result<Self> {
        let mut options = database.into_pg_config()?;
        let config = options.pg_config_mut();
        config.connect_timeout(Duration::from_secs(5));
        if config.get_application_name().is_none() {
            config.application_name("pglane dashboard");
        }
        let server_options = format!(
            "{} -c statement_timeout=10000",
            config.get_options().unwrap_or("")
        );
        config.options(server_options.trim());
        let connector = crate::connect::Connector::new(&options)?;
        let manager = Manager::new(connector, Arc::new(AtomicU64::new(0)));
        let pool = crate::store::pool_builder(4, Duration::from_secs(5)).build_unchecked(manager);
        Dashboard::new(pool, schema)
    }

    /// The access hook: called for every request with the request (its headers, cookies,
    /// extensions set by the application's authentication middleware) to decide what it
    /// may do. Defaults to [`Access::Full`] for everyone: mount the scope behind the
    /// application's authentication, or set a hook.
    pub fn access(self, hook: impl Fn(&HttpRequest) -> Access + Send + Sync + 'static) -> Self {
        self.with(|i| i.access = Arc::new(hook))
    }

    /// Read-only mode: every request gets at most [`Access::ReadOnly`], whatever the
    /// hook says. Defaults to off.
    pub fn read_only(self, yes: bool) -> Self {
        self.with(|i| i.read_only = yes)
    }

    fn with(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Inner {
            pool: self.inner.pool.clone(),
            schema: self.inner.schema.clone(),
            channel: self.inner.channel.clone(),
            access: self.inner.access.clone(),
            read_only: self.inner.read_only,
        };
        change(&mut inner);
        Dashboard {
            inner: Arc::new(inner),
        }
    }

    /// The service to mount at `path` (`"/admin/jobs"`, or `""` for the root):
    /// `App::new().service(dashboard.scope("/admin/jobs"))`. Works inside other scopes
    /// too: links are built from the path each request arrived on.
    pub fn scope(self, path: &str) -> actix_web::Scope {
        web::scope(path)
            .app_data(web::Data::new(self))
            .default_service(web::to(route))
    }

    /// What this request may do: the hook's answer, capped by read-only mode.
    fn access_for(&self, req: &HttpRequest) -> Access {
        let a = (self.inner.access)(req);
        if self.inner.read_only {
            a.min(Access::ReadOnly)
        } else {
            a
        }
    }
}

/// [`Dashboard::scope`] as a free function: the service for `dashboard`, mounted at
/// `path`.
pub fn scope(path: &str, dashboard: Dashboard) -> actix_web::Scope {
    dashboard.scope(path)
}

/// One request's context: where the dashboard is mounted, what the request may do, its
/// CSRF token, and the database.
pub(crate) struct Ctx {
    pub(crate) base: String,
    pub(crate) access: Access,
    pub(crate) token: String,
    new_token: bool,
    pub(crate) dash: Dashboard,
    /// The request's query string as pairs.
    pub(crate) query: Vec<(String, String)>,
}

impl Ctx {
    pub(crate) fn schema(&self) -> &str {
        &self.dash.inner.schema
    }

    pub(crate) fn channel(&self) -> &str {
        &self.dash.inner.channel
    }

    pub(crate) fn can_act(&self) -> bool {
        self.access == Access::Full
    }

    /// A pooled connection, or a 503 page.
    pub(crate) async fn conn(
        &self,
    ) -> std::result::Result<bb8::PooledConnection<'_, Manager>, HttpResponse> {
        self.dash.inner.pool.get().await.map_err(|e| {
            let why = match e {
                bb8::RunError::User(e) => Error::Database(e).to_string(),
                bb8::RunError::TimedOut => "timed out waiting for a connection".into(),
            };
            self.error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("database unavailable: {why}"),
            )
        })
    }

    /// The value of query field `k`, if given and not empty.
    pub(crate) fn q(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, v)| key == k && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// A hidden form field carrying the CSRF token.
    pub(crate) fn csrf_field(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            self.token
        )
    }

    /// An HTML page with status 200.
    pub(crate) fn html(&self, title: &str, nav: &str, body: &str) -> HttpResponse {
        self.html_status(StatusCode::OK, title, nav, body)
    }

    pub(crate) fn html_status(
        &self,
        status: StatusCode,
        title: &str,
        nav: &str,
        body: &str,
    ) -> HttpResponse {
        let frame = html::Frame {
            base: &self.base,
            title,
            nav,
            read_only: !self.can_act(),
            notice: self.q("notice"),
        };
        self.respond(status)
            .content_type("text/html; charset=utf-8")
            .body(html::page(&frame, body))
    }

    /// An error page: `status` with `message`.
    pub(crate) fn error(&self, status: StatusCode, message: &str) -> HttpResponse {
        let body = format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            html::esc(message)
        );
        let title = status.canonical_reason().unwrap_or("Error");
        self.html_status(status, title, "", &body)
    }

    /// A 303 redirect to `path` under the mount.
    pub(crate) fn redirect(&self, path: &str) -> HttpResponse {
        self.respond(StatusCode::SEE_OTHER)
            .insert_header((header::LOCATION, format!("{}{path}", self.base)))
            .finish()
    }

    /// A response builder with the dashboard's security headers (and the CSRF cookie
    /// when the request came without one).
    pub(crate) fn respond(&self, status: StatusCode) -> HttpResponseBuilder {
        let mut b = secured(status);
        b.insert_header((header::CACHE_CONTROL, "no-store"));
        if self.new_token {
            b.insert_header((
                header::SET_COOKIE,
                csrf::set_cookie(&self.token, &self.base),
            ));
        }
        b
    }
}

/// A response builder with the headers every answer carries.
fn secured(status: StatusCode) -> HttpResponseBuilder {
    let mut b = HttpResponse::build(status);
    b.insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    b
}

/// The mount path of a request: its path less the part the scope left unmatched.
fn mount_base(req: &HttpRequest) -> (String, String) {
    let rest = req.match_info().unprocessed().to_string();
    let path = req.path();
    let base = path.strip_suffix(rest.as_str()).unwrap_or("");
    (base.trim_end_matches('/').to_string(), rest)
}

fn pairs(s: &[u8]) -> Option<Vec<(String, String)>> {
    serde_urlencoded::from_bytes(s).ok()
}

/// Every request of the scope: access, CSRF, then the page or action.
async fn route(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let Some(dash) = req
        .app_data::<web::Data<Dashboard>>()
        .map(|d| d.get_ref().clone())
    else {
        return HttpResponse::InternalServerError().finish();
    };
    let (base, rest) = mount_base(&req);
    let access = dash.access_for(&req);
    if access == Access::None {
        return secured(StatusCode::FORBIDDEN)
            .content_type("text/plain; charset=utf-8")
            .body("403 Forbidden: this dashboard is not open to you\n");
    }
    let cookie = req
        .headers()
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(csrf::from_cookie_header);
    let (token, new_token) = match &cookie {
        Some(t) => (t.clone(), false),
        None => (csrf::new_token(), true),
    };
    let Some(query) = pairs(req.query_string().as_bytes()) else {
        return secured(StatusCode::BAD_REQUEST).body("400 Bad Request: malformed query string\n");
    };
    let ctx = Ctx {
        base,
        access,
        token,
        new_token,
        dash,
        query,
    };
    let path = rest.trim_end_matches('/');
    let method = req.method().clone();
    if method == Method::POST {
        let Some(form) = pairs(&body) else {
            return ctx.error(StatusCode::BAD_REQUEST, "malformed form");
        };
        let sent = form
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str());
        let site = req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok());
        if !csrf::matches(cookie.as_deref(), sent) || csrf::cross_site(site) {
            return ctx.error(
                StatusCode::FORBIDDEN,
                "the form's security token is missing or stale: reload the page and try again",
            );
        }
        if !ctx.can_act() {
            return ctx.error(StatusCode::FORBIDDEN, "read-only: actions are not allowed");
        }
        return within_budget(&ctx, actions::post(&ctx, path, &form)).await;
    }
    if method != Method::GET && method != Method::HEAD {
        return ctx.error(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST");
    }
    match path {
        "/assets/app.css" => asset("text/css; charset=utf-8", include_str!("assets/app.css")),
        "/assets/app.js" => asset(
            "text/javascript; charset=utf-8",
            include_str!("assets/app.js"),
        ),
        _ => within_budget(&ctx, pages::get(&ctx, path)).await,
    }
}

async fn within_budget(
    ctx: &Ctx,
    page: impl std::future::Future<Output = HttpResponse>,
) -> HttpResponse {
    match tokio::time::timeout(PAGE_BUDGET, page).await {
        Ok(r) => r,
        Err(_) => ctx.error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database did not answer in time",
        ),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    let mut b = secured(StatusCode::OK);
    b.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)))
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"));
    b.body(body)
}
