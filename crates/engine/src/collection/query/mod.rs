//! Listing records: equality filters, a CEL filter, sort and pages over a snapshot.
//!
//! Semantics: a record is listed when it passes the deleted filter, every equality filter,
//! the caller's `visible` check and the CEL filter; lists sort by the given fields, then by
//! id, so pages are stable. An equality filter on an `index` field matches the field's
//! canonical JSON exactly (once some record has the field; before that it is evaluated on
//! the documents like other fields, where a missing field equals `null`).
//!
//! The CEL filter is the caller's, so it is run as untrusted:
//! - **access first**: `visible` (the access rule) is decided before CEL evaluates the
//!   filter on a record, so a costly filter never runs on records the caller may not see,
//!   and its errors are never about them. Only the plain comparisons below, which cannot
//!   fail and cost a few steps, may skip a record before `visible` is asked;
//! - **errors**: a record the filter does not apply to ([`ExprError::Mismatch`]: a missing
//!   field, `null` or another type where the filter expects a number, ...) does not match;
//!   records differ in their optional fields. Any other failure on a record the caller
//!   may see (division by zero, overflow, an invalid regex, a result that is not a bool)
//!   is a mistake in the filter: the list fails with [`Error::InvalidFilter`]. A filter
//!   that does not compile never gets here (the caller compiles it: [`Expr::compile`]
//!   refuses literal regexes that are invalid or too large to compile cheaply);
//! - **budget**: [`Query::budget`] bounds the time spent evaluating records; it is looked
//!   at every [`BUDGET_CHECK_EVERY`] candidates, and once spent the list fails with
//!   [`Error::QueryTooCostly`] (the cure is an equality filter on an indexed field, which
//!   shrinks the candidates). Lists the indexes answer alone evaluate nothing.
//!
//! A list is plain CPU work on a snapshot: async callers run it off their executor
//! (`spawn_blocking`).
//!
//! How it runs, cheapest first (documents are stored as text, and parsing one costs about
//! as much as everything else a list does per record):
//! - candidates come from the indexes: each equality filter on an `index` field, and each
//!   top-level `record.field == "literal"` conjunct of the CEL filter on one, gives a set
//!   of records (with their documents); the soft-deleted set answers the deleted filter;
//! - when nothing else filters (no other equality, no CEL, and `visible: None`), the total
//!   is counted on those sets and a page in id order, or sorted by an indexed field, is
//!   read straight off the indexes: only the page's documents are parsed;
//! - otherwise each candidate is evaluated on the top-level fields the filters and sort
//!   need, decoded from its text (the whole document only for `visible`, or for a CEL
//!   filter that uses `record` other than through its fields). Top-level conjuncts
//!   `record.field <op> literal` are decided without CEL where the answer is plain (same
//!   types), so a filter made only of those runs no CEL at all. Sort keys are taken once
//!   per record and only the first `page × per_page` are ordered.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cel::IdedExpr;
use cel::common::ast::operators::{
    EQUALS, GREATER, GREATER_EQUALS, LESS, LESS_EQUALS, LOGICAL_AND, NOT_EQUALS,
};
use cel::common::ast::{EntryExpr, Expr as Node, LiteralValue, MapExpr, StructExpr};
use imbl::OrdMap;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::definition::Compiled;
use super::expr::{Expr, ExprError, Vars};
use super::integrity::Ids;
use super::keys::SortKey;
use super::render::{Secrets, render};
use super::secret::SecretBox;
use crate::error::{Error, Result};
use crate::names::{CollectionName, RecordId};
use crate::state::{CollectionState, Doc, State};

mod decode;
mod plan;
mod rule;
mod shape;
#[cfg(test)]
mod tests;

use decode::*;
use plan::*;
use rule::Reach;
use shape::*;

/// Which records a list shows with respect to soft delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Deleted {
    #[default]
    Exclude,
    Include,
    Only,
}

/// A list request.
#[derive(Debug, Clone)]
pub struct Query {
    /// `field = value` (JSON values; a string filter also matches a number or boolean
    /// written the same way, since query strings carry no types).
    pub equals: Vec<(String, Value)>,
    /// A CEL filter over `record` (and whatever `vars` the caller passes).
    pub filter: Option<Expr>,
    /// `(field, descending)`.
    pub sort: Vec<(String, bool)>,
    /// 1-based.
    pub page: usize,
    pub per_page: usize,
    pub deleted: Deleted,
    /// How long evaluating records may take (`None`: no limit); past it the list fails
    /// with [`Error::QueryTooCostly`].
    pub budget: Option<Duration>,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            equals: Vec::new(),
            filter: None,
            sort: Vec::new(),
            page: 1,
            per_page: 50,
            deleted: Deleted::Exclude,
            budget: None,
        }
    }
}

/// Most records in one page.
pub const MAX_PER_PAGE: usize = 1000;

/// One page of results.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Value>,
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
}

