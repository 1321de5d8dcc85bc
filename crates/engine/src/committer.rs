//! Group commit: the one task per database handle that writes the log.
//!
//! Transactions queue on a channel while a log write is in flight; the next batch takes
//! everything queued. Each transaction of a batch is validated, in order, against the
//! state at the head plus the writes of the earlier transactions of the batch; a stale
//! one is sent back to re-run alone, the rest go out as one entry at `head + 1`.
//!
//! The log is dense: a process only writes slot `n` after it has seen `1..n-1`. So a
//! successful create at `head + 1` proves the batch was validated against the exact
//! predecessor state, and no read of the head is needed before writing. Losing the slot
//! (`AlreadyExists`) means another writer got there first: apply its entry, catch up,
//! re-validate, retry. An error that leaves the outcome unknown (timeout, 5xx after
//! retries) is settled by reading the slot back and comparing transaction ids, and by
//! re-sending the identical bytes to the same slot until one of the two answers: a
//! transaction is never reported failed while it might still land.
//!
//! An error that proves the write was not performed (the store refused the connection or
//! the credentials; see [`definitely_not_applied`]) is not ambiguous: there is nothing to
//! read back. While every attempt for the slot so far failed that way, the write is
//! re-sent for at most [`REFUSAL_WINDOW`] (a blip passes), and then the batch fails with
//! `Unavailable` instead of being settled for the whole `settle_timeout`: a store outage
//! answers writers quickly, and truthfully (none of those attempts can land). Once one
//! attempt was ambiguous, later refusals prove nothing about it, and settling goes on as
//! above.
//!
//! No entry is larger than `max_entry_bytes`. As a batch is validated, each accepted
//! transaction's exact encoded size (as resolved for the log) is added to the entry's;
//! the first one that would take the entry past the limit, and every one after it, wait
//! for the next entry of the same batch (so the batch's order is kept), which is
//! validated afresh at its own slot like any other. A transaction that alone passes the
//! limit can never be written: it fails with `too_large` and the others go on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::SecondsFormat;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::collection::integrity::Mode;
use crate::error::{Error, Result};
use crate::log::{
    ENTRY_OVERHEAD, EntryBody, LogEntry, SlotWrite, TxnRecord, create_slot, read_entry,
};
use crate::names::Seq;
use crate::shared::Shared;
use crate::state::State;
use crate::store::fault::InjectedFault;

/// What the committer answers a transaction.
#[derive(Debug)]
pub(crate) enum Outcome {
    Committed(Seq),
    /// Its reads changed: run the closure again on a newer snapshot.
    Stale,
}

pub(crate) struct Submission {
    pub txn: TxnRecord,
    /// Nested appends resolved against the commit position (see `records`).
    pub deferred: Vec<crate::txn::DeferredAppend>,
    /// Its writes applied to its snapshot ahead (`txn::ahead`): taken instead of
    /// validating it again when the head is still that snapshot.
    pub applied: Option<crate::txn::Applied>,
    pub reply: oneshot::Sender<Result<Outcome>>,
}

enum Settled {
    Written,
    Lost(LogEntry),
}

/// Runs until every sender is dropped, then closes the view queue.
pub(crate) async fn run(shared: Arc<Shared>, mut rx: mpsc::Receiver<Submission>) {
    let max_batch = shared.opts.max_batch.max(1);
    let mut batch = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        commit_batch(&shared, std::mem::take(&mut batch)).await;
    }
    shared.view.close();
}

