//! Health, collection definitions, the audit trail, and the fallback.
//!
//! Definitions are data an operator edits through this API, so the API is where their
//! boundaries hold: user collection names are checked in one place (never `_x`, never a
//! name a route or an app uses), system collections (`_users`, `_sessions`) are neither
//! listed, read nor changed here, and callers other than the SuperAdmin see only the
//! shape of the collections they may list, never their rules (decision 0008).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use bucketbase_engine::collection::audit::AuditFilter;
use bucketbase_engine::collection::expr::Vars;
use bucketbase_engine::collection::{Compiled, Definition};
use bucketbase_engine::verify::verify_chain;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{audit_events, collection, definition, user_collection};
use crate::AppState;
use crate::access::{Action, Caller};
use crate::contract::Resource;
use crate::envelope::{Envelope, JsonBody, RequestId};
use crate::error::{ApiError, Result};

pub fn router() -> Router<AppState> {
    resource().into_router()
}

/// The routes with their OpenAPI operations (see [`docs`]).
pub fn resource() -> Resource {
    use utoipa::openapi::path::HttpMethod::{Get, Patch, Post};
    Resource::new()
        .route("/healthz", get(healthz), [(Get, docs::healthz())])
        .route("/readyz", get(readyz), [(Get, docs::readyz())])
        .route(
            "/api/v1/collections",
            get(list_definitions).post(define),
            [(Get, docs::list_definitions()), (Post, docs::define())],
        )
        .route(
            "/api/v1/collections/{name}",
            get(read_definition).patch(redefine),
            [(Get, docs::read_definition()), (Patch, docs::redefine())],
        )
        .route(
            "/api/v1/audit",
            get(audit_query),
            [(Get, docs::audit_query())],
        )
        .route(
            "/api/v1/audit/verify",
            get(audit_verify),
            [(Get, docs::audit_verify())],
        )
        .route(
            "/api/v1/audit/digest",
            get(audit_digest),
            [(Get, docs::audit_digest())],
        )
}

/// Unknown routes answer in the envelope.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn healthz(req: RequestId) -> Envelope {
    Envelope::ok(&req, json!({"status": "ok"}))
}

/// Ready when the store answers and the log tailer keeps up; otherwise 503 with the
/// reason. The answer reports the tailer's lag (see the engine's `tail`): how long ago it
/// last read the log, against its interval. Store errors go to the server log, not here
/// (this route is public).
async fn readyz(State(st): State<AppState>, req: RequestId) -> Result<Envelope> {
    let caught_up = st.db.catch_up().await;
    let tail = st.db.tail_status();
    let tail_json = tail.as_ref().map(|t| {
        json!({
            "interval_ms": t.interval.as_millis() as u64,
            "since_success_ms": t.since_success.as_millis() as u64,
            "failing": t.last_error.is_some(),
        })
    });
    let reason = match (&caught_up, &tail) {
        (Err(e), _) => {
            tracing::warn!(error = %e, "readiness: the log cannot be read");
            Some("the store cannot be read".to_string())
        }
        (_, Some(t)) if t.is_stalled() => Some(format!(
            "the log tailer has not read the log for {} ms (its interval is {} ms); \
             see the server log",
            t.since_success.as_millis(),
            t.interval.as_millis()
        )),
        _ => None,
    };
    let seq = st.db.snapshot().seq().get();
    match reason {
        Some(reason) => Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            reason,
        )
        .with_details(json!({"seq": seq, "tail": tail_json}))),
        None => Ok(Envelope::ok(
            &req,
            json!({"status": "ready", "seq": seq, "tail": tail_json}),
        )),
    }
}

/// Which definitions a caller sees, and how much of them (docs/decisions/0008): the
/// SuperAdmin reads user collections' definitions in full; anyone else only the
/// collections whose `list` rule could admit them, and only their shape (what forms
/// need), never rules, checks or constraints. System collections (`_x`) are never
/// listed or read here, by anyone.
fn definition_view(caller: &Caller, def: &Compiled) -> Option<Value> {
    if def.name.is_system() {
        return None;
    }
    if caller.is_super_admin() {
        return Some(def.def.to_json());
    }
    if !could_list(caller, def) {
        return None;
    }
    let nested: serde_json::Map<String, Value> = def
        .def
        .nested
        .iter()
        .map(|(field, n)| (field.clone(), json!({"schema": n.schema})))
        .collect();
    Some(json!({
        "name": def.def.name,
        "schema": def.def.schema,
        "nested": nested,
        "index": def.def.index,
        "soft_delete": def.def.soft_delete,
    }))
}

