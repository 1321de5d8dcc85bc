//! aristay, the short-term-rental operations app (DESIGN.md §6): its collection
//! definitions, the automatic tasks (an engine hook), what owners may read (an `auth`
//! extension for rules), booking import from Excel, and task photos.
//!
//! It plugs in through one value, [`Aristay`], which implements the server's
//! [`App`] trait: its definitions and automatic-task hook for the engine, the facts its
//! rules need and its routes for the server, and `bucketbase import bookings` for the
//! command line.

pub mod admin;
pub mod automation;
pub mod cli;
pub mod error;
pub mod files;
pub mod import;
pub mod owners;
pub mod revert;
pub mod routes;

use std::process::ExitCode;
use std::sync::Arc;

use bucketbase_engine::collection::{Definition, Hook};
use bucketbase_server::access::AuthContext;
use bucketbase_server::app::{App, BoxFuture, OpenDatabase};
use bucketbase_server::contract::Resource;
use bucketbase_server::routes::revert::RevertPolicy;

/// The definitions, in dependency order (referenced collections first).
const DEFINITIONS: [(&str, &str); 13] = [
    ("properties", include_str!("../definitions/properties.toml")),
    (
        "property_ownerships",
        include_str!("../definitions/property_ownerships.toml"),
    ),
    (
        "auto_task_templates",
        include_str!("../definitions/auto_task_templates.toml"),
    ),
    ("bookings", include_str!("../definitions/bookings.toml")),
    ("tasks", include_str!("../definitions/tasks.toml")),
    (
        "auto_task_records",
        include_str!("../definitions/auto_task_records.toml"),
    ),
    (
        "task_images",
        include_str!("../definitions/task_images.toml"),
    ),
    (
        "booking_import_templates",
        include_str!("../definitions/booking_import_templates.toml"),
    ),
    (
        "booking_import_logs",
        include_str!("../definitions/booking_import_logs.toml"),
    ),
    (
        "checklist_templates",
        include_str!("../definitions/checklist_templates.toml"),
    ),
    (
        "inventory_items",
        include_str!("../definitions/inventory_items.toml"),
    ),
    (
        "notifications",
        include_str!("../definitions/notifications.toml"),
    ),
    ("profiles", include_str!("../definitions/profiles.toml")),
];

/// One of aristay's collections, by its (valid, constant) name.
pub(crate) fn coll(name: &'static str) -> bucketbase_engine::CollectionName {
    bucketbase_engine::CollectionName::parse(name).expect("a valid collection name")
}

/// The aristay app.
#[derive(Debug, Clone, Copy, Default)]
pub struct Aristay;

impl App for Aristay {
    fn name(&self) -> &'static str {
        "aristay"
    }

    fn definitions(&self) -> Vec<Definition> {
        DEFINITIONS
            .iter()
            .map(|(name, toml)| {
                Definition::from_toml(toml)
                    .unwrap_or_else(|e| panic!("the shipped definition of {name} is invalid: {e}"))
            })
            .collect()
    }

    /// Automatic tasks.
    fn hooks(&self) -> Vec<Arc<dyn Hook>> {
        vec![Arc::new(automation::AutoTasks::default())]
    }

    /// `auth.properties` of an owner.
    fn auth_context(&self) -> Option<Arc<dyn AuthContext>> {
        Some(Arc::new(owners::OwnedProperties))
    }

    /// Managers revert imports; the import log stays, marked `reverted`.
    fn revert_policy(&self) -> Option<Arc<dyn RevertPolicy>> {
        Some(Arc::new(revert::ImportReverts))
    }

    fn routes(&self) -> Resource {
        routes::resource()
    }

    fn admin_pages(&self) -> bucketbase_server::admin::AdminPages {
        admin::pages()
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

#[cfg(test)]
mod tests {
    use bucketbase_server::app::App;

    #[test]
    fn shipped_definitions_parse_and_compile() {
        let defs = super::Aristay.definitions();
        assert_eq!(defs.len(), 13);
        for d in &defs {
            d.compile().unwrap_or_else(|e| panic!("{}: {e}", d.name));
        }
    }
}
