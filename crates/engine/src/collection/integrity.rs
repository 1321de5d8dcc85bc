//! The indexes behind integrity: per collection, its unique keys, exclusion (overlap)
//! indexes and sort indexes, plus the checks on one document alone (`validate_doc`).
//! They are pure data structures over records; the commit-time procedure that keeps them
//! and checks a transaction against them is `State::apply_txn` (`state/integrity.rs`).

use std::sync::Arc;

use imbl::{OrdMap, OrdSet};
use serde_json::Value;
use serde_json::value::RawValue;

use super::definition::Compiled;
use super::keys::{RecordKeys, SortKey};
use super::overlap::{OverlapError, OverlapIndex};
use super::stored::Doc;
use crate::error::{Error, Result, Violation, ViolationCode};
use crate::names::{CollectionName, RecordId};

/// Checks on, or replay of already-validated history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Validate,
    Trust,
}

/// The indexes of one defined collection (persistent: cheap to clone with the state).
#[derive(Debug, Clone, Default)]
pub struct Indexes {
    /// Per `unique` constraint: canonical key → record.
    pub unique: Vec<OrdMap<String, RecordId>>,
    /// Per `exclude` constraint.
    pub exclude: Vec<OverlapIndex<RecordId>>,
    /// Per `index` field: value → records, for every record (those without the field
    /// under [`SortKey::Missing`]). Answers equality filters, and lists sorted by the field.
    pub fields: OrdMap<String, OrdMap<SortKey, Ids>>,
    /// The soft-deleted records (`deleted_at` set).
    pub deleted: OrdSet<RecordId>,
}

/// The records under one index key, with their documents (so a list reads candidates
/// without looking each up among all documents). Most keys of a selective field have
/// one record, kept without a map (an `OrdMap` allocates a whole B-tree leaf).
#[derive(Debug, Clone)]
pub enum Ids {
    One(RecordId, Doc),
    Many(OrdMap<RecordId, Doc>),
}

impl Ids {
    pub fn len(&self) -> usize {
        match self {
            Ids::One(..) => 1,
            Ids::Many(map) => map.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, id: &RecordId) -> bool {
        match self {
            Ids::One(one, _) => one == id,
            Ids::Many(map) => map.contains_key(id),
        }
    }

    /// Records and their documents, in id order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&RecordId, &Arc<RawValue>)> + '_ {
        let (one, many) = match self {
            Ids::One(id, doc) => (Some((id, doc)), None),
            Ids::Many(map) => (None, Some(map.iter())),
        };
        one.into_iter()
            .chain(many.into_iter().flatten())
            .map(|(id, doc)| (id, doc.body()))
    }

    pub(crate) fn insert(&mut self, id: &RecordId, body: &Doc) {
        match self {
            Ids::One(one, _) if one == id => *self = Ids::One(id.clone(), body.clone()),
            Ids::One(one, first) => {
                let both = [(one.clone(), first.clone()), (id.clone(), body.clone())];
                *self = Ids::Many(OrdMap::from_iter(both));
            }
            Ids::Many(map) => {
                map.insert(id.clone(), body.clone());
            }
        }
    }

    /// Removes `id`; true when none are left.
    pub(crate) fn remove(&mut self, id: &RecordId) -> bool {
        let Ids::Many(map) = self else {
            return matches!(self, Ids::One(one, _) if one == id);
        };
        map.remove(id);
        match map.len() {
            0 => true,
            1 => {
                if let Some((last, body)) = map.get_min().cloned() {
                    *self = Ids::One(last, body);
                }
                false
            }
            _ => false,
        }
    }
}

/// Who points at a record: `(collection, id)` of live referrers.
pub type Referrers = OrdMap<(CollectionName, RecordId), OrdSet<(CollectionName, RecordId)>>;

impl Indexes {
    pub(crate) fn for_def(def: &Compiled) -> Indexes {
        Indexes {
            unique: vec![OrdMap::new(); def.def.unique.len()],
            exclude: vec![OverlapIndex::new(); def.excludes.len()],
            fields: OrdMap::new(),
            deleted: OrdSet::new(),
        }
    }

    /// Removes a record's entries (`index`: the names of its definition's `index`
    /// fields, which `keys.fields` follows).
    pub(crate) fn remove(&mut self, index: &[String], keys: &RecordKeys, id: &RecordId) {
        for (index, key) in self.unique.iter_mut().zip(&keys.unique) {
            if let Some(key) = key
                && index.get(key) == Some(id)
            {
                index.remove(key);
            }
        }
        for (index, key) in self.exclude.iter_mut().zip(&keys.exclude) {
            if let Some((key, start, _)) = key {
                index.remove(key, start, id);
            }
        }
        for (field, value) in index.iter().zip(&keys.fields) {
            if let Some(values) = self.fields.get_mut(field)
                && let Some(ids) = values.get_mut(value)
                && ids.remove(id)
            {
                values.remove(value);
            }
        }
        self.deleted.remove(id);
    }

