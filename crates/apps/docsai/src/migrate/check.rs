//! The closing check of a migration: rows per table against the records and nested
//! items in the store (or, in a dry run, against what would be written), orphan foreign
//! keys, unmapped tables and columns, records no one owns, and the records that failed.
//! A run whose counts do not match exits non-zero.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bucketbase_engine::{CollectionName, RecordId, State};
use serde::Serialize;
use serde_json::Value;

use super::mapping::Mapping;
use super::reader::{Document, TableStats};
use super::source::CheckReport;
use super::writer::UNOWNED;

/// What the writer did with the documents, as it went.
#[derive(Debug, Default)]
pub struct Planned {
    /// Records written, by source table.
    pub written: BTreeMap<String, u64>,
    /// Records already there (an earlier run), by source table.
    pub already: BTreeMap<String, u64>,
    /// The records of each source table: (collection, id).
    pub ids: BTreeMap<String, Vec<(String, String)>>,
    /// Items in the documents written or found, by `table/field[/field]`.
    pub items: BTreeMap<String, u64>,
    /// Items of a nested level the collection does not declare, by child table.
    pub left_out: BTreeMap<String, u64>,
    /// Records no one owns.
    pub unowned: u64,
}

/// Items of `record`: per nested array `field` and, one level down, `field/sub`.
fn count_items(
    record: &serde_json::Map<String, Value>,
    prefix: &str,
    out: &mut BTreeMap<String, u64>,
) {
    for (field, value) in record {
        let Value::Array(items) = value else { continue };
        if !items.iter().all(|i| i.get("id").is_some()) || items.is_empty() {
            continue;
        }
        *out.entry(format!("{prefix}/{field}")).or_default() += items.len() as u64;
        for item in items {
            if let Value::Object(item) = item {
                count_items(item, &format!("{prefix}/{field}"), out);
            }
        }
    }
}

impl Planned {
    pub(crate) fn note(&mut self, doc: &Document, written: bool) {
        let counter = if written {
            &mut self.written
        } else {
            &mut self.already
        };
        *counter.entry(doc.table.clone()).or_default() += 1;
        self.ids
            .entry(doc.table.clone())
            .or_default()
            .push((doc.collection.clone(), doc.id.clone()));
        if doc.created_by.is_none() {
            self.unowned += 1;
        }
        count_items(&doc.record, &doc.table, &mut self.items);
    }
}

/// A record that could not be written.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Failure {
    pub table: String,
    pub key: String,
    pub error: String,
}

/// One source table against what the store holds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TableCheck {
    pub table: String,
    /// `collection` for a top-level table, `collection.field[.field]` for a child table.
    pub target: String,
    pub rows: u64,
    /// Records (top-level) or items (child table) in the store for those rows.
    pub stored: u64,
    /// Rows left out because the row they belong to does not exist.
    pub orphans: u64,
    /// Items of a nested level the collection does not declare.
    pub left_out: u64,
    pub written: u64,
    pub already_there: u64,
    pub matches: bool,
}

/// The closing report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    pub run_id: String,
    /// The audit source of every change the run made (`migration:<run id>`).
    pub source: String,
    pub dry_run: bool,
    pub tables: Vec<TableCheck>,
    /// Foreign keys and many-to-many values pointing at rows that do not exist, by
    /// `table.column`.
    pub orphans: BTreeMap<String, u64>,
    pub unmapped_tables: Vec<String>,
    pub unmapped_columns: BTreeMap<String, Vec<String>>,
    /// Records no one owns (`created_by` is `migration`: no caller sees them).
    pub unowned: u64,
    pub failures: Vec<Failure>,
}

