//! Postman collections in and out of the store: what the import route and `bucketbase
//! import postman` write, and what the export route reads, over the pure data layer in
//! [`crate::postman`].
//!
//! **Credentials.** The definition seals every credential a file can hold where it is
//! (`definitions/api_collections.toml`: each auth block whole, and the value of each
//! variable of type `secret`, in the record and in its requests and mocks), so the
//! import writes the file's values in place and the engine encrypts them: nothing a
//! credential was lives in clear in the log, the view, lists or audit diffs.
//!
//! **Re-import.** A file names its stored collection by `_postman_id`, else by name
//! (among the caller's live collections). The plan of [`reimport::plan`] is written as
//! item operations. A credential the new file leaves blank where the stored collection
//! has one is kept: re-importing an export made without secrets does not wipe them.
//!
//! **Export.** The record is read with its secrets revealed (the key is the server's),
//! then every credential is blanked unless the caller asked for secrets, in which case
//! the export is itself an audit event (`export`).

use std::collections::HashMap;

use bucketbase_engine::collection::event::{Action as AuditAction, AuditEvent};
use bucketbase_engine::collection::keys::is_live;
use bucketbase_engine::collection::records::{Secrets, render};
use bucketbase_engine::collection::secret::SecretBox;
use bucketbase_engine::{Clock, IdSource, RecordId, Seq, SystemClock, Txn, UuidV7Ids};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::coll;
use crate::postman::reimport::{self, ItemChanges, Outcome, RECORD_FIELDS};
use crate::postman::{self, Imported, Limits, secrets};

/// How one nested array changed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Counts {
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    pub unchanged: usize,
}

impl From<&ItemChanges> for Counts {
    fn from(c: &ItemChanges) -> Self {
        Counts {
            added: c.added.len(),
            updated: c.updated.len(),
            removed: c.removed.len(),
            unchanged: c.unchanged,
        }
    }
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// `created`, `updated` or `unchanged`.
    pub outcome: &'static str,
    pub id: String,
    pub name: String,
    pub postman_id: Option<String>,
    pub requests: Counts,
    pub mocks: Counts,
    /// Credentials the collection holds (stored encrypted).
    pub credentials: usize,
    pub dry_run: bool,
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Created => "created",
        Outcome::Updated => "updated",
        Outcome::Unchanged => "unchanged",
    }
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// `/requests/3/auth/...` (an index into `imported`) → `/requests/<item id>/auth/...`.
fn stored_key(imported: &Imported, pointer: &str) -> Option<String> {
    for (field, items) in [("requests", &imported.requests), ("mocks", &imported.mocks)] {
        if let Some(rest) = pointer.strip_prefix(&format!("/{field}/")) {
            let (index, tail) = rest.split_once('/').unwrap_or((rest, ""));
            let item = items.get(index.parse::<usize>().ok()?)?;
            let id = item.get("id")?.as_str()?;
            return Some(format!("/{field}/{}/{tail}", escape(id)));
        }
    }
    Some(pointer.to_string())
}

/// The inverse of [`stored_key`]: where a stored credential goes in `imported`.
fn pointer_in(imported: &Imported, key: &str) -> Option<String> {
    for (field, items) in [("requests", &imported.requests), ("mocks", &imported.mocks)] {
        if let Some(rest) = key.strip_prefix(&format!("/{field}/")) {
            let (id, tail) = rest.split_once('/')?;
            let id = id.replace("~1", "/").replace("~0", "~");
            let index = items
                .iter()
                .position(|i| i.get("id").and_then(Value::as_str) == Some(id.as_str()))?;
            return Some(format!("/{field}/{index}/{tail}"));
        }
    }
    Some(key.to_string())
}

fn from_json(doc: Value) -> Imported {
    let take = |k: &str| doc.get(k).cloned();
    Imported {
        record: take("record")
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default(),
        requests: take("requests")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default(),
        mocks: take("mocks")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default(),
    }
}

/// Is the value at `pointer` of `doc` blank: `""`, or left out of an object that is
/// there (an export without secrets)?
fn blank_at(doc: &Value, pointer: &str) -> bool {
    match doc.pointer(pointer) {
        Some(v) => *v == json!("") || v.is_null(),
        None => pointer
            .rsplit_once('/')
            .and_then(|(parent, _)| doc.pointer(parent))
            .is_some_and(Value::is_object),
    }
}

