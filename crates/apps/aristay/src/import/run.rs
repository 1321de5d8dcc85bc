//! Running a booking import: read the workbook, map its rows, try every row against the
//! database, then commit what the mode allows, with an import-log record.
//!
//! Every row is first tried on its own (an engine [`Trial`](bucketbase_engine::Trial)):
//! on the state the rows before it left, with the automation, and against every
//! constraint. So a dry run names exactly the rows that would fail (a stay overlapping
//! another row of the same file included), and a commit then writes the good rows in one
//! transaction: all of them or none (`all_or_nothing`), or every good one (`partial`).
//! Rows are upserted by `(source, external_id)`; one that matches its booking exactly is
//! `unchanged`. Every audit event carries the source `import:<log id>` (automatic tasks:
//! `automation`), and the import-log record lands in the same transaction as the rows.
//!
//! What one import may cost is bounded. The rows and the log go in one transaction, so
//! in one log entry: while the rows are staged (hooks included) the transaction's size is
//! measured ([`Txn::log_len`]), and an import that would pass the engine's
//! `max_entry_bytes` is refused (413 `too_large`, nothing written) saying how many rows
//! fit, before more memory is spent. Partial imports are refused the same way rather than
//! split. The report and the log keep at most [`MAX_ERRORS`] row errors and
//! [`MAX_ERROR_BYTES`] of them, and the report at most [`MAX_RESULTS`] row results; the
//! rest are counted (`errors_truncated`, `results_truncated`), never dropped silently.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use bucketbase_engine::collection::keys::is_live;
use bucketbase_engine::{CollectionName, Database, Error, RecordId, Txn, TxnMeta};
use serde_json::{Map, Value, json};
use sha2::Digest;

use super::mapping::{BookingRow, Mapping, RowError, parse_rows};
pub use super::report::{
    Counts, ImportError, ImportStatus, Mode, Outcome, Report, Request, RowResult,
};
use super::xlsx::read_workbook;
use crate::automation::NO_AUTOMATION;
use crate::coll;

/// Most row errors kept in a report and in the import log.
pub const MAX_ERRORS: usize = 1000;
/// Most bytes of row errors (as JSON) kept in a report and in the import log.
pub const MAX_ERROR_BYTES: usize = 96 * 1024;
/// Most per-row results in a report.
pub const MAX_RESULTS: usize = 10_000;

/// The first errors that fit [`MAX_ERRORS`] and [`MAX_ERROR_BYTES`], each
/// [bounded](RowError::bounded), and how many were left out.
fn cap_errors(errors: Vec<RowError>) -> (Vec<RowError>, usize) {
    let total = errors.len();
    let mut bytes = 0;
    let kept: Vec<RowError> = errors
        .into_iter()
        .take(MAX_ERRORS)
        .map(RowError::bounded)
        .take_while(|e| {
            bytes += bucketbase_engine::log::json_len(e) + 1;
            bytes <= MAX_ERROR_BYTES
        })
        .collect();
    let left_out = total - kept.len();
    (kept, left_out)
}

/// Why a commit attempt did not land.
#[derive(Debug)]
enum CommitError {
    Engine(Error),
    /// Only `rows_fit` of the rows fit in one log entry of `limit` bytes.
    TooLarge {
        rows_fit: usize,
        limit: usize,
    },
}

impl CommitError {
    /// The import error for a commit that did not land; `rows` were to be written.
    fn refusal(self, rows: usize) -> ImportError {
        match self {
            CommitError::Engine(e) => e.into(),
            CommitError::TooLarge { rows_fit, limit } => ImportError::TooLarge {
                rows,
                rows_fit,
                limit,
            },
        }
    }
}

impl From<Error> for CommitError {
    fn from(e: Error) -> Self {
        CommitError::Engine(e)
    }
}

/// Progress of a long import: `(rows tried, rows in all)`.
pub type Progress = Arc<dyn Fn(usize, usize) + Send + Sync>;

