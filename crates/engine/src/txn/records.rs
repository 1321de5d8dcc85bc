//! Record operations: what the API, imports, automations and migrations do to records.
//!
//! Each operation runs inside a [`Txn`], so it reads a snapshot and is validated again at
//! commit. It sets the record metadata (`id` as UUIDv7, `created_*`, `updated_*`,
//! `deleted_*`) from the injected clock and id source, encrypts `secret` fields, and adds
//! one audit event with a field-level diff to the same transaction (`events`). Deletes
//! follow `references` (`cascade`); nested arrays have their own operations (`nested`).

use std::sync::Arc;

use chrono::SecondsFormat;
use serde_json::{Map, Value, json};

use super::Txn;
use super::hooks::{Action, Change};
use crate::collection::definition::{Compiled, METADATA_FIELDS};
use crate::collection::document::{bad_input, merge_patch, strip_metadata};
use crate::collection::event::Source;
use crate::collection::keys::is_live;
use crate::error::{Error, Result, Violation, ViolationCode};
use crate::names::{CollectionName, RecordId, Seq};

impl Txn {
    /// The compiled definition of a collection, or `unknown collection`.
    pub fn definition(&self, c: &CollectionName) -> Result<Arc<Compiled>> {
        self.snapshot
            .definition(c)
            .cloned()
            .ok_or_else(|| Error::UnknownCollection {
                collection: c.to_string(),
            })
    }

    /// The clock's time as records and events show it (RFC 3339, milliseconds). Written
    /// once per millisecond: a record operation asks twice (metadata, event), an import
    /// thousands of times within a few milliseconds.
    pub(super) fn now(&self) -> String {
        let now = self.ctx.clock.now();
        let millis = now.timestamp_millis();
        let mut written = self.now_written.borrow_mut();
        match &*written {
            Some((at, text)) if *at == millis => text.clone(),
            _ => {
                let text = now.to_rfc3339_opts(SecondsFormat::Millis, true);
                *written = Some((millis, text.clone()));
                text
            }
        }
    }

    pub(super) fn source(&self) -> Source {
        self.event_source
            .clone()
            .unwrap_or_else(|| self.meta.source.clone())
    }

    /// Runs `f` with audit events and changes attributed to `source` (hooks use
    /// `automation`, imports `import:<id>`).
    pub fn with_source<T>(
        &mut self,
        source: impl Into<Source>,
        f: impl FnOnce(&mut Txn) -> Result<T>,
    ) -> Result<T> {
        let saved = self.event_source.replace(source.into());
        let out = f(self);
        self.event_source = saved;
        out
    }

    /// Reads a record (stored form, with metadata), checking `If-Match` when given.
    /// Soft-deleted records are included; callers decide.
    pub fn record(
        &mut self,
        c: &CollectionName,
        id: &RecordId,
        expect: Option<Seq>,
    ) -> Result<Value> {
        if let Some(expected) = expect {
            self.expect_version(c, id, expected)?;
        }
        self.get_value(c, id).ok_or_else(|| Error::NotFound {
            collection: c.to_string(),
            id: id.to_string(),
        })
    }

    /// A record's own fields (its nested arrays, kept apart in the state, left out) as
    /// of this transaction, noting the read like [`Txn::record`]: what access rules judge,
    /// at a cost that does not grow with the record's items. A record this transaction
    /// wrote is read whole.
    pub fn record_own(&mut self, c: &CollectionName, id: &RecordId) -> Result<Value> {
        let not_found = || Error::NotFound {
            collection: c.to_string(),
            id: id.to_string(),
        };
        if let Some(staged) = self.pending(c, id) {
            return staged.ok_or_else(not_found);
        }
        let doc = self.snapshot.get(c, id).cloned();
        let version = doc.as_ref().map_or(Seq::ZERO, |d| d.version);
        self.note_read(c, Some(id), version);
        doc.map(|d| d.own_value()).ok_or_else(not_found)
    }

    /// A live record, or not found.
    pub(super) fn live_record(
        &mut self,
        c: &CollectionName,
        id: &RecordId,
        expect: Option<Seq>,
    ) -> Result<Value> {
        let rec = self.record(c, id, expect)?;
        if !is_live(&rec) {
            return Err(Error::NotFound {
                collection: c.to_string(),
                id: id.to_string(),
            });
        }
        Ok(rec)
    }

    /// Creates a record and returns its id with the stored record. `input` may carry an
    /// `id` (imports and migrations keep theirs); other metadata fields are ignored.
    pub fn create(&mut self, c: &CollectionName, input: Value) -> Result<(RecordId, Value)> {
        let (id, record) = self.create_shared(c, input)?;
        Ok((id, Arc::unwrap_or_clone(record)))
    }

