//! How one list runs: candidates from the indexes, the budget, the rows of a page.

use super::*;

/// A sorted walk of an index visits about `page end × records / candidates` entries; it
/// is taken when that is at most this many times the candidates (each of which the other
/// way decodes).
pub(super) const WALK_PER_CANDIDATE: usize = 4;

/// How one list runs.
pub(super) struct Plan<'a> {
    pub(super) def: &'a Compiled,
    pub(super) coll: &'a CollectionState,
    pub(super) query: &'a Query,
    pub(super) vars: &'a [(&'a str, &'a Value)],
    pub(super) candidates: Candidates<'a>,
    /// Equality filters evaluated on the documents.
    pub(super) rest: Vec<(&'a str, &'a Value)>,
    /// What the CEL filter reads and requires.
    pub(super) shape: Option<FilterShape>,
}

impl<'a> Plan<'a> {
    pub(super) fn new(
        def: &'a Compiled,
        coll: &'a CollectionState,
        query: &'a Query,
        vars: &'a [(&'a str, &'a Value)],
        within: Option<Vec<&'a Ids>>,
    ) -> Result<Self> {
        let mut sets: Vec<Vec<&'a Ids>> = within.into_iter().collect();
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
    pub(super) fn run(
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
    pub(super) fn sort_index(&self, end: usize) -> Option<&'a OrdMap<SortKey, Ids>> {
        let (field, _) = self.query.sort.first()?;
        if !self.def.def.index.contains(field) {
            return None;
        }
        let values = self.coll.indexes.fields.get(field)?;
        #[cfg(test)]
        if let Some(walk) = super::tests::FORCE.get().0 {
            return walk.then_some(values);
        }
        let candidates = self.candidates.bound().max(1);
        let walk = end.saturating_mul(self.coll.docs.len()) / candidates;
        (walk <= candidates.saturating_mul(WALK_PER_CANDIDATE)).then_some(values)
    }

    /// Reads a page off the index of the first sort field: records with equal values (in
    /// list order) form a group, in id order unless more sort fields order it, which
    /// decodes only the groups the page touches.
    pub(super) fn walk(
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
    pub(super) fn evaluate(
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
pub(super) fn filter_matches(filter: &Expr, scope: &Vars<'_>) -> Result<bool> {
    match filter.eval_bool(scope) {
        Ok(matched) => Ok(matched),
        Err(ExprError::Mismatch { .. }) => Ok(false),
        Err(e) => Err(Error::InvalidFilter {
            reason: e.to_string(),
        }),
    }
}

/// How many candidates a list evaluates between two looks at the clock.
pub(super) const BUDGET_CHECK_EVERY: usize = 64;

/// The evaluation time a list may still spend.
pub(super) struct Budget {
    /// When it started and how long it may run; `None`: no limit.
    pub(super) limit: Option<(Instant, Duration)>,
}

impl Budget {
    pub(super) fn start(limit: Option<Duration>) -> Budget {
        Budget {
            limit: limit.map(|limit| (Instant::now(), limit)),
        }
    }

    /// Fails once the budget is spent; `evaluated` candidates so far.
    pub(super) fn check(&self, evaluated: usize, def: &Compiled) -> Result<()> {
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
pub(super) const MERGE_RATIO: usize = 32;

/// A record and its stored document.
pub(super) type Entry<'a> = (&'a RecordId, &'a Arc<RawValue>);

/// The documents of `ids` (in id order, about `n` of them).
pub(super) fn with_docs<'a: 'b, 'b>(
    docs: &'a OrdMap<RecordId, Doc>,
    ids: impl Iterator<Item = &'a RecordId> + 'b,
    n: usize,
) -> Box<dyn Iterator<Item = Entry<'a>> + 'b> {
    let lookup = n.saturating_mul(MERGE_RATIO) < docs.len();
    #[cfg(test)]
    let lookup = super::tests::FORCE.get().1.unwrap_or(lookup);
    if lookup {
        return Box::new(ids.filter_map(|id| docs.get_key_value(id).map(|(id, d)| (id, d.body()))));
    }
    let mut all = docs.iter().peekable();
    Box::new(ids.filter_map(move |id| {
        while let Some((key, doc)) = all.peek() {
            match (*key).cmp(id) {
                Ordering::Less => {
                    all.next();
                }
                Ordering::Equal => return Some((*key, doc.body())),
                Ordering::Greater => return None,
            }
        }
        None
    }))
}

/// Parses a stored document.
/// Does any record have the field (not just `Missing` entries)?
pub(super) fn has_values(values: &OrdMap<SortKey, Ids>) -> bool {
    values
        .get_max()
        .is_some_and(|(key, _)| !matches!(key, SortKey::Missing))
}

/// The records a list may show according to the indexes: the deleted filter, and
/// equality filters answered by index entries.
pub(super) struct Candidates<'a> {
    pub(super) coll: &'a CollectionState,
    pub(super) deleted: Deleted,
    /// `None`: no such filter. Otherwise a record must be under one of each group's
    /// entries (a filter value may match a few canonical forms).
    pub(super) sets: Option<Vec<Vec<&'a Ids>>>,
}

impl<'a> Candidates<'a> {
    /// Passes the deleted filter?
    pub(super) fn shown(&self, id: &RecordId) -> bool {
        match self.deleted {
            Deleted::Include => true,
            Deleted::Exclude => !self.coll.indexes.deleted.contains(id),
            Deleted::Only => self.coll.indexes.deleted.contains(id),
        }
    }

    pub(super) fn contains(&self, id: &RecordId) -> bool {
        self.shown(id)
            && self
                .sets
                .iter()
                .flatten()
                .all(|union| union.iter().any(|ids| ids.contains(id)))
    }

    /// At least as many as there are.
    pub(super) fn bound(&self) -> usize {
        let (docs, deleted) = (self.coll.docs.len(), self.coll.indexes.deleted.len());
        let by_deleted = match self.deleted {
            Deleted::Include => docs,
            Deleted::Exclude => docs.saturating_sub(deleted),
            Deleted::Only => deleted,
        };
        let by_sets = self.sets.iter().flatten().map(|union| union_len(union));
        by_sets.fold(by_deleted, usize::min)
    }

    pub(super) fn count(&self) -> usize {
        if self.sets.is_none() {
            return self.bound();
        }
        self.iter().count()
    }

    /// With their documents, in id order.
    pub(super) fn iter(&self) -> Box<dyn Iterator<Item = Entry<'a>> + '_> {
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
                        .map(|(id, d)| (id, d.body())),
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

pub(super) fn union_len(union: &[&Ids]) -> usize {
    union.iter().map(|ids| ids.len()).sum()
}

/// Matched records with their sort keys (one per sort field, flat).
pub(super) struct Rows<'a, 's> {
    pub(super) sort: &'s [(String, bool)],
    pub(super) ids: Vec<&'a RecordId>,
    pub(super) keys: Vec<SortKey>,
}

impl<'a, 's> Rows<'a, 's> {
    pub(super) fn new(sort: &'s [(String, bool)]) -> Self {
        Rows {
            sort,
            ids: Vec::new(),
            keys: Vec::new(),
        }
    }

    /// The fields the sort reads.
    pub(super) fn fields(&self) -> Vec<&'s str> {
        self.sort.iter().map(|(f, _)| f.as_str()).collect()
    }

    pub(super) fn push(&mut self, id: &'a RecordId, mut record: Record<'_>) {
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

    pub(super) fn cmp(&self, a: usize, b: usize) -> Ordering {
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
    pub(super) fn page(self, start: usize, len: usize) -> Vec<&'a RecordId> {
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
