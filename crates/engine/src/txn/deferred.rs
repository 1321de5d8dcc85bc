//! Deferred appends: nested items whose final array is only known at the commit position.
//! The committer resolves them against the state the entry applies to, where retention
//! (`max_items`, `max_age`) prunes too.

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::collection::document::bad_input;
use crate::collection::event::AuditEvent;
use crate::collection::keys::is_live;
use crate::collection::secret::mask_sealed;
use crate::error::{Error, Result};
use crate::names::{CollectionName, RecordId};
use crate::txn::events::item_changes;

/// A nested append waiting for the commit position (see [`Txn::nested_append_at`]).
#[derive(Debug, Clone)]
pub struct DeferredAppend {
    pub collection: CollectionName,
    pub id: RecordId,
    /// The array's path (`["executions"]`, `["executions", "<id>", "logs"]`).
    pub path: Vec<String>,
    pub item: Value,
    /// Whether the caller chose the item's id (a generated one is new by construction:
    /// the array is not searched for it, whatever its length).
    pub id_given: bool,
    /// The append's audit event, built when the append was asked for; its `changes`
    /// (the added item) are filled in at commit.
    pub event: AuditEvent,
    /// The event of a retention prune this append may cause (source `retention`).
    pub retention: AuditEvent,
}

/// Resolves a transaction's deferred appends against the records as they are in `state`
/// (after the transaction's own writes): each becomes an `append` op carrying only the
/// item (entry format 2), with its audit event, once the record is known to be live, the
/// parent item present and the item's id new. When the append takes the array past its
/// retention bounds, a `trim` op and a `retention` event follow in the same transaction.
/// Returns the transaction as it goes into the log.
pub(crate) fn resolve_appends(
    state: &crate::state::State,
    txn: &crate::log::TxnRecord,
    appends: &[DeferredAppend],
) -> Result<crate::log::TxnRecord> {
    use crate::canonical::to_canonical_raw;
    use crate::collection::ops::array_mut;
    use crate::log::{Op, OpKind};
    use crate::state::Doc;
    let mut out = txn.clone();
    let version = state.seq().next();
    // The records the appends go to, as this transaction leaves them so far (their
    // nested arrays kept apart: an append touches its item, not the record's others).
    let mut records: HashMap<(CollectionName, RecordId), Option<Doc>> = HashMap::new();
    for a in appends {
        let def =
            state
                .definition(&a.collection)
                .cloned()
                .ok_or_else(|| Error::UnknownCollection {
                    collection: a.collection.to_string(),
                })?;
        let shape = state.shape(&a.collection);
        let key = (a.collection.clone(), a.id.clone());
        if !records.contains_key(&key) {
            let mut current = state.get(&a.collection, &a.id).cloned();
            for op in out
                .ops
                .iter()
                .filter(|o| o.collection == a.collection && o.id == a.id)
            {
                current = Doc::apply(current.as_ref(), op, version, shape)
                    .map_err(|e| Error::invalid("transaction", e))?;
            }
            records.insert(key.clone(), current);
        }
        let not_found = || Error::NotFound {
            collection: a.collection.to_string(),
            id: a.id.to_string(),
        };
        let slot = records.get_mut(&key).ok_or_else(not_found)?;
        let record = slot
            .as_ref()
            .filter(|r| is_live(&r.own_value()))
            .ok_or_else(not_found)?;
        let parent_missing = || {
            let (item_id, array) = a.path[..a.path.len() - 1]
                .split_last()
                .expect("a sub-array path");
            Error::NotFound {
                collection: format!("{}/{}/{}", a.collection, a.id, array.join("/")),
                id: item_id.clone(),
            }
        };
        let new_id = a.item.get("id").and_then(Value::as_str).unwrap_or_default();
        let duplicate = match record.items(&a.path) {
            Some(_) if !a.id_given => false,
            Some(items) => items.iter().any(|i| i.id() == new_id),
            // Not kept apart (a first append to this array, or an old document): the
            // whole value, once.
            None => {
                let mut whole = record.value();
                let items = array_mut(&mut whole, &a.path, true).ok_or_else(parent_missing)?;
                items.iter().any(|i| i.get("id") == a.item.get("id"))
            }
        };
        if duplicate {
            return Err(bad_input(
                &def,
                &format!("/{}/id", a.path.join("/")),
                "an item with this id already exists",
            ));
        }
        let mut event = a.event.clone();
        // Only the appended item changed: no need to diff the whole array.
        let mut added = json!({"added": [a.item.clone()], "removed": [], "changed": {}});
        mask_sealed(&mut added);
        event.changes = item_changes(&a.path, added);
        let append = Op::item(
            a.collection.clone(),
            a.id.clone(),
            OpKind::Append,
            a.path.clone(),
            Some(Arc::from(to_canonical_raw(&a.item))),
            None,
            &event.at,
            &event.actor,
        );
        let record = Doc::apply(Some(record), &append, version, shape)
            .map_err(|_| parent_missing())?
            .ok_or_else(not_found)?;
        out.audit.push(Arc::from(event.to_raw()));
        out.ops.push(append);
        // Retention, at the append's time: the oldest items go in the same commit.
        let fields: Vec<String> = a.path.iter().step_by(2).cloned().collect();
        let now = chrono::DateTime::parse_from_rfc3339(&a.retention.at)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| Error::invalid("transaction", e.to_string()))?;
        let (prune, removed) = match (def.nested_at(&fields), record.items(&a.path)) {
            (None, _) => (0, Vec::new()),
            (Some(array), Some(items)) => {
                let created = items.iter().map(|i| i.created_at());
                let prune = array.retention_count_of(items.len(), created, now);
                let removed = items.iter().take(prune).map(|i| json!(i.id())).collect();
                (prune, removed)
            }
            (Some(array), None) => {
                let mut whole = record.value();
                let items = array_mut(&mut whole, &a.path, false).ok_or_else(parent_missing)?;
                let prune = array.retention_count(items, now);
                let removed = items[..prune]
                    .iter()
                    .map(|i| i.get("id").cloned().unwrap_or(Value::Null))
                    .collect();
                (prune, removed)
            }
        };
        let mut record = record;
        if prune > 0 {
            let mut event = a.retention.clone();
            let change = json!({"added": [], "removed": removed, "changed": {}});
            event.changes = item_changes(&a.path, change);
            let trim = Op::item(
                a.collection.clone(),
                a.id.clone(),
                OpKind::Trim,
                a.path.clone(),
                None,
                Some(prune as u64),
                &event.at,
                &event.actor,
            );
            record = Doc::apply(Some(&record), &trim, version, shape)
                .map_err(|e| Error::invalid("transaction", e))?
                .ok_or_else(not_found)?;
            out.audit.push(Arc::from(event.to_raw()));
            out.ops.push(trim);
        }
        *slot = Some(record);
    }
    Ok(out)
}
