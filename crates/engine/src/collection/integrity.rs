//! Integrity at commit time: the derived indexes of every defined collection, and the
//! checks a transaction must pass against the exact state it commits on.
//!
//! The committer applies each transaction of a batch to a working copy of the state (an
//! O(1) clone of persistent maps) in this order:
//! 1. remove the old index entries of every record the transaction touches;
//! 2. write the new documents, and install changed definitions (re-indexing their
//!    collection and checking its existing data against them);
//! 3. validate every new document (schema, `check` expressions) and insert its index
//!    entries, where a clash is a `unique` or `exclude` violation naming the record in the way;
//! 4. check references: what a live record points at must be live, and a record that
//!    stops being live must have no live referrers left.
//!
//! Removing all old entries before inserting any makes the result independent of the
//! order of operations inside a transaction (two records may swap a unique value). The
//! same code replays entries from the log in trust mode: no checks, same indexes.

use std::collections::BTreeSet;
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};
use serde_json::Value;
use serde_json::value::RawValue;

use super::definition::{Compiled, Definition};
use super::keys::{RecordKeys, SortKey, is_live};
use super::overlap::{OverlapError, OverlapIndex};
use crate::error::{Error, Result, Violation, ViolationCode};
use crate::log::TxnRecord;
use crate::names::{CollectionName, RecordId, Seq};
use crate::state::{Doc, State};

/// Checks on, or replay of already-validated history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Validate,
    Trust,
}

/// The indexes of one defined collection (persistent: cheap to clone with the state).
#[derive(Debug, Clone, Default)]
pub struct Indexes {
    /// Per `unique` constraint: canonical key → record.
    pub unique: Vec<OrdMap<String, RecordId>>,
    /// Per `exclude` constraint.
    pub exclude: Vec<OverlapIndex<RecordId>>,
    /// Per `index` field: value → records, for every record (those without the field
    /// under [`SortKey::Missing`]). Answers equality filters, and lists sorted by the field.
    pub fields: OrdMap<String, OrdMap<SortKey, Ids>>,
    /// The soft-deleted records (`deleted_at` set).
    pub deleted: OrdSet<RecordId>,
}

/// The records under one index key, with their documents (so a list reads candidates
/// without looking each up among all documents). Most keys of a selective field have
/// one record, kept without a map (an `OrdMap` allocates a whole B-tree leaf).
#[derive(Debug, Clone)]
pub enum Ids {
    One(RecordId, Arc<RawValue>),
    Many(OrdMap<RecordId, Arc<RawValue>>),
}

