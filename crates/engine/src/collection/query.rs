//! Listing records: equality filters, a CEL filter, sort and pages over a snapshot.
//!
//! Equality filters on a collection's `index` fields are answered from the field index
//! (an intersection of id sets), so only matching documents are parsed; other filters
//! and the CEL filter run on those candidates. Sorting is by any fields, then by id, so
//! pages are stable.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde_json::Value;

use super::expr::{Expr, Vars};
use super::keys::is_live;
use super::records::{Secrets, render};
use super::secret::SecretBox;
use crate::canonical::to_canonical_string;
use crate::error::{Error, Result};
use crate::names::{CollectionName, RecordId};
use crate::state::State;

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

/// Runs `query` on `c`. `visible` decides per record whether the caller may see it
/// (access rules); `vars` are extra CEL variables for the filter (e.g. `auth`).
pub fn list(
    state: &State,
    c: &CollectionName,
    query: &Query,
    vars: &[(&str, &Value)],
    visible: &dyn Fn(&Value) -> bool,
    key: Option<&SecretBox>,
) -> Result<Page> {
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
    let Some(coll) = state.collection(c) else {
        return Ok(Page {
            items: Vec::new(),
            total: 0,
            page: query.page,
            per_page: query.per_page,
        });
    };
    // Candidates from the field indexes, when an equality filter can use one.
    let mut candidates: Option<BTreeSet<RecordId>> = None;
    let mut rest = Vec::new();
    for (field, value) in &query.equals {
        if def.is_secret(field) {
            return Err(Error::invalid(
                "filter",
                format!("{field} is a secret field"),
            ));
        }
        match coll.indexes.fields.get(field) {
            Some(values) if def.def.index.contains(field) => {
                let mut ids = BTreeSet::new();
                for form in value_forms(value) {
                    if let Some(set) = values.get(&form) {
                        ids.extend(set.iter().cloned());
                    }
                }
                candidates = Some(match candidates {
                    None => ids,
                    Some(prev) => prev.intersection(&ids).cloned().collect(),
                });
            }
            _ => rest.push((field, value)),
        }
    }
    let ids: Box<dyn Iterator<Item = RecordId>> = match candidates {
        Some(set) => Box::new(set.into_iter()),
        None => Box::new(coll.docs.keys().cloned().collect::<Vec<_>>().into_iter()),
    };
    let mut matched: Vec<(RecordId, Value)> = Vec::new();
    for id in ids {
        let Some(doc) = coll.docs.get(&id) else {
            continue;
        };
        let value = doc.value();
        let live = is_live(&value);
        let keep = match query.deleted {
            Deleted::Exclude => live,
            Deleted::Include => true,
            Deleted::Only => !live,
        };
        if !keep
            || !rest
                .iter()
                .all(|(f, v)| loosely_equal(value.get(f.as_str()), v))
        {
            continue;
        }
        if let Some(filter) = &query.filter {
            let mut scope = Vars::new().with("record", &value);
            for (name, v) in vars {
                scope = scope.with(name, v);
            }
            match filter.eval_bool(&scope) {
                Ok(true) => {}
                // A record the filter cannot evaluate on (a missing field) does not match.
                Ok(false) | Err(_) => continue,
            }
        }
        if !visible(&value) {
            continue;
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
            render(Some(def), c, &id, value, version, Secrets::Omit, key)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Page {
        items,
        total,
        page: query.page,
        per_page: query.per_page,
    })
}

/// The canonical forms a filter value may match (query strings are untyped).
fn value_forms(value: &Value) -> Vec<String> {
    let mut forms = vec![to_canonical_string(value)];
    if let Value::String(s) = value
        && let Ok(parsed) = serde_json::from_str::<Value>(s)
        && !parsed.is_string()
    {
        forms.push(to_canonical_string(&parsed));
    }
    forms
}

fn loosely_equal(field: Option<&Value>, wanted: &Value) -> bool {
    let field = field.unwrap_or(&Value::Null);
    field == wanted
        || matches!(wanted, Value::String(s) if serde_json::from_str::<Value>(s).ok().as_ref() == Some(field))
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
