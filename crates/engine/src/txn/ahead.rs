//! Applying a large transaction's writes ahead, on a second core, while it is staged.
//!
//! The committer validates a transaction against the state at the head: every record's
//! index keys computed and inserted, its constraints and references checked, its schema
//! checked where nobody did before. For a transaction of thousands of records (an import)
//! that is most of its commit's time, spent on the one task every commit waits for, after
//! the transaction was staged by another thread that is now idle.
//!
//! So a transaction that has staged [`DbOptions::apply_ahead_after`] documents hands each
//! document it stages from then on (and the ones before) to a helper thread, which applies
//! them to a copy of the transaction's snapshot with the committer's own code
//! (`State::apply_txn` in validation mode), a batch at a time, while the transaction goes
//! on staging. When the transaction is handed over, the helper's state is the state the
//! committer would make of the snapshot and the transaction, when all of this holds:
//!
//! - every write the transaction hands over is a whole document or a deletion, and the
//!   last one sent to the helper for its record. Any other write (an item operation, a
//!   definition) stops the helper, and the transaction is committed as if it had never
//!   started;
//! - every batch passed, and the reference checks after the last one. A batch is checked
//!   against the snapshot plus the batches before it. For what a record alone decides
//!   (schema, `check`s) and for unique and exclusion constraints that is at least as
//!   strict as checking the whole transaction: a conflict between two final documents is
//!   met when the later one is inserted, whichever batch holds it. References are not:
//!   a record is checked against its target as it is when the record's batch is applied,
//!   and a later batch may change the target (its `match` fields, a purge) or add a
//!   referrer to a record an earlier batch deleted. So once every batch is applied, the
//!   helper checks those again on the final state, as the whole transaction would
//!   (`State::check_references_after_batches`): each live record checked before its
//!   target's last write, and each record live before the transaction and not after. A
//!   check that only the whole transaction passes (a record referring to one staged
//!   after it) fails a batch, and the transaction is committed as usual;
//! - the committer's head is still that very snapshot (no entry was applied since: the
//!   `Arc` is the same), and the transaction is the first of its entry.
//!
//! The two threads share the schema checks: while the helper has a full batch waiting
//! besides the one it applies, the staging thread validates each document it stages
//! against the same definition and marks it checked (`Put::op`), and the helper does not
//! check a document so marked again (one that failed goes unmarked: the helper finds it).
//!
//! The committer then takes the helper's state instead of validating the transaction
//! again; it still checks the entry's size and that every write is audited (from what the
//! transaction knows: `TxnRecord::unaudited`). In every other case it validates the
//! transaction as it validates any other, so the outcome and any error are the same as
//! without the helper; what the helper found is only ever used to skip work. The schemas
//! the helper checked are marked on the operations (`Op::checked`) once it has passed, so
//! even a committer whose head has moved does not check them again.
//!
//! [`DbOptions::apply_ahead_after`]: crate::DbOptions::apply_ahead_after

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::collection::definition::Compiled;
use crate::collection::integrity::{Mode, validate_doc};
use crate::log::{Op, TxnRecord};
use crate::names::{CollectionName, DEFINITIONS, RecordId};
use crate::state::Batches;
use crate::state::State;
use foldhash::{HashMap, HashMapExt};

/// Documents sent to the helper at a time.
const BATCH: usize = 64;

/// Where a transaction stands with applying ahead.
pub(crate) enum Ahead {
    /// Not for this transaction (a trial step, a handle with it turned off).
    Off,
    /// Counting the documents staged, until `after`.
    Counting { staged: usize, after: usize },
    /// The helper is applying what is staged.
    On(Helper),
    /// A write the helper cannot apply was staged: the committer validates as usual.
    Stopped,
}

impl Ahead {
    pub(crate) fn new(after: usize) -> Ahead {
        if after == 0 {
            Ahead::Off
        } else {
            Ahead::Counting { staged: 0, after }
        }
    }
}

/// A staged write the helper can apply: a whole document (`doc`, with `value` when it
/// travels parsed) or a deletion, of a collection other than the definitions (a
/// definition changes what every later write is checked against: the committer
/// installs it).
pub(crate) struct Put<'a> {
    collection: &'a CollectionName,
    id: &'a RecordId,
    doc: Option<&'a Arc<RawValue>>,
    value: Option<&'a Arc<Value>>,
    /// The definition `value` is to pass (the snapshot's, which the helper's state has).
    def: Option<&'a Arc<Compiled>>,
}

