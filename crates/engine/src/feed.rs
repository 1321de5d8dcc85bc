//! The change feed: every applied log entry, handed to subscribers in log order, from
//! any past position on.
//!
//! Why here, and why this shape:
//! - **One point of entry.** Every entry a handle applies, its committer's own and the
//!   ones the tailer or a catch-up read from other processes, goes through
//!   `Shared::advance`, under the state lock. That is where [`Feed::publish`] is
//!   called, so a subscriber sees exactly the log, in order, whoever wrote it.
//! - **The committer never waits.** Each subscriber has a bounded queue of entries;
//!   publishing is a `try_send` per subscriber. A subscriber whose queue is full is cut
//!   off ([`Next::Lagged`]) instead of holding the committer or growing without bound; it
//!   can resume from the last position it handled, because
//! - **the log is the history.** [`Subscription`] starts at any position: it reads
//!   older entries from the log one at a time (memory stays bounded, whatever the
//!   distance), and when it has caught up with the hub it registers for live entries
//!   under the hub's lock, so nothing between the two is lost or repeated.
//! - **Positions.** A change is at `(seq, index)`: the entry's log position and the
//!   change's place among the entry's changes ([`changes`]: every audited change of every
//!   transaction, item operations split one per item). The index is computed from the
//!   entry alone, so it is the same in every process, live or replayed. [`FeedPos`]
//!   `"12"` means "after all of entry 12", `"12.3"` "after change 3 of entry 12".

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use parking_lot::Mutex;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::collection::event::Action;
use crate::collection::stored::Doc;
use crate::error::{Error, Result};
use crate::log::{LogEntry, Op, OpKind, read_entry};
use crate::names::{CollectionName, RecordId, Seq};
use crate::state::State;
use crate::store::{DynStore, log_path};

/// A position in the feed: after entry `seq` (all of it when `index` is `None`, else up
/// to and including its change `index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedPos {
    pub seq: Seq,
    pub index: Option<u32>,
}

impl FeedPos {
    /// After the whole entry `seq`.
    pub fn after(seq: Seq) -> Self {
        FeedPos { seq, index: None }
    }

    /// Parses `"12"` or `"12.3"`.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "feed position",
                format!("{text:?}: use a log position like 12, or an event id like 12.3"),
            )
        };
        let text = text.trim();
        let (seq, index) = match text.split_once('.') {
            Some((s, i)) => (s, Some(i.parse::<u32>().map_err(|_| bad())?)),
            None => (text, None),
        };
        let seq = seq.parse::<u64>().map_err(|_| bad())?;
        Ok(FeedPos {
            seq: Seq(seq),
            index,
        })
    }

    /// Is the change at (`seq`, `index`) after this position?
    pub fn precedes(&self, seq: Seq, index: u32) -> bool {
        match self.index {
            None => seq > self.seq,
            Some(i) => seq > self.seq || (seq == self.seq && index > i),
        }
    }
}

impl std::fmt::Display for FeedPos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}.{i}", self.seq),
            None => write!(f, "{}", self.seq),
        }
    }
}

/// An applied entry as the feed hands it out. Live entries carry the states just before
/// and just after them; entries replayed from the log carry neither.
#[derive(Debug)]
pub struct Applied {
    pub entry: Arc<LogEntry>,
    /// What the entry's documents and audit events weigh, in bytes (what a queue holding
    /// it keeps alive; see [`QueueLimit`]).
    pub bytes: usize,
    pub before: Option<Arc<State>>,
    pub after: Option<Arc<State>>,
}

/// What happened to one nested item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemOp {
    Added,
    Updated,
    Removed,
}

/// One nested item operation, at `path`: field, item id (two levels deep: field, item
/// id, field, item id).
#[derive(Debug, Clone)]
pub struct ItemChange {
    pub op: ItemOp,
    pub path: Vec<String>,
    /// The item as the transaction left it (`None` when removed). An updated item's own
    /// nested arrays are left out when the entry carried only its own fields.
    pub item: Option<Value>,
}

