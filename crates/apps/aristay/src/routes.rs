//! aristay's own routes, under `/api/v1/aristay/`:
//!
//! - `POST /bookings/import` (multipart: `file`, `template_id` or `mapping`, `dry_run`,
//!   `mode`, `run_automations`): see [`crate::import::run`].
//! - `POST /tasks/{id}/images` (multipart: `file`, optional `caption`): a photo of a task,
//!   sniffed from its bytes against the image allow-list, stored as
//!   `_files/<uuid>.<ext>` with a `task_images` record.
//! - `GET /files/{id}`: the file of a `task_images` record, for whoever may see the record.
//!
//! Access follows the collections' rules: importing needs the right to create bookings; a
//! photo needs the right to see and update its task; a file, the right to see its record.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bucketbase_engine::RecordId;
use bucketbase_engine::collection::keys::is_live;
use bucketbase_engine::collection::records::{Secrets, render};
use bucketbase_server::AppState;
use bucketbase_server::access::{Action, Caller};
use bucketbase_server::envelope::{Envelope, RequestId};
use bucketbase_server::error::{ApiError, Result};
use bucketbase_server::routes::{definition, etag, record_id};
use object_store::ObjectStoreExt;
use object_store::path::Path as StorePath;
use serde_json::{Value, json};
use sha2::Digest;

use crate::coll;
use crate::files::{sanitize_filename, sniff_image};
use crate::import::mapping::Mapping;
use crate::import::run::{ImportError, Mode, Request, import_bookings};
use crate::import::xlsx::Limits;

/// Largest task photo.
pub const MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;
/// Room for the multipart framing and the small fields around a file.
const MULTIPART_SLACK: usize = 64 * 1024;

/// The routes; merged into the server with `bucketbase_server::app_with`.
pub fn router() -> Router<AppState> {
    let import_limit = Limits::default().max_file_bytes as usize + MULTIPART_SLACK;
    Router::new()
        .route(
            "/api/v1/aristay/bookings/import",
            post(import).layer(DefaultBodyLimit::max(import_limit)),
        )
        .route(
            "/api/v1/aristay/tasks/{id}/images",
            post(upload_image).layer(DefaultBodyLimit::max(MAX_IMAGE_BYTES + MULTIPART_SLACK)),
        )
        .route("/api/v1/aristay/files/{id}", get(download))
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    let status = e.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "payload_too_large"
    } else {
        "bad_request"
    };
    ApiError::new(status, code, e.body_text())
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the file is larger than the limit of {max} bytes"),
    )
}

/// A multipart field's bytes, refusing more than `max` (413).
async fn field_bytes(
    field: &mut axum::extract::multipart::Field<'_>,
    max: usize,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if out.len() + chunk.len() > max {
            return Err(too_large(max));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn field_text(field: &mut axum::extract::multipart::Field<'_>, name: &str) -> Result<String> {
    let bytes = field_bytes(field, 256 * 1024).await?;
    String::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request(format!("{name} must be UTF-8 text")))
}

fn flag(name: &str, value: &str) -> Result<bool> {
    match value.trim() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        other => Err(ApiError::bad_request(format!(
            "{name} must be true or false, not {other:?}"
        ))),
    }
}

/// A mapping from a saved `booking_import_templates` record.
fn saved_mapping(st: &AppState, caller: &Caller, id: &str) -> Result<Mapping> {
    let templates = coll("booking_import_templates");
    let def = definition(&st.db.snapshot(), &templates)?;
    let id = record_id(id)?;
    let template = st
        .db
        .snapshot()
        .get(&templates, &id)
        .map(|d| d.value())
        .filter(|t| is_live(t) && caller.may(&def, Action::View, t))
        .ok_or_else(|| ApiError::not_found(format!("booking_import_templates/{id} not found")))?;
    serde_json::from_value(template.get("mapping").cloned().unwrap_or(Value::Null)).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_mapping",
            format!("the template's mapping is not usable: {e}"),
        )
    })
}

