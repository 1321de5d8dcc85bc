//! The materialized JSON view: `{collection}/{id}.json` and `{collection}/index.json`.
//!
//! These files exist for people and tools that read the bucket directly (the docsai
//! layout predates Bucketbase). They are derived: written after the commit, never read
//! for correctness, and [`rebuild`] re-derives them all from the state. Each file
//! carries `_seq`, the log position of the change it shows, and renders deterministically
//! from the state, so a rebuild reproduces the live files byte for byte.
//!
//! The materializer coalesces: commits mark records and collections dirty, and one pass
//! writes each dirty file once from the latest snapshot, however many commits touched it.
//! `_meta/view.json` records the position up to which the view is complete, so a process
//! that crashed between commit and materialization redoes the rest at start-up.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::{Notify, watch};

use crate::canonical::to_canonical_string;
use crate::db::Shared;
use crate::error::Result;
use crate::log::LogEntry;
use crate::names::{CollectionName, RecordId, Seq};
use crate::state::{CollectionState, Doc, State};
use crate::store::{DynStore, doc_view_path, index_view_path, view_watermark_path};

/// How view files are replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViewWriteMode {
    /// Plain overwrite: one writer per root (local disk, memory).
    #[default]
    Overwrite,
    /// Replace only a file with an older `_seq`, by conditional update: several processes
    /// share a bucket. Needs a store with `PutMode::Update` (S3, memory).
    IfNewer,
}

const WRITE_CONCURRENCY: usize = 16;

#[derive(Default)]
struct Dirty {
    docs: BTreeSet<(CollectionName, RecordId)>,
    collections: BTreeSet<CollectionName>,
    upto: Seq,
    closed: bool,
}

impl Dirty {
    fn is_empty(&self) -> bool {
        self.docs.is_empty() && self.collections.is_empty()
    }
}

/// What is waiting to be materialized, and how far the view is done.
pub(crate) struct ViewQueue {
    dirty: Mutex<Dirty>,
    notify: Notify,
    done: watch::Sender<Seq>,
}

impl ViewQueue {
    pub fn new(done: Seq) -> Self {
        ViewQueue {
            dirty: Mutex::new(Dirty {
                upto: done,
                ..Dirty::default()
            }),
            notify: Notify::new(),
            done: watch::Sender::new(done),
        }
    }

    /// Marks what an applied entry touched.
    pub fn mark(&self, entry: &LogEntry) {
        let mut dirty = self.dirty.lock();
        for op in entry.body.txns.iter().flat_map(|t| &t.ops) {
            dirty.docs.insert((op.collection.clone(), op.id.clone()));
            dirty.collections.insert(op.collection.clone());
        }
        dirty.upto = dirty.upto.max(entry.seq());
        drop(dirty);
        self.notify.notify_one();
    }

    /// No more marks will come: finish what is queued and stop.
    pub fn close(&self) {
        self.dirty.lock().closed = true;
        self.notify.notify_one();
    }

    /// Waits until the view is complete up to `seq`.
    pub async fn wait_for(&self, seq: Seq) {
        let mut rx = self.done.subscribe();
        let _ = rx.wait_for(|done| *done >= seq).await;
    }
}

/// Marks everything after the stored watermark dirty (a crash may have left it undone).
pub(crate) async fn recover(shared: &Shared) -> Result<()> {
    let head = shared.snapshot().seq();
    let watermark = read_seq(&shared.store, &view_watermark_path())
        .await
        .unwrap_or(Seq::ZERO);
    if watermark >= head {
        return Ok(());
    }
    shared.view.done.send_replace(watermark);
    tracing::info!(%watermark, %head, "materialized view is behind the log; catching it up");
    for entry in crate::log::read_from(&shared.store, watermark.next()).await? {
        if entry.seq() <= head {
            shared.view.mark(&entry);
        }
    }
    Ok(())
}

