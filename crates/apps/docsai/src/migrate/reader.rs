//! Reads one mapped table as documents: per top-level row, the record's fields, its
//! nested arrays (child tables through their foreign key, two levels) and its
//! many-to-many id arrays, with deterministic ids and the owner resolved.
//!
//! Memory stays bounded by one document: every query is ordered by the parent's key,
//! and the children are merged in as the parents stream by (one cursor per child
//! table, each read once, in order), never loaded whole. What does stay in memory are
//! the owner map and, for each table a reference points at, the set of its keys (to
//! tell an orphan foreign key from a good one): a few bytes per row.
//!
//! The writer (next step) runs [`Source::read_table`] on a blocking thread and feeds a
//! bounded channel; its loop writes each document in a transaction. Ids derive from
//! `(table, primary key)`, so a second run produces the same ids and is idempotent.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use rusqlite::types::ValueRef;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::cast::cast;
use super::error::{Error, Result};
use super::mapping::{Cast, Mapping, NestedMap, TableMap};
use super::rows::{ChildRow, Ctx, Cursor, Key, Plan, escape, next_pair, select_list};
use super::source::{Source, ident};

/// One record to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub collection: String,
    /// UUIDv5 of `"{table}:{key}"` in the mapping's namespace.
    pub id: String,
    /// Where it came from.
    pub table: String,
    pub key: String,
    /// The owner's uuid; `None` when no one owns it (reported by the closing check).
    pub created_by: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    /// Own fields, nested arrays (items with their ids) and id arrays.
    pub record: Map<String, Value>,
    /// JSON Pointers into `record` of the values mapped as secret.
    pub secrets: Vec<String>,
}

/// What reading one table found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableStats {
    pub table: String,
    pub collection: String,
    pub records: u64,
    /// Items read per child table.
    pub items: BTreeMap<String, u64>,
    /// Rows or values left out because what they point at does not exist, by
    /// `table.column`.
    pub orphans: BTreeMap<String, u64>,
    /// Records no one owns.
    pub unowned: u64,
}

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// `--owner`: every record belongs to this uuid, whatever the mapping says.
    pub owner: Option<Uuid>,
}

impl Source {
    /// Reads `table` (a top-level table of `mapping`) and calls `each` with one document
    /// per row, in primary-key order.
    pub fn read_table(
        &self,
        mapping: &Mapping,
        table: &TableMap,
        options: &ReadOptions,
        mut each: impl FnMut(Document) -> Result<()>,
    ) -> Result<TableStats> {
        self.check(mapping)?;
        let ctx = Ctx {
            source: self,
            namespace: mapping.namespace(),
            keys: RefCell::new(HashMap::new()),
            orphans: RefCell::new(BTreeMap::new()),
        };
        let owners = self.owners(mapping, options)?;
        let pk = |t: &str| self.tables[t].pk.clone().expect("checked: a primary key");
        let t = &table.table;
        let top_pk = pk(t);

        // The top-level query: key, owner, timestamps, then the mapped columns.
        let top_plans = ctx.plans(t, &table.columns);
        let meta: Vec<&str> = std::iter::once(top_pk.as_str())
            .chain(
                [&table.owner, &table.created_at, &table.updated_at]
                    .into_iter()
                    .map(|c| c.as_deref().unwrap_or(top_pk.as_str())),
            )
            .collect();
        let mut sqls = vec![format!(
            "SELECT {} FROM {} AS r ORDER BY r.{}",
            select_list(&meta, &top_plans, "r"),
            ident(t),
            ident(&top_pk)
        )];
        // Child tables: ordered by (parent key, own key); grandchildren joined to their
        // parent and ordered by (top key, parent key, own key).
        struct Level<'m> {
            map: &'m NestedMap,
            plans: Vec<Plan>,
        }
        let mut levels: Vec<(Level<'_>, Vec<Level<'_>>)> = Vec::new();
        for n in &table.nested {
            let n_pk = pk(&n.table);
            let plans = ctx.plans(&n.table, &n.columns);
            let mut cols = vec![n.parent.as_str(), n_pk.as_str()];
            cols.extend(n.created_at.as_deref());
            sqls.push(format!(
                "SELECT {} FROM {} AS c ORDER BY c.{}, c.{}",
                select_list(&cols, &plans, "c"),
                ident(&n.table),
                ident(&n.parent),
                ident(&n_pk)
            ));
            let mut subs = Vec::new();
            for g in &n.nested {
                let g_pk = pk(&g.table);
                let g_plans = ctx.plans(&g.table, &g.columns);
                let mut gcols = vec![g.parent.as_str(), g_pk.as_str()];
                gcols.extend(g.created_at.as_deref());
                sqls.push(format!(
                    "SELECT c.{}, {} FROM {} AS g JOIN {} AS c ON g.{} = c.{} ORDER BY c.{}, c.{}, g.{}",
                    ident(&n.parent),
                    select_list(&gcols, &g_plans, "g"),
                    ident(&g.table),
                    ident(&n.table),
                    ident(&g.parent),
                    ident(&n_pk),
                    ident(&n.parent),
                    ident(&n_pk),
                    ident(&g_pk)
                ));
                subs.push(Level {
                    map: g,
                    plans: g_plans,
                });
            }
            levels.push((Level { map: n, plans }, subs));
        }
        for m in &table.many {
            sqls.push(format!(
                "SELECT {}, {} FROM {} ORDER BY {}, rowid",
                ident(&m.from),
                ident(&m.to),
                ident(&m.through),
                ident(&m.from)
            ));
        }