fn import_error(e: ImportError) -> ApiError {
    match e {
        ImportError::File(e) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            ApiError::new(status, e.code(), e.to_string())
        }
        ImportError::Mapping(e) => ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string())
            .with_details(json!({"issues": e.issues})),
        ImportError::Engine(e) => ApiError::from(e),
        ImportError::TooLarge {
            rows,
            rows_fit,
            limit,
        } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
            .with_details(json!({"rows": rows, "rows_fit": rows_fit, "max_entry_bytes": limit})),
        ImportError::Internal(message) => {
            tracing::error!(%message, "booking import failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        }
    }
}

async fn import(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    mut form: Multipart,
) -> Result<Response> {
    let bookings = definition(&st.db.snapshot(), &coll("bookings"))?;
    if !caller.may(&bookings, Action::Create, &json!({})) {
        return Err(ApiError::forbidden(
            "importing bookings needs the right to create bookings",
        ));
    }
    let limits = Limits::default();
    let (mut file, mut template_id, mut mapping) = (None, None, None);
    let (mut dry_run, mut mode, mut run_automations) = (false, Mode::default(), true);
    while let Some(mut field) = form.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" => {
                let file_name = sanitize_filename(field.file_name().unwrap_or("bookings.xlsx"));
                let bytes = field_bytes(&mut field, limits.max_file_bytes as usize).await?;
                file = Some((file_name, bytes));
            }
            "template_id" => template_id = Some(field_text(&mut field, &name).await?),
            "mapping" => {
                let text = field_text(&mut field, &name).await?;
                mapping = Some(serde_json::from_str::<Mapping>(&text).map_err(|e| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_mapping",
                        format!("mapping: {e}"),
                    )
                })?);
            }
            "dry_run" => dry_run = flag(&name, &field_text(&mut field, &name).await?)?,
            "run_automations" => {
                run_automations = flag(&name, &field_text(&mut field, &name).await?)?
            }
            "mode" => {
                mode = field_text(&mut field, &name)
                    .await?
                    .trim()
                    .parse()
                    .map_err(ApiError::bad_request)?
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown form field {other:?} (expected file, template_id, mapping, dry_run, mode, run_automations)"
                )));
            }
        }
    }
    let (file_name, bytes) =
        file.ok_or_else(|| ApiError::bad_request("the form needs a file field"))?;
    let mapping = match (mapping, &template_id) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "send either template_id or mapping, not both",
            ));
        }
        (Some(m), None) => m,
        (None, Some(id)) => saved_mapping(&st, &caller, id)?,
        (None, None) => {
            return Err(ApiError::bad_request(
                "the form needs template_id or mapping",
            ));
        }
    };
    let request = Request {
        file_name,
        bytes,
        mapping,
        template_id,
        dry_run,
        mode,
        run_automations,
        limits,
    };
    let report = import_bookings(
        &st.db,
        caller.uuid(),
        Some(&req.0),
        request,
        Arc::new(|_, _| {}),
    )
    .await
    .map_err(import_error)?;
    if report.status == "rejected" {
        let message = format!(
            "{} of {} rows cannot be imported; nothing was written (mode all_or_nothing)",
            report.counts.failed, report.rows
        );
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
        .with_details(serde_json::to_value(&report).unwrap_or_default()));
    }
    let envelope = if report.dry_run {
        Envelope::ok(&req, &report)
    } else {
        Envelope::created(&req, &report)
    };
    Ok(envelope.into_response())
}

