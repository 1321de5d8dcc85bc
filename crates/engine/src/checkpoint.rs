//! Checkpoints: the full state at one log position, so start-up need not replay the
//! whole log.
//!
//! A checkpoint is derived and re-creatable, so it is written create-only and
//! deterministically: any process may write the one for position `n` and all would write
//! the same bytes. Records go into JSON-lines parts of bounded size
//! (`_checkpoints/{seq}/{part}.jsonl`, streamed and parsed in parallel, no single
//! multi-gigabyte object); the manifest `_checkpoints/{seq}.json`, which lists the parts
//! with their SHA-256, is written last and is the checkpoint's commit point. A damaged or
//! incomplete checkpoint is skipped in favour of an older one or a full replay: it never
//! affects correctness, only start-up time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use imbl::OrdMap;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::canonical::sha256_hex;
use crate::error::{Error, Result};
use crate::names::{CollectionName, RecordId, Seq};
use crate::state::{CollectionState, Doc, State};
use crate::store::lane::{LocalRoot, PacedFile, local_error};
use crate::store::{
    CHECKPOINT_DIR, DynStore, checkpoint_manifest_path, checkpoint_part_path,
    parse_checkpoint_manifest,
};

const FORMAT: u32 = 1;
/// Parts are cut at about this many bytes.
const PART_BYTES: usize = 32 << 20;
/// And rendered in pieces of about this many (see [`write_with`]).
const PIECE_BYTES: usize = 256 << 10;

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    /// Last change of every collection.
    collections: BTreeMap<CollectionName, Seq>,
    format: u32,
    /// Hash of the log entry at `seq`.
    hash: String,
    parts: Vec<PartRef>,
    records: u64,
    seq: Seq,
}

#[derive(Debug, Serialize, Deserialize)]
struct PartRef {
    key: String,
    records: u64,
    sha256: String,
}

#[derive(Serialize)]
struct LineOut<'a> {
    c: &'a str,
    d: &'a RawValue,
    i: &'a str,
    v: Seq,
}

#[derive(Deserialize)]
struct LineIn<'a> {
    #[serde(borrow)]
    c: &'a str,
    #[serde(borrow)]
    d: &'a RawValue,
    #[serde(borrow)]
    i: &'a str,
    v: Seq,
}

/// Writes the checkpoint of `state` unless one exists at its position. Returns whether
/// this call created it.
pub async fn write(store: &DynStore, state: &Arc<State>) -> Result<bool> {
    write_with(store, state, None).await
}

/// [`write`]; with a local root, the parts are rendered and written from the background
/// lane (nice 19, idle I/O class, paced: `store::lane::PacedFile`), so that a checkpoint
/// of the whole state never holds the CPU or the disk while a commit waits. (Whoever
/// starts one there first waits for a pause in the commits: [`wait_for_a_pause`].)
///
/// Memory: parts are rendered in pieces of [`PIECE_BYTES`] from one reused buffer, and
/// on a local root appended to their files as they come, so a checkpoint holds one piece,
/// not the state's size in fresh pages (which also slowed the commits beside it: on a
/// VM, touching fresh memory is slow for the whole machine). To an object store each
/// part is one PUT, so it holds a part, and at most one more being rendered.
pub(crate) async fn write_with(
    store: &DynStore,
    state: &Arc<State>,
    local: Option<&Arc<LocalRoot>>,
) -> Result<bool> {
    let seq = state.seq();
    let manifest_path = checkpoint_manifest_path(seq);
    if seq == Seq::ZERO || store.head(&manifest_path).await.is_ok() {
        return Ok(false);
    }
    let rendering = state.clone();
    let refs = match local {
        Some(local) => {
            let local = local.clone();
            local
                .lane
                .clone()
                .run(move || write_parts_locally(&local, &rendering))
                .await
                .map_err(local_error)??
        }
        None => put_parts(store, rendering).await?,
    };
    let manifest = Manifest {
        collections: state
            .collections()
            .map(|(c, coll)| (c.clone(), coll.changed))
            .collect(),
        format: FORMAT,
        hash: state.head_hash().to_string(),
        parts: refs,
        records: state.len() as u64,
        seq,
    };
    let bytes = serde_json::to_vec(&manifest).expect("manifests serialize");
    crate::store::create_if_absent(store, &manifest_path, bytes).await
}

