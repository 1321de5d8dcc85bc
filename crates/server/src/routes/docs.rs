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
use crate::contract::Resource;

const PAGE: &str = include_str!("../../assets/docs/index.html");
const SCRIPT: &str = include_str!("../../assets/docs/docs.js");
const STYLE: &str = include_str!("../../assets/docs/docs.css");

pub fn router() -> Router<AppState> {
    resource().into_router()
}

/// The routes with their OpenAPI operations.
pub fn resource() -> Resource {
    use crate::openapi::{json_response, operation, public};
    use utoipa::openapi::{ContentBuilder, ResponseBuilder, path::HttpMethod};
    const ASSET: &str = "a static asset of the docs page";
    Resource::new()
        .route(
            "/api/openapi.json",
            get(openapi),
            [(
                HttpMethod::Get,
                public(
                    operation("system.openapi", "system", "This document", &[]).response(
                        "200",
                        json_response("OpenAPI 3.1 document", crate::openapi::any()),
                    ),
                ),
            )],
        )
        .route(
            "/api/docs",
            get(page),
            [(
                HttpMethod::Get,
                public(
                    operation(
                        "system.docs",
                        "system",
                        "Human-readable API reference (HTML)",
                        &[],
                    )
                    .response(
                        "200",
                        ResponseBuilder::new()
                            .description("HTML page rendering this document")
                            .content("text/html", ContentBuilder::new().build())
                            .build(),
                    ),
                ),
            )],
        )
        .route_undocumented("/api/docs/docs.js", get(script), ASSET)
        .route_undocumented("/api/docs/docs.css", get(style), ASSET)
}

async fn openapi(State(st): State<AppState>) -> Json<serde_json::Value> {
    let snap = st.db.snapshot();
    // System collections (`_users`, ...) have no routes here: never documented.
    let user_collections = snap.definitions().filter(|(c, _)| !c.is_system());
    let document = crate::openapi::document(user_collections.map(|(_, def)| def.as_ref()));
    let mut document = serde_json::to_value(document).unwrap_or_default();
    // The server's own routes, documented by the resources that route them, and the app's.
    let app = match st.app_paths.as_deref() {
        Some(serde_json::Value::Object(app)) => Some(app),
        _ => None,
    };
    if let Some(serde_json::Value::Object(paths)) = document.get_mut("paths") {
        for (path, item) in super::documented_paths()
            .iter()
            .chain(app.into_iter().flatten())
        {
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
