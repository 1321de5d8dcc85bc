//! `bucketbase revert`: undo an import, a migration, a request or one log entry as one
//! changeset (the engine's `revert` module does the work; `POST /api/v1/audit/revert` is
//! the same over HTTP).
//!
//! Prints the changeset's transactions, the later changes in the way (conflicts) and what
//! the revert changes, per collection and action (`--json`: everything, one JSON
//! document). `--dry-run` checks it all like a commit and writes nothing. Conflicts
//! refuse the revert (exit 2) unless `--force`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use bucketbase_engine::revert::{self, Changeset, Step};
use bucketbase_engine::{Seq, Txn, TxnMeta};
use bucketbase_server::routes::revert::RevertPolicy;
use indicatif::ProgressBar;

use crate::settings::Settings;

/// What to revert and how.
#[derive(Debug, clap::Args)]
#[group(skip)]
pub struct RevertArgs {
    /// Every transaction with this source: import:<id>, migration:<id>, revert:<...>.
    #[arg(long, conflicts_with_all = ["request_id", "seq"])]
    pub source: Option<String>,
    /// Every transaction of one API request (its X-Request-Id).
    #[arg(long, conflicts_with = "seq")]
    pub request_id: Option<String>,
    /// Every transaction of one log entry.
    #[arg(long)]
    pub seq: Option<u64>,
    /// Check and report, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Revert even over changes made after the changeset.
    #[arg(long)]
    pub force: bool,
    /// Who the audit trail names for the revert.
    #[arg(long, default_value = "cli")]
    pub actor: String,
    /// Print the whole report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The policy of the app a database serves (who may is moot here: the operator may).
fn policy(settings: &Settings) -> anyhow::Result<Option<Arc<dyn RevertPolicy>>> {
    Ok(crate::apps::find(&settings.app)?.and_then(|app| app.revert_policy()))
}

pub async fn run(settings: &Settings, args: RevertArgs) -> anyhow::Result<ExitCode> {
    let changeset = match (&args.source, &args.request_id, args.seq) {
        (Some(s), _, _) => Changeset::Source(s.clone()),
        (_, Some(r), _) => Changeset::RequestId(r.clone()),
        (_, _, Some(n)) => Changeset::Seq(Seq(n)),
        _ => anyhow::bail!("give --source, --request-id or --seq"),
    };
    let (db, _) = crate::serve::open_db(settings).await?;
    let spinner = ProgressBar::new_spinner().with_message("reading the log");
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let mut plan = revert::prepare(&db, &changeset)
        .await
        .with_context(|| format!("finding {}", changeset.label()))?;
    spinner.finish_and_clear();
    let policy = policy(settings)?;
    if let Some(p) = &policy {
        plan.leave(|c| p.leaves(c));
    }
    let finish = |tx: &mut Txn| match &policy {
        Some(p) => p.finish(tx, &changeset),
        None => Ok(()),
    };
    let meta = TxnMeta::new(args.actor.clone(), "cli");
    let conflicted = !plan.conflicts.is_empty() && !args.force;
    let (steps, seq) = if args.dry_run || conflicted {
        (plan.dry_run(&db, &meta, &finish)?, None)
    } else {
        let done = plan.apply(&db, &meta, args.force, &finish).await?;
        (done.value, Some(done.seq))
    };
    match Arc::try_unwrap(db) {
        Ok(db) => db.close().await,
        Err(db) => db.flush_view().await,
    }
    if args.json {
        let report = serde_json::json!({
            "changeset": plan.changeset,
            "dry_run": args.dry_run || conflicted,
            "seq": seq,
            "transactions": plan.transactions,
            "conflicts": plan.conflicts,
            "skipped": plan.skipped,
            "changes": steps,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&plan, &steps);
    }
    if conflicted {
        eprintln!(
            "refused: {} record(s) changed after {}; nothing was written (--force reverts over them)",
            plan.conflicted_records(),
            plan.changeset
        );
        return Ok(ExitCode::from(2));
    }
    match seq {
        Some(seq) => println!(
            "reverted at log position {seq}; audited as revert:{}",
            plan.changeset
        ),
        None => println!("dry run: nothing was written"),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(plan: &revert::Revert, steps: &[Step]) {
    println!("changeset {}:", plan.changeset);
    for t in &plan.transactions {
        let request = t.request_id.as_deref().unwrap_or("-");
        println!(
            "  seq {} at {} by {} (source {}, request {request}): {} records",
            t.seq, t.at, t.actor, t.source, t.records
        );
    }
    for c in &plan.conflicts {
        println!(
            "  conflict: {}/{} changed at seq {} ({}) by {} (source {}): {}",
            c.collection,
            c.record_id,
            c.seq,
            c.at,
            c.actor,
            c.source,
            c.fields.join(", ")
        );
    }
    let mut by: BTreeMap<(String, String), usize> = BTreeMap::new();
    for s in steps {
        *by.entry((s.collection.clone(), s.action.as_str().to_owned()))
            .or_default() += 1;
    }
    for ((collection, action), n) in by {
        println!("  {collection}: {n} {action}");
    }
}
