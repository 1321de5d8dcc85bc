//! The in-memory state: every current document, at one log position.
//!
//! Each process holds the whole current state (`docs/architecture.md`). It is built from
//! persistent maps (`imbl`), so a snapshot is an `Arc` clone: a transaction reads a
//! consistent view without holding a lock, and applying a commit copies only the
//! touched tree paths. Documents are kept as their canonical JSON text, not parsed
//! values, which keeps resident memory close to the documents' own size.

mod integrity;

pub(crate) use integrity::Batches;

pub use crate::collection::stored::{Doc, Item, Shape};

use std::sync::Arc;

use imbl::OrdMap;

use crate::collection::definition::Compiled;
use crate::collection::integrity::{Indexes, Mode, Referrers};
use crate::error::{Error, Result};
use crate::log::{GENESIS_HASH, LogEntry, TxnRecord};
use crate::names::{CollectionName, RecordId, Seq};
use crate::store::log_path;

/// One collection's documents, and the position of its last change.
#[derive(Debug, Clone, Default)]
pub struct CollectionState {
    pub changed: Seq,
    pub docs: OrdMap<RecordId, Doc>,
    /// Derived integrity and lookup indexes (empty for undefined collections).
    pub indexes: Indexes,
}

/// Every document at log position `seq`.
#[derive(Debug, Clone)]
pub struct State {
    seq: Seq,
    hash: String,
    pub(crate) collections: OrdMap<CollectionName, CollectionState>,
    /// Compiled definitions of the defined collections.
    pub(crate) catalog: OrdMap<CollectionName, Arc<Compiled>>,
    /// Live records pointing at each record, for `references` checks.
    pub(crate) referrers: Referrers,
}

impl Default for State {
    fn default() -> Self {
        State {
            seq: Seq::ZERO,
            hash: GENESIS_HASH.to_string(),
            collections: OrdMap::new(),
            catalog: OrdMap::new(),
            referrers: OrdMap::new(),
        }
    }
}

impl State {
    /// Rebuilds a state from checkpoint parts (definitions and indexes re-derived).
    pub(crate) fn from_parts(
        seq: Seq,
        hash: String,
        collections: OrdMap<CollectionName, CollectionState>,
    ) -> Result<Self> {
        let mut state = State {
            seq,
            hash,
            collections,
            catalog: OrdMap::new(),
            referrers: OrdMap::new(),
        };
        state.rebuild_derived()?;
        Ok(state)
    }

    /// The compiled definition of a collection, if it has one.
    pub fn definition(&self, collection: &CollectionName) -> Option<&Arc<Compiled>> {
        self.catalog.get(collection)
    }

    /// Every defined collection.
    pub fn definitions(&self) -> impl Iterator<Item = (&CollectionName, &Arc<Compiled>)> {
        self.catalog.iter()
    }

    /// The log position this state reflects.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// The hash of the entry at `seq` (the genesis hash for the empty log).
    pub fn head_hash(&self) -> &str {
        &self.hash
    }

    pub fn get(&self, collection: &CollectionName, id: &RecordId) -> Option<&Doc> {
        self.collections.get(collection)?.docs.get(id)
    }

    pub fn collection(&self, collection: &CollectionName) -> Option<&CollectionState> {
        self.collections.get(collection)
    }

    pub fn collections(&self) -> impl Iterator<Item = (&CollectionName, &CollectionState)> {
        self.collections.iter()
    }

    /// The records (deleted ones included) whose indexed `field` equals `value`: one
    /// index lookup; `None` when there are none or the field is not indexed.
    pub fn indexed(
        &self,
        collection: &CollectionName,
        field: &str,
        value: &serde_json::Value,
    ) -> Option<&crate::collection::integrity::Ids> {
        self.collection(collection)?
            .indexes
            .fields
            .get(field)?
            .get(&crate::collection::keys::SortKey::of(Some(value)))
    }

    /// The live records whose indexed `field` equals `value` (see [`State::indexed`]).
    pub fn find_live(
        &self,
        collection: &CollectionName,
        field: &str,
        value: &serde_json::Value,
    ) -> Vec<(RecordId, serde_json::Value)> {
        let Some(found) = self.indexed(collection, field, value) else {
            return Vec::new();
        };
        found
            .iter()
            .filter_map(|(id, raw)| {
                let v: serde_json::Value = serde_json::from_str(raw.get()).ok()?;
                crate::collection::keys::is_live(&v).then(|| (id.clone(), v))
            })
            .collect()
    }

    /// Version of a record, `Seq(0)` when absent.
    pub fn version_of(&self, collection: &CollectionName, id: &RecordId) -> Seq {
        self.get(collection, id).map_or(Seq::ZERO, |d| d.version)
    }

    /// Last change of a collection, `Seq(0)` when it never changed.
    pub fn collection_version(&self, collection: &CollectionName) -> Seq {
        self.collections
            .get(collection)
            .map_or(Seq::ZERO, |c| c.changed)
    }

    /// Number of documents over all collections.
    pub fn len(&self) -> usize {
        self.collections.values().map(|c| c.docs.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies the next log entry. It must be at `seq + 1` and link to this state's hash.
    pub(crate) fn apply(&mut self, entry: &LogEntry) -> Result<()> {
        let seq = entry.seq();
        if seq != self.seq.next() {
            return Err(Error::corrupt(
                log_path(seq),
                format!("applied out of order after position {}", self.seq),
            ));
        }
        if entry.body.prev_hash != self.hash {
            return Err(Error::corrupt(
                log_path(seq),
                "prev_hash does not match the previous entry's hash: the chain is broken",
            ));
        }
        // A void entry (a quarantined torn write) changes nothing but the head.
        if entry.body.void.is_some() && !entry.body.txns.is_empty() {
            return Err(Error::corrupt(
                log_path(seq),
                "a void entry must not carry transactions",
            ));
        }
        for txn in &entry.body.txns {
            self.apply_txn(txn, seq, Mode::Trust)?;
        }
        self.seq = seq;
        self.hash.clone_from(&entry.hash);
        Ok(())
    }

    /// Marks this state as the one at `seq` with entry hash `hash` (the committer built it
    /// by applying the entry's transactions one by one).
    pub(crate) fn seal(&mut self, seq: Seq, hash: &str) {
        self.seq = seq;
        self.hash = hash.to_string();
    }

    /// Writes a transaction's documents at `seq` (no index work): whole documents as they
    /// are, item operations applied to the record they change (only the item: see
    /// [`Doc`]).
    pub(crate) fn write_docs(&mut self, txn: &TxnRecord, seq: Seq) -> Result<()> {
        for op in &txn.ops {
            let shape = self
                .catalog
                .get(&op.collection)
                .map_or(Shape::none(), |d| &d.shape);
            let coll = self.collections.entry(op.collection.clone()).or_default();
            coll.changed = seq;
            let after = Doc::apply(coll.docs.get(&op.id), op, seq, shape).map_err(|e| {
                Error::corrupt(log_path(seq), format!("{}/{}: {e}", op.collection, op.id))
            })?;
            match after {
                Some(doc) => {
                    coll.docs.insert(op.id.clone(), doc);
                }
                None => {
                    coll.docs.remove(&op.id);
                }
            }
        }
        Ok(())
    }

    /// The nested arrays a collection's documents keep apart (none when undefined).
    pub fn shape(&self, c: &CollectionName) -> &Shape {
        self.catalog.get(c).map_or(Shape::none(), |d| &d.shape)
    }
}