/// Renders the parts on a blocking thread and PUTs each as it is done.
async fn put_parts(store: &DynStore, state: Arc<State>) -> Result<Vec<PartRef>> {
    let seq = state.seq();
    let (parts, mut done) = tokio::sync::mpsc::channel::<(Vec<u8>, u64)>(1);
    let rendering = tokio::task::spawn_blocking(move || {
        let mut part = Vec::new();
        render_parts(&state, PART_BYTES, PIECE_BYTES, |piece| match piece {
            Piece::Bytes(bytes) => {
                part.extend_from_slice(bytes);
                Ok(())
            }
            // A closed channel: the writer below failed, and says why.
            Piece::End(records) => parts.blocking_send((std::mem::take(&mut part), records)),
        })
    });
    let mut refs = Vec::new();
    while let Some((bytes, records)) = done.recv().await {
        let path = checkpoint_part_path(seq, refs.len());
        let sha256 = sha256_hex(&bytes);
        store.put(&path, PutPayload::from(bytes)).await?;
        refs.push(PartRef {
            key: path.to_string(),
            records,
            sha256,
        });
    }
    // The sender is gone: the rendering ended. (A send fails only once this function
    // returned early, on a failed PUT, and dropped the receiver.)
    rendering
        .await
        .map_err(|e| Error::corrupt("checkpoint", e))?
        .map_err(|_| Error::corrupt("checkpoint", "parts stopped before their end"))?;
    Ok(refs)
}

/// Renders the parts on the lane's thread, appending each piece to its part's file.
fn write_parts_locally(local: &LocalRoot, state: &State) -> Result<Vec<PartRef>> {
    let seq = state.seq();
    let mut refs = Vec::new();
    let mut open: Option<(PacedFile, Path, Sha256)> = None;
    render_parts(state, PART_BYTES, PIECE_BYTES, |piece| {
        if open.is_none() {
            let path = checkpoint_part_path(seq, refs.len());
            let file = PacedFile::create(&local.path(&path)?).map_err(local_error)?;
            open = Some((file, path, Sha256::new()));
        }
        match piece {
            Piece::Bytes(bytes) => {
                let (file, _, hash) = open.as_mut().expect("opened above");
                hash.update(bytes);
                file.append(bytes).map_err(local_error)
            }
            Piece::End(records) => {
                let (file, path, hash) = open.take().expect("opened above");
                file.publish().map_err(local_error)?;
                refs.push(PartRef {
                    key: path.to_string(),
                    records,
                    sha256: hex::encode(hash.finalize()),
                });
                Ok(())
            }
        }
    })?;
    Ok(refs)
}

/// A checkpoint on a local root starts only once no log entry was applied for this long:
/// on a small machine, rendering the whole state beside the commits slowed them by half
/// for its duration (~50 ms for 16,000 records), however low its priority (two vCPUs
/// may be one core's two threads).
const QUIET_GAP: Duration = Duration::from_millis(20);

/// But it waits for a pause for at most this long, then starts regardless: under a write
/// load without pauses a checkpoint is still written, a few seconds late.
const YIELD_MAX: Duration = Duration::from_secs(5);

/// Waits until `since_last_entry()` reaches [`QUIET_GAP`], or for [`YIELD_MAX`] in all.
/// The wait is not on the lane, whose view writes go on meanwhile.
pub(crate) async fn wait_for_a_pause(since_last_entry: impl Fn() -> Duration) {
    let mut budget = YIELD_MAX;
    while let Some(wait) = next_wait(since_last_entry(), budget) {
        tokio::time::sleep(wait).await;
        budget -= wait;
    }
}

