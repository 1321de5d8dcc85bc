//! Transactions: read a snapshot, stage writes, hand them to the committer.
//!
//! A transaction is a closure run against an immutable snapshot. Every read records the
//! version it saw (absent = 0; a scan records the collection's last change), and the
//! committer accepts the writes only if those versions are still current at the exact
//! log position the entry is written at. If not, the closure is run again on a newer
//! snapshot: optimistic concurrency with serializable outcome and no lost updates.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::canonical::to_canonical_raw;
use crate::collection::keys::SortKey;
use crate::error::{Error, Result};
use crate::log::{Op, OpKind, Read, TxnRecord};
use crate::names::{CollectionName, RecordId, Seq};
use crate::state::{Doc, State};

/// Who did it and where it came from; recorded with every transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMeta {
    pub actor: String,
    pub source: String,
    pub request_id: Option<String>,
    /// Flags for hooks, not stored (e.g. aristay's `no_automation` for an import run
    /// without automations).
    pub tags: Vec<String>,
}

impl TxnMeta {
    pub fn new(actor: impl Into<String>, source: impl Into<String>) -> Self {
        TxnMeta {
            actor: actor.into(),
            source: source.into(),
            request_id: None,
            tags: Vec::new(),
        }
    }

    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// A transaction in progress. See the module docs.
pub struct Txn {
    pub(crate) snapshot: Arc<State>,
    reads: BTreeMap<(CollectionName, Option<RecordId>), Seq>,
    writes: BTreeMap<(CollectionName, RecordId), Option<Arc<RawValue>>>,
    audit: Vec<Arc<RawValue>>,
    pub(crate) ctx: Arc<TxnContext>,
    pub(crate) meta: TxnMeta,
    /// Source recorded on audit events made now (hooks and cascades set their own).
    pub(crate) event_source: Option<String>,
    /// Record-level changes so far, for hooks.
    pub(crate) changes: Vec<crate::collection::records::Change>,
    /// Nested appends applied at commit time.
    pub(crate) deferred: Vec<crate::collection::records::DeferredAppend>,
    /// This transaction's staged records by indexed field value, for [`Txn::find`]:
    /// built for a collection at its first `find`, then kept up by `put` (entries may be
    /// stale: `find` re-checks each candidate).
    staged_index: BTreeMap<CollectionName, StagedIndex>,
}

/// `(field, value)` → staged records of one collection.
type StagedIndex = BTreeMap<(String, SortKey), std::collections::BTreeSet<RecordId>>;

/// Adds a staged document's indexed field values to `index`.
fn stage_keys(index: &mut StagedIndex, fields: &[String], id: &RecordId, doc: &Value) {
    for field in fields {
        if let Some(v) = doc.get(field) {
            index
                .entry((field.clone(), SortKey::of(Some(v))))
                .or_default()
                .insert(id.clone());
        }
    }
}

/// What record operations need besides the snapshot: time, ids, the secret key.
#[derive(Debug, Clone)]
pub struct TxnContext {
    pub clock: Arc<dyn crate::clock::Clock>,
    pub ids: Arc<dyn crate::clock::IdSource>,
    pub secrets: Option<Arc<crate::collection::secret::SecretBox>>,
}

impl Txn {
    pub(crate) fn new(snapshot: Arc<State>, ctx: Arc<TxnContext>, meta: TxnMeta) -> Self {
        Txn {
            snapshot,
            reads: BTreeMap::new(),
            writes: BTreeMap::new(),
            audit: Vec::new(),
            ctx,
            meta,
            event_source: None,
            changes: Vec::new(),
            deferred: Vec::new(),
            staged_index: BTreeMap::new(),
        }
    }

    /// Who runs this transaction, from where.
    pub fn meta(&self) -> &TxnMeta {
        &self.meta
    }

    /// The snapshot this attempt reads (reads through it are not recorded: use it only
    /// for what the commit re-checks anyway, such as definitions).
    pub fn state(&self) -> &Arc<State> {
        &self.snapshot
    }

