//! `/api/v1/{collection}/...`: records, their history and restore (nested items: see
//! [`super::nested`]).

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::header::ETAG;
use axum::routing::{get, post};
use bucketbase_engine::collection::Compiled;
use bucketbase_engine::collection::audit::{self, AuditFilter};
use bucketbase_engine::collection::expr::Expr;
use bucketbase_engine::collection::query;
use bucketbase_engine::collection::records::{Secrets, render};
use bucketbase_engine::{CollectionName, Doc, Error as EngineError, RecordId, Seq};
use serde::Deserialize;
use serde_json::{Value, json};

use super::nested::NestedView;
use super::{audit_events, collection, definition, etag, if_match, record_id};
use crate::AppState;
use crate::access::{Action, Caller};
use crate::contract::Resource;
use crate::envelope::{Envelope, JsonBody, RequestId};
use crate::error::{ApiError, Result};
use crate::params::{Flag, ListParams};
use crate::shown::show_text;

pub fn router() -> Router<AppState> {
    resource().into_router()
}

/// The generic record routes: documented once per user collection, from its definition
/// (`openapi::collections`), since what they take and answer is the collection's schema.
pub fn resource() -> Resource {
    Resource::new()
        .route_per_collection("/api/v1/{collection}", get(list).post(create))
        .route_per_collection(
            "/api/v1/{collection}/{id}",
            get(read).patch(update).put(replace).delete(delete),
        )
        .route_per_collection("/api/v1/{collection}/{id}/restore", post(restore))
        .route_per_collection("/api/v1/{collection}/{id}/history", get(history))
}

pub(crate) fn hidden(c: &CollectionName, id: &RecordId) -> ApiError {
    ApiError::not_found(format!("{c}/{id} not found"))
}

/// Shows a stored record (secrets masked, credential material redacted) with its version.
pub fn show(
    st: &AppState,
    def: &Compiled,
    id: &RecordId,
    value: Value,
    version: Seq,
) -> Result<Value> {
    let mut shown = render(
        Some(def),
        &def.name,
        id,
        value,
        version,
        Secrets::Mask,
        st.secrets.as_deref(),
    )?;
    def.redact_record(&mut shown);
    Ok(shown)
}

async fn list(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    Path(c): Path<String>,
    params: ListParams,
) -> Result<Envelope> {
    let c = collection(&c)?;
    let snap = st.db.snapshot();
    let def = definition(&snap, &c)?;
    let ListParams {
        filter,
        sort,
        page,
        per_page,
        deleted,
        equals,
    } = params;
    let mut q = query::Query {
        equals,
        filter: None,
        sort,
        page,
        per_page,
        deleted,
        budget: Some(Duration::from_millis(st.settings.query_budget_ms)),
    };
    let seq = snap.seq().get();
    let secrets = st.secrets.clone();
    // Compiling the filter (its regexes) and evaluating records is CPU work bounded only
    // by the limits and the budget: off the async workers, so other requests (and
    // /healthz) are answered meanwhile.
    let page = tokio::task::spawn_blocking(move || {
        q.filter = filter.map(|f| Expr::compile(&f)).transpose().map_err(|e| {
            EngineError::InvalidFilter {
                reason: e.to_string(),
            }
        })?;
        let vars = [("auth", &caller.auth)];
        // SuperAdmin sees everything (unless the rules bind them too): the list can then
        // be answered from the indexes. Others see what the collection's list rule lets
        // through (as `Caller::may`), which the engine also reads for the index entries
        // it confines them to.
        let rule = def.rules.get(Action::List.as_str());
        let mut page = if caller.passes_rules(&def) || (rule.is_none() && caller.is_super_admin()) {
            query::list_with(&snap, &c, &q, &vars, None, secrets.as_deref())?
        } else {
            query::list_under_rule(&snap, &c, &q, &vars, rule, secrets.as_deref())?
        };
        page.items
            .iter_mut()
            .for_each(|item| def.redact_record(item));
        Ok::<_, EngineError>(page)
    })
    .await
    .map_err(|e| ApiError::internal(format!("list task: {e}")))??;
    Ok(Envelope::ok(&req, page.items)
        .meta("total", page.total)
        .meta("page", page.page)
        .meta("per_page", page.per_page)
        .meta("seq", seq))
}