async fn upload_image(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    Path(task): Path<String>,
    mut form: Multipart,
) -> Result<Response> {
    let tasks = coll("tasks");
    let images = coll("task_images");
    let task_id = record_id(&task)?;
    let tasks_def = definition(&st.db.snapshot(), &tasks)?;
    let images_def = definition(&st.db.snapshot(), &images)?;
    let hidden = || ApiError::not_found(format!("tasks/{task_id} not found"));
    let task = st
        .db
        .snapshot()
        .get(&tasks, &task_id)
        .map(|d| d.value())
        .filter(|t| is_live(t) && caller.may(&tasks_def, Action::View, t))
        .ok_or_else(hidden)?;
    if !caller.may(&tasks_def, Action::Update, &task) {
        return Err(ApiError::forbidden(
            "adding photos needs the right to update the task",
        ));
    }
    let (mut file, mut caption) = (None, None);
    while let Some(mut field) = form.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" => {
                let original = field.file_name().map(sanitize_filename);
                file = Some((original, field_bytes(&mut field, MAX_IMAGE_BYTES).await?));
            }
            "caption" => caption = Some(field_text(&mut field, &name).await?),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown form field {other:?} (expected file, caption)"
                )));
            }
        }
    }
    let (original, bytes) =
        file.ok_or_else(|| ApiError::bad_request("the form needs a file field"))?;
    let kind = sniff_image(&bytes).map_err(|e| {
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        ApiError::new(status, e.code(), e.to_string())
    })?;
    let id = st.db.new_id();
    let key = format!("_files/{id}.{}", kind.ext);
    let size = bytes.len();
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    st.db
        .store()
        .put(&StorePath::from(key.as_str()), bytes.into())
        .await
        .map_err(|e| ApiError::from(bucketbase_engine::Error::Store(e)))?;
    let mut record = json!({
        "id": id.as_str(),
        "task_id": task_id.as_str(),
        "property_id": task["property_id"],
        "file_key": key,
        "content_type": kind.mime,
        "size": size,
        "sha256": sha,
        "uploaded_by": caller.uuid(),
    });
    if let Some(name) = original {
        record["original_name"] = json!(name);
    }
    if let Some(caption) = caption {
        record["caption"] = json!(caption);
    }
    let committed = st
        .db
        .transact(&caller.txn_meta(&req), |tx| {
            // The task may have changed hands since it was checked.
            let current = tx.record(&tasks, &task_id, None)?;
            if !is_live(&current) || !caller.may(&tasks_def, Action::Update, &current) {
                return Err(hidden());
            }
            Ok(tx.create(&images, record.clone())?.1)
        })
        .await;
    let committed = match committed {
        Ok(c) => c,
        Err(e) => {
            // Best effort: the file has no record, so nothing serves it.
            let _ = st.db.store().delete(&StorePath::from(key.as_str())).await;
            return Err(e);
        }
    };
    let data = render(
        Some(&images_def),
        &images,
        &id,
        committed.value,
        committed.seq,
        Secrets::Mask,
        st.secrets.as_deref(),
    )?;
    Ok(Envelope::created(&req, data)
        .header(header::ETAG, &etag(committed.seq))
        .into_response())
}

async fn download(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let images = coll("task_images");
    let def = definition(&st.db.snapshot(), &images)?;
    let id: RecordId = record_id(&id)?;
    let hidden = || ApiError::not_found(format!("files/{id} not found"));
    let image = st
        .db
        .snapshot()
        .get(&images, &id)
        .map(|d| d.value())
        .filter(|r| is_live(r) && caller.may(&def, Action::View, r))
        .ok_or_else(hidden)?;
    let key = image["file_key"].as_str().ok_or_else(hidden)?;
    let got = st
        .db
        .store()
        .get(&StorePath::from(key))
        .await
        .map_err(|e| match e {
            object_store::Error::NotFound { .. } => hidden(),
            other => ApiError::from(bucketbase_engine::Error::Store(other)),
        })?;
    let bytes = got
        .bytes()
        .await
        .map_err(|e| ApiError::from(bucketbase_engine::Error::Store(e)))?;
    let content_type = image["content_type"]
        .as_str()
        .unwrap_or("application/octet-stream");
    let allowed = crate::files::ImageKind::ALLOWED
        .iter()
        .any(|k| k.mime == content_type);
    let name = image["original_name"].as_str().unwrap_or("file");
    let disposition = format!(
        "{}; filename=\"{}\"",
        if allowed { "inline" } else { "attachment" },
        name.replace(['"', '\\'], "_")
    );
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    let set = |v: &str| HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("attachment"));
    headers.insert(
        header::CONTENT_TYPE,
        if allowed {
            set(content_type)
        } else {
            HeaderValue::from_static("application/octet-stream")
        },
    );
    headers.insert(header::CONTENT_DISPOSITION, set(&disposition));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    if let Some(sha) = image["sha256"].as_str() {
        headers.insert(header::ETAG, set(&format!("\"{sha}\"")));
    }
    Ok(response)
}

