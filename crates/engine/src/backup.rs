//! Incremental backup of a database root, and point-in-time restore from one.
//!
//! The log is the database, so a backup is a copy of the log plus what makes it cheap or
//! safe to use: checkpoints (start-up time), `_files/` blobs (records point at them) and
//! signed audit digests (they protect the copy as they protect the original). Everything
//! copied is immutable once written, which is what makes the backup incremental and
//! restartable: a run copies only the keys the target lacks, create-only, and a key it
//! finds already there must hold the same thing. Never copied: `_keys/` (secrets stay with
//! their root), the materialized view and `_meta/` (derived: restore rebuilds them), digest
//! claims (coordination between live processes) and probes.
//!
//! Trust. Every log entry is decoded and its hash and its link to the previous entry are
//! checked as it is copied, in both directions, so a damaged source is not copied on and a
//! damaged or tampered backup is not restored from. A target whose entry at some position
//! differs from the source's is a different database, and is refused rather than mixed.
//! Checkpoints are copied only when their parts match the manifest's hashes and the
//! manifest names the log entry at its position (otherwise they are skipped: they are
//! derived); digests only when the signed head hash is the log's.
//!
//! Cost. `_backup/state.json` in the target remembers the last position copied and its
//! hash, so a run lists both logs from there only (one LIST per 1,000 new entries), then
//! pays one GET and one PUT per new entry; checkpoints, digests and files cost a listing
//! each plus a GET and PUT per new object. The source is only read.
//!
//! Restore copies positions `1..=N` (with the digests at or below `N`, so nothing claims
//! the log reaches further, and every file) into an empty root, replaying the state from
//! the entries as it goes. A checkpoint's hashes prove only that it was not damaged, not
//! that its records are the log's (whoever can write the bucket can recompute them), so
//! only the newest checkpoint at or below `N` whose records equal the replayed state at
//! its position is copied (start-up needs no other). Then the root is opened, its state
//! must equal the replayed one, the view is rebuilt from it and the chain of the result
//! is verified.

mod copy;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::log::{GENESIS_HASH, read_entry};
use crate::names::Seq;
use crate::state::State;
use crate::store::{DynStore, log_path};
use copy::{
    Replay, copy_checkpoint, copy_extras, copy_files, copy_log, list_log, missing, same_records,
    without_gap,
};

/// The target's note of how far the log was copied (a hint: it is checked on every run).
const MARKER: &str = "_backup/state.json";

/// Reports progress: what is being copied, how many so far, of how many.
pub type Progress<'a> = &'a (dyn Fn(&str, u64, u64) + Sync);

/// What a backup copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// New log entries written to the target.
    pub entries: u64,
    /// The last position the target now holds.
    pub head: Seq,
    pub checkpoints: u64,
    /// Damaged source checkpoints left out (derived: nothing is lost).
    pub checkpoints_skipped: u64,
    pub files: u64,
    pub digests: u64,
    /// Bytes written to the target.
    pub bytes: u64,
}

/// Which state to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestorePoint {
    /// Everything the backup holds.
    Head,
    /// The state after log position `N`.
    Seq(Seq),
    /// The state of the longest log prefix whose entries committed at or before this time.
    Time(DateTime<Utc>),
}

impl RestorePoint {
    /// Parses an RFC 3339 time (`2026-12-01T10:00:00Z`).
    pub fn at_time(text: &str) -> Result<RestorePoint> {
        DateTime::parse_from_rfc3339(text.trim())
            .map(|t| RestorePoint::Time(t.with_timezone(&Utc)))
            .map_err(|e| Error::invalid("restore time", format!("{text:?}: {e} (use RFC 3339)")))
    }
}

/// What a restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// The position restored (the log head of the new root).
    pub seq: Seq,
    /// Commit time of the entry at `seq`.
    pub at: String,
    pub entries: u64,
    pub checkpoints: u64,
    pub checkpoints_skipped: u64,
    pub files: u64,
    pub digests: u64,
    /// Records in the restored state (and view).
    pub records: u64,
    pub bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct Marker {
    hash: String,
    seq: Seq,
}

