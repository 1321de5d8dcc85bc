//! Collection definitions used by the integrity tests (TOML, as operators write them).

use bucketbase_engine::Database;
use bucketbase_engine::collection::Definition;

use crate::support::meta;

pub const PROPERTIES: &str = include_str!("../fixtures/properties.toml");

pub const BOOKINGS: &str = include_str!("../fixtures/bookings.toml");

pub const TASKS: &str = include_str!("../fixtures/tasks.toml");

pub const CREDENTIALS: &str = include_str!("../fixtures/credentials.toml");

/// Defines the given collections in one transaction.
pub async fn define(db: &Database, tomls: &[&str]) {
    let defs: Vec<Definition> = tomls
        .iter()
        .map(|t| Definition::from_toml(t).unwrap())
        .collect();
    db.define_all(&meta(), &defs).await.unwrap();
}

/// The rental fixture: properties, bookings, tasks.
pub async fn rentals(db: &Database) {
    define(db, &[PROPERTIES, BOOKINGS, TASKS]).await;
}
