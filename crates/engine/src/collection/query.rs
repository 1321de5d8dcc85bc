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
use super::records::{Secrets, render};
use super::secret::SecretBox;
use crate::error::{Error, Result};
use crate::names::{CollectionName, RecordId};
use crate::state::{CollectionState, Doc, State};

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
    let (def, coll) = checked(state, c, query)?;
    let Some(coll) = coll else {
        return Ok(Page::empty(query));
    };
    let budget = Budget::start(query.budget);
    let plan = Plan::new(def, coll, query, vars)?;
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

/// A sorted walk of an index visits about `page end × records / candidates` entries; it
/// is taken when that is at most this many times the candidates (each of which the other
/// way decodes).
const WALK_PER_CANDIDATE: usize = 4;

/// How one list runs.
struct Plan<'a> {
    def: &'a Compiled,
    coll: &'a CollectionState,
    query: &'a Query,
    vars: &'a [(&'a str, &'a Value)],
    candidates: Candidates<'a>,
    /// Equality filters evaluated on the documents.
    rest: Vec<(&'a str, &'a Value)>,
    /// What the CEL filter reads and requires.
    shape: Option<FilterShape>,
}

impl<'a> Plan<'a> {
    fn new(
        def: &'a Compiled,
        coll: &'a CollectionState,
        query: &'a Query,
        vars: &'a [(&'a str, &'a Value)],
    ) -> Result<Self> {
        let mut sets: Vec<Vec<&'a Ids>> = Vec::new();
        let mut rest = Vec::new();
        for (field, value) in &query.equals {
            if def.is_secret(field) {
                return Err(Error::invalid(
                    "filter",
                    format!("{field} is a secret field"),
                ));
            }
            match coll.indexes.fields.get(field) {
                Some(values) if def.def.index.contains(field) && has_values(values) => {
                    let union = value_forms(value)
                        .iter()
                        .filter_map(|form| values.get(&SortKey::of(Some(form))))
                        .collect();
                    sets.push(union);
                }
                _ => rest.push((field.as_str(), value)),
            }
        }
        let shape = query.filter.as_ref().map(|f| FilterShape::of(f, vars));
        for (field, value) in shape.iter().flat_map(FilterShape::equals) {
            if let Some(values) = coll.indexes.fields.get(field)
                && def.def.index.iter().any(|f| f == field)
            {
                sets.push(values.get(&SortKey::of(Some(&value))).into_iter().collect());
            }
        }
        Ok(Plan {
            def,
            coll,
            query,
            vars,
            candidates: Candidates {
                coll,
                deleted: query.deleted,
                sets: (!sets.is_empty()).then_some(sets),
            },
            rest,
            shape,
        })
    }

    /// The ids of the page starting at `start`, and the total.
    fn run(
        &self,
        start: usize,
        per_page: usize,
        visible: Option<&dyn Fn(&Value) -> bool>,
        budget: &Budget,
    ) -> Result<(Vec<&'a RecordId>, usize)> {
        let indexed_only = self.rest.is_empty() && self.query.filter.is_none() && visible.is_none();
        if indexed_only {
            if self.query.sort.is_empty() {
                let page = self.candidates.iter().skip(start).take(per_page);
                let ids = page.map(|(id, _)| id).collect();
                return Ok((ids, self.candidates.count()));
            }
            if let Some(values) = self.sort_index(start.saturating_add(per_page)) {
                let ids = self.walk(values, start, per_page);
                return Ok((ids, self.candidates.count()));
            }
        }
        self.evaluate(start, per_page, visible, budget)
    }

    /// The index of the first sort field, when walking it is the cheaper way to a page
    /// that ends at `end`.
    fn sort_index(&self, end: usize) -> Option<&'a OrdMap<SortKey, Ids>> {
        let (field, _) = self.query.sort.first()?;
        if !self.def.def.index.contains(field) {
            return None;
        }
        let values = self.coll.indexes.fields.get(field)?;
        #[cfg(test)]
        if let Some(walk) = tests::FORCE.get().0 {
            return walk.then_some(values);
        }
        let candidates = self.candidates.bound().max(1);
        let walk = end.saturating_mul(self.coll.docs.len()) / candidates;
        (walk <= candidates.saturating_mul(WALK_PER_CANDIDATE)).then_some(values)
    }

    /// Reads a page off the index of the first sort field: records with equal values (in
    /// list order) form a group, in id order unless more sort fields order it, which
    /// decodes only the groups the page touches.
    fn walk(
        &self,
        values: &'a OrdMap<SortKey, Ids>,
        start: usize,
        per_page: usize,
    ) -> Vec<&'a RecordId> {
        let entries: Box<dyn Iterator<Item = (&'a SortKey, &'a Ids)>> = if self.query.sort[0].1 {
            Box::new(values.iter().rev())
        } else {
            Box::new(values.iter())
        };
        let mut entries = entries.peekable();
        let mut page = Vec::with_capacity(per_page);
        let mut before = 0; // candidates in earlier groups
        let mut group: Vec<Entry<'a>> = Vec::new();
        while let Some((key, ids)) = entries.next() {
            group.clear();
            group.extend(ids.iter().filter(|(id, _)| self.candidates.contains(id)));
            let mut merged = false;
            while let Some((next, ids)) = entries.peek()
                && next.order(key) == Ordering::Equal
            {
                group.extend(ids.iter().filter(|(id, _)| self.candidates.contains(id)));
                merged = true;
                entries.next();
            }
            if before + group.len() <= start {
                before += group.len();
                continue;
            }
            if merged {
                group.sort_unstable_by(|a, b| a.0.cmp(b.0));
            }
            let ordered: Vec<&'a RecordId> = if self.query.sort.len() > 1 && group.len() > 1 {
                let mut rows = Rows::new(&self.query.sort[1..]);
                let fields = rows.fields();
                for (id, body) in &group {
                    rows.push(id, Record::of(body, &fields, false));
                }
                rows.page(0, usize::MAX)
            } else {
                group.iter().map(|(id, _)| *id).collect()
            };
            let skip = start.saturating_sub(before);
            page.extend(ordered.iter().skip(skip).take(per_page - page.len()));
            before += group.len();
            if page.len() == per_page {
                break;
            }
        }
        page
    }

    /// Evaluates every candidate on its document: the plain filters, then the caller's
    /// access (`visible`), then what of the CEL filter the plain comparisons left open.
    fn evaluate(
        &self,
        start: usize,
        per_page: usize,
        visible: Option<&dyn Fn(&Value) -> bool>,
        budget: &Budget,
    ) -> Result<(Vec<&'a RecordId>, usize)> {
        let filter = self.query.filter.as_ref();
        let filters = !self.rest.is_empty() || filter.is_some();
        // The whole document, when something needs it anyway.
        let shape = self.shape.as_ref();
        let whole = shape.is_some_and(|s| s.fields.is_none()) || (visible.is_some() && !filters);
        let mut rows = Rows::new(&self.query.sort);
        let mut fields: Vec<&str> = rows.fields();
        fields.extend(self.rest.iter().map(|(f, _)| *f));
        fields.extend(
            shape
                .and_then(|s| s.fields.as_ref())
                .into_iter()
                .flatten()
                .map(String::as_str),
        );
        fields.sort_unstable();
        fields.dedup();
        let mut page = Vec::new();
        let mut total = 0;
        for (n, (id, body)) in self.candidates.iter().enumerate() {
            if n % BUDGET_CHECK_EVERY == BUDGET_CHECK_EVERY - 1 {
                budget.check(n + 1, self.def)?;
            }
            let record = Record::of(body, &fields, whole);
            if !self
                .rest
                .iter()
                .all(|(f, v)| loosely_equal(record.get(f), v))
            {
                continue;
            }
            // The plain comparisons' verdict: cheap, and never an error.
            let verdict = match shape {
                Some(shape) if filter.is_some() => shape.verdict(&record),
                _ => Some(true),
            };
            if verdict == Some(false) {
                continue;
            }
            if let Some(visible) = visible {
                let shown = match &record {
                    Record::Whole(value) => visible(value),
                    Record::Fields(..) => visible(&parse(body)),
                };
                if !shown {
                    continue;
                }
            }
            if let (None, Some(filter)) = (verdict, filter) {
                let object = record.object();
                let mut scope = Vars::new().with("record", &object);
                for (name, v) in self.vars {
                    scope = scope.with(name, v);
                }
                if !filter_matches(filter, &scope)? {
                    continue;
                }
            }
            total += 1;
            if !self.query.sort.is_empty() {
                rows.push(id, record);
            } else if total > start && page.len() < per_page {
                page.push(id);
            }
        }
        if !self.query.sort.is_empty() {
            page = rows.page(start, per_page);
        }
        Ok((page, total))
    }
}

