//! The engine's one error type.
//!
//! Every failure the engine can report is a variant here, so the server maps errors to
//! HTTP in exactly one place. The enum is `#[non_exhaustive]`: constraint variants are
//! added as collections grow (see `docs/collections.md`) without breaking callers.

use crate::seq::Seq;

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

    /// A revert would overwrite changes made after its changeset (see `crate::revert`).
    #[error(
        "revert of {changeset} refused: {records} record(s) changed after it (dry-run lists them; force overrides)"
    )]
    RevertConflict { changeset: String, records: usize },

    /// A collection definition is malformed or does not fit the data it governs.
    #[error("invalid definition of collection {collection:?}: {problem}")]
    InvalidDefinition { collection: String, problem: String },

    /// No collection of that name is defined.
    #[error("unknown collection {collection:?}")]
    UnknownCollection { collection: String },

    /// A record does not exist (or is not visible).
    #[error("{collection}/{id} not found")]
    NotFound { collection: String, id: String },

    /// A record broke a rule of its collection.
    #[error("{0}")]
    Violation(Box<Violation>),

    /// A read asked for a log position this database does not have.
    #[error("log position {requested} is beyond the head {head}")]
    FutureSeq { requested: Seq, head: Seq },

    /// The log ends before a position that a durable mark (the newest checkpoint, the view
    /// watermark) says was committed: acknowledged entries were removed (see `marks`).
    #[error(
        "the log ends at position {head}, but {by} says position {mark} was committed: \
         entries {first}..={mark} of _log/ are missing. Refusing to open, because new writes \
         would reuse their positions. Restore the missing _log/ files from a backup; see \
         `bucketbase audit verify`",
        first = head.next()
    )]
    LogTruncated {
        head: Seq,
        mark: Seq,
        by: &'static str,
    },

    /// The newest log entry does not parse or fails its hash, and no later entry exists:
    /// most likely a write torn by a crash (see `recover`). Start-up stops rather than
    /// guess what it held.
    #[error(
        "the newest log entry {path} is damaged ({reason}); most likely a write torn by a \
         crash. Refusing to open, because the log cannot continue past it. With every server \
         on this root stopped, run `bucketbase recover --store <root>`: it moves the damaged \
         bytes to _quarantine/ and writes a void entry in position {seq}, so the chain \
         continues (README: \"Recovering from a damaged newest entry\")"
    )]
    TornHead {
        path: String,
        seq: Seq,
        reason: String,
    },

    /// The database handle was shut down.
    #[error("the database is shut down")]
    Closed,

    /// A list filter does not compile, or fails on a record for a reason in the filter
    /// (division by zero, an invalid regex, a result that is not a bool).
    #[error("invalid filter: {reason}")]
    InvalidFilter { reason: String },

    /// A list query spent its evaluation budget before it was done.
    #[error(
        "the query was stopped after {budget_ms} ms of evaluation ({evaluated} records); \
         narrow it with an equality filter on an indexed field ({indexed}), as \
         `?field=value` or `record.field == \"value\"` in the filter, so that fewer \
         records are evaluated"
    )]
    QueryTooCostly {
        budget_ms: u64,
        evaluated: usize,
        /// The collection's `index` fields, comma-separated (or "this collection has
        /// none").
        indexed: String,
    },

    /// A record's own fields, one nested item, or one transaction's share of a log entry
    /// is over its size limit (`DbOptions::max_record_bytes` / `max_entry_bytes`).
    #[error("{what} is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// What is too large, naming its collection: "a record of notes (its own
        /// fields)", "an item of workflows.executions", "a transaction in one log entry".
        what: String,
        size: usize,
        limit: usize,
    },
}

/// A broken integrity rule: a stable code, the constraint, the fields and the record
/// in the way. (Cloneable: it travels from the committer to the transaction.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{code} on {collection} ({constraint}): {message}")]
pub struct Violation {
    pub code: ViolationCode,
    pub collection: String,
    /// The constraint's name (or the field, for references and schema errors).
    pub constraint: String,
    pub fields: Vec<String>,
    /// The record this one conflicts with, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicting: Option<String>,
    pub message: String,
    /// Per-field problems, for `validation_failed`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One schema complaint: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl From<Violation> for Error {
    fn from(v: Violation) -> Self {
        Error::Violation(Box::new(v))
    }
}

/// Stable error codes (part of the API contract; see docs/decisions/0004).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationCode {
    UniqueViolation,
    CheckViolation,
    ExclusionViolation,
    ReferenceViolation,
    ValidationFailed,
}