/// Runs an import as `actor`. The CPU-bound parts (reading the workbook, trying the
/// rows) run on the blocking pool.
pub async fn import_bookings(
    db: &Arc<Database>,
    actor: &str,
    request_id: Option<&str>,
    request: Request,
    progress: Progress,
) -> Result<Report, ImportError> {
    let started = Instant::now();
    let request = Arc::new(request);
    let prepared = {
        let (db, request) = (db.clone(), request.clone());
        blocking(move || prepare(&db, &request)).await??
    };
    let prepared = Arc::new(prepared);
    tracing::debug!(
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "import: workbook read and mapped"
    );

    let log_id = db.new_id();
    let mut meta = TxnMeta::new(actor, format!("import:{log_id}"));
    if let Some(id) = request_id {
        meta = meta.with_request_id(id);
    }
    if !request.run_automations {
        meta = meta.with_tag(NO_AUTOMATION);
    }
    let run = Run {
        db,
        meta,
        log_id,
        request: &request,
        prepared: &prepared,
        started,
    };

    // Most files are clean: write every row in one transaction first, and only when a
    // row breaks a rule try the rows one by one to name every bad one.
    if !request.dry_run
        && !prepared.candidates.is_empty()
        && (request.mode == Mode::Partial || prepared.errors.is_empty())
    {
        let results = prepared
            .candidates
            .iter()
            .map(|c| RowResult {
                row: c.row,
                outcome: Outcome::Created,
                booking_id: None,
            })
            .collect();
        let good: Vec<&Candidate> = prepared.candidates.iter().collect();
        match run
            .commit(results, prepared.errors.clone(), &good, true)
            .await
        {
            Ok(report) => {
                progress(good.len(), good.len());
                return Ok(report);
            }
            // A row broke a rule (or made a record too large): name it, trying row by row.
            Err(CommitError::Engine(Error::Violation(_) | Error::TooLarge { .. })) => {}
            Err(e) => return Err(e.refusal(good.len())),
        }
    }

    // A concurrent change between the trial and the commit makes the commit fail; the
    // rows are then tried again on the newer state.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let tried = {
            let (db, meta, prepared, request, progress) = (
                db.clone(),
                run.meta.clone(),
                prepared.clone(),
                request.clone(),
                progress.clone(),
            );
            blocking(move || try_rows(&db, &meta, &prepared, &request.mapping, &*progress)).await?
        };
        tracing::debug!(
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "import: rows tried"
        );
        let write_rows = !request.dry_run
            && (request.mode == Mode::Partial || tried.errors.is_empty())
            && !tried.good.is_empty();
        let good: Vec<&Candidate> = tried
            .good
            .iter()
            .map(|&i| &prepared.candidates[i])
            .collect();
        match run
            .commit(tried.results, tried.errors, &good, write_rows)
            .await
        {
            Err(CommitError::Engine(Error::Violation(_))) if attempt < 3 => continue,
            outcome => return outcome.map_err(|e| e.refusal(good.len())),
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ImportError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ImportError::Internal(e.to_string()))
}

/// The file read and mapped, properties resolved.
struct Prepared {
    rows: usize,
    candidates: Vec<Candidate>,
    errors: Vec<RowError>,
    file_sha256: String,
}

fn prepare(db: &Database, request: &Request) -> Result<Prepared, ImportError> {
    let sheet = read_workbook(&request.bytes, &request.limits)?;
    let parsed = parse_rows(&sheet, &request.mapping)?;
    let mut errors = parsed.errors;
    let candidates = resolve(db, parsed.rows, &request.mapping, &mut errors);
    Ok(Prepared {
        rows: sheet.rows.len(),
        candidates,
        errors,
        file_sha256: hex::encode(sha2::Sha256::digest(&request.bytes)),
    })
}

/// Every row tried on the trial state.
struct Tried {
    /// Indexes of the candidates that passed, and their outcomes.
    good: Vec<usize>,
    results: Vec<RowResult>,
    errors: Vec<RowError>,
}

fn try_rows(
    db: &Database,
    meta: &TxnMeta,
    prepared: &Prepared,
    mapping: &Mapping,
    progress: &(dyn Fn(usize, usize) + Send + Sync),
) -> Tried {
    let bookings = coll("bookings");
    let mut trial = db.trial(meta);
    let total = prepared.candidates.len();
    let mut good = Vec::with_capacity(total);
    let mut errors = prepared.errors.clone();
    let mut results = Vec::with_capacity(total);
    for (i, c) in prepared.candidates.iter().enumerate() {
        match trial.step(|tx| upsert(tx, &bookings, c)) {
            Ok((outcome, id)) => {
                good.push(i);
                results.push(RowResult {
                    row: c.row,
                    outcome,
                    booking_id: Some(id.to_string()),
                });
            }
            Err(e) => errors.push(row_error(c.row, &e, mapping)),
        }
        if i % 64 == 63 || i + 1 == total {
            progress(i + 1, total);
        }
    }
    errors.sort_by_key(|e| e.row);
    Tried {
        good,
        results,
        errors,
    }
}