        let mut stmts = sqls
            .iter()
            .map(|s| self.conn.prepare(s))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut stmt_iter = stmts.iter_mut();
        let mut top = stmt_iter.next().expect("the top query").query([])?;
        let mut cursors = Vec::new();
        for (level, subs) in levels {
            let rows = stmt_iter.next().expect("a child query").query([])?;
            let mut c = Cursor {
                rows,
                table: level.map.table.clone(),
                plans: level.plans,
                nkeys: 1,
                created_at: level.map.created_at.is_some(),
                head: None,
                count: 0,
            };
            c.advance(&ctx)?;
            let mut sub_cursors = Vec::new();
            for g in subs {
                let rows = stmt_iter.next().expect("a grandchild query").query([])?;
                let mut gc = Cursor {
                    rows,
                    table: g.map.table.clone(),
                    plans: g.plans,
                    nkeys: 2,
                    created_at: g.map.created_at.is_some(),
                    head: None,
                    count: 0,
                };
                gc.advance(&ctx)?;
                sub_cursors.push((g.map, gc));
            }
            cursors.push((level.map, c, sub_cursors));
        }
        let mut many = Vec::new();
        for m in &table.many {
            many.push((m, stmt_iter.next().expect("a through query").query([])?));
        }
        let mut many_heads: Vec<Option<(Key, Key)>> = Vec::new();
        for (_, rows) in many.iter_mut() {
            many_heads.push(next_pair(rows)?);
        }

