//! Rows to JSON: a table's mapped columns resolved against the schema ([`Plan`]), the
//! conversion of one row with references translated to derived ids ([`Ctx`]), and the
//! cursors that walk a child table in its parent's order ([`Cursor`]).
//!
//! Keys compare as SQLite orders them (NULL, then numbers, then text), so a child query
//! ordered by its foreign key merges with the parent query ordered by its primary key.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::Rows;
use rusqlite::types::ValueRef;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::cast::{cast, from_declared, text_of};
use super::error::{Error, Result};
use super::mapping::{Cast, ColumnMap, ColumnSpec};
use super::source::{Source, ident};

/// A primary or foreign key value, ordered as SQLite orders them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Key {
    Null,
    Int(i64),
    Text(String),
}

impl Key {
    pub(crate) fn of(v: ValueRef<'_>) -> Key {
        match v {
            ValueRef::Null => Key::Null,
            ValueRef::Integer(i) => Key::Int(i),
            ValueRef::Real(f) if f.fract() == 0.0 => Key::Int(f as i64),
            other => Key::Text(text_of(other).unwrap_or_default()),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Null => f.write_str("null"),
            Key::Int(i) => write!(f, "{i}"),
            Key::Text(s) => f.write_str(s),
        }
    }
}

/// One mapped column, resolved against the schema.
pub(crate) struct Plan {
    pub(crate) column: String,
    pub(crate) field: String,
    pub(crate) cast: Cast,
    pub(crate) reference: Option<String>,
    pub(crate) secret: bool,
    pub(crate) values: Option<BTreeMap<String, Value>>,
}

pub(crate) fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// What conversions share: ids, owners, the key sets of referenced tables, counters.
pub(crate) struct Ctx<'a> {
    pub(crate) source: &'a Source,
    pub(crate) namespace: Uuid,
    pub(crate) keys: RefCell<HashMap<String, HashSet<Key>>>,
    pub(crate) orphans: RefCell<BTreeMap<String, u64>>,
}

impl Ctx<'_> {
    pub(crate) fn id(&self, table: &str, key: &Key) -> String {
        Uuid::new_v5(&self.namespace, format!("{table}:{key}").as_bytes()).to_string()
    }

    pub(crate) fn orphan(&self, table: &str, column: &str) {
        *self
            .orphans
            .borrow_mut()
            .entry(format!("{table}.{column}"))
            .or_default() += 1;
    }

    pub(crate) fn exists(&self, table: &str, key: &Key) -> Result<bool> {
        if !self.keys.borrow().contains_key(table) {
            let pk = self.source.tables[table].pk.clone().unwrap_or_default();
            let mut stmt = self.source.conn.prepare(&format!(
                "SELECT {} FROM {}",
                ident(&pk),
                ident(table)
            ))?;
            let mut rows = stmt.query([])?;
            let mut set = HashSet::new();
            while let Some(r) = rows.next()? {
                set.insert(Key::of(r.get_ref(0)?));
            }
            self.keys.borrow_mut().insert(table.to_string(), set);
        }
        Ok(self.keys.borrow()[table].contains(key))
    }

    pub(crate) fn plans(&self, table: &str, columns: &BTreeMap<String, ColumnSpec>) -> Vec<Plan> {
        let schema = &self.source.tables[table];
        columns
            .iter()
            .map(|(column, spec)| {
                let ColumnMap {
                    field,
                    cast,
                    reference,
                    secret,
                    values,
                } = spec.resolved(column);
                let declared = schema
                    .column(column)
                    .map(|c| c.declared.as_str())
                    .unwrap_or("");
                Plan {
                    column: column.clone(),
                    field: field.unwrap_or_else(|| column.clone()),
                    cast: if cast == Cast::Auto {
                        from_declared(declared)
                    } else {
                        cast
                    },
                    reference,
                    secret,
                    values,
                }
            })
            .collect()
    }

    /// Converts `plans` from `row` (starting at column `at`) into `out`; secret fields
    /// are noted as pointers under `prefix`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn convert(
        &self,
        table: &str,
        key: &Key,
        row: &rusqlite::Row<'_>,
        at: usize,
        plans: &[Plan],
        out: &mut Map<String, Value>,
        secrets: &mut Vec<String>,
        prefix: &str,
    ) -> Result<()> {
        for (i, p) in plans.iter().enumerate() {
            let raw = row.get_ref(at + i)?;
            if matches!(raw, ValueRef::Null) {
                continue;
            }
            let bad = |problem: String| Error::Cast {
                table: table.to_string(),
                key: key.to_string(),
                column: p.column.clone(),
                problem,
            };
            let value = if let Some(target) = &p.reference {
                let k = Key::of(raw);
                if !self.exists(target, &k)? {
                    self.orphan(table, &p.column);
                    continue;
                }
                json!(self.id(target, &k))
            } else if let Some(values) = &p.values {
                let text = text_of(raw).unwrap_or_default();
                values
                    .get(&text)
                    .cloned()
                    .ok_or_else(|| bad(format!("{text:?} is not one of the mapped values")))?
            } else {
                cast(p.cast, raw).map_err(bad)?
            };
            if p.secret {
                secrets.push(format!("{prefix}/{}", escape(&p.field)));
            }
            out.insert(p.field.clone(), value);
        }
        Ok(())
    }
}