async fn commit_batch(shared: &Shared, mut batch: Vec<Submission>) {
    loop {
        let state = shared.snapshot();
        let seq = state.seq().next();
        let started = Instant::now();
        let Validated {
            mut accepted,
            resolved,
            working,
            later,
        } = validate(shared, &state, batch, seq);
        if accepted.is_empty() {
            // `later` is only ever non-empty behind an accepted transaction.
            debug_assert!(later.is_empty());
            return;
        }
        let ids: Vec<Uuid> = resolved.iter().map(|t| t.id).collect();
        let body = EntryBody {
            at: shared
                .opts
                .clock
                .now()
                .to_rfc3339_opts(SecondsFormat::Millis, true),
            prev_hash: state.head_hash().to_string(),
            seq,
            txns: resolved,
            v: crate::log::ENTRY_FORMAT,
            void: None,
        };
        let validated = started.elapsed();
        let (entry, bytes) = LogEntry::seal(body);
        debug_assert!(bytes.len() <= shared.opts.max_entry_bytes);
        let (sealed, len) = (started.elapsed(), bytes.len());
        let settled = write_settled(shared, seq, Bytes::from(bytes), &ids).await;
        // Where a large commit's time goes (`bucketbase_engine::committer=debug`).
        tracing::debug!(
            %seq,
            txns = ids.len(),
            bytes = len,
            validate_ms = validated.as_secs_f64() * 1000.0,
            seal_ms = (sealed - validated).as_secs_f64() * 1000.0,
            write_ms = (started.elapsed() - sealed).as_secs_f64() * 1000.0,
            "commit"
        );
        match settled {
            Ok(Settled::Written) => {
                shared.metrics.record_batch(ids.len());
                let applied = shared.install(working, &entry);
                for Submission { reply, .. } in accepted {
                    let answer = match &applied {
                        Ok(_) => Ok(Outcome::Committed(seq)),
                        Err(e) => Err(per_txn_error(e, ids[0])),
                    };
                    let _ = reply.send(answer);
                }
                // The view follows the state after the writers have their answers (its
                // queue takes a moment for an entry of thousands of records).
                if let Ok(true) = applied {
                    shared.queue_for_view(&entry);
                }
                if later.is_empty() {
                    return;
                }
                batch = later;
            }
            Ok(Settled::Lost(winner)) => {
                shared.metrics.lost_slot();
                restore_records(&mut accepted, entry.body.txns);
                let caught_up = match shared.apply(&winner, false) {
                    Ok(()) => catch_up_patiently(shared).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = caught_up {
                    fail_all(accepted, &e);
                    fail_all(later, &e);
                    return;
                }
                // Re-validate the original (unresolved) transactions at the new head.
                batch = accepted;
                batch.extend(later);
            }
            Err(e) => {
                // The ones waiting for a later entry were definitely not written.
                let not_written = Error::Unavailable {
                    reason: format!("an earlier entry of its batch failed: {e}"),
                };
                fail_all(accepted, &e);
                fail_all(later, &not_written);
                return;
            }
        }
    }
}

/// Catching up after a lost slot, retrying transient store errors until the settle
/// deadline. Our batch is not in the log, so a failure here is definite, not ambiguous.
async fn catch_up_patiently(shared: &Shared) -> Result<()> {
    let deadline = Instant::now() + shared.opts.settle_timeout;
    let mut backoff = Duration::from_millis(2);
    loop {
        match shared.catch_up().await {
            Ok(_) => return Ok(()),
            Err(Error::Store(e)) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "catch-up failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            Err(Error::Store(e)) => {
                return Err(Error::Unavailable {
                    reason: e.to_string(),
                });
            }
            Err(other) => return Err(other),
        }
    }
}

fn fail_all(batch: Vec<Submission>, e: &Error) {
    for sub in batch {
        let id = sub.txn.id;
        let _ = sub.reply.send(Err(per_txn_error(e, id)));
    }
}

/// Errors are not `Clone` (store errors carry sources); each waiter gets its own.
fn per_txn_error(e: &Error, txn: Uuid) -> Error {
    match e {
        Error::Corrupt { path, reason } => Error::Corrupt {
            path: path.clone(),
            reason: reason.clone(),
        },
        Error::Unavailable { reason } => Error::Unavailable {
            reason: reason.clone(),
        },
        Error::OutcomeUnknown {
            attempts, reason, ..
        } => Error::OutcomeUnknown {
            txn,
            attempts: *attempts,
            reason: reason.clone(),
        },
        other => Error::OutcomeUnknown {
            txn,
            attempts: 0,
            reason: other.to_string(),
        },
    }
}

/// What one entry of a batch will hold.
struct Validated {
    /// The transactions going into the entry, and as they are written (appends resolved).
    accepted: Vec<Submission>,
    resolved: Vec<TxnRecord>,
    /// The state they produce at the entry's position.
    working: State,
    /// Not looked at yet: they would take the entry past `max_entry_bytes`.
    later: Vec<Submission>,
}

