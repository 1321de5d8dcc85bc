//! `GET /api/v1/aristay/files/{id}`: the file of a `task_images` record, for whoever may
//! see the record. The record's `file_key` is parsed as a blob key before it is read
//! (`bucketbase_engine::blob::BlobKey`), so only `_files/` is ever served; the answer
//! carries the sniffed type only for allowed images (anything else downloads as
//! `application/octet-stream`), `X-Content-Type-Options: nosniff`, and a disposition.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::get;
use bucketbase_engine::RecordId;
use bucketbase_engine::blob::{BlobKey, Blobs};
use bucketbase_engine::collection::keys::is_live;
use bucketbase_server::AppState;
use bucketbase_server::access::{Action, Caller};
use bucketbase_server::contract::Resource;
use bucketbase_server::error::{ApiError, Result};
use bucketbase_server::routes::{definition, record_id};
use serde_json::{Value, json};

use super::{doc_error, doc_id};
use crate::coll;

const PATH: &str = "/api/v1/aristay/files/{id}";

pub fn resource() -> Resource {
    Resource::new().route_json(PATH, get(download), openapi())
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
    let key = image["file_key"]
        .as_str()
        .and_then(|k| BlobKey::parse(k).ok())
        .ok_or_else(hidden)?;
    let bytes = Blobs::of(&st.db).get(&key).await?.ok_or_else(hidden)?;
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

fn openapi() -> Value {
    json!({"get": {
    "tags": ["aristay"],
    "summary": "Download a task photo",
    "description": "Served with the sniffed type, X-Content-Type-Options: nosniff, and an inline disposition for allowed images only.",
    "parameters": [doc_id("id", "the task_images record")],
    "responses": {
        "200": {"description": "The file", "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}}},
        "404": doc_error("No such file, or not visible to the caller")
    }}})
}
