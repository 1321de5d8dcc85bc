//! docsai's own routes, under `/api/v1/docsai/`, one module per resource, each owning
//! its paths and their OpenAPI path items (a [`Resource`]):
//!
//! - [`json_store`]: `GET|PUT /json_store/{key}`, the key-value store by key.
//! - [`postman`]: `POST /api_collections/import` and `GET /api_collections/{id}/export`.
//!
//! A workflow's executions and their logs are the generic nested routes, two levels deep
//! (`/api/v1/workflows/{id}/executions/{execution}/logs`, docs/collections.md).
//!
//! Access follows the collections' rules, which bind SuperAdmin too (every docsai record
//! belongs to its owner; decision 0021): another owner's record is not found.

pub mod json_store;
pub mod postman;

use axum::http::StatusCode;
use bucketbase_server::contract::Resource;
use bucketbase_server::error::ApiError;
use serde_json::{Value, json};

use crate::postman::ErrorKind;

/// Every docsai route with its documentation.
pub fn resource() -> Resource {
    Resource::new()
        .merge(json_store::resource())
        .merge(postman::resource())
}

/// The answer to a bad collection file: the one place Postman error kinds meet HTTP.
pub fn file_error(e: &crate::postman::Error) -> ApiError {
    let (status, code) = match e.kind() {
        ErrorKind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        ErrorKind::TooManyItems => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_items"),
        ErrorKind::NotJson => (StatusCode::BAD_REQUEST, "not_json"),
        ErrorKind::WrongSchema => (StatusCode::BAD_REQUEST, "not_a_postman_collection"),
        ErrorKind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_collection"),
        ErrorKind::TooDeep => (StatusCode::UNPROCESSABLE_ENTITY, "too_deep"),
    };
    ApiError::new(status, code, e.to_string())
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
fn doc_param(name: &str, what: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": what, "schema": {"type": "string"}})
}
