//! The subcommands of `bucketbase`.
//!
//! Each command is a thin driver over the engine: parse arguments, open the store, call
//! the library, report progress on long work (indicatif, on stderr) and results on stdout.

use std::process::ExitCode;

use anyhow::Context;
use bucketbase_engine::{Database, DbOptions, StoreUrl, UuidV7Ids, materialize, store, verify};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::settings::{Overrides, Settings};

/// Bucketbase: a database whose only storage is an object store.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (defaults: http://127.0.0.1:8080, ./bucketbase-data, local
    /// identity provider, the aristay app).
    Serve {
        /// Settings file (default: ./bucketbase.toml when present).
        #[arg(long, env = "BUCKETBASE_CONFIG")]
        config: Option<std::path::PathBuf>,
        /// Database root: a path, file:///path, memory:// or s3://bucket/prefix.
        #[arg(long)]
        store: Option<String>,
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<String>,
        /// The app this process serves.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(crate::apps::choices()))]
        app: Option<String>,
    },
    /// Manage the local identity provider's users.
    User {
        #[command(subcommand)]
        command: UserCommand,
        #[arg(long, env = "BUCKETBASE_CONFIG", global = true)]
        config: Option<std::path::PathBuf>,
        #[arg(long, global = true)]
        store: Option<String>,
    },
    /// Re-derive every `{collection}/{id}.json` and `index.json` from the log.
    Rebuild {
        /// Database root: a path, file:///path, memory:// or s3://bucket/prefix.
        #[arg(long, env = "BUCKETBASE_STORE", default_value = "./bucketbase-data")]
        store: String,
    },
    /// Undo an import, a migration, a request or one log entry as one changeset, in one
    /// transaction audited as `revert:<changeset>` (itself revertible). Later changes to
    /// its records refuse it unless --force; --dry-run shows what would change.
    Revert {
        #[command(flatten)]
        args: crate::revert::RevertArgs,
        #[arg(long, env = "BUCKETBASE_CONFIG")]
        config: Option<std::path::PathBuf>,
        #[arg(long)]
        store: Option<String>,
    },
    /// Recover from a damaged newest log entry (a torn write): move its bytes to
    /// `_quarantine/` and write a void entry in its slot. Run it with every server on
    /// the root stopped; it refuses any other damage and an intact log changes nothing.
    Recover {
        /// Database root: a path, file:///path, memory:// or s3://bucket/prefix.
        #[arg(long, env = "BUCKETBASE_STORE", default_value = "./bucketbase-data")]
        store: String,
    },
    /// Copy the log, checkpoints, files and signed digests the backup lacks (incremental;
    /// run it as often as you like). Never copies `_keys/` or the view.
    Backup {
        /// The database to back up (only read).
        #[arg(long, env = "BUCKETBASE_STORE", default_value = "./bucketbase-data")]
        store: String,
        /// The backup root: a path, file:///path or s3://bucket/prefix.
        #[arg(long)]
        to: String,
    },
    /// Build a new database root from a backup, at its head or at an earlier point;
    /// the view is rebuilt and the chain verified.
    Restore {
        /// The backup (only read).
        #[arg(long)]
        from: String,
        /// An empty root to create.
        #[arg(long)]
        to: String,
        /// Restore the state after this log position.
        #[arg(long, conflicts_with = "at_time")]
        at_seq: Option<u64>,
        /// Restore the state at this time (RFC 3339): the log up to the first entry
        /// committed after it.
        #[arg(long)]
        at_time: Option<String>,
    },
    /// Audit trail commands.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. The password comes from BUCKETBASE_PASSWORD, or is generated and
    /// printed once.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "staff")]
        role: String,
    },
    /// Set a user's password (from BUCKETBASE_PASSWORD, or generated and printed once).
    SetPassword {
        #[arg(long)]
        email: String,
    },
    /// Set a user's role.
    SetRole {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the log's hash chain; exit 0 when intact, 1 naming the first damaged entry.
    Verify {
        #[arg(long, env = "BUCKETBASE_STORE", default_value = "./bucketbase-data")]
        store: String,
        /// Also check the signed digests with this Ed25519 public key (base64); repeat it
        /// to accept digests signed before a key rotation.
        #[arg(long = "public-key")]
        public_keys: Vec<String>,
    },
    /// Print a new Ed25519 key pair for signed digests: the secret goes into the
    /// server's `digest_signing_key`, the public key to whoever verifies.
    Keygen,
}

