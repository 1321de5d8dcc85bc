//! Transactions: read a snapshot, stage writes, hand them to the committer.
//!
//! A transaction is a closure run against an immutable snapshot. Every read records the
//! version it saw (absent = 0; a scan records the collection's last change), and the
//! committer accepts the writes only if those versions are still current at the exact
//! log position the entry is written at. If not, the closure is run again on a newer
//! snapshot: optimistic concurrency with serializable outcome and no lost updates.
//!
//! A transaction knows, cheaply and at any point, how many bytes it would take in a log
//! entry ([`Txn::log_len`]): each staged write, audit event and read adds its exact
//! encoded size as it is staged. So a caller building a large transaction (an import)
//! can stop and refuse it before it passes `max_entry_bytes`, instead of building it in
//! full and having the committer refuse it. Every staged document is also checked
//! against `max_record_bytes` here, the one place all writes pass through.

mod ahead;
mod cascade;
mod deferred;
mod define;
mod events;
mod hooks;
mod nested;
mod records;
mod revert;
mod secrets;
mod writes;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::canonical::to_canonical_raw;
use crate::collection::definition::Compiled;
use crate::collection::event::{AuditEvent, Source};
use crate::collection::integrity::validate_doc;
use crate::collection::keys::SortKey;
use crate::collection::stored::parse as parse_stored;
use crate::error::{Error, Result};
use crate::log::{ENTRY_OVERHEAD, Op, Read, TxnRecord, json_len};
use crate::names::{CollectionName, RecordId, Seq};
use crate::state::{Doc, State};

pub(crate) use ahead::{Applied, Applying};
pub use deferred::DeferredAppend;
pub(crate) use deferred::resolve_appends;
pub use events::diff;
pub(crate) use hooks::run_hooks;
pub use hooks::{Action, Change, Hook, ItemChange};
pub use revert::Reverted;

/// How many snapshot documents a transaction keeps parsed ([`Txn::get_shared`]): enough
/// for the properties, templates and owners an import's hooks read again and again, a
/// bound on what a transaction reading a whole collection one record at a time holds.
pub const PARSED_KEPT: usize = 1024;

/// A flag on a transaction for its hooks to read, never stored (apps name theirs as
/// constants: aristay's `NO_AUTOMATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag(&'static str);

impl Tag {
    /// Keeps the handle's hooks out of a transaction: a revert writes states the hooks
    /// already reacted to when they were first written (see `crate::revert`).
    pub const NO_HOOKS: Tag = Tag("no_hooks");

    pub const fn new(name: &'static str) -> Tag {
        Tag(name)
    }

    pub fn name(self) -> &'static str {
        self.0
    }
}

/// Who did it and where it came from; recorded with every transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMeta {
    pub actor: String,
    pub source: Source,
    pub request_id: Option<String>,
    /// Flags for hooks, not stored (e.g. aristay's `no_automation` for an import run
    /// without automations).
    pub tags: Vec<Tag>,
}

