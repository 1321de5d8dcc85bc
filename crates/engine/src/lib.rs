//! Bucketbase's storage engine: a serializable document database whose only storage is
//! an object store (memory, local disk or S3).
//!
//! The log (`_log/{seq}.json`, written create-if-absent) is the single source of truth
//! and the audit hash chain; every process holds the current state in memory, rebuilt
//! from the newest checkpoint plus the log tail; `{collection}/{id}.json` and
//! `index.json` are a derived view for people and tools reading the bucket. See
//! `docs/architecture.md` for the modules by layer and the path of a write through them,
//! and `docs/decisions/` for the why.
//!
//! The modules form layers with no cycle between them (`scripts/module-cycles` checks):
//! values (`seq`, `error`, `names`, `clock`), storage (`store`, `log`), pure rules
//! (`collection`), the state (`state`, `checkpoint`), transactions (`txn`), readers
//! (`collection::query`, `collection::audit`, `verify`, `marks`, `digest`) and the handle
//! (`view`, `options`, `shared`, `committer`, `materialize`, `tail`, `db`). Each type's
//! methods live in one file or in the folder named for it (`db/`, `state/`, `txn/`).

pub mod backup;
pub mod blob;
pub mod canonical;
pub mod checkpoint;
pub mod clock;
pub mod collection;
mod committer;
mod db;
pub mod digest;
mod error;
pub mod feed;
#[cfg(unix)]
pub mod keyfile;
pub mod log;
pub mod marks;
pub mod materialize;
pub mod memory;
pub mod metrics;
mod names;
mod options;
pub mod recover;
pub mod revert;
mod seq;
mod shared;
pub mod state;
pub mod store;
pub mod tail;
mod txn;
pub mod verify;
pub mod view;

pub use clock::{Clock, IdSource, ManualClock, SequentialIds, SystemClock, UuidV7Ids};
pub use db::Trial;
pub use db::{
    Consistency, DEFAULT_APPLY_AHEAD_AFTER, DEFAULT_MAX_ENTRY_BYTES, DEFAULT_MAX_RECORD_BYTES,
    Database, DbOptions,
};
pub use error::{Error, ErrorCode, Result, Violation, ViolationCode};
pub use metrics::{EngineMetrics, MetricsSnapshot};
pub use names::{CollectionName, RecordId, Seq};
pub use state::{CollectionState, Doc, State};
pub use store::{DynStore, StoreUrl};
pub use tail::TailStatus;
pub use txn::{Action, Change, Committed, Hook, ItemChange, Scanned, Tag, Txn, TxnMeta};
