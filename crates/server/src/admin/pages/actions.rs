//! The actions on a record: delete, restore (a refusal by a unique or overlap rule is
//! explained, with a link to the record in the way) and purge (SuperAdmin, after a
//! confirmation). Each is a form POST to the API's own route.

use axum::Router;
use axum::extract::Path;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::super::error::AdminError;
use super::super::forms::{CsrfForm, Form};
use super::super::session::Ctx;
use super::label;
use super::record::failure_json;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/c/{collection}/{id}/delete", post(delete))
        .route("/admin/c/{collection}/{id}/restore", post(restore))
        .route(
            "/admin/c/{collection}/{id}/purge",
            get(purge_page).post(purge),
        )
}

/// Where to go after an action: an admin page the form names, else `default`.
fn back(form: &Form, default: String) -> String {
    form.get("back")
        .filter(|b| b.starts_with("/admin/") && !b.starts_with("//"))
        .map(str::to_string)
        .unwrap_or(default)
}

async fn delete(
    ctx: Ctx,
    Path((c, id)): Path<(String, String)>,
    CsrfForm(form): CsrfForm,
) -> Result<Response, AdminError> {
    let (c, id) = (super::collection(&c)?, super::record_id(&id)?);
    let answer = ctx
        .api
        .call(Method::DELETE, &format!("/api/v1/{c}/{id}"), None, None)
        .await?;
    // A soft delete answers the record (still viewable); a hard one answers nothing.
    let default = if answer.data.is_null() {
        format!("/admin/c/{c}?notice=deleted")
    } else {
        format!("/admin/c/{c}/{id}?notice=deleted")
    };
    Ok(Redirect::to(&back(&form, default)).into_response())
}

/// Restores a soft-deleted record; a restore that would break a unique or overlap rule
/// is explained, with a link to the record in the way.
async fn restore(
    ctx: Ctx,
    Path((c, id)): Path<(String, String)>,
    CsrfForm(form): CsrfForm,
) -> Result<Response, AdminError> {
    let (c, id) = (super::collection(&c)?, super::record_id(&id)?);
    let path = format!("/api/v1/{c}/{id}");
    match ctx
        .api
        .call(Method::POST, &format!("{path}/restore"), None, None)
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/admin/c/{c}/{id}?notice=restored")).into_response()),
        Err(f) if f.status == StatusCode::CONFLICT => {
            let record = ctx
                .api
                .get(&path)
                .await
                .map(|a| a.data)
                .unwrap_or(Value::Null);
            ctx.page_with(
                f.status,
                "conflict.html",
                json!({"title": "Cannot restore", "collection": c.as_str(), "id": id.as_str(),
                       "label": label(&record), "failure": failure_json(&f),
                       "back": back(&form, "/admin/trash".into())}),
            )
        }
        Err(f) => Err(f.into()),
    }
}

async fn purge_page(
    ctx: Ctx,
    Path((c, id)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let (c, id) = (super::collection(&c)?, super::record_id(&id)?);
    let record = ctx.api.get(&format!("/api/v1/{c}/{id}")).await?.data;
    ctx.page(
        "purge.html",
        json!({"title": "Purge", "collection": c.as_str(), "id": id.as_str(), "label": label(&record),
               "super_admin": ctx.caller().is_super_admin()}),
    )
}

/// Purges (SuperAdmin, after the confirmation box is ticked).
async fn purge(
    ctx: Ctx,
    Path((c, id)): Path<(String, String)>,
    CsrfForm(form): CsrfForm,
) -> Result<Response, AdminError> {
    let (c, id) = (super::collection(&c)?, super::record_id(&id)?);
    if form.get("confirm") != Some("yes") {
        return Err(AdminError::BadRequest(
            "tick the box to confirm the purge".into(),
        ));
    }
    ctx.api
        .call(
            Method::DELETE,
            &format!("/api/v1/{c}/{id}?purge=true"),
            None,
            None,
        )
        .await?;
    Ok(Redirect::to("/admin/trash?notice=purged").into_response())
}