/// One row of a child table: its sort keys, its own key, the item and its secrets.
pub(crate) struct ChildRow {
    pub(crate) keys: Vec<Key>,
    pub(crate) key: Key,
    pub(crate) item: Map<String, Value>,
    pub(crate) secrets: Vec<String>,
}

/// A child table's rows in parent order. `keys` are the sort keys (the parent's key,
/// and for the second level also the middle row's key).
pub(crate) struct Cursor<'s> {
    pub(crate) rows: Rows<'s>,
    pub(crate) table: String,
    pub(crate) plans: Vec<Plan>,
    /// Key columns before the row's own key; then created_at if mapped; then plans.
    pub(crate) nkeys: usize,
    pub(crate) created_at: bool,
    pub(crate) head: Option<ChildRow>,
    pub(crate) count: u64,
}

impl<'s> Cursor<'s> {
    pub(crate) fn advance(&mut self, ctx: &Ctx<'_>) -> Result<()> {
        self.head = match self.rows.next()? {
            None => None,
            Some(row) => {
                let keys = (0..self.nkeys)
                    .map(|i| row.get_ref(i).map(Key::of))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let key = Key::of(row.get_ref(self.nkeys)?);
                let mut item = Map::new();
                item.insert("id".into(), json!(ctx.id(&self.table, &key)));
                let mut at = self.nkeys + 1;
                if self.created_at {
                    let raw = row.get_ref(at)?;
                    if !matches!(raw, ValueRef::Null) {
                        let v = cast(Cast::Datetime, raw).map_err(|problem| Error::Cast {
                            table: self.table.clone(),
                            key: key.to_string(),
                            column: "created_at".into(),
                            problem,
                        })?;
                        item.insert("created_at".into(), v);
                    }
                    at += 1;
                }
                let mut secrets = Vec::new();
                ctx.convert(
                    &self.table,
                    &key,
                    row,
                    at,
                    &self.plans,
                    &mut item,
                    &mut secrets,
                    "",
                )?;
                Some(ChildRow {
                    keys,
                    key,
                    item,
                    secrets,
                })
            }
        };
        Ok(())
    }

    /// Takes the rows whose sort keys equal `want`; rows before it are orphans.
    pub(crate) fn take(
        &mut self,
        ctx: &Ctx<'_>,
        want: &[&Key],
        parent_column: &str,
    ) -> Result<Vec<ChildRow>> {
        let mut out = Vec::new();
        while let Some(head) = &self.head {
            let here: Vec<&Key> = head.keys.iter().collect();
            match here.as_slice().cmp(want) {
                Ordering::Less => {
                    ctx.orphan(&self.table, parent_column);
                    self.advance(ctx)?;
                }
                Ordering::Equal => {
                    out.push(self.head.take().expect("a head"));
                    self.count += 1;
                    self.advance(ctx)?;
                }
                Ordering::Greater => break,
            }
        }
        Ok(out)
    }

    /// Counts what is left (rows whose parent never came) as orphans.
    pub(crate) fn drain(&mut self, ctx: &Ctx<'_>, parent_column: &str) -> Result<()> {
        while self.head.is_some() {
            ctx.orphan(&self.table, parent_column);
            self.advance(ctx)?;
        }
        Ok(())
    }
}

pub(crate) fn select_list(columns: &[&str], plans: &[Plan], alias: &str) -> String {
    columns
        .iter()
        .copied()
        .chain(plans.iter().map(|p| p.column.as_str()))
        .map(|c| format!("{alias}.{}", ident(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn next_pair(rows: &mut Rows<'_>) -> Result<Option<(Key, Key)>> {
    Ok(match rows.next()? {
        None => None,
        Some(r) => Some((Key::of(r.get_ref(0)?), Key::of(r.get_ref(1)?))),
    })
}
