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

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// Someone waits for the view to be durable: sync now rather than on the interval.
    sync_requested: bool,
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
    /// Every file up to here is written (readers see it).
    done: watch::Sender<Seq>,
    /// Every file up to here is durable.
    durable: watch::Sender<Seq>,
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
            durable: watch::Sender::new(done),
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

    /// Waits until the view is written and durable up to `seq`.
    pub async fn wait_for(&self, seq: Seq) {
        let mut done = self.done.subscribe();
        let _ = done.wait_for(|done| *done >= seq).await;
        let mut durable = self.durable.subscribe();
        if *durable.borrow() >= seq {
            return;
        }
        self.dirty.lock().sync_requested = true;
        self.notify.notify_one();
        let _ = durable.wait_for(|durable| *durable >= seq).await;
    }
}

/// Where view files go, and how a pass is made durable.
///
/// On local disk the files are written without a per-file fsync (each would cost two:
/// the file and its directory) and one `syncfs` of the root, at most once a second,
/// makes everything written so far durable before the watermark claims it. Elsewhere
/// (S3, memory) a write is durable when it returns, and `sync_root` is `None`.
#[derive(Debug, Clone)]
pub struct ViewStore {
    pub store: DynStore,
    pub sync_root: Option<std::path::PathBuf>,
}

/// How often, at most, the local view is synced and its watermark advanced.
const VIEW_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// An index is rewritten at most once per this many times what its last rewrite took,
/// so a huge collection's `index.json` takes a bounded share of the machine (and lags
/// more) instead of being rewritten after every burst of commits.
const INDEX_COST_FACTOR: u32 = 10;

/// Marks everything after the stored watermark dirty (a crash may have left it undone).
pub(crate) async fn recover(shared: &Shared) -> Result<()> {
    let head = shared.snapshot().seq();
    let watermark = read_seq(&shared.view_store.store, &view_watermark_path())
        .await
        .unwrap_or(Seq::ZERO);
    if watermark >= head {
        return Ok(());
    }
    shared.view.done.send_replace(watermark);
    shared.view.durable.send_replace(watermark);
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
    let mut view = Materializer::new(shared);
    let mut backoff = Duration::from_millis(50);
    loop {
        let closed = view.wait().await;
        let failed = view.pass(closed).await;
        if failed {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        }
        backoff = Duration::from_millis(50);
        // A closed queue gets no more marks, and its pass ignored the index throttle.
        if closed {
            view.sync().await;
            return;
        }
    }
}

/// The materializer's own state between passes.
struct Materializer {
    shared: Arc<Shared>,
    /// Rendered index rows, so a pass re-renders only records whose version changed.
    indexes: HashMap<CollectionName, RenderedIndex>,
    /// When each index may be rewritten next (see [`INDEX_COST_FACTOR`]).
    index_due: HashMap<CollectionName, Instant>,
    /// Indexes waiting for their time.
    deferred: BTreeSet<CollectionName>,
    /// The highest position taken from the queue; the view is complete up to it once
    /// nothing is deferred or failed.
    taken_upto: Seq,
    /// Complete up to here but not yet synced and claimed by the watermark.
    unsynced: Option<Seq>,
    last_sync: Instant,
}

impl Materializer {
    fn new(shared: Arc<Shared>) -> Self {
        let taken_upto = *shared.view.done.borrow();
        Materializer {
            shared,
            indexes: HashMap::new(),
            index_due: HashMap::new(),
            deferred: BTreeSet::new(),
            taken_upto,
            unsynced: None,
            last_sync: Instant::now(),
        }
    }

