//! Nested items: append, patch, remove and read one item of a record's nested arrays, two
//! levels deep (a workflow's executions, each with its logs), named by a [`NestedPath`].
//!
//! Each is logged as an item operation (entry format 2, `collection/ops.rs`), never as
//! the whole record, and audited from the item alone, with the changes a whole-record diff
//! gives. Concurrent item operations never lose each other: an append is deferred to the
//! commit position (`deferred`), so concurrent appends land together instead of re-running
//! each other; a patch or removal reads the record, so a concurrent change re-runs it.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::Txn;
use super::deferred::DeferredAppend;
use super::events::{item_changes, nested_diff};
use super::hooks::{Action, Change, ItemChange};
use crate::canonical::to_canonical_raw;
use crate::collection::definition::{Compiled, CompiledNested};
use crate::collection::document::{bad_input, check_item_size, merge_patch, validation};
use crate::collection::event::Source;
use crate::collection::keys::is_live;
use crate::collection::ops::{NestedPath, array_mut, item_at, item_mut};
use crate::collection::secret::mask_sealed;
use crate::error::{Error, Result};
use crate::log::{Op, OpKind};
use crate::names::{CollectionName, RecordId};

impl Txn {
    /// Appends an item to a record's nested array `field`; returns the item with its id.
    pub fn nested_append(
        &mut self,
        c: &CollectionName,
        id: &RecordId,
        field: &str,
        item: Value,
    ) -> Result<Value> {
        self.nested_append_at(c, id, &NestedPath::array(field), item)
    }

    /// Appends an item to the nested array at `path` (`["executions"]` or
    /// `["executions", "<id>", "logs"]`); returns the item with its id and timestamps.
    ///
    /// The append does not read the record's version: the committer applies it at the
    /// commit position (checking the record is live, the parent item exists and the id
    /// is new, and pruning by retention), so concurrent appends all land in one entry.
    pub fn nested_append_at(
        &mut self,
        c: &CollectionName,
        id: &RecordId,
        path: &NestedPath,
        item: Value,
    ) -> Result<Value> {
        let (def, _) = self.nested_array(c, path, false)?;
        let exists = match self.pending(c, id) {
            Some(staged) => staged.is_some_and(|v| is_live(&v)),
            None => self
                .snapshot
                .get(c, id)
                .is_some_and(|d| is_live(&d.own_value())),
        };
        if !exists {
            return Err(Error::NotFound {
                collection: c.to_string(),
                id: id.to_string(),
            });
        }
        let id_given = item.get("id").is_some_and(|id| !id.is_null());
        let at = format!("/{}", path.display());
        let mut item = self.fresh_items(&def, &path.fields(), &at, json!([item]))?[0].clone();
        let item_id = item.get("id").and_then(Value::as_str).unwrap_or_default();
        let item_path = [path.segments(), &[item_id.to_string()]].concat();
        self.seal_item(&def, id, &item_path, &mut item, None)?;
        check_item_size(
            c,
            &path.display(),
            own_len(&def, path, &item),
            self.ctx.max_record_bytes,
        )?;
        // Resolved at commit into an `append` op and an event, each carrying the item.
        self.note_deferred_bytes(2 * crate::log::json_len(&item) + 1024);
        // One instant for the append: the item's times, the event's and the record's
        // `updated_at` (the op's `at`), as a whole-document write of it would have them.
        let mut event = self.audit_event(c.as_str(), id.as_str(), Action::Update, Value::Null);
        if let Some(at) = item.get("updated_at").and_then(Value::as_str) {
            event.at = at.to_string();
        }
        let mut retention = self.audit_event(c.as_str(), id.as_str(), Action::Update, Value::Null);
        retention.at.clone_from(&event.at);
        retention.source = Source::Retention;
        retention.actor = RETENTION_ACTOR.into();
        self.deferred.push(DeferredAppend {
            collection: c.clone(),
            id: id.clone(),
            path: path.segments().to_vec(),
            item: item.clone(),
            id_given,
            event,
            retention,
        });
        Ok(item)
    }

    /// Merge-patches one item of the record's nested array `field`; returns it.
    pub fn nested_patch(
        &mut self,
        c: &CollectionName,
        id: &RecordId,
        field: &str,
        item_id: &str,
        patch: &Value,
    ) -> Result<Value> {
        self.nested_patch_at(c, id, &NestedPath::array(field).then(item_id), patch)
    }

