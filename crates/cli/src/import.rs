//! `bucketbase import bookings FILE`: the aristay booking import from the command line,
//! with a progress bar, the same checks and the same import log as the HTTP route.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use bucketbase_aristay::import::mapping::Mapping;
use bucketbase_aristay::import::run::{ImportError, Mode, Report, Request, import_bookings};
use bucketbase_aristay::import::xlsx::Limits;
use bucketbase_engine::{CollectionName, Database};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::commands::ImportCommand;
use crate::settings::{AppKind, Settings};

pub async fn run(settings: &Settings, command: ImportCommand) -> anyhow::Result<ExitCode> {
    let ImportCommand::Bookings {
        file,
        template,
        mapping,
        dry_run,
        mode,
        no_automations,
        json,
    } = command;
    anyhow::ensure!(
        settings.app == AppKind::Aristay,
        "booking import belongs to the aristay app (app is {:?})",
        settings.app
    );
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

    let (db, _) = crate::serve::open_db(settings).await?;
    crate::serve::install_definitions(&db, settings).await?;
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
