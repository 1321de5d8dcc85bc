//! Record operations: what the API, imports, automations and migrations do to records.
//!
//! Each operation runs inside a [`Txn`], so it reads a snapshot and is validated again at
//! commit. It sets the record metadata (`id` as UUIDv7, `created_*`, `updated_*`,
//! `deleted_*`) from the injected clock and id source, encrypts `secret` fields, and adds
//! one audit event with a field-level diff to the same transaction; nested arrays diff by
//! item id. Deletes follow `references` (`restrict`, `cascade`, `set_null`); cascaded
//! changes carry the source `cascade`. Hooks ([`Hook`]) see every change and may add
//! writes to the same transaction.
//!
//! Concurrent item operations on one nested array never lose each other: an append that
//! loses the race re-runs on the newer array (the transaction's read of the record is
//! stale), so it is re-applied, not overwritten.

use std::sync::Arc;

use chrono::SecondsFormat;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::definition::{Compiled, METADATA_FIELDS, OnDelete};
use super::keys::is_live;
use super::secret::SecretBox;
use crate::error::{Error, Result, Violation, ViolationCode};
use crate::names::{CollectionName, RecordId, Seq};
use crate::txn::Txn;

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Delete,
    Restore,
    Purge,
}

/// What [`Txn::revert_record`] did to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reverted {
    /// It was already as the target says.
    Unchanged,
    /// It had not existed: soft-deleted.
    Deleted,
    /// It had not existed, in a collection without soft delete: purged.
    Purged,
    /// It was deleted, and is live again.
    Restored,
    /// It was purged, and exists again.
    Recreated,
    /// Its fields are back.
    Updated,
}

/// One record change inside a transaction (stored forms: secrets encrypted).
#[derive(Debug, Clone)]
pub struct Change {
    pub collection: CollectionName,
    pub id: RecordId,
    pub action: Action,
    pub before: Option<Value>,
    pub after: Option<Value>,
    /// Source of the change (`api`, `import:<id>`, `automation`, `cascade`, ...).
    pub source: String,
}

/// Observes a transaction's changes and may add writes to it (aristay's automatic tasks).
/// Called after the transaction's own operations, then again for the changes hooks made,
/// until no new changes appear.
pub trait Hook: Send + Sync + std::fmt::Debug {
    fn on_changes(&self, tx: &mut Txn, changes: &[Change]) -> Result<()>;
}

/// Runs the hooks to a fixed point (at most 8 rounds).
pub(crate) fn run_hooks(tx: &mut Txn, hooks: &[Arc<dyn Hook>]) -> Result<()> {
    if hooks.is_empty() || tx.meta().has_tag(crate::txn::NO_HOOKS) {
        return Ok(());
    }
    // Changes the hooks saw in an earlier call (`Txn::run_hooks`) are not shown again.
    let mut seen = tx.hooked;
    for _ in 0..8 {
        if seen == tx.changes.len() {
            tx.hooked = seen;
            return Ok(());
        }
        // Moved out while the hooks run (they append their own changes), then put back
        // in order: no copy of the documents.
        let fresh = tx.changes.split_off(seen);
        seen += fresh.len();
        let mut outcome = Ok(());
        for hook in hooks {
            outcome = hook.on_changes(tx, &fresh);
            if outcome.is_err() {
                break;
            }
        }
        let added = tx.changes.split_off(seen - fresh.len());
        tx.changes.extend(fresh);
        tx.changes.extend(added);
        outcome?;
    }
    Err(Error::invalid(
        "transaction",
        "hooks kept producing changes after 8 rounds",
    ))
}

/// How secret fields appear when a record is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// Left out (lists, index.json).
    Omit,
    /// Shown as `"********"` when set.
    Mask,
    /// Decrypted (needs the key).
    Reveal,
}

/// The value a masked secret shows; writing it back leaves the secret unchanged.
pub const MASK: &str = "********";