impl Check {
    /// Do the counts match, and did every record go in?
    pub fn matches(&self) -> bool {
        self.failures.is_empty() && self.tables.iter().all(|t| t.matches)
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let verb = if self.dry_run { "would write" } else { "wrote" };
        let _ = writeln!(
            s,
            "{} {} (audit source {})",
            if self.dry_run { "Dry run" } else { "Migration" },
            self.run_id,
            self.source
        );
        for t in &self.tables {
            // Items are written with their record: the record counts say how.
            let records = if t.target.contains('.') {
                String::new()
            } else {
                format!(
                    "  ({verb} {}, {} already there)",
                    t.written, t.already_there
                )
            };
            let _ = writeln!(
                s,
                "  {} {:<36} -> {:<36} rows {:>7}  stored {:>7}{}{}{records}",
                if t.matches { "ok  " } else { "FAIL" },
                t.table,
                t.target,
                t.rows,
                t.stored,
                if t.orphans > 0 {
                    format!("  orphans {}", t.orphans)
                } else {
                    String::new()
                },
                if t.left_out > 0 {
                    format!(
                        "  left out {} (the collection has no such nested level)",
                        t.left_out
                    )
                } else {
                    String::new()
                },
            );
        }
        for (at, n) in &self.orphans {
            let _ = writeln!(
                s,
                "  orphan foreign key: {at}: {n} rows point at nothing (left out)"
            );
        }
        for t in &self.unmapped_tables {
            let _ = writeln!(s, "  unmapped table: {t}");
        }
        for (t, cols) in &self.unmapped_columns {
            let _ = writeln!(s, "  unmapped columns of {t}: {}", cols.join(", "));
        }
        if self.unowned > 0 {
            let _ = writeln!(
                s,
                "  warning: {} records have no owner (created_by = {UNOWNED}); no one can see them",
                self.unowned
            );
        }
        for f in &self.failures {
            let _ = writeln!(s, "  failed: {} row {}: {}", f.table, f.key, f.error);
        }
        let _ = writeln!(
            s,
            "{}",
            if self.matches() {
                "Counts match."
            } else {
                "MISMATCH: see the lines marked FAIL."
            }
        );
        s
    }
}

/// Items of the stored records of one table, by `table/field[/field]`.
fn stored_items(
    state: &State,
    table: &str,
    ids: &[(String, String)],
) -> (u64, BTreeMap<String, u64>) {
    let mut found = 0;
    let mut items = BTreeMap::new();
    for (c, id) in ids {
        let (Ok(c), Ok(id)) = (CollectionName::parse(c), RecordId::parse(id)) else {
            continue;
        };
        if let Some(doc) = state.get(&c, &id)
            && let Value::Object(record) = doc.value()
        {
            found += 1;
            count_items(&record, table, &mut items);
        }
    }
    (found, items)
}

/// Builds the closing report. `stored` is the store after the run (`None` for a dry
/// run: what would be written is counted instead).
#[allow(clippy::too_many_arguments)]
pub(crate) fn check(
    run_id: String,
    dry_run: bool,
    mapping: &Mapping,
    stats: &[TableStats],
    (rows, report): (BTreeMap<String, u64>, CheckReport),
    planned: Planned,
    failures: Vec<Failure>,
    stored: Option<&State>,
) -> Check {
    let mut tables = Vec::new();
    let mut orphans = BTreeMap::new();
    for s in stats {
        orphans.extend(s.orphans.iter().map(|(k, v)| (k.clone(), *v)));
    }
    for t in &mapping.tables {
        let ids = planned
            .ids
            .get(&t.table)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let (records, items) = match stored {
            Some(state) => stored_items(state, &t.table, ids),
            None => (ids.len() as u64, planned.items.clone()),
        };
        let n = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or_default();
        let count = rows.get(&t.table).copied().unwrap_or_default();
        tables.push(TableCheck {
            table: t.table.clone(),
            target: t.collection.clone(),
            rows: count,
            stored: records,
            orphans: 0,
            left_out: 0,
            written: n(&planned.written, &t.table),
            already_there: n(&planned.already, &t.table),
            matches: count == records,
        });
        let mut child = |table: &str, parent: &str, path: String, target: String| {
            let count = rows.get(table).copied().unwrap_or_default();
            let stored = n(&items, &path);
            let orphan_rows = n(&orphans, &format!("{table}.{parent}"));
            let left_out = n(&planned.left_out, table);
            tables.push(TableCheck {
                table: table.to_string(),
                target,
                rows: count,
                stored,
                orphans: orphan_rows,
                left_out,
                written: 0,
                already_there: 0,
                matches: count == stored + orphan_rows,
            });
        };
        for nm in &t.nested {
            let path = format!("{}/{}", t.table, nm.field);
            child(
                &nm.table,
                &nm.parent,
                path.clone(),
                format!("{}.{}", t.collection, nm.field),
            );
            for g in &nm.nested {
                child(
                    &g.table,
                    &g.parent,
                    format!("{path}/{}", g.field),
                    format!("{}.{}.{}", t.collection, nm.field, g.field),
                );
            }
        }
    }
    Check {
        source: format!("migration:{run_id}"),
        run_id,
        dry_run,
        tables,
        orphans,
        unmapped_tables: report.unmapped_tables,
        unmapped_columns: report.unmapped_columns,
        unowned: planned.unowned,
        failures,
    }
}
