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

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::canonical::sha256_hex;
use crate::error::{Error, Result};
use crate::log::{GENESIS_HASH, LogEntry, parse_log_path, read_entry};
use crate::names::Seq;
use crate::state::State;
use crate::store::{DynStore, FILES_DIR, LOG_DIR, checkpoint_manifest_path, log_path};

/// The target's note of how far the log was copied (a hint: it is checked on every run).
const MARKER: &str = "_backup/state.json";
/// Entries fetched, checked and written per round.
const CHUNK: usize = 256;
/// Concurrent requests per round.
const CONCURRENCY: usize = 16;

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

/// Positions in `_log/` after `after`, sorted.
async fn list_log(store: &DynStore, after: Seq) -> Result<Vec<Seq>> {
    let prefix = Path::from(LOG_DIR);
    let listed: Vec<_> = if after == Seq::ZERO {
        store.list(Some(&prefix)).try_collect().await?
    } else {
        store
            .list_with_offset(Some(&prefix), &log_path(after))
            .try_collect()
            .await?
    };
    let mut seqs: Vec<Seq> = listed
        .iter()
        .filter_map(|m| parse_log_path(&m.location))
        .filter(|s| *s > after)
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// The run `after+1, after+2, ...` at the start of `seqs` (a gap ends the usable log).
fn contiguous_after(seqs: Vec<Seq>, after: Seq) -> Vec<Seq> {
    let run = seqs
        .iter()
        .enumerate()
        .take_while(|(i, s)| s.get() == after.get() + 1 + *i as u64)
        .count();
    seqs[..run].to_vec()
}

/// The whole listed log after `after`, which must have no gap: a writer only ever creates
/// the slot after one that exists, so a missing position with later ones is damage (or
/// archived entries), and copying around it would silently drop the rest.
fn without_gap(seqs: Vec<Seq>, after: Seq) -> Result<Vec<Seq>> {
    let listed = seqs.len();
    let run = contiguous_after(seqs, after);
    if run.len() < listed {
        let gap = Seq(after.get() + 1 + run.len() as u64);
        return Err(Error::corrupt(
            log_path(gap),
            "is missing but later positions exist: the log has a gap (run `bucketbase audit \
             verify` on it)",
        ));
    }
    Ok(run)
}

/// Positions in `listed` not in `present`, at or below `upto`, oldest first.
fn missing(listed: Vec<Seq>, present: Vec<Seq>, upto: Seq) -> Vec<Seq> {
    let present: BTreeSet<Seq> = present.into_iter().collect();
    let mut out: Vec<Seq> = listed
        .into_iter()
        .filter(|s| *s <= upto && !present.contains(s))
        .collect();
    out.sort_unstable();
    out
}

/// The state replayed from the entries copied, and its copies at `keep` positions.
struct Replay {
    state: State,
    keep: BTreeSet<Seq>,
    kept: BTreeMap<Seq, State>,
}

/// Whether two states hold the same records at the same position (cheap where they share
/// structure: the maps are persistent).
fn same_records(a: &State, b: &State) -> bool {
    let docs_equal = |x: &crate::CollectionState, y: &crate::CollectionState| {
        x.changed == y.changed
            && x.docs.len() == y.docs.len()
            && x.docs.iter().zip(y.docs.iter()).all(|((i, d), (j, e))| {
                i == j && d.version == e.version && d.body.get() == e.body.get()
            })
    };
    a.seq() == b.seq()
        && a.head_hash() == b.head_hash()
        && a.collections().count() == b.collections().count()
        && a.collections()
            .zip(b.collections())
            .all(|((c, x), (d, y))| c == d && docs_equal(x, y))
}

struct LogCopy {
    written: u64,
    bytes: u64,
    /// The last position copied (or already there) and its hash.
    last: (Seq, String),
    at: String,
}

/// Copies `seqs` (contiguous, right after `start`), checking every entry's hash and link;
/// stops before the first entry committed after `until`. Records the hashes at `wanted`.
#[allow(clippy::too_many_arguments)]
async fn copy_log(
    source: &DynStore,
    target: &DynStore,
    seqs: &[Seq],
    start: (Seq, String),
    until: Option<DateTime<Utc>>,
    wanted: &BTreeSet<Seq>,
    hashes: &mut BTreeMap<Seq, String>,
    mut replay: Option<&mut Replay>,
    progress: Progress<'_>,
) -> Result<LogCopy> {
    let mut out = LogCopy {
        written: 0,
        bytes: 0,
        last: start,
        at: String::new(),
    };
    let total = seqs.len() as u64;
    for (round, chunk) in seqs.chunks(CHUNK).enumerate() {
        let fetched: Vec<(Seq, Bytes)> = futures::stream::iter(chunk.iter().copied())
            .map(|seq| async move {
                let bytes = source.get(&log_path(seq)).await?.bytes().await?;
                Ok::<_, Error>((seq, bytes))
            })
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        let mut checked = Vec::with_capacity(fetched.len());
        let mut stop = false;
        for (seq, bytes) in fetched {
            let entry = decode_at(seq, &bytes)?;
            if entry.body.prev_hash != out.last.1 {
                return Err(Error::corrupt(
                    log_path(seq),
                    format!(
                        "does not link to the entry before it (position {}): the log was altered",
                        out.last.0
                    ),
                ));
            }
            if let Some(t) = until {
                let at = DateTime::parse_from_rfc3339(&entry.body.at)
                    .map_err(|e| Error::corrupt(log_path(seq), e))?;
                if at > t {
                    stop = true;
                    break;
                }
            }
            if wanted.contains(&seq) {
                hashes.insert(seq, entry.hash.clone());
            }
            if let Some(r) = replay.as_deref_mut() {
                r.state.apply(&entry)?;
                if r.keep.contains(&seq) {
                    r.kept.insert(seq, r.state.clone());
                }
            }
            out.last = (seq, entry.hash.clone());
            out.at = entry.body.at.clone();
            checked.push((seq, entry.hash, bytes));
        }
        let written: Vec<u64> = futures::stream::iter(checked)
            .map(|(seq, hash, bytes)| write_entry(target, seq, hash, bytes))
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        for n in written {
            out.bytes += n;
            out.written += u64::from(n > 0);
        }
        progress(
            "log entries",
            ((round * CHUNK + chunk.len()) as u64).min(total),
            total,
        );
        if stop {
            break;
        }
    }
    Ok(out)
}

fn decode_at(seq: Seq, bytes: &[u8]) -> Result<LogEntry> {
    let path = log_path(seq);
    let entry = LogEntry::decode(path.as_ref(), bytes)?;
    if entry.seq() != seq {
        return Err(Error::corrupt(
            path,
            format!("entry says it is at position {}", entry.seq()),
        ));
    }
    Ok(entry)
}

/// Writes an entry create-only; bytes written, 0 when the same entry was already there.
async fn write_entry(target: &DynStore, seq: Seq, hash: String, bytes: Bytes) -> Result<u64> {
    let len = bytes.len() as u64;
    match create(target, &log_path(seq), bytes).await? {
        true => Ok(len),
        false => {
            let there = target.get(&log_path(seq)).await?.bytes().await?;
            if decode_at(seq, &there)?.hash == hash {
                Ok(0)
            } else {
                Err(different_database(seq))
            }
        }
    }
}

/// Create-only put: whether this call created the key.
async fn create(store: &DynStore, path: &Path, bytes: Bytes) -> Result<bool> {
    let opts = PutOptions::from(PutMode::Create);
    match store.put_opts(path, PutPayload::from(bytes), opts).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[derive(Default)]
struct Extras {
    checkpoints: u64,
    checkpoints_skipped: u64,
    digests: u64,
    bytes: u64,
}

/// Copies checkpoints (parts first, the manifest, their commit point, last) and digests;
/// `hashes` must hold the log hash at each of their positions (read from the target when
/// not, for extras of entries copied by an earlier run).
async fn copy_extras(
    source: &DynStore,
    target: &DynStore,
    checkpoints: &[Seq],
    digests: &[Seq],
    hashes: &mut BTreeMap<Seq, String>,
    progress: Progress<'_>,
) -> Result<Extras> {
    let mut out = Extras::default();
    for seq in checkpoints.iter().chain(digests) {
        if !hashes.contains_key(seq) {
            let entry = read_entry(target, *seq)
                .await?
                .ok_or_else(|| Error::corrupt(log_path(*seq), "missing from the target"))?;
            hashes.insert(*seq, entry.hash);
        }
    }
    for (i, seq) in checkpoints.iter().enumerate() {
        progress("checkpoints", i as u64, checkpoints.len() as u64);
        match copy_checkpoint(source, target, *seq, &hashes[seq]).await {
            Ok(bytes) => {
                out.checkpoints += 1;
                out.bytes += bytes;
            }
            Err(Error::Corrupt { path, reason }) => {
                tracing::warn!(%seq, %path, %reason, "not copying a damaged checkpoint");
                out.checkpoints_skipped += 1;
            }
            Err(e) => return Err(e),
        }
    }
    for seq in digests {
        let path = crate::digest::digest_path(*seq);
        let bytes = source.get(&path).await?.bytes().await?;
        let digest: crate::digest::Digest =
            serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(&path, e))?;
        if digest.last_seq != *seq || digest.head_hash != hashes[seq] {
            return Err(Error::corrupt(
                &path,
                "the signed head hash is not the log's: the log or the digest was altered",
            ));
        }
        let len = bytes.len() as u64;
        if create(target, &path, bytes).await? {
            out.digests += 1;
            out.bytes += len;
        }
    }
    Ok(out)
}

async fn copy_checkpoint(
    source: &DynStore,
    target: &DynStore,
    seq: Seq,
    log_hash: &str,
) -> Result<u64> {
    let manifest_path = checkpoint_manifest_path(seq);
    let manifest = source.get(&manifest_path).await?.bytes().await?;
    let (hash, parts) = crate::checkpoint::manifest_parts(&manifest_path, &manifest)?;
    if hash != log_hash {
        return Err(Error::corrupt(
            &manifest_path,
            "names another log entry than the one at its position",
        ));
    }
    let mut bytes = 0;
    for (key, sha256) in parts {
        let path = Path::from(key.as_str());
        let part = source.get(&path).await?.bytes().await?;
        if sha256_hex(&part) != sha256 {
            return Err(Error::corrupt(&path, "part does not match its hash"));
        }
        bytes += part.len() as u64;
        target.put(&path, PutPayload::from(part)).await?;
    }
    bytes += manifest.len() as u64;
    create(target, &manifest_path, manifest).await?;
    Ok(bytes)
}

/// Copies the `_files/` blobs the target lacks (or holds with another size). Blobs are
/// immutable and named by a fresh id, so a key present with the same size is the same blob.
async fn copy_files(
    source: &DynStore,
    target: &DynStore,
    progress: Progress<'_>,
) -> Result<(u64, u64)> {
    let prefix = Path::from(FILES_DIR);
    let present: BTreeMap<Path, u64> = target
        .list(Some(&prefix))
        .map_ok(|m| (m.location, m.size))
        .try_collect()
        .await?;
    let todo: Vec<(Path, u64)> = source
        .list(Some(&prefix))
        .try_filter(|m| futures::future::ready(present.get(&m.location) != Some(&m.size)))
        .map_ok(|m| (m.location, m.size))
        .try_collect()
        .await?;
    let total = todo.len() as u64;
    let sizes: Vec<u64> = futures::stream::iter(todo)
        .map(|(path, size)| async move {
            let bytes = source.get(&path).await?.bytes().await?;
            if bytes.len() as u64 != size {
                return Err(Error::corrupt(&path, "changed while it was copied"));
            }
            target.put(&path, PutPayload::from(bytes)).await?;
            Ok::<_, Error>(size)
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    progress("files", total, total);
    Ok((total, sizes.iter().sum()))
}

#[cfg(test)]
mod tests {
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