/// Whether a record matches the CEL filter: a record the filter does not apply to (a
/// missing field, a value of another type) does not; any other failure, or a result
/// that is not a bool, is a mistake in the filter and fails the list.
fn filter_matches(filter: &Expr, scope: &Vars<'_>) -> Result<bool> {
    match filter.eval_bool(scope) {
        Ok(matched) => Ok(matched),
        Err(ExprError::Mismatch { .. }) => Ok(false),
        Err(e) => Err(Error::InvalidFilter {
            reason: e.to_string(),
        }),
    }
}

/// How many candidates a list evaluates between two looks at the clock.
const BUDGET_CHECK_EVERY: usize = 64;

/// The evaluation time a list may still spend.
struct Budget {
    /// When it started and how long it may run; `None`: no limit.
    limit: Option<(Instant, Duration)>,
}

impl Budget {
    fn start(limit: Option<Duration>) -> Budget {
        Budget {
            limit: limit.map(|limit| (Instant::now(), limit)),
        }
    }

    /// Fails once the budget is spent; `evaluated` candidates so far.
    fn check(&self, evaluated: usize, def: &Compiled) -> Result<()> {
        match self.limit {
            Some((started, limit)) if started.elapsed() >= limit => {
                let indexed = &def.def.index;
                Err(Error::QueryTooCostly {
                    budget_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                    evaluated,
                    indexed: if indexed.is_empty() {
                        "this collection has none".to_owned()
                    } else {
                        indexed.join(", ")
                    },
                })
            }
            _ => Ok(()),
        }
    }
}

/// Below this many documents per wanted one, reading them in order beats looking each
/// up (a lookup in a large map costs tens of sequential steps, mostly cache misses).
const MERGE_RATIO: usize = 32;

/// A record and its stored document.
type Entry<'a> = (&'a RecordId, &'a Arc<RawValue>);

/// The documents of `ids` (in id order, about `n` of them).
fn with_docs<'a: 'b, 'b>(
    docs: &'a OrdMap<RecordId, Doc>,
    ids: impl Iterator<Item = &'a RecordId> + 'b,
    n: usize,
) -> Box<dyn Iterator<Item = Entry<'a>> + 'b> {
    let lookup = n.saturating_mul(MERGE_RATIO) < docs.len();
    #[cfg(test)]
    let lookup = tests::FORCE.get().1.unwrap_or(lookup);
    if lookup {
        return Box::new(ids.filter_map(|id| docs.get_key_value(id).map(|(id, d)| (id, &d.body))));
    }
    let mut all = docs.iter().peekable();
    Box::new(ids.filter_map(move |id| {
        while let Some((key, doc)) = all.peek() {
            match (*key).cmp(id) {
                Ordering::Less => {
                    all.next();
                }
                Ordering::Equal => return Some((*key, &doc.body)),
                Ordering::Greater => return None,
            }
        }
        None
    }))
}

/// Parses a stored document.
fn parse(body: &RawValue) -> Value {
    serde_json::from_str(body.get()).expect("stored documents are valid JSON")
}

/// What a list reads of one document: the whole, or only some top-level fields.
enum Record<'f> {
    Whole(Value),
    /// Values of the fields, in order (`None`: absent).
    Fields(&'f [&'f str], Vec<Option<Value>>),
}

impl<'f> Record<'f> {
    fn of(body: &RawValue, fields: &'f [&'f str], whole: bool) -> Self {
        if !whole {
            let mut values = vec![None; fields.len()];
            let mut done = false;
            let pick = Pick {
                fields,
                out: &mut values,
                done: &mut done,
            };
            let read = pick.deserialize(&mut serde_json::Deserializer::from_str(body.get()));
            if read.is_ok() || done {
                return Record::Fields(fields, values);
            }
        }
        Record::Whole(parse(body))
    }

    /// Takes a field's value out.
    fn take(&mut self, field: &str) -> Option<Value> {
        match self {
            Record::Whole(value) => value.as_object_mut()?.remove(field),
            Record::Fields(fields, values) => {
                let i = fields.iter().position(|f| *f == field)?;
                values[i].take()
            }
        }
    }

    fn get(&self, field: &str) -> Option<&Value> {
        match self {
            Record::Whole(value) => value.get(field),
            Record::Fields(fields, values) => {
                let i = fields.iter().position(|f| *f == field)?;
                values[i].as_ref()
            }
        }
    }

    /// As a JSON object (with only the fields read, if that is all there is).
    fn object(&self) -> Cow<'_, Value> {
        match self {
            Record::Whole(value) => Cow::Borrowed(value),
            Record::Fields(fields, values) => Cow::Owned(Value::Object(
                fields
                    .iter()
                    .zip(values)
                    .filter_map(|(f, v)| Some(((*f).to_owned(), v.clone()?)))
                    .collect(),
            )),
        }
    }
}