/// Keeps in `new` each credential `stored` holds where the file leaves it blank (a file
/// exported without its secrets): matched by place, requests and mocks by item id.
fn keep_stored_credentials(new: &mut Imported, stored: &Imported) {
    let old = stored.to_json();
    let mut doc = new.to_json();
    let mut kept = false;
    for p in secrets::credential_paths(stored) {
        let (Some(value), Some(key)) = (old.pointer(&p), stored_key(stored, &p)) else {
            continue;
        };
        if let Some(at) = pointer_in(new, &key)
            && blank_at(&doc, &at)
            && let Some((parent, name)) = at.rsplit_once('/')
            && let Some(parent) = doc.pointer_mut(parent)
        {
            set_member(parent, name, value.clone());
            kept = true;
        }
    }
    if kept {
        *new = from_json(doc);
    }
}

/// Sets member (or array position) `token` of `parent` (a pointer's last step).
fn set_member(parent: &mut Value, token: &str, value: Value) {
    let token = token.replace("~1", "/").replace("~0", "~");
    match parent {
        Value::Object(map) => {
            map.insert(token, value);
        }
        Value::Array(items) => {
            if let Some(slot) = token.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *slot = value;
            }
        }
        _ => {}
    }
}

/// The stored collection as an [`Imported`] (secret fields as they are in `record`).
fn stored_imported(record: &Value) -> Imported {
    let fields: Map<String, Value> = RECORD_FIELDS
        .iter()
        .filter_map(|f| {
            Some((
                f.to_string(),
                record.get(*f).filter(|v| !v.is_null())?.clone(),
            ))
        })
        .collect();
    let items = |f: &str| {
        record
            .get(f)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    Imported {
        record: fields,
        requests: items("requests"),
        mocks: items("mocks"),
    }
}

/// The caller's live collection this file updates: by `_postman_id`, else by name.
fn existing(
    tx: &mut Txn,
    owner: &str,
    new: &Imported,
) -> bucketbase_engine::Result<Option<(RecordId, Value)>> {
    let c = coll("api_collections");
    let mine = |found: Vec<(RecordId, Value)>| {
        found
            .into_iter()
            .find(|(_, r)| is_live(r) && r.get("created_by").and_then(Value::as_str) == Some(owner))
    };
    if let Some(pid) = new.record.get("postman_id")
        && let Some(found) = mine(tx.find(&c, "postman_id", pid)?)
    {
        return Ok(Some(found));
    }
    match new.record.get("name") {
        Some(name) => Ok(mine(tx.find(&c, "name", name)?)),
        None => Ok(None),
    }
}

/// Reveals a stored record's secret fields.
fn reveal(
    tx: &mut Txn,
    id: &RecordId,
    record: Value,
    key: Option<&SecretBox>,
) -> bucketbase_engine::Result<Value> {
    let c = coll("api_collections");
    let def = tx.definition(&c)?;
    render(Some(&def), &c, id, record, Seq::ZERO, Secrets::Reveal, key)
}

/// Imports one parsed collection as `owner` inside `tx` (a dry run: the caller drops the
/// transaction). `admits` says whether the caller may update a stored record.
pub fn import(
    tx: &mut Txn,
    owner: &str,
    mut new: Imported,
    key: Option<&SecretBox>,
    dry_run: bool,
) -> bucketbase_engine::Result<Report> {
    let c = coll("api_collections");
    let found = existing(tx, owner, &new)?;
    let stored = match &found {
        Some((id, record)) => Some(stored_imported(&reveal(tx, id, record.clone(), key)?)),
        None => None,
    };
    if let Some(stored) = &stored {
        keep_stored_credentials(&mut new, stored);
    }
    let credentials = secrets::credential_paths(&new).len();
    let plan = reimport::plan(stored.as_ref(), &new);
    let mut report = Report {
        outcome: outcome_name(plan.outcome),
        id: found
            .as_ref()
            .map(|(id, _)| id.to_string())
            .unwrap_or_default(),
        name: new
            .record
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        postman_id: new
            .record
            .get("postman_id")
            .and_then(Value::as_str)
            .map(String::from),
        requests: Counts::from(&plan.requests),
        mocks: Counts::from(&plan.mocks),
        credentials,
        dry_run,
    };
    match (plan.outcome, &found) {
        (Outcome::Unchanged, _) => {}
        (Outcome::Created, _) | (_, None) => {
            let mut record = new.record.clone();
            record.insert("requests".into(), Value::Array(new.requests.clone()));
            record.insert("mocks".into(), Value::Array(new.mocks.clone()));
            let (id, _) = tx.create(&c, Value::Object(record))?;
            report.id = id.to_string();
        }
        (Outcome::Updated, Some((id, _))) => {
            if !plan.record_patch.is_empty() {
                tx.update(&c, id, &Value::Object(plan.record_patch.clone()), None)?;
            }
            let old_items: HashMap<&str, &Value> = stored
                .iter()
                .flat_map(|s| s.requests.iter().chain(s.mocks.iter()))
                .filter_map(|i| Some((i.get("id")?.as_str()?, i)))
                .collect();
            for (field, changes) in [("requests", &plan.requests), ("mocks", &plan.mocks)] {
                for item_id in &changes.removed {
                    tx.nested_remove(&c, id, field, item_id)?;
                }
                for item in &changes.updated {
                    let item_id = item.get("id").and_then(Value::as_str).unwrap_or_default();
                    let patch = item_patch(old_items.get(item_id).copied(), item);
                    tx.nested_patch(&c, id, field, item_id, &patch)?;
                }
                for item in &changes.added {
                    tx.nested_append(&c, id, field, item.clone())?;
                }
            }
        }
    }
    Ok(report)
}

/// A merge patch from `old` to `new`: what differs (keys `new` lacks become `null`), so
/// an unchanged credential is not sealed again.
fn item_patch(old: Option<&Value>, new: &Value) -> Value {
    let new = new.as_object().cloned().unwrap_or_default();
    let Some(old) = old.and_then(Value::as_object) else {
        let mut patch = new;
        patch.remove("id");
        return Value::Object(patch);
    };
    let mut patch: serde_json::Map<String, Value> = new
        .iter()
        .filter(|(k, v)| k.as_str() != "id" && old.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for k in old.keys() {
        if !matches!(k.as_str(), "id" | "created_at" | "updated_at") && !new.contains_key(k) {
            patch.insert(k.clone(), Value::Null);
        }
    }
    Value::Object(patch)
}

/// Parses a file and imports it (see [`import`]).
pub fn import_file(
    tx: &mut Txn,
    owner: &str,
    bytes: &[u8],
    key: Option<&SecretBox>,
    dry_run: bool,
) -> Result<Report, ImportError> {
    let (_, imported) = postman::import(bytes, &Limits::default())?;
    Ok(import(tx, owner, imported, key, dry_run)?)
}

/// Why an import failed: the file, or the store.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    File(#[from] postman::Error),
    #[error(transparent)]
    Engine(#[from] bucketbase_engine::Error),
}

/// The stored collection `record` (id `id`) as a v2.1 file, credentials blanked unless
/// `include_secrets`.
pub fn export(
    tx: &mut Txn,
    id: &RecordId,
    record: Value,
    key: Option<&SecretBox>,
    include_secrets: bool,
) -> Result<Value, ImportError> {
    let revealed = reveal(tx, id, record, key)?;
    let mut stored = stored_imported(&revealed);
    if !include_secrets {
        let mut doc = stored.to_json();
        for p in secrets::credential_paths(&stored) {
            if let Some(slot) = doc.pointer_mut(&p) {
                *slot = json!("");
            }
        }
        stored = from_json(doc);
    }
    Ok(postman::export(&stored, &Limits::default())?)
}

/// The audit event of an export that included secrets: who read them, when, from where.
pub fn audit_secret_export(tx: &mut Txn, id: &RecordId) {
    let meta = tx.meta().clone();
    let event = AuditEvent {
        id: UuidV7Ids.new_id().to_string(),
        at: SystemClock
            .now()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        actor: meta.actor.clone(),
        source: meta.source.clone(),
        action: AuditAction::Export,
        collection: "api_collections".into(),
        record_id: id.to_string(),
        changes: json!({"include_secrets": {"from": null, "to": true}}),
        request_id: meta.request_id.clone(),
    };
    tx.audit(&event);
}
