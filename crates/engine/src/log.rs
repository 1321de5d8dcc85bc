//! The commit log: entry format, hashing, reading and writing slots.
//!
//! `_log/{seq:020}.json` is the only commit point. An entry is written once, with
//! create-if-absent, and never changed. Its file is `{"entry": {...}, "hash": "..."}`
//! where `hash` is the SHA-256 of the canonical JSON of `entry`, and `entry.prev_hash`
//! is the previous entry's hash: the log is a hash chain, and the audit trail with it.
//!
//! Entries are assembled from already-canonical parts (documents are stored canonical,
//! struct fields are declared in key order), so the bytes written are canonical by
//! construction; `verify` re-derives the hash from the parsed value, so a file that was
//! edited in any way that changes its meaning is detected.
//!
//! Entries are versioned (`v`, [`ENTRY_FORMAT`]): format 1 entries (no `v`) hold whole
//! documents only; format 2 adds `set` (a record's own fields, its nested arrays kept)
//! and operations on one nested item (`append`, `item_set`, `item_delete`, `trim`), so an item costs the log its own size, not its record's
//! (docs/decisions/0018-nested-item-operations.md). Format 3 stores a create's audit
//! event without its `changes`, which repeat the document its `put` carries; readers
//! expand it (`collection::created`, docs/decisions/0023-create-events-by-reference.md).
//! All replay.
//!
//! An entry file is never larger than `DbOptions::max_entry_bytes`. Its size is known
//! before it is sealed: a transaction's share is [`TxnRecord::encoded_len`] (counted
//! exactly, without building the text) plus a comma, and the rest of the file is at most
//! [`ENTRY_OVERHEAD`] bytes. The committer adds these up as it accepts transactions.

use std::sync::Arc;

use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::canonical::{sha256_hex, to_canonical_string};
use crate::error::{Error, Result};
use crate::names::{CollectionName, RecordId, Seq};
use crate::store::{DynStore, log_path};

/// Upper bound on the bytes of an entry file besides its transactions:
/// `{"entry":{"at":"<24>","prev_hash":"<64>","seq":<20>,"txns":[],"v":2},"hash":"<64>"}`
/// is 239.
pub const ENTRY_OVERHEAD: usize = 256;

/// The bytes `value` serializes to (compact JSON, as written to the log), counted
/// without building the text. Raw documents are counted as they are, not re-parsed.
pub fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, value).expect("log values always serialize");
    counter.0
}

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The entry format new entries are written in. Format 1 (no `v` key) logs every change
/// of a record as its whole new document; format 2 adds the item operations
/// (docs/decisions/0018-nested-item-operations.md); format 3 stores a create's audit event
/// by reference to its record's `put` (`collection::created`,
/// docs/decisions/0023-create-events-by-reference.md). All replay.
pub const ENTRY_FORMAT: u32 = 3;

/// What an operation does to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// The whole new document (`doc`).
    Put,
    Delete,
    /// Format 2: the record's own fields (`doc`) replace the old ones; the fields named
    /// in `keep` (its nested arrays) stay as they are.
    Set,
    /// Format 2: `item` added at the end of the nested array at `path`.
    Append,
    /// Format 2: the item at `path` replaced by `item`.
    ItemSet,
    /// Format 2: the item at `path` removed.
    ItemDelete,
    /// Format 2: the first `count` items of the array at `path` removed (retention).
    Trim,
}

impl OpKind {
    /// Does this op carry (or remove) the whole record, rather than change one item?
    pub fn is_whole(self) -> bool {
        matches!(self, OpKind::Put | OpKind::Delete)
    }
}

/// One write: the full new document, a deletion, or (format 2) an operation on one nested
/// item, which also sets the record's `updated_at` / `updated_by` to `at` / `by`.
/// (Fields in key order: canonical.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Op {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    pub collection: CollectionName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<Arc<RawValue>>,
    pub id: RecordId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<Arc<RawValue>>,
    /// `set` / `item_set`: fields of the old record / item kept as they are (its own nested arrays, which
    /// `item` leaves out), so the op replays without the definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<Vec<String>>,
    pub op: OpKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Vec<String>>,
    /// A `put`'s document as its writer had it parsed (never stored, never read back):
    /// saves the committer parsing it again. Set only for documents without floating
    /// point numbers, whose parse of `doc` is exactly this value (`Op::with_value`).
    #[serde(skip)]
    pub value: Option<Arc<serde_json::Value>>,
    /// The definition `value` passed (schema and `check` expressions) before it reached
    /// the committer (`Txn::take_pending`; never stored): the committer validates it
    /// again only if its collection is no longer defined by exactly this compiled
    /// definition (`State::apply_txn`).
    #[serde(skip)]
    pub checked: Option<Arc<crate::collection::definition::Compiled>>,
}