/// Does any record have the field (not just `Missing` entries)?
fn has_values(values: &OrdMap<SortKey, Ids>) -> bool {
    values
        .get_max()
        .is_some_and(|(key, _)| !matches!(key, SortKey::Missing))
}

/// The records a list may show according to the indexes: the deleted filter, and
/// equality filters answered by index entries.
struct Candidates<'a> {
    coll: &'a CollectionState,
    deleted: Deleted,
    /// `None`: no such filter. Otherwise a record must be under one of each group's
    /// entries (a filter value may match a few canonical forms).
    sets: Option<Vec<Vec<&'a Ids>>>,
}

impl<'a> Candidates<'a> {
    /// Passes the deleted filter?
    fn shown(&self, id: &RecordId) -> bool {
        match self.deleted {
            Deleted::Include => true,
            Deleted::Exclude => !self.coll.indexes.deleted.contains(id),
            Deleted::Only => self.coll.indexes.deleted.contains(id),
        }
    }

    fn contains(&self, id: &RecordId) -> bool {
        self.shown(id)
            && self
                .sets
                .iter()
                .flatten()
                .all(|union| union.iter().any(|ids| ids.contains(id)))
    }

    /// At least as many as there are.
    fn bound(&self) -> usize {
        let (docs, deleted) = (self.coll.docs.len(), self.coll.indexes.deleted.len());
        let by_deleted = match self.deleted {
            Deleted::Include => docs,
            Deleted::Exclude => docs.saturating_sub(deleted),
            Deleted::Only => deleted,
        };
        let by_sets = self.sets.iter().flatten().map(|union| union_len(union));
        by_sets.fold(by_deleted, usize::min)
    }

    fn count(&self) -> usize {
        if self.sets.is_none() {
            return self.bound();
        }
        self.iter().count()
    }

    /// With their documents, in id order.
    fn iter(&self) -> Box<dyn Iterator<Item = Entry<'a>> + '_> {
        let docs = &self.coll.docs;
        let Some(sets) = &self.sets else {
            return match self.deleted {
                Deleted::Only => {
                    let deleted = &self.coll.indexes.deleted;
                    with_docs(docs, deleted.iter(), deleted.len())
                }
                _ => Box::new(
                    (docs.iter())
                        .filter(|(id, _)| self.shown(id))
                        .map(|(id, d)| (id, &d.body)),
                ),
            };
        };
        let Some((smallest, _)) = sets.iter().enumerate().min_by_key(|(_, u)| union_len(u)) else {
            return Box::new(std::iter::empty());
        };
        let base: Box<dyn Iterator<Item = Entry<'a>>> = match sets[smallest].as_slice() {
            [] => Box::new(std::iter::empty()),
            [one] => Box::new(one.iter()),
            several => {
                let mut all: Vec<Entry<'a>> = several.iter().flat_map(|i| i.iter()).collect();
                all.sort_unstable_by(|a, b| a.0.cmp(b.0));
                all.dedup_by(|a, b| a.0 == b.0);
                Box::new(all.into_iter())
            }
        };
        Box::new(base.filter(move |(id, _)| {
            self.shown(id)
                && sets
                    .iter()
                    .enumerate()
                    .all(|(i, union)| i == smallest || union.iter().any(|ids| ids.contains(id)))
        }))
    }
}

fn union_len(union: &[&Ids]) -> usize {
    union.iter().map(|ids| ids.len()).sum()
}

/// Matched records with their sort keys (one per sort field, flat).
struct Rows<'a, 's> {
    sort: &'s [(String, bool)],
    ids: Vec<&'a RecordId>,
    keys: Vec<SortKey>,
}

impl<'a, 's> Rows<'a, 's> {
    fn new(sort: &'s [(String, bool)]) -> Self {
        Rows {
            sort,
            ids: Vec::new(),
            keys: Vec::new(),
        }
    }

    /// The fields the sort reads.
    fn fields(&self) -> Vec<&'s str> {
        self.sort.iter().map(|(f, _)| f.as_str()).collect()
    }

    fn push(&mut self, id: &'a RecordId, mut record: Record<'_>) {
        for (i, (field, _)) in self.sort.iter().enumerate() {
            let again = self.sort[i + 1..].iter().any(|(f, _)| f == field);
            self.keys.push(if again {
                SortKey::of(record.get(field))
            } else {
                SortKey::of_owned(record.take(field))
            });
        }
        self.ids.push(id);
    }

    fn cmp(&self, a: usize, b: usize) -> Ordering {
        let width = self.sort.len();
        let (ka, kb) = (
            &self.keys[a * width..(a + 1) * width],
            &self.keys[b * width..(b + 1) * width],
        );
        for ((x, y), (_, desc)) in ka.iter().zip(kb).zip(self.sort) {
            let ord = x.order(y);
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        self.ids[a].cmp(self.ids[b])
    }

    /// Sorted, `start..start + len`: only the first `start + len` are ordered.
    fn page(self, start: usize, len: usize) -> Vec<&'a RecordId> {
        let n = self.ids.len();
        let end = start.saturating_add(len).min(n);
        if start >= end {
            return Vec::new();
        }
        let mut order: Vec<usize> = (0..n).collect();
        if end < n {
            order.select_nth_unstable_by(end, |a, b| self.cmp(*a, *b));
            order.truncate(end);
        }
        order.sort_unstable_by(|a, b| self.cmp(*a, *b));
        order[start..].iter().map(|i| self.ids[*i]).collect()
    }
}

/// Decodes the top-level `fields` of an object into `out` (in order; `None` when
/// absent), skipping the rest, and stops reading once it has them all (documents are
/// canonical: no key repeats), which ends the decoding with an error after `done` is set.
/// Fails on anything but an object.
struct Pick<'f, 'o> {
    fields: &'f [&'f str],
    out: &'o mut [Option<Value>],
    done: &'o mut bool,
}

