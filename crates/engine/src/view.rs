//! The hand-off between the commit path and the materializer, and where the view goes.
//!
//! Every applied entry marks what it touched in a [`ViewQueue`]; the materializer
//! (`materialize`) drains it. It is a module of its own so that the shared handle
//! (`shared`) can hold the queue without depending on the materializer, which depends
//! on the handle. The watermark format (`_meta/view.json`, `{"_seq": n}`) lives here
//! too: start-up (`marks`) reads it and the materializer writes it.

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::{Notify, watch};

use crate::canonical::to_canonical_string;
use crate::error::Result;
use crate::log::LogEntry;
use crate::names::{CollectionName, RecordId, Seq};
use crate::store::DynStore;
use crate::store::lane::LocalRoot;

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

#[derive(Default)]
pub(crate) struct Dirty {
    pub(crate) docs: BTreeSet<(CollectionName, RecordId)>,
    pub(crate) collections: BTreeSet<CollectionName>,
    pub(crate) upto: Seq,
    pub(crate) closed: bool,
    /// Someone waits for the view to be durable: sync now rather than on the interval.
    pub(crate) sync_requested: bool,
    /// Someone waits for the view to be complete: write deferred indexes now rather
    /// than when their time comes.
    pub(crate) flush_requested: bool,
}

impl Dirty {
    pub(crate) fn is_empty(&self) -> bool {
        self.docs.is_empty() && self.collections.is_empty()
    }
}

/// What is waiting to be materialized, and how far the view is done.
pub(crate) struct ViewQueue {
    pub(crate) dirty: Mutex<Dirty>,
    pub(crate) notify: Notify,
    /// Every file up to here is written (readers see it).
    pub(crate) done: watch::Sender<Seq>,
    /// Every file up to here is durable.
    pub(crate) durable: watch::Sender<Seq>,
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
        if *done.borrow() < seq {
            self.dirty.lock().flush_requested = true;
            self.notify.notify_one();
        }
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
/// On a local root the view's files are written from the background lane without a
/// per-file fsync (each would cost two: the file and its directory) and made durable
/// together, at most once a second, before the watermark claims them (see
/// `materialize::local`). Elsewhere (S3, memory) a write is durable when it returns, and
/// `local` is `None`.
#[derive(Debug, Clone)]
pub struct ViewStore {
    pub store: DynStore,
    pub local: Option<Arc<LocalRoot>>,
}

/// The materialized view's handle on a local root: the same directory, read through a
/// `LocalFileSystem` without fsync, written from the background lane.
pub fn local_view_store(path: &std::path::Path) -> Result<ViewStore> {
    let fs = object_store::local::LocalFileSystem::new_with_prefix(path)?;
    Ok(ViewStore {
        store: Arc::new(fs),
        local: Some(Arc::new(LocalRoot::new(path)?)),
    })
}

pub(crate) fn render_watermark(seq: Seq) -> Vec<u8> {
    to_canonical_string(&serde_json::json!({ "_seq": seq.get() })).into_bytes()
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
