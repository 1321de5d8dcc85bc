//! Create events stored by reference to their record's `put` (entry format 3).
//!
//! Why: a create's audit event lists every field of the new record
//! (`{"field": {"from": null, "to": value}}`), which repeats the document that the `put`
//! op of the same transaction already carries: about half of an import's log entry. So
//! from format 3, a create event whose record is put whole in the same transaction, with
//! exactly the document the event describes, is stored without `changes` and with
//! `"changes_from_put": {"masked"?: {field: shown}, "nested"?: [field]}` instead: what the
//! diff needs besides the document, decided when the event was made (so a later
//! definition change does not change an old event). Readers get the event back whole
//! ([`Puts::full_event`]): byte for byte the `changes` the diff wrote before (`txn::diff`,
//! which a debug assertion compares with [`expand`] for every create).
//!
//! The hash chain covers the stored form: the event and the document it names are in
//! the same hashed entry, so the expanded event is as tamper-evident as a stored one.

use foldhash::{HashMap, HashMapExt};
use std::cell::OnceCell;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::log::{OpKind, TxnRecord};

/// The key a stored-by-reference create event has instead of `changes`.
pub const CHANGES_FROM_PUT: &str = "changes_from_put";

/// Record fields a diff never lists: the id and the metadata every change sets.
pub const UNDIFFED_FIELDS: [&str; 6] = [
    "id",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "_version",
];

/// The `changes` of a create of `doc`, from its event's `changes_from_put`: every field
/// but [`UNDIFFED_FIELDS`] and nulls, `{"from": null, "to": value}`; a masked field's
/// `to` is its mask; a nested array is `{"added": [its items with an id], "removed": [],
/// "changed": {}}`. Keys are inserted in sorted order, as a stored event reads back.
pub fn expand(descriptor: &Value, doc: &Value) -> Value {
    let empty = Map::new();
    let masked = descriptor
        .get("masked")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let nested = |k: &str| {
        descriptor
            .get("nested")
            .and_then(Value::as_array)
            .is_some_and(|n| n.iter().any(|f| f.as_str() == Some(k)))
    };
    let fields = doc.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = fields.keys().collect();
    keys.sort();
    let mut changes = Map::new();
    for k in keys {
        let to = &fields[k];
        if UNDIFFED_FIELDS.contains(&k.as_str()) || to.is_null() {
            continue;
        }
        let change = if nested(k) {
            let added: Vec<Value> = to
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter(|i| i.get("id").is_some_and(Value::is_string))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let mut change = Map::new();
            change.insert("added".into(), Value::Array(added));
            change.insert("changed".into(), Value::Object(Map::new()));
            change.insert("removed".into(), Value::Array(Vec::new()));
            change
        } else {
            let mut change = Map::new();
            change.insert("from".into(), Value::Null);
            change.insert(
                "to".into(),
                masked.get(k).cloned().unwrap_or_else(|| to.clone()),
            );
            change
        };
        changes.insert(k.clone(), Value::Object(change));
    }
    Value::Object(changes)
}

/// The documents a transaction puts whole, by record (its first `put` of each): what
/// its create events stored by reference are expanded from. Mapped once, at the first
/// such event, so expanding all of an import's events costs one lookup each, not a scan
/// of its ops, and a transaction without one maps nothing.
pub struct Puts<'t> {
    txn: &'t TxnRecord,
    by_record: OnceCell<HashMap<(&'t str, &'t str), &'t RawValue>>,
}

impl<'t> Puts<'t> {
    pub fn of(txn: &'t TxnRecord) -> Puts<'t> {
        Puts {
            txn,
            by_record: OnceCell::new(),
        }
    }

    fn get(&self, collection: &str, id: &str) -> Option<&'t RawValue> {
        let by_record = self.by_record.get_or_init(|| {
            let mut puts = HashMap::with_capacity(self.txn.ops.len());
            for op in self.txn.ops.iter().filter(|op| op.op == OpKind::Put) {
                if let Some(doc) = &op.doc {
                    puts.entry((op.collection.as_str(), op.id.as_str()))
                        .or_insert(&**doc);
                }
            }
            puts
        });
        by_record.get(&(collection, id)).copied()
    }

    /// An audit event of the transaction as readers see it: stored whole, or (format 3)
    /// a create stored by reference, expanded from its record's `put`.
    pub fn full_event(&self, raw: &RawValue) -> Result<Value> {
        let value: Value =
            serde_json::from_str(raw.get()).map_err(|e| Error::corrupt("audit event", e))?;
        let Value::Object(mut event) = value else {
            return Err(Error::corrupt("audit event", "not a JSON object"));
        };
        let Some(descriptor) = event.remove(CHANGES_FROM_PUT) else {
            return Ok(Value::Object(event));
        };
        let subject = (
            event.get("collection").and_then(Value::as_str),
            event.get("record_id").and_then(Value::as_str),
        );
        let doc = match subject {
            (Some(c), Some(id)) => self.get(c, id),
            _ => None,
        }
        .ok_or_else(|| {
            Error::corrupt(
                "audit event",
                "a create stored by reference without its record's put",
            )
        })?;
        let doc: Value =
            serde_json::from_str(doc.get()).map_err(|e| Error::corrupt("audit event", e))?;
        event.insert("changes".into(), expand(&descriptor, &doc));
        Ok(Value::Object(sorted(event)))
    }
}

/// The event whole, from its stored-by-reference text and the document it created.
pub(crate) fn expand_raw(raw: &RawValue, doc: &RawValue) -> Result<Box<RawValue>> {
    let mut event: Map<String, Value> =
        serde_json::from_str(raw.get()).map_err(|e| Error::corrupt("audit event", e))?;
    let descriptor = event.remove(CHANGES_FROM_PUT).unwrap_or(Value::Null);
    let doc: Value =
        serde_json::from_str(doc.get()).map_err(|e| Error::corrupt("audit event", e))?;
    event.insert("changes".into(), expand(&descriptor, &doc));
    Ok(crate::canonical::to_canonical_raw(&Value::Object(event)))
}

/// `map` with its keys in sorted order (as a stored event parses, whatever serde_json's
/// map keeps: `preserve_order` keeps insertion order).
fn sorted(map: Map<String, Value>) -> Map<String, Value> {
    let mut entries: Vec<(String, Value)> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn expands_to_the_create_diff_shape() {
        let doc = json!({
            "id": "r1", "created_at": "t", "updated_at": "t", "created_by": "u",
            "updated_by": "u", "deleted_at": null, "deleted_by": null,
            "name": "Loft", "pin": "sealed", "notes": [{"id": "n1", "t": 1}, {"t": 2}],
        });
        let descriptor = json!({"masked": {"pin": "[secret]"}, "nested": ["notes"]});
        assert_eq!(
            expand(&descriptor, &doc),
            json!({
                "name": {"from": null, "to": "Loft"},
                "pin": {"from": null, "to": "[secret]"},
                "notes": {"added": [{"id": "n1", "t": 1}], "removed": [], "changed": {}},
            })
        );
        assert_eq!(expand(&json!({}), &json!({"id": "x"})), json!({}));
    }
}
