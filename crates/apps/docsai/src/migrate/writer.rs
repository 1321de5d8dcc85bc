//! The writing half of `bucketbase migrate sqlite`: the documents of [`Source::read_table`]
//! written into the store, then the closing check ([`super::check`]).
//!
//! 1. The source is read on a blocking thread (it is SQLite) into a bounded channel; the
//!    writer takes up to `batch` documents at a time.
//! 2. A batch is written as one transaction per owner (a record's `created_by` is its
//!    transaction's actor), with the audit source `migration:<run id>`; a transaction
//!    also stops before it would outgrow one log entry. Django's `created_at` /
//!    `updated_at` are kept.
//! 3. Ids are derived from (table, primary key), so a record that is already there was
//!    written by an earlier run: it is left as it is. A second run writes nothing; an
//!    interrupted run resumes where it stopped. (It does not sync later edits of the
//!    source.)
//! 4. A transaction that fails is retried one record at a time, and a record that still
//!    fails (one pointing at a row of its own table that comes later) once more after
//!    every table; what fails then is reported, never skipped silently.
//! 5. Secret values are encrypted by the engine wherever the definition declares a
//!    secret: a top-level field, a place inside one, or a nested item's. A column the
//!    mapping calls secret must land at such a place; otherwise the run is refused
//!    rather than store the value in clear.
//! 6. A nested level the collection does not declare (an execution's logs, until the
//!    engine takes two levels) is left out and reported: the closing check then fails.
//!
//! A dry run does all of it in a trial on the current state (validated like commits,
//! never committed).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bucketbase_engine::collection::{Compiled, Source as AuditSource};
use bucketbase_engine::{CollectionName, Database, RecordId, Trial, Txn, TxnMeta};
use serde_json::{Value, json};
use uuid::Uuid;

use super::check::{Check, Failure, Planned};
use super::mapping::Mapping;
use super::progress::Progress;
use super::reader::{Document, ReadOptions, TableStats};
use super::source::{CheckReport, Source};

/// The actor (and so `created_by`) of records no one owns.
pub const UNOWNED: &str = "migration";

/// Options of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--owner`: every record belongs to this uuid.
    pub owner: Option<Uuid>,
    pub dry_run: bool,
    /// Records per transaction, at most.
    pub batch: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            owner: None,
            dry_run: false,
            batch: 200,
        }
    }
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Read(#[from] super::Error),
    #[error(transparent)]
    Engine(#[from] bucketbase_engine::Error),
    #[error(
        "{collection}: {path} is secret in the mapping, but the collection's definition does not seal that place (it would be stored in clear): declare it in `secret`"
    )]
    SecretInClear { collection: String, path: String },
    #[error("{0}")]
    Other(String),
}

/// What the reading thread sends.
enum Msg {
    Start { table: String, rows: u64 },
    Doc(Box<Document>),
    Stats(TableStats),
    Counts(BTreeMap<String, u64>, CheckReport),
}

/// Where a run writes: the database, or a trial on it.
enum Target<'a> {
    Db(&'a Database),
    Trial(Box<Trial>),
}

impl Target<'_> {
    async fn write<T>(
        &mut self,
        meta: &TxnMeta,
        f: impl FnMut(&mut Txn) -> bucketbase_engine::Result<T>,
    ) -> bucketbase_engine::Result<T> {
        match self {
            Target::Db(db) => Ok(db.transact(meta, f).await?.value),
            Target::Trial(trial) => trial.step(f),
        }
    }
}

