//! aristay's own routes, under `/api/v1/aristay/`, one module per resource, each owning
//! its paths and their OpenAPI path items (a [`Resource`]):
//!
//! - [`import`]: `POST /bookings/import`, the booking import from an .xlsx workbook.
//! - [`photos`]: `POST /tasks/{id}/images`, a photo of a task.
//! - [`files`]: `GET /files/{id}`, the file of a `task_images` record.
//!
//! Access follows the collections' rules: importing needs the right to create bookings; a
//! photo needs the right to see and update its task; a file, the right to see its record.
//! Files are stored and read through the engine's blob API (`bucketbase_engine::blob`).

pub mod files;
pub mod import;
pub mod photos;

use axum::http::StatusCode;
use bucketbase_server::contract::Resource;
use bucketbase_server::error::ApiError;
use serde_json::{Value, json};

use crate::error::ErrorKind;

/// Room for the multipart framing and the small fields around a file.
const MULTIPART_SLACK: usize = 64 * 1024;

/// Every aristay route with its documentation.
pub fn resource() -> Resource {
    Resource::new()
        .merge(import::resource())
        .merge(photos::resource())
        .merge(files::resource())
}

/// The status that answers a domain error of `kind`: the one place kinds meet HTTP.
pub fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::UnsupportedType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::BadInput => StatusCode::BAD_REQUEST,
    }
}

/// The answer to a domain error: its kind's status, its stable code and its message.
fn domain_error(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(status(kind), code, message)
}

/// OpenAPI: an error answer in the envelope.
fn doc_error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}})
}

/// OpenAPI: a success answer in the envelope.
fn doc_ok(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {
        "type": "object", "required": ["success", "data", "meta"],
        "properties": {"success": {"const": true}, "data": {}, "meta": {"$ref": "#/components/schemas/Meta"}}}}}})
}

/// OpenAPI: a path parameter.
fn doc_id(name: &str, what: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": what, "schema": {"type": "string"}})
}