    /// Waits for work: marks in the queue, a deferred index whose time came, or the queue
    /// closing. Syncs finished work when its time comes meanwhile. Returns whether the
    /// queue is closed.
    async fn wait(&mut self) -> bool {
        let shared = self.shared.clone();
        loop {
            let notified = shared.view.notify.notified();
            let sync_now = {
                let mut dirty = shared.view.dirty.lock();
                if dirty.closed {
                    return true;
                }
                if !dirty.is_empty() {
                    break;
                }
                std::mem::take(&mut dirty.sync_requested)
            };
            if sync_now {
                self.sync().await;
                continue;
            }
            let now = Instant::now();
            let deferred_due = self.deferred_due();
            if deferred_due.is_some_and(|t| t <= now) {
                break;
            }
            let sync_due = self.unsynced.map(|_| self.last_sync + VIEW_SYNC_INTERVAL);
            if sync_due.is_some_and(|t| t <= now) {
                self.sync().await;
                continue;
            }
            match deferred_due.into_iter().chain(sync_due).min() {
                Some(at) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(at.into()) => {}
                    }
                }
                None => notified.await,
            }
        }
        let debounce = self.shared.opts.view_debounce;
        if !debounce.is_zero() {
            tokio::time::sleep(debounce).await;
        }
        false
    }

    fn deferred_due(&self) -> Option<Instant> {
        self.deferred
            .iter()
            .filter_map(|c| self.index_due.get(c))
            .min()
            .copied()
    }

    /// Writes what is dirty from the latest snapshot; returns whether something failed
    /// (and went back into the queue).
    async fn pass(&mut self, closed: bool) -> bool {
        let (docs, mut collections) = {
            let mut dirty = self.shared.view.dirty.lock();
            self.taken_upto = self.taken_upto.max(dirty.upto);
            (
                std::mem::take(&mut dirty.docs),
                std::mem::take(&mut dirty.collections),
            )
        };
        collections.append(&mut self.deferred);
        let snapshot = self.shared.snapshot();
        let mut failed = Dirty {
            docs: self.write_docs(&snapshot, docs).await,
            ..Dirty::default()
        };
        for c in collections {
            let now = Instant::now();
            if !closed && self.index_due.get(&c).is_some_and(|due| *due > now) {
                self.deferred.insert(c);
                continue;
            }
            let result = self.write_index(&snapshot, &c).await;
            self.shared.metrics.view_write(result.is_ok());
            match result {
                Ok(()) => {
                    self.index_due
                        .insert(c, now + now.elapsed() * INDEX_COST_FACTOR);
                }
                Err(e) => {
                    tracing::debug!(collection = %c, error = %e, "view index write failed");
                    failed.collections.insert(c);
                }
            }
        }
        if !failed.is_empty() {
            // Only what failed is retried: a flaky store must not make every pass redo
            // (and again fail) the whole burst.
            tracing::warn!(
                docs = failed.docs.len(),
                indexes = failed.collections.len(),
                "materialized view writes failed; will retry"
            );
            let mut dirty = self.shared.view.dirty.lock();
            dirty.docs.extend(failed.docs);
            dirty.collections.extend(failed.collections);
            return true;
        }
        if self.deferred.is_empty() {
            self.complete(self.taken_upto).await;
        }
        false
    }

    /// Writes each dirty record's file; returns those that failed.
    async fn write_docs(
        &self,
        snapshot: &State,
        docs: BTreeSet<(CollectionName, RecordId)>,
    ) -> BTreeSet<(CollectionName, RecordId)> {
        let view = &self.shared.view_store;
        let mode = self.shared.opts.view_write;
        let metrics = &self.shared.metrics;
        let results: Vec<_> = futures::stream::iter(docs)
            .map(|(c, id)| async move {
                let result = write_doc(&view.store, mode, &c, &id, snapshot.get(&c, &id)).await;
                metrics.view_write(result.is_ok());
                ((c, id), result)
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .collect()
            .await;
        let mut failed = BTreeSet::new();
        for (key, result) in results {
            if let Err(e) = result {
                tracing::debug!(collection = %key.0, id = %key.1, error = %e, "view write failed");
                failed.insert(key);
            }
        }
        failed
    }

    /// Renders a collection's index from the rows kept since the last pass (off the
    /// async workers: the first render of a collection parses every record) and writes it.
    async fn write_index(&mut self, snapshot: &State, c: &CollectionName) -> Result<()> {
        let Some(coll) = snapshot.collection(c) else {
            self.indexes.remove(c);
            return Ok(());
        };
        // The state is persistent maps, so the copy handed over is O(1).
        let (name, owned, fields) = (c.clone(), coll.clone(), index_fields(snapshot, c));
        let previous = self.indexes.remove(c);
        let (bytes, rendered) =
            tokio::task::spawn_blocking(move || render_index_from(&name, &owned, fields, previous))
                .await
                .map_err(|e| crate::error::Error::corrupt(index_view_path(c), e))?;
        self.indexes.insert(c.clone(), rendered);
        let view = &self.shared.view_store;
        put_view(
            &view.store,
            self.shared.opts.view_write,
            &index_view_path(c),
            bytes,
            coll.changed,
        )
        .await
    }

    /// The view is complete up to `seq`: readers may rely on it now; the watermark
    /// claims it once it is durable.
    async fn complete(&mut self, seq: Seq) {
        self.shared.view.done.send_replace(seq);
        if self.shared.view_store.sync_root.is_some() {
            self.unsynced = Some(seq);
        } else {
            self.write_watermark(seq).await;
            self.shared.view.durable.send_replace(seq);
        }
    }

    /// Makes the local view durable and advances the watermark to what it holds.
    async fn sync(&mut self) {
        let (Some(seq), Some(root)) = (self.unsynced, &self.shared.view_store.sync_root) else {
            return;
        };
        let root = root.clone();
        let synced = tokio::task::spawn_blocking(move || sync_filesystem(&root)).await;
        self.last_sync = Instant::now();
        match synced {
            Ok(Ok(())) => {
                self.unsynced = None;
                self.write_watermark(seq).await;
                self.shared.view.durable.send_replace(seq);
            }
            // Harmless: the watermark stays behind, and start-up redoes the rest.
            Ok(Err(e)) => tracing::warn!(error = %e, "syncing the materialized view failed"),
            Err(e) => tracing::warn!(error = %e, "syncing the materialized view failed"),
        }
    }

    async fn write_watermark(&self, seq: Seq) {
        let view = &self.shared.view_store;
        let result = put_view(
            &view.store,
            self.shared.opts.view_write,
            &view_watermark_path(),
            render_watermark(seq),
            seq,
        )
        .await;
        self.shared.metrics.view_write(result.is_ok());
        if let Err(e) = result {
            // Harmless: a stale watermark only means more work at the next start-up.
            tracing::debug!(error = %e, "view watermark write failed");
        }
    }
}

/// Flushes the filesystem holding `root` (one call, however many files were written).
fn sync_filesystem(root: &std::path::Path) -> std::io::Result<()> {
    let dir = std::fs::File::open(root)?;
    #[cfg(target_os = "linux")]
    rustix::fs::syncfs(&dir)?;
    #[cfg(all(unix, not(target_os = "linux")))]
    rustix::fs::sync();
    // Elsewhere local roots write their view through the fsyncing store (no sync root).
    drop(dir);
    Ok(())
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
    render_index_from(c, coll, fields.to_vec(), None).0
}

/// An index's rows as last rendered, in id order.
struct RenderedIndex {
    fields: Vec<String>,
    rows: Vec<(RecordId, Seq, Box<str>)>,
}

/// Renders an index, reusing the rows of `previous` whose record has the same version
/// (so the cost is a walk of the collection plus the changed records). The output is
/// the canonical form of `{"_seq", "collection", "count", "records"}` whatever
/// `previous` holds: [`render_index`] is this with nothing to reuse.
fn render_index_from(
    c: &CollectionName,
    coll: &CollectionState,
    fields: Vec<String>,
    previous: Option<RenderedIndex>,
) -> (Vec<u8>, RenderedIndex) {
    let reusable = previous
        .filter(|p| p.fields == fields)
        .map(|p| p.rows)
        .unwrap_or_default();
    let mut old = reusable.into_iter().peekable();
    let mut rows = Vec::with_capacity(coll.docs.len());
    for (id, doc) in coll.docs.iter() {
        while old.next_if(|(old_id, _, _)| old_id < id).is_some() {}
        let row = match old.next_if(|(old_id, version, _)| old_id == id && *version == doc.version)
        {
            Some((_, _, row)) => row,
            None => render_index_row(id, doc, &fields).into_boxed_str(),
        };
        rows.push((id.clone(), doc.version, row));
    }
    let body: usize = rows.iter().map(|(_, _, row)| row.len() + 1).sum();
    let mut out = String::with_capacity(body + 128);
    // Keys in canonical (byte) order: _seq, collection, count, records.
    out.push_str("{\"_seq\":");
    out.push_str(&coll.changed.get().to_string());
    out.push_str(",\"collection\":");
    out.push_str(&to_canonical_string(&Value::from(c.as_str())));
    out.push_str(",\"count\":");
    out.push_str(&rows.len().to_string());
    out.push_str(",\"records\":[");
    for (i, (_, _, row)) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(row);
    }
    out.push_str("]}");
    (out.into_bytes(), RenderedIndex { fields, rows })
}

fn render_index_row(id: &RecordId, doc: &Doc, fields: &[String]) -> String {
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
    to_canonical_string(&Value::Object(row))
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

pub(crate) fn parse_seq(bytes: &[u8]) -> Option<Seq> {
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
            // Someone else replaced (or removed) it meanwhile: look again. A conditional
            // update of a key that is gone answers 412 on some S3 servers (SeaweedFS) and
            // 404 on others (moto, AWS): both mean the same here.
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::NotFound { .. }) => continue,
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