impl ItemChange {
    /// `executions/<id>` or `executions/<id>/logs/<id>`.
    pub fn path(&self) -> String {
        self.path.join("/")
    }

    /// The item's id (the last element of its path).
    pub fn item_id(&self) -> &str {
        self.path.last().map(String::as_str).unwrap_or_default()
    }
}

/// One change of a record, as the feed sees it (stored forms: secrets still sealed).
#[derive(Debug, Clone)]
pub struct FeedChange {
    pub seq: Seq,
    pub index: u32,
    pub collection: CollectionName,
    pub id: RecordId,
    pub action: Action,
    /// Set for an item operation (an update that changed only nested items).
    pub item: Option<ItemChange>,
    /// The record as its transaction left it (`None` once purged or hard-deleted, and
    /// for a replayed item operation: format 2 logs the item, not the record, so a
    /// reader judges such a change against the record as it is now). For an item
    /// operation, only the record's own fields (its nested arrays left out).
    pub record: Option<Value>,
    /// The record before the entry: exact for live entries; for replayed ones rebuilt
    /// from `record` and the audit diff (fields whose old value the diff masked, and the
    /// metadata fields the diff leaves out when the record is gone, are missing).
    pub before: Option<Value>,
}

impl FeedChange {
    pub fn pos(&self) -> FeedPos {
        FeedPos {
            seq: self.seq,
            index: Some(self.index),
        }
    }
}

/// The documents an entry's transactions leave, record by record, as far as the entry
/// tells them: a live entry starts from the state before it (documents with their nested
/// arrays kept apart, so an item operation costs the item); a replayed one knows only
/// what it writes whole (format 1 and `put`), and a `set` gives the record's own fields.
struct Running<'a> {
    before: Option<&'a State>,
    docs: HashMap<(CollectionName, RecordId), Option<Doc>>,
}

impl Running<'_> {
    fn apply(&mut self, op: &Op) {
        let key = (op.collection.clone(), op.id.clone());
        let shape = self
            .before
            .map_or(crate::state::Shape::none(), |s| s.shape(&op.collection));
        let version = Seq::ZERO;
        let known: Option<Option<Doc>> = match self.docs.get(&key) {
            Some(doc) => Some(doc.clone()),
            None => self
                .before
                .map(|state| state.get(&op.collection, &op.id).cloned()),
        };
        let next = match known {
            Some(current) => Doc::apply(current.as_ref(), op, version, shape).ok(),
            // Replayed: a whole write is known; a set gives the own fields.
            None => match op.op {
                OpKind::Put | OpKind::Delete => Doc::apply(None, op, version, shape).ok(),
                OpKind::Set => op.doc.clone().map(|d| Some(Doc::whole(version, d))),
                _ => None,
            },
        };
        match next {
            Some(doc) => {
                self.docs.insert(key, doc);
            }
            None => {
                self.docs.remove(&key);
            }
        }
    }

    /// The record after the ops applied so far (`None`: absent or unknown).
    fn get(&self, c: &CollectionName, id: &RecordId) -> Option<Doc> {
        self.docs.get(&(c.clone(), id.clone())).cloned().flatten()
    }
}

