//! How an app (aristay, docsai) plugs into a server process: one trait, [`App`], that
//! says everything the engine, the server and the command line need from it.
//!
//! An app is data plus a little domain code. The engine needs its collection definitions
//! and its transaction hooks; the server needs the facts it adds to access rules and its
//! own routes with their OpenAPI paths (a [`Resource`]); the `bucketbase` command needs its
//! subcommands, if any. Every member has a default, so an app states only what it has.
//!
//! The CLI names each app once, in its registry (name → `Box<dyn App>`), and reaches it
//! only through this trait; nothing else in the server or the CLI knows an app's
//! functions (decision 0014). Subcommands are `clap::Command`s that the CLI adds under the
//! group they name (e.g. `import`), and the app runs their matches itself against a
//! database the CLI opens for it, so the CLI parses no app flag.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use bucketbase_engine::Database;
use bucketbase_engine::collection::{Definition, Hook};

use crate::access::AuthContext;
use crate::contract::Resource;

/// A boxed future, for the trait's one async member. Not `Send`: a command runs on the
/// CLI's main task, never spawned.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Opens the database a command runs on (the CLI's settings: store, limits, hooks, the
/// app's definitions installed). Called at most once, and only when the command needs it,
/// so that a command refusing its arguments touches no store.
pub type OpenDatabase = Box<dyn FnOnce() -> BoxFuture<'static, anyhow::Result<Arc<Database>>>>;

/// An app served by a Bucketbase process (`bucketbase serve --app <name>`).
pub trait App: Send + Sync {
    /// Its name: the `--app` value, and the prefix of its routes (`/api/v1/<name>/...`),
    /// which no collection may take.
    fn name(&self) -> &'static str;

    /// Its collection definitions, in dependency order (referenced collections first).
    fn definitions(&self) -> Vec<Definition> {
        Vec::new()
    }

    /// Engine hooks that may add writes to the transaction that triggered them.
    fn hooks(&self) -> Vec<Arc<dyn Hook>> {
        Vec::new()
    }

    /// What it adds to `auth` for access rules (e.g. the properties an owner has).
    fn auth_context(&self) -> Option<Arc<dyn AuthContext>> {
        None
    }

    /// The role every caller must have when the settings require none (docsai:
    /// `SuperAdmin`); a configured `require_role` wins.
    fn require_role(&self) -> Option<crate::auth::Role> {
        None
    }

    /// Who besides SuperAdmin may revert its changesets, and the records it keeps of
    /// them itself (see [`crate::routes::revert::RevertPolicy`]).
    fn revert_policy(&self) -> Option<Arc<dyn crate::routes::revert::RevertPolicy>> {
        None
    }

    /// Its own routes with their OpenAPI paths (under `/api/v1/<name>/...`).
    fn routes(&self) -> Resource {
        Resource::new()
    }

    /// Its pages in the admin UI (routes under `/admin/...` and nav entries), built with
    /// what [`crate::admin`] exports so they share the generic pages' session, templates
    /// and in-process API.
    fn admin_pages(&self) -> crate::admin::AdminPages {
        crate::admin::AdminPages::default()
    }

    /// Its command-line subcommands: each returned command is a group (`import`) whose
    /// subcommands are the app's (`bookings`); the CLI merges groups of one name across
    /// apps and adds its `--config` / `--store` flags.
    fn commands(&self) -> Vec<clap::Command> {
        Vec::new()
    }

    /// Runs one of its subcommands: `group` is the group's name, `matches` the group's
    /// matches (its subcommand is the app's).
    fn run_command<'a>(
        &'a self,
        group: &'a str,
        matches: &'a clap::ArgMatches,
        open: OpenDatabase,
    ) -> BoxFuture<'a, anyhow::Result<ExitCode>> {
        let _ = (matches, open);
        Box::pin(async move { anyhow::bail!("{} has no {group} command", self.name()) })
    }
}
