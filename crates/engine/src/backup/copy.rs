//! The copying behind backup and restore: log entries checked by hash and link as they
//! are copied (create-only, an entry already there must be the same one), checkpoints
//! (parts first, the manifest, their commit point, last), signed digests and `_files/`.
//! Kept apart from the two procedures in `backup` so that those read top to bottom.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use super::{Progress, different_database};
use crate::canonical::sha256_hex;
use crate::error::{Error, Result};
use crate::log::{LogEntry, parse_log_path, read_entry};
use crate::names::Seq;
use crate::state::State;
use crate::store::{DynStore, FILES_DIR, LOG_DIR, checkpoint_manifest_path, log_path};

/// Entries fetched, checked and written per round.
const CHUNK: usize = 256;
/// Concurrent requests per round.
const CONCURRENCY: usize = 16;

/// Positions in `_log/` after `after`, sorted.
pub(super) async fn list_log(store: &DynStore, after: Seq) -> Result<Vec<Seq>> {
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
pub(super) fn contiguous_after(seqs: Vec<Seq>, after: Seq) -> Vec<Seq> {
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
pub(super) fn without_gap(seqs: Vec<Seq>, after: Seq) -> Result<Vec<Seq>> {
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
pub(super) fn missing(listed: Vec<Seq>, present: Vec<Seq>, upto: Seq) -> Vec<Seq> {
    let present: BTreeSet<Seq> = present.into_iter().collect();
    let mut out: Vec<Seq> = listed
        .into_iter()
        .filter(|s| *s <= upto && !present.contains(s))
        .collect();
    out.sort_unstable();
    out
}

/// The state replayed from the entries copied, and its copies at `keep` positions.
pub(super) struct Replay {
    pub(super) state: State,
    pub(super) keep: BTreeSet<Seq>,
    pub(super) kept: BTreeMap<Seq, State>,
}

/// Whether two states hold the same records at the same position (cheap where they share
/// structure: the maps are persistent).
pub(super) fn same_records(a: &State, b: &State) -> bool {
    let docs_equal = |x: &crate::CollectionState, y: &crate::CollectionState| {
        x.changed == y.changed
            && x.docs.len() == y.docs.len()
            && x.docs.iter().zip(y.docs.iter()).all(|((i, d), (j, e))| {
                i == j && d.version == e.version && d.body().get() == e.body().get()
            })
    };
    a.seq() == b.seq()
        && a.head_hash() == b.head_hash()
        && a.collections().count() == b.collections().count()
        && a.collections()
            .zip(b.collections())
            .all(|((c, x), (d, y))| c == d && docs_equal(x, y))
}

pub(super) struct LogCopy {
    pub(super) written: u64,
    pub(super) bytes: u64,
    /// The last position copied (or already there) and its hash.
    pub(super) last: (Seq, String),
    pub(super) at: String,
}

/// Copies `seqs` (contiguous, right after `start`), checking every entry's hash and link;
/// stops before the first entry committed after `until`. Records the hashes at `wanted`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn copy_log(
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

pub(super) fn decode_at(seq: Seq, bytes: &[u8]) -> Result<LogEntry> {
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
pub(super) async fn write_entry(
    target: &DynStore,
    seq: Seq,
    hash: String,
    bytes: Bytes,
) -> Result<u64> {
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
pub(super) async fn create(store: &DynStore, path: &Path, bytes: Bytes) -> Result<bool> {
    crate::store::create_if_absent(store, path, bytes).await
}

#[derive(Default)]
pub(super) struct Extras {
    pub(super) checkpoints: u64,
    pub(super) checkpoints_skipped: u64,
    pub(super) digests: u64,
    pub(super) bytes: u64,
}

/// Copies checkpoints (parts first, the manifest, their commit point, last) and digests;
/// `hashes` must hold the log hash at each of their positions (read from the target when
/// not, for extras of entries copied by an earlier run).
pub(super) async fn copy_extras(
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

pub(super) async fn copy_checkpoint(
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
pub(super) async fn copy_files(
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
