//! Deferred appends: nested items whose final array is only known at the commit position.
//! The committer resolves them against the state the entry applies to.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::collection::document::bad_input;
use crate::collection::event::AuditEvent;
use crate::collection::keys::is_live;
use crate::error::{Error, Result};
use crate::names::{CollectionName, RecordId};

/// A nested append waiting for the commit position (see [`Txn::nested_append`]).
#[derive(Debug, Clone)]
pub struct DeferredAppend {
    pub collection: CollectionName,
    pub id: RecordId,
    pub field: String,
    pub item: Value,
    /// The append's audit event, built when the append was asked for; its `changes`
    /// (the added item) are filled in at commit.
    pub event: AuditEvent,
}

/// Applies a transaction's deferred appends to the records as they are in `state` (after
/// the transaction's own writes), returning the transaction as it goes into the log.
pub(crate) fn resolve_appends(
    state: &crate::state::State,
    txn: &crate::log::TxnRecord,
    appends: &[DeferredAppend],
) -> Result<crate::log::TxnRecord> {
    use crate::canonical::to_canonical_raw;
    use crate::log::{Op, OpKind};
    let mut out = txn.clone();
    for a in appends {
        let def =
            state
                .definition(&a.collection)
                .cloned()
                .ok_or_else(|| Error::UnknownCollection {
                    collection: a.collection.to_string(),
                })?;
        let staged = out
            .ops
            .iter()
            .position(|o| o.collection == a.collection && o.id == a.id);
        let current: Option<Value> = match staged {
            Some(i) => out.ops[i]
                .doc
                .as_ref()
                .map(|d| serde_json::from_str(d.get()).expect("valid JSON")),
            None => state.get(&a.collection, &a.id).map(|d| d.value()),
        };
        let before = current.filter(is_live).ok_or_else(|| Error::NotFound {
            collection: a.collection.to_string(),
            id: a.id.to_string(),
        })?;
        let mut after = before.clone();
        let map = after.as_object_mut().expect("records are objects");
        match map.get_mut(&a.field) {
            Some(Value::Array(items)) => {
                if items.iter().any(|i| i.get("id") == a.item.get("id")) {
                    return Err(bad_input(
                        &def,
                        &format!("/{}/id", a.field),
                        "an item with this id already exists",
                    ));
                }
                items.push(a.item.clone());
            }
            _ => {
                map.insert(a.field.clone(), json!([a.item.clone()]));
            }
        }
        map.insert("updated_at".into(), json!(a.event.at));
        map.insert("updated_by".into(), json!(a.event.actor));
        let mut event = a.event.clone();
        // Only the appended item changed: no need to diff the whole array.
        event.changes =
            json!({ a.field.clone(): {"added": [a.item.clone()], "removed": [], "changed": {}} });
        out.audit.push(Arc::from(event.to_raw()));
        let op = Op {
            collection: a.collection.clone(),
            doc: Some(Arc::from(to_canonical_raw(&after))),
            id: a.id.clone(),
            op: OpKind::Put,
        };
        match staged {
            Some(i) => out.ops[i] = op,
            None => out.ops.push(op),
        }
    }
    Ok(out)
}