impl<'de> DeserializeSeed<'de> for Pick<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Pick<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut missing = self.fields.len();
        while missing > 0
            && let Some(Key(key)) = map.next_key()?
        {
            match self.fields.iter().position(|f| *f == key) {
                Some(i) => {
                    if self.out[i].is_none() {
                        missing -= 1;
                    }
                    self.out[i] = Some(map.next_value()?);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        *self.done = true;
        Ok(())
    }
}

/// An object key, borrowed unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> std::result::Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> std::result::Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// What a CEL filter reads of `record`, and the comparisons it requires.
struct FilterShape {
    /// The top-level fields it reads; `None` when it uses `record` otherwise (or the
    /// caller binds a variable that may stand for it).
    fields: Option<BTreeSet<String>>,
    /// Its top-level conjuncts of the form `record.field <op> literal`: a record matches
    /// only if each holds.
    compares: Vec<Compare>,
    /// It is the conjunction of `compares` and nothing else.
    complete: bool,
}

impl FilterShape {
    fn of(filter: &Expr, vars: &[(&str, &Value)]) -> FilterShape {
        let unknown = FilterShape {
            fields: None,
            compares: Vec::new(),
            complete: false,
        };
        if vars
            .iter()
            .any(|(name, _)| name.trim_start_matches('.').starts_with("record"))
        {
            return unknown;
        }
        let Ok(program) = cel::Program::compile(filter.source()) else {
            return unknown;
        };
        let root = program.expression();
        let mut leaves = Vec::new();
        conjuncts(root, &mut leaves);
        let compares: Vec<Compare> = leaves.iter().filter_map(|c| Compare::of(c)).collect();
        FilterShape {
            fields: record_fields(root),
            complete: compares.len() == leaves.len(),
            compares,
        }
    }

    /// The filter's verdict on `record` where the comparisons settle it: one fails (or
    /// would fail to evaluate), or all hold and are the whole filter.
    fn verdict(&self, record: &Record<'_>) -> Option<bool> {
        let mut settled = self.complete;
        for compare in &self.compares {
            match compare.eval(record.get(&compare.field)) {
                Some(true) => {}
                Some(false) => return Some(false),
                None => settled = false,
            }
        }
        settled.then_some(true)
    }

    /// `record.field == literal` conjuncts with a string, boolean or null: a matching
    /// record's field holds exactly that JSON value.
    fn equals(&self) -> impl Iterator<Item = (&str, Value)> + '_ {
        self.compares.iter().filter_map(|c| {
            let value = match (&c.op, &c.literal) {
                (Op::Eq, Literal::String(s)) => Value::String(s.clone()),
                (Op::Eq, Literal::Bool(b)) => Value::Bool(*b),
                (Op::Eq, Literal::Null) => Value::Null,
                _ => return None,
            };
            Some((c.field.as_str(), value))
        })
    }
}

fn is_record(node: &IdedExpr) -> bool {
    matches!(&node.expr, Node::Ident(name) if name.trim_start_matches('.') == "record")
}

/// The operands of the top-level `&&`s (a CEL `&&` is true only when both sides are).
fn conjuncts<'e>(node: &'e IdedExpr, out: &mut Vec<&'e IdedExpr>) {
    match &node.expr {
        Node::Call(call) if call.target.is_none() && call.func_name == LOGICAL_AND => {
            call.args.iter().for_each(|arg| conjuncts(arg, out));
        }
        _ => out.push(node),
    }
}

/// A conjunct `record.field <op> literal` (or `literal <op> record.field`), which a list
/// evaluates itself where it knows CEL's answer.
#[derive(Debug)]
struct Compare {
    field: String,
    op: Op,
    literal: Literal,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug)]
enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    String(String),
}

/// A CEL number: JSON integers are `int` when they fit, else `uint`; others `double`.
#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    UInt(u64),
    Double(f64),
}

impl Num {
    fn of(n: &serde_json::Number) -> Num {
        match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Num::Int(i),
            (None, Some(u)) => Num::UInt(u),
            _ => Num::Double(n.as_f64().unwrap_or(f64::NAN)),
        }
    }

    /// As `cel` compares numbers: integers exactly, a double with anything as `f64`.
    fn cmp(self, other: Num) -> Option<Ordering> {
        let float = |n| match n {
            Num::Int(i) => i as f64,
            Num::UInt(u) => u as f64,
            Num::Double(d) => d,
        };
        let int = |n| match n {
            Num::Int(i) => Some(i128::from(i)),
            Num::UInt(u) => Some(i128::from(u)),
            Num::Double(_) => None,
        };
        match (int(self), int(other)) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => float(self).partial_cmp(&float(other)),
        }
    }

    fn same_kind(self, other: Num) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }
}

impl Compare {
    fn of(node: &IdedExpr) -> Option<Compare> {
        let Node::Call(call) = &node.expr else {
            return None;
        };
        let op = match call.func_name.as_str() {
            _ if call.target.is_some() => return None,
            EQUALS => Op::Eq,
            NOT_EQUALS => Op::Ne,
            LESS => Op::Lt,
            LESS_EQUALS => Op::Le,
            GREATER => Op::Gt,
            GREATER_EQUALS => Op::Ge,
            _ => return None,
        };
        let [a, b] = call.args.as_slice() else {
            return None;
        };
        let flipped = match op {
            Op::Lt => Op::Gt,
            Op::Le => Op::Ge,
            Op::Gt => Op::Lt,
            Op::Ge => Op::Le,
            same => same,
        };
        let (field, op, literal) = match (record_field(a), literal(b)) {
            (Some(field), Some(literal)) => (field, op, literal),
            _ => (record_field(b)?, flipped, literal(a)?),
        };
        Some(Compare { field, op, literal })
    }