impl Ids {
    pub fn len(&self) -> usize {
        match self {
            Ids::One(..) => 1,
            Ids::Many(map) => map.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, id: &RecordId) -> bool {
        match self {
            Ids::One(one, _) => one == id,
            Ids::Many(map) => map.contains_key(id),
        }
    }

    /// Records and their documents, in id order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&RecordId, &Arc<RawValue>)> + '_ {
        let (one, many) = match self {
            Ids::One(id, body) => (Some((id, body)), None),
            Ids::Many(map) => (None, Some(map.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    fn insert(&mut self, id: &RecordId, body: &Arc<RawValue>) {
        match self {
            Ids::One(one, _) if one == id => *self = Ids::One(id.clone(), body.clone()),
            Ids::One(one, first) => {
                let both = [(one.clone(), first.clone()), (id.clone(), body.clone())];
                *self = Ids::Many(OrdMap::from_iter(both));
            }
            Ids::Many(map) => {
                map.insert(id.clone(), body.clone());
            }
        }
    }

    /// Removes `id`; true when none are left.
    fn remove(&mut self, id: &RecordId) -> bool {
        let Ids::Many(map) = self else {
            return matches!(self, Ids::One(one, _) if one == id);
        };
        map.remove(id);
        match map.len() {
            0 => true,
            1 => {
                if let Some((last, body)) = map.get_min().cloned() {
                    *self = Ids::One(last, body);
                }
                false
            }
            _ => false,
        }
    }
}

/// Who points at a record: `(collection, id)` of live referrers.
pub type Referrers = OrdMap<(CollectionName, RecordId), OrdSet<(CollectionName, RecordId)>>;

impl Indexes {
    fn for_def(def: &Compiled) -> Indexes {
        Indexes {
            unique: vec![OrdMap::new(); def.def.unique.len()],
            exclude: vec![OverlapIndex::new(); def.excludes.len()],
            fields: OrdMap::new(),
            deleted: OrdSet::new(),
        }
    }

    fn remove(&mut self, keys: &RecordKeys, id: &RecordId) {
        for (index, key) in self.unique.iter_mut().zip(&keys.unique) {
            if let Some(key) = key
                && index.get(key) == Some(id)
            {
                index.remove(key);
            }
        }
        for (index, key) in self.exclude.iter_mut().zip(&keys.exclude) {
            if let Some((key, start, _)) = key {
                index.remove(key, start, id);
            }
        }
        for (field, value) in &keys.fields {
            if let Some(values) = self.fields.get_mut(field)
                && let Some(ids) = values.get_mut(value)
                && ids.remove(id)
            {
                values.remove(value);
            }
        }
        self.deleted.remove(id);
    }

    /// Inserts a record's entries (`body`: its document); in validate mode a clash is a
    /// violation.
    fn insert(
        &mut self,
        def: &Compiled,
        keys: &RecordKeys,
        id: &RecordId,
        body: &Arc<RawValue>,
        mode: Mode,
    ) -> Result<()> {
        for (i, (index, key)) in self.unique.iter_mut().zip(&keys.unique).enumerate() {
            let Some(key) = key else { continue };
            if mode == Mode::Validate
                && let Some(other) = index.get(key)
                && other != id
            {
                let u = &def.def.unique[i];
                return Err(violation(
                    def,
                    ViolationCode::UniqueViolation,
                    &u.name,
                    u.fields.clone(),
                    Some(other),
                    format!(
                        "{} {key} is already taken by record {other}",
                        u.fields.join(", ")
                    ),
                ));
            }
            index.insert(key.clone(), id.clone());
        }
        for (i, (index, key)) in self.exclude.iter_mut().zip(&keys.exclude).enumerate() {
            let Some((key, start, end)) = key else {
                continue;
            };
            match mode {
                Mode::Trust => index.insert(key, start.clone(), end.clone(), id.clone()),
                Mode::Validate => {
                    if let Err(e) =
                        index.insert_checked(key, start.clone(), end.clone(), id.clone())
                    {
                        let x = &def.excludes[i].def;
                        let mut fields = x.key.clone();
                        fields.extend([x.start.clone(), x.end.clone()]);
                        let (other, message) = match e {
                            OverlapError::Conflict(other) => {
                                let m = format!(
                                    "[{}, {}) overlaps record {other} with the same {}",
                                    x.start,
                                    x.end,
                                    x.key.join(", ")
                                );
                                (Some(other), m)
                            }
                            OverlapError::EmptyRange => (None, "empty range".to_string()),
                        };
                        return Err(violation(
                            def,
                            ViolationCode::ExclusionViolation,
                            &x.name,
                            fields,
                            other.as_ref(),
                            message,
                        ));
                    }
                }
            }
        }
        for (field, value) in &keys.fields {
            let values = self.fields.entry(field.clone()).or_default();
            match values.get_mut(value) {
                Some(ids) => ids.insert(id, body),
                None => {
                    values.insert(value.clone(), Ids::One(id.clone(), body.clone()));
                }
            }
        }
        if !keys.live {
            self.deleted.insert(id.clone());
        }
        Ok(())
    }
}

fn violation(
    def: &Compiled,
    code: ViolationCode,
    constraint: &str,
    fields: Vec<String>,
    conflicting: Option<&RecordId>,
    message: String,
) -> Error {
    Error::from(Violation {
        code,
        collection: def.name.to_string(),
        constraint: constraint.to_string(),
        fields,
        conflicting: conflicting.map(|c| c.to_string()),
        message,
        errors: Vec::new(),
    })
}

/// Validates one document against its definition: schema, then `check` expressions.
pub fn validate_doc(def: &Compiled, id: &RecordId, value: &Value) -> Result<()> {
    if let Err(errors) = def.validate_fields(value) {
        return Err(Error::from(Violation {
            code: ViolationCode::ValidationFailed,
            collection: def.name.to_string(),
            constraint: "schema".into(),
            fields: errors.iter().map(|e| e.path.clone()).collect(),
            conflicting: None,
            message: format!(
                "record {id} does not match the schema: {}",
                errors[0].message
            ),
            errors,
        }));
    }
    let vars = super::expr::Vars::new().with("record", value);
    for (name, expr) in &def.checks {
        let ok = expr.eval_bool(&vars);
        if !matches!(ok, Ok(true)) {
            let why = match ok {
                Err(e) => format!(": {e}"),
                _ => String::new(),
            };
            return Err(violation(
                def,
                ViolationCode::CheckViolation,
                name,
                Vec::new(),
                None,
                format!("record {id} fails check {name} ({}){why}", expr.source()),
            ));
        }
    }
    Ok(())
}

impl State {
    /// Applies one transaction at position `seq`. In validate mode a violation leaves
    /// `self` partly changed: callers apply to a clone and keep it only on success.
    pub(crate) fn apply_txn(&mut self, txn: &TxnRecord, seq: Seq, mode: Mode) -> Result<()> {
        let defs_coll = CollectionName::definitions();
        let mut redefined: BTreeSet<CollectionName> = BTreeSet::new();
        let mut olds: Vec<Option<Doc>> = Vec::with_capacity(txn.ops.len());
        // 1. Old index entries out.
        for op in &txn.ops {
            let old = self.get(&op.collection, &op.id).cloned();
            if let (Some(old_doc), Some(def)) = (&old, self.catalog.get(&op.collection).cloned()) {
                let value = old_doc.value();
                let keys = RecordKeys::of(&def, &value).unwrap_or_default();
                self.unindex(&op.collection, &op.id, &keys);
            }
            if op.collection == defs_coll {
                redefined.insert(CollectionName::parse_any(op.id.as_str())?);
            }
            olds.push(old);
        }
        // 2. New documents in; definitions installed.
        self.write_docs(txn, seq)?;
        for name in &redefined {
            self.install_definition(name, mode)?;
        }
        // 3. Validate and index the new documents.
        let mut news: Vec<Option<Value>> = Vec::with_capacity(txn.ops.len());
        for op in &txn.ops {
            let Some(def) = self.catalog.get(&op.collection).cloned() else {
                news.push(None);
                continue;
            };
            let Some(doc) = &op.doc else {
                news.push(None);
                continue;
            };
            let value: Value =
                serde_json::from_str(doc.get()).map_err(|e| Error::corrupt("document", e))?;
            if !redefined.contains(&op.collection) {
                if mode == Mode::Validate {
                    validate_doc(&def, &op.id, &value)?;
                }
                let keys = RecordKeys::of(&def, &value)?;
                self.index(&def, &op.id, doc, &keys, mode)?;
            }
            news.push(Some(value));
        }
        // 4. Every write to a defined collection is audited in the same transaction.
        if mode == Mode::Validate {
            check_audited(self, txn)?;
        }
        // 5. References.
        if mode == Mode::Validate {
            for ((op, old), new) in txn.ops.iter().zip(&olds).zip(&news) {
                if let (Some(def), Some(value)) = (self.catalog.get(&op.collection), new)
                    && is_live(value)
                {
                    self.check_outgoing(def, &op.id, value)?;
                }
                let was_live = old.as_ref().is_some_and(|d| is_live(&d.value()));
                let is_live_now =
                    new.as_ref().is_some_and(is_live) || (new.is_none() && op.doc.is_some());
                if was_live && !is_live_now {
                    self.check_no_referrers(&op.collection, &op.id, new.is_some())?;
                }
            }
        }
        Ok(())
    }

    fn unindex(&mut self, c: &CollectionName, id: &RecordId, keys: &RecordKeys) {
        if let Some(coll) = self.collections.get_mut(c) {
            coll.indexes.remove(keys, id);
        }
        for target in keys.refs.iter().flatten() {
            if let Some(set) = self.referrers.get_mut(target) {
                set.remove(&(c.clone(), id.clone()));
                if set.is_empty() {
                    self.referrers.remove(target);
                }
            }
        }
    }

    fn index(
        &mut self,
        def: &Compiled,
        id: &RecordId,
        body: &Arc<RawValue>,
        keys: &RecordKeys,
        mode: Mode,
    ) -> Result<()> {
        let coll = self.collections.entry(def.name.clone()).or_default();
        coll.indexes.insert(def, keys, id, body, mode)?;
        for target in keys.refs.iter().flatten() {
            self.referrers
                .entry(target.clone())
                .or_default()
                .insert((def.name.clone(), id.clone()));
        }
        Ok(())
    }

    /// Compiles the stored definition of `name` (or drops it) and rebuilds the
    /// collection's indexes, checking its existing records in validate mode.
    pub(crate) fn install_definition(&mut self, name: &CollectionName, mode: Mode) -> Result<()> {
        let stored = self
            .get(
                &CollectionName::definitions(),
                &RecordId::parse(name.as_str())?,
            )
            .cloned();
        // Drop the old indexes' contributions to the referrer map.
        if let Some(old_def) = self.catalog.get(name).cloned()
            && let Some(coll) = self.collections.get(name).cloned()
        {
            for (id, doc) in coll.docs.iter() {
                let keys = RecordKeys::of(&old_def, &doc.value()).unwrap_or_default();
                self.unindex(name, id, &keys);
            }
        }
        let Some(stored) = stored else {
            self.catalog.remove(name);
            if let Some(coll) = self.collections.get_mut(name) {
                coll.indexes = Indexes::default();
            }
            return Ok(());
        };
        let def = Definition::from_json(&stored.value())?;
        if def.name != name.as_str() {
            return Err(Error::InvalidDefinition {
                collection: name.to_string(),
                problem: format!("stored under {name} but names {:?}", def.name),
            });
        }
        let compiled = Arc::new(def.compile()?);
        self.catalog.insert(name.clone(), compiled.clone());
        let docs = self
            .collections
            .get(name)
            .map(|c| c.docs.clone())
            .unwrap_or_default();
        self.collections.entry(name.clone()).or_default().indexes = Indexes::for_def(&compiled);
        for (id, doc) in docs.iter() {
            let value = doc.value();
            if mode == Mode::Validate {
                validate_doc(&compiled, id, &value).map_err(|e| existing_data(name, e))?;
            }
            let keys = RecordKeys::of(&compiled, &value).map_err(|e| existing_data(name, e))?;
            self.index(&compiled, id, &doc.body, &keys, mode)
                .map_err(|e| existing_data(name, e))?;
        }
        Ok(())
    }

    /// Rebuilds every definition and index from the documents (after a checkpoint load).
    pub(crate) fn rebuild_derived(&mut self) -> Result<()> {
        let names: Vec<CollectionName> = self
            .collection(&CollectionName::definitions())
            .map(|c| {
                c.docs
                    .keys()
                    .filter_map(|id| CollectionName::parse_any(id.as_str()).ok())
                    .collect()
            })
            .unwrap_or_default();
        for name in names {
            self.install_definition(&name, Mode::Trust)?;
        }
        Ok(())
    }

    fn check_outgoing(&self, def: &Compiled, id: &RecordId, value: &Value) -> Result<()> {
        for r in &def.references {
            let Some(raw) = value.get(&r.def.field).filter(|v| !v.is_null()) else {
                continue;
            };
            let refused = |why: String| {
                violation(
                    def,
                    ViolationCode::ReferenceViolation,
                    &r.def.field,
                    vec![r.def.field.clone()],
                    None,
                    format!("record {id}: {} {why}", r.def.field),
                )
            };
            let Some(target_id) = raw.as_str().and_then(|s| RecordId::parse(s).ok()) else {
                return Err(refused(format!("must be the id of a {} record", r.target)));
            };
            let target = self
                .get(&r.target, &target_id)
                .map(Doc::value)
                .filter(|t| r.def.allow_deleted || is_live(t))
                .ok_or_else(|| r.missing_target(def.name.as_str(), id, target_id.as_str()))?;
            for (local, remote) in &r.def.matches {
                if value.get(local) != target.get(remote) {
                    return Err(violation(
                        def,
                        ViolationCode::ReferenceViolation,
                        &r.def.field,
                        vec![local.clone()],
                        Some(&target_id),
                        format!(
                            "record {id}: {local} must equal {}/{target_id}'s {remote}",
                            r.target
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A record stopped being live: no live referrer may be left pointing at it, except,
    /// while it still exists (soft-deleted), through references that allow deleted ones.
    fn check_no_referrers(&self, c: &CollectionName, id: &RecordId, exists: bool) -> Result<()> {
        let Some(referrers) = self.referrers.get(&(c.clone(), id.clone())) else {
            return Ok(());
        };
        let tolerated = |rc: &CollectionName| {
            exists
                && self.catalog.get(rc).is_some_and(|d| {
                    d.references
                        .iter()
                        .filter(|r| r.target == *c)
                        .all(|r| r.def.allow_deleted)
                })
        };
        let Some((rc, rid)) = referrers.iter().find(|(rc, _)| !tolerated(rc)) else {
            return Ok(());
        };
        let field = self
            .catalog
            .get(rc)
            .and_then(|d| d.references.iter().find(|r| r.target == *c))
            .map(|r| r.def.field.clone())
            .unwrap_or_default();
        Err(Error::from(Violation {
            code: ViolationCode::ReferenceViolation,
            collection: c.to_string(),
            constraint: format!("{rc}.{field}"),
            fields: vec![field],
            conflicting: Some(rid.to_string()),
            message: format!("{c}/{id} is still referenced by {rc}/{rid}"),
            errors: Vec::new(),
        }))
    }
}

/// The audit trail is complete by construction: a transaction that writes a record of a
/// defined collection without an audit event for it (a raw `put` instead of a record
/// operation) is refused.
fn check_audited(state: &State, txn: &TxnRecord) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Subject<'a> {
        #[serde(borrow, default)]
        collection: &'a str,
        #[serde(borrow, default)]
        record_id: &'a str,
    }
    let subjects: BTreeSet<(&str, &str)> = txn
        .audit
        .iter()
        .filter_map(|e| serde_json::from_str::<Subject<'_>>(e.get()).ok())
        .map(|s| (s.collection, s.record_id))
        .collect();
    for op in &txn.ops {
        if state.catalog.contains_key(&op.collection)
            && !subjects.contains(&(op.collection.as_str(), op.id.as_str()))
        {
            return Err(Error::invalid(
                "transaction",
                format!(
                    "writes {}/{} without an audit event: use the record operations",
                    op.collection, op.id
                ),
            ));
        }
    }
    Ok(())
}

fn existing_data(name: &CollectionName, e: Error) -> Error {
    match e {
        Error::Violation(v) => Error::InvalidDefinition {
            collection: name.to_string(),
            problem: format!("existing data does not satisfy it: {v}"),
        },
        other => other,
    }
}