impl<'a> Put<'a> {
    /// `None` for a write the helper cannot apply: item operations (`items`), a
    /// definition.
    pub(crate) fn new(
        collection: &'a CollectionName,
        id: &'a RecordId,
        doc: Option<&'a Arc<RawValue>>,
        value: Option<&'a Arc<Value>>,
        def: Option<&'a Arc<Compiled>>,
        items: bool,
    ) -> Option<Put<'a>> {
        (!items && collection.as_str() != DEFINITIONS).then_some(Put {
            collection,
            id,
            doc,
            value,
            def,
        })
    }

    /// The operation the helper applies. `check_here`: validate the document on this
    /// thread (the helper is behind), marking it checked when it passes so the helper
    /// does not check it again; one that fails goes unmarked, and the helper finds it.
    pub(crate) fn op(&self, check_here: bool) -> Op {
        let op = Op::whole(self.collection.clone(), self.id.clone(), self.doc.cloned());
        let Some(value) = self.value else {
            return op;
        };
        let checked = self
            .def
            .filter(|def| check_here && validate_doc(def, self.id, value).is_ok())
            .cloned();
        op.with_checked_value(value.clone(), checked)
    }
}

/// How far the helper is: batches sent and not yet applied, and whether it has stopped.
struct Progress {
    queued: AtomicUsize,
    stopped: AtomicBool,
}

/// Tells the helper to leave the batches it has not started (the transaction was
/// dropped, or stopped applying ahead) when dropped.
struct Cancel(Arc<AtomicBool>);

impl Drop for Cancel {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The helper thread of one transaction, and what has not been sent to it yet.
pub(crate) struct Helper {
    base: Arc<State>,
    sender: mpsc::Sender<Vec<Op>>,
    progress: Arc<Progress>,
    batch: Vec<Op>,
    result: oneshot::Receiver<Option<State>>,
    _cancel: Cancel,
}

impl Helper {
    /// Starts a helper on a copy of `base` with the documents staged so far, or `None`
    /// when no thread could be started.
    pub(crate) fn start<'a>(
        base: Arc<State>,
        staged: impl Iterator<Item = Put<'a>>,
    ) -> Option<Helper> {
        let (sender, batches) = mpsc::channel::<Vec<Op>>();
        let (reply, result) = oneshot::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress {
            queued: AtomicUsize::new(1),
            stopped: AtomicBool::new(false),
        });
        let (from, stop, shared) = (base.clone(), cancel.clone(), progress.clone());
        std::thread::Builder::new()
            .name("bb-apply-ahead".into())
            .spawn(move || {
                let state = apply(from, batches, &stop, &shared.queued);
                shared.stopped.store(true, Ordering::Relaxed);
                let _ = reply.send(state);
            })
            .map_err(|e| tracing::debug!(error = %e, "no thread to apply ahead"))
            .ok()?;
        // One batch: they are in key order, not in the order they were staged (a record
        // may come before the one it refers to).
        let _ = sender.send(staged.map(|put| put.op(false)).collect());
        Some(Helper {
            base,
            sender,
            progress,
            batch: Vec::with_capacity(BATCH),
            result,
            _cancel: Cancel(cancel),
        })
    }

    /// Whether the helper has a full batch waiting besides the one it is applying. The
    /// staging thread then validates the documents it stages itself ([`Put::op`]), so
    /// the two threads' shares of the work even out: on a machine whose other core is
    /// busy (or slower), the helper would otherwise finish well after the staging. Never
    /// once the helper has stopped (a failed batch): nobody would take the marks.
    pub(crate) fn behind(&self) -> bool {
        self.progress.queued.load(Ordering::Relaxed) >= 2
            && !self.progress.stopped.load(Ordering::Relaxed)
    }

    /// Queues a staged document (`Put::op`), sending a full batch.
    pub(crate) fn push(&mut self, op: Op) {
        self.batch.push(op);
        if self.batch.len() >= BATCH {
            let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            self.progress.queued.fetch_add(1, Ordering::Relaxed);
            // A helper that stopped (a batch failed) has dropped its receiver: no matter.
            let _ = self.sender.send(batch);
        }
    }

    /// Sends what is left and lets the helper finish: what the transaction waits for
    /// before it is handed to the committer.
    pub(crate) fn finish(self) -> Applying {
        let Helper {
            base,
            sender,
            progress,
            batch,
            result,
            _cancel,
        } = self;
        if !batch.is_empty() {
            progress.queued.fetch_add(1, Ordering::Relaxed);
            let _ = sender.send(batch);
        }
        // Closing the channel ends the helper's loop once it has applied everything.
        drop(sender);
        Applying {
            base,
            result,
            _cancel,
        }
    }
}

