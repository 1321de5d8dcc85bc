//! `/admin/definitions` (SuperAdmin): the collection definitions, each viewable and
//! editable as JSON; the API's refusal (a JSON error, 422 `invalid_definition`) is shown
//! above the editor with the text as it was sent.

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::super::api::Failure;
use super::super::error::AdminError;
use super::super::forms::CsrfForm;
use super::super::session::Ctx;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/definitions", get(list))
        .route("/admin/definitions/{name}", get(view).post(save))
}

fn super_admin(ctx: &Ctx) -> Result<(), AdminError> {
    if ctx.caller().is_super_admin() {
        return Ok(());
    }
    Err(AdminError::Api(Failure {
        status: StatusCode::FORBIDDEN,
        code: "forbidden".into(),
        message: "definitions need the SuperAdmin role".into(),
        details: Value::Null,
    }))
}

async fn list(ctx: Ctx) -> Result<Response, AdminError> {
    super_admin(&ctx)?;
    let defs = ctx.api.get("/api/v1/collections").await?.data;
    let rows: Vec<Value> = defs
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| json!({"name": d["name"], "description": d["description"], "soft_delete": d["soft_delete"],
                        "fields": d["schema"]["properties"].as_object().map_or(0, |p| p.len())}))
        .collect();
    ctx.page(
        "definitions.html",
        json!({"title": "Definitions", "rows": rows}),
    )
}

#[derive(serde::Deserialize)]
struct Params {
    notice: Option<String>,
}

async fn view(
    ctx: Ctx,
    Path(name): Path<String>,
    Query(p): Query<Params>,
) -> Result<Response, AdminError> {
    super_admin(&ctx)?;
    let c = super::collection(&name)?;
    let def = ctx.api.get(&format!("/api/v1/collections/{c}")).await?.data;
    let text = serde_json::to_string_pretty(&def).unwrap_or_default();
    ctx.page(
        "definition.html",
        json!({"title": format!("Definition · {c}"), "name": c.as_str(), "text": text,
               "notice": super::notice(p.notice.as_deref())}),
    )
}

async fn save(
    ctx: Ctx,
    Path(name): Path<String>,
    CsrfForm(form): CsrfForm,
) -> Result<Response, AdminError> {
    super_admin(&ctx)?;
    let c = super::collection(&name)?;
    let text = form.get("definition").unwrap_or_default().to_string();
    let refused = |status: StatusCode, message: String| {
        ctx.page_with(
            status,
            "definition.html",
            json!({"title": format!("Definition · {c}"), "name": c.as_str(), "text": text, "error": message}),
        )
    };
    let body: Value = match serde_json::from_str(&text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return refused(
                StatusCode::BAD_REQUEST,
                "a definition is a JSON object".into(),
            );
        }
        Err(e) => {
            return refused(
                StatusCode::BAD_REQUEST,
                format!("the JSON does not parse: {e}"),
            );
        }
    };
    match ctx
        .api
        .call(
            Method::PATCH,
            &format!("/api/v1/collections/{c}"),
            Some(&body),
            None,
        )
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/admin/definitions/{c}?notice=saved")).into_response()),
        Err(f) => refused(f.status, f.message),
    }
}