#[derive(Deserialize)]
struct ReadParams {
    as_of: Option<u64>,
    /// `none`, `count` or a number: see [`NestedView`].
    nested: Option<String>,
}

async fn read(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    Path((c, id)): Path<(String, String)>,
    Query(params): Query<ReadParams>,
) -> Result<Envelope> {
    let (c, id) = (collection(&c)?, record_id(&id)?);
    let snap = st.db.snapshot();
    let def = definition(&snap, &c)?;
    let view = NestedView::parse(params.nested.as_deref())?;
    // The record as this view shows it: it holds the own fields in every view, which is
    // what rules read, so the one parse serves the check and the answer.
    let answer = |doc: &Doc, at: Option<u64>| -> Result<Envelope> {
        let (value, counts) = view.record(&def, doc);
        if !caller.may(&def, Action::View, &value) {
            return Err(hidden(&c, &id));
        }
        let mut out = Envelope::ok(&req, show(&st, &def, &id, value, doc.version)?);
        if let Some(counts) = counts {
            out = out.meta("nested_counts", Value::Object(counts));
        }
        Ok(match at {
            Some(at) => out.meta("as_of", at),
            None => out.header(ETAG, &etag(doc.version)),
        })
    };
    if let Some(at) = params.as_of {
        if at > snap.seq().get() {
            return Err(ApiError::bad_request(format!(
                "as_of {at} is beyond the log head {}",
                snap.seq()
            )));
        }
        let (version, value) = audit::as_of(st.db.store(), &c, &id, Seq(at))
            .await?
            .ok_or_else(|| hidden(&c, &id))?;
        let doc = Doc::from_value(version, value, &def.shape);
        return answer(&doc, Some(at));
    }
    let doc = snap.get(&c, &id).ok_or_else(|| hidden(&c, &id))?;
    // When no rule reads the record, it may be shown straight from its stored text: the
    // same bytes as the answer above, without parsing it (`crate::shown`).
    if view == NestedView::All
        && let Some(may) = caller.may_without_record(&def, Action::View)
    {
        if !may {
            return Err(hidden(&c, &id));
        }
        if let Some(text) = show_text(&def, doc) {
            return Ok(Envelope::ok_text(&req, text).header(ETAG, &etag(doc.version)));
        }
    }
    answer(doc, None)
}

/// Runs a record write as the caller, checking `action` on the current record first
/// (a record the caller may not see is not found), and what the write changed after
/// ([`Caller::check_write`]; before hooks run, so only the caller's own change counts).
async fn write(
    st: &AppState,
    req: &RequestId,
    caller: &Caller,
    c: &CollectionName,
    id: &RecordId,
    action: Action,
    f: impl Fn(&mut bucketbase_engine::Txn) -> bucketbase_engine::Result<Option<Value>>,
) -> Result<Envelope> {
    let def = definition(&st.db.snapshot(), c)?;
    let committed = st
        .db
        .transact(&caller.txn_meta(req), |tx| {
            let current = tx.record(c, id, None)?;
            if !caller.may(&def, Action::View, &current) || !caller.may(&def, action, &current) {
                return Err(hidden(c, id));
            }
            let out = f(tx)?;
            // The record as this write leaves it (nested operations answer their item).
            if let Some(after) = tx.get_value(c, id) {
                caller.check_write(tx, &def, id, Some(&current), &after)?;
                // An update must leave the record within what the caller may update
                // (staff cannot hand their task to someone else).
                if action == Action::Update && !caller.may(&def, action, &after) {
                    return Err(ApiError::forbidden(format!(
                        "this change would take {c}/{id} out of what you may update"
                    )));
                }
            }
            Ok(out)
        })
        .await?;
    let data = match committed.value {
        Some(value) => show(st, &def, id, value, committed.seq)?,
        None => Value::Null,
    };
    Ok(Envelope::ok(req, data).header(ETAG, &etag(committed.seq)))
}