impl Page {
    fn empty(query: &Query) -> Page {
        Page {
            items: Vec::new(),
            total: 0,
            page: query.page,
            per_page: query.per_page,
        }
    }
}

/// The definition and the records a list reads, once the page and sort are known to be
/// acceptable (`None`: defined, but nothing written yet).
fn checked<'s>(
    state: &'s State,
    c: &CollectionName,
    query: &Query,
) -> Result<(&'s Arc<Compiled>, Option<&'s CollectionState>)> {
    let def = state
        .definition(c)
        .ok_or_else(|| Error::UnknownCollection {
            collection: c.to_string(),
        })?;
    if query.page == 0 || query.per_page == 0 || query.per_page > MAX_PER_PAGE {
        return Err(Error::invalid(
            "page",
            format!("page starts at 1; per_page is 1 to {MAX_PER_PAGE}"),
        ));
    }
    for (field, _) in &query.sort {
        if def.is_secret(field) {
            return Err(Error::invalid("sort", format!("{field} is a secret field")));
        }
    }
    Ok((def, state.collection(c)))
}

/// Runs `query` on `c`. `visible` decides per record whether the caller may see it
/// (access rules); `vars` are extra CEL variables for the filter (e.g. `auth`).
///
/// Every candidate record is parsed for `visible`; use [`list_with`] and `None` for a
/// caller who may see every record.
pub fn list(
    state: &State,
    c: &CollectionName,
    query: &Query,
    vars: &[(&str, &Value)],
    visible: &dyn Fn(&Value) -> bool,
    key: Option<&SecretBox>,
) -> Result<Page> {
    list_with(state, c, query, vars, Some(visible), key)
}

/// [`list`], where `visible: None` means the caller may see every record (no access rule
/// applies, e.g. a SuperAdmin), so a list the indexes answer parses only its page.
pub fn list_with(
    state: &State,
    c: &CollectionName,
    query: &Query,
    vars: &[(&str, &Value)],
    visible: Option<&dyn Fn(&Value) -> bool>,
    key: Option<&SecretBox>,
) -> Result<Page> {
    run_list(state, c, query, vars, visible, None, key)
}

/// [`list`] for a caller bound by an access rule: a record is shown when `rule`
/// (evaluated with `vars` and `record`) is true; `None`: no rule, so no record. The rule
/// is read for the index entries it confines records to (see `rule.rs`), so a list for
/// an owner or a staff member reads only the records the rule can let through, and a
/// rule that holds for everyone (`auth.role == "manager" || ...` for a manager) is not
/// decided per record at all.
pub fn list_under_rule(
    state: &State,
    c: &CollectionName,
    query: &Query,
    vars: &[(&str, &Value)],
    rule: Option<&Expr>,
    key: Option<&SecretBox>,
) -> Result<Page> {
    let (def, coll) = checked(state, c, query)?;
    let Some(coll) = coll else {
        return Ok(Page::empty(query));
    };
    // No record can be shown: still planned, so a bad query is refused as for others.
    let nothing = || run_list(state, c, query, vars, None, Some(Vec::new()), key);
    let Some(rule) = rule else {
        return nothing();
    };
    let decide = |record: &Value| {
        let mut scope = Vars::new().with("record", record);
        for (name, value) in vars {
            scope = scope.with(name, value);
        }
        rule.eval_bool(&scope).unwrap_or(false)
    };
    match Reach::of(rule, vars, def, coll) {
        Reach::All => run_list(state, c, query, vars, None, None, key),
        Reach::Nothing => nothing(),
        Reach::Exactly(entries) => run_list(state, c, query, vars, None, Some(entries), key),
        Reach::Within(entries) => {
            run_list(state, c, query, vars, Some(&decide), Some(entries), key)
        }
        Reach::Unknown => run_list(state, c, query, vars, Some(&decide), None, key),
    }
}

/// Runs a list; `within`: index entries every visible record is under.
fn run_list<'s>(
    state: &'s State,
    c: &CollectionName,
    query: &Query,
    vars: &[(&str, &Value)],
    visible: Option<&dyn Fn(&Value) -> bool>,
    within: Option<Vec<&'s Ids>>,
    key: Option<&SecretBox>,
) -> Result<Page> {
    let (def, coll) = checked(state, c, query)?;
    let Some(coll) = coll else {
        return Ok(Page::empty(query));
    };
    let budget = Budget::start(query.budget);
    let plan = Plan::new(def, coll, query, vars, within)?;
    let start = (query.page - 1).saturating_mul(query.per_page);
    let (ids, total) = plan.run(start, query.per_page, visible, &budget)?;
    let items = ids
        .into_iter()
        .filter_map(|id| Some((id, coll.docs.get(id)?)))
        .map(|(id, doc)| {
            render(
                Some(def),
                c,
                id,
                doc.value(),
                doc.version,
                Secrets::Omit,
                key,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Page {
        items,
        total,
        page: query.page,
        per_page: query.per_page,
    })
}
