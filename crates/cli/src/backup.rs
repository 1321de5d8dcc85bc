//! `bucketbase backup` and `bucketbase restore`: drivers over `bucketbase_engine::backup`.
//!
//! The source of either command is only read: it is built without the create-if-absent
//! probe (which writes a key), and a local source must already hold a `_log/`. The
//! target is probed like any root, since restore turns it into a live database.
//! `memory://` is refused on both sides: it lives only inside this one process.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use bucketbase_engine::backup::{self, RestorePoint};
use bucketbase_engine::{DynStore, Seq, StoreUrl, UuidV7Ids, store};
use indicatif::ProgressBar;

/// Opens a root to read from, without writing to it.
fn source(url: &str) -> anyhow::Result<DynStore> {
    let parsed = parsed(url)?;
    crate::commands::existing_root(url)?;
    parsed.build().with_context(|| format!("opening {url}"))
}

async fn target(url: &str) -> anyhow::Result<DynStore> {
    parsed(url)?;
    store::open(url, &UuidV7Ids)
        .await
        .with_context(|| format!("opening {url}"))
}

fn parsed(url: &str) -> anyhow::Result<StoreUrl> {
    let parsed = StoreUrl::parse(url)?;
    anyhow::ensure!(
        parsed != StoreUrl::Memory,
        "memory:// cannot be backed up or restored: it lives only inside one process (use a \
         path or s3://bucket/prefix)"
    );
    Ok(parsed)
}

fn reporter(bar: &ProgressBar) -> impl Fn(&str, u64, u64) + Sync + '_ {
    move |what, done, total| {
        bar.set_message(what.to_string());
        bar.set_length(total);
        bar.set_position(done);
    }
}

pub async fn run_backup(from: &str, to: &str) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        StoreUrl::parse(from)? != StoreUrl::parse(to)?,
        "--store and --to name the same root"
    );
    let (source, target) = (source(from)?, target(to).await?);
    let started = Instant::now();
    let bar = crate::commands::bar(0, "log entries");
    let report = backup::backup(&source, &target, &reporter(&bar))
        .await
        .with_context(|| format!("backing up {from} to {to}"))?;
    bar.finish_and_clear();
    println!(
        "backed up to position {}: {} new log entries, {} checkpoints, {} files, {} signed \
         digests, {} bytes in {:.2} s",
        report.head,
        report.entries,
        report.checkpoints,
        report.files,
        report.digests,
        report.bytes,
        started.elapsed().as_secs_f64()
    );
    if report.checkpoints_skipped > 0 {
        println!(
            "note: {} damaged checkpoints of the source were not copied (they are derived: \
             nothing is lost)",
            report.checkpoints_skipped
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run_restore(
    from: &str,
    to: &str,
    at_seq: Option<u64>,
    at_time: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let point = match (at_seq, at_time) {
        (Some(n), _) => RestorePoint::Seq(Seq(n)),
        (None, Some(t)) => RestorePoint::at_time(t)?,
        (None, None) => RestorePoint::Head,
    };
    anyhow::ensure!(
        StoreUrl::parse(from)? != StoreUrl::parse(to)?,
        "--from and --to name the same root"
    );
    let source = source(from)?;
    if let StoreUrl::Local(path) = parsed(to)?
        && path.exists()
        && std::fs::read_dir(&path)?
            .flatten()
            .any(|e| e.file_name() != "_probe")
    {
        anyhow::bail!(
            "{} is not empty: restore only into an empty root",
            path.display()
        );
    }
    let target = target(to).await?;
    let started = Instant::now();
    let bar = crate::commands::bar(0, "log entries");
    let report = backup::restore(&source, &target, point, &reporter(&bar))
        .await
        .with_context(|| format!("restoring {from} into {to}"))?;
    bar.finish_and_clear();
    println!(
        "restored position {} (committed {}): {} log entries, {} checkpoints, {} files, {} \
         signed digests, {} records; chain intact; {} bytes in {:.2} s",
        report.seq,
        report.at,
        report.entries,
        report.checkpoints,
        report.files,
        report.digests,
        report.records,
        report.bytes,
        started.elapsed().as_secs_f64()
    );
    if report.checkpoints_skipped > 0 {
        println!(
            "note: {} checkpoints of the backup were not used: damaged, or their records are \
             not the log's (the state was replayed from the log instead)",
            report.checkpoints_skipped
        );
    }
    Ok(ExitCode::SUCCESS)
}