/// The audited changes of an entry, in log order, with their positions. Transactions'
/// writes without an audit event (system collections) are not changes of the feed.
pub fn changes(applied: &Applied) -> Vec<FeedChange> {
    let entry = &applied.entry;
    let mut out = Vec::new();
    let mut index = 0u32;
    let mut running = Running {
        before: applied.before.as_deref(),
        docs: HashMap::new(),
    };
    for txn in &entry.body.txns {
        for op in &txn.ops {
            running.apply(op);
        }
        // Items an `item_set` wrote, by path (their value in an `updated` event).
        let written: HashMap<(&str, &str, &[String]), &RawValue> = txn
            .ops
            .iter()
            .filter(|op| op.op == OpKind::ItemSet)
            .filter_map(|op| {
                let key = (op.collection.as_str(), op.id.as_str(), op.path.as_deref()?);
                Some((key, op.item.as_deref()?))
            })
            .collect();
        let touched: std::collections::HashSet<(&str, &str)> = txn
            .ops
            .iter()
            .map(|op| (op.collection.as_str(), op.id.as_str()))
            .collect();
        let puts = crate::collection::created::Puts::of(txn);
        for event in &txn.audit {
            let Ok(event) = puts.full_event(event) else {
                continue;
            };
            let (Some(c), Some(id), Some(action)) = (
                event["collection"]
                    .as_str()
                    .and_then(|c| CollectionName::parse_any(c).ok()),
                event["record_id"]
                    .as_str()
                    .and_then(|i| RecordId::parse(i).ok()),
                event["action"].as_str().and_then(parse_action),
            ) else {
                continue;
            };
            if !touched.contains(&(c.as_str(), id.as_str())) {
                continue;
            }
            let doc = running.get(&c, &id);
            let diff = event["changes"].as_object().cloned().unwrap_or_default();
            let lookup = |path: &[String]| -> Option<Value> {
                if let Some(raw) = written.get(&(c.as_str(), id.as_str(), path)) {
                    return serde_json::from_str(raw.get()).ok();
                }
                let (item_id, array) = path.split_last()?;
                let doc = doc.as_ref()?;
                match doc.items(array) {
                    Some(items) => items.iter().find(|i| i.id() == item_id).map(|i| i.value()),
                    None => find_item(&doc.value(), path),
                }
            };
            let items = item_changes(action, &diff, &lookup);
            // An item operation leaves the record's own fields, which is what readers
            // judge it by: the nested arrays are not assembled for it.
            let read = |d: &Doc| {
                if items.is_empty() {
                    d.value()
                } else {
                    d.own_value()
                }
            };
            let record = doc.as_ref().map(read);
            let before = match &applied.before {
                Some(state) => state.get(&c, &id).map(read),
                None if record.is_none() && action == Action::Update => None,
                None => rebuild_before(action, &id, record.as_ref(), &diff),
            };
            let base = FeedChange {
                seq: entry.seq(),
                index,
                collection: c,
                id,
                action,
                item: None,
                record,
                before,
            };
            if items.is_empty() {
                out.push(base);
                index += 1;
                continue;
            }
            for item in items {
                out.push(FeedChange {
                    index,
                    item: Some(item),
                    ..base.clone()
                });
                index += 1;
            }
        }
    }
    out
}

fn parse_action(text: &str) -> Option<Action> {
    Some(match text {
        "create" => Action::Create,
        "update" => Action::Update,
        "delete" => Action::Delete,
        "restore" => Action::Restore,
        "purge" => Action::Purge,
        _ => return None,
    })
}

/// Is this a nested array's diff (`added` / `removed`), not a field's (`from` / `to`)?
fn is_nested_diff(change: &Value) -> bool {
    change.get("added").is_some() && change.get("removed").is_some()
}

/// The item at `path` (field, id, field, id...) of a record.
fn find_item(record: &Value, path: &[String]) -> Option<Value> {
    let mut at = record;
    for pair in path.chunks(2) {
        let [field, item_id] = pair else {
            return None;
        };
        at = at
            .get(field)?
            .as_array()?
            .iter()
            .find(|i| i.get("id").and_then(Value::as_str) == Some(item_id))?;
    }
    Some(at.clone())
}

/// The item operations of an update whose diff changed only nested arrays (one event
/// per item, an item's own arrays walked two levels deep); empty otherwise.
fn item_changes(
    action: Action,
    diff: &Map<String, Value>,
    lookup: &dyn Fn(&[String]) -> Option<Value>,
) -> Vec<ItemChange> {
    if action != Action::Update || diff.is_empty() || !diff.values().all(is_nested_diff) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (field, change) in diff {
        walk_items(&[], field, change, lookup, &mut out);
    }
    out
}