impl Op {
    /// A whole document (`Some`) or a deletion (`None`).
    pub fn whole(collection: CollectionName, id: RecordId, doc: Option<Arc<RawValue>>) -> Op {
        Op {
            at: None,
            by: None,
            collection,
            count: None,
            op: if doc.is_some() {
                OpKind::Put
            } else {
                OpKind::Delete
            },
            doc,
            id,
            item: None,
            keep: None,
            path: None,
            value: None,
            checked: None,
        }
    }

    /// The bytes [`Op::whole`] of these takes in the log, counted without building the
    /// op (a transaction counts each record it stages): `{"collection":…,"doc":…,
    /// "id":…,"op":"put"}` or `{"collection":…,"id":…,"op":"delete"}`.
    pub fn whole_len(collection: &CollectionName, id: &RecordId, doc: Option<&RawValue>) -> usize {
        use crate::canonical::str_len;
        let names = str_len(collection.as_str()) + str_len(id.as_str());
        match doc {
            Some(doc) => {
                r#"{"collection":,"doc":,"id":,"op":"put"}"#.len() + names + doc.get().len()
            }
            None => r#"{"collection":,"id":,"op":"delete"}"#.len() + names,
        }
    }

    /// This `put` with its document's parsed `value` attached, when parsing `doc`
    /// gives exactly `value` back (no floating point number in it: serde_json reads
    /// those back to the nearest double, not always the same one).
    pub fn with_value(mut self, value: Arc<serde_json::Value>) -> Op {
        if self.op == OpKind::Put && Op::carries_exactly(&value) {
            self.value = Some(value);
        }
        self
    }

    /// Whether `value` parses back from its text exactly (no floating point number in
    /// it): only such a value may travel with its `put` ([`Op::with_value`]).
    pub fn carries_exactly(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::Number(n) => !n.is_f64(),
            serde_json::Value::Array(items) => items.iter().all(Op::carries_exactly),
            serde_json::Value::Object(map) => map.values().all(Op::carries_exactly),
            _ => true,
        }
    }

    /// This `put` carrying `value`, which the caller knows parses back from `doc`
    /// exactly ([`Op::carries_exactly`]), and the definition it passed ([`Op::checked`]).
    pub(crate) fn with_checked_value(
        mut self,
        value: Arc<serde_json::Value>,
        checked: Option<Arc<crate::collection::definition::Compiled>>,
    ) -> Op {
        debug_assert!(self.op == OpKind::Put && Op::carries_exactly(&value));
        self.value = Some(value);
        self.checked = checked;
        self
    }

    /// The record's own fields `doc`, keeping its fields `keep` (its nested arrays).
    pub fn set(
        collection: CollectionName,
        id: RecordId,
        doc: Arc<RawValue>,
        keep: Vec<String>,
    ) -> Op {
        Op {
            op: OpKind::Set,
            doc: Some(doc),
            keep: Some(keep),
            ..Op::whole(collection, id, None)
        }
    }

    /// An operation on a nested item (or array, for `trim`) at `path`.
    #[allow(clippy::too_many_arguments)]
    pub fn item(
        collection: CollectionName,
        id: RecordId,
        op: OpKind,
        path: Vec<String>,
        item: Option<Arc<RawValue>>,
        count: Option<u64>,
        at: &str,
        by: &str,
    ) -> Op {
        Op {
            at: Some(at.to_string()),
            by: Some(by.to_string()),
            collection,
            count,
            doc: None,
            id,
            item,
            keep: None,
            op,
            path: Some(path),
            value: None,
            checked: None,
        }
    }
}

/// A version a transaction read: of one record (`id`), or of a whole collection (no
/// `id`: the collection's last change, so inserts into a scanned range are caught).
/// Version 0 means "absent".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Read {
    pub collection: CollectionName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RecordId>,
    pub version: Seq,
}

