//! How a handle is opened: [`DbOptions`] and its defaults. A module of its own because
//! the shared handle (`shared`) keeps the options, and the handle (`db`) builds it.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, IdSource, SystemClock, UuidV7Ids};
use crate::view::ViewWriteMode;

/// How to open a database handle.
#[derive(Debug, Clone)]
pub struct DbOptions {
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdSource>,
    /// Write a checkpoint after every this many log entries (0 = never).
    pub checkpoint_every: u64,
    /// Most transactions in one log entry.
    pub max_batch: usize,
    /// Most times a transaction closure is re-run because its reads changed.
    pub max_attempts: u32,
    /// How long an ambiguous log write is retried before its outcome is reported unknown.
    pub settle_timeout: Duration,
    /// Keep the `{collection}/{id}.json` and `index.json` view up to date.
    pub materialize: bool,
    /// How long the materializer waits to gather a burst of commits.
    pub view_debounce: Duration,
    /// How view files are replaced (conditional on S3, where processes share a bucket).
    pub view_write: ViewWriteMode,
    /// Key for `secret` fields (AES-256-GCM); without one, writing a secret field fails.
    pub secret_key: Option<Arc<crate::collection::secret::SecretBox>>,
    /// Transaction hooks: see `txn::hooks::Hook`.
    pub hooks: Vec<Arc<dyn crate::txn::Hook>>,
    /// How often the background tailer reads the next log slot, so a handle that only
    /// reads still sees other processes' commits (see `tail`). `None`: the root's default
    /// with [`Database::open_url`] (200 ms local, 1 s S3), no tailer with
    /// [`Database::open`]; a zero duration turns it off.
    pub tail_interval: Option<Duration>,
    /// Write signed audit digests with this key (see `digest`); none by default.
    pub digest: Option<crate::digest::DigestOptions>,
    /// Largest record, in bytes of canonical JSON: its own fields (nested arrays left
    /// out), and separately each nested item. A write over it fails with `too_large`.
    pub max_record_bytes: usize,
    /// Largest log entry file, in bytes. The committer splits a batch that would pass
    /// it over several entries; one transaction that alone passes it fails `too_large`.
    pub max_entry_bytes: usize,
    /// A transaction that stages this many documents has them applied ahead, on another
    /// thread, while it goes on staging, so the committer need not validate them again
    /// (see `txn::ahead`; 0 = never).
    pub apply_ahead_after: usize,
}

/// Default of [`DbOptions::apply_ahead_after`]: below it, a helper thread costs more
/// than it saves.
pub const DEFAULT_APPLY_AHEAD_AFTER: usize = 256;

/// Default of [`DbOptions::max_record_bytes`]: 1 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;
/// Default of [`DbOptions::max_entry_bytes`]: 64 MiB.
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 64 << 20;

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidV7Ids),
            checkpoint_every: 1000,
            max_batch: 1024,
            max_attempts: 10_000,
            settle_timeout: Duration::from_secs(30),
            materialize: true,
            view_debounce: Duration::from_millis(20),
            view_write: ViewWriteMode::Overwrite,
            secret_key: None,
            hooks: Vec::new(),
            tail_interval: None,
            digest: None,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            apply_ahead_after: DEFAULT_APPLY_AHEAD_AFTER,
        }
    }
}