fn walk_items(
    prefix: &[String],
    field: &str,
    change: &Value,
    lookup: &dyn Fn(&[String]) -> Option<Value>,
    out: &mut Vec<ItemChange>,
) {
    let path_of = |item_id: &str| {
        let mut path = prefix.to_vec();
        path.extend([field.to_string(), item_id.to_string()]);
        path
    };
    for item in change["added"].as_array().into_iter().flatten() {
        if let Some(item_id) = item.get("id").and_then(Value::as_str) {
            out.push(ItemChange {
                op: ItemOp::Added,
                path: path_of(item_id),
                item: Some(item.clone()),
            });
        }
    }
    if let Some(changed) = change["changed"].as_object() {
        for (item_id, fields) in changed {
            let path = path_of(item_id);
            let mut own = false;
            for (sub, sub_change) in fields.as_object().into_iter().flatten() {
                if is_nested_diff(sub_change) {
                    walk_items(&path, sub, sub_change, lookup, out);
                } else {
                    own = true;
                }
            }
            if own {
                let item = lookup(&path);
                out.push(ItemChange {
                    op: ItemOp::Updated,
                    path,
                    item,
                });
            }
        }
    }
    let removed = change["removed"].as_array().into_iter().flatten();
    for item_id in removed.filter_map(|v| v.as_str().or_else(|| v.get("id")?.as_str())) {
        out.push(ItemChange {
            op: ItemOp::Removed,
            path: path_of(item_id),
            item: None,
        });
    }
}

/// The record before a replayed change: the record with each plain field's `from`
/// put back (nested arrays and the metadata the diff skips stay as they are after the
/// change; a field whose old value the diff masked is left out).
fn rebuild_before(
    action: Action,
    id: &RecordId,
    record: Option<&Value>,
    diff: &Map<String, Value>,
) -> Option<Value> {
    if action == Action::Create {
        return None;
    }
    let mut before = match record {
        Some(Value::Object(map)) => map.clone(),
        _ => {
            let mut map = Map::new();
            map.insert("id".into(), Value::String(id.to_string()));
            map
        }
    };
    for (field, change) in diff {
        // A nested array's diff (`added`/`removed`) is left out: rules judge a record's
        // own fields. A masked value (secret, redacted) cannot be put back: the field is
        // left absent, so a rule that reads it does not admit the record (no `removed`
        // names a record on a guess) and one that does not is judged as usual.
        let Some(from) = change.get("from") else {
            continue;
        };
        let masked = ["[secret]", crate::collection::definition::REDACTED];
        if from.as_str().is_some_and(|f| masked.contains(&f)) {
            before.remove(field);
            continue;
        }
        if from.is_null() {
            before.remove(field);
        } else {
            before.insert(field.clone(), from.clone());
        }
    }
    Some(Value::Object(before))
}

/// What a subscription hands out next.
#[derive(Debug)]
pub enum Next {
    Entry(Arc<Applied>),
    /// Its queue filled up (the consumer was too slow): it was cut off after the entries
    /// already handed out; resume from [`Subscription::position`].
    Lagged,
}

/// How much a subscriber's queue may hold before it is cut off: entries, and the bytes
/// of their documents and audit events (an entry alone over `bytes` is still handed to a
/// subscriber whose queue is empty, so a large import cuts off only those behind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimit {
    pub entries: usize,
    pub bytes: usize,
}

impl From<usize> for QueueLimit {
    /// At most `entries` entries, whatever their size.
    fn from(entries: usize) -> Self {
        QueueLimit {
            entries,
            bytes: usize::MAX,
        }
    }
}

