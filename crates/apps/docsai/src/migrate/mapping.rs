//! The mapping file: which SQLite tables become which collections, and how.
//!
//! TOML, written by people (docs/docsai.md describes it; `migrations/docsai.toml` is the
//! one for docsai's Django schema). A top-level `[[table]]` becomes a collection; its
//! `[[table.nested]]` child tables become nested arrays through their foreign key to the
//! parent (two levels at most, as the engine nests); `[[table.many]]` turns a
//! many-to-many through-table into an array of ids. Every column is either mapped
//! (`[table.columns]`), ignored (`ignore`), or reported as unmapped by the check, so
//! nothing is dropped without someone having said so.
//!
//! This module only parses and checks the mapping on its own; [`super::Source::check`]
//! checks it against a database.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::error::{Error, Result};

/// The namespace of the ids a migration derives: UUIDv5 of `"{table}:{primary key}"`.
pub const DEFAULT_NAMESPACE: Uuid = Uuid::from_u128(0x3c5e_7a90_1b2d_5f46_8e0a_c1d3_b5f7_0926);

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Overrides [`DEFAULT_NAMESPACE`] (two migrations of one database into one store
    /// then get different ids).
    #[serde(default)]
    pub id_namespace: Option<Uuid>,
    /// How an owner column's value becomes the owner's uuid.
    #[serde(default)]
    pub owners: Option<Owners>,
    /// Tables deliberately left behind (`django_*` style prefixes end in `*`).
    #[serde(default)]
    pub ignore_tables: Vec<String>,
    #[serde(rename = "table", default)]
    pub tables: Vec<TableMap>,
}

/// A table mapping users (the owner column's values) to uuids, e.g. a Django profile
/// table next to `auth_user`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owners {
    pub table: String,
    /// The column holding what owner columns hold (the Django user id).
    pub user: String,
    /// The column holding the owner's uuid (32 hex digits or the dashed form).
    pub uuid: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableMap {
    pub table: String,
    pub collection: String,
    /// The column naming the row's owner (`created_by`).
    #[serde(default)]
    pub owner: Option<String>,
    /// Columns carried over as the record's original timestamps (cast as datetimes).
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnSpec>,
    /// Columns deliberately not carried over.
    #[serde(default)]
    pub ignore: Vec<String>,
    #[serde(default)]
    pub many: Vec<ManyMap>,
    #[serde(default)]
    pub nested: Vec<NestedMap>,
}

/// A child table whose rows become items of a nested array of their parent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NestedMap {
    pub table: String,
    /// The nested array's name.
    pub field: String,
    /// The child's foreign-key column to the parent's primary key.
    pub parent: String,
    /// Carried over as the item's `created_at`.
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnSpec>,
    #[serde(default)]
    pub ignore: Vec<String>,
    /// The items' own nested arrays (the second level; no deeper).
    #[serde(default)]
    pub nested: Vec<NestedMap>,
}

/// A many-to-many through-table: `from` points at this table's row, `to` at a row of
/// `target`; the record gets the array of the targets' ids in `field`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManyMap {
    pub field: String,
    pub through: String,
    pub from: String,
    pub to: String,
    pub target: String,
}

/// A column: the field name alone, or the full form.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ColumnSpec {
    Field(String),
    Full(ColumnMap),
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnMap {
    /// The field name (default: the column's name).
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub cast: Cast,
    /// The column is a foreign key to this mapped table: the value becomes that row's
    /// derived id (a record's or a nested item's).
    #[serde(default)]
    pub reference: Option<String>,
    /// The value is a credential: the writer stores it in a secret field.
    #[serde(default)]
    pub secret: bool,
    /// Translates values (by their text form) before anything else, e.g. Django
    /// choices or `{ "1" = "secret", "0" = "default" }`.
    #[serde(default)]
    pub values: Option<BTreeMap<String, Value>>,
}

/// How a column's SQLite value becomes JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cast {
    /// By the column's declared type (bool, datetime, date, decimal, int, real...), else
    /// by the stored value's own type.
    #[default]
    Auto,
    Text,
    Integer,
    Number,
    /// 0/1 as Django's BooleanField stores it.
    Bool,
    /// JSON stored as text (Django's JSONField).
    Json,
    /// Django's DecimalField (numeric affinity: integer, real or text) as a JSON number.
    Decimal,
    /// Django's UUIDField (32 hex digits) as the dashed form.
    Uuid,
    /// Django's text datetimes (`2025-01-02 03:04:05.123456`, UTC) as RFC 3339.
    Datetime,
    /// `YYYY-MM-DD`.
    Date,
    /// A `/`-separated path as an array of its non-empty parts (`"Users/Admin"` ->
    /// `["Users", "Admin"]`), e.g. a folder column.
    Path,
}