/// The materializer task: writes dirty files until the queue is closed and drained.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let closed = loop {
            let notified = shared.view.notify.notified();
            {
                let dirty = shared.view.dirty.lock();
                if !dirty.is_empty() || dirty.closed {
                    break dirty.closed;
                }
            }
            notified.await;
        };
        if !closed && !shared.opts.view_debounce.is_zero() {
            tokio::time::sleep(shared.opts.view_debounce).await;
        }
        let work = {
            let mut dirty = shared.view.dirty.lock();
            Dirty {
                docs: std::mem::take(&mut dirty.docs),
                collections: std::mem::take(&mut dirty.collections),
                upto: dirty.upto,
                closed: dirty.closed,
            }
        };
        if work.is_empty() {
            shared.view.done.send_replace(work.upto);
            if work.closed {
                return;
            }
            continue;
        }
        let snapshot = shared.snapshot();
        let failed = write_dirty(&shared, &snapshot, &work).await;
        if failed.is_empty() {
            backoff = Duration::from_millis(50);
            shared.view.done.send_replace(work.upto);
        } else {
            // Only what failed is retried: a flaky store must not make every pass redo
            // (and again fail) the whole burst.
            tracing::warn!(
                docs = failed.docs.len(),
                indexes = failed.collections.len(),
                "materialized view writes failed; will retry"
            );
            {
                let mut dirty = shared.view.dirty.lock();
                dirty.docs.extend(failed.docs);
                dirty.collections.extend(failed.collections);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// Writes the dirty files; returns what could not be written. The watermark advances
/// only when everything up to it was written.
async fn write_dirty(shared: &Shared, snapshot: &State, work: &Dirty) -> Dirty {
    let store = &shared.store;
    let mode = shared.opts.view_write;
    let metrics = &shared.metrics;
    let mut failed = Dirty::default();
    let results: Vec<_> = futures::stream::iter(work.docs.iter().cloned())
        .map(|(c, id)| async move {
            let result = write_doc(store, mode, &c, &id, snapshot.get(&c, &id)).await;
            metrics.view_write(result.is_ok());
            ((c, id), result)
        })
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await;
    for (key, result) in results {
        if let Err(e) = result {
            tracing::debug!(collection = %key.0, id = %key.1, error = %e, "view write failed");
            failed.docs.insert(key);
        }
    }
    for c in &work.collections {
        if let Some(coll) = snapshot.collection(c) {
            // Rendering parses every record of the collection: keep it off the async
            // workers (it would stall requests behind it). The state is persistent maps,
            // so the copy handed over is O(1).
            let (name, owned, fields) = (c.clone(), coll.clone(), index_fields(snapshot, c));
            let rendered =
                tokio::task::spawn_blocking(move || render_index(&name, &owned, &fields)).await;
            let result = match rendered {
                Ok(bytes) => put_view(store, mode, &index_view_path(c), bytes, coll.changed).await,
                Err(e) => Err(crate::error::Error::corrupt(index_view_path(c), e)),
            };
            metrics.view_write(result.is_ok());
            if result.is_err() {
                failed.collections.insert(c.clone());
            }
        }
    }
    if failed.is_empty() {
        let watermark = render_watermark(work.upto);
        let result = put_view(store, mode, &view_watermark_path(), watermark, work.upto).await;
        metrics.view_write(result.is_ok());
        if let Err(e) = result {
            // Harmless: a stale watermark only means more work at the next start-up.
            tracing::debug!(error = %e, "view watermark write failed");
        }
    }
    failed
}

async fn write_doc(
    store: &DynStore,
    mode: ViewWriteMode,
    c: &CollectionName,
    id: &RecordId,
    doc: Option<&Doc>,
) -> Result<()> {
    let path = doc_view_path(c, id);
    match doc {
        Some(doc) => put_view(store, mode, &path, render_doc(doc), doc.version).await,
        None => match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        },
    }
}

/// A record as the view shows it: the document plus `_seq` and `_version`.
pub fn render_doc(doc: &Doc) -> Vec<u8> {
    let mut value = doc.value();
    if let Value::Object(map) = &mut value {
        map.insert("_seq".into(), doc.version.get().into());
        map.insert("_version".into(), doc.version.get().into());
    }
    to_canonical_string(&value).into_bytes()
}

/// A collection's `index.json`: every record's id, version and the chosen fields.
pub fn render_index(c: &CollectionName, coll: &CollectionState, fields: &[String]) -> Vec<u8> {
    let records: Vec<Value> = coll
        .docs
        .iter()
        .map(|(id, doc)| {
            let mut row = Map::new();
            row.insert("id".into(), id.as_str().into());
            row.insert("_version".into(), doc.version.get().into());
            if !fields.is_empty()
                && let Value::Object(body) = doc.value()
            {
                for f in fields {
                    if let Some(v) = body.get(f) {
                        row.insert(f.clone(), v.clone());
                    }
                }
            }
            Value::Object(row)
        })
        .collect();
    let index = serde_json::json!({
        "_seq": coll.changed.get(),
        "collection": c.as_str(),
        "count": records.len(),
        "records": records,
    });
    to_canonical_string(&index).into_bytes()
}

/// The fields a collection's definition puts in its index (none when undefined).
fn index_fields(state: &State, c: &CollectionName) -> Vec<String> {
    state
        .definition(c)
        .map(|d| d.def.index.clone())
        .unwrap_or_default()
}

fn render_watermark(seq: Seq) -> Vec<u8> {
    to_canonical_string(&serde_json::json!({ "_seq": seq.get() })).into_bytes()
}

/// Reads the `_seq` of a view file; `None` when absent or unreadable.
async fn read_seq(store: &DynStore, path: &Path) -> Option<Seq> {
    let bytes = store.get(path).await.ok()?.bytes().await.ok()?;
    parse_seq(&bytes)
}

fn parse_seq(bytes: &[u8]) -> Option<Seq> {
    #[derive(Deserialize)]
    struct Marker {
        _seq: u64,
    }
    serde_json::from_slice::<Marker>(bytes)
        .ok()
        .map(|m| Seq(m._seq))
}

/// Writes a view file; with `IfNewer`, only over a file with an older `_seq`.
async fn put_view(
    store: &DynStore,
    mode: ViewWriteMode,
    path: &Path,
    bytes: Vec<u8>,
    seq: Seq,
) -> Result<()> {
    let payload = PutPayload::from(bytes);
    if mode == ViewWriteMode::Overwrite {
        store.put(path, payload).await?;
        return Ok(());
    }
    loop {
        let put_mode = match store.get(path).await {
            Ok(current) => {
                let meta = current.meta.clone();
                let existing = current.bytes().await?;
                if parse_seq(&existing).is_some_and(|s| s >= seq) {
                    return Ok(());
                }
                PutMode::Update(UpdateVersion {
                    e_tag: meta.e_tag,
                    version: meta.version,
                })
            }
            Err(object_store::Error::NotFound { .. }) => PutMode::Create,
            Err(e) => return Err(e.into()),
        };
        match store
            .put_opts(path, payload.clone(), PutOptions::from(put_mode))
            .await
        {
            Ok(_) => return Ok(()),
            // Someone else replaced it meanwhile: look again.
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::AlreadyExists { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// What [`rebuild`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildReport {
    pub docs: u64,
    pub indexes: u64,
    pub removed: u64,
}

/// Re-derives every view file from `state`, and removes view files of records that no
/// longer exist. `progress` is called with the number of documents written so far.
pub async fn rebuild(
    store: &DynStore,
    state: &State,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<RebuildReport> {
    let mut report = RebuildReport::default();
    let mode = ViewWriteMode::Overwrite;
    for (c, coll) in state.collections() {
        let written = futures::stream::iter(coll.docs.iter())
            .map(|(id, doc)| write_doc(store, mode, c, id, Some(doc)))
            .buffer_unordered(WRITE_CONCURRENCY * 2)
            .try_fold(0u64, |n, ()| {
                let n = n + 1;
                if n % 1000 == 0 {
                    progress(report.docs + n);
                }
                async move { Ok(n) }
            })
            .await?;
        report.docs += written;
        progress(report.docs);
        let bytes = render_index(c, coll, &index_fields(state, c));
        put_view(store, mode, &index_view_path(c), bytes, coll.changed).await?;
        report.indexes += 1;
    }
    report.removed = remove_orphans(store, state).await?;
    put_view(
        store,
        mode,
        &view_watermark_path(),
        render_watermark(state.seq()),
        state.seq(),
    )
    .await?;
    Ok(report)
}

/// Deletes `{collection}/{id}.json` files whose record is gone. Only touches keys that
/// look like view files (a valid collection name and record id), never `_` prefixes.
async fn remove_orphans(store: &DynStore, state: &State) -> Result<u64> {
    let listed: Vec<Path> = store
        .list(None)
        .map_ok(|m| m.location)
        .try_collect()
        .await?;
    let orphans: Vec<Path> = listed
        .into_iter()
        .filter(|path| {
            let parts: Vec<_> = path.parts().collect();
            let [c, file] = parts.as_slice() else {
                return false;
            };
            let (Ok(c), Some(id)) = (
                CollectionName::parse(c.as_ref()),
                file.as_ref().strip_suffix(".json"),
            ) else {
                return false;
            };
            if id == "index" {
                return state.collection(&c).is_none();
            }
            RecordId::parse(id).is_ok_and(|id| state.get(&c, &id).is_none())
        })
        .collect();
    let n = orphans.len() as u64;
    for path in orphans {
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}