/// Runs a migration (see the module docs) and its closing check.
pub async fn run(
    db: &Database,
    path: &Path,
    mapping: &Mapping,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Check, RunError> {
    let run_id = db.new_id().to_string();
    let source = AuditSource::Migration(run_id.clone());
    let (tx_docs, mut rx) = tokio::sync::mpsc::channel::<Result<Msg, RunError>>(1024);
    let reader = {
        let (path, mapping, owner) = (PathBuf::from(path), mapping.clone(), options.owner);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = read(&path, &mapping, owner, &tx_docs) {
                let _ = tx_docs.blocking_send(Err(e));
            }
        })
    };
    let mut target = if options.dry_run {
        Target::Trial(Box::new(db.trial(&TxnMeta::new(UNOWNED, source.clone()))))
    } else {
        Target::Db(db)
    };
    let snapshot = db.snapshot();
    let mut planned = Planned::default();
    let mut failures: Vec<(Document, String)> = Vec::new();
    let mut stats = Vec::new();
    let mut counts = (BTreeMap::new(), CheckReport::default());
    let mut batch: Vec<Document> = Vec::with_capacity(options.batch);
    let mut table = String::new();
    while let Some(msg) = rx.recv().await {
        match msg? {
            Msg::Start { table: t, rows } => {
                progress.start(&t, rows);
                table = t;
            }
            Msg::Doc(doc) => {
                let def = snapshot
                    .definition(&collection(&doc.collection)?)
                    .cloned()
                    .ok_or_else(|| RunError::Other(format!("no collection {}", doc.collection)))?;
                let doc = prepare(&def, *doc, mapping, &mut planned)?;
                batch.push(doc);
                if batch.len() >= options.batch {
                    write_batch(
                        &mut target,
                        &source,
                        &mut batch,
                        &mut failures,
                        &mut planned,
                    )
                    .await;
                    progress.advance(&table, options.batch as u64);
                }
            }
            Msg::Stats(s) => {
                let n = batch.len() as u64;
                write_batch(
                    &mut target,
                    &source,
                    &mut batch,
                    &mut failures,
                    &mut planned,
                )
                .await;
                progress.advance(&table, n);
                stats.push(s);
            }
            Msg::Counts(rows, report) => counts = (rows, report),
        }
    }
    reader
        .await
        .map_err(|e| RunError::Other(format!("reading thread: {e}")))?;
    // Records that pointed at rows written later: once more, one at a time.
    let mut failed = Vec::new();
    for (doc, _) in std::mem::take(&mut failures) {
        if let Err(e) = write_one(&mut target, &source, &doc, &mut planned).await {
            failed.push(Failure {
                table: doc.table.clone(),
                key: doc.key.clone(),
                error: e.to_string(),
            });
        }
    }
    let stored = match &target {
        Target::Db(db) => Some(db.snapshot()),
        Target::Trial(_) => None,
    };
    Ok(super::check::check(
        run_id,
        options.dry_run,
        mapping,
        &stats,
        counts,
        planned,
        failed,
        stored.as_deref(),
    ))
}

fn collection(name: &str) -> Result<CollectionName, RunError> {
    CollectionName::parse(name).map_err(|e| RunError::Other(format!("{name}: {e}")))
}

/// The reading thread: every top-level table in mapping order, then the row counts.
fn read(
    path: &Path,
    mapping: &Mapping,
    owner: Option<Uuid>,
    out: &tokio::sync::mpsc::Sender<Result<Msg, RunError>>,
) -> Result<(), RunError> {
    let source = Source::open(path)?;
    let report = source.check(mapping)?;
    let options = ReadOptions { owner };
    let send = |m: Msg| {
        out.blocking_send(Ok(m))
            .map_err(|_| RunError::Other("the writer stopped".into()))
    };
    let mut rows = BTreeMap::new();
    for t in mapping.all_tables() {
        rows.insert(t.to_string(), source.count(t)?);
    }
    for t in &mapping.tables {
        send(Msg::Start {
            table: t.table.clone(),
            rows: rows[&t.table],
        })?;
        let stats = source.read_table(mapping, t, &options, |doc| {
            out.blocking_send(Ok(Msg::Doc(Box::new(doc))))
                .map_err(|_| super::Error::Source("the writer stopped".into()))
        })?;
        send(Msg::Stats(stats))?;
    }
    send(Msg::Counts(rows, report))?;
    Ok(())
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Readies a document for `def`: nested levels it does not declare left out (counted),
/// and every value the mapping calls secret checked to land where `def` seals it.
fn prepare(
    def: &Compiled,
    mut doc: Document,
    mapping: &Mapping,
    planned: &mut Planned,
) -> Result<Document, RunError> {
    let declared = def.def.to_json();
    let table = mapping
        .tables
        .iter()
        .find(|t| t.table == doc.table)
        .expect("documents come from mapped tables");
    for n in &table.nested {
        for g in &n.nested {
            if declared
                .pointer(&format!(
                    "/nested/{}/nested/{}",
                    escape(&n.field),
                    escape(&g.field)
                ))
                .is_some()
            {
                continue;
            }
            for item in doc
                .record
                .get_mut(&n.field)
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(Value::Array(sub)) =
                    item.as_object_mut().and_then(|i| i.remove(&g.field))
                {
                    *planned.left_out.entry(g.table.clone()).or_default() += sub.len() as u64;
                }
            }
            doc.secrets
                .retain(|p| !p.contains(&format!("/{}/", escape(&g.field))));
        }
    }
    let record = Value::Object(std::mem::take(&mut doc.record));
    if let Some(pointer) = doc.secrets.iter().find(|p| !def.seals(&record, p)) {
        return Err(RunError::SecretInClear {
            collection: doc.collection.clone(),
            path: pointer.clone(),
        });
    }
    doc.record = match record {
        Value::Object(m) => m,
        _ => unreachable!("a record stays an object"),
    };
    Ok(doc)
}