impl TxnMeta {
    pub fn new(actor: impl Into<String>, source: impl Into<Source>) -> Self {
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

    pub fn with_tag(mut self, tag: Tag) -> Self {
        if !self.has_tag(tag) {
            self.tags.push(tag);
        }
        self
    }

    pub fn has_tag(&self, tag: Tag) -> bool {
        self.tags.contains(&tag)
    }
}

/// A transaction in progress. See the module docs.
pub struct Txn {
    pub(crate) snapshot: Arc<State>,
    reads: BTreeMap<(CollectionName, Option<RecordId>), Seq>,
    writes: writes::Writes,
    audit: Vec<Arc<RawValue>>,
    pub(crate) ctx: Arc<TxnContext>,
    pub(crate) meta: TxnMeta,
    /// Source recorded on audit events made now (hooks and cascades set their own).
    pub(crate) event_source: Option<Source>,
    /// Record-level changes so far, for hooks.
    pub(crate) changes: Vec<crate::txn::Change>,
    /// Nested appends applied at commit time.
    pub(crate) deferred: Vec<crate::txn::DeferredAppend>,
    /// This transaction's staged records by indexed field value, for [`Txn::find`]:
    /// built for a collection's field at its first `find` on it, then kept up by `put`
    /// (entries may be stale: `find` re-checks each candidate). Only the fields found by:
    /// an import finds by one of its five indexed fields, for every record it stages.
    staged_index: BTreeMap<CollectionName, Vec<(String, StagedIndex)>>,
    /// Encoded bytes of the staged ops, audit events and reads (each with its comma),
    /// plus an upper estimate for deferred appends: see [`Txn::log_len`].
    staged_bytes: usize,
    /// How many of `changes` the hooks have seen (see `hooks::run_hooks`).
    pub(crate) hooked: usize,
    /// Create events stored by reference to their record's staged whole document
    /// (`collection::created`), by record: their index in `audit`.
    created: foldhash::HashMap<(CollectionName, RecordId), usize>,
    /// The records the other audit events are about: with `created`, every record an
    /// event is about (`TxnRecord::unaudited` is the rest).
    audited: foldhash::HashSet<(CollectionName, RecordId)>,
    /// Whether its writes are applied ahead, as they are staged (`ahead`).
    ahead: ahead::Ahead,
    /// [`Txn::scan_values`] of collections this transaction has not written since.
    scans: foldhash::HashMap<CollectionName, Scanned>,
    /// Snapshot documents [`Txn::get_shared`] parsed (never stale: the snapshot does
    /// not change, and this transaction's own writes are looked up first).
    parsed: foldhash::HashMap<(CollectionName, RecordId), Arc<Value>>,
    /// The last time `Txn::now` wrote, by its millisecond.
    now_written: std::cell::RefCell<Option<(i64, String)>>,
    /// The bytes of the transaction's own fields in the log ([`Txn::log_len`]),
    /// counted once: they do not change, and an import asks for each row.
    meta_len: std::cell::OnceCell<usize>,
}

/// A collection's records parsed, in id order (see [`Txn::scan_values`]).
pub type Scanned = Arc<Vec<(RecordId, Arc<Value>)>>;

/// A staged write of one record: the record as this transaction leaves it (`None`:
/// deleted), for the transaction's own reads, and how it goes into the log: the whole
/// document (`items` is `None`), or only the item operations that made it (a record this
/// transaction changed only through nested item operations).
#[derive(Debug, Clone)]
struct Staged {
    doc: Option<Arc<RawValue>>,
    items: Option<Vec<Op>>,
    /// `doc` parsed, when the writer had it (a record operation) and it parses back
    /// exactly: handed to the committer with the `put` so it does not parse it again.
    value: Option<Arc<Value>>,
    /// The definition of the record operation that staged `value`: it is validated
    /// against it when the transaction is handed over (`Txn::take_pending`).
    def: Option<Arc<Compiled>>,
}

impl Staged {
    /// This write as the helper applying ahead takes it, if it can (`ahead`).
    fn ahead<'a>(
        &'a self,
        collection: &'a CollectionName,
        id: &'a RecordId,
    ) -> Option<ahead::Put<'a>> {
        ahead::Put::new(
            collection,
            id,
            self.doc.as_ref(),
            self.value.as_ref(),
            self.def.as_ref(),
            self.items.is_some(),
        )
    }

    /// Its encoded bytes in the log, with the commas.
    fn log_len(&self, collection: &CollectionName, id: &RecordId) -> usize {
        match &self.items {
            Some(ops) => ops.iter().map(|op| json_len(op) + 1).sum(),
            None => Op::whole_len(collection, id, self.doc.as_deref()) + 1,
        }
    }
}

/// A field's value → the staged records of one collection with it.
type StagedIndex = BTreeMap<SortKey, std::collections::BTreeSet<RecordId>>;