    /// Records a read of a collection as a whole (a scan): any change to the collection
    /// before commit makes this attempt re-run.
    pub fn read_collection(&mut self, collection: &CollectionName) {
        let version = self.snapshot.collection_version(collection);
        self.reads
            .entry((collection.clone(), None))
            .or_insert(version);
    }

    /// The log position of the snapshot this attempt reads.
    pub fn snapshot_seq(&self) -> Seq {
        self.snapshot.seq()
    }

    /// This transaction's staged write of a record: `Some(None)` for a staged delete.
    pub(crate) fn pending(
        &self,
        collection: &CollectionName,
        id: &RecordId,
    ) -> Option<Option<Value>> {
        self.writes
            .get(&(collection.clone(), id.clone()))
            .map(|staged| {
                staged.as_ref().map(|raw| {
                    serde_json::from_str(raw.get()).expect("stored documents are valid JSON")
                })
            })
    }

    /// Reads a record (this transaction's own writes first).
    pub fn get(&mut self, collection: &CollectionName, id: &RecordId) -> Option<Arc<RawValue>> {
        if let Some(staged) = self.writes.get(&(collection.clone(), id.clone())) {
            return staged.clone();
        }
        let doc = self.snapshot.get(collection, id);
        let version = doc.map_or(Seq::ZERO, |d| d.version);
        self.reads
            .entry((collection.clone(), Some(id.clone())))
            .or_insert(version);
        doc.map(|d| d.body.clone())
    }

    /// Reads a record as a parsed value.
    pub fn get_value(&mut self, collection: &CollectionName, id: &RecordId) -> Option<Value> {
        self.get(collection, id)
            .map(|raw| serde_json::from_str(raw.get()).expect("stored documents are valid JSON"))
    }

    /// Reads a record with its version, as of the snapshot (ignores staged writes).
    pub fn get_doc(&mut self, collection: &CollectionName, id: &RecordId) -> Option<Doc> {
        let doc = self.snapshot.get(collection, id).cloned();
        self.reads
            .entry((collection.clone(), Some(id.clone())))
            .or_insert(doc.as_ref().map_or(Seq::ZERO, |d| d.version));
        doc
    }

    /// Fails with `version_conflict` unless the record is currently at `expected`
    /// (what `If-Match` asks for).
    pub fn expect_version(
        &mut self,
        collection: &CollectionName,
        id: &RecordId,
        expected: Seq,
    ) -> Result<()> {
        let actual = self.get_doc(collection, id).map(|d| d.version);
        if actual != Some(expected) {
            return Err(Error::VersionConflict {
                collection: collection.to_string(),
                id: id.to_string(),
                expected,
                actual,
            });
        }
        Ok(())
    }

    /// The records whose indexed `field` equals `value` (deleted ones included), this
    /// transaction's writes included, in id order: an index lookup, not a scan. Each
    /// record found is read (recorded); a record a concurrent transaction adds is not
    /// seen, so use it where the change that would add one also writes something this
    /// transaction reads (aristay's automation: a booking's ledger rows are only written
    /// together with that booking).
    pub fn find(
        &mut self,
        collection: &CollectionName,
        field: &str,
        value: &Value,
    ) -> Result<Vec<(RecordId, Value)>> {
        let indexed = self
            .snapshot
            .definition(collection)
            .is_some_and(|d| d.def.index.iter().any(|f| f == field));
        if !indexed {
            return Err(Error::invalid(
                "find",
                format!("{field} is not an indexed field of {collection}"),
            ));
        }
        let mut ids: std::collections::BTreeSet<RecordId> = self
            .snapshot
            .indexed(collection, field, value)
            .map(|found| found.iter().map(|(id, _)| id.clone()).collect())
            .unwrap_or_default();
        if !self.staged_index.contains_key(collection) {
            let fields = &self
                .snapshot
                .definition(collection)
                .expect("checked above")
                .def
                .index;
            let mut index = StagedIndex::new();
            for ((c, id), staged) in &self.writes {
                if c == collection
                    && let Some(raw) = staged
                {
                    let doc: Value = serde_json::from_str(raw.get())
                        .map_err(|e| Error::corrupt("staged document", e))?;
                    stage_keys(&mut index, fields, id, &doc);
                }
            }
            self.staged_index.insert(collection.clone(), index);
        }
        if let Some(staged) =
            self.staged_index[collection].get(&(field.to_string(), SortKey::of(Some(value))))
        {
            ids.extend(staged.iter().cloned());
        }
        let mut out = Vec::new();
        for id in ids {
            if let Some(doc) = self.get_value(collection, &id)
                && doc.get(field) == Some(value)
            {
                out.push((id, doc));
            }
        }
        Ok(out)
    }