/// Copies what `target` lacks of `source`'s log, checkpoints, files and digests.
pub async fn backup(
    source: &DynStore,
    target: &DynStore,
    progress: Progress<'_>,
) -> Result<BackupReport> {
    let mut report = BackupReport::default();
    // Where the target's log ends, checked against the source.
    let marker = read_marker(target).await?;
    let from = marker.as_ref().map_or(Seq::ZERO, |m| m.seq);
    let mut have = from;
    for seq in list_log(target, from).await? {
        if seq != have.next() {
            break;
        }
        have = seq;
    }
    let mut prev_hash = GENESIS_HASH.to_string();
    if have > Seq::ZERO {
        let ours = read_entry(target, have)
            .await?
            .ok_or_else(|| Error::corrupt(log_path(have), "named by the backup marker, missing"))?;
        if let Some(m) = &marker
            && m.seq == have
            && m.hash != ours.hash
        {
            return Err(Error::corrupt(
                log_path(have),
                "does not match the hash the last backup recorded: the backup was altered",
            ));
        }
        match read_entry(source, have).await? {
            Some(theirs) if theirs.hash == ours.hash => {}
            Some(_) => return Err(different_database(have)),
            None => {
                return Err(Error::invalid(
                    "backup target",
                    format!(
                        "it holds log position {have}, but the source's log ends before it: \
                         the target is a backup of another database (use an empty target)"
                    ),
                ));
            }
        }
        prev_hash = ours.hash;
    }

    // New entries, and the extras that may be at or below their end.
    let source_log = without_gap(list_log(source, have).await?, have)?;
    let head = source_log.last().copied().unwrap_or(have);
    let checkpoints = missing(
        crate::checkpoint::list(source).await?,
        crate::checkpoint::list(target).await?,
        head,
    );
    let digests = missing(
        crate::digest::list(source).await?,
        crate::digest::list(target).await?,
        head,
    );
    let wanted: BTreeSet<Seq> = checkpoints.iter().chain(&digests).copied().collect();
    let mut hashes = BTreeMap::new();
    let copied = copy_log(
        source,
        target,
        &source_log,
        (have, prev_hash),
        None,
        &wanted,
        &mut hashes,
        None,
        progress,
    )
    .await?;
    report.entries = copied.written;
    report.bytes += copied.bytes;
    report.head = copied.last.0;
    let marker = serde_json::to_vec(&Marker {
        hash: copied.last.1.clone(),
        seq: copied.last.0,
    })
    .expect("markers serialize");
    target
        .put(&Path::from(MARKER), PutPayload::from(marker))
        .await?;

    let extras = copy_extras(
        source,
        target,
        &checkpoints,
        &digests,
        &mut hashes,
        progress,
    )
    .await?;
    report.checkpoints = extras.checkpoints;
    report.checkpoints_skipped = extras.checkpoints_skipped;
    report.digests = extras.digests;
    report.bytes += extras.bytes;
    let (files, bytes) = copy_files(source, target, progress).await?;
    report.files = files;
    report.bytes += bytes;
    Ok(report)
}