/// How much longer to wait for a pause, `idle` after the last entry with `budget` left.
fn next_wait(idle: Duration, budget: Duration) -> Option<Duration> {
    let wait = QUIET_GAP.checked_sub(idle)?.min(budget);
    (!wait.is_zero()).then_some(wait)
}

/// What [`render_parts`] hands out, in order.
enum Piece<'a> {
    /// The next bytes of the current part.
    Bytes(&'a [u8]),
    /// The current part ends, with this many records.
    End(u64),
}

/// Renders `state`'s records as JSON lines, cut into parts after the line that takes a
/// part to `part_bytes` or more (at least one part, empty for an empty state). The
/// bytes are handed to `out` in pieces of about `piece_bytes` from one reused buffer.
fn render_parts<E>(
    state: &State,
    part_bytes: usize,
    piece_bytes: usize,
    mut out: impl FnMut(Piece<'_>) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut buf = Vec::with_capacity(piece_bytes.min(PIECE_BYTES) + 4096);
    let (mut part_len, mut records, mut parts) = (0usize, 0u64, 0usize);
    for (c, coll) in state.collections() {
        for (id, doc) in coll.docs.iter() {
            let before = buf.len();
            let line = LineOut {
                c: c.as_str(),
                d: doc.body(),
                i: id.as_str(),
                v: doc.version,
            };
            serde_json::to_writer(&mut buf, &line).expect("lines serialize");
            buf.push(b'\n');
            part_len += buf.len() - before;
            records += 1;
            if part_len >= part_bytes {
                out(Piece::Bytes(&buf))?;
                buf.clear();
                out(Piece::End(records))?;
                (part_len, records, parts) = (0, 0, parts + 1);
            } else if buf.len() >= piece_bytes {
                out(Piece::Bytes(&buf))?;
                buf.clear();
            }
        }
    }
    if records > 0 || parts == 0 {
        if !buf.is_empty() {
            out(Piece::Bytes(&buf))?;
        }
        out(Piece::End(records))?;
    }
    Ok(())
}

/// What a copy of a checkpoint must carry and check (see `backup`): from the manifest's
/// bytes, the hash of the log entry it was taken at, and its parts as (key, SHA-256).
pub(crate) fn manifest_parts(path: &Path, bytes: &[u8]) -> Result<(String, Vec<(String, String)>)> {
    let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| Error::corrupt(path, e))?;
    if manifest.format != FORMAT {
        return Err(Error::corrupt(path, "unknown checkpoint format"));
    }
    let parts = manifest
        .parts
        .into_iter()
        .map(|p| (p.key, p.sha256))
        .collect();
    Ok((manifest.hash, parts))
}

/// Positions of the checkpoints present, newest first.
pub async fn list(store: &DynStore) -> Result<Vec<Seq>> {
    let listed = store
        .list_with_delimiter(Some(&Path::from(CHECKPOINT_DIR)))
        .await?;
    let mut seqs: Vec<Seq> = listed
        .objects
        .iter()
        .filter_map(|m| parse_checkpoint_manifest(&m.location))
        .collect();
    seqs.sort_unstable_by(|a, b| b.cmp(a));
    Ok(seqs)
}

/// Loads the newest checkpoint that is intact; `None` when there is none.
pub async fn load_latest(store: &DynStore) -> Result<Option<State>> {
    load_newest_of(store, &list(store).await?).await
}

/// [`load_latest`] over a listing already made (`seqs`, newest first).
pub async fn load_newest_of(store: &DynStore, seqs: &[Seq]) -> Result<Option<State>> {
    for &seq in seqs {
        match load(store, seq).await {
            Ok(state) => return Ok(Some(state)),
            Err(e) => tracing::warn!(%seq, error = %e, "skipping damaged checkpoint"),
        }
    }
    Ok(None)
}