/// One transaction as recorded in the log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TxnRecord {
    pub actor: String,
    /// Audit events produced by the transaction, canonical JSON objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<Arc<RawValue>>,
    pub id: Uuid,
    pub ops: Vec<Op>,
    pub reads: Vec<Read>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub source: String,
    /// The records this transaction writes without an audit event, as the `Txn` that
    /// made it knew when handing it over (never stored): the committer looks these up
    /// instead of reading every event (`State::apply_txn`). `None`: not known.
    #[serde(skip)]
    pub unaudited: Option<Vec<(CollectionName, RecordId)>>,
}

impl TxnRecord {
    /// The exact bytes of this transaction in an entry file (without the comma that
    /// separates it from the next). Cheap: documents and audit events are already JSON.
    pub fn encoded_len(&self) -> usize {
        json_len(self)
    }
}

impl EntryBody {
    /// A close upper estimate of the serialized size (documents and audit events are
    /// already JSON, and dominate).
    fn estimated_len(&self) -> usize {
        let txns: usize = self
            .txns
            .iter()
            .map(|t| {
                let ops: usize = t
                    .ops
                    .iter()
                    .map(|op| {
                        160 + op.doc.as_ref().map_or(0, |d| d.get().len())
                            + op.item.as_ref().map_or(0, |d| d.get().len())
                            + op.path.iter().flatten().map(|p| p.len() + 3).sum::<usize>()
                    })
                    .sum();
                let audit: usize = t.audit.iter().map(|a| a.get().len() + 1).sum();
                160 + t.actor.len() + t.source.len() + ops + audit + 96 * t.reads.len()
            })
            .sum();
        160 + self.prev_hash.len() + txns
    }
}

/// The hashed part of a log entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryBody {
    /// Commit time, RFC 3339 with milliseconds, UTC.
    pub at: String,
    pub prev_hash: String,
    pub seq: Seq,
    pub txns: Vec<TxnRecord>,
    /// The entry format ([`ENTRY_FORMAT`]); absent in format 1 entries.
    #[serde(default = "format_1", skip_serializing_if = "is_format_1")]
    pub v: u32,
    /// Set only on a void entry (see [`VoidRecord`]); such an entry has no transactions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub void: Option<VoidRecord>,
}

fn format_1() -> u32 {
    1
}

fn is_format_1(v: &u32) -> bool {
    *v == 1
}

/// What a void entry stands in for: the damaged bytes that were found in its slot and
/// moved to `_quarantine/` (docs/decisions/0012-void-entries.md). A void entry changes
/// nothing but the head, so the slot is never reused and the chain continues through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoidRecord {
    /// Length of the damaged file.
    pub bytes: u64,
    /// SHA-256 (hex) of the damaged file, as quarantined.
    pub sha256: String,
}

/// A log entry with its hash.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub body: EntryBody,
    pub hash: String,
}

impl LogEntry {
    pub fn seq(&self) -> Seq {
        self.body.seq
    }

    /// Builds an entry and its file bytes. The body is serialized once, straight into
    /// a buffer sized beforehand: a large import's entry is megabytes, and growing a
    /// string to that size and copying it again cost more than everything else here.
    pub fn seal(body: EntryBody) -> (LogEntry, Vec<u8>) {
        const PREFIX: &[u8] = b"{\"entry\":";
        let mut file = Vec::with_capacity(PREFIX.len() + body.estimated_len() + 80);
        file.extend_from_slice(PREFIX);
        serde_json::to_writer(&mut file, &body).expect("entry bodies always serialize");
        let hash = sha256_hex(&file[PREFIX.len()..]);
        file.extend_from_slice(b",\"hash\":\"");
        file.extend_from_slice(hash.as_bytes());
        file.extend_from_slice(b"\"}");
        (LogEntry { body, hash }, file)
    }