    /// [`Txn::create`] for a caller that needs only the new record's id (an import, a
    /// hook): the stored record is not copied out.
    pub fn insert(&mut self, c: &CollectionName, input: Value) -> Result<RecordId> {
        self.create_shared(c, input).map(|(id, _)| id)
    }

    fn create_shared(
        &mut self,
        c: &CollectionName,
        input: Value,
    ) -> Result<(RecordId, Arc<Value>)> {
        let def = self.definition(c)?;
        let Value::Object(mut fields) = input else {
            return Err(bad_input(&def, "", "a record must be a JSON object"));
        };
        let (id, minted) = match fields.remove("id") {
            None | Some(Value::Null) => (RecordId::from_uuid(self.ctx.ids.new_id()), true),
            Some(Value::String(s)) => {
                let id = RecordId::parse(&s).map_err(|e| bad_input(&def, "/id", e.to_string()))?;
                (id, false)
            }
            Some(_) => return Err(bad_input(&def, "/id", "must be a string")),
        };
        // A given id is read (a concurrent create of it makes this attempt re-run). A
        // minted one is new by construction (the id source never repeats one): looking
        // is only a safeguard, and noting it as a read would put a read per created
        // record in the log for the committer to check.
        let taken = if minted {
            self.exists_unread(c, &id)
        } else {
            self.get(c, &id).is_some()
        };
        if taken {
            return Err(Error::from(Violation {
                code: ViolationCode::UniqueViolation,
                collection: c.to_string(),
                constraint: "id".into(),
                fields: vec!["id".into()],
                conflicting: Some(id.to_string()),
                message: format!("a record with id {id} already exists"),
                errors: Vec::new(),
            }));
        }
        strip_metadata(&mut fields);
        def.fill_defaults(&mut fields);
        let now = json!(self.now());
        let actor = json!(self.meta.actor);
        // The nested arrays the input has, in field order (both maps are sorted), without
        // copying the names of all its fields.
        let nested: Vec<String> = def
            .def
            .nested
            .keys()
            .filter(|f| fields.contains_key(f.as_str()))
            .cloned()
            .collect();
        for field in nested {
            let items = fields.remove(&field).unwrap_or(Value::Null);
            let chain = [field.clone()];
            let mut items = self.fresh_items(&def, &chain, &format!("/{field}"), items)?;
            self.retain(&def, &chain, &mut items);
            fields.insert(field, items);
        }
        fields.insert("id".into(), json!(id.as_str()));
        fields.insert("created_at".into(), now.clone());
        fields.insert("created_by".into(), actor.clone());
        fields.insert("updated_at".into(), now);
        fields.insert("updated_by".into(), actor);
        fields.insert("deleted_at".into(), Value::Null);
        fields.insert("deleted_by".into(), Value::Null);
        let record = self.store(&def, &id, None, Value::Object(fields), Action::Create)?;
        Ok((id, record))
    }

    /// JSON merge patch (RFC 7396) of a live record's own fields.
    pub fn update(
        &mut self,
        c: &CollectionName,
        id: &RecordId,
        patch: &Value,
        expect: Option<Seq>,
    ) -> Result<Value> {
        let def = self.definition(c)?;
        let Value::Object(patch) = patch else {
            return Err(bad_input(&def, "", "a patch must be a JSON object"));
        };
        let before = self.live_record(c, id, expect)?;
        let mut after = before.clone();
        let map = after.as_object_mut().expect("records are objects");
        for (k, v) in patch {
            if METADATA_FIELDS.contains(&k.as_str()) {
                continue;
            }
            if def.is_nested(k) {
                return Err(bad_input(
                    &def,
                    &format!("/{k}"),
                    "nested arrays change through their item operations",
                ));
            }
            match v {
                Value::Null => {
                    map.remove(k);
                }
                Value::Object(_) if map.get(k).is_some_and(Value::is_object) => {
                    merge_patch(map.get_mut(k).expect("checked"), v);
                }
                _ => {
                    map.insert(k.clone(), v.clone());
                }
            }
        }
        self.touch(&mut after);
        self.store(&def, id, Some(before), after, Action::Update)
            .map(Arc::unwrap_or_clone)
    }

    /// Replaces a live record's own fields (nested arrays and metadata are kept).
    pub fn replace(
        &mut self,
        c: &CollectionName,
        id: &RecordId,
        body: &Value,
        expect: Option<Seq>,
    ) -> Result<Value> {
        let def = self.definition(c)?;
        let Value::Object(body) = body else {
            return Err(bad_input(&def, "", "a record must be a JSON object"));
        };
        let before = self.live_record(c, id, expect)?;
        let old = before.as_object().expect("records are objects");
        let mut after = Map::new();
        for (k, v) in old {
            if METADATA_FIELDS.contains(&k.as_str()) || def.is_nested(k) {
                after.insert(k.clone(), v.clone());
            }
        }
        for (k, v) in body {
            if METADATA_FIELDS.contains(&k.as_str()) || def.is_nested(k) {
                continue;
            }
            after.insert(k.clone(), v.clone());
        }
        let mut after = Value::Object(after);
        self.touch(&mut after);
        self.store(&def, id, Some(before), after, Action::Update)
            .map(Arc::unwrap_or_clone)
    }

