//! `/admin/audit`: audit events filtered by collection, record, actor, source (`api`,
//! `automation`, `import:…`, `migration:…`) and time, each with its field diffs; and the
//! "verify the chain" action (`/admin/audit/verify`, swapped in by htmx, or the same
//! result on the audit page as a plain link). SuperAdmin, as in the API.

use axum::Router;
use axum::extract::Query;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::super::api::with_query;
use super::super::error::AdminError;
use super::super::render;
use super::super::session::Ctx;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/audit", get(audit))
        .route("/admin/audit/verify", get(verify))
}

#[derive(serde::Deserialize, Default, serde::Serialize)]
struct Params {
    collection: Option<String>,
    record_id: Option<String>,
    actor: Option<String>,
    source: Option<String>,
    from: Option<String>,
    to: Option<String>,
    verify: Option<String>,
}

/// A `datetime-local` value (`2026-07-01T10:00`) as the RFC 3339 time the API takes.
fn rfc3339(value: &Option<String>) -> String {
    match value.as_deref().map(str::trim) {
        None | Some("") => String::new(),
        Some(v) if v.len() == 16 => format!("{v}:00Z"),
        Some(v) if v.ends_with('Z') || v.contains('+') => v.to_string(),
        Some(v) => format!("{v}Z"),
    }
}

async fn audit(ctx: Ctx, Query(p): Query<Params>) -> Result<Response, AdminError> {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let uri = with_query(
        "/api/v1/audit",
        &[
            ("collection", text(&p.collection)),
            ("record_id", text(&p.record_id)),
            ("actor", text(&p.actor)),
            ("source", text(&p.source)),
            ("from", rfc3339(&p.from)),
            ("to", rfc3339(&p.to)),
            ("limit", "100".into()),
        ],
    );
    let (events, error) = match ctx.api.get(&uri).await {
        Ok(a) => (a.data, None),
        Err(f) if f.status == axum::http::StatusCode::BAD_REQUEST => (json!([]), Some(f.message)),
        Err(f) => return Err(f.into()),
    };
    let events: Vec<Value> = events
        .as_array()
        .into_iter()
        .flatten()
        .map(super::event_view)
        .collect();
    let verified = if p.verify.is_some() {
        Some(chain(&ctx).await?)
    } else {
        None
    };
    ctx.page(
        "audit.html",
        json!({"title": "Audit", "events": events, "error": error, "q": p, "verify": verified}),
    )
}

async fn chain(ctx: &Ctx) -> Result<Value, AdminError> {
    Ok(ctx.api.get("/api/v1/audit/verify").await?.data)
}

/// The chain verification: a fragment for htmx, else the audit page with the result.
async fn verify(ctx: Ctx, headers: HeaderMap) -> Result<Response, AdminError> {
    if headers.get("hx-request").is_none() {
        return Ok(axum::response::Redirect::to("/admin/audit?verify=1").into_response());
    }
    let result = chain(&ctx).await?;
    render::page(
        axum::http::StatusCode::OK,
        "verify.html",
        json!({"verify": result}),
    )
}
