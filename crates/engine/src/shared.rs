//! The state a handle shares with its background tasks: the committer installs what it
//! commits, the tailer and catch-up apply what others committed, and the materializer
//! reads snapshots and drains the view queue. It is a module of its own so that those
//! tasks name the handle they share and not `Database`, which spawns them.
//!
//! All mutation of the in-memory state goes through [`Shared::apply`] or
//! [`Shared::install`], which are idempotent by log position, because an entry can reach
//! a handle twice: from its own committer and from a catch-up read of the log.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use crate::checkpoint;
use crate::error::{Error, Result};
use crate::log::{LogEntry, read_entry};
use crate::metrics::EngineMetrics;
use crate::names::Seq;
use crate::options::DbOptions;
use crate::state::State;
use crate::store::{self, DynStore};
use crate::view::{ViewQueue, ViewStore};

/// State shared by the handle and its background tasks.
pub(crate) struct Shared {
    pub store: DynStore,
    /// Where the materialized view is written (see [`ViewStore`]).
    pub view_store: ViewStore,
    pub ctx: Arc<crate::txn::TxnContext>,
    pub opts: DbOptions,
    pub metrics: Arc<EngineMetrics>,
    pub view: ViewQueue,
    /// Every applied entry goes out to subscribers from here (see `feed`).
    pub feed: Arc<crate::feed::Feed>,
    pub(crate) state: RwLock<Arc<State>>,
    pub(crate) catchup: tokio::sync::Mutex<()>,
    pub(crate) last_synced: Mutex<Instant>,
    /// When the last log entry was applied: checkpoints render in the pauses between
    /// commits (`checkpoint::write_with`).
    pub(crate) last_entry: Arc<Mutex<Instant>>,
}

impl Shared {
    pub fn snapshot(&self) -> Arc<State> {
        self.state.read().clone()
    }

    /// Applies an entry if it is the next one, and queues it for the view; ignores one
    /// already applied (after checking it is the same entry). Used for entries read
    /// from the log.
    pub fn apply(&self, entry: &LogEntry, own: bool) -> Result<()> {
        if self.advance(entry, own, |state| state.apply(entry))? {
            self.queue_for_view(entry);
        }
        Ok(())
    }

    /// Installs the state the committer built for its own entry: `true` if it was not
    /// applied here yet. The committer then answers the entry's writers, and queues
    /// the entry for the view ([`Shared::queue_for_view`]) if it was.
    pub fn install(&self, mut next: State, entry: &LogEntry) -> Result<bool> {
        next.seal(entry.seq(), &entry.hash);
        self.advance(entry, true, move |state| {
            *state = next;
            Ok(())
        })
    }

    /// Queues what an applied entry touched for the materialized view. (Until then the
    /// view's queue does not reach the entry, so nobody waiting for the view to hold it
    /// is let go early.)
    pub fn queue_for_view(&self, entry: &LogEntry) {
        if self.opts.materialize {
            self.view.mark(entry);
        }
    }

    fn advance(
        &self,
        entry: &LogEntry,
        own: bool,
        change: impl FnOnce(&mut State) -> Result<()>,
    ) -> Result<bool> {
        let checkpoint = {
            let mut guard = self.state.write();
            if entry.seq() <= guard.seq() {
                return if entry.seq() == guard.seq() && entry.hash != guard.head_hash() {
                    Err(Error::corrupt(
                        store::log_path(entry.seq()),
                        "differs from the entry this handle applied at the same position",
                    ))
                } else {
                    Ok(false)
                };
            }
            if entry.seq() != guard.seq().next() {
                return Err(Error::corrupt(
                    store::log_path(entry.seq()),
                    format!("arrived out of order after position {}", guard.seq()),
                ));
            }
            let before = self.feed.has_subscribers().then(|| guard.clone());
            change(Arc::make_mut(&mut guard))?;
            self.feed.publish(entry, before, guard.clone());
            let now = Instant::now();
            *self.last_synced.lock() = now;
            *self.last_entry.lock() = now;
            let every = self.opts.checkpoint_every;
            (own && every > 0 && entry.seq().get().is_multiple_of(every)).then(|| guard.clone())
        };
        if let Some(snapshot) = checkpoint {
            let store = self.store.clone();
            let local = self.view_store.local.clone();
            let last_entry = self.last_entry.clone();
            tokio::spawn(async move {
                if local.is_some() {
                    checkpoint::wait_for_a_pause(|| last_entry.lock().elapsed()).await;
                }
                if let Err(e) = checkpoint::write_with(&store, &snapshot, local.as_ref()).await {
                    tracing::warn!(seq = %snapshot.seq(), error = %e, "checkpoint failed");
                }
            });
        }
        Ok(true)
    }

    /// Reads and applies log entries after the current head until an empty slot.
    pub async fn catch_up(&self) -> Result<Seq> {
        let _one_reader = self.catchup.lock().await;
        loop {
            let next = self.snapshot().seq().next();
            match read_entry(&self.store, next).await? {
                Some(entry) => {
                    self.metrics.caught_up();
                    self.apply(&entry, false)?;
                }
                None => break,
            }
        }
        *self.last_synced.lock() = Instant::now();
        Ok(self.snapshot().seq())
    }
}