        let mut stats = TableStats {
            table: t.clone(),
            collection: table.collection.clone(),
            ..TableStats::default()
        };
        while let Some(row) = top.next()? {
            let key = Key::of(row.get_ref(0)?);
            let mut record = Map::new();
            let mut secrets = Vec::new();
            let created_by = match (&options.owner, &table.owner) {
                (Some(o), _) => Some(o.hyphenated().to_string()),
                (None, Some(_)) => {
                    let raw = row.get_ref(1)?;
                    match &owners {
                        Some(map) => map.get(&Key::of(raw)).cloned(),
                        None => match raw {
                            ValueRef::Null => None,
                            other => cast(Cast::Uuid, other)
                                .map(|v| v.as_str().map(String::from))
                                .map_err(|problem| Error::Cast {
                                    table: t.clone(),
                                    key: key.to_string(),
                                    column: table.owner.clone().unwrap_or_default(),
                                    problem,
                                })?,
                        },
                    }
                }
                (None, None) => None,
            };
            if created_by.is_none() {
                stats.unowned += 1;
            }
            let stamp = |i: usize, column: &Option<String>| -> Result<Option<String>> {
                let Some(column) = column else {
                    return Ok(None);
                };
                match row.get_ref(i)? {
                    ValueRef::Null => Ok(None),
                    raw => cast(Cast::Datetime, raw)
                        .map(|v| v.as_str().map(String::from))
                        .map_err(|problem| Error::Cast {
                            table: t.clone(),
                            key: key.to_string(),
                            column: column.clone(),
                            problem,
                        }),
                }
            };
            let created_at = stamp(2, &table.created_at)?;
            let updated_at = stamp(3, &table.updated_at)?;
            ctx.convert(t, &key, row, 4, &top_plans, &mut record, &mut secrets, "")?;

            for (n, cursor, subs) in cursors.iter_mut() {
                let mut items = Vec::new();
                for child in cursor.take(&ctx, &[&key], &n.parent)? {
                    let ChildRow {
                        key: item_key,
                        mut item,
                        secrets: item_secrets,
                        ..
                    } = child;
                    let i = items.len();
                    secrets.extend(
                        item_secrets
                            .iter()
                            .map(|s| format!("/{}/{i}{s}", escape(&n.field))),
                    );
                    for (g, gc) in subs.iter_mut() {
                        let mut sub_items = Vec::new();
                        for grandchild in gc.take(&ctx, &[&key, &item_key], &g.parent)? {
                            let ChildRow {
                                item: sub,
                                secrets: sub_secrets,
                                ..
                            } = grandchild;
                            let j = sub_items.len();
                            secrets.extend(sub_secrets.iter().map(|s| {
                                format!("/{}/{i}/{}/{j}{s}", escape(&n.field), escape(&g.field))
                            }));
                            sub_items.push(Value::Object(sub));
                        }
                        item.insert(g.field.clone(), Value::Array(sub_items));
                    }
                    items.push(Value::Object(item));
                }
                record.insert(n.field.clone(), Value::Array(items));
            }
            for (k, (m, rows)) in many.iter_mut().enumerate() {
                let mut ids = Vec::new();
                while let Some((from, to)) = many_heads[k].clone() {
                    match from.cmp(&key) {
                        Ordering::Greater => break,
                        Ordering::Less => ctx.orphan(&m.through, &m.from),
                        Ordering::Equal => {
                            if ctx.exists(&m.target, &to)? {
                                ids.push(json!(ctx.id(&m.target, &to)));
                            } else {
                                ctx.orphan(&m.through, &m.to);
                            }
                        }
                    }
                    many_heads[k] = next_pair(rows)?;
                }
                record.insert(m.field.clone(), Value::Array(ids));
            }
            stats.records += 1;
            each(Document {
                collection: table.collection.clone(),
                id: ctx.id(t, &key),
                table: t.clone(),
                key: key.to_string(),
                created_by,
                created_at,
                updated_at,
                record,
                secrets,
            })?;
        }
        // What is left in the child cursors never found its parent.
        for (n, cursor, subs) in cursors.iter_mut() {
            cursor.drain(&ctx, &n.parent)?;
            stats.items.insert(n.table.clone(), cursor.count);
            for (g, gc) in subs.iter_mut() {
                gc.drain(&ctx, &g.parent)?;
                stats.items.insert(g.table.clone(), gc.count);
                // Grandchildren whose parent row is missing altogether (the join
                // dropped them).
                let lost: i64 = self.conn.query_row(
                    &format!(
                        "SELECT count(*) FROM {} AS g WHERE g.{} IS NULL OR NOT EXISTS (SELECT 1 FROM {} AS c WHERE c.{} = g.{})",
                        ident(&g.table),
                        ident(&g.parent),
                        ident(&n.table),
                        ident(&pk(&n.table)),
                        ident(&g.parent)
                    ),
                    [],
                    |r| r.get(0),
                )?;
                for _ in 0..lost {
                    ctx.orphan(&g.table, &g.parent);
                }
            }
        }
        for (k, (m, rows)) in many.iter_mut().enumerate() {
            while many_heads[k].is_some() {
                ctx.orphan(&m.through, &m.from);
                many_heads[k] = next_pair(rows)?;
            }
        }
        stats.orphans = ctx.orphans.into_inner();
        Ok(stats)
    }

    /// The owner column's value -> uuid map, unless `--owner` overrides it.
    fn owners(
        &self,
        mapping: &Mapping,
        options: &ReadOptions,
    ) -> Result<Option<HashMap<Key, String>>> {
        let Some(o) = mapping.owners.as_ref().filter(|_| options.owner.is_none()) else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {}, {} FROM {}",
            ident(&o.user),
            ident(&o.uuid),
            ident(&o.table)
        ))?;
        let mut rows = stmt.query([])?;
        let mut map = HashMap::new();
        while let Some(r) = rows.next()? {
            let user = Key::of(r.get_ref(0)?);
            let raw = r.get_ref(1)?;
            if matches!(raw, ValueRef::Null) {
                continue;
            }
            let uuid = cast(Cast::Uuid, raw).map_err(|problem| Error::Cast {
                table: o.table.clone(),
                key: user.to_string(),
                column: o.uuid.clone(),
                problem,
            })?;
            map.insert(user, uuid.as_str().unwrap_or_default().to_string());
        }
        Ok(Some(map))
    }
}
