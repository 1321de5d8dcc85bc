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

use foldhash::{HashMap, HashMapExt, HashSet};
use std::sync::Arc;

use serde_json::Value;

use super::{Doc, State};
use crate::collection::definition::{Compiled, Definition};
use crate::collection::event::AuditEvent;
use crate::collection::integrity::{Indexes, Mode, validate_doc, violation};
use crate::collection::keys::{RecordKeys, is_live};
use crate::error::{Error, Result, Violation, ViolationCode};
use crate::log::TxnRecord;
use crate::names::{CollectionName, RecordId, Seq};

impl State {
    /// Whether `txn` is known to audit every write it makes to a defined collection:
    /// the records it says it writes unaudited (`TxnRecord::unaudited`) are all of
    /// undefined collections.
    pub(crate) fn audits_every_write(&self, txn: &TxnRecord) -> bool {
        txn.unaudited
            .as_ref()
            .is_some_and(|unaudited| unaudited.iter().all(|(c, _)| !self.catalog.contains_key(c)))
    }

    /// Applies one transaction at position `seq`. In validate mode a violation leaves
    /// `self` partly changed: callers apply to a clone and keep it only on success.
    pub(crate) fn apply_txn(&mut self, txn: &TxnRecord, seq: Seq, mode: Mode) -> Result<()> {
        let defs_coll = CollectionName::definitions();
        let mut redefined: BTreeSet<CollectionName> = BTreeSet::new();
        // Each record once, in the order first touched (a transaction may apply several
        // operations to one record: a put and item operations, or many appends).
        // `whole[i]`: some op writes (or removes) the `touched[i]` record whole;
        // `given[i]`: its document as the writer parsed it, when its one op is a `put`
        // that carries it (`Op::value`), with the definition it passed then (`Op::checked`).
        let mut touched: Vec<(&CollectionName, &RecordId)> = Vec::with_capacity(txn.ops.len());
        let mut whole: Vec<bool> = Vec::with_capacity(txn.ops.len());
        let mut given: Vec<Option<Given<'_>>> = Vec::with_capacity(txn.ops.len());
        // `seen`: each touched record's index, by name (the audit check and the
        // reference checks look records up in it rather than building maps of their own).
        let mut seen: Touched<'_> = HashMap::with_capacity(txn.ops.len());
        for op in &txn.ops {
            let mut first = false;
            let i = *seen
                .entry((op.collection.as_str(), op.id.as_str()))
                .or_insert_with(|| {
                    first = true;
                    touched.push((&op.collection, &op.id));
                    whole.push(false);
                    given.push(op.value.as_deref().map(|v| (v, op.checked.as_ref())));
                    touched.len() - 1
                });
            if !first {
                given[i] = None;
            }
            whole[i] |= op.op.is_whole();
        }
        // Records this transaction changes only in part (own fields with `set`, items):
        // their nested arrays, kept apart in the state, are neither read nor validated
        // again (their items were validated when staged), unless a `check` expression
        // might read them.
        let partial: Vec<bool> = touched
            .iter()
            .zip(&whole)
            .map(|(&(c, _), &whole)| {
                let checks = self.catalog.get(c).is_none_or(|d| !d.checks.is_empty());
                !checks && !whole
            })
            .collect();
        // Replay (trust mode) needs only index keys, which are own fields.
        let read = |doc: &Doc, partial: bool| {
            if partial || mode == Mode::Trust {
                doc.own_value()
            } else {
                doc.value()
            }
        };
        let mut olds: Vec<Option<Doc>> = Vec::with_capacity(touched.len());
        // 1. Old index entries out.
        for (i, &(c, id)) in touched.iter().enumerate() {
            let old = self.get(c, id).cloned();
            if let (Some(old_doc), Some(def)) = (&old, self.catalog.get(c).cloned()) {
                let value = read(old_doc, partial[i]);
                let keys = RecordKeys::of(&def, &value).unwrap_or_default();
                self.unindex(&def, c, id, &keys);
            }
            if *c == defs_coll {
                redefined.insert(CollectionName::parse_any(id.as_str())?);
            }
            olds.push(old);
        }
        // 2. New documents in; definitions installed.
        self.write_docs(txn, seq)?;
        for name in &redefined {
            self.install_definition(name, mode)?;
        }
        // 3. Validate and index the new documents. `news`: the parsed new document (own
        // fields only when partial) of a record of a defined collection; `exists`: whether
        // the record is there at all.
        let mut news: Vec<Option<std::borrow::Cow<'_, Value>>> = Vec::with_capacity(touched.len());
        let mut exists: Vec<bool> = Vec::with_capacity(touched.len());
        // `outgoing[i]`: the targets of the record's references as indexed (step 5
        // checks them without reading and parsing the fields again).
        let mut outgoing: Vec<Refs> = Vec::with_capacity(touched.len());
        for (i, &(c, id)) in touched.iter().enumerate() {
            let doc = self.get(c, id).cloned();
            exists.push(doc.is_some());
            let (Some(def), Some(doc)) = (self.catalog.get(c).cloned(), doc) else {
                news.push(None);
                outgoing.push(Vec::new());
                continue;
            };
            let (value, checked) = match given[i] {
                Some((value, checked)) => (std::borrow::Cow::Borrowed(value), checked),
                None => (std::borrow::Cow::Owned(read(&doc, partial[i])), None),
            };
            if !redefined.contains(c) {
                // A document validated before the commit, against the very definition
                // the collection has now, is not validated again (the value is shared and
                // immutable; any other definition, even an equal one, re-checks it).
                let current = checked.is_some_and(|checked| Arc::ptr_eq(checked, &def));
                if mode == Mode::Validate && !current {
                    validate_doc(&def, id, &value)?;
                }
                let keys = RecordKeys::of(&def, &value)?;
                outgoing.push(self.index(&def, id, &doc, keys, mode)?);
            } else {
                outgoing.push(Vec::new());
            }
            news.push(Some(value));
        }
        // 4. Every write to a defined collection is audited in the same transaction.
        if mode == Mode::Validate {
            check_audited(self, txn, &touched, &seen)?;
        }
        // 5. References. A target this transaction wrote whole is read from what step 3
        // parsed; any other is parsed once for the whole transaction (an import's tasks
        // all point at a few properties and templates).
        if mode == Mode::Validate {
            let mut targets = Targets {
                seen: &seen,
                news: &news,
                partial: &partial,
                parsed: HashMap::new(),
            };
            for (i, &(c, id)) in touched.iter().enumerate() {
                let new = &news[i];
                if let (Some(def), Some(value)) = (self.catalog.get(c), new)
                    && is_live(value)
                {
                    self.check_outgoing(def, id, value, &outgoing[i], &mut targets)?;
                }
                let was_live = olds[i].as_ref().is_some_and(|d| is_live(&d.own_value()));
                let is_live_now =
                    new.as_deref().is_some_and(is_live) || (new.is_none() && exists[i]);
                if was_live && !is_live_now {
                    self.check_no_referrers(c, id, new.is_some())?;
                }
            }
        }
        Ok(())
    }