    /// Deletes a live record: soft where the collection has soft delete, else for good.
    /// Referrers are handled first, as their `on_delete` says.
    pub fn delete(
        &mut self,
        c: &CollectionName,
        id: &RecordId,
        expect: Option<Seq>,
    ) -> Result<Option<Value>> {
        let def = self.definition(c)?;
        let before = self.live_record(c, id, expect)?;
        self.follow_references(c, id, !def.def.soft_delete)?;
        if !def.def.soft_delete {
            self.remove(&def, id, before, Action::Delete)?;
            return Ok(None);
        }
        let mut after = before.clone();
        let now = json!(self.now());
        let map = after.as_object_mut().expect("records are objects");
        map.insert("deleted_at".into(), now);
        map.insert("deleted_by".into(), json!(self.meta.actor));
        self.touch(&mut after);
        self.store(&def, id, Some(before), after, Action::Delete)
            .map(|after| Some(Arc::unwrap_or_clone(after)))
    }

    /// Undoes a soft delete. Fails with a conflict if a live record took its unique key.
    pub fn restore(
        &mut self,
        c: &CollectionName,
        id: &RecordId,
        expect: Option<Seq>,
    ) -> Result<Value> {
        let def = self.definition(c)?;
        let before = self.record(c, id, expect)?;
        if is_live(&before) {
            return Err(bad_input(&def, "/deleted_at", "the record is not deleted"));
        }
        let mut after = before.clone();
        let map = after.as_object_mut().expect("records are objects");
        map.insert("deleted_at".into(), Value::Null);
        map.insert("deleted_by".into(), Value::Null);
        self.touch(&mut after);
        self.store(&def, id, Some(before), after, Action::Restore)
            .map(Arc::unwrap_or_clone)
    }

    /// Removes a record for good, deleted or not (what `?purge=true` does).
    pub fn purge(&mut self, c: &CollectionName, id: &RecordId, expect: Option<Seq>) -> Result<()> {
        let def = self.definition(c)?;
        let before = self.record(c, id, expect)?;
        self.follow_references(c, id, true)?;
        self.remove(&def, id, before, Action::Purge)
    }

    /// Sets `updated_at` and `updated_by` from the clock and the actor.
    pub(super) fn touch(&self, record: &mut Value) {
        let map = record.as_object_mut().expect("records are objects");
        map.insert("updated_at".into(), json!(self.now()));
        map.insert("updated_by".into(), json!(self.meta.actor));
    }

    /// Seals secrets, stages the write, records the audit event and the change.
    pub(super) fn store(
        &mut self,
        def: &Arc<Compiled>,
        id: &RecordId,
        before: Option<Value>,
        mut after: Value,
        action: Action,
    ) -> Result<Arc<Value>> {
        // A change that leaves a record's nested arrays as they were (an update, a soft
        // delete; not a revert to an older document) logs its own fields only (`set`).
        let keep: Vec<String> = def.def.nested.keys().cloned().collect();
        let arrays_kept = before
            .as_ref()
            .is_some_and(|b| keep.iter().all(|f| b.get(f) == after.get(f)));
        self.seal_record(def, id, &mut after, before.as_ref(), !arrays_kept)?;
        // One copy of the new document, shared by the staged write (so the committer
        // need not parse it), the hooks' change and the caller.
        let after = Arc::new(after);
        if arrays_kept && !keep.is_empty() {
            self.put_keeping(&def.name, id, &after, keep)?;
        } else {
            self.put_shared(def, id, after.clone())?;
        }
        self.event(def, id, action, before.as_ref(), Some(&*after));
        self.changes.push(Change {
            collection: def.name.clone(),
            id: id.clone(),
            action,
            before: before.map(Arc::new),
            after: Some(after.clone()),
            source: self.source(),
            item: None,
        });
        Ok(after)
    }

    pub(super) fn remove(
        &mut self,
        def: &Compiled,
        id: &RecordId,
        before: Value,
        action: Action,
    ) -> Result<()> {
        self.delete_raw(&def.name, id);
        self.event(def, id, action, Some(&before), None);
        self.changes.push(Change {
            collection: def.name.clone(),
            id: id.clone(),
            action,
            before: Some(Arc::new(before)),
            after: None,
            source: self.source(),
            item: None,
        });
        Ok(())
    }
}
