//! Deferred appends: nested items whose final array is only known at the commit position.
//! The committer resolves them against the state the entry applies to.

use std::collections::HashMap;
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

/// Resolves a transaction's deferred appends against the records as they are in `state`
/// (after the transaction's own writes): each becomes an `append` op carrying only the
/// item (entry format 2), with its audit event, once the record is known to be live and
/// the item's id new. Returns the transaction as it goes into the log.
pub(crate) fn resolve_appends(
    state: &crate::state::State,
    txn: &crate::log::TxnRecord,
    appends: &[DeferredAppend],
) -> Result<crate::log::TxnRecord> {
    use crate::canonical::to_canonical_raw;
    use crate::collection::ops::{apply_op, array_mut};
    use crate::log::{Op, OpKind};
    let mut out = txn.clone();
    // The records the appends go to, as this transaction leaves them so far.
    let mut records: HashMap<(CollectionName, RecordId), Option<Value>> = HashMap::new();
    for a in appends {
        let def =
            state
                .definition(&a.collection)
                .cloned()
                .ok_or_else(|| Error::UnknownCollection {
                    collection: a.collection.to_string(),
                })?;
        let key = (a.collection.clone(), a.id.clone());
        if !records.contains_key(&key) {
            let mut current = state.get(&a.collection, &a.id).map(|d| d.value());
            for op in out
                .ops
                .iter()
                .filter(|o| o.collection == a.collection && o.id == a.id)
            {
                current = apply_op(current, op).map_err(|e| Error::invalid("transaction", e))?;
            }
            records.insert(key.clone(), current);
        }
        let record = records
            .get_mut(&key)
            .and_then(Option::as_mut)
            .filter(|r| is_live(r))
            .ok_or_else(|| Error::NotFound {
                collection: a.collection.to_string(),
                id: a.id.to_string(),
            })?;
        let path = vec![a.field.clone()];
        let items = array_mut(record, &path, true).expect("a record is an object");
        if items.iter().any(|i| i.get("id") == a.item.get("id")) {
            return Err(bad_input(
                &def,
                &format!("/{}/id", a.field),
                "an item with this id already exists",
            ));
        }
        items.push(a.item.clone());
        let mut event = a.event.clone();
        // Only the appended item changed: no need to diff the whole array.
        event.changes =
            json!({ a.field.clone(): {"added": [a.item.clone()], "removed": [], "changed": {}} });
        out.audit.push(Arc::from(event.to_raw()));
        out.ops.push(Op::item(
            a.collection.clone(),
            a.id.clone(),
            OpKind::Append,
            path,
            Some(Arc::from(to_canonical_raw(&a.item))),
            None,
            &event.at,
            &event.actor,
        ));
    }
    Ok(out)
}