    /// Every record of a collection, this transaction's writes included, in id order.
    /// Records the collection's version, so a concurrent insert makes this attempt re-run.
    pub fn scan(&mut self, collection: &CollectionName) -> Vec<(RecordId, Arc<RawValue>)> {
        self.read_collection(collection);
        let mut out: BTreeMap<RecordId, Arc<RawValue>> = self
            .snapshot
            .collection(collection)
            .map(|c| {
                c.docs
                    .iter()
                    .map(|(id, d)| (id.clone(), d.body.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for ((c, id), staged) in &self.writes {
            if c == collection {
                match staged {
                    Some(body) => out.insert(id.clone(), body.clone()),
                    None => out.remove(id),
                };
            }
        }
        out.into_iter().collect()
    }

    /// Stages a full new document. It must be a JSON object.
    pub fn put(&mut self, collection: &CollectionName, id: &RecordId, doc: &Value) -> Result<()> {
        if !doc.is_object() {
            return Err(Error::invalid("document", "must be a JSON object"));
        }
        if let Some(index) = self.staged_index.get_mut(collection)
            && let Some(def) = self.snapshot.definition(collection)
        {
            stage_keys(index, &def.def.index, id, doc);
        }
        self.writes.insert(
            (collection.clone(), id.clone()),
            Some(Arc::from(to_canonical_raw(doc))),
        );
        Ok(())
    }

    /// Stages a deletion (no record logic: see `Txn::delete` for records).
    pub fn delete_raw(&mut self, collection: &CollectionName, id: &RecordId) {
        self.writes.insert((collection.clone(), id.clone()), None);
    }

    /// Adds an audit event (any JSON object) to the transaction's log record.
    pub fn audit(&mut self, event: &Value) -> Result<()> {
        if !event.is_object() {
            return Err(Error::invalid("audit event", "must be a JSON object"));
        }
        self.audit.push(Arc::from(to_canonical_raw(event)));
        Ok(())
    }

    /// True when nothing was staged.
    pub fn is_read_only(&self) -> bool {
        self.writes.is_empty() && self.audit.is_empty() && self.deferred.is_empty()
    }

    pub(crate) fn into_pending(self, id: Uuid) -> PendingTxn {
        let meta = &self.meta;
        let reads = self
            .reads
            .into_iter()
            .map(|((collection, id), version)| Read {
                collection,
                id,
                version,
            })
            .collect();
        let ops = self
            .writes
            .into_iter()
            .map(|((collection, id), doc)| Op {
                collection,
                op: if doc.is_some() {
                    OpKind::Put
                } else {
                    OpKind::Delete
                },
                doc,
                id,
            })
            .collect();
        PendingTxn {
            deferred: self.deferred,
            record: TxnRecord {
                actor: meta.actor.clone(),
                audit: self.audit,
                id,
                ops,
                reads,
                request_id: meta.request_id.clone(),
                source: meta.source.clone(),
            },
        }
    }
}

/// A finished attempt on its way to the log.
#[derive(Debug, Clone)]
pub struct PendingTxn {
    pub record: TxnRecord,
    pub deferred: Vec<crate::collection::records::DeferredAppend>,
}

/// A committed transaction: the closure's value and the log position it landed at.
#[derive(Debug, Clone)]
pub struct Committed<T> {
    pub value: T,
    /// The log position of the entry holding the writes (the snapshot position for a
    /// read-only transaction).
    pub seq: Seq,
    /// The id of the attempt that committed (`None` when read-only).
    pub txn_id: Option<Uuid>,
}
