//! What an import is asked ([`Request`], [`Mode`]) and what it answers ([`Report`] with
//! its [`ImportStatus`], [`Counts`] and per-row [`RowResult`]s, or an [`ImportError`]):
//! the vocabulary the HTTP route, the CLI and the import-log record share. How an import
//! runs is in [`super::run`].

use bucketbase_engine::Error;
use serde::{Deserialize, Serialize};

use super::mapping::{Mapping, MappingError, RowError};
use super::xlsx::{FileError, Limits};

/// How much of a file with bad rows is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Any bad row: nothing is written.
    #[default]
    AllOrNothing,
    /// The good rows are written, the bad ones reported.
    Partial,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all_or_nothing" => Ok(Mode::AllOrNothing),
            "partial" => Ok(Mode::Partial),
            other => Err(format!(
                "mode must be all_or_nothing or partial, not {other:?}"
            )),
        }
    }
}

/// One import.
#[derive(Debug, Clone)]
pub struct Request {
    pub file_name: String,
    pub bytes: Vec<u8>,
    pub mapping: Mapping,
    /// The saved template the mapping came from, if any.
    pub template_id: Option<String>,
    pub dry_run: bool,
    pub mode: Mode,
    pub run_automations: bool,
    pub limits: Limits,
}

/// What happened to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
    Failed,
    /// A good row of an all-or-nothing import that had bad rows: not written.
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct RowResult {
    pub row: u32,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// How an import ended (the `status` of its report and of its import-log record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    /// Every row checked, nothing written.
    DryRun,
    /// Every row was fine and written.
    Committed,
    /// Some rows failed; the good ones were written (mode `partial`).
    Partial,
    /// Some rows failed; nothing was written (mode `all_or_nothing`).
    Rejected,
}

impl ImportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportStatus::DryRun => "dry_run",
            ImportStatus::Committed => "committed",
            ImportStatus::Partial => "partial",
            ImportStatus::Rejected => "rejected",
        }
    }
}

impl std::fmt::Display for ImportStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer, and (without `results`) the import-log record.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub log_id: String,
    pub status: ImportStatus,
    pub dry_run: bool,
    pub mode: Mode,
    pub rows: usize,
    pub counts: Counts,
    /// The first row errors, in row order (see [`MAX_ERRORS`], [`MAX_ERROR_BYTES`]).
    pub errors: Vec<RowError>,
    /// Row errors left out of `errors`.
    pub errors_truncated: usize,
    /// The first rows' results, in row order (see [`MAX_RESULTS`]).
    pub results: Vec<RowResult>,
    /// Row results left out of `results`.
    pub results_truncated: usize,
    pub duration_ms: f64,
}

/// Why an import could not run at all (row problems are in the [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error(transparent)]
    Engine(#[from] Error),
    /// The rows to write would not fit in one log entry (`DbOptions::max_entry_bytes`).
    #[error(
        "the {rows} rows to write do not fit in one transaction (a log entry holds at most \
         {limit} bytes); the first {rows_fit} rows fit: split the file and import the parts \
         one after another"
    )]
    TooLarge {
        rows: usize,
        rows_fit: usize,
        limit: usize,
    },
    #[error("the import stopped unexpectedly: {0}")]
    Internal(String),
}