fn meta(source: &AuditSource, doc: &Document) -> TxnMeta {
    TxnMeta::new(doc.created_by.as_deref().unwrap_or(UNOWNED), source.clone())
}

/// Writes one document in `tx`: `false` when it is already there.
fn write_doc(tx: &mut Txn, doc: &Document) -> bucketbase_engine::Result<bool> {
    // Both were checked when the document arrived (a collection of the store, a uuid).
    let c = CollectionName::parse(&doc.collection).expect("a checked collection name");
    let id = RecordId::parse(&doc.id).expect("a uuid");
    if tx.get(&c, &id).is_some() {
        return Ok(false);
    }
    let mut input = doc.record.clone();
    input.insert("id".into(), json!(doc.id));
    let (id, mut created) = tx.create(&c, Value::Object(input))?;
    // Django's own times, not the migration's.
    if doc.created_at.is_some() || doc.updated_at.is_some() {
        for (field, value) in [
            ("created_at", &doc.created_at),
            ("updated_at", &doc.updated_at),
        ] {
            if let Some(v) = value {
                created[field] = json!(v);
            }
        }
        tx.put(&c, &id, &created)?;
    }
    Ok(true)
}

async fn write_one(
    target: &mut Target<'_>,
    source: &AuditSource,
    doc: &Document,
    planned: &mut Planned,
) -> bucketbase_engine::Result<()> {
    let written = target
        .write(&meta(source, doc), |tx| write_doc(tx, doc))
        .await?;
    planned.note(doc, written);
    Ok(())
}

/// Writes and empties `batch`: one transaction per owner, each within one log entry; a
/// failing transaction is retried record by record, and records that still fail are
/// kept in `failures` for a last pass.
async fn write_batch(
    target: &mut Target<'_>,
    source: &AuditSource,
    batch: &mut Vec<Document>,
    failures: &mut Vec<(Document, String)>,
    planned: &mut Planned,
) {
    let mut groups: HashMap<Option<String>, Vec<Document>> = HashMap::new();
    for doc in batch.drain(..) {
        groups.entry(doc.created_by.clone()).or_default().push(doc);
    }
    let mut groups: Vec<_> = groups.into_values().collect();
    groups.sort_by(|a, b| a[0].id.cmp(&b[0].id));
    for docs in groups {
        let meta = meta(source, &docs[0]);
        let mut start = 0;
        while start < docs.len() {
            let window = &docs[start..];
            let result = target
                .write(&meta, |tx| {
                    let mut outcome = Vec::new();
                    for doc in window {
                        let reserve = 2 * serde_json::to_string(&doc.record).map_or(0, |s| s.len());
                        if !outcome.is_empty() && !tx.fits_in_entry(reserve) {
                            break;
                        }
                        outcome.push(write_doc(tx, doc)?);
                    }
                    Ok(outcome)
                })
                .await;
            match result {
                Ok(outcome) => {
                    for (doc, written) in window.iter().zip(&outcome) {
                        planned.note(doc, *written);
                    }
                    start += outcome.len();
                }
                Err(_) => {
                    for doc in window {
                        if let Err(e) = write_one(target, source, doc, planned).await {
                            failures.push((doc.clone(), e.to_string()));
                        }
                    }
                    start = docs.len();
                }
            }
        }
    }
}