    fn unindex(&mut self, def: &Compiled, c: &CollectionName, id: &RecordId, keys: &RecordKeys) {
        if let Some(coll) = self.collections.get_mut(c) {
            coll.indexes.remove(&def.def.index, keys, id);
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

    /// Indexes a record under its keys; answers the targets of its references.
    fn index(
        &mut self,
        def: &Compiled,
        id: &RecordId,
        doc: &Doc,
        mut keys: RecordKeys,
        mode: Mode,
    ) -> Result<Refs> {
        let refs = std::mem::take(&mut keys.refs);
        let coll = self.collections.entry(def.name.clone()).or_default();
        coll.indexes.insert(def, keys, id, doc, mode)?;
        for target in refs.iter().flatten() {
            self.referrers
                .entry(target.clone())
                .or_default()
                .insert((def.name.clone(), id.clone()));
        }
        Ok(refs)
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
                self.unindex(&old_def, name, id, &keys);
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
        let shape = &compiled.shape;
        let coll = self.collections.entry(name.clone()).or_default();
        coll.indexes = Indexes::for_def(&compiled);
        for (id, doc) in docs.iter() {
            let value = doc.value();
            if mode == Mode::Validate {
                validate_doc(&compiled, id, &value).map_err(|e| existing_data(name, e))?;
            }
            let keys = RecordKeys::of(&compiled, &value).map_err(|e| existing_data(name, e))?;
            // Documents keep this definition's nested arrays apart (a checkpoint loads
            // them whole; a new definition may declare new arrays).
            let doc = if shape.is_empty() {
                doc.clone()
            } else {
                let doc = Doc::from_value(doc.version, value, shape);
                if let Some(coll) = self.collections.get_mut(name) {
                    coll.docs.insert(id.clone(), doc.clone());
                }
                doc
            };
            self.index(&compiled, id, &doc, keys, mode)
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

    /// Checks the record's references (`refs`: their targets as indexed, one per
    /// reference of `def`, or none when it was not indexed here).
    fn check_outgoing<'t>(
        &self,
        def: &Compiled,
        id: &RecordId,
        value: &Value,
        refs: &[Option<(CollectionName, RecordId)>],
        targets: &mut Targets<'t>,
    ) -> Result<()> {
        for (j, r) in def.references.iter().enumerate() {
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
            let parsed;
            let target_id = match refs.get(j) {
                Some(Some((_, target_id))) => target_id,
                _ => {
                    let Some(raw) = value.get(&r.def.field).filter(|v| !v.is_null()) else {
                        continue;
                    };
                    let Some(target_id) = raw.as_str().and_then(|s| RecordId::parse(s).ok()) else {
                        return Err(refused(format!("must be the id of a {} record", r.target)));
                    };
                    parsed = target_id;
                    &parsed
                }
            };
            let target = targets
                .get(self, &r.target, target_id)
                .filter(|t| r.def.allow_deleted || is_live(t))
                .ok_or_else(|| r.missing_target(def.name.as_str(), id, target_id.as_str()))?;
            for (local, remote) in &r.def.matches {
                if value.get(local) != target.get(remote) {
                    return Err(violation(
                        def,
                        ViolationCode::ReferenceViolation,
                        &r.def.field,
                        vec![local.clone()],
                        Some(target_id),
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

    /// The reference checks of a transaction applied batch by batch (`txn::ahead`), made
    /// again on its final state where a batch could pass what the whole transaction does
    /// not (`self` is the state after every batch, `base` the state before the
    /// transaction, `touched` each record it writes with the first and the last batch that
    /// wrote it):
    /// - a live record checked in a batch before one that wrote its target (the target
    ///   may have changed its `match` fields, or gone) is checked against the target as
    ///   it ends;
    /// - a record live in `base` and not at the end has no live referrer left (one
    ///   written after the batch that deleted it would not have been seen), as
    ///   `apply_txn` checks it.
    ///
    /// Only records that were in `base`, or were written by more than one batch, can be
    /// such a target: a record the transaction creates in one batch had no earlier
    /// version a referrer in an earlier batch could have passed against (its check
    /// failed, and so did the helper). An import creating thousands of records
    /// looks each one up in `base` and nothing more.
    pub(crate) fn check_references_after_batches(
        &self,
        base: &State,
        touched: &HashMap<(CollectionName, RecordId), Batches>,
    ) -> Result<()> {
        let seen = Touched::new();
        let mut targets = Targets {
            seen: &seen,
            news: &[],
            partial: &[],
            parsed: HashMap::new(),
        };
        for ((c, id), batches) in touched {
            let in_base = base.get(c, id);
            if in_base.is_none() && batches.first == batches.last {
                continue;
            }
            if let Some(referrers) = self.referrers.get(&(c.clone(), id.clone())) {
                for (rc, rid) in referrers.iter() {
                    let checked_before = touched
                        .get(&(rc.clone(), rid.clone()))
                        .is_some_and(|b| b.last < batches.last);
                    if !checked_before {
                        continue;
                    }
                    if let (Some(def), Some(doc)) = (self.catalog.get(rc), self.get(rc, rid)) {
                        let value = doc.value();
                        if is_live(&value) {
                            let refs = RecordKeys::of(def, &value)?.refs;
                            self.check_outgoing(def, rid, &value, &refs, &mut targets)?;
                        }
                    }
                }
            }
            let was_live = in_base.is_some_and(|d| is_live(&d.own_value()));
            if was_live {
                let now = self.get(c, id);
                let live_now = match (now, self.catalog.contains_key(c)) {
                    (Some(doc), true) => is_live(&doc.own_value()),
                    (now, _) => now.is_some(),
                };
                if !live_now {
                    self.check_no_referrers(c, id, now.is_some())?;
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

/// The targets of a record's references, one per reference of its definition
/// (`RecordKeys::refs`).
type Refs = Vec<Option<(CollectionName, RecordId)>>;

/// A `put`'s document as its writer parsed it, and the definition it passed then.
type Given<'a> = (&'a Value, Option<&'a Arc<Compiled>>);

/// The records a transaction touches, by (collection, id): their index in the order
/// first touched.
type Touched<'t> = HashMap<(&'t str, &'t str), usize>;

/// Reference targets as one transaction's checks read them: the documents it wrote
/// whole (already parsed: `news[i]` of a touched record not changed in part), and the
/// others, parsed at most once.
struct Targets<'t> {
    seen: &'t Touched<'t>,
    news: &'t [Option<std::borrow::Cow<'t, Value>>],
    partial: &'t [bool],
    parsed: HashMap<(CollectionName, RecordId), Option<Value>>,
}

impl Targets<'_> {
    fn get(&mut self, state: &State, c: &CollectionName, id: &RecordId) -> Option<&Value> {
        let written = self
            .seen
            .get(&(c.as_str(), id.as_str()))
            .filter(|&&i| !self.partial[i])
            .and_then(|&i| self.news[i].as_deref());
        if let Some(value) = written {
            return Some(value);
        }
        self.parsed
            .entry((c.clone(), id.clone()))
            .or_insert_with(|| state.get(c, id).map(Doc::value))
            .as_ref()
    }
}

/// The audit trail is complete by construction: a transaction that writes a record of a
/// defined collection without an audit event for it (a raw `put` instead of a record
/// operation) is refused. Each event marks the touched record it names (`seen`); the
/// first record left unmarked, in the order first touched, is the one reported. A
/// transaction its `Txn` handed over says which records it writes without an event
/// (`TxnRecord::unaudited`, usually none): then only those are looked at.
fn check_audited(
    state: &State,
    txn: &TxnRecord,
    touched: &[(&CollectionName, &RecordId)],
    seen: &Touched<'_>,
) -> Result<()> {
    if let Some(unaudited) = &txn.unaudited {
        if state.audits_every_write(txn) {
            return Ok(());
        }
        let unaudited: HashSet<(&str, &str)> = unaudited
            .iter()
            .map(|(c, id)| (c.as_str(), id.as_str()))
            .collect();
        let first = touched.iter().find(|&&(c, id)| {
            state.catalog.contains_key(c) && unaudited.contains(&(c.as_str(), id.as_str()))
        });
        return match first {
            Some(&(c, id)) => Err(unaudited_write(c, id)),
            None => Ok(()),
        };
    }
    let mut audited = vec![false; touched.len()];
    for header in txn.audit.iter().filter_map(|e| AuditEvent::header(e).ok()) {
        let subject = (
            header.collection.unwrap_or(""),
            header.record_id.unwrap_or(""),
        );
        if let Some(&i) = seen.get(&subject) {
            audited[i] = true;
        }
    }
    let unaudited = touched
        .iter()
        .zip(&audited)
        .find(|&(&(c, _), &audited)| !audited && state.catalog.contains_key(c));
    match unaudited {
        Some((&(c, id), _)) => Err(unaudited_write(c, id)),
        None => Ok(()),
    }
}

fn unaudited_write(c: &CollectionName, id: &RecordId) -> Error {
    Error::invalid(
        "transaction",
        format!("writes {c}/{id} without an audit event: use the record operations"),
    )
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

/// The first and the last batch of a transaction applied ahead (`txn::ahead`) that
/// wrote a record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Batches {
    pub first: usize,
    pub last: usize,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::canonical::to_canonical_raw;
    use crate::collection::event::Action;
    use crate::log::Op;
    use crate::{Database, DbOptions, TxnMeta};

    /// The audit check finds an unaudited write of a defined collection by reading the
    /// events, or, for a transaction its `Txn` handed over, from what that says.
    #[tokio::test]
    async fn an_unaudited_write_is_found_from_the_events_or_the_txn() {
        let store = crate::StoreUrl::Memory.build().unwrap();
        let opts = DbOptions {
            materialize: false,
            ..DbOptions::default()
        };
        let db = Database::open(store, opts).await.unwrap();
        let def = Definition::from_toml("name = \"notes\"\n").unwrap();
        db.define_all(&TxnMeta::new("t", "t"), &[def])
            .await
            .unwrap();
        let notes = CollectionName::parse("notes").unwrap();
        let rid = |id: &str| RecordId::parse(id).unwrap();
        let put = |id: &str| {
            let doc = to_canonical_raw(&json!({"id": id, "deleted_at": null}));
            Op::whole(notes.clone(), rid(id), Some(Arc::from(doc)))
        };
        let event = AuditEvent {
            id: "e1".into(),
            at: "2026-01-01T00:00:00.000Z".into(),
            actor: "t".into(),
            source: "t".into(),
            action: Action::Create,
            collection: "notes".into(),
            record_id: "a".into(),
            changes: json!({}),
            request_id: None,
        };
        let txn = |unaudited: Option<Vec<&str>>| TxnRecord {
            actor: "t".into(),
            audit: vec![Arc::from(event.to_raw())],
            id: uuid::Uuid::nil(),
            ops: vec![put("a"), put("b")],
            reads: Vec::new(),
            request_id: None,
            source: "t".into(),
            unaudited: unaudited
                .map(|ids| ids.into_iter().map(|id| (notes.clone(), rid(id))).collect()),
        };
        let apply = |txn: TxnRecord| {
            let mut state = (*db.snapshot()).clone();
            let seq = state.seq().next();
            state.apply_txn(&txn, seq, Mode::Validate)
        };
        for unaudited in [None, Some(vec!["b"])] {
            let err = apply(txn(unaudited.clone())).unwrap_err().to_string();
            assert!(
                err.contains("writes notes/b without an audit event"),
                "{unaudited:?}: {err}"
            );
        }
        // What the `Txn` says is taken as it is.
        assert!(apply(txn(Some(Vec::new()))).is_ok());
        db.close().await;
    }
}