/// The helper's loop: each batch applied as a transaction of its own would be, at the
/// position after the snapshot.
fn apply(
    base: Arc<State>,
    batches: mpsc::Receiver<Vec<Op>>,
    cancel: &AtomicBool,
    queued: &AtomicUsize,
) -> Option<State> {
    apply_all(base, batches, cancel, queued)
        .map_err(|e| tracing::debug!(error = %e, "applying ahead stopped: the committer validates"))
        .ok()
        .flatten()
}

/// [`apply`]: `None` when cancelled, the first check that fails as an error.
fn apply_all(
    base: Arc<State>,
    batches: mpsc::Receiver<Vec<Op>>,
    cancel: &AtomicBool,
    queued: &AtomicUsize,
) -> crate::Result<Option<State>> {
    let mut state = (*base).clone();
    let seq = state.seq().next();
    // Each record written, with the first and the last batch that wrote it.
    let mut touched: HashMap<(CollectionName, RecordId), Batches> = HashMap::new();
    for (n, ops) in batches.into_iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Ok(None);
        }
        touched.reserve(ops.len());
        for op in &ops {
            touched
                .entry((op.collection.clone(), op.id.clone()))
                .and_modify(|b| b.last = n)
                .or_insert(Batches { first: n, last: n });
        }
        let batch = TxnRecord {
            actor: String::new(),
            audit: Vec::new(),
            id: Uuid::nil(),
            ops,
            reads: Vec::new(),
            request_id: None,
            source: String::new(),
            // Audit events are the committer's to check, for the whole transaction.
            unaudited: Some(Vec::new()),
        };
        state.apply_txn(&batch, seq, Mode::Validate)?;
        queued.fetch_sub(1, Ordering::Relaxed);
    }
    state.check_references_after_batches(&base, &touched)?;
    Ok(Some(state))
}

/// A helper that has every document: its state, once it is done.
pub(crate) struct Applying {
    base: Arc<State>,
    result: oneshot::Receiver<Option<State>>,
    _cancel: Cancel,
}

impl Applying {
    /// Waits for the helper. When every batch passed, marks the documents of `txn` as
    /// checked against the snapshot's definitions (the helper validated each one: they
    /// are all it was sent, see the module docs) and answers the state the committer may
    /// take. When the helper gave up, validates them here as `Txn::take_pending` does
    /// without a helper, so the committer does not.
    pub(crate) async fn wait(self, txn: &mut TxnRecord) -> Option<Applied> {
        let state = self.result.await.ok().flatten();
        for op in &mut txn.ops {
            let (Some(value), None) = (&op.value, &op.checked) else {
                continue;
            };
            op.checked = self
                .base
                .definition(&op.collection)
                .cloned()
                .filter(|def| state.is_some() || validate_doc(def, &op.id, value).is_ok());
        }
        Some(Applied {
            base: self.base,
            state: state?,
        })
    }
}

/// A transaction's writes applied to its snapshot, every check passed (see the module
/// docs for when the committer takes it).
#[derive(Debug)]
pub(crate) struct Applied {
    pub base: Arc<State>,
    pub state: State,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::value::RawValue;
    use serde_json::{Value, json};

    use super::{BATCH, Helper, Put};
    use crate::collection::Definition;
    use crate::error::Error;
    use crate::names::{CollectionName, RecordId, Seq};
    use crate::state::State;
    use crate::{Database, DbOptions, TxnMeta};
    use std::sync::atomic::Ordering;

    /// Rooms (unique `code`), their stays (referring to a room; no two live stays of a
    /// room overlap), and guests (in a room whose code they repeat, and last in a room
    /// that may have been deleted since).
    const DEFS: [&str; 3] = [
        r#"name = "rooms"
index = ["code"]
soft_delete = true
schema = { type = "object", properties = { code = { type = "string" } }, required = ["code"] }
[[unique]]
name = "room_code"
fields = ["code"]
"#,
        r#"name = "stays"
index = ["room_id", "start"]
soft_delete = true
schema = { type = "object", properties = { room_id = { type = "string" }, start = { type = "integer" }, end = { type = "integer" }, price = { type = "number" } }, required = ["room_id", "start", "end"] }
[[exclude]]
name = "no_overlap"
key = ["room_id"]
start = "start"
end = "end"
[[references]]
field = "room_id"
collection = "rooms"
on_delete = "restrict"
"#,
        r#"name = "guests"
soft_delete = true
schema = { type = "object" }
[[references]]
field = "room_id"
collection = "rooms"
match = { room_code = "code" }
[[references]]
field = "last_room_id"
collection = "rooms"
allow_deleted = true
"#,
    ];