impl ViolationCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationCode::UniqueViolation => "unique_violation",
            ViolationCode::CheckViolation => "check_violation",
            ViolationCode::ExclusionViolation => "exclusion_violation",
            ViolationCode::ReferenceViolation => "reference_violation",
            ViolationCode::ValidationFailed => "validation_failed",
        }
    }
}

impl std::fmt::Display for ViolationCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stable code of every engine error: the API's contract (docs/decisions/0004), and
/// the seam the server maps to HTTP statuses with one exhaustive `match`. Deliberately not
/// `#[non_exhaustive]`: a new code that nobody maps must fail to compile, not answer 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    UniqueViolation,
    CheckViolation,
    ExclusionViolation,
    ReferenceViolation,
    ValidationFailed,
    VersionConflict,
    /// A revert would overwrite later changes.
    RevertConflict,
    NotFound,
    BadRequest,
    InvalidDefinition,
    InvalidFilter,
    QueryTooCostly,
    TooLarge,
    /// A transaction's reads kept changing under it.
    Contention,
    /// The store failed; nothing was written.
    Unavailable,
    /// The store did not confirm a write that may have landed.
    OutcomeUnknown,
    /// A fault of the database itself (damage, an unsafe store).
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UniqueViolation => "unique_violation",
            ErrorCode::CheckViolation => "check_violation",
            ErrorCode::ExclusionViolation => "exclusion_violation",
            ErrorCode::ReferenceViolation => "reference_violation",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::VersionConflict => "version_conflict",
            ErrorCode::RevertConflict => "revert_conflict",
            ErrorCode::NotFound => "not_found",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidDefinition => "invalid_definition",
            ErrorCode::InvalidFilter => "invalid_filter",
            ErrorCode::QueryTooCostly => "query_too_costly",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Contention => "contention",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::OutcomeUnknown => "outcome_unknown",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Codes compare with their text (`assert_eq!(e.code(), "too_large")`).
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<ViolationCode> for ErrorCode {
    fn from(code: ViolationCode) -> Self {
        match code {
            ViolationCode::UniqueViolation => ErrorCode::UniqueViolation,
            ViolationCode::CheckViolation => ErrorCode::CheckViolation,
            ViolationCode::ExclusionViolation => ErrorCode::ExclusionViolation,
            ViolationCode::ReferenceViolation => ErrorCode::ReferenceViolation,
            ViolationCode::ValidationFailed => ErrorCode::ValidationFailed,
        }
    }
}

impl Error {
    /// The stable code of the error, as the API reports it.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Violation(v) => v.code.into(),
            Error::VersionConflict { .. } => ErrorCode::VersionConflict,
            Error::RevertConflict { .. } => ErrorCode::RevertConflict,
            Error::NotFound { .. } | Error::UnknownCollection { .. } => ErrorCode::NotFound,
            Error::Invalid { .. } | Error::FutureSeq { .. } => ErrorCode::BadRequest,
            Error::InvalidDefinition { .. } => ErrorCode::InvalidDefinition,
            Error::TooManyRetries { .. } => ErrorCode::Contention,
            Error::Unavailable { .. } | Error::Closed => ErrorCode::Unavailable,
            Error::OutcomeUnknown { .. } => ErrorCode::OutcomeUnknown,
            Error::InvalidFilter { .. } => ErrorCode::InvalidFilter,
            Error::QueryTooCostly { .. } => ErrorCode::QueryTooCostly,
            Error::TooLarge { .. } => ErrorCode::TooLarge,
            // A store that fails a read or write is unavailable, and may come back; what
            // it answers about the data (a missing or existing key) is not an outage.
            Error::Store(e) if store_unavailable(e) => ErrorCode::Unavailable,
            Error::UnsafeStore { .. }
            | Error::Store(_)
            | Error::Corrupt { .. }
            | Error::LogTruncated { .. }
            | Error::TornHead { .. } => ErrorCode::Internal,
        }
    }

    /// Whether the store itself failed (an outage), not what it said about the data.
    pub fn is_store_outage(&self) -> bool {
        matches!(self, Error::Store(e) if store_unavailable(e))
    }

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

fn store_unavailable(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    !matches!(
        e,
        E::NotFound { .. }
            | E::AlreadyExists { .. }
            | E::Precondition { .. }
            | E::NotModified { .. }
            | E::NotSupported { .. }
            | E::NotImplemented { .. }
            | E::InvalidPath { .. }
            | E::UnknownConfigurationKey { .. }
    )
}