/// What an entry keeps alive while queued: its documents and audit events.
fn weight(entry: &LogEntry) -> usize {
    entry
        .body
        .txns
        .iter()
        .flat_map(|t| {
            let docs = t.ops.iter().flat_map(|o| o.doc.iter().chain(o.item.iter()));
            docs.chain(t.audit.iter()).map(|raw| raw.get().len())
        })
        .sum()
}

/// How a subscriber is doing, shared between the hub and the subscription.
#[derive(Debug, Default)]
struct SubHealth {
    lagged: AtomicBool,
    /// Bytes of the entries in its queue now.
    queued_bytes: AtomicUsize,
    /// The most entries its queue ever held.
    high_water: AtomicUsize,
}

struct Slot {
    tx: mpsc::Sender<Arc<Applied>>,
    capacity: usize,
    max_bytes: usize,
    health: Arc<SubHealth>,
}

/// Counters of a handle's feed (copies, for whoever exports them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedStats {
    /// Subscriptions receiving live entries now.
    pub live: usize,
    /// Subscriptions cut off because their queue was full.
    pub lagged: u64,
    /// The most entries any subscription's queue held.
    pub high_water: usize,
}

struct Hub {
    /// The last entry published (the handle's applied head).
    head: Seq,
    slots: Vec<Slot>,
    lagged: u64,
    high_water: usize,
}

/// The broadcast point of one handle. See the module docs.
pub(crate) struct Feed {
    hub: Mutex<Hub>,
    /// Mirrors `hub.slots.len()`, read without the lock on the commit path.
    live: AtomicUsize,
}

impl Feed {
    pub fn new(head: Seq) -> Self {
        Feed {
            hub: Mutex::new(Hub {
                head,
                slots: Vec::new(),
                lagged: 0,
                high_water: 0,
            }),
            live: AtomicUsize::new(0),
        }
    }

    /// Whether anyone listens (so the caller can skip keeping the state before).
    pub fn has_subscribers(&self) -> bool {
        self.live.load(Relaxed) > 0
    }

    /// Hands an applied entry to every live subscriber; never waits. Called in log order
    /// (under the state lock).
    pub fn publish(&self, entry: &LogEntry, before: Option<Arc<State>>, after: Arc<State>) {
        let mut hub = self.hub.lock();
        hub.head = entry.seq();
        if hub.slots.is_empty() {
            return;
        }
        let applied = Arc::new(Applied {
            entry: Arc::new(entry.clone()),
            bytes: weight(entry),
            before,
            after: Some(after),
        });
        let Hub {
            slots,
            lagged,
            high_water,
            ..
        } = &mut *hub;
        slots.retain(|slot| {
            let held = slot.health.queued_bytes.load(Relaxed);
            let queued = slot.capacity - slot.tx.capacity();
            let over = queued > 0 && held.saturating_add(applied.bytes) > slot.max_bytes;
            let sent = if over {
                Err(mpsc::error::TrySendError::Full(()))
            } else {
                slot.tx.try_send(applied.clone()).map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => mpsc::error::TrySendError::Full(()),
                    mpsc::error::TrySendError::Closed(_) => mpsc::error::TrySendError::Closed(()),
                })
            };
            match sent {
                Ok(()) => {
                    slot.health.queued_bytes.fetch_add(applied.bytes, Relaxed);
                    let queued = slot.capacity - slot.tx.capacity();
                    slot.health.high_water.fetch_max(queued, Relaxed);
                    *high_water = (*high_water).max(queued);
                    true
                }
                Err(mpsc::error::TrySendError::Full(())) => {
                    slot.health.lagged.store(true, Relaxed);
                    *lagged += 1;
                    false
                }
                Err(mpsc::error::TrySendError::Closed(())) => false,
            }
        });
        self.live.store(slots.len(), Relaxed);
    }

    pub fn stats(&self) -> FeedStats {
        let mut hub = self.hub.lock();
        hub.slots.retain(|s| !s.tx.is_closed());
        self.live.store(hub.slots.len(), Relaxed);
        FeedStats {
            live: hub.slots.len(),
            lagged: hub.lagged,
            high_water: hub.high_water,
        }
    }
}