impl ColumnSpec {
    pub fn resolved(&self, column: &str) -> ColumnMap {
        match self {
            ColumnSpec::Field(f) => ColumnMap {
                field: Some(f.clone()),
                ..ColumnMap::default()
            },
            ColumnSpec::Full(m) => ColumnMap {
                field: Some(m.field.clone().unwrap_or_else(|| column.to_string())),
                ..m.clone()
            },
        }
    }
}

impl Mapping {
    pub fn from_toml(text: &str) -> Result<Mapping> {
        let m: Mapping = toml::from_str(text).map_err(|e| Error::Mapping(e.to_string()))?;
        m.check()?;
        Ok(m)
    }

    pub fn namespace(&self) -> Uuid {
        self.id_namespace.unwrap_or(DEFAULT_NAMESPACE)
    }

    /// Every mapped table (top-level and nested), with its collection and nested path.
    pub fn all_tables(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for t in &self.tables {
            out.push(t.table.as_str());
            for n in &t.nested {
                out.push(n.table.as_str());
                out.extend(n.nested.iter().map(|g| g.table.as_str()));
            }
            out.extend(t.many.iter().map(|m| m.through.as_str()));
        }
        out
    }

    pub fn is_ignored(&self, table: &str) -> bool {
        self.ignore_tables
            .iter()
            .any(|p| match p.strip_suffix('*') {
                Some(prefix) => table.starts_with(prefix),
                None => table == p,
            })
    }

    /// Checks the mapping on its own: each table mapped once, two levels of nesting at
    /// most, distinct field names, references to mapped tables.
    fn check(&self) -> Result<()> {
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for t in self.all_tables() {
            if !seen.insert(t) {
                problems.push(format!("table {t} is mapped twice"));
            }
        }
        let mut collections = BTreeSet::new();
        for t in &self.tables {
            if !collections.insert(&t.collection) {
                problems.push(format!(
                    "collection {} is the target of two tables",
                    t.collection
                ));
            }
            let mut fields = field_names(&t.columns);
            fields.extend(t.many.iter().map(|m| m.field.clone()));
            fields.extend(t.nested.iter().map(|n| n.field.clone()));
            dupes(&t.table, &fields, &mut problems);
            for n in &t.nested {
                let mut f = field_names(&n.columns);
                f.extend(n.nested.iter().map(|g| g.field.clone()));
                dupes(&n.table, &f, &mut problems);
                for g in &n.nested {
                    if !g.nested.is_empty() {
                        problems.push(format!(
                            "{}: nested arrays go two levels deep at most",
                            g.table
                        ));
                    }
                    dupes(&g.table, &field_names(&g.columns), &mut problems);
                }
            }
        }
        let mapped: BTreeSet<&str> = self.all_tables().into_iter().collect();
        let refs = self.tables.iter().flat_map(|t| {
            let nested = t.nested.iter().flat_map(|n| {
                std::iter::once(&n.columns).chain(n.nested.iter().map(|g| &g.columns))
            });
            std::iter::once(&t.columns)
                .chain(nested)
                .flat_map(|cols| cols.iter())
                .filter_map(|(c, s)| s.resolved(c).reference.map(|r| (c.clone(), r)))
                .collect::<Vec<_>>()
        });
        for (column, target) in refs {
            if !mapped.contains(target.as_str()) {
                problems.push(format!(
                    "column {column} references {target}, which is not mapped"
                ));
            }
        }
        for t in &self.tables {
            for m in &t.many {
                if !self.tables.iter().any(|x| x.table == m.target) {
                    problems.push(format!(
                        "{}: many-to-many target {} is not a mapped top-level table",
                        t.table, m.target
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Mapping(problems.join("; ")))
        }
    }
}

fn field_names(cols: &BTreeMap<String, ColumnSpec>) -> Vec<String> {
    cols.iter()
        .map(|(c, s)| s.resolved(c).field.unwrap_or_default())
        .collect()
}

fn dupes(table: &str, fields: &[String], problems: &mut Vec<String>) {
    let mut seen = BTreeSet::new();
    for f in fields {
        if !seen.insert(f) {
            problems.push(format!("{table}: two columns map to the field {f}"));
        }
    }
}
