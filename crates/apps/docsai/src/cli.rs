//! docsai's commands: `bucketbase import postman FILE --owner UUID [--dry-run]` and
//! `bucketbase migrate sqlite DB --mapping FILE [--dry-run] [--owner UUID]`.
//!
//! The `bucketbase` command knows them only through the `App` trait: [`commands`] gives
//! it the `import` and `migrate` groups, and [`run`] runs the matches against the
//! database the CLI opens (docsai's definitions installed). Progress goes to stderr
//! (hidden when it is not a terminal), results to stdout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use bucketbase_engine::{Database, TxnMeta};
use bucketbase_server::app::OpenDatabase;
use clap::{FromArgMatches, Subcommand};
use uuid::Uuid;

use crate::api_collections::{self, ImportError};
use crate::migrate::{self, Mapping};
use crate::postman::Limits;

/// docsai's subcommands of `bucketbase import`.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import a Postman collection file (v2.0 / v2.1) into api_collections; a re-import
    /// (same _postman_id, else same name) updates it in place. Exit 0 when imported, 2
    /// when the file cannot be used.
    Postman {
        /// The collection file.
        file: PathBuf,
        /// The uuid of the SuperAdmin the collection belongs to (docsai records are
        /// owner-scoped).
        #[arg(long)]
        owner: Uuid,
        /// Report created / updated / unchanged without writing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// docsai's subcommands of `bucketbase migrate`.
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Move a Django SQLite database into the collections through a mapping file (the
    /// source is opened read-only). Ids are deterministic, so a second run writes
    /// nothing new and an interrupted run resumes. Exit 0 when the closing check
    /// matches, 1 on a mismatch, 2 when the database or mapping cannot be used.
    Sqlite {
        /// The SQLite database (db.sqlite3).
        db: PathBuf,
        /// The mapping (TOML; docsai's: crates/apps/docsai/migrations/docsai.toml).
        #[arg(long)]
        mapping: PathBuf,
        /// Read, check and report without writing.
        #[arg(long)]
        dry_run: bool,
        /// Give every record to this uuid, whatever the mapping says.
        #[arg(long)]
        owner: Option<Uuid>,
        /// Records per transaction (at most; a transaction also stays within the
        /// log entry size limit).
        #[arg(long, default_value_t = 200)]
        batch: usize,
        /// Print the closing report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The command groups docsai adds to `bucketbase`.
pub fn commands() -> Vec<clap::Command> {
    let import = ImportCommand::augment_subcommands(clap::Command::new("import"));
    let migrate = MigrateCommand::augment_subcommands(clap::Command::new("migrate"));
    vec![
        import.about("Import data into the app's collections"),
        migrate.about("Move another database into the app's collections"),
    ]
}

/// Runs a docsai command: `matches` are those of the `group`.
pub async fn run(
    group: &str,
    matches: &clap::ArgMatches,
    open: OpenDatabase,
) -> anyhow::Result<ExitCode> {
    match group {
        "import" => import(ImportCommand::from_arg_matches(matches)?, open).await,
        "migrate" => migrate_sqlite(MigrateCommand::from_arg_matches(matches)?, open).await,
        _ => anyhow::bail!("docsai has no {group} command"),
    }
}

async fn close(db: Arc<Database>) {
    if let Ok(db) = Arc::try_unwrap(db) {
        db.close().await;
    }
}

async fn import(command: ImportCommand, open: OpenDatabase) -> anyhow::Result<ExitCode> {
    let ImportCommand::Postman {
        file,
        owner,
        dry_run,
    } = command;
    let limit = Limits::default().max_bytes;
    let size = std::fs::metadata(&file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    if size > limit as u64 {
        eprintln!(
            "error: {} is {size} bytes; the limit is {limit} bytes",
            file.display()
        );
        return Ok(ExitCode::from(2));
    }
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let imported = match crate::postman::import(&bytes, &Limits::default()) {
        Ok((_, imported)) => imported,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return Ok(ExitCode::from(2));
        }
    };
    let db = open().await?;
    let key = db.secret_key().cloned();
    let meta = TxnMeta::new(owner.to_string(), "cli");
    let owner = owner.to_string();
    let report = if dry_run {
        db.trial(&meta)
            .step(|tx| api_collections::import(tx, &owner, imported, key.as_deref(), true))
    } else {
        db.transact(&meta, |tx| {
            api_collections::import(tx, &owner, imported.clone(), key.as_deref(), false)
        })
        .await
        .map(|c| c.value)
    };
    close(db).await;
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {}", ImportError::from(e));
            return Ok(ExitCode::from(2));
        }
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

async fn migrate_sqlite(command: MigrateCommand, open: OpenDatabase) -> anyhow::Result<ExitCode> {
    let MigrateCommand::Sqlite {
        db: source,
        mapping,
        dry_run,
        owner,
        batch,
        json,
    } = command;
    let text = std::fs::read_to_string(&mapping)
        .with_context(|| format!("reading {}", mapping.display()))?;
    let mapping = match Mapping::from_toml(&text) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    // The source and the mapping are checked before the store is opened.
    if let Err(e) = migrate::Source::open(&source).and_then(|s| s.check(&mapping)) {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(2));
    }
    let db = open().await?;
    let options = migrate::writer::Options {
        owner,
        dry_run,
        batch: batch.max(1),
    };
    let progress = migrate::progress::Bars::new();
    let report = migrate::writer::run(&db, &source, &mapping, &options, &progress).await;
    progress.finish();
    close(db).await;
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(if report.matches() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
