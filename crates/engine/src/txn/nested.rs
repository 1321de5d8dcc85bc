//! Nested items: append, patch and remove one item of a record's nested array.
//!
//! Concurrent item operations on one nested array never lose each other: an append that
//! loses the race re-runs on the newer array (the transaction's read of the record is
//! stale), so it is re-applied, not overwritten. An append may also be deferred to the
//! commit position (`deferred`).

use std::sync::Arc;

use serde_json::{Value, json};

use super::Txn;
use super::deferred::DeferredAppend;
use super::hooks::{Action, Change};
use crate::canonical::to_canonical_raw;
use crate::collection::definition::Compiled;
use crate::collection::document::{
    bad_input, check_item_size, find_item, item_not_found, merge_patch, validation,
};
use crate::collection::keys::is_live;
use crate::error::{Error, Result};
use crate::log::{Op, OpKind};
use crate::names::{CollectionName, RecordId};
use serde_json::value::RawValue;

impl Txn {
    /// Appends an item to a nested array; returns the item with its id.
    ///
    /// The append does not read the record's version: it is applied by the committer to
    /// the record as it is at the commit position (with its audit event), so concurrent
    /// appends to one array all land in the same entry instead of re-running each other.
    pub fn nested_append(
        &mut self,
        c: &CollectionName,
        id: &RecordId,
        field: &str,
        item: Value,
    ) -> Result<Value> {
        let def = self.nested_def(c, field)?;
        let exists = match self.pending(c, id) {
            Some(staged) => staged.is_some_and(|v| is_live(&v)),
            None => self
                .snapshot
                .get(c, id)
                .is_some_and(|d| is_live(&d.value())),
        };
        if !exists {
            return Err(Error::NotFound {
                collection: c.to_string(),
                id: id.to_string(),
            });
        }
        let item = self.fresh_items(&def, field, json!([item]))?[0].clone();
        let item_len = crate::log::json_len(&item);
        check_item_size(c, field, item_len, self.ctx.max_record_bytes)?;
        // Resolved at commit into an `append` op and an event, each carrying the item.
        self.note_deferred_bytes(2 * item_len + 1024);
        self.deferred.push(DeferredAppend {
            collection: c.clone(),
            id: id.clone(),
            field: field.to_string(),
            item: item.clone(),
            event: self.audit_event(c.as_str(), id.as_str(), Action::Update, Value::Null),
        });
        Ok(item)
    }

    /// Merge-patches one nested item; returns it.
    pub fn nested_patch(
        &mut self,
        c: &CollectionName,
        id: &RecordId,
        field: &str,
        item_id: &str,
        patch: &Value,
    ) -> Result<Value> {
        let def = self.nested_def(c, field)?;
        if !patch.is_object() {
            return Err(bad_input(&def, "", "a patch must be a JSON object"));
        }
        let before = self.live_record(c, id, None)?;
        let mut after = before.clone();
        let now = self.now();
        let item = find_item(&mut after, field, item_id)
            .ok_or_else(|| item_not_found(c, id, field, item_id))?;
        let item_id_value = item.get("id").cloned();
        merge_patch(item, patch);
        let map = item.as_object_mut().expect("items are objects");
        map.insert("id".into(), item_id_value.unwrap_or(Value::Null));
        map.insert("updated_at".into(), json!(now));
        let updated = item.clone();
        def.validate_item(field, &updated)
            .map_err(|e| validation(&def, e))?;
        check_item_size(
            c,
            field,
            crate::log::json_len(&updated),
            self.ctx.max_record_bytes,
        )?;
        let path = vec![field.to_string(), item_id.to_string()];
        let raw = Arc::from(to_canonical_raw(&updated));
        self.store_item(
            &def,
            id,
            before,
            after,
            OpKind::ItemSet,
            path,
            Some(raw),
            &now,
        )?;
        Ok(updated)
    }

