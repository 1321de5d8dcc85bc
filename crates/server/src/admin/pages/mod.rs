//! The generic pages, one module per resource: dashboard, collection tables, records
//! (view, edit, history, as-of, delete, restore, purge), trash, audit, definitions.
//! Each page asks the API (as the signed-in user) for what it shows and sends its forms
//! to the API; what a page offers is decided with the API's own [`Caller::may`].

mod actions;
mod audit;
mod collection;
mod dashboard;
mod definitions;
mod record;
mod revert;
mod trash;

use axum::Router;
use bucketbase_engine::collection::Compiled;
use bucketbase_engine::collection::expr::Vars;
use bucketbase_engine::{CollectionName, RecordId};
use serde_json::{Value, json};

use super::error::AdminError;
use crate::AppState;
use crate::access::{Action, Caller};

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(dashboard::router())
        .merge(collection::router())
        .merge(record::router())
        .merge(actions::router())
        .merge(trash::router())
        .merge(audit::router())
        .merge(revert::router())
        .merge(definitions::router())
}

/// A collection named in an admin path (unknown or malformed: a 404 page).
fn collection(name: &str) -> Result<CollectionName, AdminError> {
    CollectionName::parse(name)
        .ok()
        .filter(|c| !c.is_system())
        .ok_or_else(|| AdminError::NotFound(format!("no collection {name:?}")))
}

fn record_id(id: &str) -> Result<RecordId, AdminError> {
    RecordId::parse(id).map_err(|_| AdminError::NotFound(format!("no record {id:?}")))
}

/// The compiled definition, for deciding what to offer (the API decides what happens).
fn compiled(st: &AppState, c: &CollectionName) -> Result<std::sync::Arc<Compiled>, AdminError> {
    st.db
        .snapshot()
        .definition(c)
        .cloned()
        .ok_or_else(|| AdminError::NotFound(format!("no collection {:?}", c.as_str())))
}

/// Could the caller do `action` on some record of `def`? The rule is evaluated with
/// `auth` alone: `false` rules the caller out; `true`, or an error because the answer
/// depends on the record, means the page may offer it and the API decides.
pub fn could(caller: &Caller, def: &Compiled, action: Action) -> bool {
    if caller.is_super_admin() {
        return true;
    }
    let Some(rule) = def.rules.get(action.as_str()) else {
        return false;
    };
    rule.eval_bool(&Vars::new().with("auth", &caller.auth))
        .unwrap_or(true)
}

/// A short label for a record: its name, title or guest, else its id.
fn label(record: &Value) -> String {
    ["name", "title", "guest_name", "email", "key"]
        .iter()
        .find_map(|k| record.get(*k).and_then(Value::as_str))
        .map(str::to_string)
        .or_else(|| record.get("id").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default()
}

/// The text of a fixed notice named in a redirect (`?notice=`); unknown names show
/// nothing, so a link cannot put words on the page.
fn notice(key: Option<&str>) -> Option<&'static str> {
    Some(match key? {
        "created" => "Created.",
        "saved" => "Saved.",
        "deleted" => "Deleted. It is in the trash until it is restored or purged.",
        "restored" => "Restored.",
        "purged" => "Purged for good.",
        _ => return None,
    })
}

/// A JSON value as a table cell shows it.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// The admin page of an audited record, if it has one (system collections do not).
fn record_href(event: &Value) -> Option<String> {
    let c = event["collection"].as_str()?;
    let id = event["record_id"].as_str()?;
    (!c.starts_with('_')).then(|| format!("/admin/c/{c}/{id}"))
}

/// An audit event as timelines show it: who, when, from where, and a row per changed
/// field (from → to).
fn event_view(e: &Value) -> Value {
    let changes: Vec<Value> = e["changes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(f, ch)| json!({"field": f, "from": cell(ch.get("from")), "to": cell(ch.get("to"))}))
        .collect();
    json!({"seq": e["seq"], "at": e["at"], "actor": e["actor"], "source": e["source"],
           "action": e["action"], "collection": e["collection"], "record_id": e["record_id"],
           "href": record_href(e), "changes": changes, "revert": revert::links(e)})
}
