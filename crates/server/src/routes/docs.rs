//! `GET /api/openapi.json` (the OpenAPI 3.1 document, built from the current collection
//! definitions: see `crate::openapi`) and `GET /api/docs` (a page rendering it). Both
//! are public, like health: they describe shapes, never data or access rules.
//!
//! The docs page is our own small HTML + script, embedded in the binary and served from
//! this origin, rather than Swagger UI, Scalar, Redoc or RapiDoc: those load their
//! scripts from a CDN at view time (or, for `utoipa-swagger-ui`, download them from
//! GitHub at build time, which our builds cannot reach). A third-party script on the API's
//! own origin would run with the signed-in user's cookies and could read the CSRF
//! token, and allowing it would mean loosening the Content-Security-Policy
//! (`default-src 'self'`). The embedded page needs neither, works offline, and keeps
//! every response under the same CSP.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::AppState;

const PAGE: &str = include_str!("../../assets/docs/index.html");
const SCRIPT: &str = include_str!("../../assets/docs/docs.js");
const STYLE: &str = include_str!("../../assets/docs/docs.css");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/docs", get(page))
        .route("/api/docs/docs.js", get(script))
        .route("/api/docs/docs.css", get(style))
}

async fn openapi(State(st): State<AppState>) -> Json<serde_json::Value> {
    let snap = st.db.snapshot();
    // System collections (`_users`, ...) have no routes here: never documented.
    let user_collections = snap.definitions().filter(|(c, _)| !c.is_system());
    let document = crate::openapi::document(user_collections.map(|(_, def)| def.as_ref()));
    let mut document = serde_json::to_value(document).unwrap_or_default();
    // The app's own routes (documented by the app, as path items).
    if let (Some(serde_json::Value::Object(app)), Some(serde_json::Value::Object(paths))) =
        (st.app_paths.as_deref(), document.get_mut("paths"))
    {
        for (path, item) in app {
            paths.insert(path.clone(), item.clone());
        }
    }
    Json(document)
}

/// Static assets may be cached briefly; they change only with the binary.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
}

async fn page() -> impl IntoResponse {
    asset("text/html; charset=utf-8", PAGE)
}

async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}