/// Keeps the transactions whose reads are current and whose writes pass every
/// integrity check, each against the head plus the earlier accepted transactions of the
/// batch; answers `Stale` or the violation to the others. Stops at the first one that
/// would not fit in the entry (see the module docs); a transaction that alone passes
/// `max_entry_bytes` is answered `too_large`. The first transaction of the entry whose
/// writes were applied ahead to this very head is not validated again (`txn::ahead`).
fn validate(shared: &Shared, state: &Arc<State>, batch: Vec<Submission>, seq: Seq) -> Validated {
    let max_entry_bytes = shared.opts.max_entry_bytes;
    let mut working = (**state).clone();
    let mut accepted = Vec::with_capacity(batch.len());
    let mut resolved = Vec::with_capacity(batch.len());
    let mut entry_len = ENTRY_OVERHEAD;
    let mut batch = batch.into_iter();
    while let Some(mut sub) = batch.next() {
        let fresh = sub.txn.reads.iter().all(|r| match &r.id {
            Some(id) => working.version_of(&r.collection, id) == r.version,
            None => working.collection_version(&r.collection) == r.version,
        });
        if !fresh {
            let _ = sub.reply.send(Ok(Outcome::Stale));
            continue;
        }
        // Written as it came, a transaction is taken, not copied (an import's is
        // thousands of operations): `restore_records` gives it back if the batch is
        // validated again.
        let txn = if sub.deferred.is_empty() {
            Ok(take_record(&mut sub.txn))
        } else {
            crate::txn::resolve_appends(&working, &sub.txn, &sub.deferred)
        };
        let txn = match txn {
            Ok(txn) => txn,
            Err(e) => {
                let _ = sub.reply.send(Err(e));
                continue;
            }
        };
        let len = txn.encoded_len() + 1;
        if ENTRY_OVERHEAD + len > max_entry_bytes {
            let _ = sub.reply.send(Err(Error::TooLarge {
                what: "a transaction in one log entry".into(),
                size: ENTRY_OVERHEAD + len,
                limit: max_entry_bytes,
            }));
            continue;
        }
        if entry_len + len > max_entry_bytes {
            if sub.deferred.is_empty() {
                sub.txn = txn;
            }
            let mut later = vec![sub];
            later.extend(batch);
            return Validated {
                accepted,
                resolved,
                working,
                later,
            };
        }
        let applied = sub.applied.take().filter(|applied| {
            let usable = accepted.is_empty()
                && Arc::ptr_eq(&applied.base, state)
                && sub.deferred.is_empty()
                && state.audits_every_write(&txn);
            shared.metrics.applied_ahead(usable);
            tracing::debug!(txn = %txn.id, usable, "applied ahead");
            usable
        });
        let next = match applied {
            // Its reads are current (nothing was applied since its snapshot), and so is
            // every check the helper made.
            Some(applied) => Ok(applied.state),
            None => {
                // A persistent-map clone is O(1): a violator leaves `working` untouched.
                let mut next = working.clone();
                next.apply_txn(&txn, seq, Mode::Validate).map(|()| next)
            }
        };
        match next {
            Ok(next) => {
                working = next;
                entry_len += len;
                resolved.push(txn);
                accepted.push(sub);
            }
            Err(e) => {
                let _ = sub.reply.send(Err(e));
            }
        }
    }
    Validated {
        accepted,
        resolved,
        working,
        later: Vec::new(),
    }
}

/// A submitted record, taken for the entry; its id stays (a failure answers with it).
fn take_record(txn: &mut TxnRecord) -> TxnRecord {
    let id = txn.id;
    std::mem::replace(
        txn,
        TxnRecord {
            id,
            ..TxnRecord::default()
        },
    )
}

/// Gives the accepted submissions back the records `validate` took from them (`txns`:
/// the entry's, in the same order), so that they can be validated again.
fn restore_records(accepted: &mut [Submission], txns: Vec<TxnRecord>) {
    debug_assert_eq!(accepted.len(), txns.len());
    for (sub, txn) in accepted.iter_mut().zip(txns) {
        if sub.deferred.is_empty() {
            sub.txn = txn;
        }
    }
}

/// How long a log write the store refuses outright is re-sent before the batch fails
/// `Unavailable` (or `settle_timeout`, if shorter).
pub(crate) const REFUSAL_WINDOW: Duration = Duration::from_secs(1);