/// A mapped row with its property resolved.
#[derive(Debug)]
struct Candidate {
    row: u32,
    fields: Map<String, Value>,
}

/// Resolves property names to ids and refuses rows that repeat an earlier row's
/// `(source, external_id)`.
fn resolve(
    db: &Database,
    rows: Vec<BookingRow>,
    mapping: &Mapping,
    errors: &mut Vec<RowError>,
) -> Vec<Candidate> {
    let snap = db.snapshot();
    let properties = coll("properties");
    let by_name = |name: &str| -> Option<String> {
        snap.find_live(&properties, "name", &json!(name))
            .first()
            .map(|(id, _)| id.to_string())
    };
    let header = |field: &str| mapping.columns.get(field).cloned();
    let mut cache: HashMap<String, Option<String>> = HashMap::new();
    let mut seen: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let property = cache
            .entry(row.property.clone())
            .or_insert_with(|| by_name(&row.property))
            .clone();
        let Some(property_id) = property else {
            errors.push(
                RowError {
                    row: row.row,
                    column: header("property"),
                    field: Some("property".into()),
                    message: format!("no property named {:?}", row.property),
                    code: "unknown_property".into(),
                }
                .bounded(),
            );
            continue;
        };
        let mut fields = row.fields;
        fields.insert("property_id".into(), json!(property_id));
        let key = (
            source_of(&fields).to_string(),
            fields
                .get("external_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        );
        if !key.1.is_empty()
            && let Some(first) = seen.get(&key)
        {
            errors.push(
                RowError {
                    row: row.row,
                    column: header("external_id"),
                    field: Some("external_id".into()),
                    message: format!(
                        "row {first} already has source {:?} and external_id {:?}",
                        key.0, key.1
                    ),
                    code: "duplicate_row".into(),
                }
                .bounded(),
            );
            continue;
        }
        seen.insert(key, row.row);
        out.push(Candidate {
            row: row.row,
            fields,
        });
    }
    out
}

/// The booking's source; what the schema defaults to when the file and mapping give none.
fn source_of(fields: &Map<String, Value>) -> &str {
    fields
        .get("source")
        .and_then(Value::as_str)
        .unwrap_or("direct")
}

/// Creates the row's booking, or updates the live booking with its `(source,
/// external_id)`, or leaves it when nothing differs.
fn upsert(
    tx: &mut Txn,
    bookings: &CollectionName,
    c: &Candidate,
) -> bucketbase_engine::Result<(Outcome, RecordId)> {
    let source = source_of(&c.fields);
    let existing = match c.fields.get("external_id") {
        Some(ext) => tx
            .find(bookings, "external_id", ext)?
            .into_iter()
            .find(|(_, b)| is_live(b) && b.get("source").and_then(Value::as_str) == Some(source)),
        None => None,
    };
    let Some((id, current)) = existing else {
        let id = tx.insert(bookings, Value::Object(c.fields.clone()))?;
        return Ok((Outcome::Created, id));
    };
    let changed: Map<String, Value> = c
        .fields
        .iter()
        .filter(|(k, v)| current.get(k.as_str()) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if changed.is_empty() {
        return Ok((Outcome::Unchanged, id));
    }
    tx.update(bookings, &id, &Value::Object(changed), None)?;
    Ok((Outcome::Updated, id))
}

/// A refused row, naming the sheet's column where the engine names a field.
fn row_error(row: u32, e: &Error, mapping: &Mapping) -> RowError {
    let field = match e {
        Error::Violation(v) => v
            .fields
            .iter()
            .find(|f| mapping.columns.contains_key(f.as_str()))
            .or(v.fields.first())
            .cloned(),
        _ => None,
    };
    let field = field.map(|f| {
        if f == "property_id" {
            "property".to_string()
        } else {
            f
        }
    });
    RowError {
        row,
        column: field.as_ref().and_then(|f| mapping.columns.get(f).cloned()),
        field,
        message: e.to_string(),
        code: e.code().to_string(),
    }
    .bounded()
}

fn count(results: &[RowResult]) -> Counts {
    let mut counts = Counts::default();
    for r in results {
        match r.outcome {
            Outcome::Created => counts.created += 1,
            Outcome::Updated => counts.updated += 1,
            Outcome::Unchanged => counts.unchanged += 1,
            Outcome::Failed => counts.failed += 1,
            Outcome::Skipped => counts.skipped += 1,
        }
    }
    counts
}

/// One import run: what every commit attempt needs.
struct Run<'a> {
    db: &'a Database,
    meta: TxnMeta,
    log_id: RecordId,
    request: &'a Request,
    prepared: &'a Prepared,
    started: Instant,
}

impl Run<'_> {
    /// Commits the good rows (when `write_rows`) and the import log in one transaction,
    /// and answers the report. `results` are the good rows' (expected) outcomes; the
    /// failed rows' and the status follow from `errors` and `write_rows`.
    async fn commit(
        &self,
        results: Vec<RowResult>,
        errors: Vec<RowError>,
        good: &[&Candidate],
        write_rows: bool,
    ) -> Result<Report, CommitError> {
        let request = self.request;
        let status = match (request.dry_run, errors.is_empty(), write_rows) {
            (true, _, _) => ImportStatus::DryRun,
            (false, true, _) => ImportStatus::Committed,
            (false, false, true) => ImportStatus::Partial,
            (false, false, false) => ImportStatus::Rejected,
        };
        let mut results: Vec<RowResult> = results
            .into_iter()
            .map(|mut r| {
                if !request.dry_run && !write_rows {
                    r.outcome = Outcome::Skipped;
                    r.booking_id = None;
                }
                r
            })
            .chain(errors.iter().map(|e| RowResult {
                row: e.row,
                outcome: Outcome::Failed,
                booking_id: None,
            }))
            .collect();
        results.sort_by_key(|r| r.row);
        results.dedup_by_key(|r| r.row);
        let (errors, errors_truncated) = cap_errors(errors);
        let mut report = Report {
            log_id: self.log_id.to_string(),
            status,
            dry_run: request.dry_run,
            mode: request.mode,
            rows: self.prepared.rows,
            counts: count(&results),
            errors,
            errors_truncated,
            results,
            results_truncated: 0,
            duration_ms: 0.0,
        };
        // Room for the log record and its audit event (which repeats its fields).
        let reserve = 2 * bucketbase_engine::log::json_len(&report.errors) + 4096;
        let bookings = coll("bookings");
        let logs = coll("booking_import_logs");
        let transaction = self.db.transact(&self.meta, |tx| {
            if write_rows {
                let mut done = HashMap::with_capacity(good.len());
                for (i, c) in good.iter().enumerate() {
                    done.insert(c.row, upsert(tx, &bookings, c)?);
                    // Count what the automation adds too, and stop at the entry limit.
                    tx.run_hooks()?;
                    if !tx.fits_in_entry(reserve) {
                        return Err(CommitError::TooLarge {
                            rows_fit: i,
                            limit: tx.max_entry_bytes(),
                        });
                    }
                }
                for r in report.results.iter_mut() {
                    if let Some((outcome, id)) = done.get(&r.row) {
                        r.outcome = *outcome;
                        r.booking_id = Some(id.to_string());
                    }
                }
                report.counts = count(&report.results);
            }
            report.duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
            let mut log = json!({
                "id": self.log_id.as_str(),
                "file_name": request.file_name,
                "file_sha256": self.prepared.file_sha256,
                "file_size": request.bytes.len(),
                "mode": request.mode,
                "dry_run": request.dry_run,
                "run_automations": request.run_automations,
                "status": report.status,
                "rows": report.rows,
                "counts": report.counts,
                "errors": report.errors,
                "errors_truncated": report.errors_truncated,
                "duration_ms": report.duration_ms,
            });
            if let Some(t) = &request.template_id {
                log["template_id"] = json!(t);
            }
            tx.create(&logs, log)?;
            tracing::debug!(
                ms = self.started.elapsed().as_secs_f64() * 1000.0,
                "import: rows staged"
            );
            Ok::<_, CommitError>(())
        });
        // The transaction's closure runs thousands of record operations in one go: on a
        // multi-threaded runtime, tell it so, and it moves other requests off this worker.
        let handle = tokio::runtime::Handle::current();
        match handle.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| handle.block_on(transaction))
            }
            _ => transaction.await,
        }?;
        tracing::debug!(
            ms = self.started.elapsed().as_secs_f64() * 1000.0,
            status = report.status.as_str(),
            "import: committed"
        );
        if report.results.len() > MAX_RESULTS {
            report.results_truncated = report.results.len() - MAX_RESULTS;
            report.results.truncate(MAX_RESULTS);
        }
        Ok(report)
    }
}