/// Adds a staged document's values of the indexed `fields` to their indexes.
fn stage_keys(fields: &mut [(String, StagedIndex)], id: &RecordId, doc: &Value) {
    for (field, index) in fields {
        if let Some(v) = doc.get(field.as_str()) {
            index
                .entry(SortKey::of(Some(v)))
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
    /// `DbOptions::max_record_bytes`.
    pub max_record_bytes: usize,
    /// `DbOptions::max_entry_bytes`.
    pub max_entry_bytes: usize,
    /// `DbOptions::apply_ahead_after`.
    pub apply_ahead_after: usize,
    /// The handle's hooks, for [`Txn::run_hooks`].
    pub hooks: Vec<Arc<dyn Hook>>,
}

impl Txn {
    pub(crate) fn new(snapshot: Arc<State>, ctx: Arc<TxnContext>, meta: TxnMeta) -> Self {
        Txn {
            snapshot,
            reads: BTreeMap::new(),
            writes: writes::Writes::default(),
            audit: Vec::new(),
            ctx,
            meta,
            event_source: None,
            changes: Vec::new(),
            deferred: Vec::new(),
            staged_index: BTreeMap::new(),
            staged_bytes: 0,
            hooked: 0,
            created: foldhash::HashMap::default(),
            audited: foldhash::HashSet::default(),
            ahead: ahead::Ahead::Off,
            scans: foldhash::HashMap::default(),
            parsed: foldhash::HashMap::default(),
            now_written: std::cell::RefCell::new(None),
            meta_len: std::cell::OnceCell::new(),
        }
    }

    /// Lets this transaction apply its writes ahead once it has staged
    /// `DbOptions::apply_ahead_after` documents (see `ahead`): for a transaction on its
    /// way to the committer, not a trial step.
    pub(crate) fn apply_ahead(&mut self) {
        self.ahead = ahead::Ahead::new(self.ctx.apply_ahead_after);
    }

    /// Hands a staged write to the helper applying ahead (`op`: the write as the helper
    /// takes it, `None` when it cannot), starting the helper when enough are staged.
    fn note_ahead(&mut self, op: Option<Op>) {
        use ahead::{Ahead, Helper};
        match (&mut self.ahead, op) {
            (Ahead::Off | Ahead::Stopped, _) => {}
            (Ahead::On(helper), Some(op)) => helper.push(op),
            (Ahead::Counting { staged, after }, Some(_)) => {
                *staged += 1;
                if *staged >= *after {
                    // Every write staged so far is one the helper takes (any other
                    // stopped the count).
                    let puts = self
                        .writes
                        .iter()
                        .filter_map(|(c, id, staged)| staged.ahead(c, id));
                    self.ahead = match Helper::start(self.snapshot.clone(), puts) {
                        Some(helper) => Ahead::On(helper),
                        None => Ahead::Stopped,
                    };
                }
            }
            (_, None) => self.ahead = Ahead::Stopped,
        }
    }

    /// Records a read (the first version seen of a key is the one checked at commit).
    fn note_read(&mut self, collection: &CollectionName, id: Option<&RecordId>, version: Seq) {
        use std::collections::btree_map::Entry;
        if let Entry::Vacant(slot) = self.reads.entry((collection.clone(), id.cloned())) {
            slot.insert(version);
            let read = Read {
                collection: collection.clone(),
                id: id.cloned(),
                version,
            };
            self.staged_bytes += json_len(&read) + 1;
        }
    }

    /// Bytes this transaction would take in a log entry, as staged so far: exact for
    /// its writes, audit events and reads, an upper estimate for nested appends (they
    /// are resolved at commit). Constant time. What hooks will add is not included until
    /// they have run ([`Txn::run_hooks`]).
    pub fn log_len(&self) -> usize {
        let meta_len = *self.meta_len.get_or_init(|| {
            json_len(&TxnRecord {
                actor: self.meta.actor.clone(),
                audit: Vec::new(),
                id: Uuid::nil(),
                ops: Vec::new(),
                reads: Vec::new(),
                request_id: self.meta.request_id.clone(),
                source: self.meta.source.to_string(),
                unaudited: None,
            })
        });
        // `"audit":[],` appears once there is an event.
        meta_len + 12 + self.staged_bytes
    }

    /// The most bytes one log entry may hold (`DbOptions::max_entry_bytes`).
    pub fn max_entry_bytes(&self) -> usize {
        self.ctx.max_entry_bytes
    }

    /// Whether this transaction, as staged so far plus `reserve` more bytes, would fit
    /// in one log entry on its own.
    pub fn fits_in_entry(&self, reserve: usize) -> bool {
        ENTRY_OVERHEAD + self.log_len() + 1 + reserve <= self.ctx.max_entry_bytes
    }

    /// Runs the handle's hooks on the changes they have not seen yet, now rather than at
    /// commit (they run at commit anyway, on whatever is left). A caller measuring its
    /// transaction as it grows ([`Txn::log_len`]) calls this to count what the hooks add.
    pub fn run_hooks(&mut self) -> Result<()> {
        let hooks = self.ctx.hooks.clone();
        crate::txn::run_hooks(self, &hooks)
    }

    /// Adds the estimated log bytes of a deferred append (see [`Txn::log_len`]).
    pub(crate) fn note_deferred_bytes(&mut self, bytes: usize) {
        self.staged_bytes += bytes;
    }

    /// Stages `doc` (or a deletion) for `collection/id`, keeping `staged_bytes` exact.
    fn stage(&mut self, collection: &CollectionName, id: &RecordId, doc: Option<Arc<RawValue>>) {
        self.restage(
            collection,
            id,
            Staged {
                doc,
                items: None,
                value: None,
                def: None,
            },
        );
    }

    /// Stages an operation that changes part of a record (`set`, an item operation) and
    /// leaves `collection/id` as `doc`. A record this transaction already writes whole
    /// stays a whole write (its new document holds the change); otherwise the operation
    /// is what goes into the log.
    pub(crate) fn stage_item(
        &mut self,
        collection: &CollectionName,
        id: &RecordId,
        doc: Arc<RawValue>,
        op: Op,
    ) {
        let items = match self.writes.get(collection, id) {
            Some(Staged { items: None, .. }) => None,
            Some(Staged {
                items: Some(ops), ..
            }) => Some(ops.iter().cloned().chain([op]).collect()),
            None => Some(vec![op]),
        };
        self.restage(
            collection,
            id,
            Staged {
                doc: Some(doc),
                items,
                value: None,
                def: None,
            },
        );
    }

    fn restage(&mut self, collection: &CollectionName, id: &RecordId, staged: Staged) {
        let added = staged.log_len(collection, id);
        let ahead = match &self.ahead {
            ahead::Ahead::Off | ahead::Ahead::Stopped => None,
            state => {
                let behind = matches!(state, ahead::Ahead::On(helper) if helper.behind());
                Some(staged.ahead(collection, id).map(|put| put.op(behind)))
            }
        };
        let key = (collection.clone(), id.clone());
        let created = self.created.remove(&key);
        if created.is_some() {
            self.audited.insert(key.clone());
        }
        if let Some(old) = self.writes.insert(collection, id, staged) {
            self.staged_bytes -= old.log_len(collection, id);
            // The create event named the document this write replaces: it now carries
            // its changes itself.
            if let (Some(i), Some(doc)) = (created, &old.doc) {
                let full: Arc<RawValue> = Arc::from(
                    crate::collection::created::expand_raw(&self.audit[i], doc)
                        .expect("events and documents staged here are valid JSON"),
                );
                self.staged_bytes += full.get().len();
                self.staged_bytes -= self.audit[i].get().len();
                self.audit[i] = full;
            }
        }
        self.staged_bytes += added;
        if !self.scans.is_empty() {
            self.scans.remove(collection);
        }
        if let Some(op) = ahead {
            self.note_ahead(op);
        }
    }

    /// Whether this transaction writes `collection/id` as a whole document (a `put`).
    fn writes_whole(&self, collection: &CollectionName, id: &RecordId) -> bool {
        self.writes
            .get(collection, id)
            .is_some_and(|s| s.items.is_none() && s.doc.is_some())
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
        self.note_read(collection, None, version);
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
        self.writes.get(collection, id).map(|staged| {
            staged.doc.as_ref().map(|raw| {
                serde_json::from_str(raw.get()).expect("stored documents are valid JSON")
            })
        })
    }

    /// Reads a record (this transaction's own writes first).
    pub fn get(&mut self, collection: &CollectionName, id: &RecordId) -> Option<Arc<RawValue>> {
        if let Some(staged) = self.writes.get(collection, id) {
            return staged.doc.clone();
        }
        self.get_doc(collection, id).map(|d| d.body().clone())
    }

    /// Whether `collection/id` exists, this transaction's writes first, without
    /// recording a read (see `Txn::create`: for ids nobody else can have used).
    pub(crate) fn exists_unread(&self, collection: &CollectionName, id: &RecordId) -> bool {
        match self.writes.get(collection, id) {
            Some(staged) => staged.doc.is_some(),
            None => self.snapshot.get(collection, id).is_some(),
        }
    }

    /// Reads a record as a parsed value.
    pub fn get_value(&mut self, collection: &CollectionName, id: &RecordId) -> Option<Value> {
        self.get(collection, id).map(|raw| parse_stored(&raw))
    }

    /// Reads a record as a shared parsed value, noting the read like [`Txn::get`]: this
    /// transaction's write as it was staged, or the snapshot's document, parsed once per
    /// transaction for the first [`PARSED_KEPT`] records read so (an automation reads the
    /// same property for each of a thousand bookings an import stages). For records a
    /// caller reads again and again; [`Txn::get_value`] keeps nothing.
    pub fn get_shared(&mut self, collection: &CollectionName, id: &RecordId) -> Option<Arc<Value>> {
        if let Some(staged) = self.writes.get(collection, id) {
            return match (&staged.value, &staged.doc) {
                (Some(value), _) => Some(value.clone()),
                (None, doc) => doc.as_ref().map(|raw| Arc::new(parse_stored(raw))),
            };
        }
        let doc = self.get_doc(collection, id)?;
        let key = (collection.clone(), id.clone());
        if let Some(value) = self.parsed.get(&key) {
            return Some(value.clone());
        }
        let value = Arc::new(doc.value());
        if self.parsed.len() < PARSED_KEPT {
            self.parsed.insert(key, value.clone());
        }
        Some(value)
    }

    /// Reads a record with its version, as of the snapshot (ignores staged writes).
    pub fn get_doc(&mut self, collection: &CollectionName, id: &RecordId) -> Option<Doc> {
        let doc = self.snapshot.get(collection, id).cloned();
        self.note_read(
            collection,
            Some(id),
            doc.as_ref().map_or(Seq::ZERO, |d| d.version),
        );
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
        let kept = self
            .staged_index
            .get(collection)
            .and_then(|fields| fields.iter().position(|(f, _)| f == field));
        let at = match kept {
            Some(at) => at,
            None => {
                let mut index = (field.to_string(), StagedIndex::new());
                for (id, staged) in self.writes.in_collection(collection) {
                    if let Some(raw) = &staged.doc {
                        let doc: Value = serde_json::from_str(raw.get())
                            .map_err(|e| Error::corrupt("staged document", e))?;
                        stage_keys(std::slice::from_mut(&mut index), id, &doc);
                    }
                }
                let fields = self.staged_index.entry(collection.clone()).or_default();
                fields.push(index);
                fields.len() - 1
            }
        };
        if let Some(staged) = self.staged_index[collection][at]
            .1
            .get(&SortKey::of(Some(value)))
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
                    .map(|(id, d)| (id.clone(), d.body().clone()))
                    .collect()
            })
            .unwrap_or_default();
        // Only this collection's staged writes (an import's hooks scan the templates
        // once per booking, with thousands of other records staged).
        for (id, staged) in self.writes.in_collection(collection) {
            match &staged.doc {
                Some(body) => out.insert(id.clone(), body.clone()),
                None => out.remove(id),
            };
        }
        out.into_iter().collect()
    }

    /// [`Txn::scan`], parsed: every record of a collection, this transaction's writes
    /// included, in id order. Parsed once per transaction for as long as it does not
    /// write the collection (a hook that reads a small collection for every record of an
    /// import: aristay's automation and its templates). Records the read as `scan` does.
    pub fn scan_values(&mut self, collection: &CollectionName) -> Scanned {
        // A kept parse was made by a `scan`, which recorded the read.
        if let Some(scanned) = self.scans.get(collection) {
            return scanned.clone();
        }
        let scanned: Scanned = Arc::new(
            self.scan(collection)
                .into_iter()
                .map(|(id, raw)| {
                    let value = serde_json::from_str(raw.get())
                        .expect("stored and staged documents are valid JSON");
                    (id, Arc::new(value))
                })
                .collect(),
        );
        self.scans.insert(collection.clone(), scanned.clone());
        scanned
    }

    /// Stages a full new document. It must be a JSON object, and its own fields (and
    /// each of its nested items) must be within `max_record_bytes`.
    pub fn put(&mut self, collection: &CollectionName, id: &RecordId, doc: &Value) -> Result<()> {
        let raw = self.checked_doc(collection, id, doc)?;
        self.stage(collection, id, Some(raw));
        Ok(())
    }

    /// [`Txn::put`] of a record of `def`'s collection whose document the caller shares
    /// (a record operation, which also hands it to the hooks). A document that parses
    /// back from its text exactly (`Op::carries_exactly`) travels parsed to the
    /// committer, validated beforehand (see [`Txn::take_pending`]).
    pub(crate) fn put_shared(
        &mut self,
        def: &Arc<Compiled>,
        id: &RecordId,
        doc: Arc<Value>,
    ) -> Result<()> {
        let raw = self.checked_doc(&def.name, id, &doc)?;
        let exact = Op::carries_exactly(&doc);
        self.restage(
            &def.name,
            id,
            Staged {
                doc: Some(raw),
                items: None,
                def: exact.then(|| def.clone()),
                value: exact.then_some(doc),
            },
        );
        Ok(())
    }

    /// Stages a record's new document `doc` as a `set`: logged without its fields `keep`
    /// (its nested arrays, which `doc` must hold unchanged), so changing a record with
    /// many nested items does not log them again. Checked as [`Txn::put`] checks.
    pub(crate) fn put_keeping(
        &mut self,
        collection: &CollectionName,
        id: &RecordId,
        doc: &Value,
        keep: Vec<String>,
    ) -> Result<()> {
        let raw = self.checked_doc(collection, id, doc)?;
        let own: serde_json::Map<String, Value> = doc
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| !keep.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let own = Arc::from(to_canonical_raw(&Value::Object(own)));
        let op = Op::set(collection.clone(), id.clone(), own, keep);
        self.stage_item(collection, id, raw, op);
        Ok(())
    }

    /// A document about to be staged, as canonical text: a JSON object within the size
    /// limits, its index keys noted for this transaction's own reads.
    fn checked_doc(
        &mut self,
        collection: &CollectionName,
        id: &RecordId,
        doc: &Value,
    ) -> Result<Arc<RawValue>> {
        if !doc.is_object() {
            return Err(Error::invalid("document", "must be a JSON object"));
        }
        let raw: Arc<RawValue> = Arc::from(to_canonical_raw(doc));
        crate::collection::document::check_record_size(
            self.snapshot.definition(collection).map(|d| d.as_ref()),
            collection,
            doc,
            raw.get().len(),
            self.ctx.max_record_bytes,
        )?;
        self.note_staged_keys(collection, id, doc);
        Ok(raw)
    }

    /// Keeps [`Txn::find`]'s index of staged records up with `doc`, staged for
    /// `collection/id` (every write of a whole document or an item goes through here).
    pub(crate) fn note_staged_keys(
        &mut self,
        collection: &CollectionName,
        id: &RecordId,
        doc: &Value,
    ) {
        if let Some(fields) = self.staged_index.get_mut(collection) {
            stage_keys(fields, id, doc);
        }
    }

    /// Stages a deletion (no record logic: see `Txn::delete` for records).
    pub fn delete_raw(&mut self, collection: &CollectionName, id: &RecordId) {
        self.stage(collection, id, None);
    }

    /// Adds an audit event to the transaction's log record.
    pub fn audit(&mut self, event: &AuditEvent) {
        // An event about no valid record name audits none (the committer agrees).
        let subject = CollectionName::parse_any(&event.collection)
            .and_then(|c| Ok((c, RecordId::parse(&event.record_id)?)));
        self.audit_about(event, subject.ok());
    }

    /// [`Txn::audit`] of an event whose record the caller names (`event.collection`,
    /// `event.record_id`, already parsed).
    pub(crate) fn audit_about(
        &mut self,
        event: &AuditEvent,
        subject: Option<(CollectionName, RecordId)>,
    ) {
        debug_assert!(subject.as_ref().is_none_or(|(c, id)| {
            c.as_str() == event.collection && id.as_str() == event.record_id
        }));
        let raw: Arc<RawValue> = Arc::from(event.to_raw());
        self.staged_bytes += raw.get().len() + 1;
        self.audit.push(raw);
        if let Some(subject) = subject {
            self.audited.insert(subject);
        }
    }

    /// Adds a create event stored by reference to the record's staged document.
    fn audit_created(&mut self, collection: &CollectionName, id: &RecordId, raw: Box<RawValue>) {
        let raw: Arc<RawValue> = Arc::from(raw);
        self.staged_bytes += raw.get().len() + 1;
        self.created
            .insert((collection.clone(), id.clone()), self.audit.len());
        self.audit.push(raw);
    }

    /// True when nothing was staged.
    pub fn is_read_only(&self) -> bool {
        self.writes.is_empty() && self.audit.is_empty() && self.deferred.is_empty()
    }

    /// The finished transaction as the committer takes it. Each document that travels
    /// parsed is validated here, against the definition its record operation used, by
    /// the caller's thread rather than the committer's (which serializes every commit):
    /// the committer trusts a document that passed for as long as its collection keeps
    /// that very definition (`State::apply_txn`). One that fails is simply not marked,
    /// and the committer finds it, reporting the same error in the same order as for
    /// any other (so an app's own checks after a record operation still answer first).
    ///
    /// Takes what the committer needs and leaves the rest (the hooks' changes, the read
    /// memos) for the caller to drop when it suits it: `Database::transact` drops it
    /// while the committer works, not before handing the transaction over.
    pub(crate) fn take_pending(&mut self, id: Uuid) -> PendingTxn {
        let writes = std::mem::take(&mut self.writes);
        let unaudited: Vec<(CollectionName, RecordId)> = writes
            .iter()
            .map(|(c, id, _)| (c.clone(), id.clone()))
            .filter(|key| !self.created.contains_key(key) && !self.audited.contains(key))
            .collect();
        // Documents the helper applying ahead validates are not validated here. A helper
        // whose state the committer cannot take (deferred appends resolve at the commit
        // position; an unaudited write is refused) is let go instead of waited for.
        let usable = self.deferred.is_empty()
            && unaudited
                .iter()
                .all(|(c, _)| self.snapshot.definition(c).is_none());
        let ahead = match std::mem::replace(&mut self.ahead, ahead::Ahead::Stopped) {
            ahead::Ahead::On(helper) if usable => Some(helper.finish()),
            _ => None,
        };
        let reads = std::mem::take(&mut self.reads)
            .into_iter()
            .map(|((collection, id), version)| Read {
                collection,
                id,
                version,
            })
            .collect();
        // One op per record written whole, its item ops otherwise (no vector per record:
        // an import writes thousands).
        let mut ops = Vec::with_capacity(writes.len());
        for (collection, id, staged) in writes.into_records() {
            match (staged.items, staged.value) {
                (Some(items), _) => ops.extend(items),
                (None, Some(value)) => {
                    let checked = staged
                        .def
                        .filter(|def| ahead.is_none() && validate_doc(def, &id, &value).is_ok());
                    ops.push(
                        Op::whole(collection, id, staged.doc).with_checked_value(value, checked),
                    );
                }
                (None, None) => ops.push(Op::whole(collection, id, staged.doc)),
            }
        }
        PendingTxn {
            ahead,
            deferred: std::mem::take(&mut self.deferred),
            record: TxnRecord {
                actor: self.meta.actor.clone(),
                audit: std::mem::take(&mut self.audit),
                id,
                ops,
                reads,
                request_id: self.meta.request_id.clone(),
                source: self.meta.source.to_string(),
                unaudited: Some(unaudited),
            },
        }
    }
}