    /// Inserts a record's entries (`body`: its document), moving its keys into the
    /// indexes; in validate mode a clash is a violation.
    pub(crate) fn insert(
        &mut self,
        def: &Compiled,
        keys: RecordKeys,
        id: &RecordId,
        body: &Doc,
        mode: Mode,
    ) -> Result<()> {
        for (i, (index, key)) in self.unique.iter_mut().zip(keys.unique).enumerate() {
            let Some(key) = key else { continue };
            if mode == Mode::Validate
                && let Some(other) = index.get(&key)
                && other != id
            {
                let u = &def.def.unique[i];
                return Err(violation(
                    def,
                    ViolationCode::UniqueViolation,
                    &u.name,
                    u.fields.clone(),
                    Some(other),
                    format!(
                        "{} {key} is already taken by record {other}",
                        u.fields.join(", ")
                    ),
                ));
            }
            index.insert(key, id.clone());
        }
        for (i, (index, key)) in self.exclude.iter_mut().zip(keys.exclude).enumerate() {
            let Some((key, start, end)) = key else {
                continue;
            };
            match mode {
                Mode::Trust => index.insert(&key, start, end, id.clone()),
                Mode::Validate => {
                    if let Err(e) = index.insert_checked(&key, start, end, id.clone()) {
                        let x = &def.excludes[i].def;
                        let mut fields = x.key.clone();
                        fields.extend([x.start.clone(), x.end.clone()]);
                        let (other, message) = match e {
                            OverlapError::Conflict(other) => {
                                let m = format!(
                                    "[{}, {}) overlaps record {other} with the same {}",
                                    x.start,
                                    x.end,
                                    x.key.join(", ")
                                );
                                (Some(other), m)
                            }
                            OverlapError::EmptyRange => (None, "empty range".to_string()),
                        };
                        return Err(violation(
                            def,
                            ViolationCode::ExclusionViolation,
                            &x.name,
                            fields,
                            other.as_ref(),
                            message,
                        ));
                    }
                }
            }
        }
        for (field, value) in def.def.index.iter().zip(keys.fields) {
            // The field's map is there after its collection's first record: look it up
            // before making a key for it.
            let values = match self.fields.get_mut(field.as_str()) {
                Some(values) => values,
                None => self.fields.entry(field.clone()).or_default(),
            };
            match values.get_mut(&value) {
                Some(ids) => ids.insert(id, body),
                None => {
                    values.insert(value, Ids::One(id.clone(), body.clone()));
                }
            }
        }
        if !keys.live {
            self.deleted.insert(id.clone());
        }
        Ok(())
    }
}

pub(crate) fn violation(
    def: &Compiled,
    code: ViolationCode,
    constraint: &str,
    fields: Vec<String>,
    conflicting: Option<&RecordId>,
    message: String,
) -> Error {
    Error::from(Violation {
        code,
        collection: def.name.to_string(),
        constraint: constraint.to_string(),
        fields,
        conflicting: conflicting.map(|c| c.to_string()),
        message,
        errors: Vec::new(),
    })
}

/// Validates one document against its definition: schema, then `check` expressions.
pub fn validate_doc(def: &Compiled, id: &RecordId, value: &Value) -> Result<()> {
    if let Err(errors) = def.validate_fields(value) {
        return Err(Error::from(Violation {
            code: ViolationCode::ValidationFailed,
            collection: def.name.to_string(),
            constraint: "schema".into(),
            fields: errors.iter().map(|e| e.path.clone()).collect(),
            conflicting: None,
            message: format!(
                "record {id} does not match the schema: {}",
                errors[0].message
            ),
            errors,
        }));
    }
    let vars = super::expr::Vars::new().with("record", value);
    for (name, expr) in &def.checks {
        let ok = expr.eval_bool(&vars);
        if !matches!(ok, Ok(true)) {
            let why = match ok {
                Err(e) => format!(": {e}"),
                _ => String::new(),
            };
            return Err(violation(
                def,
                ViolationCode::CheckViolation,
                name,
                Vec::new(),
                None,
                format!("record {id} fails check {name} ({}){why}", expr.source()),
            ));
        }
    }
    Ok(())
}