async fn create(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    Path(c): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Envelope> {
    let c = collection(&c)?;
    let def = definition(&st.db.snapshot(), &c)?;
    let mut candidate = body.clone();
    if let Value::Object(map) = &mut candidate {
        map.insert("created_by".into(), json!(caller.principal.uuid));
    }
    if !caller.may(&def, Action::Create, &candidate) {
        return Err(ApiError::forbidden(format!(
            "you may not create {c} records"
        )));
    }
    let committed = st
        .db
        .transact(&caller.txn_meta(&req), |tx| {
            let (id, created) = tx.create(&c, body.clone())?;
            caller.check_write(tx, &def, &id, None, &created)?;
            Ok::<_, ApiError>((id, created))
        })
        .await?;
    let (id, created) = committed.value;
    let data = show(&st, &def, &id, created, committed.seq)?;
    Ok(Envelope::created(&req, data).header(ETAG, &etag(committed.seq)))
}

async fn update(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    headers: HeaderMap,
    Path((c, id)): Path<(String, String)>,
    JsonBody(patch): JsonBody<Value>,
) -> Result<Envelope> {
    let (c, id) = (collection(&c)?, record_id(&id)?);
    let expect = if_match(&headers)?;
    write(&st, &req, &caller, &c, &id, Action::Update, |tx| {
        tx.update(&c, &id, &patch, expect).map(Some)
    })
    .await
}

async fn replace(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    headers: HeaderMap,
    Path((c, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Envelope> {
    let (c, id) = (collection(&c)?, record_id(&id)?);
    let expect = if_match(&headers)?;
    let def = definition(&st.db.snapshot(), &c)?;
    write(&st, &req, &caller, &c, &id, Action::Update, |tx| {
        let current = tx.record(&c, &id, None)?;
        let body = keep_system_fields(&def, &current, &body);
        tx.replace(&c, &id, &body, expect).map(Some)
    })
    .await
}

/// A PUT replaces the record's own fields but, like metadata, keeps the system fields
/// its body leaves out (a body that names one must carry its current value).
fn keep_system_fields(def: &Compiled, current: &Value, body: &Value) -> Value {
    let mut body = body.clone();
    if let Value::Object(map) = &mut body {
        for field in &def.def.system_fields {
            if let Some(v) = current.get(field)
                && !map.contains_key(field)
            {
                map.insert(field.clone(), v.clone());
            }
        }
    }
    body
}

#[derive(Deserialize)]
struct DeleteParams {
    #[serde(default)]
    purge: Flag,
}

async fn delete(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    headers: HeaderMap,
    Path((c, id)): Path<(String, String)>,
    Query(params): Query<DeleteParams>,
) -> Result<Envelope> {
    let (c, id) = (collection(&c)?, record_id(&id)?);
    let expect = if_match(&headers)?;
    if params.purge.0 {
        caller.require_super_admin()?;
        return write(&st, &req, &caller, &c, &id, Action::Delete, |tx| {
            tx.purge(&c, &id, expect).map(|()| None)
        })
        .await;
    }
    write(&st, &req, &caller, &c, &id, Action::Delete, |tx| {
        tx.delete(&c, &id, expect)
    })
    .await
}

async fn restore(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    headers: HeaderMap,
    Path((c, id)): Path<(String, String)>,
) -> Result<Envelope> {
    let (c, id) = (collection(&c)?, record_id(&id)?);
    let expect = if_match(&headers)?;
    write(&st, &req, &caller, &c, &id, Action::Delete, |tx| {
        tx.restore(&c, &id, expect).map(Some)
    })
    .await
}

#[derive(Deserialize)]
struct HistoryParams {
    limit: Option<usize>,
}

async fn history(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    Path((c, id)): Path<(String, String)>,
    Query(params): Query<HistoryParams>,
) -> Result<Envelope> {
    let (c, id) = (collection(&c)?, record_id(&id)?);
    let snap = st.db.snapshot();
    let def = definition(&snap, &c)?;
    let visible = match snap.get(&c, &id) {
        Some(doc) => caller.may(&def, Action::View, &doc.value()),
        None => caller.passes_rules(&def),
    };
    if !visible {
        return Err(hidden(&c, &id));
    }
    let filter = AuditFilter {
        collection: Some(c.to_string()),
        record_id: Some(id.to_string()),
        limit: params.limit.unwrap_or(100).min(1000),
        ..Default::default()
    };
    let events = audit_events(&st, &snap, &filter).await?;
    Ok(Envelope::ok(&req, events))
}