/// Loads the checkpoint at `seq`.
pub async fn load(store: &DynStore, seq: Seq) -> Result<State> {
    let manifest_path = checkpoint_manifest_path(seq);
    let bytes = store.get(&manifest_path).await?.bytes().await?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(&manifest_path, e))?;
    if manifest.format != FORMAT || manifest.seq != seq {
        return Err(Error::corrupt(
            &manifest_path,
            "unknown format or wrong position",
        ));
    }
    let parts: Vec<Vec<(CollectionName, RecordId, Doc)>> =
        futures::stream::iter(manifest.parts.iter())
            .map(|part| load_part(store, part))
            .buffered(4)
            .try_collect()
            .await?;
    let mut grouped: BTreeMap<CollectionName, OrdMap<RecordId, Doc>> = BTreeMap::new();
    let mut total = 0u64;
    for (c, id, doc) in parts.into_iter().flatten() {
        total += 1;
        grouped.entry(c).or_default().insert(id, doc);
    }
    if total != manifest.records {
        return Err(Error::corrupt(
            &manifest_path,
            format!("has {total} records, manifest says {}", manifest.records),
        ));
    }
    let mut collections = OrdMap::new();
    for (c, changed) in manifest.collections {
        let docs = grouped.remove(&c).unwrap_or_default();
        collections.insert(
            c,
            CollectionState {
                changed,
                docs,
                indexes: Default::default(),
            },
        );
    }
    if let Some(c) = grouped.keys().next() {
        return Err(Error::corrupt(
            &manifest_path,
            format!("records of collection {c} not listed in the manifest"),
        ));
    }
    State::from_parts(seq, manifest.hash, collections)
}

async fn load_part(
    store: &DynStore,
    part: &PartRef,
) -> Result<Vec<(CollectionName, RecordId, Doc)>> {
    let path = Path::from(part.key.as_str());
    let bytes = store.get(&path).await?.bytes().await?;
    let expected = part.sha256.clone();
    let key = part.key.clone();
    tokio::task::spawn_blocking(move || parse_part(&key, &bytes, &expected))
        .await
        .map_err(|e| Error::corrupt(&part.key, e))?
}

