//! The database handle: open a root, run transactions, read snapshots.
//!
//! One `Database` is one handle on one root. Several handles (in one process or many)
//! may share a root; they coordinate only through create-if-absent on the log. A
//! handle owns two background tasks: the committer (group commit, see `committer`) and
//! the materializer (the derived JSON view, see `materialize`), which share the state
//! through `shared::Shared` (all mutation of the in-memory state goes through it).
//!
//! `Database`'s methods live in this folder: opening, reading and `transact` here,
//! [`Trial`] (a transaction that is never committed) in `trial`, and `define_all` in
//! `define`. Options are in `options`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::checkpoint;

use crate::committer::{self, Outcome, Submission};
use crate::error::{Error, Result};
use crate::marks::DurableMarks;
use crate::metrics::EngineMetrics;
use crate::names::Seq;
use crate::state::State;
use crate::store::metered::MeteredStore;
use crate::store::{self, DynStore, StoreUrl};
use crate::tail::{self, TailHealth, TailStatus};
use crate::txn::{Committed, Txn, TxnMeta};

mod define;
mod trial;

use crate::materialize;
pub use crate::options::{
    DEFAULT_APPLY_AHEAD_AFTER, DEFAULT_MAX_ENTRY_BYTES, DEFAULT_MAX_RECORD_BYTES, DbOptions,
};
use crate::shared::Shared;
use crate::view::{ViewQueue, ViewStore, ViewWriteMode};
pub use trial::Trial;

/// How fresh a read must be when several processes share the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Whatever this handle has applied (its own commits are always included).
    Local,
    /// Catch up with the log first.
    Latest,
    /// Catch up unless this handle has seen the log head within the given time.
    BoundedStaleness(Duration),
}

/// A handle on one database root. See the module docs.
pub struct Database {
    shared: Arc<Shared>,
    submit: Option<mpsc::Sender<Submission>>,
    /// Dropping it ends the tailer and the digest writer.
    stop: Option<tokio::sync::watch::Sender<()>>,
    tail: Option<Arc<TailHealth>>,
    /// The newest signed digest, when this handle signs them.
    digests: Option<crate::digest::Newest>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("store", &self.shared.store.to_string())
            .field("seq", &self.shared.snapshot().seq())
            .finish()
    }
}

impl Database {
    /// Parses a store URL, probes the store, and opens the database on it.
    pub async fn open_url(url: &str, mut opts: DbOptions) -> Result<Database> {
        let store = store::open(url, opts.ids.as_ref()).await?;
        let parsed = StoreUrl::parse(url)?;
        if opts.tail_interval.is_none() {
            opts.tail_interval = crate::tail::default_interval(&parsed);
        }
        if let StoreUrl::Local(root) = &parsed {
            let root = root.clone();
            let now = std::time::SystemTime::from(opts.clock.now());
            tokio::task::spawn_blocking(move || store::staging::sweep(&root, now));
        }
        let view = match parsed {
            StoreUrl::S3 { .. } => {
                opts.view_write = ViewWriteMode::IfNewer;
                None
            }
            StoreUrl::Local(path) if cfg!(unix) => Some(crate::view::local_view_store(&path)?),
            StoreUrl::Local(_) | StoreUrl::Memory => None,
        };
        Database::open_with_view(store, view, opts).await
    }

    /// Opens the database on an already-built store: newest checkpoint, then the log
    /// tail; then the view is brought up to date in the background. Every operation on `store` is counted in [`Database::metrics`].
    pub async fn open(store: DynStore, opts: DbOptions) -> Result<Database> {
        Database::open_with_view(store, None, opts).await
    }