    fn c(name: &str) -> CollectionName {
        CollectionName::parse(name).unwrap()
    }

    fn meta() -> TxnMeta {
        TxnMeta::new("t", "test")
    }

    /// A handle that applies transactions of more than 8 documents ahead (or never).
    async fn db(after: usize) -> Arc<Database> {
        let opts = DbOptions {
            apply_ahead_after: after,
            materialize: false,
            ..DbOptions::default()
        };
        let db = Database::open(crate::StoreUrl::Memory.build().unwrap(), opts)
            .await
            .unwrap();
        let defs: Vec<Definition> = DEFS
            .iter()
            .map(|d| Definition::from_toml(d).unwrap())
            .collect();
        db.define_all(&meta(), &defs).await.unwrap();
        Arc::new(db)
    }

    /// Everything a state holds besides its definitions: documents, versions, every
    /// index (each key's records by id) and the referrers.
    fn summary(state: &State) -> String {
        let mut out = format!("seq {} hash {}\n", state.seq(), state.head_hash());
        for (name, coll) in state.collections() {
            out += &format!("{name} changed {}\n", coll.changed);
            for (id, doc) in coll.docs.iter() {
                out += &format!("  {id} v{} {}\n", doc.version, doc.body().get());
            }
            let ix = &coll.indexes;
            out += &format!("  unique {:?}\n  exclude {:?}\n", ix.unique, ix.exclude);
            for (field, keys) in ix.fields.iter() {
                for (key, ids) in keys.iter() {
                    let ids: Vec<&RecordId> = ids.iter().map(|(id, _)| id).collect();
                    out += &format!("  {field} {key:?} {ids:?}\n");
                }
            }
            out += &format!("  deleted {:?}\n", ix.deleted);
        }
        out + &format!("referrers {:?}\n", state.referrers)
    }

    /// The state a fresh handle rebuilds from the log alone.
    async fn replayed(db: &Database) -> State {
        let mut state = State::default();
        for entry in crate::log::read_from(db.store(), Seq::ZERO.next())
            .await
            .unwrap()
        {
            state.apply(&entry).unwrap();
        }
        state
    }

    fn room(code: &str) -> Value {
        json!({"id": code, "code": code})
    }

    /// A stay of `room` over `[start, start + 2)`, priced (floats travel unparsed).
    fn stay(room: &str, start: i64) -> Value {
        json!({"room_id": room, "start": start, "end": start + 2, "price": start as f64 + 0.5})
    }

    #[tokio::test]
    async fn a_large_transaction_applied_ahead_leaves_the_state_the_log_rebuilds() {
        let db = db(8).await;
        db.transact(&meta(), |tx| tx.create(&c("rooms"), room("r0")))
            .await
            .unwrap();
        let committed = db
            .transact(&meta(), |tx| {
                for r in 1..=20 {
                    tx.create(&c("rooms"), room(&format!("r{r}")))?;
                    let mut ids = Vec::new();
                    for s in 0..3 {
                        ids.push(tx.insert(&c("stays"), stay(&format!("r{r}"), 10 * s))?);
                    }
                    // A record written twice: the second document is the one that counts.
                    tx.update(&c("stays"), &ids[0], &json!({"end": 5}), None)?;
                    // A soft delete; a record of an undefined collection put and deleted.
                    tx.delete(&c("stays"), &ids[1], None)?;
                    let scratch = RecordId::parse(&format!("s{r}")).unwrap();
                    tx.put(&c("scratch"), &scratch, &json!({"r": r}))?;
                    if r % 2 == 0 {
                        tx.delete_raw(&c("scratch"), &scratch);
                    }
                }
                Ok::<_, Error>(())
            })
            .await
            .unwrap();
        let metrics = db.metrics().snapshot();
        assert_eq!(
            (metrics.applied_ahead, metrics.applied_ahead_unused),
            (1, 0)
        );
        assert_eq!(
            summary(&db.snapshot()),
            summary(&replayed(&db).await),
            "committed at {}",
            committed.seq
        );
        // A stay of r1 at [0, 5) now: [4, 6) overlaps it, [5, 7) does not.
        let overlap = db
            .transact(&meta(), |tx| tx.insert(&c("stays"), stay("r1", 4)))
            .await
            .unwrap_err();
        assert_eq!(overlap.code(), "exclusion_violation", "{overlap}");
        db.transact(&meta(), |tx| tx.insert(&c("stays"), stay("r1", 5)))
            .await
            .unwrap();
    }