    /// CEL's verdict on a record whose field holds `value` (`None`: missing), where the
    /// list can tell it: `Some(false)` also stands for an error (no match either way).
    fn eval(&self, value: Option<&Value>) -> Option<bool> {
        let equality = matches!(self.op, Op::Eq | Op::Ne);
        let Some(value) = value else {
            return Some(false); // no such key: an error
        };
        let ord = match (value, &self.literal) {
            (Value::String(x), Literal::String(y)) => x.as_str().cmp(y.as_str()),
            (Value::Bool(x), Literal::Bool(y)) if equality => x.cmp(y),
            (Value::Null, Literal::Null) if equality => Ordering::Equal,
            (Value::Number(x), y) => {
                let x = Num::of(x);
                let y = match y {
                    Literal::Int(i) => Num::Int(*i),
                    Literal::UInt(u) => Num::UInt(*u),
                    Literal::Double(d) => Num::Double(*d),
                    _ => return None,
                };
                if equality && !x.same_kind(y) {
                    return None;
                }
                x.cmp(y)?
            }
            _ => return None,
        };
        Some(match self.op {
            Op::Eq => ord == Ordering::Equal,
            Op::Ne => ord != Ordering::Equal,
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
            Op::Gt => ord == Ordering::Greater,
            Op::Ge => ord != Ordering::Less,
        })
    }
}

/// `record.field` (not `has(record.field)`).
fn record_field(node: &IdedExpr) -> Option<String> {
    match &node.expr {
        Node::Select(select) if !select.test && is_record(&select.operand) => {
            Some(select.field.clone())
        }
        _ => None,
    }
}

fn literal(node: &IdedExpr) -> Option<Literal> {
    let Node::Literal(literal) = &node.expr else {
        return None;
    };
    Some(match literal {
        LiteralValue::Null => Literal::Null,
        LiteralValue::Boolean(b) => Literal::Bool(*b.inner()),
        LiteralValue::Int(i) => Literal::Int(*i.inner()),
        LiteralValue::UInt(u) => Literal::UInt(*u.inner()),
        LiteralValue::Double(d) => Literal::Double(*d.inner()),
        LiteralValue::String(s) => Literal::String(s.inner().to_owned()),
        LiteralValue::Bytes(_) => return None,
    })
}

/// The fields read as `record.field` (or tested with `has`); `None` if `record` (or a
/// name that could resolve to it) appears in any other way.
fn record_fields(root: &IdedExpr) -> Option<BTreeSet<String>> {
    let mut fields = BTreeSet::new();
    let mut todo = vec![root];
    while let Some(node) = todo.pop() {
        match &node.expr {
            Node::Select(select) if is_record(&select.operand) => {
                fields.insert(select.field.clone());
            }
            Node::Select(select) => todo.push(&select.operand),
            Node::Ident(name) if name.trim_start_matches('.').starts_with("record") => {
                return None;
            }
            Node::Call(call) => {
                todo.extend(call.target.as_deref());
                todo.extend(&call.args);
            }
            Node::Comprehension(c) => todo.extend([
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ]),
            Node::List(list) => todo.extend(&list.elements),
            Node::Map(MapExpr { entries }) | Node::Struct(StructExpr { entries, .. }) => {
                for entry in entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(e) => todo.extend([&e.key, &e.value]),
                        EntryExpr::StructField(f) => todo.push(&f.value),
                    }
                }
            }
            Node::Ident(_) | Node::Literal(_) | Node::Unspecified => {}
        }
    }
    Some(fields)
}

/// The values a filter value may match (query strings are untyped): itself, and for a
/// string that is JSON for something else, that.
fn value_forms(value: &Value) -> Vec<Value> {
    let mut forms = vec![value.clone()];
    if let Value::String(s) = value
        && let Ok(parsed) = serde_json::from_str::<Value>(s)
        && !parsed.is_string()
    {
        forms.push(parsed);
    }
    forms
}