/// Logs to stderr; `BUCKETBASE_LOG` overrides the filter; `json` for machine-read logs.
pub fn init_tracing(default_filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BUCKETBASE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The whole command line: the CLI's own commands ([`Cli`]) plus the command groups the
/// apps add (`import ...`), each with `--config` and `--store`.
pub fn command() -> clap::Command {
    let mut command = <Cli as clap::CommandFactory>::command();
    for group in crate::apps::command_groups() {
        command =
            command.subcommand(
                group
                    .subcommand_required(true)
                    .arg_required_else_help(true)
                    .arg(
                        clap::Arg::new("config")
                            .long("config")
                            .env("BUCKETBASE_CONFIG")
                            .global(true)
                            .value_parser(clap::value_parser!(std::path::PathBuf))
                            .help("Settings file (default: ./bucketbase.toml when present)"),
                    )
                    .arg(clap::Arg::new("store").long("store").global(true).help(
                        "Database root: a path, file:///path, memory:// or s3://bucket/prefix",
                    )),
            );
    }
    command
}

/// Runs what the command line asks: an app's command, or one of [`Cli`]'s.
pub async fn run_matches(matches: clap::ArgMatches) -> anyhow::Result<ExitCode> {
    let groups = crate::apps::command_groups();
    if let Some((group, sub)) = matches.subcommand()
        && groups.iter().any(|g| g.get_name() == group)
    {
        init_tracing("warn", false);
        return app_command(group, sub).await;
    }
    run(<Cli as clap::FromArgMatches>::from_arg_matches(&matches)?).await
}

/// An app's command: the app that owns it runs it, on the configured database, when it
/// is the app the settings name.
async fn app_command(group: &str, matches: &clap::ArgMatches) -> anyhow::Result<ExitCode> {
    let settings = store_settings(
        matches.get_one::<std::path::PathBuf>("config").cloned(),
        matches.get_one::<String>("store").cloned(),
    )?;
    let sub = matches.subcommand_name().unwrap_or_default();
    let app = crate::apps::owner(group, sub)
        .ok_or_else(|| anyhow::anyhow!("no app has the command {group} {sub}"))?;
    anyhow::ensure!(
        settings.app == app.name(),
        "`{group} {sub}` belongs to the {} app (app is {:?})",
        app.name(),
        settings.app
    );
    let open: bucketbase_server::app::OpenDatabase = Box::new(move || {
        Box::pin(async move {
            let (db, _) = crate::serve::open_db(&settings).await?;
            crate::serve::install_definitions(&db, &settings).await?;
            Ok(db)
        })
    });
    app.run_command(group, matches, open).await
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if !matches!(cli.command, Command::Serve { .. }) {
        init_tracing("warn", false);
    }
    match cli.command {
        Command::Serve {
            config,
            store,
            listen,
            app,
        } => {
            let settings = Settings::load(config.as_deref(), &Overrides { listen, store, app })?;
            anyhow::ensure!(
                matches!(settings.log_format.as_str(), "text" | "json"),
                "log_format must be text or json, not {:?}",
                settings.log_format
            );
            init_tracing(&settings.log, settings.log_format == "json");
            crate::serve::serve(settings).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::User {
            command,
            config,
            store,
        } => user(&store_settings(config, store)?, command).await,
        Command::Rebuild { store } => rebuild(&store).await,
        Command::Recover { store } => crate::recover::run(&store).await,
        Command::Revert {
            args,
            config,
            store,
        } => crate::revert::run(&store_settings(config, store)?, args).await,
        Command::Backup { store, to } => crate::backup::run_backup(&store, &to).await,
        Command::Restore {
            from,
            to,
            at_seq,
            at_time,
        } => crate::backup::run_restore(&from, &to, at_seq, at_time.as_deref()).await,
        Command::Audit {
            command: AuditCommand::Verify { store, public_keys },
        } => audit_verify(&store, &public_keys).await,
        Command::Audit {
            command: AuditCommand::Keygen,
        } => {
            let (secret, public) = bucketbase_engine::digest::generate_key();
            println!("digest_signing_key = \"{secret}\"   # secret: the server's setting");
            println!("public key: {public}   # for `bucketbase audit verify --public-key`");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Settings for a command that takes only `--config` and `--store`.
fn store_settings(
    config: Option<std::path::PathBuf>,
    store: Option<String>,
) -> anyhow::Result<Settings> {
    Settings::load(
        config.as_deref(),
        &Overrides {
            store,
            ..Default::default()
        },
    )
}

/// The password for a user command: BUCKETBASE_PASSWORD, or a generated one to print.
fn password() -> (String, bool) {
    match std::env::var("BUCKETBASE_PASSWORD") {
        Ok(p) => (p, false),
        Err(_) => (bucketbase_server::auth::local::generate_password(), true),
    }
}

async fn user(settings: &Settings, command: UserCommand) -> anyhow::Result<ExitCode> {
    let (db, _) = crate::serve::open_db(settings).await?;
    let store = bucketbase_server::auth::store::DbUserStore::install(db.clone()).await?;
    let actor = "cli";
    match command {
        UserCommand::Create { email, role } => {
            let (pw, generated) = password();
            let user = store.create_user(&email, &pw, &role, actor).await?;
            println!(
                "created {} ({}) with id {}",
                user.email, user.role, user.uuid
            );
            if generated {
                println!("password (shown once): {pw}");
            }
        }
        UserCommand::SetPassword { email } => {
            let (pw, generated) = password();
            let hash = bucketbase_server::auth::local::hash_password(&pw)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            store
                .update_user(&email, serde_json::json!({"password_hash": hash}), actor)
                .await?;
            println!("password of {email} changed");
            if generated {
                println!("password (shown once): {pw}");
            }
        }
        UserCommand::SetRole { email, role } => {
            store
                .update_user(&email, serde_json::json!({"role": role}), actor)
                .await?;
            println!("role of {email} is now {role}");
        }
    }
    drop(store);
    if let Ok(db) = std::sync::Arc::try_unwrap(db) {
        db.close().await;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
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
pub(crate) fn existing_root(url: &str) -> anyhow::Result<()> {
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

async fn audit_verify(url: &str, public_keys: &[String]) -> anyhow::Result<ExitCode> {
    existing_root(url)?;
    let keys = public_keys
        .iter()
        .map(|k| bucketbase_engine::digest::public_key_from_base64(k))
        .collect::<Result<Vec<_>, _>>()
        .context("--public-key")?;
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
    for (seq, void) in &report.voided {
        println!(
            "position {seq} was voided: damaged bytes quarantined, sha256 {} ({} bytes, {})",
            void.sha256,
            void.bytes,
            bucketbase_engine::recover::quarantine_path(*seq, &void.sha256)
        );
    }
    let mut intact = match report.first_break {
        None => {
            println!(
                "intact: {} entries, head hash {}",
                report.verified, report.head_hash
            );
            true
        }
        Some(brk) => {
            println!(
                "BROKEN at log position {}: {:?}: {} ({} entries verified before it)",
                brk.seq, brk.damage, brk.detail, report.verified
            );
            false
        }
    };
    if !keys.is_empty() {
        let digests = bucketbase_engine::digest::verify(&store, &keys).await?;
        match (&digests.problem, digests.newest) {
            (Some((seq, why)), _) => {
                println!("digests BROKEN at the digest of position {seq}: {why}");
                intact = false;
            }
            (None, Some(newest)) => println!(
                "digests intact: {} signed digests, the newest at position {newest}",
                digests.verified
            ),
            (None, None) => {
                println!("digests: none found, although a public key was given");
                intact = false;
            }
        }
    }
    Ok(if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
