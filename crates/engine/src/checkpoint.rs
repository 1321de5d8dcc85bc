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

use futures::{StreamExt, TryStreamExt};
use imbl::OrdMap;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::canonical::sha256_hex;
use crate::error::{Error, Result};
use crate::names::{CollectionName, RecordId, Seq};
use crate::state::{CollectionState, Doc, State};
use crate::store::{
    CHECKPOINT_DIR, DynStore, checkpoint_manifest_path, checkpoint_part_path,
    parse_checkpoint_manifest,
};

const FORMAT: u32 = 1;
/// Parts are cut at about this many bytes.
const PART_BYTES: usize = 32 << 20;

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
    let seq = state.seq();
    let manifest_path = checkpoint_manifest_path(seq);
    if seq == Seq::ZERO || store.head(&manifest_path).await.is_ok() {
        return Ok(false);
    }
    let rendering = state.clone();
    let parts = tokio::task::spawn_blocking(move || render_parts(&rendering))
        .await
        .map_err(|e| Error::corrupt("checkpoint", e))?;
    let mut refs = Vec::with_capacity(parts.len());
    for (i, (bytes, records)) in parts.into_iter().enumerate() {
        let path = checkpoint_part_path(seq, i);
        refs.push(PartRef {
            key: path.to_string(),
            records,
            sha256: sha256_hex(&bytes),
        });
        store.put(&path, PutPayload::from(bytes)).await?;
    }
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

fn render_parts(state: &State) -> Vec<(Vec<u8>, u64)> {
    let mut parts = Vec::new();
    let mut buf = Vec::with_capacity(PART_BYTES + 4096);
    let mut records = 0u64;
    for (c, coll) in state.collections() {
        for (id, doc) in coll.docs.iter() {
            let line = LineOut {
                c: c.as_str(),
                d: doc.body(),
                i: id.as_str(),
                v: doc.version,
            };
            serde_json::to_writer(&mut buf, &line).expect("lines serialize");
            buf.push(b'\n');
            records += 1;
            if buf.len() >= PART_BYTES {
                parts.push((std::mem::take(&mut buf), records));
                records = 0;
            }
        }
    }
    if records > 0 || parts.is_empty() {
        parts.push((buf, records));
    }
    parts
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