    /// Merge-patches the item at `path` (its own fields: its nested arrays change through
    /// their own item operations); returns it.
    pub fn nested_patch_at(
        &mut self,
        c: &CollectionName,
        id: &RecordId,
        path: &NestedPath,
        patch: &Value,
    ) -> Result<Value> {
        let (def, array) = self.nested_array(c, path, true)?;
        let Value::Object(fields) = patch else {
            return Err(bad_input(&def, "", "a patch must be a JSON object"));
        };
        if let Some(sub) = array.subs.iter().find(|s| fields.contains_key(*s)) {
            return Err(bad_input(
                &def,
                &format!("/{sub}"),
                "nested arrays change through their item operations",
            ));
        }
        let before = self.live_record(c, id, None)?;
        let mut after = before.clone();
        let now = self.now();
        let item = item_mut(&mut after, path.segments()).ok_or_else(|| not_found(c, id, path))?;
        let old = own_fields(item, &array.subs);
        let item_id_value = item.get("id").cloned();
        merge_patch(item, patch);
        let map = item.as_object_mut().expect("items are objects");
        map.insert("id".into(), item_id_value.unwrap_or(Value::Null));
        map.insert("updated_at".into(), json!(now));
        self.seal_item(&def, id, path.segments(), item, Some(&old))?;
        let updated = item.clone();
        def.validate_item_at(&path.fields(), &updated)
            .map_err(|e| validation(&def, e))?;
        let own = own_fields(&updated, &array.subs);
        check_item_size(
            c,
            &path.display(),
            crate::log::json_len(&own),
            self.ctx.max_record_bytes,
        )?;
        let mut changes = nested_diff(&json!([old]), &json!([own.clone()]));
        mask_sealed(&mut changes);
        let (_, array_path) = path.segments().split_last().expect("an item path");
        let mut op = Op::item(
            def.name.clone(),
            id.clone(),
            OpKind::ItemSet,
            path.segments().to_vec(),
            Some(Arc::from(to_canonical_raw(&own))),
            None,
            &now,
            &self.meta.actor.clone(),
        );
        op.keep = (!array.subs.is_empty()).then(|| array.subs.clone());
        let item = ItemChange {
            path: path.segments().to_vec(),
            item: Some(own),
        };
        let changes = item_changes(array_path, changes);
        self.store_item(&def, id, before, after, op, changes, item)?;
        Ok(updated)
    }

    /// Removes one item of the record's nested array `field`.
    pub fn nested_remove(
        &mut self,
        c: &CollectionName,
        id: &RecordId,
        field: &str,
        item_id: &str,
    ) -> Result<()> {
        self.nested_remove_at(c, id, &NestedPath::array(field).then(item_id))
    }

    /// Removes the item at `path` (with its own nested arrays).
    pub fn nested_remove_at(
        &mut self,
        c: &CollectionName,
        id: &RecordId,
        path: &NestedPath,
    ) -> Result<()> {
        let (def, _) = self.nested_array(c, path, true)?;
        let before = self.live_record(c, id, None)?;
        let mut after = before.clone();
        let (item_id, array_path) = path.segments().split_last().expect("an item path");
        let items =
            array_mut(&mut after, array_path, false).ok_or_else(|| not_found(c, id, path))?;
        let len = items.len();
        items.retain(|i| i.get("id").and_then(Value::as_str) != Some(item_id.as_str()));
        if items.len() == len {
            return Err(not_found(c, id, path));
        }
        let now = self.now();
        let op = Op::item(
            def.name.clone(),
            id.clone(),
            OpKind::ItemDelete,
            path.segments().to_vec(),
            None,
            None,
            &now,
            &self.meta.actor.clone(),
        );
        let changes = json!({"added": [], "removed": [item_id], "changed": {}});
        let item = ItemChange {
            path: path.segments().to_vec(),
            item: None,
        };
        let changes = item_changes(array_path, changes);
        self.store_item(&def, id, before, after, op, changes, item)
    }

    /// The item at `path` of a live record (read: a concurrent change re-runs the caller).
    pub fn nested_item(
        &mut self,
        c: &CollectionName,
        id: &RecordId,
        path: &NestedPath,
    ) -> Result<Value> {
        self.nested_array(c, path, true)?;
        let record = self.live_record(c, id, None)?;
        item_at(&record, path.segments())
            .cloned()
            .ok_or_else(|| not_found(c, id, path))
    }

    /// Stages an item operation with its audit event (`changes`, built from the item) and
    /// the change for hooks: the record's own fields before and after, and the item.
    #[allow(clippy::too_many_arguments)]
    fn store_item(
        &mut self,
        def: &Compiled,
        id: &RecordId,
        before: Value,
        mut after: Value,
        op: Op,
        changes: Value,
        item: ItemChange,
    ) -> Result<()> {
        let map = after.as_object_mut().expect("records are objects");
        map.insert("updated_at".into(), json!(op.at));
        map.insert("updated_by".into(), json!(op.by));
        let doc = Arc::from(to_canonical_raw(&after));
        self.note_staged_keys(&def.name, id, &after);
        self.stage_item(&def.name, id, doc, op);
        let event = self.audit_event(def.name.as_str(), id.as_str(), Action::Update, changes);
        self.audit_about(&event, Some((def.name.clone(), id.clone())));
        let arrays: Vec<String> = def.def.nested.keys().cloned().collect();
        self.changes.push(Change {
            collection: def.name.clone(),
            id: id.clone(),
            action: Action::Update,
            before: Some(Arc::new(own_fields(&before, &arrays))),
            after: Some(Arc::new(own_fields(&after, &arrays))),
            source: self.source(),
            item: Some(item),
        });
        Ok(())
    }

