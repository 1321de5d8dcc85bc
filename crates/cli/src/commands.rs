//! The subcommands of `bucketbase`.
//!
//! Each command is a thin driver over the engine: parse arguments, open the store, call
//! the library, report progress on long work (indicatif, on stderr) and results on stdout.

use std::process::ExitCode;

use anyhow::Context;
use bucketbase_engine::{Database, DbOptions, StoreUrl, UuidV7Ids, materialize, store, verify};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

/// Bucketbase: a database whose only storage is an object store.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Re-derive every `{collection}/{id}.json` and `index.json` from the log.
    Rebuild {
        /// Database root: a path, file:///path, memory:// or s3://bucket/prefix.
        #[arg(long, env = "BUCKETBASE_STORE", default_value = "./bucketbase-data")]
        store: String,
    },
    /// Audit trail commands.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the log's hash chain; exit 0 when intact, 1 naming the first damaged entry.
    Verify {
        #[arg(long, env = "BUCKETBASE_STORE", default_value = "./bucketbase-data")]
        store: String,
    },
}

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BUCKETBASE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Rebuild { store } => rebuild(&store).await,
        Command::Audit {
            command: AuditCommand::Verify { store },
        } => audit_verify(&store).await,
    }
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// Refuses to run on a root that does not exist yet, instead of creating an empty one.
fn existing_root(url: &str) -> anyhow::Result<()> {
    if let StoreUrl::Local(path) = StoreUrl::parse(url)?
        && !path.join("_log").exists()
    {
        anyhow::bail!("no database at {} (no _log/ directory)", path.display());
    }
    Ok(())
}

async fn rebuild(url: &str) -> anyhow::Result<ExitCode> {
    existing_root(url)?;
    let db = Database::open_url(
        url,
        DbOptions {
            materialize: false,
            checkpoint_every: 0,
            ..DbOptions::default()
        },
    )
    .await
    .with_context(|| format!("opening {url}"))?;
    let state = db.snapshot();
    let bar = bar(state.len() as u64, "rebuilding view");
    let report = materialize::rebuild(db.store(), &state, &|n| bar.set_position(n)).await?;
    bar.finish_and_clear();
    println!(
        "rebuilt the view at log position {}: {} records, {} indexes, {} stale files removed",
        state.seq(),
        report.docs,
        report.indexes,
        report.removed
    );
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn audit_verify(url: &str) -> anyhow::Result<ExitCode> {
    existing_root(url)?;
    let store = store::open(url, &UuidV7Ids)
        .await
        .with_context(|| format!("opening {url}"))?;
    let bar = ProgressBar::new_spinner();
    bar.set_message("verifying the hash chain");
    let report = verify::verify_chain(&store, &|seq| {
        if seq.get().is_multiple_of(256) {
            bar.set_message(format!("verified up to {seq}"));
        }
    })
    .await?;
    bar.finish_and_clear();
    match report.first_break {
        None => {
            println!(
                "intact: {} entries, head hash {}",
                report.verified, report.head_hash
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(brk) => {
            println!(
                "BROKEN at log position {}: {:?}: {} ({} entries verified before it)",
                brk.seq, brk.damage, brk.detail, report.verified
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