/// A stored record as the API shows it: with `_version`, secrets handled as asked.
pub fn render(
    def: Option<&Compiled>,
    c: &CollectionName,
    id: &RecordId,
    mut value: Value,
    version: Seq,
    secrets: Secrets,
    key: Option<&SecretBox>,
) -> Result<Value> {
    if let (Some(def), Value::Object(map)) = (def, &mut value) {
        for field in &def.def.secret {
            let Some(stored) = map.get(field).cloned() else {
                continue;
            };
            match secrets {
                Secrets::Omit => {
                    map.remove(field);
                }
                Secrets::Mask => {
                    map.insert(field.clone(), json!(MASK));
                }
                Secrets::Reveal => {
                    let key = key.ok_or_else(|| {
                        Error::invalid("secret field", "no secret key is configured")
                    })?;
                    let plain =
                        key.open(stored.as_str().unwrap_or_default(), &aad(c, id, field))?;
                    map.insert(field.clone(), plain);
                }
            }
        }
    }
    if let Value::Object(map) = &mut value {
        map.insert("_version".into(), version.get().into());
    }
    Ok(value)
}

fn aad(c: &CollectionName, id: &RecordId, field: &str) -> String {
    format!("{c}/{id}/{field}")
}

fn validation(def: &Compiled, errors: Vec<super::definition::FieldError>) -> Error {
    Error::from(Violation {
        code: ViolationCode::ValidationFailed,
        collection: def.name.to_string(),
        constraint: "schema".into(),
        fields: errors.iter().map(|e| e.path.clone()).collect(),
        conflicting: None,
        message: errors
            .first()
            .map(|e| format!("{}: {}", e.path, e.message))
            .unwrap_or_default(),
        errors,
    })
}