    /// The definition and the array `path` names (its item, with `item`), or not found.
    fn nested_array(
        &self,
        c: &CollectionName,
        path: &NestedPath,
        item: bool,
    ) -> Result<(Arc<Compiled>, CompiledNested)> {
        let def = self.definition(c)?;
        let array = def.nested_at(&path.fields()).cloned();
        match array {
            Some(array) if path.is_item() == item => Ok((def, array)),
            _ => Err(Error::NotFound {
                collection: c.to_string(),
                id: format!("(nested {})", path.display()),
            }),
        }
    }

    /// Retention on the items of a record being created (the array named by `fields`,
    /// and their own arrays): the oldest past the bounds are left out of the record, so a
    /// record is never stored past them. Its create event lists what it holds.
    pub(super) fn retain(&self, def: &Compiled, fields: &[String], items: &mut Value) {
        let (Some(array), Some(list)) = (def.nested_at(fields), items.as_array_mut()) else {
            return;
        };
        let prune = array.retention_count(list, self.ctx.clock.now());
        list.drain(..prune);
        for sub in &array.subs {
            let chain: Vec<String> = fields.iter().cloned().chain([sub.clone()]).collect();
            for item in list.iter_mut() {
                if let Some(sub_items) = item.get_mut(sub) {
                    self.retain(def, &chain, sub_items);
                }
            }
        }
    }

    /// Gives items (of the array named by `fields`, at JSON pointer `at`) and their own
    /// nested items ids and timestamps, and validates them.
    pub(super) fn fresh_items(
        &self,
        def: &Compiled,
        fields: &[String],
        at: &str,
        items: Value,
    ) -> Result<Value> {
        let Value::Array(items) = items else {
            return Err(bad_input(def, at, "must be an array"));
        };
        let subs = def
            .nested_at(fields)
            .map(|a| a.subs.clone())
            .unwrap_or_default();
        let now = json!(self.now());
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let Value::Object(mut map) = item else {
                return Err(bad_input(
                    def,
                    &format!("{at}/{i}"),
                    "items must be objects",
                ));
            };
            let id = match map.remove("id") {
                Some(Value::String(s)) if RecordId::parse(&s).is_ok() => s,
                None | Some(Value::Null) => self.ctx.ids.new_id().to_string(),
                Some(_) => {
                    return Err(bad_input(
                        def,
                        &format!("{at}/{i}/id"),
                        "item ids are 1-128 characters A-Z a-z 0-9 - _ .",
                    ));
                }
            };
            map.insert("id".into(), json!(id));
            map.entry("created_at").or_insert(now.clone());
            map.insert("updated_at".into(), now.clone());
            for sub in &subs {
                if let Some(sub_items) = map.remove(sub).filter(|v| !v.is_null()) {
                    let chain: Vec<String> = fields.iter().cloned().chain([sub.clone()]).collect();
                    let fresh =
                        self.fresh_items(def, &chain, &format!("{at}/{i}/{sub}"), sub_items)?;
                    map.insert(sub.clone(), fresh);
                }
            }
            let item = Value::Object(map);
            def.validate_item_at(fields, &item).map_err(|errors| {
                validation(
                    def,
                    errors
                        .into_iter()
                        .map(|mut e| {
                            e.path = format!("{at}/{i}{}", e.path);
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

/// The actor of retention's changes.
pub(super) const RETENTION_ACTOR: &str = "system";

/// An item's own fields: without its nested arrays `subs`.
fn own_fields(item: &Value, subs: &[String]) -> Value {
    match item {
        Value::Object(map) if !subs.is_empty() => Value::Object(
            map.iter()
                .filter(|(k, _)| !subs.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

/// Bytes of an item's own fields (what `max_record_bytes` limits for an item).
fn own_len(def: &Compiled, path: &NestedPath, item: &Value) -> usize {
    let subs = def
        .nested_at(&path.fields())
        .map(|a| a.subs.clone())
        .unwrap_or_default();
    crate::log::json_len(&own_fields(item, &subs))
}

fn not_found(c: &CollectionName, id: &RecordId, path: &NestedPath) -> Error {
    let (item_id, array) = path.segments().split_last().expect("a path");
    Error::NotFound {
        collection: format!("{c}/{id}/{}", array.join("/")),
        id: item_id.clone(),
    }
}
