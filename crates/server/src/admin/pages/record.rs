//! `/admin/c/{collection}/{id}`: one record (its fields, nested arrays paged), the edit
//! form generated from the schema (API refusals shown beside the fields they name), its
//! history as a timeline of field diffs, and "as of" any past version (delete, restore
//! and purge are in `actions`). `/admin/c/{collection}/new` creates one.
//!
//! A record the user may not see is the API's 404, shown as a 404 page.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use bucketbase_engine::collection::Compiled;
use serde_json::{Map, Value, json};

use super::super::api::{Failure, with_query};
use super::super::error::AdminError;
use super::super::forms::{self, CsrfForm};
use super::super::session::Ctx;
use super::{could, label};
use crate::AppState;
use crate::access::Action;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/c/{collection}/new", get(new_page).post(create))
        .route("/admin/c/{collection}/{id}", get(view).post(edit))
}

/// Nested items shown per page.
const NESTED_PER_PAGE: usize = 20;

#[derive(serde::Deserialize, Default)]
struct ViewParams {
    as_of: Option<u64>,
    notice: Option<String>,
    /// `nested_page=<array>:<page>` pages one nested array.
    nested_page: Option<String>,
}

/// A form sent back with the API's refusal.
struct Refused {
    values: Value,
    failure: Failure,
}

async fn view(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((c, id)): Path<(String, String)>,
    Query(p): Query<ViewParams>,
) -> Result<Response, AdminError> {
    record_page(&st, &ctx, &c, &id, &p, None).await
}

/// The record's fields minus nested arrays and the fields the system writes.
fn editable_schema(def: &Value, compiled: &Compiled) -> Value {
    let mut schema = def["schema"].clone();
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for f in &compiled.def.system_fields {
            props.remove(f);
        }
    }
    schema
}

async fn record_page(
    st: &AppState,
    ctx: &Ctx,
    c: &str,
    id: &str,
    p: &ViewParams,
    refused: Option<Refused>,
) -> Result<Response, AdminError> {
    let (c, id) = (super::collection(c)?, super::record_id(id)?);
    let path = format!("/api/v1/{c}/{id}");
    let uri = with_query(
        &path,
        &[("as_of", p.as_of.map(|s| s.to_string()).unwrap_or_default())],
    );
    // A record the user may not see is the API's 404: a 404 page.
    let record = ctx.api.get(&uri).await?.data;
    let def = ctx.api.get(&format!("/api/v1/collections/{c}")).await?.data;
    let compiled = super::compiled(st, &c)?;
    let history = ctx
        .api
        .get(&format!("{path}/history"))
        .await
        .map(|a| a.data)
        .unwrap_or(json!([]));
    let deleted = !record["deleted_at"].is_null();
    let caller = ctx.caller();
    let nested_names: Vec<String> = def["nested"]
        .as_object()
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default();
    // Fields as rows (nested arrays get their own paged tables).
    let fields: Vec<Value> = record
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !nested_names.contains(k))
        .map(|(k, v)| json!({"name": k, "value": match v { Value::String(s) => s.clone(), v => serde_json::to_string_pretty(v).unwrap_or_default() }}))
        .collect();
    let (page_of, wanted) = p
        .nested_page
        .as_deref()
        .and_then(|s| s.split_once(':'))
        .map(|(n, pg)| (n.to_string(), pg.parse::<usize>().unwrap_or(1).max(1)))
        .unwrap_or_default();
    let nested: Vec<Value> = nested_names
        .iter()
        .map(|name| {
            let items = record[name].as_array().cloned().unwrap_or_default();
            let pages = items.len().div_ceil(NESTED_PER_PAGE).max(1);
            let page = if *name == page_of { wanted.min(pages) } else { 1 };
            let shown: Vec<String> = items
                .iter()
                .skip((page - 1) * NESTED_PER_PAGE)
                .take(NESTED_PER_PAGE)
                .map(|i| serde_json::to_string(i).unwrap_or_default())
                .collect();
            let link = |pg: usize| format!("/admin/c/{c}/{id}?nested_page={name}:{pg}");
            json!({"name": name, "items": shown, "count": items.len(), "page": page, "pages": pages,
                   "prev": (page > 1).then(|| link(page - 1)), "next": (page < pages).then(|| link(page + 1))})
        })
        .collect();
    let current = p.as_of.is_none();
    let can_edit = current && !deleted && caller.may(&compiled, Action::Update, &record);
    let schema = editable_schema(&def, &compiled);
    let (values, errors, failure) = match refused {
        Some(r) => {
            let errors = forms::field_errors(&r.failure.details, &r.failure.message);
            (r.values, errors, Some(r.failure))
        }
        None => (record.clone(), Map::new(), None),
    };
    let status = failure.as_ref().map_or(StatusCode::OK, |f| f.status);
    let timeline: Vec<Value> = history
        .as_array()
        .into_iter()
        .flatten()
        .map(super::event_view)
        .collect();
    ctx.page_with(
        status,
        "record.html",
        json!({
            "title": format!("{} · {c}", label(&record)),
            "collection": c.as_str(),
            "id": id.as_str(),
            "label": label(&record),
            "version": record["_version"],
            "as_of": p.as_of,
            "notice": super::notice(p.notice.as_deref()),
            "deleted": deleted,
            "fields": fields,
            "nested": nested,
            "timeline": timeline,
            "can_edit": can_edit,
            "form": if can_edit { json!(forms::fields(&schema, &values, &errors)) } else { json!([]) },
            "failure": failure.as_ref().map(failure_json),
            "can_delete": current && !deleted && caller.may(&compiled, Action::Delete, &record),
            "can_restore": current && deleted && caller.may(&compiled, Action::Delete, &record),
            "can_purge": current && caller.is_super_admin(),
        }),
    )
}