/// A finished attempt on its way to the log.
pub(crate) struct PendingTxn {
    pub record: TxnRecord,
    pub deferred: Vec<crate::txn::DeferredAppend>,
    /// Its writes being applied ahead (`ahead`): wait for it before handing `record` over.
    pub ahead: Option<Applying>,
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::collection::Definition;
    use crate::error::Error;
    use crate::names::{CollectionName, RecordId};
    use crate::{Database, DbOptions, TxnMeta};

    const LIMIT: usize = 4096;

    async fn db() -> Database {
        let store = crate::StoreUrl::Memory.build().unwrap();
        let opts = DbOptions {
            max_record_bytes: LIMIT,
            materialize: false,
            ..DbOptions::default()
        };
        let db = Database::open(store, opts).await.unwrap();
        let def = Definition::from_toml(
            "name = \"notes\"\n[nested.comments]\nschema = { type = \"object\" }\n",
        )
        .unwrap();
        db.define_all(&TxnMeta::new("t", "t"), &[def])
            .await
            .unwrap();
        db
    }

    #[tokio::test]
    async fn records_and_nested_items_are_limited_separately() {
        let db = db().await;
        let notes = CollectionName::parse("notes").unwrap();
        let meta = TxnMeta::new("t", "t");
        let comment = |n: usize| json!({"text": "c".repeat(n)});
        // Many items, each small: the record's own fields are what count.
        let comments: Vec<_> = (0..10).map(|_| comment(1000)).collect();
        let ok = db
            .transact(&meta, |tx| {
                tx.create(&notes, json!({"title": "t", "comments": comments}))
                    .map(|(_, record)| record)
            })
            .await;
        assert!(ok.is_ok(), "{ok:?}");

        let big = db
            .transact(&meta, |tx| {
                tx.create(&notes, json!({"title": "t".repeat(LIMIT)}))
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&big, Error::TooLarge { what, size, limit: LIMIT } if what.contains("notes") && *size > LIMIT),
            "{big}"
        );
        assert_eq!(big.code(), "too_large");

        let id = RecordId::parse(ok.unwrap().value["id"].as_str().unwrap()).unwrap();
        let item = db
            .transact(&meta, |tx| {
                tx.nested_append(&notes, &id, "comments", comment(LIMIT))
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&item, Error::TooLarge { what, .. } if what.contains("notes.comments")),
            "{item}"
        );
        let in_create = db
            .transact(&meta, |tx| {
                tx.create(&notes, json!({"comments": [comment(LIMIT)]}))
            })
            .await
            .unwrap_err();
        assert_eq!(in_create.code(), "too_large", "{in_create}");
    }