fn bad_input(def: &Compiled, path: &str, message: impl Into<String>) -> Error {
    validation(
        def,
        vec![super::definition::FieldError {
            path: path.into(),
            message: message.into(),
        }],
    )
}

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

    fn now(&self) -> String {
        self.ctx
            .clock
            .now()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    fn source(&self) -> String {
        self.event_source
            .clone()
            .unwrap_or_else(|| self.meta.source.clone())
    }

    /// Runs `f` with audit events and changes attributed to `source` (hooks use
    /// `automation`, imports `import:<id>`).
    pub fn with_source<T>(
        &mut self,
        source: &str,
        f: impl FnOnce(&mut Txn) -> Result<T>,
    ) -> Result<T> {
        let saved = self.event_source.replace(source.to_string());
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

    /// A live record, or not found.
    fn live_record(
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

    /// Creates a record. `input` may carry an `id` (imports and migrations keep theirs);
    /// other metadata fields are ignored.
    pub fn create(&mut self, c: &CollectionName, input: Value) -> Result<Value> {
        let def = self.definition(c)?;
        let Value::Object(mut fields) = input else {
            return Err(bad_input(&def, "", "a record must be a JSON object"));
        };
        let id = match fields.remove("id") {
            None | Some(Value::Null) => RecordId::from_uuid(self.ctx.ids.new_id()),
            Some(Value::String(s)) => {
                RecordId::parse(&s).map_err(|e| bad_input(&def, "/id", e.to_string()))?
            }
            Some(_) => return Err(bad_input(&def, "/id", "must be a string")),
        };
        if self.get(c, &id).is_some() {
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
        for field in fields.keys().cloned().collect::<Vec<_>>() {
            if def.is_nested(&field) {
                let items = fields.remove(&field).unwrap_or(Value::Null);
                fields.insert(field.clone(), self.fresh_items(&def, &field, items)?);
            }
        }
        fields.insert("id".into(), json!(id.as_str()));
        fields.insert("created_at".into(), now.clone());
        fields.insert("created_by".into(), actor.clone());
        fields.insert("updated_at".into(), now);
        fields.insert("updated_by".into(), actor);
        fields.insert("deleted_at".into(), Value::Null);
        fields.insert("deleted_by".into(), Value::Null);
        self.store(&def, &id, None, Value::Object(fields), Action::Create)
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
            if def.is_secret(k) && v == MASK {
                continue;
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
            if def.is_secret(k) && v == MASK {
                if let Some(old) = old.get(k) {
                    after.insert(k.clone(), old.clone());
                }
                continue;
            }
            after.insert(k.clone(), v.clone());
        }
        let mut after = Value::Object(after);
        self.touch(&mut after);
        self.store(&def, id, Some(before), after, Action::Update)
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
            .map(Some)
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
    }

    /// Removes a record for good, deleted or not (what `?purge=true` does).
    pub fn purge(&mut self, c: &CollectionName, id: &RecordId, expect: Option<Seq>) -> Result<()> {
        let def = self.definition(c)?;
        let before = self.record(c, id, expect)?;
        self.follow_references(c, id, true)?;
        self.remove(&def, id, before, Action::Purge)
    }

    /// Puts record `c/id` back to `target`, a stored form read from the log (`None`: the
    /// record did not exist), as a revert does (see `crate::revert`). No references are
    /// followed: the changeset being reverted holds every change its cascades and hooks
    /// made, and those are reverted with it; the commit checks every rule on the result.
    /// A record the target says did not exist is soft-deleted where the collection has
    /// soft delete, and purged otherwise.
    pub fn revert_record(
        &mut self,
        c: &CollectionName,
        id: &RecordId,
        target: Option<&Value>,
    ) -> Result<Reverted> {
        let def = self.definition(c)?;
        let current = self.get_value(c, id);
        let Some(target) = target else {
            return match current {
                None => Ok(Reverted::Unchanged),
                Some(before) if !def.def.soft_delete => {
                    self.remove(&def, id, before, Action::Purge)?;
                    Ok(Reverted::Purged)
                }
                Some(before) if is_live(&before) => {
                    let mut after = before.clone();
                    let map = after.as_object_mut().expect("records are objects");
                    map.insert("deleted_at".into(), json!(self.now()));
                    map.insert("deleted_by".into(), json!(self.meta.actor));
                    self.touch(&mut after);
                    self.store(&def, id, Some(before), after, Action::Delete)?;
                    Ok(Reverted::Deleted)
                }
                Some(_) => Ok(Reverted::Unchanged),
            };
        };
        let mut after = target.clone();
        if !after.is_object() {
            return Err(Error::corrupt("a reverted record", "not a JSON object"));
        }
        let same = current.as_ref().is_some_and(|cur| {
            let ignore = ["updated_at", "updated_by"];
            let strip = |v: &Value| {
                let mut m = v.as_object().cloned().unwrap_or_default();
                ignore.iter().for_each(|k| drop(m.remove(*k)));
                m
            };
            strip(cur) == strip(&after)
        });
        if same {
            return Ok(Reverted::Unchanged);
        }
        self.touch(&mut after);
        let (action, reverted) = match &current {
            None => (Action::Create, Reverted::Recreated),
            Some(cur) if is_live(cur) && !is_live(&after) => (Action::Delete, Reverted::Deleted),
            Some(cur) if !is_live(cur) && is_live(&after) => (Action::Restore, Reverted::Restored),
            Some(_) => (Action::Update, Reverted::Updated),
        };
        self.store(&def, id, current, after, action)?;
        Ok(reverted)
    }

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
        // Resolved at commit into the whole record plus an event carrying the item.
        let record_len = self.snapshot.get(c, id).map_or(0, |d| d.body.get().len());
        self.note_deferred_bytes(record_len + 2 * item_len + 1024);
        self.deferred.push(DeferredAppend {
            collection: c.clone(),
            id: id.clone(),
            field: field.to_string(),
            item: item.clone(),
            at: self.now(),
            actor: self.meta.actor.clone(),
            source: self.source(),
            request_id: self.meta.request_id.clone(),
            event_id: self.ctx.ids.new_id().to_string(),
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
        let now = json!(self.now());
        let item = find_item(&mut after, field, item_id)
            .ok_or_else(|| item_not_found(c, id, field, item_id))?;
        let item_id_value = item.get("id").cloned();
        merge_patch(item, patch);
        let map = item.as_object_mut().expect("items are objects");
        map.insert("id".into(), item_id_value.unwrap_or(Value::Null));
        map.insert("updated_at".into(), now);
        let updated = item.clone();
        def.validate_item(field, &updated)
            .map_err(|e| validation(&def, e))?;
        self.touch(&mut after);
        self.store(&def, id, Some(before), after, Action::Update)?;
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
        self.touch(&mut after);
        self.store(&def, id, Some(before), after, Action::Update)?;
        Ok(())
    }

    fn nested_def(&self, c: &CollectionName, field: &str) -> Result<Arc<Compiled>> {
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
    fn fresh_items(&self, def: &Compiled, field: &str, items: Value) -> Result<Value> {
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

    fn touch(&self, record: &mut Value) {
        let map = record.as_object_mut().expect("records are objects");
        map.insert("updated_at".into(), json!(self.now()));
        map.insert("updated_by".into(), json!(self.meta.actor));
    }

    /// Applies referrers' `on_delete` before `c/id` stops being live.
    /// Applies `on_delete` of the live records pointing at `c/id`, which is about to stop
    /// being live; `removed` when it goes for good (a references that allows deleted
    /// records only acts then).
    fn follow_references(
        &mut self,
        c: &CollectionName,
        id: &RecordId,
        removed: bool,
    ) -> Result<()> {
        // Any new referrer committed meanwhile must make this attempt re-run.
        let referring: Vec<CollectionName> = self
            .snapshot
            .definitions()
            .filter(|(_, d)| d.references.iter().any(|r| r.target == *c))
            .map(|(n, _)| n.clone())
            .collect();
        for rc in &referring {
            self.read_collection(rc);
        }
        let referrers: Vec<(CollectionName, RecordId)> = self
            .snapshot
            .referrers
            .get(&(c.clone(), id.clone()))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for (rc, rid) in referrers {
            let Some(current) = self.get_value(&rc, &rid) else {
                continue;
            };
            if !is_live(&current) {
                continue;
            }
            let rdef = self.definition(&rc)?;
            for r in rdef.references.iter().filter(|r| r.target == *c) {
                if current.get(&r.def.field).and_then(Value::as_str) != Some(id.as_str())
                    || (r.def.allow_deleted && !removed)
                {
                    continue;
                }
                match r.def.on_delete {
                    OnDelete::Restrict => {
                        return Err(Error::from(Violation {
                            code: ViolationCode::ReferenceViolation,
                            collection: c.to_string(),
                            constraint: format!("{rc}.{}", r.def.field),
                            fields: vec![r.def.field.clone()],
                            conflicting: Some(rid.to_string()),
                            message: format!("{c}/{id} is still referenced by {rc}/{rid}"),
                            errors: Vec::new(),
                        }));
                    }
                    OnDelete::Cascade => {
                        self.with_source("cascade", |tx| tx.delete(&rc, &rid, None).map(|_| ()))?;
                    }
                    OnDelete::SetNull => {
                        let patch = json!({ r.def.field.clone(): null });
                        self.with_source("cascade", |tx| {
                            tx.update(&rc, &rid, &patch, None).map(|_| ())
                        })?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Encrypts secrets, stages the write, records the audit event and the change.
    fn store(
        &mut self,
        def: &Compiled,
        id: &RecordId,
        before: Option<Value>,
        mut after: Value,
        action: Action,
    ) -> Result<Value> {
        def.validate_secrets(&after)
            .map_err(|e| validation(def, e))?;
        for field in &def.def.secret {
            let Some(v) = after.get(field).cloned() else {
                continue;
            };
            if v.is_null() || SecretBox::is_sealed(&v) {
                continue;
            }
            let key = self.ctx.secrets.clone().ok_or_else(|| {
                Error::invalid(
                    "secret field",
                    format!("{field}: no secret key is configured"),
                )
            })?;
            let sealed = key.seal(&v, &aad(&def.name, id, field));
            after[field.as_str()] = json!(sealed);
        }
        self.put(&def.name, id, &after)?;
        self.event(def, id, action, before.as_ref(), Some(&after))?;
        self.changes.push(Change {
            collection: def.name.clone(),
            id: id.clone(),
            action,
            before,
            after: Some(after.clone()),
            source: self.source(),
        });
        Ok(after)
    }

    fn remove(
        &mut self,
        def: &Compiled,
        id: &RecordId,
        before: Value,
        action: Action,
    ) -> Result<()> {
        self.delete_raw(&def.name, id);
        self.event(def, id, action, Some(&before), None)?;
        self.changes.push(Change {
            collection: def.name.clone(),
            id: id.clone(),
            action,
            before: Some(before),
            after: None,
            source: self.source(),
        });
        Ok(())
    }

    fn event(
        &mut self,
        def: &Compiled,
        id: &RecordId,
        action: Action,
        before: Option<&Value>,
        after: Option<&Value>,
    ) -> Result<()> {
        let mut event = json!({
            "id": self.ctx.ids.new_id().to_string(),
            "at": self.now(),
            "actor": self.meta.actor,
            "source": self.source(),
            "action": action,
            "collection": def.name.as_str(),
            "record_id": id.as_str(),
            "changes": diff(def, before, after),
        });
        if let Some(request_id) = &self.meta.request_id {
            event["request_id"] = json!(request_id);
        }
        self.audit(&event)
    }
}

/// Checks a document about to be staged against `max_record_bytes`: its own fields
/// (the canonical document, `len` bytes, less its nested arrays) and, separately, each
/// item of its nested arrays. A record with many items is fine; one huge field is not.
pub(crate) fn check_record_size(
    def: Option<&Compiled>,
    c: &CollectionName,
    doc: &Value,
    len: usize,
    limit: usize,
) -> Result<()> {
    let mut own = len;
    if let (Some(def), Some(map)) = (def, doc.as_object()) {
        for (field, items) in map.iter().filter(|(f, _)| def.is_nested(f)) {
            own = own.saturating_sub(crate::log::json_len(items));
            for item in items.as_array().into_iter().flatten() {
                check_item_size(c, field, crate::log::json_len(item), limit)?;
            }
        }
    }
    if own > limit {
        return Err(Error::TooLarge {
            what: format!("a record of {c} (its own fields)"),
            size: own,
            limit,
        });
    }
    Ok(())
}

fn check_item_size(c: &CollectionName, field: &str, size: usize, limit: usize) -> Result<()> {
    if size > limit {
        return Err(Error::TooLarge {
            what: format!("an item of {c}.{field}"),
            size,
            limit,
        });
    }
    Ok(())
}

/// A nested append waiting for the commit position (see [`Txn::nested_append`]).
#[derive(Debug, Clone)]
pub struct DeferredAppend {
    pub collection: CollectionName,
    pub id: RecordId,
    pub field: String,
    pub item: Value,
    pub at: String,
    pub actor: String,
    pub source: String,
    pub request_id: Option<String>,
    pub event_id: String,
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
        map.insert("updated_at".into(), json!(a.at));
        map.insert("updated_by".into(), json!(a.actor));
        let mut event = json!({
            "id": a.event_id,
            "at": a.at,
            "actor": a.actor,
            "source": a.source,
            "action": Action::Update,
            "collection": a.collection.as_str(),
            "record_id": a.id.as_str(),
            // Only the appended item changed: no need to diff the whole array.
            "changes": { a.field.clone(): {"added": [a.item.clone()], "removed": [], "changed": {}} },
        });
        if let Some(r) = &a.request_id {
            event["request_id"] = json!(r);
        }
        out.audit.push(Arc::from(to_canonical_raw(&event)));
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

fn item_not_found(c: &CollectionName, id: &RecordId, field: &str, item_id: &str) -> Error {
    Error::NotFound {
        collection: format!("{c}/{id}/{field}"),
        id: item_id.to_string(),
    }
}

fn find_item<'a>(record: &'a mut Value, field: &str, item_id: &str) -> Option<&'a mut Value> {
    record
        .get_mut(field)?
        .as_array_mut()?
        .iter_mut()
        .find(|i| i.get("id").and_then(Value::as_str) == Some(item_id))
}

fn strip_metadata(fields: &mut Map<String, Value>) {
    for m in METADATA_FIELDS {
        fields.remove(m);
    }
}

/// RFC 7396 merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().expect("made an object");
    for (k, v) in patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Field-level changes; nested arrays by item id; secrets never in clear.
pub fn diff(def: &Compiled, before: Option<&Value>, after: Option<&Value>) -> Value {
    const SKIP: [&str; 6] = [
        "id",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
        "_version",
    ];
    let empty = Map::new();
    let b = before.and_then(Value::as_object).unwrap_or(&empty);
    let a = after.and_then(Value::as_object).unwrap_or(&empty);
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut changes = Map::new();
    for k in keys {
        if SKIP.contains(&k.as_str()) {
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
        } else if def.is_secret(k) || def.is_redacted(k) {
            let mask = if def.is_secret(k) {
                "[secret]"
            } else {
                super::definition::REDACTED
            };
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
    Value::Object(changes)
}

fn nested_diff(from: &Value, to: &Value) -> Value {
    use std::collections::HashMap;
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
