//! `POST /api/v1/aristay/tasks/{id}/images` (multipart: `file`, optional `caption`): a
//! photo of a task, sniffed from its bytes against the image allow-list, stored as a blob
//! (`_files/<uuid>.<ext>`, see `bucketbase_engine::blob`) with a `task_images` record
//! whose id is the blob's.

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bucketbase_engine::blob::{BlobKey, Blobs};
use bucketbase_engine::collection::keys::is_live;
use bucketbase_engine::collection::records::{Secrets, render};
use bucketbase_server::AppState;
use bucketbase_server::access::{Action, Caller};
use bucketbase_server::contract::Resource;
use bucketbase_server::envelope::{Envelope, RequestId};
use bucketbase_server::error::{ApiError, Result};
use bucketbase_server::form::Form;
use bucketbase_server::routes::{definition, etag, record_id};
use serde_json::{Value, json};
use sha2::Digest;

use super::{MULTIPART_SLACK, doc_error, doc_id, doc_ok, domain_error};
use crate::coll;
use crate::files::{sanitize_filename, sniff_image};

/// Largest task photo.
pub const MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;

const PATH: &str = "/api/v1/aristay/tasks/{id}/images";

pub fn resource() -> Resource {
    Resource::new().route_json(
        PATH,
        post(upload_image).layer(DefaultBodyLimit::max(MAX_IMAGE_BYTES + MULTIPART_SLACK)),
        openapi(),
    )
}

/// The photo form, read.
pub struct PhotoForm {
    /// The sanitised name the client gave the file, if any.
    pub original_name: Option<String>,
    pub bytes: Vec<u8>,
    pub caption: Option<String>,
}

impl PhotoForm {
    pub async fn read(form: Multipart) -> Result<PhotoForm> {
        let mut form = Form::from(form);
        let (mut file, mut caption) = (None, None);
        while let Some(mut field) = form.next().await? {
            match field.name() {
                "file" => {
                    let original = field.file_name().map(sanitize_filename);
                    file = Some((original, field.bytes(MAX_IMAGE_BYTES).await?));
                }
                "caption" => caption = Some(field.text().await?),
                _ => return Err(field.unknown("file, caption")),
            }
        }
        let (original_name, bytes) =
            file.ok_or_else(|| ApiError::bad_request("the form needs a file field"))?;
        Ok(PhotoForm {
            original_name,
            bytes,
            caption,
        })
    }
}

async fn upload_image(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    Path(task): Path<String>,
    form: Multipart,
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
    let form = PhotoForm::read(form).await?;
    let kind =
        sniff_image(&form.bytes).map_err(|e| domain_error(e.kind(), e.code(), e.to_string()))?;
    let id = st.db.new_id();
    let key = BlobKey::new(&id, kind.ext).map_err(ApiError::internal)?;
    let size = form.bytes.len();
    let sha = hex::encode(sha2::Sha256::digest(&form.bytes));
    let blobs = Blobs::of(&st.db);
    blobs.put(&key, form.bytes.into()).await?;
    let mut record = json!({
        "id": id.as_str(),
        "task_id": task_id.as_str(),
        "property_id": task["property_id"],
        "file_key": key.as_str(),
        "content_type": kind.mime,
        "size": size,
        "sha256": sha,
        "uploaded_by": caller.uuid(),
    });
    if let Some(name) = form.original_name {
        record["original_name"] = json!(name);
    }
    if let Some(caption) = form.caption {
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
            let _ = blobs.delete(&key).await;
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

fn openapi() -> Value {
    json!({"post": {
    "tags": ["aristay"],
    "summary": "Add a photo to a task",
    "description": "For whoever may see and update the task. The type is sniffed from the bytes (PNG, JPEG, WebP, GIF, HEIC/HEIF); the file is stored as _files/<uuid>.<ext> with a task_images record.",
    "parameters": [doc_id("id", "the task")],
    "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "the image (at most 10 MiB)"},
            "caption": {"type": "string"}
        }}}}},
    "responses": {
        "201": doc_ok("The task_images record"),
        "400": doc_error("Bad form"),
        "403": doc_error("May see the task but not update it"),
        "404": doc_error("No such task, or not visible to the caller"),
        "413": doc_error("File too large"),
        "415": doc_error("Not an allowed image type")
    }}})
}
