//! Importing a collection that is already there: what changes, item by item.
//!
//! A re-import (the same `_postman_id`, else the same name) updates the stored
//! collection in place. Items are matched by their derived ids (stable across edits
//! around them, see [`super::record`]), so the writer appends the added items, patches
//! the changed ones and removes the missing ones (item operations, never a rewrite of
//! the record), and the answer says created, updated or unchanged.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::record::Imported;

/// The record fields an import owns (others, and the engine's metadata, are left alone).
pub const RECORD_FIELDS: [&str; 9] = [
    "name",
    "description",
    "postman_id",
    "version",
    "auth",
    "variables",
    "events",
    "protocol_profile_behavior",
    "folders",
];

/// Changes to one nested array.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ItemChanges {
    /// New items (with their ids).
    pub added: Vec<Value>,
    /// Items whose content changed (the whole new item, with its id).
    pub updated: Vec<Value>,
    /// Ids of items the new file no longer has.
    pub removed: Vec<String>,
    pub unchanged: usize,
}

impl ItemChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.updated.is_empty() && self.removed.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reimport {
    pub outcome: Outcome,
    /// The record's own fields to set (`null` removes one), empty when none changed.
    pub record_patch: Map<String, Value>,
    pub requests: ItemChanges,
    pub mocks: ItemChanges,
}

/// Compares what is stored (`None`: nothing yet) with a new import.
pub fn plan(stored: Option<&Imported>, new: &Imported) -> Reimport {
    let Some(stored) = stored else {
        return Reimport {
            outcome: Outcome::Created,
            record_patch: new.record.clone(),
            requests: ItemChanges {
                added: new.requests.clone(),
                ..ItemChanges::default()
            },
            mocks: ItemChanges {
                added: new.mocks.clone(),
                ..ItemChanges::default()
            },
        };
    };
    let mut record_patch = Map::new();
    for f in RECORD_FIELDS {
        let (old, now) = (stored.record.get(f), new.record.get(f));
        if old.filter(|v| !v.is_null()) != now {
            record_patch.insert(f.into(), now.cloned().unwrap_or(Value::Null));
        }
    }
    let requests = items(&stored.requests, &new.requests);
    let mocks = items(&stored.mocks, &new.mocks);
    let outcome = if record_patch.is_empty() && requests.is_empty() && mocks.is_empty() {
        Outcome::Unchanged
    } else {
        Outcome::Updated
    };
    Reimport {
        outcome,
        record_patch,
        requests,
        mocks,
    }
}

fn id(v: &Value) -> Option<&str> {
    v.get("id").and_then(Value::as_str)
}

/// An item without what the engine adds to it.
fn content(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "created_at" | "updated_at"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn items(stored: &[Value], new: &[Value]) -> ItemChanges {
    let old: HashMap<&str, &Value> = stored.iter().filter_map(|v| Some((id(v)?, v))).collect();
    let mut changes = ItemChanges::default();
    let mut seen = std::collections::HashSet::new();
    for item in new {
        let Some(i) = id(item) else { continue };
        seen.insert(i);
        match old.get(i) {
            None => changes.added.push(item.clone()),
            Some(before) if content(before) != content(item) => changes.updated.push(item.clone()),
            Some(_) => changes.unchanged += 1,
        }
    }
    changes.removed = stored
        .iter()
        .filter_map(id)
        .filter(|i| !seen.contains(i))
        .map(String::from)
        .collect();
    changes
}