    /// [`Database::open`], with the view written through `view` (the main store when
    /// `None`).
    async fn open_with_view(
        store: DynStore,
        view: Option<ViewStore>,
        opts: DbOptions,
    ) -> Result<Database> {
        let metrics = Arc::new(EngineMetrics::default());
        let store: DynStore = Arc::new(MeteredStore::new(store, metrics.clone()));
        let view_store = match view {
            Some(view) => ViewStore {
                store: Arc::new(MeteredStore::new(view.store, metrics.clone())),
                local: view.local,
            },
            None => ViewStore {
                store: store.clone(),
                local: None,
            },
        };
        // The marks are read before the log: whatever they claim was in the log then, so
        // another process committing meanwhile cannot make the check fail.
        let checkpoints = checkpoint::list(&store).await?;
        let marks = DurableMarks::read_with(&store, &view_store.store, &checkpoints).await?;
        let mut state = checkpoint::load_newest_of(&store, &checkpoints)
            .await?
            .unwrap_or_default();
        // A newest entry that does not decode is most likely a torn write: say so, and
        // name the recovery command (`recover`), instead of a bare "damaged".
        let tail = match crate::log::read_from(&store, state.seq().next()).await {
            Ok(tail) => tail,
            Err(e) => return Err(crate::recover::classify(&store, e).await),
        };
        for entry in tail {
            state.apply(&entry)?;
        }
        marks.check(state.seq())?;
        let ctx = Arc::new(crate::txn::TxnContext {
            clock: opts.clock.clone(),
            ids: opts.ids.clone(),
            secrets: opts.secret_key.clone(),
            max_record_bytes: opts.max_record_bytes,
            max_entry_bytes: opts.max_entry_bytes,
            apply_ahead_after: opts.apply_ahead_after,
            hooks: opts.hooks.clone(),
        });
        let shared = Arc::new(Shared {
            store,
            view_store,
            ctx,
            view: ViewQueue::new(state.seq()),
            feed: Arc::new(crate::feed::Feed::new(state.seq())),
            state: RwLock::new(Arc::new(state)),
            catchup: tokio::sync::Mutex::new(()),
            last_synced: Mutex::new(Instant::now()),
            last_entry: Arc::new(Mutex::new(Instant::now())),
            metrics,
            opts,
        });
        let mut tasks = Vec::new();
        if shared.opts.materialize {
            materialize::recover(&shared).await?;
            tasks.push(tokio::spawn(materialize::run(shared.clone())));
        }
        let (tx, rx) = mpsc::channel(shared.opts.max_batch.max(1) * 4);
        tasks.push(tokio::spawn(committer::run(shared.clone(), rx)));
        let (stop, stopped) = tokio::sync::watch::channel(());
        let tail = match shared.opts.tail_interval {
            Some(every) if !every.is_zero() => {
                let health = Arc::new(TailHealth::new(every));
                tasks.push(tokio::spawn(tail::run(
                    shared.clone(),
                    health.clone(),
                    stopped.clone(),
                )));
                Some(health)
            }
            _ => None,
        };
        let digests = shared.opts.digest.clone().map(|opts| {
            let known = crate::digest::Newest::default();
            tasks.push(tokio::spawn(crate::digest::run(
                shared.store.clone(),
                shared.opts.clock.clone(),
                {
                    let shared = shared.clone();
                    move || shared.snapshot()
                },
                opts,
                known.clone(),
                stopped,
            )));
            known
        });
        Ok(Database {
            shared,
            submit: Some(tx),
            stop: Some(stop),
            tail,
            digests,
            tasks: Mutex::new(tasks),
        })
    }

    /// The store this database lives in (counted: see `store::metered`).
    pub fn store(&self) -> &DynStore {
        &self.shared.store
    }

    /// The engine's counters.
    pub fn metrics(&self) -> &Arc<EngineMetrics> {
        &self.shared.metrics
    }

    /// The state this handle has applied, without touching the store.
    pub fn snapshot(&self) -> Arc<State> {
        self.shared.snapshot()
    }

    /// A snapshot at least as fresh as `consistency` asks.
    pub async fn read(&self, consistency: Consistency) -> Result<Arc<State>> {
        let catch_up = match consistency {
            Consistency::Local => false,
            Consistency::Latest => true,
            Consistency::BoundedStaleness(bound) => {
                self.shared.last_synced.lock().elapsed() > bound
            }
        };
        if catch_up {
            self.shared.catch_up().await?;
        }
        Ok(self.snapshot())
    }