/// Writes `bytes` at `seq` and settles the outcome: ours is there, or someone else's.
async fn write_settled(shared: &Shared, seq: Seq, bytes: Bytes, ours: &[Uuid]) -> Result<Settled> {
    let deadline = Instant::now() + shared.opts.settle_timeout;
    let refusal_deadline = Instant::now() + REFUSAL_WINDOW.min(shared.opts.settle_timeout);
    let mut backoff = Duration::from_millis(2);
    let mut attempts = 0u32;
    let mut last_error = String::new();
    // Whether an earlier attempt may have landed (see the module docs).
    let mut ambiguous = false;
    loop {
        attempts += 1;
        match create_slot(&shared.store, seq, bytes.clone()).await {
            Ok(SlotWrite::Written) => return Ok(Settled::Written),
            // Taken: normally another writer; possibly an earlier attempt of ours that
            // reported an error but landed. Reading the slot tells which.
            Ok(SlotWrite::Taken) => {}
            Err(e) if !ambiguous && definitely_not_applied(&e) => {
                if Instant::now() >= refusal_deadline {
                    tracing::warn!(%seq, error = %e, "log write refused; nothing was written");
                    return Err(Error::Unavailable {
                        reason: e.to_string(),
                    });
                }
                // Nothing of ours can be in the slot: no read-back, just send it again.
                tracing::debug!(%seq, error = %e, "log write refused; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
                continue;
            }
            Err(e) => {
                ambiguous = true;
                shared.metrics.ambiguous_write();
                tracing::warn!(%seq, error = %e, "log write failed; settling its outcome");
                last_error = e.to_string();
            }
        }
        loop {
            match read_entry(&shared.store, seq).await {
                Ok(Some(entry)) if entry.txn_ids().eq(ours.iter().copied()) => {
                    return Ok(Settled::Written);
                }
                Ok(Some(entry)) => return Ok(Settled::Lost(entry)),
                Ok(None) => break,
                Err(Error::Store(e)) => {
                    last_error = e.to_string();
                    if Instant::now() > deadline {
                        break;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Err(other) => return Err(other),
            }
        }
        if Instant::now() > deadline {
            return Err(Error::OutcomeUnknown {
                txn: ours[0],
                attempts,
                reason: last_error,
            });
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

/// Whether a store error proves the request was never performed: the store refused the
/// connection or the caller, or the fault store injected a refusal. Timeouts, 5xx answers
/// and anything unrecognised may have been performed, and are settled instead.
fn definitely_not_applied(e: &object_store::Error) -> bool {
    use object_store::client::{HttpError, HttpErrorKind};
    if matches!(
        e,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    ) {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(http) = cause.downcast_ref::<HttpError>() {
            return http.kind() == HttpErrorKind::Connect;
        }
        if let Some(injected) = cause.downcast_ref::<InjectedFault>() {
            return injected.is_definite();
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use object_store::ObjectStoreExt;
    use serde_json::json;

    use crate::error::Error;
    use crate::names::{CollectionName, RecordId, Seq};
    use crate::store::fault::{FaultRule, FaultStore, OpKind};
    use crate::store::{DynStore, log_path};
    use crate::{Database, DbOptions, TxnMeta};

    const LIMIT: usize = 64 * 1024;

    /// A database whose log writes are slow, so transactions sent meanwhile queue up and
    /// reach the committer as one batch.
    async fn slow_log_db() -> Arc<Database> {
        let inner: DynStore = Arc::new(object_store::memory::InMemory::new());
        let slow =
            FaultRule::delay(OpKind::PutCreate, Duration::from_millis(50)).with_prefix("_log/");
        let store: DynStore = Arc::new(FaultStore::new(inner, 7).with_rule(slow));
        let opts = DbOptions {
            max_entry_bytes: LIMIT,
            materialize: false,
            ..DbOptions::default()
        };
        Arc::new(Database::open(store, opts).await.unwrap())
    }

    async fn put(db: &Database, i: usize, bytes: usize) -> crate::Result<Seq> {
        let blobs = CollectionName::parse("blobs").unwrap();
        let id = RecordId::parse(&format!("b{i}")).unwrap();
        let doc = json!({"data": "x".repeat(bytes)});
        db.transact(&TxnMeta::new("test", "test"), |tx| {
            tx.put(&blobs, &id, &doc)
        })
        .await
        .map(|c| c.seq)
    }

    #[tokio::test]
    async fn a_batch_over_the_entry_limit_is_split_and_a_lone_giant_fails() {
        let db = slow_log_db().await;
        // Twelve transactions of ~20 KB: at most three fit in one 64 KiB entry.
        let writers: Vec<_> = (0..12)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move { put(&db, i, 20_000).await })
            })
            .collect();
        let giant = put(&db, 99, LIMIT).await;
        assert!(
            matches!(&giant, Err(Error::TooLarge { size, limit: LIMIT, .. }) if *size > LIMIT),
            "{giant:?}"
        );
        assert_eq!(giant.unwrap_err().code(), "too_large");
        for w in writers {
            w.await
                .unwrap()
                .expect("every transaction that fits is committed");
        }

        let head = db.snapshot().seq();
        let mut txns = 0;
        let mut largest_batch = 0;
        for seq in 1..=head.get() {
            let bytes = db.store().get(&log_path(Seq(seq))).await.unwrap();
            let bytes = bytes.bytes().await.unwrap();
            assert!(bytes.len() <= LIMIT, "entry {seq} is {} bytes", bytes.len());
            let entry = crate::log::LogEntry::decode("entry", &bytes).unwrap();
            txns += entry.body.txns.len();
            largest_batch = largest_batch.max(entry.body.txns.len());
        }
        assert_eq!(txns, 12, "the giant is not in the log, all the others are");
        assert!(
            largest_batch >= 2,
            "queued transactions share entries, up to the limit"
        );
        assert!(
            head.get() >= 4,
            "twelve transactions of 20 KB need at least four entries"
        );
        assert_eq!(db.snapshot().len(), 12);
    }
}

#[cfg(test)]
mod refusals {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;

    use crate::error::Error;
    use crate::names::{CollectionName, RecordId};
    use crate::store::DynStore;
    use crate::store::fault::{FaultRule, FaultStore, OpKind};
    use crate::{Database, DbOptions, TxnMeta};

    /// Log writes that time out after landing or are refused, in a seeded mix, and reads
    /// of the log that fail, so nothing can be settled by reading back. Failing fast on
    /// refusals must never answer `Unavailable` ("nothing was written") for a write that
    /// landed: those are `OutcomeUnknown`. (A request that times out and lands *after* a
    /// read-back found the slot empty, which the `ambiguous` guard is for, cannot be
    /// staged with the fault store.)
    #[tokio::test]
    async fn unavailable_means_not_written_under_mixed_faults() {
        let things = CollectionName::parse("things").unwrap();
        let (mut unknown, mut unavailable) = (0, 0);
        for seed in 0..12 {
            let inner: DynStore = Arc::new(object_store::memory::InMemory::new());
            let faults = Arc::new(
                FaultStore::new(inner, seed)
                    .with_rule(
                        FaultRule::ambiguous_success(OpKind::PutCreate)
                            .with_prefix("_log/")
                            .with_probability(0.5),
                    )
                    .with_rule(FaultRule::fail(OpKind::PutCreate).with_prefix("_log/"))
                    .with_rule(FaultRule::fail(OpKind::Get).with_prefix("_log/")),
            );
            faults.set_enabled(false);
            let store: DynStore = faults.clone();
            let opts = DbOptions {
                settle_timeout: Duration::from_millis(100),
                materialize: false,
                ..DbOptions::default()
            };
            let db = Database::open(store, opts).await.unwrap();
            faults.set_enabled(true);
            let id = RecordId::parse("x").unwrap();
            let answer = db
                .transact(&TxnMeta::new("test", "test"), |tx| {
                    tx.put(&things, &id, &json!({}))
                })
                .await;
            faults.set_enabled(false);
            db.catch_up().await.unwrap();
            let landed = db.snapshot().get(&things, &id).is_some();
            match answer {
                Err(Error::Unavailable { .. }) => {
                    unavailable += 1;
                    assert!(!landed, "seed {seed}: reported not written, but it landed");
                }
                Err(Error::OutcomeUnknown { .. }) => unknown += 1,
                other => panic!("seed {seed}: {other:?}"),
            }
        }
        assert!(unknown > 0 && unavailable > 0, "{unknown} / {unavailable}");
    }

    #[test]
    fn only_refusals_are_definitely_not_applied() {
        use object_store::client::{HttpError, HttpErrorKind};

        use super::definitely_not_applied;
        use crate::store::fault::{Fault, InjectedFault};

        let generic =
            |source: Box<dyn std::error::Error + Send + Sync>| object_store::Error::Generic {
                store: "S3",
                source,
            };
        let http = |kind| generic(Box::new(HttpError::new(kind, std::io::Error::other("x"))));
        let injected = |fault| {
            generic(Box::new(InjectedFault {
                fault,
                op: OpKind::PutCreate,
                path: "_log/1".into(),
            }))
        };
        assert!(definitely_not_applied(&http(HttpErrorKind::Connect)));
        assert!(definitely_not_applied(&injected(Fault::Fail)));
        assert!(definitely_not_applied(
            &object_store::Error::PermissionDenied {
                path: "_log/1".into(),
                source: "403".into(),
            }
        ));
        assert!(!definitely_not_applied(&http(HttpErrorKind::Timeout)));
        assert!(!definitely_not_applied(&http(HttpErrorKind::Unknown)));
        assert!(!definitely_not_applied(&injected(Fault::AmbiguousFailure)));
        assert!(!definitely_not_applied(&generic("503 Slow Down".into())));
    }
}
