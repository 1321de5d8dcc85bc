//! `bucketbase import bookings FILE`: the aristay booking import from the command line,
//! with a progress bar, the same checks and the same import log as the HTTP route.
//!
//! The `bucketbase` command knows this only through the `App` trait: [`commands`] gives
//! it the `import` group with its `bookings` subcommand, and [`run`] runs the matches
//! against the database the CLI opens (with this app's definitions installed).

use std::process::ExitCode;
use std::sync::Arc;

use crate::import::mapping::Mapping;
use crate::import::run::{ImportError, Mode, Report, Request, import_bookings};
use crate::import::xlsx::Limits;
use anyhow::Context;
use bucketbase_engine::{CollectionName, Database};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use bucketbase_server::app::OpenDatabase;
use clap::{FromArgMatches, Subcommand};

/// aristay's subcommands of `bucketbase import`.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import aristay bookings from an .xlsx file: upsert by (source, external_id), with
    /// automatic tasks. Exit 0 when every row is fine, 1 when rows failed (they are
    /// listed), 2 when the file or mapping cannot be used.
    Bookings {
        /// The .xlsx file.
        file: std::path::PathBuf,
        /// Name of a saved booking_import_templates record.
        #[arg(long, conflicts_with = "mapping", required_unless_present = "mapping")]
        template: Option<String>,
        /// A JSON file with an inline column mapping instead of a saved template.
        #[arg(long)]
        mapping: Option<std::path::PathBuf>,
        /// Check every row and report, without writing any booking.
        #[arg(long)]
        dry_run: bool,
        /// all_or_nothing: any bad row and nothing is written; partial: the good rows are.
        #[arg(long, default_value = "all_or_nothing")]
        mode: String,
        /// Do not create or move automatic tasks.
        #[arg(long)]
        no_automations: bool,
        /// Print the whole report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The command groups aristay adds to `bucketbase`.
pub fn commands() -> Vec<clap::Command> {
    // `about` after the subcommands: the derive would give the group this enum's doc.
    let import = ImportCommand::augment_subcommands(clap::Command::new("import"));
    vec![import.about("Import data into the app's collections")]
}

/// Runs an aristay command: `matches` are those of the `group`.
pub async fn run(
    group: &str,
    matches: &clap::ArgMatches,
    open: OpenDatabase,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(group == "import", "aristay has no {group} command");
    let command = ImportCommand::from_arg_matches(matches)?;
    import(command, open).await
}

async fn import(command: ImportCommand, open: OpenDatabase) -> anyhow::Result<ExitCode> {
    let ImportCommand::Bookings {
        file,
        template,
        mapping,
        dry_run,
        mode,
        no_automations,
        json,
    } = command;
    let mode: Mode = mode.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    let limits = Limits::default();
    let size = std::fs::metadata(&file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    anyhow::ensure!(
        size <= limits.max_file_bytes,
        "{} is {size} bytes; the limit is {} bytes",
        file.display(),
        limits.max_file_bytes
    );
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;

    let db = open().await?;
    let (mapping, template_id) = match (template, mapping) {
        (Some(name), _) => {
            let (id, mapping) = saved_template(&db, &name)?;
            (mapping, Some(id))
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let mapping: Mapping = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a column mapping", path.display()))?;
            (mapping, None)
        }
        (None, None) => anyhow::bail!("give --template NAME or --mapping FILE.json"),
    };
    let request = Request {
        file_name: file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "bookings.xlsx".into()),
        bytes,
        mapping,
        template_id,
        dry_run,
        mode,
        run_automations: !no_automations,
        limits,
    };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} checking rows {bar:40} {pos}/{len} ({eta})")
            .expect("a valid progress template"),
    );
    let progress_bar = bar.clone();
    let progress = Arc::new(move |done: usize, total: usize| {
        progress_bar.set_length(total as u64);
        progress_bar.set_position(done as u64);
    });
    let outcome = import_bookings(&db, "cli", None, request, progress).await;
    bar.finish_and_clear();
    let report = match outcome {
        Ok(report) => report,
        Err(ImportError::Engine(e)) => return Err(e.into()),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if let Ok(db) = Arc::try_unwrap(db) {
        db.close().await;
    }
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A saved import template by name: its id and mapping.
fn saved_template(db: &Database, name: &str) -> anyhow::Result<(String, Mapping)> {
    let templates = CollectionName::parse("booking_import_templates")?;
    let snap = db.snapshot();
    let found = snap
        .find_live(&templates, "name", &json!(name))
        .into_iter()
        .next();
    let Some((id, template)) = found else {
        anyhow::bail!("no booking import template named {name:?}");
    };
    let mapping = serde_json::from_value(template.get("mapping").cloned().unwrap_or(Value::Null))
        .with_context(|| format!("the mapping of template {name:?}"))?;
    Ok((id.to_string(), mapping))
}

fn print_report(report: &Report) {
    let c = &report.counts;
    println!(
        "{}: {} rows: {} created, {} updated, {} unchanged, {} failed{} ({:.0} ms, import log {})",
        report.status,
        report.rows,
        c.created,
        c.updated,
        c.unchanged,
        c.failed,
        if c.skipped > 0 {
            format!(", {} not written", c.skipped)
        } else {
            String::new()
        },
        report.duration_ms,
        report.log_id
    );
    if report.errors_truncated > 0 {
        println!(
            "  (the first {} errors; {} more not shown)",
            report.errors.len(),
            report.errors_truncated
        );
    }
    for e in &report.errors {
        println!(
            "  row {}{}: {} ({})",
            e.row,
            e.column
                .as_deref()
                .map(|c| format!(", column {c:?}"))
                .unwrap_or_default(),
            e.message,
            e.code
        );
    }
}
