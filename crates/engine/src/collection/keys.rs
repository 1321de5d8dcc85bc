//! What a record contributes to its collection's indexes.
//!
//! Each index entry is derived from a record's fields alone, so it can be removed with the
//! old version of the record and added with the new one. Key values are canonical JSON, so
//! `1`, `1.0` and `"1"` are distinct and field order never matters.

use serde_json::Value;

use super::definition::Compiled;
use super::overlap::Bound;
use crate::canonical::to_canonical_string;
use crate::error::{Result, Violation, ViolationCode};
use crate::names::{CollectionName, RecordId};

/// A record's entries in every index of its collection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordKeys {
    /// One per `unique` constraint; `None` when a field is null/missing or the record is
    /// deleted and the constraint only counts live records.
    pub unique: Vec<Option<String>>,
    /// One per `exclude` constraint: key, start, end; `None` when not subject to it.
    pub exclude: Vec<Option<(String, Bound, Bound)>>,
    /// One per `references` entry: the record pointed at, for live records.
    pub refs: Vec<Option<(CollectionName, RecordId)>>,
    /// `(field, canonical value)` for each `index` field present.
    pub fields: Vec<(String, String)>,
}

/// Is the record live (not soft-deleted)?
pub fn is_live(record: &Value) -> bool {
    record.get("deleted_at").is_none_or(Value::is_null)
}

/// Canonical tuple of `fields`, or `None` if any is null or missing.
pub fn tuple_key(record: &Value, fields: &[String]) -> Option<String> {
    let mut values = Vec::with_capacity(fields.len());
    for f in fields {
        match record.get(f) {
            None | Some(Value::Null) => return None,
            Some(v) => values.push(v.clone()),
        }
    }
    Some(to_canonical_string(&Value::Array(values)))
}

impl RecordKeys {
    /// Derives the keys; fails when a record cannot be placed in an exclusion index
    /// (a range bound of the wrong type, or an empty range) or a condition cannot be
    /// evaluated.
    pub fn of(def: &Compiled, record: &Value) -> Result<RecordKeys> {
        let live = is_live(record);
        let unique = def
            .def
            .unique
            .iter()
            .map(|u| {
                if live || u.include_deleted {
                    tuple_key(record, &u.fields)
                } else {
                    None
                }
            })
            .collect();
        let mut exclude = Vec::with_capacity(def.excludes.len());
        for x in &def.excludes {
            exclude.push(if live {
                exclusion_key(def, x, record)?
            } else {
                None
            });
        }
        let refs = def
            .references
            .iter()
            .map(|r| {
                if !live {
                    return None;
                }
                let id = record.get(&r.def.field)?.as_str()?;
                Some((r.target.clone(), RecordId::parse(id).ok()?))
            })
            .collect();
        let fields = def
            .def
            .index
            .iter()
            .filter_map(|f| {
                let v = record.get(f)?;
                Some((f.clone(), to_canonical_string(v)))
            })
            .collect();
        Ok(RecordKeys {
            unique,
            exclude,
            refs,
            fields,
        })
    }
}

fn exclusion_key(
    def: &Compiled,
    x: &super::definition::CompiledExclude,
    record: &Value,
) -> Result<Option<(String, Bound, Bound)>> {
    let violation = |message: String| Violation {
        code: ViolationCode::ExclusionViolation,
        collection: def.name.to_string(),
        constraint: x.def.name.clone(),
        fields: vec![x.def.start.clone(), x.def.end.clone()],
        conflicting: None,
        message,
        errors: Vec::new(),
    };
    if let Some(when) = &x.when {
        let vars = super::expr::Vars::new().with("record", record);
        match when.eval_bool(&vars) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => {
                return Err(violation(format!("condition could not be evaluated: {e}")).into());
            }
        }
    }
    let Some(key) = tuple_key(record, &x.def.key) else {
        return Ok(None);
    };
    let (start, end) = match (record.get(&x.def.start), record.get(&x.def.end)) {
        (None | Some(Value::Null), _) | (_, None | Some(Value::Null)) => return Ok(None),
        (Some(s), Some(e)) => (Bound::from_json(s), Bound::from_json(e)),
    };
    let (Some(start), Some(end)) = (start, end) else {
        return Err(violation(format!(
            "{} and {} must be numbers or strings",
            x.def.start, x.def.end
        ))
        .into());
    };
    if start >= end {
        return Err(violation(format!(
            "the range [{}, {}) is empty: {} must be after {}",
            x.def.start, x.def.end, x.def.end, x.def.start
        ))
        .into());
    }
    Ok(Some((key, start, end)))
}