    /// Removes one nested item.
    pub fn nested_remove(
        &mut self,
        c: &CollectionName,
        id: &RecordId,
        field: &str,
        item_id: &str,
    ) -> Result<()> {
        let def = self.nested_def(c, field)?;
        let before = self.live_record(c, id, None)?;
        let mut after = before.clone();
        let items = after
            .get_mut(field)
            .and_then(Value::as_array_mut)
            .ok_or_else(|| item_not_found(c, id, field, item_id))?;
        let len = items.len();
        items.retain(|i| i.get("id").and_then(Value::as_str) != Some(item_id));
        if items.len() == len {
            return Err(item_not_found(c, id, field, item_id));
        }
        let now = self.now();
        let path = vec![field.to_string(), item_id.to_string()];
        self.store_item(
            &def,
            id,
            before,
            after,
            OpKind::ItemDelete,
            path,
            None,
            &now,
        )?;
        Ok(())
    }

    /// Stages an item operation (logged as itself, not as the whole record; see
    /// [`crate::collection::ops`]) with the audit event and change of the record it
    /// changes from `before` to `after`.
    #[allow(clippy::too_many_arguments)]
    fn store_item(
        &mut self,
        def: &Compiled,
        id: &RecordId,
        before: Value,
        mut after: Value,
        kind: OpKind,
        path: Vec<String>,
        item: Option<Arc<RawValue>>,
        now: &str,
    ) -> Result<()> {
        let actor = self.meta.actor.clone();
        let map = after.as_object_mut().expect("records are objects");
        map.insert("updated_at".into(), json!(now));
        map.insert("updated_by".into(), json!(actor));
        let op = Op::item(
            def.name.clone(),
            id.clone(),
            kind,
            path,
            item,
            None,
            now,
            &actor,
        );
        let doc = Arc::from(to_canonical_raw(&after));
        self.stage_item(&def.name, id, doc, op);
        self.event(def, id, Action::Update, Some(&before), Some(&after));
        self.changes.push(Change {
            collection: def.name.clone(),
            id: id.clone(),
            action: Action::Update,
            before: Some(before),
            after: Some(after),
            source: self.source(),
        });
        Ok(())
    }

    pub(super) fn nested_def(&self, c: &CollectionName, field: &str) -> Result<Arc<Compiled>> {
        let def = self.definition(c)?;
        if !def.is_nested(field) {
            return Err(Error::NotFound {
                collection: c.to_string(),
                id: format!("(nested array {field})"),
            });
        }
        Ok(def)
    }

    /// Gives items ids and timestamps and validates them.
    pub(super) fn fresh_items(&self, def: &Compiled, field: &str, items: Value) -> Result<Value> {
        let Value::Array(items) = items else {
            return Err(bad_input(def, &format!("/{field}"), "must be an array"));
        };
        let now = json!(self.now());
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let Value::Object(mut map) = item else {
                return Err(bad_input(
                    def,
                    &format!("/{field}/{i}"),
                    "items must be objects",
                ));
            };
            let id = match map.remove("id") {
                Some(Value::String(s)) if RecordId::parse(&s).is_ok() => s,
                None | Some(Value::Null) => self.ctx.ids.new_id().to_string(),
                Some(_) => {
                    return Err(bad_input(
                        def,
                        &format!("/{field}/{i}/id"),
                        "item ids are 1-128 characters A-Z a-z 0-9 - _ .",
                    ));
                }
            };
            map.insert("id".into(), json!(id));
            map.entry("created_at").or_insert(now.clone());
            map.insert("updated_at".into(), now.clone());
            let item = Value::Object(map);
            def.validate_item(field, &item).map_err(|errors| {
                validation(
                    def,
                    errors
                        .into_iter()
                        .map(|mut e| {
                            e.path = format!("/{field}/{i}{}", e.path);
                            e
                        })
                        .collect(),
                )
            })?;
            out.push(item);
        }
        Ok(Value::Array(out))
    }
}