    /// Parses an entry file and checks its own hash (not yet its link to the previous
    /// entry: that is the reader's job, which knows the previous hash).
    pub fn decode(path: &str, bytes: &[u8]) -> Result<LogEntry> {
        #[derive(Deserialize)]
        struct File<'a> {
            #[serde(borrow)]
            entry: &'a RawValue,
            hash: String,
        }
        let file: File<'_> = serde_json::from_slice(bytes).map_err(|e| Error::corrupt(path, e))?;
        let raw = file.entry.get();
        if sha256_hex(raw.as_bytes()) != file.hash {
            // Not byte-identical to what we write; accept it only if the canonical form
            // of what it says still hashes right (someone reformatted the file).
            let value: serde_json::Value =
                serde_json::from_str(raw).map_err(|e| Error::corrupt(path, e))?;
            if sha256_hex(to_canonical_string(&value).as_bytes()) != file.hash {
                return Err(Error::corrupt(path, "entry does not match its hash"));
            }
        }
        let body: EntryBody = serde_json::from_str(raw).map_err(|e| Error::corrupt(path, e))?;
        Ok(LogEntry {
            body,
            hash: file.hash,
        })
    }

    /// Ids of the transactions in this entry, in order.
    pub fn txn_ids(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.body.txns.iter().map(|t| t.id)
    }
}

/// Outcome of a create-if-absent write of a slot.
pub(crate) enum SlotWrite {
    Written,
    Taken,
}

/// Writes `bytes` to slot `seq` with create-if-absent.
pub(crate) async fn create_slot(
    store: &DynStore,
    seq: Seq,
    bytes: bytes::Bytes,
) -> object_store::Result<SlotWrite> {
    let opts = PutOptions::from(PutMode::Create);
    match store
        .put_opts(&log_path(seq), PutPayload::from_bytes(bytes), opts)
        .await
    {
        Ok(_) => Ok(SlotWrite::Written),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(SlotWrite::Taken),
        Err(e) => Err(e),
    }
}

