//! `POST /api/v1/docsai/api_collections/import` (the body is the collection file;
//! `?dry_run=true` reports without writing) and `GET
//! /api/v1/docsai/api_collections/{id}/export` (`?include_secrets=true` puts the
//! credentials back, and is audited): see [`crate::api_collections`].
//!
//! The import route carries its own body limit (20 MiB, the Postman layer's
//! `Limits::max_bytes`), larger than the server's global one, which stays for every
//! other route. The export answers the file itself (a download), not the envelope:
//! Postman reads the body as a collection; errors are still envelopes.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bucketbase_engine::collection::keys::is_live;
use bucketbase_server::AppState;
use bucketbase_server::access::{Action, Caller};
use bucketbase_server::contract::Resource;
use bucketbase_server::envelope::{Envelope, RequestId};
use bucketbase_server::error::{ApiError, Result};
use bucketbase_server::params::Flag;
use bucketbase_server::routes::{definition, record_id};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{doc_error, doc_ok, doc_param, file_error};
use crate::api_collections::{self, ImportError};
use crate::coll;
use crate::postman::Limits;

const IMPORT: &str = "/api/v1/docsai/api_collections/import";
const EXPORT: &str = "/api/v1/docsai/api_collections/{id}/export";

/// Room for what a client adds around the file (none for a raw body; a margin anyway).
const SLACK: usize = 64 * 1024;

pub fn resource() -> Resource {
    let limit = Limits::default().max_bytes + SLACK;
    Resource::new()
        .route_json(
            IMPORT,
            post(import).layer(DefaultBodyLimit::max(limit)),
            import_doc(),
        )
        .route_json(EXPORT, get(export), export_doc())
}

#[derive(Deserialize)]
struct ImportParams {
    #[serde(default)]
    dry_run: Flag,
}

fn import_error(e: ImportError) -> ApiError {
    match e {
        ImportError::File(e) => file_error(&e),
        ImportError::Engine(e) => ApiError::from(e),
    }
}

async fn import(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    Query(params): Query<ImportParams>,
    body: Bytes,
) -> Result<Envelope> {
    let c = coll("api_collections");
    let def = definition(&st.db.snapshot(), &c)?;
    if !caller.may(&def, Action::Create, &json!({"created_by": caller.uuid()})) {
        return Err(ApiError::forbidden(
            "you may not create api_collections records",
        ));
    }
    let dry_run = params.dry_run.0;
    // Parsing a 20 MiB file is CPU work: off the async workers.
    let parsed =
        tokio::task::spawn_blocking(move || crate::postman::import(&body, &Limits::default()))
            .await
            .map_err(|e| ApiError::internal(format!("import task: {e}")))?
            .map_err(|e| file_error(&e))?;
    let imported = parsed.1;
    let key = st.secrets.clone();
    let owner = caller.uuid().to_string();
    let meta = caller.txn_meta(&req);
    let report = if dry_run {
        // Checked like a commit against the current state, never committed.
        let db = st.db.clone();
        tokio::task::spawn_blocking(move || {
            db.trial(&meta)
                .step(|tx| api_collections::import(tx, &owner, imported, key.as_deref(), true))
        })
        .await
        .map_err(|e| ApiError::internal(format!("dry run task: {e}")))??
    } else {
        let run = |tx: &mut bucketbase_engine::Txn| {
            api_collections::import(tx, &owner, imported.clone(), key.as_deref(), false)
        };
        st.db.transact(&meta, run).await?.value
    };
    let status = if report.outcome == "created" && !dry_run {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut answer = Envelope::ok(&req, &report);
    answer.status = status;
    Ok(answer)
}

#[derive(Deserialize)]
struct ExportParams {
    #[serde(default)]
    include_secrets: Flag,
}

async fn export(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<ExportParams>,
) -> Result<Response> {
    let c = coll("api_collections");
    let id = record_id(&id)?;
    let def = definition(&st.db.snapshot(), &c)?;
    let include_secrets = params.include_secrets.0;
    let key = st.secrets.clone();
    let not_found = || ApiError::not_found(format!("api_collections/{id} not found"));
    let committed = st
        .db
        .transact(&caller.txn_meta(&req), |tx| {
            let record = tx
                .get_value(&c, &id)
                .filter(|r| is_live(r) && caller.may(&def, Action::View, r))
                .ok_or_else(not_found)?;
            let file = api_collections::export(tx, &id, record, key.as_deref(), include_secrets)
                .map_err(import_error)?;
            if include_secrets {
                api_collections::audit_secret_export(tx, &id);
            }
            Ok::<_, ApiError>(file)
        })
        .await?;
    let file = committed.value;
    let name = file["info"]["name"].as_str().unwrap_or("collection");
    let safe: String = name
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || "-_ .".contains(ch) {
                ch
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let mut response = (StatusCode::OK, axum::Json(file.clone())).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}.postman_collection.json\"",
        safe.trim()
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&committed.seq.to_string()) {
        headers.insert("x-bucketbase-seq", v);
    }
    Ok(response)
}

fn import_doc() -> Value {
    json!({"post": {
        "tags": ["docsai"],
        "summary": "Import a Postman collection file (v2.0 / v2.1); a re-import updates it in place",
        "operationId": "docsai_api_collections_import",
        "parameters": [{"name": "dry_run", "in": "query", "required": false,
            "description": "Report what would change without writing", "schema": {"type": "boolean"}}],
        "requestBody": {"required": true, "description": "The collection file (at most 20 MiB)",
            "content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {
            "200": doc_ok("Updated or unchanged (or a dry run): the report"),
            "201": doc_ok("Created: the report"),
            "400": doc_error("Not JSON, or not a Postman collection v2.0 / v2.1"),
            "401": doc_error("Not authenticated"),
            "403": doc_error("Not a SuperAdmin"),
            "413": doc_error("Over 20 MiB, or too many items"),
            "422": doc_error("A part of the collection has a shape the format does not allow, or folders nest too deep"),
        }
    }})
}

fn export_doc() -> Value {
    json!({"get": {
        "tags": ["docsai"],
        "summary": "Export an API collection as a Postman v2.1 file",
        "operationId": "docsai_api_collections_export",
        "parameters": [doc_param("id", "The api_collections record"),
            {"name": "include_secrets", "in": "query", "required": false,
             "description": "Put the credentials back in the file (audited as an export)", "schema": {"type": "boolean"}}],
        "responses": {
            "200": {"description": "The collection file (a download)",
                "content": {"application/json": {"schema": {"type": "object"}}}},
            "401": doc_error("Not authenticated"),
            "403": doc_error("Not a SuperAdmin"),
            "404": doc_error("No such collection of the caller's"),
        }
    }})
}