fn parse_part(
    key: &str,
    bytes: &[u8],
    sha256: &str,
) -> Result<Vec<(CollectionName, RecordId, Doc)>> {
    if sha256_hex(bytes) != sha256 {
        return Err(Error::corrupt(key, "part does not match its hash"));
    }
    let mut names: BTreeMap<String, CollectionName> = BTreeMap::new();
    let mut out = Vec::new();
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let parsed: LineIn<'_> =
            serde_json::from_slice(line).map_err(|e| Error::corrupt(key, e))?;
        let c = match names.get(parsed.c) {
            Some(c) => c.clone(),
            None => {
                let c = CollectionName::parse_any(parsed.c)?;
                names.insert(parsed.c.to_string(), c.clone());
                c
            }
        };
        let body: Arc<RawValue> = Arc::from(parsed.d.to_owned());
        out.push((c, RecordId::parse(parsed.i)?, Doc::whole(parsed.v, body)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 300 records over two collections, of varied lengths.
    fn state() -> State {
        let mut state = State::default();
        for (c, range) in [("alpha", 0..100), ("beta", 100..300)] {
            let docs = range
                .map(|i| {
                    let pad = "x".repeat(i % 50);
                    let body = RawValue::from_string(format!(r#"{{"n":{i},"pad":"{pad}"}}"#));
                    let id = RecordId::parse(&format!("r{i:04}")).unwrap();
                    (id, Doc::whole(Seq(i as u64 + 1), Arc::from(body.unwrap())))
                })
                .collect();
            let coll = CollectionState {
                docs,
                ..CollectionState::default()
            };
            state
                .collections
                .insert(CollectionName::parse(c).unwrap(), coll);
        }
        state
    }

    /// The parts as their pieces assemble them: (bytes, records).
    fn assembled(state: &State, part_bytes: usize, piece_bytes: usize) -> Vec<(Vec<u8>, u64)> {
        let mut parts = vec![(Vec::new(), 0)];
        render_parts(state, part_bytes, piece_bytes, |piece| {
            let current = parts.last_mut().unwrap();
            match piece {
                Piece::Bytes(bytes) => {
                    assert!(!bytes.is_empty(), "an empty piece");
                    current.0.extend_from_slice(bytes);
                }
                Piece::End(records) => {
                    current.1 = records;
                    parts.push((Vec::new(), 0));
                }
            }
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(parts.pop(), Some((Vec::new(), 0)), "a part never ended");
        parts
    }

    #[test]
    fn parts_are_cut_after_the_line_that_fills_them_whatever_the_pieces() {
        let state = state();
        let whole = assembled(&state, usize::MAX, usize::MAX);
        assert_eq!(whole.len(), 1);
        let (all, total) = &whole[0];
        assert_eq!(*total, 300);
        let lines: Vec<&[u8]> = all.split_inclusive(|b| *b == b'\n').collect();
        assert_eq!(lines.len(), 300);
        assert!(lines[0].starts_with(br#"{"c":"alpha","d":{"n":0,"pad":""},"i":"r0000""#));
        for part_bytes in [1, 700, 4096, all.len(), all.len() + 1] {
            // A part ends after the line that takes it to `part_bytes` or more.
            let mut expected = Vec::new();
            let mut current = (Vec::new(), 0u64);
            for line in &lines {
                current.0.extend_from_slice(line);
                current.1 += 1;
                if current.0.len() >= part_bytes {
                    expected.push(std::mem::take(&mut current));
                }
            }
            if current.1 > 0 || expected.is_empty() {
                expected.push(current);
            }
            for piece_bytes in [1, 100, 5000, usize::MAX] {
                assert_eq!(
                    assembled(&state, part_bytes, piece_bytes),
                    expected,
                    "parts of {part_bytes} bytes in pieces of {piece_bytes}"
                );
            }
        }
        assert_eq!(
            assembled(&State::default(), 10, 10),
            vec![(Vec::new(), 0)],
            "an empty state has one empty part"
        );
    }

    /// The waits of `wait_for_a_pause`, with a clock that moves only while it waits, for
    /// commits at the given times (ms from the start; `idle_at_start` before any).
    fn waits(commits: &[u64], idle_at_start: Duration) -> Vec<Duration> {
        let (mut now, mut budget, mut out) = (Duration::ZERO, YIELD_MAX, Vec::new());
        let idle = |now: Duration| {
            let last = commits
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .filter(|t| *t <= now)
                .max();
            last.map_or(idle_at_start + now, |t| now - t)
        };
        while let Some(wait) = next_wait(idle(now), budget) {
            out.push(wait);
            now += wait;
            budget -= wait;
        }
        out
    }

    #[test]
    fn a_checkpoint_waits_for_a_pause_in_the_commits_for_a_while_at_most() {
        let ms = Duration::from_millis;
        assert!(
            waits(&[], QUIET_GAP).is_empty(),
            "no commit for the gap: no wait"
        );
        assert_eq!(
            waits(&[], ms(5)),
            [QUIET_GAP - ms(5)],
            "the rest of the gap"
        );
        // A commit 10 ms into the wait: the gap starts again from it.
        assert_eq!(waits(&[10], ms(5)), [ms(15), ms(15)]);
        // Commits every millisecond: it waits until its budget is spent, then starts.
        let busy: Vec<u64> = (0..10_000).collect();
        let waited = waits(&busy, Duration::ZERO);
        assert_eq!(waited.iter().sum::<Duration>(), YIELD_MAX);
    }
}
