//! The engine's one error type.
//!
//! Every failure the engine can report is a variant here, so the server maps errors to
//! HTTP in exactly one place. The enum is `#[non_exhaustive]`: constraint variants are
//! added as collections grow (see DESIGN.md §3) without breaking callers.

use crate::names::Seq;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong inside the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A caller-supplied value failed to parse (a name, an id, a URL, a document).
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },

    /// The store accepted a second create of the same key: it ignores conditional
    /// writes, so no commit protocol can be safe on it.
    #[error(
        "the store at {url} does not honour create-if-absent writes (a second create of \
         {probe} succeeded); refusing to open it, because concurrent commits would overwrite \
         each other"
    )]
    UnsafeStore { url: String, probe: String },

    /// The object store failed in a way the engine could not recover from.
    #[error("object store error: {0}")]
    Store(#[from] object_store::Error),

    /// A log entry, checkpoint or other engine file does not parse or fails its hash.
    #[error("damaged {path}: {reason}")]
    Corrupt { path: String, reason: String },

    /// The log head could not be written and the outcome could not be settled in time;
    /// the transaction may or may not be in the log.
    #[error("outcome of transaction {txn} is unknown after {attempts} attempts: {reason}")]
    OutcomeUnknown {
        txn: uuid::Uuid,
        attempts: u32,
        reason: String,
    },

    /// The store could not be reached; the transaction was definitely not committed.
    #[error("the store is unavailable; nothing was committed: {reason}")]
    Unavailable { reason: String },

    /// A transaction's reads kept changing under it; it was re-run this many times.
    #[error("transaction gave up after {attempts} attempts: its reads kept changing")]
    TooManyRetries { attempts: u32 },

    /// A write named a version of a record that is no longer current.
    #[error("version conflict on {collection}/{id}: expected {expected}, current {actual:?}")]
    VersionConflict {
        collection: String,
        id: String,
        expected: Seq,
        actual: Option<Seq>,
    },

    /// A read asked for a log position this database does not have.
    #[error("log position {requested} is beyond the head {head}")]
    FutureSeq { requested: Seq, head: Seq },

    /// The database handle was shut down.
    #[error("the database is shut down")]
    Closed,
}

impl Error {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn corrupt(path: impl ToString, reason: impl ToString) -> Self {
        Error::Corrupt {
            path: path.to_string(),
            reason: reason.to_string(),
        }
    }
}
