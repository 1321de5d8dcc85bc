//! The admin web UI at `/admin/` (`/` redirects there): server-rendered HTML pages for
//! people, served by the binary itself (DESIGN.md §5, "Admin UI").
//!
//! Design choices:
//! - **One implementation of every rule.** Pages never read or write records on their
//!   own: they call the JSON API in process ([`api::Api`], a `oneshot` on the API router
//!   with the signed-in user's token), so role rules, hidden records (404), system
//!   fields, constraints and audit are exactly the API's. What a page *offers* (an edit
//!   form, a restore button) is decided with the same [`crate::access::Caller::may`] the
//!   API uses; the API still decides.
//! - **Plain links and forms.** Every flow works without script; the one vendored
//!   library (htmx, pinned in `assets/admin/vendor/`) only swaps in the chain
//!   verification result without a page load.
//! - **A strict Content-Security-Policy** on every admin answer ([`CSP`]): scripts,
//!   styles and forms from this origin only, nothing inline, no framing. Templates and
//!   assets are embedded in the binary with `include_str!`; no CDN, no build step.
//! - **Sessions are the API's cookies** ([`session`]): the `access_token` cookie the API
//!   reads, the `csrf_token` double-submit cookie (admin forms echo it in a field), and the
//!   `refresh_token` cookie (`Path=/`) with which the server-wide renewal middleware
//!   (`auth::renew`) refreshes an expired access token on the spot, as for the API.
//! - **Apps add pages** through [`AdminPages`] (`App::admin_pages`): a router mounted
//!   under `/admin/` and nav entries; the generic pages serve every collection of every
//!   app. An app's pages use what the generic ones use, exported here rather than copied:
//!   the [`Ctx`] extractor (session, caller, [`Api`] as the signed-in user), [`CsrfForm`]
//!   and [`upload::CsrfMultipart`] (forms checked by the API's CSRF rule),
//!   [`Templates`] (the layout and macros plus the app's own templates), [`could`] (what
//!   to offer) and [`AdminError`] (the HTML error pages).

mod api;
mod error;
mod forms;
mod pages;
mod render;
mod session;
pub mod upload;

use axum::Router;
use axum::extract::Extension;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::AppState;

pub use api::{Answer, Api, Failure, InternalApi, with_query};
pub use error::AdminError;
pub use forms::{CsrfForm, Form, field_errors};
pub use pages::could;
pub use render::Templates;
pub use session::Ctx;

/// The policy every admin answer carries: nothing but this origin, nothing inline.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
     object-src 'none'";

/// One entry of the navigation bar an app adds (label and an `/admin/...` link).
#[derive(Debug, Clone, serde::Serialize)]
pub struct NavEntry {
    pub label: String,
    pub href: String,
    /// Shown only to a caller who [`could`] do this action on the collection (the
    /// entry's page calls the API, which still decides); `None`: shown to everyone.
    #[serde(skip)]
    pub requires: Option<(String, crate::access::Action)>,
}

impl NavEntry {
    pub fn new(label: &str, href: &str) -> NavEntry {
        NavEntry {
            label: label.into(),
            href: href.into(),
            requires: None,
        }
    }

    /// Shows the entry only to callers who could do `action` on `collection`.
    pub fn requires(mut self, collection: &str, action: crate::access::Action) -> NavEntry {
        self.requires = Some((collection.into(), action));
        self
    }
}

/// What an app adds to the admin UI: pages (routes under `/admin/`, which may use the
/// same session, API client and templates as the generic pages) and their nav entries.
#[derive(Default)]
pub struct AdminPages {
    pub nav: Vec<NavEntry>,
    pub routes: Router<AppState>,
}

const STYLE: &str = include_str!("../../assets/admin/admin.css");
const HTMX: &str = include_str!("../../assets/admin/vendor/htmx-2.0.11.min.js");
/// Live data from the change feed on the pages that show it (our own, no dependency).
const LIVE: &str = include_str!("../../assets/admin/live.js");

/// The admin UI. `api` is the JSON API it calls in process (the API routes with their
/// state, without the admin routes).
pub fn router(state: AppState, api: Router, extra: AdminPages) -> Router<AppState> {
    let nav = render::Nav {
        entries: std::sync::Arc::new(extra.nav),
        db: Some(state.db.clone()),
    };
    Router::new()
        .route("/", get(|| async { Redirect::to("/admin/") }))
        .route("/admin", get(|| async { Redirect::to("/admin/") }))
        .merge(session::router())
        .merge(pages::router())
        .merge(extra.routes)
        .route(
            "/admin/{*rest}",
            get(|| async { AdminError::NotFound("no such page".into()) }),
        )
        .layer(axum::middleware::from_fn_with_state(
            state,
            session::resolve,
        ))
        // Assets need no session (`auth::renew` leaves them alone too).
        .route("/admin/assets/admin.css", get(|| asset("text/css", STYLE)))
        .route(
            "/admin/assets/htmx-2.0.11.min.js",
            get(|| asset("text/javascript", HTMX)),
        )
        .route(
            "/admin/assets/live.js",
            get(|| asset("text/javascript", LIVE)),
        )
        .layer(Extension(nav))
        .layer(Extension(InternalApi(api)))
        .layer(axum::middleware::map_response(csp))
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, format!("{content_type}; charset=utf-8")),
            (CACHE_CONTROL, "public, max-age=300".to_string()),
        ],
        body,
    )
        .into_response()
}

async fn csp(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert("content-security-policy", HeaderValue::from_static(CSP));
    response
}