fn loosely_equal(field: Option<&Value>, wanted: &Value) -> bool {
    let field = field.unwrap_or(&Value::Null);
    field == wanted
        || matches!(wanted, Value::String(s) if serde_json::from_str::<Value>(s).ok().as_ref() == Some(field))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;
    use serde_json::{Map, json};

    use super::*;
    use crate::canonical::{to_canonical_raw, to_canonical_string};

    thread_local! {
        /// Forces the plan's choices: walk a sort index; look documents up one by one.
        pub(super) static FORCE: std::cell::Cell<(Option<bool>, Option<bool>)> =
            const { std::cell::Cell::new((None, None)) };
    }
    use crate::collection::Definition;
    use crate::collection::integrity::Mode;
    use crate::log::{Op, OpKind, TxnRecord};
    use crate::names::Seq;

    /// The list as first written: parses every record, sorts them all with [`compare`].
    /// An equality filter on an `index` field matches canonical JSON exactly once some
    /// record has the field (what the index answered).
    fn reference(
        state: &State,
        c: &CollectionName,
        query: &Query,
        vars: &[(&str, &Value)],
        visible: &dyn Fn(&Value) -> bool,
    ) -> Result<Page> {
        let (def, coll) = checked(state, c, query)?;
        let Some(coll) = coll else {
            return Ok(Page::empty(query));
        };
        let docs: Vec<(RecordId, Value)> = coll
            .docs
            .iter()
            .map(|(id, d)| (id.clone(), d.value()))
            .collect();
        let mut indexed = Vec::new();
        let mut rest = Vec::new();
        for (field, value) in &query.equals {
            if def.is_secret(field) {
                return Err(Error::invalid("filter", format!("{field} is secret")));
            }
            if def.def.index.contains(field) && docs.iter().any(|(_, v)| v.get(field).is_some()) {
                let mut forms = vec![to_canonical_string(value)];
                if let Value::String(s) = value
                    && let Ok(parsed) = serde_json::from_str::<Value>(s)
                    && !parsed.is_string()
                {
                    forms.push(to_canonical_string(&parsed));
                }
                indexed.push((field, forms));
            } else {
                rest.push((field, value));
            }
        }
        let mut matched: Vec<(RecordId, Value)> = Vec::new();
        for (id, value) in docs {
            let live = super::super::keys::is_live(&value);
            let keep = match query.deleted {
                Deleted::Exclude => live,
                Deleted::Include => true,
                Deleted::Only => !live,
            };
            let in_index = indexed.iter().all(|(f, forms)| {
                value
                    .get(f.as_str())
                    .is_some_and(|v| forms.contains(&to_canonical_string(v)))
            });
            if !keep
                || !in_index
                || !rest
                    .iter()
                    .all(|(f, v)| loosely_equal(value.get(f.as_str()), v))
            {
                continue;
            }
            if !visible(&value) {
                continue;
            }
            if let Some(filter) = &query.filter {
                let mut scope = Vars::new().with("record", &value);
                for (name, v) in vars {
                    scope = scope.with(name, v);
                }
                if !filter_matches(filter, &scope)? {
                    continue;
                }
            }
            matched.push((id, value));
        }
        matched.sort_by(|(ia, a), (ib, b)| {
            for (field, desc) in &query.sort {
                let ord = compare(a.get(field), b.get(field));
                let ord = if *desc { ord.reverse() } else { ord };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            ia.cmp(ib)
        });
        let total = matched.len();
        let start = (query.page - 1).saturating_mul(query.per_page);
        let items = matched
            .into_iter()
            .skip(start)
            .take(query.per_page)
            .map(|(id, value)| {
                let version = coll.docs.get(&id).map(|d| d.version).unwrap_or_default();
                render(Some(def), c, &id, value, version, Secrets::Omit, None)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Page {
            items,
            total,
            page: query.page,
            per_page: query.per_page,
        })
    }

    /// A total order on JSON for sorting: null < bool < number < string < array < object.
    fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
        fn rank(v: &Value) -> u8 {
            match v {
                Value::Null => 0,
                Value::Bool(_) => 1,
                Value::Number(_) => 2,
                Value::String(_) => 3,
                Value::Array(_) => 4,
                Value::Object(_) => 5,
            }
        }
        let (a, b) = (a.unwrap_or(&Value::Null), b.unwrap_or(&Value::Null));
        match (a, b) {
            (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            }
            (Value::String(x), Value::String(y)) => x.cmp(y),
            _ if rank(a) != rank(b) => rank(a).cmp(&rank(b)),
            _ => to_canonical_string(a).cmp(&to_canonical_string(b)),
        }
    }

    const ITEMS: &str = r#"
name = "items"
soft_delete = true
index = ["a", "b", "n", "s"]
secret = ["pw"]
schema = { type = "object" }
"#;

    /// Fields records may have: `a`, `b`, `n`, `s` indexed (`n` is rarely set).
    const FIELDS: [&str; 7] = ["a", "b", "c", "n", "num", "s", "pw"];

    fn items() -> CollectionName {
        CollectionName::parse("items").unwrap()
    }

    fn txn(ops: Vec<Op>) -> TxnRecord {
        TxnRecord {
            actor: "test".into(),
            audit: Vec::new(),
            id: uuid::Uuid::nil(),
            ops,
            reads: Vec::new(),
            request_id: None,
            source: "test".into(),
        }
    }

    fn put(c: &CollectionName, id: &str, doc: &Value) -> Op {
        Op {
            collection: c.clone(),
            doc: Some(Arc::from(to_canonical_raw(doc))),
            id: RecordId::parse(id).unwrap(),
            op: OpKind::Put,
        }
    }

    /// What happens to record `i` after the creates.
    #[derive(Debug, Clone)]
    enum Change {
        Update(usize, Vec<(usize, Option<Value>)>),
        SoftDelete(usize),
        Restore(usize, bool),
        Purge(usize),
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (0i64..4).prop_map(Value::from),
            prop::sample::select(vec![1.0f64, 2.5, -0.0, 0.0, 3.0, -1.5]).prop_map(Value::from),
            Just(json!(18446744073709551615u64)),
            Just(json!(18446744073709551614u64)),
            prop::sample::select(vec!["x", "y", "1", "2.5", "true", "null", "", "Ä", "a\"b"])
                .prop_map(Value::from),
            Just(json!([1, 2])),
            Just(json!(["x"])),
            Just(json!([])),
            Just(json!({"k": 1})),
            Just(json!({"j": [true]})),
        ]
    }

    fn fields() -> impl Strategy<Value = Vec<(usize, Option<Value>)>> {
        prop::collection::vec(
            (0..FIELDS.len(), prop::option::weighted(0.8, value())),
            0..6,
        )
    }

    fn build(records: &[Vec<(usize, Option<Value>)>], changes: &[Change]) -> State {
        let mut state = State::default();
        let mut seq = Seq::ZERO;
        let mut apply = |state: &mut State, ops: Vec<Op>| {
            seq = seq.next();
            state.apply_txn(&txn(ops), seq, Mode::Trust).unwrap();
        };
        let def = Definition::from_toml(ITEMS).unwrap();
        let definitions = CollectionName::definitions();
        apply(&mut state, vec![put(&definitions, "items", &def.to_json())]);
        let c = items();
        let mut docs: Vec<Option<Map<String, Value>>> = Vec::new();
        let mut ops = Vec::new();
        for (i, fields) in records.iter().enumerate() {
            let mut doc = Map::new();
            doc.insert("id".into(), json!(format!("r{i:02}")));
            doc.insert("deleted_at".into(), Value::Null);
            for (f, v) in fields {
                if let Some(v) = v {
                    doc.insert(FIELDS[*f].into(), v.clone());
                }
            }
            ops.push(put(&c, &format!("r{i:02}"), &Value::Object(doc.clone())));
            docs.push(Some(doc));
            // A few transactions of a few records.
            if i % 3 == 2 {
                apply(&mut state, std::mem::take(&mut ops));
            }
        }
        apply(&mut state, ops);
        for change in changes {
            let (i, doc) = match change {
                Change::Update(i, _)
                | Change::SoftDelete(i)
                | Change::Restore(i, _)
                | Change::Purge(i) => (*i, docs.get_mut(*i).and_then(Option::as_mut)),
            };
            let Some(doc) = doc else { continue };
            let id = format!("r{i:02}");
            match change {
                Change::Update(_, fields) => {
                    for (f, v) in fields {
                        match v {
                            Some(v) => doc.insert(FIELDS[*f].into(), v.clone()),
                            None => doc.remove(FIELDS[*f]),
                        };
                    }
                }
                Change::SoftDelete(_) => {
                    doc.insert("deleted_at".into(), json!("2024-01-01T00:00:00Z"));
                }
                Change::Restore(_, explicit) => {
                    if *explicit {
                        doc.insert("deleted_at".into(), Value::Null);
                    } else {
                        doc.remove("deleted_at");
                    }
                }
                Change::Purge(_) => {
                    docs[i] = None;
                    apply(
                        &mut state,
                        vec![Op {
                            collection: c.clone(),
                            doc: None,
                            id: RecordId::parse(&id).unwrap(),
                            op: OpKind::Delete,
                        }],
                    );
                    continue;
                }
            }
            let doc = Value::Object(doc.clone());
            apply(&mut state, vec![put(&c, &id, &doc)]);
        }
        state
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            3 => (0usize..30, fields()).prop_map(|(i, f)| Change::Update(i, f)),
            3 => (0usize..30).prop_map(Change::SoftDelete),
            1 => (0usize..30, any::<bool>()).prop_map(|(i, e)| Change::Restore(i, e)),
            1 => (0usize..30).prop_map(Change::Purge),
        ]
    }

    const FILTERS: &[&str] = &[
        r#"record.a == "x""#,
        r#"record.a == "x" && record.num >= 1"#,
        r#"record.b == true && has(record.c)"#,
        r#""y" == record.s && record.a != null"#,
        r#"record.n == null"#,
        r#"record.a == "1" || record.c == 1"#,
        "record.num >= 1",
        "has(record.c) && record.c == 1",
        "size(record) > 3",
        "record.a == record.b",
        "[1, 2].exists(record, record == 1)",
        r#"record.s == "Ä" && record.b == "x""#,
        "record.num",
        r#"record.pw == "p""#,
        r#"record.a == auth.want"#,
        "record.num >= 1 && record.num < 2.5",
        "1 < record.num && record.a != 1",
        "record.num == 1 && record.b == record.b",
        "record.num != 1.0 && record.a <= 'x'",
        "record.num != 1",
        "record.a > 'x' || record.a < 'x'",
        "record.b != true && record.c == null",
        "record.num > 18446744073709551614u",
        "record.num >= 18446744073709551615u && record.num <= 18446744073709551615.0",
        "record.num >= -1 && record.num <= 2",
        "-1.5 == record.num",
        "record.a == null && record.b != null",
        "record.s >= 'x' && has(record.a)",
        "record.b == false",
        "record.num < 3 && record.num > 0.5 && record.a != 'y'",
    ];

    const SORTABLE: [&str; 9] = ["a", "b", "c", "n", "num", "s", "id", "zz", "pw"];

    fn query() -> impl Strategy<Value = Query> {
        let equals = prop::collection::vec(
            (
                prop::sample::select(vec!["a", "b", "c", "n", "s", "num", "zz", "pw"]),
                prop_oneof![
                    value(),
                    prop::sample::select(vec![
                        "1",
                        "2.5",
                        "true",
                        "null",
                        "x",
                        "[1,2]",
                        "{\"k\":1}",
                        "3.0"
                    ])
                    .prop_map(Value::from),
                ],
            ),
            0..3,
        );
        let sort = prop::collection::vec(
            (prop::sample::select(SORTABLE.to_vec()), any::<bool>()),
            0..3,
        );
        let filter = prop::option::weighted(0.4, prop::sample::select(FILTERS.to_vec()));
        let deleted = prop::sample::select(vec![Deleted::Exclude, Deleted::Include, Deleted::Only]);
        (
            equals,
            filter,
            sort,
            1usize..5,
            prop_oneof![1usize..8, Just(50usize)],
            deleted,
        )
            .prop_map(|(equals, filter, sort, page, per_page, deleted)| Query {
                equals: equals
                    .into_iter()
                    .map(|(f, v)| (f.to_string(), v))
                    .collect(),
                filter: filter.map(|f| Expr::compile(f).unwrap()),
                sort: sort.into_iter().map(|(f, d)| (f.to_string(), d)).collect(),
                page,
                per_page,
                deleted,
                budget: None,
            })
    }

    fn same(fast: Result<Page>, slow: Result<Page>) -> std::result::Result<(), TestCaseError> {
        match (fast, slow) {
            (Ok(fast), Ok(slow)) => {
                prop_assert_eq!(fast.total, slow.total, "total");
                prop_assert_eq!(fast.items, slow.items);
            }
            (Err(_), Err(_)) => {}
            (fast, slow) => prop_assert!(false, "fast {fast:?}, reference {slow:?}"),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn lists_match_the_reference(
            records in prop::collection::vec(fields(), 0..30),
            changes in prop::collection::vec(change(), 0..12),
            queries in prop::collection::vec(query(), 1..12),
        ) {
            let state = build(&records, &changes);
            let c = items();
            let auth = json!({"want": "x"});
            let vars: &[(&str, &Value)] = &[("auth", &auth)];
            let everyone = |_: &Value| true;
            let some = |v: &Value| v.get("c").is_none_or(|c| c != &json!(1));
            for q in &queries {
                for force in [(None, None), (Some(true), Some(true)), (Some(false), Some(false))] {
                    FORCE.set(force);
                    let fast = list_with(&state, &c, q, vars, None, None);
                    FORCE.set((None, None));
                    same(fast, reference(&state, &c, q, vars, &everyone))?;
                }
                let fast = list(&state, &c, q, vars, &everyone, None);
                same(fast, reference(&state, &c, q, vars, &everyone))?;
                let fast = list(&state, &c, q, vars, &some, None);
                same(fast, reference(&state, &c, q, vars, &some))?;
            }
        }

        #[test]
        fn sort_keys_order_like_values(a in prop::option::of(value()), b in prop::option::of(value())) {
            let (ka, kb) = (SortKey::of(a.as_ref()), SortKey::of(b.as_ref()));
            prop_assert_eq!(ka.order(&kb), compare(a.as_ref(), b.as_ref()));
            let canonical = |v: &Option<Value>| v.as_ref().map(to_canonical_string);
            prop_assert_eq!(ka == kb, canonical(&a) == canonical(&b));
            if ka.order(&kb) != Ordering::Equal {
                prop_assert_eq!(ka.cmp(&kb), ka.order(&kb));
            }
        }
    }

    /// The caller's access is decided before the filter runs, so the filter's errors are
    /// about records the caller may see: there, `1/0`, a result that is not a bool and a
    /// bad regex fail the list, while a missing field only skips the record.
    #[test]
    fn filter_errors_after_access() {
        let records: Vec<_> = (0..10).map(|i| vec![(4, Some(json!(i)))]).collect();
        let state = build(&records, &[]);
        let c = items();
        let run = |filter: &str, visible: &dyn Fn(&Value) -> bool| {
            let q = Query {
                filter: Some(Expr::compile(filter).unwrap()),
                ..Query::default()
            };
            list(&state, &c, &q, &[], visible, None)
                .map(|page| page.total)
                .map_err(|e| e.code())
        };
        let all = |_: &Value| true;
        let none = |_: &Value| false;
        let positive = |v: &Value| v["num"].as_i64().is_some_and(|n| n > 0);
        assert_eq!(run("10 / record.num > 1", &all), Err("invalid_filter"));
        assert_eq!(run("10 / record.num > 1", &positive), Ok(5));
        assert_eq!(run("record.num", &all), Err("invalid_filter"));
        assert_eq!(run("record.num", &none), Ok(0));
        assert_eq!(run("record.zz > 1", &all), Ok(0));
        assert_eq!(run("record.zz > 1 || record.num == 3", &all), Ok(1));
        assert_eq!(run("string(record.num).matches('^[1-3]$')", &all), Ok(3));
        assert_eq!(
            run("string(record.num).matches('(' + 'x')", &all),
            Err("invalid_filter")
        );
        let err = list_with(
            &state,
            &c,
            &Query {
                filter: Some(Expr::compile("1 / 0 == 1").unwrap()),
                ..Query::default()
            },
            &[],
            None,
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("Division by zero"), "{err}");
    }

    #[test]
    fn a_spent_budget_stops_the_list() {
        let records = vec![vec![(4, Some(json!(1)))]; 200];
        let state = build(&records, &[]);
        let c = items();
        let spent = Query {
            filter: Some(Expr::compile("record.num + 1 == 2").unwrap()),
            budget: Some(Duration::ZERO),
            ..Query::default()
        };
        let err = list_with(&state, &c, &spent, &[], None, None).unwrap_err();
        assert_eq!(err.code(), "query_too_costly");
        assert!(err.to_string().contains("(a, b, n, s)"), "{err}");
        let ample = Query {
            budget: Some(Duration::from_secs(3600)),
            ..spent.clone()
        };
        assert_eq!(
            list_with(&state, &c, &ample, &[], None, None)
                .unwrap()
                .total,
            200
        );
        // What the indexes answer alone evaluates nothing.
        let indexed = Query {
            filter: None,
            ..spent
        };
        assert_eq!(
            list_with(&state, &c, &indexed, &[], None, None)
                .unwrap()
                .total,
            200
        );
    }

    /// Where a comparison claims to know CEL's verdict, it agrees with CEL.
    #[test]
    fn comparisons_agree_with_cel() {
        let values = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(1),
            json!(2),
            json!(-1),
            json!(1.0),
            json!(2.5),
            json!(-0.0),
            json!(9007199254740993u64),
            json!(9223372036854775807i64),
            json!(9223372036854775808u64),
            json!(18446744073709551615u64),
            json!(""),
            json!("x"),
            json!("y"),
            json!("é"),
            json!("1"),
            json!([1]),
            json!({"x": 1}),
        ];
        let literals = [
            "null",
            "true",
            "false",
            "0",
            "1",
            "2",
            "-1",
            "1.0",
            "2.5",
            "-0.0",
            "9007199254740992.0",
            "9223372036854775807",
            "9223372036854775808u",
            "18446744073709551615u",
            "18446744073709551615.0",
            "1u",
            "''",
            "'x'",
            "'é'",
            "'1'",
        ];
        let ops = ["==", "!=", "<", "<=", ">", ">="];
        let mut settled = 0;
        for literal in literals {
            for op in ops {
                for source in [
                    format!("record.f {op} {literal}"),
                    format!("{literal} {op} record.f"),
                ] {
                    let filter = Expr::compile(&source).unwrap();
                    let shape = FilterShape::of(&filter, &[]);
                    assert!(shape.complete, "{source}");
                    for value in values.iter().map(Some).chain([None]) {
                        let record = match value {
                            Some(v) => json!({"f": v}),
                            None => json!({}),
                        };
                        let cel = filter.eval_bool(&Vars::new().with("record", &record));
                        let fields = ["f"];
                        let ours = shape.verdict(&Record::Fields(&fields, vec![value.cloned()]));
                        if let Some(ours) = ours {
                            settled += 1;
                            assert_eq!(ours, cel == Ok(true), "{source} on {value:?}: CEL {cel:?}");
                        }
                    }
                }
            }
        }
        assert!(settled > 1000, "{settled}");
    }

    #[test]
    fn filter_shapes() {
        let shape = |src: &str| FilterShape::of(&Expr::compile(src).unwrap(), &[]);
        let s = shape(r#"record.rooms >= 5 && record.city == "c3""#);
        let equals: Vec<_> = s.equals().collect();
        assert_eq!(equals, [("city", json!("c3"))]);
        assert!(s.complete && s.compares.len() == 2);
        let fields: Vec<_> = s.fields.unwrap().into_iter().collect();
        assert_eq!(fields, ["city", "rooms"]);
        let s = shape(r#"has(record.x) || record.y.z == true"#);
        assert!(s.compares.is_empty() && !s.complete);
        let fields: Vec<_> = s.fields.unwrap().into_iter().collect();
        assert_eq!(fields, ["x", "y"]);
        let s = shape("5 <= record.rooms && record.a.b == 1 && record.c != null");
        assert_eq!(s.compares.len(), 2);
        assert_eq!(
            (s.compares[0].field.as_str(), s.compares[0].op),
            ("rooms", super::Op::Ge)
        );
        assert!(!s.complete && s.equals().next().is_none());
        assert!(shape("size(record) > 1").fields.is_none());
        assert!(shape(r#"record["a"] == 1"#).fields.is_none());
        // A leading dot names the same variable.
        let dotted = shape(".record.a == 1 && .record.b == 'x'").fields;
        assert!(dotted.is_none_or(|f| f.len() == 2));
        let auth = json!({});
        let filter = Expr::compile("record.a == 'x'").unwrap();
        let s = FilterShape::of(&filter, &[("record", &auth)]);
        assert!(s.fields.is_none() && s.compares.is_empty() && !s.complete);
    }

    #[test]
    fn picks_top_level_fields() {
        let doc = |v: Value| Doc {
            version: Seq(1),
            body: Arc::from(to_canonical_raw(&v)),
        };
        let object = doc(json!({"a": {"x": [1]}, "b": "t", "c\"d": 2, "e": null}));
        let fields = ["a", "c\"d", "e", "z"];
        let record = Record::of(&object.body, &fields, false);
        assert!(matches!(record, Record::Fields(..)));
        assert_eq!(record.get("a"), Some(&json!({"x": [1]})));
        assert_eq!(record.get("e"), Some(&Value::Null));
        assert_eq!(record.get("z"), None);
        assert_eq!(record.get("b"), None, "not read");
        assert_eq!(
            *record.object(),
            json!({"a": {"x": [1]}, "c\"d": 2, "e": null})
        );
        let array = doc(json!([1, 2]));
        let record = Record::of(&array.body, &fields, false);
        assert_eq!(*record.object(), json!([1, 2]));
    }
}
