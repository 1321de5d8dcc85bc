//! Audit events: one per record change, with a field-level diff (nested arrays diff by
//! item id), staged in the same transaction as the change.

use serde_json::{Map, Value, json};

use super::Txn;
use super::hooks::Action;
use crate::collection::created::{self, UNDIFFED_FIELDS};
use crate::collection::definition::Compiled;
use crate::collection::event::AuditEvent;
use crate::collection::secret::{SECRET_CHANGE, mask_sealed};
use crate::names::RecordId;

impl Txn {
    /// An audit event about `collection/record_id`, attributed to this transaction: a
    /// fresh id, the clock's time, the actor, the current source and the request id. The
    /// one place events are built (record operations, deferred appends, definitions).
    pub(super) fn audit_event(
        &self,
        collection: &str,
        record_id: &str,
        action: Action,
        changes: Value,
    ) -> AuditEvent {
        AuditEvent {
            id: self.ctx.ids.new_id().to_string(),
            at: self.now(),
            actor: self.meta.actor.clone(),
            source: self.source(),
            action,
            collection: collection.to_string(),
            record_id: record_id.to_string(),
            changes,
            request_id: self.meta.request_id.clone(),
        }
    }

    /// Stages the audit event of one record change: who, when, from where, and the diff.
    pub(super) fn event(
        &mut self,
        def: &Compiled,
        id: &RecordId,
        action: Action,
        before: Option<&Value>,
        after: Option<&Value>,
    ) {
        // A create of a record this transaction puts whole names the put instead of
        // repeating the document (entry format 3, `collection::created`); a later write
        // of the record in this transaction expands it again (`Txn::restage`).
        // (Not where secrets sit below the top level: their diff masks sealed values
        // wherever they are, which the short form does not say.)
        if let (Action::Create, None, Some(after)) = (action, before, after)
            && !def.has_deep_secrets()
            && self.writes_whole(&def.name, id)
        {
            let descriptor = create_descriptor(def, after);
            debug_assert_eq!(
                created::expand(&descriptor, after),
                diff(def, None, Some(after)),
                "a create event stored by reference must read back as the diff"
            );
            let event = self.audit_event(def.name.as_str(), id.as_str(), action, Value::Null);
            let stored = event.to_raw_with(created::CHANGES_FROM_PUT, &descriptor);
            self.audit_created(&def.name, id, stored);
            return;
        }
        let changes = diff(def, before, after);
        let event = self.audit_event(def.name.as_str(), id.as_str(), action, changes);
        self.audit_about(&event, Some((def.name.clone(), id.clone())));
    }
}

/// How a field's set value shows in an audit event, when not in clear.
fn mask_of(def: &Compiled, field: &str) -> Option<&'static str> {
    if def.is_secret(field) {
        Some(SECRET_CHANGE)
    } else if def.is_redacted(field) {
        Some(crate::collection::definition::REDACTED)
    } else {
        None
    }
}

/// What the diff of a create of `after` needs besides the document (see
/// `collection::created`): the set fields shown masked, and the nested arrays.
fn create_descriptor(def: &Compiled, after: &Value) -> Value {
    // Nothing to name without nested arrays, secrets or redacted fields (most
    // collections): no look at the record's fields.
    if def.def.nested.is_empty() && !def.has_secrets() && def.def.redact.is_empty() {
        return Value::Object(Map::new());
    }
    let (mut masked, mut nested) = (Map::new(), Vec::new());
    for (k, v) in after.as_object().into_iter().flatten() {
        if v.is_null() || UNDIFFED_FIELDS.contains(&k.as_str()) {
            continue;
        }
        if def.is_nested(k) {
            nested.push(json!(k));
        } else if let Some(mask) = mask_of(def, k) {
            masked.insert(k.clone(), json!(mask));
        }
    }
    let mut descriptor = Map::new();
    if !masked.is_empty() {
        descriptor.insert("masked".into(), Value::Object(masked));
    }
    if !nested.is_empty() {
        descriptor.insert("nested".into(), Value::Array(nested));
    }
    Value::Object(descriptor)
}

/// Field-level changes; nested arrays by item id; secrets never in clear.
pub fn diff(def: &Compiled, before: Option<&Value>, after: Option<&Value>) -> Value {
    let empty = Map::new();
    let b = before.and_then(Value::as_object).unwrap_or(&empty);
    let a = after.and_then(Value::as_object).unwrap_or(&empty);
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut changes = Map::new();
    for k in keys {
        if UNDIFFED_FIELDS.contains(&k.as_str()) {
            continue;
        }
        let (from, to) = (
            b.get(k).unwrap_or(&Value::Null),
            a.get(k).unwrap_or(&Value::Null),
        );
        if from == to {
            continue;
        }
        let change = if def.is_nested(k) {
            nested_diff(from, to)
        } else if let Some(mask) = mask_of(def, k) {
            let shown = |v: &Value| {
                if v.is_null() {
                    Value::Null
                } else {
                    json!(mask)
                }
            };
            json!({"from": shown(from), "to": shown(to)})
        } else {
            json!({"from": from, "to": to})
        };
        changes.insert(k.clone(), change);
    }
    let mut changes = Value::Object(changes);
    if def.has_deep_secrets() {
        mask_sealed(&mut changes);
    }
    changes
}

/// The change of one nested array: items `added` (whole), `removed` (ids), `changed` (by
/// id, field by field).
pub(crate) fn nested_diff(from: &Value, to: &Value) -> Value {
    use foldhash::HashMap;
    let by_id = |v: &Value| -> Vec<(String, Value)> {
        v.as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| Some((i.get("id")?.as_str()?.to_string(), i.clone())))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (old, new) = (by_id(from), by_id(to));
    let old_map: HashMap<&str, &Value> = old.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let new_map: HashMap<&str, &Value> = new.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let added: Vec<Value> = new
        .iter()
        .filter(|(id, _)| !old_map.contains_key(id.as_str()))
        .map(|(_, v)| v.clone())
        .collect();
    let removed: Vec<&String> = old
        .iter()
        .filter(|(id, _)| !new_map.contains_key(id.as_str()))
        .map(|(id, _)| id)
        .collect();
    let mut changed = Map::new();
    for (id, v) in &new {
        let Some(prev) = old_map.get(id.as_str()) else {
            continue;
        };
        if *prev == v {
            continue;
        }
        let empty = Map::new();
        let (p, n) = (
            prev.as_object().unwrap_or(&empty),
            v.as_object().unwrap_or(&empty),
        );
        let mut keys: Vec<&String> = p.keys().chain(n.keys()).collect();
        keys.sort();
        keys.dedup();
        let mut fields = Map::new();
        for k in keys {
            if k == "updated_at" {
                continue;
            }
            let (f, t) = (
                p.get(k).unwrap_or(&Value::Null),
                n.get(k).unwrap_or(&Value::Null),
            );
            if f != t {
                fields.insert(k.clone(), json!({"from": f, "to": t}));
            }
        }
        changed.insert(id.clone(), Value::Object(fields));
    }
    json!({"added": added, "removed": removed, "changed": changed})
}

/// An audit event's `changes` for a change (`added` / `removed` / `changed`) of the array
/// at `array_path`: as the record's field diff writes it, the change of an item's own
/// array nested under `changed` of that item.
pub(crate) fn item_changes(array_path: &[String], change: Value) -> Value {
    match array_path {
        [field] => json!({ field.clone(): change }),
        [field, item_id, rest @ ..] => {
            let inner = item_changes(rest, change);
            json!({ field.clone(): {"added": [], "removed": [], "changed": { item_id.clone(): inner }} })
        }
        [] => change,
    }
}