    /// The time on this handle's clock (the one audit timestamps use), for callers that
    /// need "today" (the admin UI's calendar and template preview).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.shared.opts.clock.now()
    }

    /// A fresh record id from this handle's id source (for records whose id must be
    /// known before their transaction, such as an import log named in audit sources).
    pub fn new_id(&self) -> crate::names::RecordId {
        crate::names::RecordId::from_uuid(self.shared.opts.ids.new_id())
    }

    /// The key secret fields are sealed with, when one is configured: for an app that
    /// reveals a record's secrets itself (docsai compares a re-imported collection's
    /// credentials with the stored ones, and exports them when asked).
    pub fn secret_key(&self) -> Option<&Arc<crate::collection::secret::SecretBox>> {
        self.shared.ctx.secrets.as_ref()
    }

    pub(crate) fn context(&self) -> &Arc<crate::txn::TxnContext> {
        &self.shared.ctx
    }

    pub(crate) fn hooks(&self) -> &[Arc<dyn crate::txn::Hook>] {
        &self.shared.opts.hooks
    }

    /// When this handle signs audit digests: the public key (base64), its id, and the
    /// newest digest known.
    pub fn digest_status(&self) -> Option<(String, String, Option<crate::digest::Digest>)> {
        let key = self.shared.opts.digest.as_ref()?.key.verifying_key();
        let newest = self.digests.as_ref().and_then(|n| n.lock().clone());
        Some((
            crate::digest::public_key_base64(&key),
            crate::digest::key_id(&key),
            newest,
        ))
    }

    /// Every change after `from`, in log order: older entries read from the log, then
    /// live ones, with at most `limit` queued (entries, or a [`crate::feed::QueueLimit`]
    /// of entries and bytes; see `feed`).
    pub fn subscribe(
        &self,
        from: crate::feed::FeedPos,
        limit: impl Into<crate::feed::QueueLimit>,
    ) -> crate::feed::Subscription {
        crate::feed::Subscription::new(
            self.shared.feed.clone(),
            self.shared.store.clone(),
            from,
            limit.into(),
        )
    }

    /// The feed's counters.
    pub fn feed_stats(&self) -> crate::feed::FeedStats {
        self.shared.feed.stats()
    }

    /// How the background log tailer is doing (`None` when this handle has none).
    pub fn tail_status(&self) -> Option<TailStatus> {
        self.tail.as_ref().map(|t| t.status())
    }

    /// Reads the log for entries written by other handles and applies them.
    pub async fn catch_up(&self) -> Result<Seq> {
        self.shared.catch_up().await
    }

    /// Runs `f` as a serializable transaction: on a snapshot, re-run while its reads
    /// are overtaken by other commits, then committed in one log entry.
    pub async fn transact<T, E, F>(&self, meta: &TxnMeta, mut f: F) -> Result<Committed<T>, E>
    where
        F: FnMut(&mut Txn) -> Result<T, E>,
        E: From<Error>,
    {
        let submit = self.submit.as_ref().ok_or(Error::Closed)?;
        for _ in 0..self.shared.opts.max_attempts {
            let snapshot = self.snapshot();
            let seq = snapshot.seq();
            let mut txn = Txn::new(snapshot, self.shared.ctx.clone(), meta.clone());
            txn.apply_ahead();
            let value = f(&mut txn)?;
            crate::txn::run_hooks(&mut txn, &self.shared.opts.hooks)?;
            if txn.is_read_only() {
                return Ok(Committed {
                    value,
                    seq,
                    txn_id: None,
                });
            }
            let id = self.shared.opts.ids.new_id();
            let (reply, answer) = oneshot::channel();
            let mut pending = txn.take_pending(id);
            let applied = match pending.ahead.take() {
                Some(applying) => applying.wait(&mut pending.record).await,
                None => None,
            };
            let submission = Submission {
                txn: pending.record,
                deferred: pending.deferred,
                applied,
                reply,
            };
            submit.send(submission).await.map_err(|_| Error::Closed)?;
            // What the committer does not need is freed while it works (an import's
            // thousands of hook changes and parsed documents take a millisecond).
            drop(txn);
            match answer.await.map_err(|_| Error::Closed)?? {
                Outcome::Committed(seq) => {
                    return Ok(Committed {
                        value,
                        seq,
                        txn_id: Some(id),
                    });
                }
                Outcome::Stale => self.shared.metrics.rerun(),
            }
        }
        Err(Error::TooManyRetries {
            attempts: self.shared.opts.max_attempts,
        }
        .into())
    }

    /// Waits until the materialized view reflects everything applied so far.
    pub async fn flush_view(&self) {
        if self.shared.opts.materialize {
            self.shared.view.wait_for(self.snapshot().seq()).await;
        }
    }

    /// Stops accepting transactions, lets queued ones finish, and flushes the view.
    pub async fn close(mut self) {
        self.submit = None;
        self.stop = None;
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Dropping the sender ends the committer, which closes the view queue; the
        // materializer finishes what is queued and exits on its own.
        self.submit = None;
        self.stop = None;
    }
}