/// Could the collection's `list` rule admit this caller for some record? The rule is
/// evaluated with the caller's `auth` and no `record`: `false` means no record can help
/// (e.g. `auth.role == "manager"` for staff); `true`, or an error because the answer
/// depends on the record (`record.owner == auth.uuid`), means it could. No rule: no.
fn could_list(caller: &Caller, def: &Compiled) -> bool {
    let Some(rule) = def.rules.get(Action::List.as_str()) else {
        return false;
    };
    let vars = Vars::new().with("auth", &caller.auth);
    rule.eval_bool(&vars).unwrap_or(true)
}

async fn list_definitions(State(st): State<AppState>, req: RequestId, caller: Caller) -> Envelope {
    let snap = st.db.snapshot();
    let defs: Vec<Value> = snap
        .definitions()
        .filter_map(|(_, d)| definition_view(&caller, d))
        .collect();
    Envelope::ok(&req, defs)
}

async fn read_definition(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Envelope> {
    let def = definition(&st.db.snapshot(), &collection(&name)?)?;
    let view = definition_view(&caller, &def)
        .ok_or_else(|| ApiError::not_found(format!("unknown collection {name:?}")))?;
    Ok(Envelope::ok(&req, view))
}

/// Creates or replaces a user collection's definition (SuperAdmin). The name goes through
/// the one check for user collection names: never a system or reserved name.
async fn store_definition(
    st: &AppState,
    req: &RequestId,
    caller: &Caller,
    def: Definition,
) -> Result<Envelope> {
    caller.require_super_admin()?;
    user_collection(st, &def.name)?;
    let committed = st
        .db
        .transact(&caller.txn_meta(req), |tx| tx.define(&def))
        .await
        .map_err(ApiError::from)?;
    Ok(Envelope::ok(req, def.to_json()).meta("changed", committed.value))
}

async fn define(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Envelope> {
    caller.require_super_admin()?;
    let def = Definition::from_json(&body).map_err(ApiError::from)?;
    store_definition(&st, &req, &caller, def).await
}

async fn redefine(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Envelope> {
    caller.require_super_admin()?;
    let c = collection(&name)?;
    let current = st
        .db
        .snapshot()
        .definition(&c)
        .map(|d| d.def.to_json())
        .ok_or_else(|| ApiError::not_found(format!("unknown collection {name:?}")))?;
    let mut merged = current;
    if let (Value::Object(target), Value::Object(patch)) = (&mut merged, body) {
        for (k, v) in patch {
            target.insert(k, v);
        }
    }
    merged["name"] = json!(name);
    let def = Definition::from_json(&merged).map_err(ApiError::from)?;
    store_definition(&st, &req, &caller, def).await
}

#[derive(Deserialize)]
struct AuditParams {
    collection: Option<String>,
    record_id: Option<String>,
    actor: Option<String>,
    source: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
}

fn time(name: &str, value: Option<String>) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(&v)
                .map(|t| t.to_utc())
                .map_err(|_| ApiError::bad_request(format!("{name} must be an RFC 3339 time")))
        })
        .transpose()
}

async fn audit_query(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    Query(p): Query<AuditParams>,
) -> Result<Envelope> {
    caller.require_super_admin()?;
    let filter = AuditFilter {
        collection: p.collection,
        record_id: p.record_id,
        actor: p.actor,
        source: p.source,
        from: time("from", p.from)?,
        to: time("to", p.to)?,
        limit: p.limit.unwrap_or(100).min(1000),
    };
    let events = audit_events(&st, &st.db.snapshot(), &filter).await?;
    Ok(Envelope::ok(&req, events))
}

async fn audit_verify(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
) -> Result<Envelope> {
    caller.require_super_admin()?;
    let store = st.db.store().clone();
    let report = super::off_workers(async move { verify_chain(&store, &|_| {}).await }).await?;
    let first_break = report.first_break.as_ref().map(|b| {
        json!({"seq": b.seq.get(), "damage": format!("{:?}", b.damage).to_lowercase(), "detail": b.detail})
    });
    Ok(Envelope::ok(
        &req,
        json!({"intact": report.is_intact(), "verified": report.verified, "head_hash": report.head_hash, "first_break": first_break,
               "voided": report.voided.iter().map(|(seq, v)| json!({"seq": seq.get(), "sha256": v.sha256, "bytes": v.bytes})).collect::<Vec<_>>()}),
    ))
}