    #[tokio::test]
    async fn log_len_counts_what_the_log_will_hold() {
        let db = db().await;
        let notes = CollectionName::parse("notes").unwrap();
        let committed = db
            .transact(&TxnMeta::new("t", "t").with_request_id("r1"), |tx| {
                let before = tx.log_len();
                for i in 0..3 {
                    tx.create(&notes, json!({"title": format!("note {i}")}))?;
                }
                assert!(tx.log_len() > before);
                assert!(tx.fits_in_entry(0));
                assert!(!tx.fits_in_entry(tx.max_entry_bytes()));
                Ok::<_, Error>(tx.log_len())
            })
            .await
            .unwrap();
        let entry = crate::log::read_entry(db.store(), committed.seq)
            .await
            .unwrap()
            .unwrap();
        let exact = entry.body.txns[0].encoded_len();
        assert!(committed.value >= exact, "{} < {exact}", committed.value);
        assert!(
            committed.value <= exact + 64,
            "{} vs {exact}",
            committed.value
        );
    }

    #[tokio::test]
    async fn find_sees_what_an_item_operation_changed() {
        let db = db().await;
        let posts = CollectionName::parse("posts").unwrap();
        let def = Definition::from_toml(
            "name = \"posts\"\nindex = [\"updated_by\"]\n[nested.comments]\nschema = { type = \"object\" }\n",
        )
        .unwrap();
        db.define_all(&TxnMeta::new("t", "t"), &[def])
            .await
            .unwrap();
        let created = db
            .transact(&TxnMeta::new("a", "t"), |tx| {
                tx.create(&posts, json!({"id": "p", "comments": [{"text": "x"}]}))
            })
            .await
            .unwrap()
            .value
            .1;
        let item = created["comments"][0]["id"].as_str().unwrap().to_string();
        db.transact(&TxnMeta::new("b", "t"), |tx| {
            let by_b = json!("b");
            // The staged index is built here, before the item operation...
            assert!(tx.find(&posts, "updated_by", &by_b)?.is_empty());
            let p = RecordId::parse("p").unwrap();
            tx.nested_patch(&posts, &p, "comments", &item, &json!({"text": "y"}))?;
            // ...and kept up by it: the post is now updated by "b".
            let found: Vec<RecordId> = tx
                .find(&posts, "updated_by", &by_b)?
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            assert_eq!(found, [p]);
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_parsed_scan_is_kept_until_the_collection_is_written() {
        let db = db().await;
        let notes = CollectionName::parse("notes").unwrap();
        let meta = TxnMeta::new("t", "t");
        db.transact(&meta, |tx| {
            tx.create(&notes, json!({"id": "a", "title": "a"}))
        })
        .await
        .unwrap();
        db.transact(&meta, |tx| {
            let titles = |scanned: &crate::Scanned| -> Vec<String> {
                scanned
                    .iter()
                    .map(|(_, n)| n["title"].to_string())
                    .collect()
            };
            let first = tx.scan_values(&notes);
            assert_eq!(titles(&first), ["\"a\""]);
            // Unchanged: the same parse.
            assert!(std::sync::Arc::ptr_eq(&first, &tx.scan_values(&notes)));
            // A write of the collection, staged: the next scan sees it.
            tx.create(&notes, json!({"id": "b", "title": "b"}))?;
            let second = tx.scan_values(&notes);
            assert_eq!(titles(&second), ["\"a\"", "\"b\""]);
            tx.update(
                &notes,
                &RecordId::parse("a").unwrap(),
                &json!({"title": "A"}),
                None,
            )?;
            assert_eq!(titles(&tx.scan_values(&notes)), ["\"A\"", "\"b\""]);
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shared_read_is_parsed_once_and_gives_way_to_a_write() {
        use std::sync::Arc;
        let db = db().await;
        let notes = CollectionName::parse("notes").unwrap();
        let meta = TxnMeta::new("t", "t");
        let a = RecordId::parse("a").unwrap();
        db.transact(&meta, |tx| {
            tx.create(&notes, json!({"id": "a", "title": "a"}))
        })
        .await
        .unwrap();
        // A read, then another transaction's update of it: the first one runs again
        // (its read was noted, memo or not) and then sees the update.
        let mut runs = 0;
        let seen = db
            .transact(&meta, |tx| {
                runs += 1;
                let first = tx.get_shared(&notes, &a).unwrap();
                // The same parse again; what `get_value` copies out.
                assert!(Arc::ptr_eq(&first, &tx.get_shared(&notes, &a).unwrap()));
                assert_eq!(tx.get_value(&notes, &a).as_ref(), Some(&*first));
                if runs == 1 {
                    let db = &db;
                    tokio::task::block_in_place(|| {
                        tokio::runtime::Handle::current().block_on(async {
                            db.transact(&TxnMeta::new("t", "t"), |tx| {
                                tx.update(&notes, &a, &json!({"title": "b"}), None)
                            })
                            .await
                        })
                    })
                    .unwrap();
                }
                // This transaction's own write comes before the kept parse, and so
                // does its purge.
                tx.update(&notes, &a, &json!({"body": "x"}), None)?;
                let written = tx.get_shared(&notes, &a).unwrap();
                assert_eq!(written["body"], "x");
                tx.purge(&notes, &a, None)?;
                assert!(tx.get_shared(&notes, &a).is_none());
                assert!(tx.get_value(&notes, &a).is_none());
                Ok::<_, Error>(first["title"].clone())
            })
            .await
            .unwrap();
        assert_eq!((runs, seen.value), (2, json!("b")));
    }

    #[tokio::test]
    async fn create_returns_the_id_it_minted_or_kept() {
        let db = db().await;
        let notes = CollectionName::parse("notes").unwrap();
        let kept = RecordId::parse("n1").unwrap();
        let committed = db
            .transact(&TxnMeta::new("t", "t"), |tx| {
                let minted = tx.create(&notes, json!({"title": "a"}))?;
                let given = tx.create(&notes, json!({"id": "n1", "title": "b"}))?;
                Ok::<_, Error>((minted, given))
            })
            .await
            .unwrap();
        let ((minted, first), (given, second)) = committed.value;
        assert_eq!(first["id"], minted.as_str());
        assert_eq!((given, second["id"].as_str()), (kept, Some("n1")));
        assert!(db.snapshot().get(&notes, &minted).is_some());
        // Only the given id was read (a concurrent create of it must re-run this): a
        // minted one is new by construction, and costs the log no read.
        let entry = crate::log::read_entry(db.store(), committed.seq)
            .await
            .unwrap()
            .unwrap();
        let read: Vec<Option<&str>> = entry.body.txns[0]
            .reads
            .iter()
            .map(|r| r.id.as_ref().map(RecordId::as_str))
            .collect();
        assert_eq!(read, [Some("n1")]);
    }
}