enum Phase {
    Replay,
    Live(mpsc::Receiver<Arc<Applied>>),
    Ended,
}

/// A subscription to a handle's feed, from a position on. See the module docs.
pub struct Subscription {
    feed: Arc<Feed>,
    store: DynStore,
    /// The next entry to hand out.
    next: Seq,
    limit: QueueLimit,
    health: Arc<SubHealth>,
    phase: Phase,
}

impl Subscription {
    pub(crate) fn new(feed: Arc<Feed>, store: DynStore, from: FeedPos, limit: QueueLimit) -> Self {
        // A position inside an entry hands that entry out again (the caller skips the
        // changes up to the index).
        let next = match from.index {
            Some(_) => Seq(from.seq.get().max(1)),
            None => from.seq.next(),
        };
        Subscription {
            feed,
            store,
            next,
            limit: QueueLimit {
                entries: limit.entries.max(1),
                bytes: limit.bytes,
            },
            health: Arc::default(),
            phase: Phase::Replay,
        }
    }

    /// After the whole of this entry everything was handed out.
    pub fn position(&self) -> FeedPos {
        FeedPos::after(Seq(self.next.get().saturating_sub(1)))
    }

    /// The most entries this subscription's queue held.
    pub fn high_water(&self) -> usize {
        self.health.high_water.load(Relaxed)
    }

    /// The next entry, in log order: read from the log while behind the handle, then
    /// live. Errors are the store's (reading an older entry).
    pub async fn next(&mut self) -> Result<Next> {
        loop {
            match &mut self.phase {
                Phase::Ended => return Ok(Next::Lagged),
                Phase::Replay => {
                    let head = self.feed.hub.lock().head;
                    if self.next <= head {
                        let entry = read_entry(&self.store, self.next).await?.ok_or_else(|| {
                            Error::corrupt(log_path(self.next), "applied but not in the log")
                        })?;
                        self.next = self.next.next();
                        return Ok(Next::Entry(Arc::new(Applied {
                            bytes: weight(&entry),
                            entry: Arc::new(entry),
                            before: None,
                            after: None,
                        })));
                    }
                    self.register();
                }
                Phase::Live(rx) => match rx.recv().await {
                    Some(applied) if applied.entry.seq() < self.next => {
                        self.health.queued_bytes.fetch_sub(applied.bytes, Relaxed);
                    }
                    Some(applied) => {
                        self.health.queued_bytes.fetch_sub(applied.bytes, Relaxed);
                        self.next = applied.entry.seq().next();
                        return Ok(Next::Entry(applied));
                    }
                    None => {
                        self.phase = Phase::Ended;
                        return Ok(Next::Lagged);
                    }
                },
            }
        }
    }