    /// The same transaction, on a handle that applies it ahead and on one that does not.
    async fn both_ways<T: std::fmt::Debug>(
        f: impl Fn(&mut crate::Txn) -> crate::Result<T> + Clone,
    ) -> [(Result<T, String>, crate::metrics::MetricsSnapshot); 2] {
        let mut out = Vec::new();
        for after in [8, 0] {
            let db = db(after).await;
            db.transact(&meta(), |tx| tx.create(&c("rooms"), room("r0")))
                .await
                .unwrap();
            let result = db
                .transact(&meta(), f.clone())
                .await
                .map(|c| c.value)
                .map_err(|e| e.to_string());
            out.push((result, db.metrics().snapshot()));
        }
        out.try_into().unwrap()
    }

    /// When the helper is behind, the staging thread validates what it stages: a
    /// document that passes is marked checked against the very definition the helper
    /// holds (so the helper skips it), one that fails goes unmarked (the helper checks it
    /// and reports the violation as the committer would).
    #[test]
    fn a_document_checked_while_staging_is_marked_only_when_it_passes() {
        let def = Arc::new(Definition::from_toml(DEFS[0]).unwrap().compile().unwrap());
        let (rooms, id) = (c("rooms"), RecordId::parse("r1").unwrap());
        for (value, passes) in [(room("r1"), true), (json!({"id": "r1", "code": 7}), false)] {
            let value = Arc::new(value);
            let doc: Arc<RawValue> = Arc::from(crate::canonical::to_canonical_raw(&value));
            let put = Put::new(&rooms, &id, Some(&doc), Some(&value), Some(&def), false).unwrap();
            assert!(put.op(false).checked.is_none(), "{value}");
            let op = put.op(true);
            assert_eq!(op.value.as_ref(), Some(&value));
            assert_eq!(
                op.checked
                    .is_some_and(|checked| Arc::ptr_eq(&checked, &def)),
                passes,
                "{value}"
            );
        }
    }

