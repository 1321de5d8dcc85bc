//! The audit trail: events from the log, queried; records read as of a past position.
//!
//! Audit events are written inside the same log entry as the change they describe, so
//! the trail is exactly as complete and as tamper-evident as the log. Queries walk the
//! log (newest first, concurrently fetched); per-record history and "as of" reads use the
//! log position of each change.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde_json::Value;

use super::event::{AuditEvent, EventHeader};
use crate::error::{Error, Result};
use crate::log::{LogEntry, Op, read_entry};
use crate::names::{CollectionName, RecordId, Seq};
use crate::store::DynStore;

/// What to look for; every set field must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub collection: Option<String>,
    pub record_id: Option<String>,
    pub actor: Option<String>,
    /// Exact source, or a prefix ending in `:` (e.g. `import:`).
    pub source: Option<String>,
    /// Bounds on the event time, inclusive.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Most events returned (newest first).
    pub limit: usize,
}

impl AuditFilter {
    fn matches(&self, e: &EventHeader<'_>) -> bool {
        let eq = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == got)
        };
        let source_ok = match self.source.as_deref() {
            None => true,
            Some(prefix) if prefix.ends_with(':') => {
                e.source.is_some_and(|s| s.starts_with(prefix))
            }
            Some(exact) => e.source == Some(exact),
        };
        let at = e.at.and_then(|at| DateTime::parse_from_rfc3339(at).ok());
        let time_ok = match at {
            Some(at) => self.from.is_none_or(|f| at >= f) && self.to.is_none_or(|t| at <= t),
            None => self.from.is_none() && self.to.is_none(),
        };
        eq(&self.collection, e.collection)
            && eq(&self.record_id, e.record_id)
            && eq(&self.actor, e.actor)
            && source_ok
            && time_ok
    }
}

/// Audit events matching `filter`, newest first, each with the `seq` of its entry.
pub async fn query(store: &DynStore, head: Seq, filter: &AuditFilter) -> Result<Vec<Value>> {
    let limit = if filter.limit == 0 { 100 } else { filter.limit };
    let mut out = Vec::new();
    let mut next = head.get();
    while next > 0 && out.len() < limit {
        let entries;
        (entries, next) = newest_first(store, next).await?;
        for entry in entries {
            for txn in entry.body.txns.iter().rev() {
                let puts = super::created::Puts::of(txn);
                for event in txn.audit.iter().rev() {
                    let fields =
                        AuditEvent::header(event).map_err(|e| Error::corrupt("audit event", e))?;
                    if filter.matches(&fields) {
                        let mut value = puts.full_event(event)?;
                        value["seq"] = entry.seq().get().into();
                        out.push(value);
                        if out.len() >= limit {
                            return Ok(out);
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Up to 64 entries ending at `hi`, newest first (fetched concurrently), and the position
/// to continue from.
async fn newest_first(store: &DynStore, hi: u64) -> Result<(Vec<LogEntry>, u64)> {
    let lo = hi.saturating_sub(63).max(1);
    let entries: Vec<Option<LogEntry>> = futures::stream::iter((lo..=hi).rev())
        .map(|s| read_entry(store, Seq(s)))
        .buffered(16)
        .try_collect()
        .await?;
    Ok((entries.into_iter().flatten().collect(), lo - 1))
}

/// A record as it was at log position `at`: `None` if it did not exist then. Walks back
/// from `at` to the last entry that wrote it whole (see [`as_of_many`]).
pub async fn as_of(
    store: &DynStore,
    c: &CollectionName,
    id: &RecordId,
    at: Seq,
) -> Result<Option<(Seq, Value)>> {
    let want = [(c.clone(), id.clone(), at)];
    Ok(as_of_many(store, &want).await?.pop().flatten())
}

/// One unanswered ask of [`as_of_many`]: the position of the record's last change at or
/// before the asked position, once seen, and the item operations met on the way back
/// (newest first), to apply forward on the whole document found further back.
#[derive(Default)]
struct Open {
    version: Option<Seq>,
    items: Vec<Op>,
}

/// [`as_of`] for many records at once, in one walk back from the newest position asked
/// for (each entry read and parsed once, however many records it wrote): the answers in
/// the order of `want`. A record changed by item operations (entry format 2) is found at
/// its last whole write (`put`, `delete`) with the item operations since applied on it
/// ([`super::ops::apply_op`], the function replay uses): the document replay produced.
pub async fn as_of_many(
    store: &DynStore,
    want: &[(CollectionName, RecordId, Seq)],
) -> Result<Vec<Option<(Seq, Value)>>> {
    let mut answers: Vec<Option<Option<(Seq, Value)>>> = vec![None; want.len()];
    let mut progress: Vec<Open> = want.iter().map(|_| Open::default()).collect();
    // Unanswered asks, by collection and record.
    let mut open: HashMap<&CollectionName, HashMap<&RecordId, Vec<usize>>> = HashMap::new();
    for (i, (c, id, _)) in want.iter().enumerate() {
        open.entry(c).or_default().entry(id).or_default().push(i);
    }
    let mut next = want.iter().map(|(_, _, at)| at.get()).max().unwrap_or(0);
    while next > 0 && !open.is_empty() {
        let entries;
        (entries, next) = newest_first(store, next).await?;
        for entry in entries {
            let seq = entry.seq();
            for txn in entry.body.txns.iter().rev() {
                for op in txn.ops.iter().rev() {
                    let Some(records) = open.get_mut(&op.collection) else {
                        continue;
                    };
                    let Some(asks) = records.get_mut(&op.id) else {
                        continue;
                    };
                    // Seen here: the asks at or after this position not answered yet (an
                    // op later in the transaction came first in this walk). A whole write
                    // answers them; an item operation is kept to apply forward.
                    let mut failed = None;
                    asks.retain(|&i| {
                        if want[i].2 < seq || answers[i].is_some() {
                            return true;
                        }
                        let ask = &mut progress[i];
                        let version = *ask.version.get_or_insert(seq);
                        if !op.op.is_whole() {
                            ask.items.push(op.clone());
                            return true;
                        }
                        let mut doc = None;
                        for o in std::iter::once(op).chain(ask.items.iter().rev()) {
                            match super::ops::apply_op(doc, o) {
                                Ok(after) => doc = after,
                                Err(e) => {
                                    failed = Some(Error::corrupt(crate::store::log_path(seq), e));
                                    return true;
                                }
                            }
                        }
                        answers[i] = Some(doc.map(|d| (version, d)));
                        false
                    });
                    if let Some(e) = failed {
                        return Err(e);
                    }
                    if asks.is_empty() {
                        records.remove(&op.id);
                        if records.is_empty() {
                            open.remove(&op.collection);
                        }
                    }
                }
            }
        }
    }
    Ok(answers.into_iter().map(Option::flatten).collect())
}
