//! `/admin/aristay/my-tasks`: the tasks assigned to the signed-in user, made for a phone
//! (one card per task, large buttons): mark a task done, upload a photo of it.
//!
//! The list is the API's `GET /api/v1/tasks?assigned_to=<me>`, so a staff member sees
//! exactly the tasks the rules give them. "Done" is a `PATCH` with the version the page
//! showed (`If-Match`: a task changed meanwhile is a 412, not a silent overwrite). The
//! photo is a plain multipart form, CSRF-checked here and handed to the photo API
//! (`POST /api/v1/aristay/tasks/{id}/images`), which sniffs and limits it.

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use bucketbase_engine::RecordId;
use bucketbase_server::AppState;
use bucketbase_server::admin::upload::{CsrfMultipart, Part};
use bucketbase_server::admin::{AdminError, CsrfForm, Ctx, with_query};
use serde_json::{Value, json};

use super::{TEMPLATES, notice};
use crate::routes::photos::MAX_IMAGE_BYTES;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/aristay/my-tasks", get(my_tasks))
        .route("/admin/aristay/my-tasks/{id}/done", post(done))
        .route("/admin/aristay/my-tasks/{id}/photo", post(photo))
}

/// The most tasks (and photos per task) the page shows.
const MAX_TASKS: usize = 100;
const MAX_PHOTOS: usize = 20;
/// Room for the form's framing, the caption and the CSRF field.
const FORM_SLACK: usize = 64 * 1024;

#[derive(serde::Deserialize)]
struct Params {
    show: Option<String>,
    notice: Option<String>,
}

fn task_id(id: &str) -> Result<RecordId, AdminError> {
    RecordId::parse(id).map_err(|_| AdminError::NotFound(format!("no task {id:?}")))
}

async fn my_tasks(ctx: Ctx, Query(p): Query<Params>) -> Result<Response, AdminError> {
    let all = p.show.as_deref() == Some("all");
    let me = ctx.caller().uuid().to_string();
    let mut params = vec![
        ("assigned_to", me),
        ("sort", "due_at,time_of_day".to_string()),
        ("per_page", MAX_TASKS.to_string()),
    ];
    if !all {
        params.push((
            "filter",
            "record.status == \"pending\" || record.status == \"in_progress\"".into(),
        ));
    }
    let answer = ctx.api.get(&with_query("/api/v1/tasks", &params)).await?;
    let mut tasks = Vec::new();
    for t in answer.data.as_array().into_iter().flatten() {
        let id = t["id"].as_str().unwrap_or_default();
        let photos = ctx
            .api
            .get(&with_query(
                "/api/v1/task_images",
                &[
                    ("task_id", id.to_string()),
                    ("sort", "created_at".into()),
                    ("per_page", MAX_PHOTOS.to_string()),
                ],
            ))
            .await
            .map(|a| a.data)
            .unwrap_or(Value::Null);
        let photos: Vec<Value> = photos
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| json!({"id": i["id"], "name": i["original_name"], "caption": i["caption"]}))
            .collect();
        let open = matches!(t["status"].as_str(), Some("pending" | "in_progress") | None);
        tasks.push(
            json!({"id": id, "title": t["title"], "status": t["status"], "type": t["type"],
                          "due_at": t["due_at"], "time_of_day": t["time_of_day"],
                          "description": t["description"], "version": t["_version"],
                          "open": open, "photos": photos}),
        );
    }
    ctx.render(
        &TEMPLATES,
        "aristay/tasks.html",
        json!({"title": "My tasks", "tasks": tasks, "all": all,
               "total": answer.meta["total"], "notice": notice(p.notice.as_deref())}),
    )
}

async fn done(
    ctx: Ctx,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm,
) -> Result<Response, AdminError> {
    let id = task_id(&id)?;
    let version = form.get("_version").and_then(|v| v.parse::<u64>().ok());
    ctx.api
        .call(
            Method::PATCH,
            &format!("/api/v1/tasks/{id}"),
            Some(&json!({"status": "done"})),
            version,
        )
        .await?;
    Ok(Redirect::to("/admin/aristay/my-tasks?notice=done").into_response())
}

async fn photo(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, AdminError> {
    let id = task_id(&id)?;
    let form = CsrfMultipart::read(&st, req, MAX_IMAGE_BYTES + FORM_SLACK).await?;
    let file = form
        .file("file")
        .ok_or_else(|| AdminError::BadRequest("choose a photo to upload".into()))?;
    let mut parts = vec![Part::file(
        "file",
        file.file_name.as_deref().unwrap_or("photo"),
        file.content_type
            .as_deref()
            .unwrap_or("application/octet-stream"),
        file.bytes.clone(),
    )];
    if let Some(caption) = form.text("caption").filter(|c| !c.trim().is_empty()) {
        parts.push(Part::text("caption", caption.trim()));
    }
    ctx.api
        .post_multipart(&format!("/api/v1/aristay/tasks/{id}/images"), &parts)
        .await?;
    Ok(Redirect::to("/admin/aristay/my-tasks?notice=photo").into_response())
}
