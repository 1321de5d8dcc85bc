//! `GET|POST /api/v1/docsai/workflows/{id}/executions/{execution}/logs`: an execution's
//! log lines, the second nested level of a workflow (`executions` → `logs`), which the
//! generic record routes do not reach.
//!
//! A POST is an item operation (`Txn::nested_append_at`): the engine applies it to the
//! record as it is at the commit position, so workers appending lines while someone
//! edits the workflow never overwrite each other (the seed's read-modify-write lost
//! them). Access is the workflow's: the caller must see and update it (another owner's
//! workflow is not found). The owner is read from the snapshot, not through the
//! transaction: `created_by` never changes, and a read would make every append re-run
//! after a concurrent edit of the workflow.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use bucketbase_engine::collection::keys::is_live;
use bucketbase_engine::collection::ops::NestedPath;
use bucketbase_engine::{CollectionName, RecordId};
use bucketbase_server::AppState;
use bucketbase_server::access::{Action, Caller};
use bucketbase_server::contract::Resource;
use bucketbase_server::envelope::{Envelope, JsonBody, RequestId};
use bucketbase_server::error::{ApiError, Result};
use bucketbase_server::routes::{definition, record_id};
use serde_json::{Value, json};

use super::{doc_error, doc_ok, doc_param};
use crate::coll;

const PATH: &str = "/api/v1/docsai/workflows/{id}/executions/{execution}/logs";

pub fn resource() -> Resource {
    Resource::new().route_json(PATH, get(list).post(append), openapi())
}

fn not_found(id: &RecordId, execution: &str) -> ApiError {
    ApiError::not_found(format!("workflows/{id}/executions/{execution} not found"))
}

/// The workflow as the caller may reach it (for `action`), from the snapshot.
fn workflow(
    st: &AppState,
    caller: &Caller,
    c: &CollectionName,
    id: &RecordId,
    action: Action,
) -> Result<Value> {
    let snap = st.db.snapshot();
    let def = definition(&snap, c)?;
    let value = snap
        .get(c, id)
        .map(|d| d.value())
        .filter(|v| is_live(v) && caller.may(&def, Action::View, v) && caller.may(&def, action, v))
        .ok_or_else(|| ApiError::not_found(format!("{c}/{id} not found")))?;
    Ok(value)
}

fn execution<'a>(workflow: &'a Value, execution: &str) -> Option<&'a Value> {
    workflow["executions"]
        .as_array()?
        .iter()
        .find(|e| e["id"].as_str() == Some(execution))
}

async fn list(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    Path((id, exec)): Path<(String, String)>,
) -> Result<Envelope> {
    let (c, id) = (coll("workflows"), record_id(&id)?);
    let value = workflow(&st, &caller, &c, &id, Action::View)?;
    let logs = execution(&value, &exec)
        .ok_or_else(|| not_found(&id, &exec))?
        .get("logs")
        .cloned()
        .unwrap_or_else(|| json!([]));
    Ok(Envelope::ok(&req, logs))
}

async fn append(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    Path((id, exec)): Path<(String, String)>,
    JsonBody(line): JsonBody<Value>,
) -> Result<Envelope> {
    let (c, id) = (coll("workflows"), record_id(&id)?);
    workflow(&st, &caller, &c, &id, Action::Update)?;
    let path = NestedPath::array("executions")
        .then(exec.clone())
        .then("logs");
    let committed = st
        .db
        .transact(&caller.txn_meta(&req), |tx| {
            tx.nested_append_at(&c, &id, &path, line.clone())
        })
        .await?;
    let mut answer = Envelope::ok(&req, committed.value);
    answer.status = StatusCode::CREATED;
    Ok(answer)
}

fn openapi() -> Value {
    let params = json!([
        doc_param("id", "The workflow"),
        doc_param("execution", "The execution (its item id)")
    ]);
    json!({
        "get": {
            "tags": ["docsai"],
            "summary": "The log lines of a workflow's execution",
            "operationId": "docsai_execution_logs_list",
            "parameters": params,
            "responses": {
                "200": doc_ok("The log lines, oldest first"),
                "401": doc_error("Not authenticated"),
                "403": doc_error("Not a SuperAdmin"),
                "404": doc_error("No such workflow of the caller's, or no such execution"),
            }
        },
        "post": {
            "tags": ["docsai"],
            "summary": "Append a log line to a workflow's execution (an item operation; the execution keeps its newest 1,000)",
            "operationId": "docsai_execution_logs_append",
            "parameters": params,
            "requestBody": {"required": true, "content": {"application/json": {"schema": {
                "type": "object", "required": ["message"],
                "properties": {"level": {"enum": ["debug", "info", "warning", "error"]}, "message": {"type": "string"},
                    "node_key": {"type": "string"}, "data": {"type": "object"}, "logged_at": {"type": "string", "format": "date-time"}}}}}},
            "responses": {
                "201": doc_ok("The line, with its id"),
                "401": doc_error("Not authenticated"),
                "403": doc_error("Not a SuperAdmin"),
                "404": doc_error("No such workflow of the caller's, or no such execution"),
                "422": doc_error("The line does not fit the schema"),
            }
        }
    })
}
