//! docsai, the documentation / API-studio / workflow platform (DESIGN.md §7): its
//! collection definitions, the Postman collection model (import and export) and the
//! Django SQLite migration.
//!
//! It plugs in through one value, [`Docsai`], which implements the server's [`App`]
//! trait: its definitions (every one owner-scoped with rules that bind SuperAdmin too,
//! decision 0021), `require_role = SuperAdmin` unless configured otherwise, its routes
//! (`/api/v1/docsai/json_store/{key}`, the Postman import and export) and its commands
//! (`bucketbase import postman`, `bucketbase migrate sqlite`).

pub mod api_collections;
pub mod cli;
pub mod definitions;
pub mod migrate;
pub mod postman;
pub mod routes;

use std::process::ExitCode;

use bucketbase_engine::collection::Definition;
use bucketbase_server::app::{App, BoxFuture, OpenDatabase};
use bucketbase_server::auth::Role;
use bucketbase_server::contract::Resource;

/// One of docsai's collections, by its (valid, constant) name.
pub(crate) fn coll(name: &'static str) -> bucketbase_engine::CollectionName {
    bucketbase_engine::CollectionName::parse(name).expect("a valid collection name")
}

/// The docsai app.
#[derive(Debug, Clone, Copy, Default)]
pub struct Docsai;

impl App for Docsai {
    fn name(&self) -> &'static str {
        "docsai"
    }

    fn definitions(&self) -> Vec<Definition> {
        definitions::definitions()
    }

    /// The seed admitted SuperAdmins only.
    fn require_role(&self) -> Option<Role> {
        Some(Role::SUPER_ADMIN)
    }

    fn routes(&self) -> Resource {
        routes::resource()
    }

    fn commands(&self) -> Vec<clap::Command> {
        cli::commands()
    }

    fn run_command<'a>(
        &'a self,
        group: &'a str,
        matches: &'a clap::ArgMatches,
        open: OpenDatabase,
    ) -> BoxFuture<'a, anyhow::Result<ExitCode>> {
        Box::pin(cli::run(group, matches, open))
    }
}