/// A refusal as pages show it, with a link to the record in the way, if any.
pub fn failure_json(f: &Failure) -> Value {
    let other = f.details["conflicting"].as_str().map(|id| {
        let c = f.details["collection"].as_str().unwrap_or_default();
        json!({"href": format!("/admin/c/{c}/{id}"), "collection": c, "id": id})
    });
    json!({"status": f.status.as_u16(), "code": f.code, "message": f.message,
           "constraint": f.details["constraint"], "fields": f.details["fields"],
           "current_version": f.details["current_version"], "conflicting": other})
}

/// Only the fields the form changed (an unset box on an absent field is no change), so
/// the patch never touches what the user did not.
fn changes(form_json: Map<String, Value>, record: &Value) -> Map<String, Value> {
    form_json
        .into_iter()
        .filter(|(k, v)| {
            let before = record.get(k).filter(|b| !b.is_null());
            let after = Some(v).filter(|a| !a.is_null());
            let unset_box = before.is_none() && after == Some(&json!(false));
            before != after && !unset_box
        })
        .collect()
}

async fn edit(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((cn, idn)): Path<(String, String)>,
    CsrfForm(form): CsrfForm,
) -> Result<Response, AdminError> {
    let (c, id) = (super::collection(&cn)?, super::record_id(&idn)?);
    let path = format!("/api/v1/{c}/{id}");
    let record = ctx.api.get(&path).await?.data;
    let def = ctx.api.get(&format!("/api/v1/collections/{c}")).await?.data;
    let schema = editable_schema(&def, &*super::compiled(&st, &c)?);
    let submitted = forms::to_json(&schema, &form);
    let version = form.get("_version").and_then(|v| v.parse::<u64>().ok());
    let patch = Value::Object(changes(submitted.clone(), &record));
    match ctx
        .api
        .call(Method::PATCH, &path, Some(&patch), version)
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/admin/c/{c}/{id}?notice=saved")).into_response()),
        Err(failure) => {
            let mut values = record.clone();
            if let Value::Object(v) = &mut values {
                v.extend(submitted);
            }
            let refused = Refused { values, failure };
            record_page(&st, &ctx, &cn, &idn, &ViewParams::default(), Some(refused)).await
        }
    }
}

async fn new_page(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(c): Path<String>,
) -> Result<Response, AdminError> {
    new_form(&st, &ctx, &c, Value::Null, None).await
}

/// A blank record: the schema's defaults (a box that defaults to true starts ticked).
fn defaults(schema: &Value) -> Value {
    let props = schema["properties"].as_object().into_iter().flatten();
    Value::Object(
        props
            .filter_map(|(k, p)| p.get("default").map(|d| (k.clone(), d.clone())))
            .collect(),
    )
}

async fn new_form(
    st: &AppState,
    ctx: &Ctx,
    c: &str,
    values: Value,
    failure: Option<Failure>,
) -> Result<Response, AdminError> {
    let c = super::collection(c)?;
    let def = ctx.api.get(&format!("/api/v1/collections/{c}")).await?.data;
    let compiled = super::compiled(st, &c)?;
    if !could(ctx.caller(), &compiled, Action::Create) {
        return Err(AdminError::Api(Failure {
            status: StatusCode::FORBIDDEN,
            code: "forbidden".into(),
            message: format!("you may not create {c} records"),
            details: Value::Null,
        }));
    }
    let schema = editable_schema(&def, &compiled);
    let values = if values.is_null() {
        defaults(&schema)
    } else {
        values
    };
    let errors = failure
        .as_ref()
        .map(|f| forms::field_errors(&f.details, &f.message))
        .unwrap_or_default();
    let status = failure.as_ref().map_or(StatusCode::OK, |f| f.status);
    ctx.page_with(
        status,
        "new.html",
        json!({"title": format!("New · {c}"), "collection": c.as_str(),
               "form": forms::fields(&schema, &values, &errors),
               "failure": failure.as_ref().map(failure_json)}),
    )
}

async fn create(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(cn): Path<String>,
    CsrfForm(form): CsrfForm,
) -> Result<Response, AdminError> {
    let c = super::collection(&cn)?;
    let def = ctx.api.get(&format!("/api/v1/collections/{c}")).await?.data;
    let schema = editable_schema(&def, &*super::compiled(&st, &c)?);
    // Empty fields are left out (the schema's defaults apply).
    let body: Map<String, Value> = forms::to_json(&schema, &form)
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .collect();
    let body = Value::Object(body);
    match ctx
        .api
        .call(Method::POST, &format!("/api/v1/{c}"), Some(&body), None)
        .await
    {
        Ok(a) => {
            let id = a.data["id"].as_str().unwrap_or_default();
            Ok(Redirect::to(&format!("/admin/c/{c}/{id}?notice=created")).into_response())
        }
        Err(f) => new_form(&st, &ctx, &cn, body, Some(f)).await,
    }
}
