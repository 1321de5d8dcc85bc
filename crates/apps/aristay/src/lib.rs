//! aristay, the short-term-rental operations app (DESIGN.md §6): its collection
//! definitions, the automatic tasks (an engine hook), what owners may read (an `auth`
//! extension for rules), booking import from Excel, and task photos.
//!
//! It plugs into the engine through [`definitions`] and [`hooks`], and into the server
//! through [`auth_context`] and [`router`].

pub mod automation;
pub mod files;
pub mod import;
pub mod owners;
pub mod revert;
pub mod routes;

use std::sync::Arc;

use bucketbase_engine::collection::{Definition, Hook};
use bucketbase_server::access::AuthContext;

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

/// aristay's collection definitions.
pub fn definitions() -> Vec<Definition> {
    DEFINITIONS
        .iter()
        .map(|(name, toml)| {
            Definition::from_toml(toml)
                .unwrap_or_else(|e| panic!("the shipped definition of {name} is invalid: {e}"))
        })
        .collect()
}

/// The engine hooks: automatic tasks.
pub fn hooks() -> Vec<Arc<dyn Hook>> {
    vec![Arc::new(automation::AutoTasks::default())]
}

/// What aristay adds to `auth` for its rules (`auth.properties` of an owner).
pub fn auth_context() -> Arc<dyn AuthContext> {
    Arc::new(owners::OwnedProperties)
}

pub use routes::{openapi_paths, router};

#[cfg(test)]
mod tests {
    #[test]
    fn shipped_definitions_parse_and_compile() {
        let defs = super::definitions();
        assert_eq!(defs.len(), 13);
        for d in &defs {
            d.compile().unwrap_or_else(|e| panic!("{}: {e}", d.name));
        }
    }
}
