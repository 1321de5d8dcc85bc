//! `GET|PUT /api/v1/docsai/json_store/{key}`: the seed's key-value store of JSON
//! documents, addressed by key instead of record id.
//!
//! A key is unique per owner among live records (the definition's `json_store_key`), so
//! the key names at most one record of the caller's: the lookup goes through the `key`
//! index and keeps the caller's own live record that the collection's rules let them
//! see. Another owner's record of the same key is simply not there (404). PUT creates
//! the record (201) or replaces it (200) in one transaction, with `If-Match` as on the
//! generic routes (412 when stale); the body is the record without its key (a `key` in
//! the body must equal the path's).

use axum::extract::{Path, State};
use axum::http::header::ETAG;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use bucketbase_engine::collection::keys::is_live;
use bucketbase_engine::{CollectionName, RecordId, Txn};
use bucketbase_server::AppState;
use bucketbase_server::access::{Action, Caller};
use bucketbase_server::contract::Resource;
use bucketbase_server::envelope::{Envelope, JsonBody, RequestId};
use bucketbase_server::error::{ApiError, Result};
use bucketbase_server::routes::records::show;
use bucketbase_server::routes::{definition, etag, if_match};
use serde_json::{Value, json};

use super::{doc_error, doc_ok, doc_param};
use crate::coll;

const PATH: &str = "/api/v1/docsai/json_store/{key}";

pub fn resource() -> Resource {
    Resource::new().route_json(PATH, get(read).put(put), openapi())
}

fn not_found(key: &str) -> ApiError {
    ApiError::not_found(format!("json_store key {key:?} not found"))
}

/// The caller's live record of `key`, read through `tx` (so a commit re-checks it).
fn find(
    tx: &mut Txn,
    caller: &Caller,
    c: &CollectionName,
    key: &str,
) -> Result<Option<(RecordId, Value)>> {
    let def = tx.definition(c)?;
    let found = tx.find(c, "key", &json!(key))?;
    Ok(found.into_iter().find(|(_, record)| {
        is_live(record)
            && record.get("created_by").and_then(Value::as_str) == Some(caller.uuid())
            && caller.may(&def, Action::View, record)
    }))
}

async fn read(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Envelope> {
    let c = coll("json_store");
    let def = definition(&st.db.snapshot(), &c)?;
    let found = st
        .db
        .transact(&caller.txn_meta(&req), |tx| {
            let found = find(tx, &caller, &c, &key)?;
            Ok::<_, ApiError>(found.map(|(id, v)| {
                let version = tx.get_doc(&c, &id).map(|d| d.version);
                (id, v, version)
            }))
        })
        .await?
        .value;
    let (id, value, version) = found.ok_or_else(|| not_found(&key))?;
    let version = version.ok_or_else(|| not_found(&key))?;
    Ok(Envelope::ok(&req, show(&st, &def, &id, value, version)?).header(ETAG, &etag(version)))
}

async fn put(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    headers: HeaderMap,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Envelope> {
    let c = coll("json_store");
    let expect = if_match(&headers)?;
    let Value::Object(mut body) = body else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    match body.get("key") {
        None => {}
        Some(Value::String(k)) if *k == key => {}
        Some(_) => {
            return Err(ApiError::bad_request(
                "the body's key must be the key in the path",
            ));
        }
    }
    body.insert("key".into(), json!(key));
    let body = Value::Object(body);
    let def = definition(&st.db.snapshot(), &c)?;
    let committed = st
        .db
        .transact(&caller.txn_meta(&req), |tx| {
            match find(tx, &caller, &c, &key)? {
                Some((id, current)) => {
                    if !caller.may(&def, Action::Update, &current) {
                        return Err(not_found(&key));
                    }
                    let after = tx.replace(&c, &id, &body, expect)?;
                    caller.check_write(tx, &def, &id, Some(&current), &after)?;
                    if !caller.may(&def, Action::Update, &after) {
                        return Err(ApiError::forbidden(format!(
                            "this change would take json_store key {key:?} out of what you may update"
                        )));
                    }
                    Ok((id, after, false))
                }
                None => {
                    if let Some(expected) = expect {
                        return Err(bucketbase_engine::Error::VersionConflict {
                            collection: c.to_string(),
                            id: key.clone(),
                            expected,
                            actual: None,
                        }
                        .into());
                    }
                    let mut candidate = body.clone();
                    candidate["created_by"] = json!(caller.uuid());
                    if !caller.may(&def, Action::Create, &candidate) {
                        return Err(ApiError::forbidden("you may not create json_store records"));
                    }
                    let (id, created) = tx.create(&c, body.clone())?;
                    caller.check_write(tx, &def, &id, None, &created)?;
                    Ok((id, created, true))
                }
            }
        })
        .await?;
    let (id, value, created) = committed.value;
    let data = show(&st, &def, &id, value, committed.seq)?;
    let mut answer = Envelope::ok(&req, data).header(ETAG, &etag(committed.seq));
    if created {
        answer.status = StatusCode::CREATED;
    }
    Ok(answer)
}

fn openapi() -> Value {
    let key = doc_param("key", "The document's key (unique per owner)");
    json!({
        "get": {
            "tags": ["docsai"],
            "summary": "Read the caller's JSON document by its key",
            "operationId": "docsai_json_store_get",
            "parameters": [key],
            "responses": {
                "200": doc_ok("The record (ETag: its version)"),
                "401": doc_error("Not authenticated"),
                "403": doc_error("Not a SuperAdmin"),
                "404": doc_error("No document of the caller has this key"),
            }
        },
        "put": {
            "tags": ["docsai"],
            "summary": "Create or replace the caller's JSON document of this key",
            "operationId": "docsai_json_store_put",
            "parameters": [key, {"name": "If-Match", "in": "header", "required": false,
                "description": "The version the write expects (412 when stale)", "schema": {"type": "string"}}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {
                "type": "object", "required": ["data"],
                "properties": {"data": {}, "description": {"type": "string"}, "key": {"type": "string"}}}}}},
            "responses": {
                "200": doc_ok("Replaced"),
                "201": doc_ok("Created"),
                "400": doc_error("Not a JSON object, or a key other than the path's"),
                "401": doc_error("Not authenticated"),
                "403": doc_error("Not a SuperAdmin"),
                "412": doc_error("If-Match is stale"),
                "422": doc_error("The document does not fit the schema"),
            }
        }
    })
}