/// Restores `source` (a backup, or any root) into the empty root `target` at `point`,
/// rebuilds the view and verifies the result.
pub async fn restore(
    source: &DynStore,
    target: &DynStore,
    point: RestorePoint,
    progress: Progress<'_>,
) -> Result<RestoreReport> {
    let mut report = RestoreReport::default();
    let occupied = target
        .list(None)
        .try_filter(|m| futures::future::ready(!m.location.as_ref().starts_with("_probe/")))
        .boxed()
        .try_next()
        .await?;
    if let Some(found) = occupied {
        return Err(Error::invalid(
            "restore target",
            format!(
                "it is not empty (it holds {}): restore only into an empty root",
                found.location
            ),
        ));
    }
    let log = without_gap(list_log(source, Seq::ZERO).await?, Seq::ZERO)?;
    let head = log.last().copied().unwrap_or(Seq::ZERO);
    let (limit, until) = match point {
        RestorePoint::Head => (head, None),
        RestorePoint::Seq(n) if n == Seq::ZERO || n > head => {
            return Err(Error::invalid(
                "restore position",
                format!("{n}: the backup holds positions 1 to {head}"),
            ));
        }
        RestorePoint::Seq(n) => (n, None),
        RestorePoint::Time(t) => (head, Some(t)),
    };
    if limit == Seq::ZERO {
        return Err(Error::invalid(
            "restore source",
            "its log is empty: nothing to restore",
        ));
    }
    let listed_checkpoints = crate::checkpoint::list(source).await?;
    let listed_digests = crate::digest::list(source).await?;
    let wanted: BTreeSet<Seq> = listed_checkpoints
        .iter()
        .chain(&listed_digests)
        .copied()
        .collect();
    let mut hashes = BTreeMap::new();
    // The state is replayed from the log as it is copied, so the restored root's state,
    // and the checkpoint it starts from, are checked against its log, not trusted.
    let mut replay = Replay {
        state: State::default(),
        keep: listed_checkpoints.iter().copied().collect(),
        kept: BTreeMap::new(),
    };
    let copied = copy_log(
        source,
        target,
        &log[..limit.get() as usize],
        (Seq::ZERO, GENESIS_HASH.to_string()),
        until,
        &wanted,
        &mut hashes,
        Some(&mut replay),
        progress,
    )
    .await?;
    let seq = copied.last.0;
    if seq == Seq::ZERO {
        return Err(Error::invalid(
            "restore time",
            "the backup's first entry was committed after it: nothing to restore",
        ));
    }
    report.seq = seq;
    report.at = copied.at;
    report.entries = copied.written;
    report.bytes = copied.bytes;
    // Start-up needs only the newest checkpoint: the newest at or below `seq` whose
    // records are exactly the replayed state at its position.
    for c in missing(listed_checkpoints, Vec::new(), seq)
        .into_iter()
        .rev()
    {
        let matches = match crate::checkpoint::load(source, c).await {
            Ok(loaded) => replay
                .kept
                .get(&c)
                .is_some_and(|r| same_records(r, &loaded)),
            Err(e) => {
                tracing::warn!(seq = %c, error = %e, "not restoring a damaged checkpoint");
                false
            }
        };
        if matches && let Ok(bytes) = copy_checkpoint(source, target, c, &hashes[&c]).await {
            report.checkpoints = 1;
            report.bytes += bytes;
            break;
        }
        report.checkpoints_skipped += 1;
    }
    let digests = missing(listed_digests, Vec::new(), seq);
    let extras = copy_extras(source, target, &[], &digests, &mut hashes, progress).await?;
    report.digests = extras.digests;
    report.bytes += extras.bytes;
    let (files, bytes) = copy_files(source, target, progress).await?;
    report.files = files;
    report.bytes += bytes;

    // The view, derived from the restored state; then the whole chain, checked again.
    let db = crate::Database::open(
        target.clone(),
        crate::DbOptions {
            materialize: false,
            checkpoint_every: 0,
            ..Default::default()
        },
    )
    .await?;
    let state = db.snapshot();
    if !same_records(&state, &replay.state) {
        db.close().await;
        return Err(Error::corrupt(
            log_path(seq),
            format!(
                "the restored root opens at position {} with a state that is not its log's",
                state.seq()
            ),
        ));
    }
    report.records = state.len() as u64;
    let total = report.records;
    crate::materialize::rebuild(db.store(), &state, &|n| progress("view", n, total)).await?;
    db.close().await;
    let verified = crate::verify::verify_chain(target, &|_| {}).await?;
    if let Some(brk) = verified.first_break {
        return Err(Error::corrupt(log_path(brk.seq), brk.detail));
    }
    Ok(report)
}

fn different_database(seq: Seq) -> Error {
    Error::invalid(
        "backup target",
        format!(
            "its log entry {seq} differs from the source's: the target holds a backup of \
             another database (use an empty target, or the backup it was made for)"
        ),
    )
}

async fn read_marker(target: &DynStore) -> Result<Option<Marker>> {
    match target.get(&Path::from(MARKER)).await {
        // A marker that does not parse is only a lost hint: list the whole log instead.
        Ok(got) => Ok(serde_json::from_slice(&got.bytes().await?).ok()),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::copy::contiguous_after;
    use super::*;

    fn seqs(v: &[u64]) -> Vec<Seq> {
        v.iter().copied().map(Seq).collect()
    }

    #[test]
    fn only_the_run_right_after_the_start_is_usable() {
        assert_eq!(
            contiguous_after(seqs(&[1, 2, 3, 5]), Seq(0)),
            seqs(&[1, 2, 3])
        );
        assert_eq!(
            contiguous_after(seqs(&[8, 9, 10]), Seq(7)),
            seqs(&[8, 9, 10])
        );
        assert_eq!(contiguous_after(seqs(&[9, 10]), Seq(7)), seqs(&[]));
        let err = without_gap(seqs(&[1, 2, 4]), Seq(0)).unwrap_err();
        assert!(
            err.to_string().contains("00000000000000000003.json"),
            "{err}"
        );
        assert_eq!(without_gap(seqs(&[4, 5]), Seq(3)).unwrap(), seqs(&[4, 5]));
    }

    #[test]
    fn missing_keeps_what_the_target_lacks_up_to_the_head() {
        let got = missing(seqs(&[300, 100, 200, 50]), seqs(&[50]), Seq(200));
        assert_eq!(got, seqs(&[100, 200]));
    }

    #[test]
    fn restore_times_are_rfc3339() {
        assert!(matches!(
            RestorePoint::at_time("2026-12-01T10:00:00+01:00"),
            Ok(RestorePoint::Time(t)) if t.to_rfc3339() == "2026-12-01T09:00:00+00:00"
        ));
        let err = RestorePoint::at_time("yesterday").unwrap_err();
        assert!(err.to_string().contains("RFC 3339"), "{err}");
    }
}