/// The public key and the newest signed digest (public: anyone may keep a copy to check
/// the log against later; see docs/security.md). 404 when this server signs no digests.
async fn audit_digest(State(st): State<AppState>, req: RequestId) -> Result<Envelope> {
    let (public_key, key_id, newest) = st
        .db
        .digest_status()
        .ok_or_else(|| ApiError::not_found("this server signs no audit digests"))?;
    Ok(Envelope::ok(
        &req,
        json!({"public_key": public_key, "key_id": key_id, "digest": newest}),
    ))
}

/// The OpenAPI operations of these routes.
mod docs {
    use utoipa::openapi::path::Operation;
    use utoipa::openapi::schema::Type;

    use crate::openapi::{
        any, array_of, json_body, ok, operation, path_param, public, query_param, schema_ref,
    };

    pub fn healthz() -> Operation {
        public(
            operation("system.healthz", "system", "Liveness", &[]).response("200", ok("ok", any())),
        )
    }

    pub fn readyz() -> Operation {
        public(
            operation(
                "system.readyz",
                "system",
                "Readiness: the store answers and the log tailer keeps up (its lag is reported)",
                &["Unavailable"],
            )
            .response("200", ok("ready, with the log head", any())),
        )
    }

    pub fn list_definitions() -> Operation {
        operation(
            "collections.list",
            "collections",
            "All collection definitions",
            &["Unauthorized", "Forbidden"],
        )
        .response("200", ok("Definitions", array_of("Definition")))
        .build()
    }

    pub fn define() -> Operation {
        operation(
            "collections.define",
            "collections",
            "Define or replace a collection (SuperAdmin)",
            &[
                "BadRequest",
                "Unauthorized",
                "Forbidden",
                "Conflict",
                "Unprocessable",
            ],
        )
        .request_body(json_body(schema_ref("Definition"), "The definition"))
        .response("200", ok("The stored definition", schema_ref("Definition")))
        .build()
    }

    pub fn read_definition() -> Operation {
        operation(
            "collections.get",
            "collections",
            "One collection definition",
            &["Unauthorized", "Forbidden", "NotFound"],
        )
        .parameter(path_param("name", "Collection name"))
        .response("200", ok("The definition", schema_ref("Definition")))
        .build()
    }

    pub fn redefine() -> Operation {
        operation(
            "collections.redefine",
            "collections",
            "Change members of a definition (SuperAdmin)",
            &[
                "BadRequest",
                "Unauthorized",
                "Forbidden",
                "NotFound",
                "Conflict",
                "Unprocessable",
            ],
        )
        .parameter(path_param("name", "Collection name"))
        .request_body(json_body(schema_ref("Definition"), "Members to replace"))
        .response("200", ok("The stored definition", schema_ref("Definition")))
        .build()
    }

    pub fn audit_query() -> Operation {
        let mut audit = operation(
            "audit.query",
            "audit",
            "Audit events, newest first (SuperAdmin)",
            &["BadRequest", "Unauthorized", "Forbidden"],
        );
        for (p, t, d) in [
            ("collection", Type::String, "Only this collection"),
            ("record_id", Type::String, "Only this record"),
            ("actor", Type::String, "Only this actor (user uuid)"),
            (
                "source",
                Type::String,
                "Only this source (`import:` matches every import)",
            ),
            ("from", Type::String, "Not before this RFC 3339 time"),
            ("to", Type::String, "Not after this RFC 3339 time"),
            (
                "limit",
                Type::Integer,
                "Most events (default 100, at most 1000)",
            ),
        ] {
            audit = audit.parameter(query_param(p, t, d));
        }
        audit
            .response("200", ok("Events", array_of("AuditEvent")))
            .build()
    }

    pub fn audit_verify() -> Operation {
        operation(
            "audit.verify",
            "audit",
            "Verify the log's hash chain (SuperAdmin)",
            &["Unauthorized", "Forbidden"],
        )
        .response(
            "200",
            ok("intact, verified, head_hash, first_break, voided", any()),
        )
        .build()
    }

    pub fn audit_digest() -> Operation {
        public(
            operation(
                "audit.digest",
                "audit",
                "The public key and the newest signed audit digest (404 when this server signs none)",
                &["NotFound"],
            )
            .response("200", ok("public_key, key_id, digest", any())),
        )
    }
}
