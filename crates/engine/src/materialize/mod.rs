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
//!
//! On a local root the files are rendered and written from the background lane, at the
//! lowest CPU and I/O priority, and made durable together once a second (`local`,
//! decision 0020); a collection's `index.json`, the whole collection, is rewritten at
//! most once a second, so the view's cost per write does not grow with the collection.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::error::Result;
use crate::names::{CollectionName, RecordId, Seq};
use crate::shared::Shared;
use crate::state::State;
use crate::store::{index_view_path, view_watermark_path};

mod files;
mod local;
mod rebuild;
mod render;

use crate::view::{Dirty, render_watermark};
pub use crate::view::{ViewStore, ViewWriteMode};
use files::{put_view, read_seq, write_doc};
pub use rebuild::{RebuildReport, rebuild};
use render::{RenderedIndex, index_fields, render_index_from};
pub use render::{render_doc, render_index};

const WRITE_CONCURRENCY: usize = 16;

/// How often, at most, the local view is synced and its watermark advanced.
const VIEW_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// An index is rewritten at most once per this many times what its last rewrite took,
/// so a huge collection's `index.json` takes a bounded share of the machine (and lags
/// more) instead of being rewritten after every burst of commits.
const INDEX_COST_FACTOR: u32 = 10;

/// And at most once per this interval: an index is the whole collection, so rewriting
/// it after every pass would make the view's cost per write grow with the collection.
/// Written at most once a second, its cost per second is bounded instead, and the rows
/// it shows lag by at most about this (or less when someone waits: `flush_view`).
const INDEX_MIN_INTERVAL: Duration = Duration::from_secs(1);

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
                if !dirty.is_empty() || (dirty.flush_requested && !self.deferred.is_empty()) {
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
        let (docs, mut collections, urgent) = {
            let mut dirty = self.shared.view.dirty.lock();
            self.taken_upto = self.taken_upto.max(dirty.upto);
            (
                std::mem::take(&mut dirty.docs),
                std::mem::take(&mut dirty.collections),
                // A closed queue gets no more marks; someone waiting for the view
                // should not wait for an index's time to come.
                closed || std::mem::take(&mut dirty.flush_requested),
            )
        };
        collections.append(&mut self.deferred);
        let snapshot = self.shared.snapshot();
        let mut failed = Dirty {
            docs: self.write_docs(snapshot.clone(), docs).await,
            ..Dirty::default()
        };
        for c in collections {
            let now = Instant::now();
            if !urgent && self.index_due.get(&c).is_some_and(|due| *due > now) {
                self.deferred.insert(c);
                continue;
            }
            let result = self.write_index(&snapshot, &c).await;
            self.shared.metrics.view_write(result.is_ok());
            match result {
                Ok(()) => {
                    let wait = (now.elapsed() * INDEX_COST_FACTOR).max(INDEX_MIN_INTERVAL);
                    self.index_due.insert(c, now + wait);
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
        snapshot: Arc<State>,
        docs: BTreeSet<(CollectionName, RecordId)>,
    ) -> BTreeSet<(CollectionName, RecordId)> {
        if let Some(local) = &self.shared.view_store.local {
            return local::write_docs(local, snapshot, docs, &self.shared.metrics).await;
        }
        let view = &self.shared.view_store;
        let mode = self.shared.opts.view_write;
        let metrics = &self.shared.metrics;
        let snapshot = &snapshot;
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
        if let Some(local) = &view.local {
            return local::write_file(local, &index_view_path(c), bytes).await;
        }
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
        if self.shared.view_store.local.is_some() {
            self.unsynced = Some(seq);
        } else {
            self.write_watermark(seq).await;
            self.shared.view.durable.send_replace(seq);
        }
    }

    /// Makes the local view durable and advances the watermark to what it holds.
    async fn sync(&mut self) {
        let (Some(seq), Some(local)) = (self.unsynced, self.shared.view_store.local.clone()) else {
            return;
        };
        let synced = match local.path(&view_watermark_path()) {
            Ok(watermark) => {
                let lane = local.lane.clone();
                lane.run(move || local::sync(&local, watermark, render_watermark(seq)))
                    .await
                    .map_err(std::io::Error::other)
                    .and_then(|synced| synced)
            }
            Err(e) => Err(std::io::Error::other(e)),
        };
        self.last_sync = Instant::now();
        self.shared.metrics.view_write(synced.is_ok());
        match synced {
            Ok(()) => {
                self.unsynced = None;
                self.shared.view.durable.send_replace(seq);
            }
            // Harmless: the watermark stays behind, and start-up redoes the rest.
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