    /// Registers for live entries if nothing was published since the last one read;
    /// otherwise stays replaying (the caller loops).
    fn register(&mut self) {
        let mut hub = self.feed.hub.lock();
        if hub.head < self.next {
            let (tx, rx) = mpsc::channel(self.limit.entries);
            hub.slots.push(Slot {
                tx,
                capacity: self.limit.entries,
                max_bytes: self.limit.bytes,
                health: self.health.clone(),
            });
            self.feed.live.store(hub.slots.len(), Relaxed);
            self.phase = Phase::Live(rx);
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if matches!(self.phase, Phase::Live(_)) {
            self.phase = Phase::Ended;
            let mut hub = self.feed.hub.lock();
            hub.slots.retain(|s| !s.tx.is_closed());
            self.feed.live.store(hub.slots.len(), Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::Definition;
    use crate::{Database, DbOptions, TxnMeta};
    use serde_json::json;
    use std::time::Duration;

    async fn db() -> (Database, CollectionName) {
        let db = Database::open_url("memory://", DbOptions::default())
            .await
            .unwrap();
        let def = Definition::from_toml("name = \"notes\"\n[schema]\ntype = \"object\"\n").unwrap();
        db.transact(&TxnMeta::new("t", "t"), |tx| tx.define(&def).map(drop))
            .await
            .unwrap();
        (db, CollectionName::parse("notes").unwrap())
    }

    async fn create(db: &Database, c: &CollectionName, n: usize) {
        for i in 0..n {
            db.transact(&TxnMeta::new("t", "t"), |tx| tx.create(c, json!({"n": i})))
                .await
                .unwrap();
        }
    }

    #[test]
    fn positions_parse_print_and_order() {
        let whole = FeedPos::parse("12").unwrap();
        let part = FeedPos::parse(" 12.3 ").unwrap();
        assert_eq!(
            (whole.to_string(), part.to_string()),
            ("12".into(), "12.3".into())
        );
        assert!(!whole.precedes(Seq(12), 9) && whole.precedes(Seq(13), 0));
        assert!(!part.precedes(Seq(12), 3) && part.precedes(Seq(12), 4));
        for bad in ["", "x", "1.", "1.x", "-1", "1.2.3"] {
            assert!(FeedPos::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscription_replays_the_log_then_goes_live_without_gap_or_repeat() {
        let (db, notes) = db().await;
        create(&db, &notes, 30).await;
        let mut sub = db.subscribe(FeedPos::after(Seq(10)), 4);
        let db = Arc::new(db);
        let writer = {
            let (db, notes) = (db.clone(), notes.clone());
            tokio::spawn(async move { create(&db, &notes, 30).await })
        };
        let mut seqs = Vec::new();
        while seqs.len() < 51 {
            match sub.next().await.unwrap() {
                Next::Entry(applied) => {
                    assert_eq!(changes(&applied).len(), 1);
                    seqs.push(applied.entry.seq().get());
                }
                // A small queue may be outrun by the writer: resume where it stopped.
                Next::Lagged => sub = db.subscribe(sub.position(), 4),
            }
        }
        writer.await.unwrap();
        assert_eq!(seqs, (11..=61).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_subscriber_that_never_reads_is_cut_off_at_its_limit_and_never_waited_for() {
        let (db, notes) = db().await;
        let mut sub = db.subscribe(FeedPos::after(db.snapshot().seq()), 4);
        // Registers for live entries, then nothing more is read.
        let first = tokio::time::timeout(Duration::from_millis(20), sub.next()).await;
        assert!(first.is_err(), "nothing to hand out yet");
        assert_eq!(db.feed_stats().live, 1);
        create(&db, &notes, 50).await;
        let stats = db.feed_stats();
        assert_eq!((stats.live, stats.lagged, stats.high_water), (0, 1, 4));
        for _ in 0..4 {
            assert!(matches!(sub.next().await.unwrap(), Next::Entry(_)));
        }
        assert!(matches!(sub.next().await.unwrap(), Next::Lagged));
        assert_eq!(sub.position(), FeedPos::after(Seq(5)));
    }

    #[tokio::test]
    async fn a_queue_is_also_limited_by_the_bytes_it_holds() {
        let (db, notes) = db().await;
        let limit = QueueLimit {
            entries: 1000,
            bytes: 4000,
        };
        let mut sub = db.subscribe(FeedPos::after(db.snapshot().seq()), limit);
        let first = tokio::time::timeout(Duration::from_millis(20), sub.next()).await;
        assert!(first.is_err(), "registered, nothing yet");
        for _ in 0..20 {
            db.transact(&TxnMeta::new("t", "t"), |tx| {
                tx.create(&notes, json!({"text": "x".repeat(1000)}))
            })
            .await
            .unwrap();
        }
        let stats = db.feed_stats();
        assert_eq!(stats.lagged, 1, "cut off long before 1000 entries");
        assert!(stats.high_water <= 4, "{stats:?}");
    }
}