    /// A helper whose batch failed takes nothing more: however many batches are queued
    /// to it, the staging thread stops validating for it.
    #[tokio::test]
    async fn a_stopped_helper_is_never_behind() {
        let db = db(8).await;
        let (stays, id) = (c("stays"), RecordId::parse("s0").unwrap());
        // A stay of a room that is not there (its price a float: it travels as text
        // only): the first batch fails.
        let doc: Arc<RawValue> = Arc::from(crate::canonical::to_canonical_raw(&stay("nowhere", 0)));
        let put = || Put::new(&stays, &id, Some(&doc), None, None, false).unwrap();
        let mut helper = Helper::start(db.snapshot(), std::iter::once(put())).unwrap();
        while !helper.progress.stopped.load(Ordering::Relaxed) {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        for _ in 0..2 * BATCH {
            helper.push(put().op(false));
        }
        assert_eq!(helper.progress.queued.load(Ordering::Relaxed), 3);
        assert!(!helper.behind());
        let mut record = crate::log::TxnRecord {
            actor: String::new(),
            audit: Vec::new(),
            id: uuid::Uuid::nil(),
            ops: Vec::new(),
            reads: Vec::new(),
            request_id: None,
            source: String::new(),
            unaudited: None,
        };
        assert!(helper.finish().wait(&mut record).await.is_none());
    }

    #[tokio::test]
    async fn a_violation_is_reported_as_without_applying_ahead() {
        // The 12th stay overlaps the 11th: both handles refuse it the same way.
        let [ahead, plain] = both_ways(|tx| {
            for s in 0..12 {
                let start = if s == 11 { 101 } else { 10 * s };
                let mut stay = stay("r0", start);
                stay["id"] = json!(format!("s{s:02}"));
                tx.insert(&c("stays"), stay)?;
            }
            Ok(())
        })
        .await;
        let error = ahead.0.unwrap_err();
        assert!(error.contains("no_overlap"), "{error}");
        assert_eq!(Err(error), plain.0);
        assert_eq!(ahead.1.applied_ahead, 0);
    }

    #[tokio::test]
    async fn what_only_the_whole_transaction_passes_still_commits() {
        // Stays staged before the room they refer to: a batch fails (the room is not
        // there yet), the whole transaction passes, and commits through the committer.
        let [ahead, plain] = both_ways(|tx| {
            for s in 0..12 {
                tx.insert(&c("stays"), stay("late", 10 * s))?;
            }
            tx.create(&c("rooms"), room("late"))?;
            Ok(())
        })
        .await;
        assert_eq!(ahead.0, Ok(()));
        assert_eq!(plain.0, Ok(()));
        assert_eq!(ahead.1.applied_ahead, 0);
    }

    /// Writes of an undefined collection, to put what follows in a later batch.
    fn fill(tx: &mut crate::Txn) -> crate::Result<()> {
        for i in 0..70 {
            let id = RecordId::parse(&format!("f{i}")).unwrap();
            tx.put(&c("scratch"), &id, &json!({"i": i}))?;
        }
        Ok(())
    }

    #[tokio::test]
    async fn references_are_checked_against_targets_as_they_end() {
        let guests = || c("guests");
        // A target whose `match` field a later batch changes.
        let [ahead, plain] = both_ways(move |tx| {
            tx.insert(
                &guests(),
                json!({"id": "g1", "room_id": "r0", "room_code": "r0"}),
            )?;
            fill(tx)?;
            tx.update(
                &c("rooms"),
                &RecordId::parse("r0").unwrap(),
                &json!({"code": "zz"}),
                None,
            )
        })
        .await;
        let error = ahead.0.unwrap_err();
        assert!(error.contains("room_code must equal"), "{error}");
        assert_eq!(Err(error), plain.0);
        // A deleted target a later batch purges, pointed at where deleted ones are allowed.
        let [ahead, plain] = both_ways(move |tx| {
            tx.create(&c("rooms"), room("p1"))?;
            let p1 = RecordId::parse("p1").unwrap();
            tx.delete(&c("rooms"), &p1, None)?;
            tx.insert(&guests(), json!({"id": "g1", "last_room_id": "p1"}))?;
            fill(tx)?;
            tx.purge(&c("rooms"), &p1, None)
        })
        .await;
        let error = ahead.0.unwrap_err();
        assert!(error.contains("reference_violation"), "{error}");
        assert_eq!(Err(error), plain.0);
        // A target deleted first, a referrer added after: not every reference from guests
        // to rooms allows deleted ones, so the delete is refused.
        let [ahead, plain] = both_ways(move |tx| {
            tx.delete(&c("rooms"), &RecordId::parse("r0").unwrap(), None)?;
            fill(tx)?;
            tx.insert(&guests(), json!({"id": "g1", "last_room_id": "r0"}))
        })
        .await;
        let error = ahead.0.unwrap_err();
        assert!(error.contains("reference_violation"), "{error}");
        assert_eq!(Err(error), plain.0);
        assert_eq!(ahead.1.applied_ahead, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_landing_meanwhile_makes_the_committer_validate() {
        let db = db(8).await;
        db.transact(&meta(), |tx| tx.create(&c("rooms"), room("r0")))
            .await
            .unwrap();
        let runtime = tokio::runtime::Handle::current();
        let mut first = true;
        let big = db
            .transact(&meta(), |tx| {
                for s in 0..12 {
                    tx.insert(&c("stays"), stay("r0", 10 * s))?;
                }
                if std::mem::take(&mut first) {
                    // Another transaction commits a stay overlapping the 6th after this
                    // one's snapshot (it reads nothing it writes, so it is not re-run).
                    let (other, runtime) = (db.clone(), runtime.clone());
                    std::thread::spawn(move || {
                        runtime.block_on(
                            other.transact(&meta(), |tx| tx.insert(&c("stays"), stay("r0", 51))),
                        )
                    })
                    .join()
                    .unwrap()
                    .unwrap();
                }
                Ok::<_, Error>(())
            })
            .await
            .unwrap_err();
        assert!(big.to_string().contains("no_overlap"), "{big}");
        let metrics = db.metrics().snapshot();
        assert_eq!(
            (metrics.applied_ahead, metrics.applied_ahead_unused),
            (0, 1)
        );
        assert_eq!(summary(&db.snapshot()), summary(&replayed(&db).await));
    }
}