/// Reads and decodes slot `seq`; `None` when the slot is empty.
pub async fn read_entry(store: &DynStore, seq: Seq) -> Result<Option<LogEntry>> {
    let path = log_path(seq);
    let bytes = match store.get(&path).await {
        Ok(got) => got.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let entry = LogEntry::decode(path.as_ref(), &bytes)?;
    if entry.seq() != seq {
        return Err(Error::corrupt(
            path,
            format!("entry says it is at position {}", entry.seq()),
        ));
    }
    Ok(Some(entry))
}

/// Reads every entry from `from` on, in order, until the first empty slot.
///
/// Listing `_log/` first lets the known tail be fetched concurrently (what start-up
/// needs on S3, where a GET costs milliseconds); the sequential probe at the end picks up
/// entries written after the listing.
pub async fn read_from(store: &DynStore, from: Seq) -> Result<Vec<LogEntry>> {
    use futures::{StreamExt, TryStreamExt};

    let prefix = object_store::path::Path::from(crate::store::LOG_DIR);
    let offset = log_path(Seq(from.get().saturating_sub(1)));
    let mut listed: Vec<Seq> = store
        .list_with_offset(Some(&prefix), &offset)
        .map_ok(|meta| parse_log_path(&meta.location))
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .flatten()
        .filter(|s| *s >= from)
        .collect();
    listed.sort_unstable();
    // Only the contiguous run starting at `from` is usable.
    let run = listed
        .iter()
        .enumerate()
        .take_while(|(i, s)| s.get() == from.get() + *i as u64)
        .count();
    let mut entries: Vec<LogEntry> = futures::stream::iter(listed[..run].iter().copied())
        .map(|seq| async move {
            read_entry(store, seq)
                .await?
                .ok_or_else(|| Error::corrupt(log_path(seq), "listed but not readable"))
        })
        .buffered(16)
        .try_collect()
        .await?;
    let mut next = Seq(from.get() + entries.len() as u64);
    while let Some(entry) = read_entry(store, next).await? {
        entries.push(entry);
        next = next.next();
    }
    Ok(entries)
}

/// Parses the position out of a `_log/{seq:020}.json` key.
pub fn parse_log_path(path: &object_store::path::Path) -> Option<Seq> {
    let digits = path.filename()?.strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok().map(Seq))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::to_canonical_raw;
    use serde_json::json;

    fn sample(seq: u64) -> EntryBody {
        EntryBody {
            at: "2026-11-22T10:00:00.000Z".into(),
            prev_hash: GENESIS_HASH.into(),
            seq: Seq(seq),
            txns: vec![TxnRecord {
                actor: "alice".into(),
                audit: vec![Arc::from(to_canonical_raw(&json!({"action": "create"})))],
                id: Uuid::nil(),
                ops: vec![
                    Op::whole(
                        CollectionName::parse("things").unwrap(),
                        RecordId::parse("t1").unwrap(),
                        Some(Arc::from(to_canonical_raw(
                            &json!({"z": 1, "a": [1, {"b": null}], "s": "x\"y"}),
                        ))),
                    ),
                    Op::item(
                        CollectionName::parse("things").unwrap(),
                        RecordId::parse("t1").unwrap(),
                        OpKind::ItemSet,
                        vec!["a".into(), "i1".into()],
                        Some(Arc::from(to_canonical_raw(&json!({"id": "i1"})))),
                        None,
                        "2026-11-22T10:00:00.000Z",
                        "alice",
                    ),
                ],
                reads: vec![Read {
                    collection: CollectionName::parse("things").unwrap(),
                    id: None,
                    version: Seq(0),
                }],
                request_id: Some("req-1".into()),
                source: "api".into(),
                unaudited: None,
            }],
            v: ENTRY_FORMAT,
            void: None,
        }
    }

    #[test]
    fn a_whole_op_is_counted_as_it_is_written() {
        let doc: Arc<RawValue> = Arc::from(to_canonical_raw(&json!({"a": "x\"y", "n": [1, 2.5]})));
        for (collection, id) in [
            ("things", "t1"),
            ("_definitions", "bookings"),
            ("a", "0190f5e4-aaaa-7bbb-8ccc-0123456789ab"),
        ] {
            let (c, id) = (
                CollectionName::parse_any(collection).unwrap(),
                RecordId::parse(id).unwrap(),
            );
            for doc in [Some(doc.clone()), None] {
                let op = Op::whole(c.clone(), id.clone(), doc.clone());
                assert_eq!(
                    Op::whole_len(&c, &id, doc.as_deref()),
                    json_len(&op),
                    "{op:?}"
                );
            }
        }
    }

    #[test]
    fn sealed_entries_are_canonical_and_decode() {
        let (entry, bytes) = LogEntry::seal(sample(1));
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(to_canonical_string(&value).as_bytes(), &bytes[..]);
        let back = LogEntry::decode("x", &bytes).unwrap();
        assert_eq!(back.hash, entry.hash);
        assert_eq!(back.body.txns[0].ops[0].id.as_str(), "t1");
    }

    #[test]
    fn void_entries_are_canonical_and_older_entries_hash_as_before() {
        let mut body = sample(2);
        body.txns.clear();
        body.void = Some(VoidRecord {
            bytes: 17,
            sha256: "ab".repeat(32),
        });
        let (entry, bytes) = LogEntry::seal(body);
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(to_canonical_string(&value).as_bytes(), &bytes[..]);
        let back = LogEntry::decode("x", &bytes).unwrap();
        assert_eq!(back.hash, entry.hash);
        assert_eq!(back.body.void.unwrap().bytes, 17);
        // An entry without `void` has no such key: its bytes (and hash) are unchanged.
        let (_, plain) = LogEntry::seal(sample(1));
        assert!(!String::from_utf8(plain).unwrap().contains("void"));
    }

    #[test]
    fn an_entry_is_no_larger_than_its_counted_size() {
        let mut body = sample(u64::MAX);
        body.txns.push(body.txns[0].clone());
        let counted: usize = body.txns.iter().map(|t| t.encoded_len() + 1).sum();
        let (_, bytes) = LogEntry::seal(body.clone());
        assert!(
            bytes.len() <= ENTRY_OVERHEAD + counted,
            "{} > {}",
            bytes.len(),
            ENTRY_OVERHEAD + counted
        );
        let exact = serde_json::to_vec(&body.txns[0]).unwrap().len();
        assert_eq!(body.txns[0].encoded_len(), exact);
    }

    #[test]
    fn reformatted_entry_still_verifies_but_edited_one_does_not() {
        let (_, bytes) = LogEntry::seal(sample(1));
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        assert!(LogEntry::decode("x", &pretty).is_ok());
        let edited = String::from_utf8(bytes)
            .unwrap()
            .replace("alice", "mallory");
        let err = LogEntry::decode("x", edited.as_bytes()).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }
}
