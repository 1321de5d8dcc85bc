//! Collection definitions used by the integrity tests (TOML, as operators write them).

use bucketbase_engine::collection::Definition;
use bucketbase_engine::{Database, Error};

use crate::support::meta;

pub const PROPERTIES: &str = r#"
name = "properties"
soft_delete = true
index = ["name", "city"]

[schema]
type = "object"
required = ["name"]
properties.name = { type = "string", minLength = 1 }
properties.city = { type = "string" }
properties.rooms = { type = "integer", minimum = 0 }

[[unique]]
name = "property_name"
fields = ["name"]
"#;

pub const BOOKINGS: &str = r#"
name = "bookings"
soft_delete = true
index = ["property_id", "status"]

[schema]
type = "object"
required = ["property_id", "check_in", "check_out"]
[schema.properties]
property_id = { type = "string" }
check_in = { type = "string", format = "date" }
check_out = { type = "string", format = "date" }
status = { enum = ["confirmed", "cancelled"] }
guest = { type = "string" }

[[check]]
name = "check_out_after_check_in"
expr = "record.check_out > record.check_in"

[[exclude]]
name = "no_overlapping_stays"
key = ["property_id"]
start = "check_in"
end = "check_out"
when = '!has(record.status) || record.status != "cancelled"'

[[references]]
field = "property_id"
collection = "properties"
on_delete = "cascade"
"#;

pub const TASKS: &str = r#"
name = "tasks"
soft_delete = true

[schema]
type = "object"
required = ["title", "property_id"]
properties.title = { type = "string" }

[[references]]
field = "property_id"
collection = "properties"

[[references]]
field = "booking_id"
collection = "bookings"
on_delete = "set_null"
match = { property_id = "property_id" }

[nested.comments]
schema = { type = "object", required = ["text"], properties = { text = { type = "string" } } }
"#;

pub const CREDENTIALS: &str = r#"
name = "credentials"
secret = ["secret"]

[schema]
type = "object"
required = ["name", "secret"]
properties.name = { type = "string" }
properties.secret = { type = "string", minLength = 3 }
"#;

/// Defines the given collections in one transaction.
pub async fn define(db: &Database, tomls: &[&str]) {
    let defs: Vec<Definition> = tomls
        .iter()
        .map(|t| Definition::from_toml(t).unwrap())
        .collect();
    db.transact(&meta(), |tx| {
        for d in &defs {
            tx.define(d)?;
        }
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
}

/// The rental fixture: properties, bookings, tasks.
pub async fn rentals(db: &Database) {
    define(db, &[PROPERTIES, BOOKINGS, TASKS]).await;
}
