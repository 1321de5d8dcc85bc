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

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::SecondsFormat;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::collection::integrity::Mode;
use crate::db::Shared;
use crate::error::{Error, Result};
use crate::log::{EntryBody, LogEntry, SlotWrite, TxnRecord, create_slot, read_entry};
use crate::names::Seq;
use crate::state::State;

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
    pub deferred: Vec<crate::collection::records::DeferredAppend>,
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
        let (accepted, resolved, working) = validate(&state, batch, seq);
        if accepted.is_empty() {
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
        };
        let (entry, bytes) = LogEntry::seal(body);
        let settled = write_settled(shared, seq, Bytes::from(bytes), &ids).await;
        match settled {
            Ok(Settled::Written) => {
                shared.metrics.record_batch(ids.len());
                let applied = shared.install(working, &entry);
                for Submission { reply, .. } in accepted {
                    let answer = match &applied {
                        Ok(()) => Ok(Outcome::Committed(seq)),
                        Err(e) => Err(per_txn_error(e, ids[0])),
                    };
                    let _ = reply.send(answer);
                }
                return;
            }
            Ok(Settled::Lost(winner)) => {
                shared.metrics.lost_slot();
                let caught_up = match shared.apply(&winner, false) {
                    Ok(()) => catch_up_patiently(shared).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = caught_up {
                    fail_all(accepted, &e);
                    return;
                }
                // Re-validate the original (unresolved) transactions at the new head.
                batch = accepted;
            }
            Err(e) => {
                fail_all(accepted, &e);
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

/// Keeps the transactions whose reads are current and whose writes pass every
/// integrity check, each against the head plus the earlier accepted transactions of the
/// batch; answers `Stale` or the violation to the others. Returns the accepted ones and
/// the state they produce at `seq`.
fn validate(
    state: &State,
    batch: Vec<Submission>,
    seq: Seq,
) -> (Vec<Submission>, Vec<TxnRecord>, State) {
    let mut working = state.clone();
    let mut accepted = Vec::with_capacity(batch.len());
    let mut resolved = Vec::with_capacity(batch.len());
    for sub in batch {
        let fresh = sub.txn.reads.iter().all(|r| match &r.id {
            Some(id) => working.version_of(&r.collection, id) == r.version,
            None => working.collection_version(&r.collection) == r.version,
        });
        if !fresh {
            let _ = sub.reply.send(Ok(Outcome::Stale));
            continue;
        }
        // A persistent-map clone is O(1): a violator leaves `working` untouched.
        let mut next = working.clone();
        let applied = if sub.deferred.is_empty() {
            next.apply_txn(&sub.txn, seq, Mode::Validate)
                .map(|()| sub.txn.clone())
        } else {
            crate::collection::records::resolve_appends(&working, &sub.txn, &sub.deferred)
                .and_then(|txn| next.apply_txn(&txn, seq, Mode::Validate).map(|()| txn))
        };
        match applied {
            Ok(txn) => {
                working = next;
                resolved.push(txn);
                accepted.push(sub);
            }
            Err(e) => {
                let _ = sub.reply.send(Err(e));
            }
        }
    }
    (accepted, resolved, working)
}

/// Writes `bytes` at `seq` and settles the outcome: ours is there, or someone else's.
async fn write_settled(shared: &Shared, seq: Seq, bytes: Bytes, ours: &[Uuid]) -> Result<Settled> {
    let deadline = Instant::now() + shared.opts.settle_timeout;
    let mut backoff = Duration::from_millis(2);
    let mut attempts = 0u32;
    let mut last_error = String::new();
    loop {
        attempts += 1;
        match create_slot(&shared.store, seq, bytes.clone()).await {
            Ok(SlotWrite::Written) => return Ok(Settled::Written),
            // Taken: normally another writer; possibly an earlier attempt of ours that
            // reported an error but landed. Reading the slot tells which.
            Ok(SlotWrite::Taken) => {}
            Err(e) => {
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