/// These routes as OpenAPI path items, for `/api/openapi.json`.
pub fn openapi_paths() -> Value {
    let error = |description: &str| json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}});
    let ok = |description: &str| {
        json!({"description": description, "content": {"application/json": {"schema": {
            "type": "object", "required": ["success", "data", "meta"],
            "properties": {"success": {"const": true}, "data": {}, "meta": {"$ref": "#/components/schemas/Meta"}}}}}})
    };
    let id = |name: &str, what: &str| json!({"name": name, "in": "path", "required": true, "description": what, "schema": {"type": "string"}});
    json!({
        "/api/v1/aristay/bookings/import": {"post": {
            "tags": ["aristay"],
            "summary": "Import bookings from an .xlsx workbook",
            "description": "Upsert by (source, external_id); every row checked against every booking rule; a dry run, all_or_nothing or partial. Answers the report (counts, the first row errors with errors_truncated, per-row outcomes with results_truncated); an import-log record keeps it. See docs/aristay.md.",
            "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "the .xlsx workbook (at most 10 MiB)"},
                    "template_id": {"type": "string", "description": "a booking_import_templates record"},
                    "mapping": {"type": "string", "description": "an inline column mapping (JSON), instead of template_id"},
                    "dry_run": {"type": "boolean", "default": false},
                    "mode": {"enum": ["all_or_nothing", "partial"], "default": "all_or_nothing"},
                    "run_automations": {"type": "boolean", "default": true}
                }}}}},
            "responses": {
                "200": ok("The dry run's report"),
                "201": ok("The import's report (committed or partial)"),
                "400": error("Bad form or unreadable workbook"),
                "403": error("Not allowed to create bookings"),
                "404": error("Unknown template"),
                "413": error("File too large, a zip bomb, too much cell text (too_much_text), or rows that do not fit in one log entry (too_large; error.details.rows_fit)"),
                "415": error("Not an .xlsx workbook"),
                "400": error("A malformed form, or a mapping that does not fit the workbook (invalid_mapping), or a workbook with nothing to import (empty_sheet)"),
                "422": error("Rows refused in all_or_nothing mode: validation_failed, with the report in error.details")
            }}},
        "/api/v1/aristay/tasks/{id}/images": {"post": {
            "tags": ["aristay"],
            "summary": "Add a photo to a task",
            "description": "For whoever may see and update the task. The type is sniffed from the bytes (PNG, JPEG, WebP, GIF, HEIC/HEIF); the file is stored as _files/<uuid>.<ext> with a task_images record.",
            "parameters": [id("id", "the task")],
            "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "the image (at most 10 MiB)"},
                    "caption": {"type": "string"}
                }}}}},
            "responses": {
                "201": ok("The task_images record"),
                "400": error("Bad form"),
                "403": error("May see the task but not update it"),
                "404": error("No such task, or not visible to the caller"),
                "413": error("File too large"),
                "415": error("Not an allowed image type")
            }}},
        "/api/v1/aristay/files/{id}": {"get": {
            "tags": ["aristay"],
            "summary": "Download a task photo",
            "description": "Served with the sniffed type, X-Content-Type-Options: nosniff, and an inline disposition for allowed images only.",
            "parameters": [id("id", "the task_images record")],
            "responses": {
                "200": {"description": "The file", "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}}},
                "404": error("No such file, or not visible to the caller")
            }}}
    })
}
