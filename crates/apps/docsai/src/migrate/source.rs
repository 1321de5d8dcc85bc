//! The SQLite database being migrated: opened read-only, its schema read once, and the
//! mapping checked against it before anything is read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::error::{Error, Result};
use super::mapping::{ColumnSpec, Mapping, NestedMap, TableMap};

/// One column as `PRAGMA table_info` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// The declared type (`bool`, `datetime`, `decimal`, `varchar(32)`...).
    pub declared: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<Column>,
    /// The primary key column, when the table has a single-column one.
    pub pk: Option<String>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// A database opened for a migration.
pub struct Source {
    pub(crate) conn: Connection,
    pub(crate) tables: BTreeMap<String, Table>,
}

/// What the check found that is not an error: tables and columns no one mapped or
/// ignored. The closing check of a migration lists them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CheckReport {
    pub unmapped_tables: Vec<String>,
    pub unmapped_columns: BTreeMap<String, Vec<String>>,
}

/// An SQL identifier, quoted.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Source {
    /// Opens `path` read-only (the file is never written, nor its journal) and reads
    /// its schema.
    pub fn open(path: &Path) -> Result<Source> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| Error::Source(format!("{}: {e}", path.display())))?;
        conn.pragma_update(None, "query_only", true)?;
        let names: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()
            .map_err(|e| Error::Source(format!("{}: {e}", path.display())))?;
        let mut tables = BTreeMap::new();
        for name in names {
            let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", ident(&name)))?;
            let cols: Vec<(String, String, i64)> = stmt
                .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(5)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let pks: Vec<&String> = cols.iter().filter(|c| c.2 > 0).map(|c| &c.0).collect();
            let pk = match pks.as_slice() {
                [one] => Some((*one).clone()),
                _ => None,
            };
            let columns = cols
                .iter()
                .map(|(n, t, _)| Column {
                    name: n.clone(),
                    declared: t.clone(),
                })
                .collect();
            tables.insert(name, Table { columns, pk });
        }
        Ok(Source { conn, tables })
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    /// Rows in a table (for the closing check).
    pub fn count(&self, table: &str) -> Result<u64> {
        let n: i64 =
            self.conn
                .query_row(&format!("SELECT count(*) FROM {}", ident(table)), [], |r| {
                    r.get(0)
                })?;
        Ok(n as u64)
    }

    /// Checks that every table and column the mapping names exists (all problems at
    /// once), and reports what is neither mapped nor ignored.
    pub fn check(&self, mapping: &Mapping) -> Result<CheckReport> {
        let mut problems = Vec::new();
        let mut report = CheckReport::default();
        let mut used: BTreeSet<&str> = BTreeSet::new();
        if let Some(o) = &mapping.owners {
            used.insert(&o.table);
            self.need(&o.table, &[&o.user, &o.uuid], &mut problems);
        }
        for t in &mapping.tables {
            used.insert(&t.table);
            self.check_table(t, &mut problems, &mut report);
            for m in &t.many {
                used.insert(&m.through);
                self.need(&m.through, &[&m.from, &m.to], &mut problems);
            }
            for n in &t.nested {
                used.insert(&n.table);
                self.check_nested(n, &mut problems, &mut report);
                for g in &n.nested {
                    used.insert(&g.table);
                    self.check_nested(g, &mut problems, &mut report);
                }
            }
        }
        report.unmapped_tables = self
            .tables
            .keys()
            .filter(|t| !used.contains(t.as_str()) && !mapping.is_ignored(t))
            .cloned()
            .collect();
        if problems.is_empty() {
            Ok(report)
        } else {
            Err(Error::Schema(problems))
        }
    }

    /// The table exists, with these columns and a one-column primary key.
    fn need(&self, table: &str, columns: &[&str], problems: &mut Vec<String>) -> bool {
        let Some(t) = self.tables.get(table) else {
            problems.push(format!("table {table} does not exist"));
            return false;
        };
        if t.pk.is_none() {
            problems.push(format!("table {table} has no single-column primary key"));
        }
        for c in columns {
            if t.column(c).is_none() {
                problems.push(format!("table {table} has no column {c}"));
            }
        }
        true
    }

    fn check_columns(
        &self,
        table: &str,
        named: Vec<&str>,
        columns: &BTreeMap<String, ColumnSpec>,
        ignore: &[String],
        problems: &mut Vec<String>,
        report: &mut CheckReport,
    ) {
        let mut all: Vec<&str> = named;
        all.extend(columns.keys().map(String::as_str));
        all.extend(ignore.iter().map(String::as_str));
        if !self.need(table, &all, problems) {
            return;
        }
        let t = &self.tables[table];
        let unmapped: Vec<String> = t
            .columns
            .iter()
            .map(|c| c.name.clone())
            .filter(|c| Some(c) != t.pk.as_ref() && !all.contains(&c.as_str()))
            .collect();
        if !unmapped.is_empty() {
            report.unmapped_columns.insert(table.to_string(), unmapped);
        }
    }

    fn check_table(&self, t: &TableMap, problems: &mut Vec<String>, report: &mut CheckReport) {
        let named: Vec<&str> = [&t.owner, &t.created_at, &t.updated_at]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        self.check_columns(&t.table, named, &t.columns, &t.ignore, problems, report);
    }

    fn check_nested(&self, n: &NestedMap, problems: &mut Vec<String>, report: &mut CheckReport) {
        let mut named = vec![n.parent.as_str()];
        named.extend(n.created_at.as_deref());
        self.check_columns(&n.table, named, &n.columns, &n.ignore, problems, report);
    }
}
