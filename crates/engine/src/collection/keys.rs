//! What a record contributes to its collection's indexes.
//!
//! Each index entry is derived from a record's fields alone, so it can be removed with the
//! old version of the record and added with the new one. Key values are canonical JSON, so
//! `1`, `1.0` and `"1"` are distinct and field order never matters. `index` fields are keyed
//! by [`SortKey`], which orders them as lists sort and tells apart what canonical JSON does.

use std::cmp::Ordering;

use serde_json::{Number, Value};

use super::definition::Compiled;
use super::overlap::Bound;
use crate::canonical::{to_canonical_string, write_canonical};
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
    /// The value of each `index` field, in the definition's order ([`SortKey::Missing`]
    /// when absent); the names are the definition's (not copied for every record).
    pub fields: Vec<SortKey>,
    /// Not soft-deleted (see [`is_live`]).
    pub live: bool,
}

/// A field's value as an index key.
///
/// Two orders: [`SortKey::order`] is the order of lists (a missing field sorts as `null`;
/// null < booleans < numbers by value < strings by characters < arrays < objects, the last
/// two by canonical text), and `Ord`/`Eq` refine it so that keys are equal exactly when
/// the values' canonical JSON is (`1` and `1.0` sort together but are different keys; a
/// missing field comes right before `null`).
#[derive(Debug, Clone)]
pub enum SortKey {
    Missing,
    Null,
    Bool(bool),
    Number(Number),
    String(Box<str>),
    /// Canonical JSON.
    Array(Box<str>),
    /// Canonical JSON.
    Object(Box<str>),
}

impl SortKey {
    /// The key of a field value (`None`: missing).
    pub fn of(value: Option<&Value>) -> SortKey {
        match value {
            None => SortKey::Missing,
            Some(Value::Null) => SortKey::Null,
            Some(Value::Bool(b)) => SortKey::Bool(*b),
            Some(Value::Number(n)) => SortKey::Number(n.clone()),
            Some(Value::String(s)) => SortKey::String(s.as_str().into()),
            Some(v @ Value::Array(_)) => SortKey::Array(to_canonical_string(v).into()),
            Some(v @ Value::Object(_)) => SortKey::Object(to_canonical_string(v).into()),
        }
    }

    /// Like [`SortKey::of`], taking the value (no copy of a string).
    pub fn of_owned(value: Option<Value>) -> SortKey {
        match value {
            Some(Value::String(s)) => SortKey::String(s.into_boxed_str()),
            other => SortKey::of(other.as_ref()),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            SortKey::Missing | SortKey::Null => 0,
            SortKey::Bool(_) => 1,
            SortKey::Number(_) => 2,
            SortKey::String(_) => 3,
            SortKey::Array(_) => 4,
            SortKey::Object(_) => 5,
        }
    }

    /// List order: a missing field equals `null`, numbers compare by value only.
    pub fn order(&self, other: &SortKey) -> Ordering {
        match (self, other) {
            (SortKey::Bool(x), SortKey::Bool(y)) => x.cmp(y),
            (SortKey::Number(x), SortKey::Number(y)) => number_value(x).total_cmp(&number_value(y)),
            (SortKey::String(x), SortKey::String(y))
            | (SortKey::Array(x), SortKey::Array(y))
            | (SortKey::Object(x), SortKey::Object(y)) => x.cmp(y),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// A number as lists compare it: its `f64` value, with `-0` as `0` (so `total_cmp` agrees
/// with `==`; JSON has no NaN).
fn number_value(n: &Number) -> f64 {
    let x = n.as_f64().unwrap_or(0.0);
    if x == 0.0 { 0.0 } else { x }
}

impl Ord for SortKey {
    fn cmp(&self, other: &SortKey) -> Ordering {
        self.order(other).then_with(|| match (self, other) {
            (SortKey::Missing, SortKey::Null) => Ordering::Less,
            (SortKey::Null, SortKey::Missing) => Ordering::Greater,
            // Same value, perhaps written differently.
            (SortKey::Number(x), SortKey::Number(y)) => x.to_string().cmp(&y.to_string()),
            _ => Ordering::Equal,
        })
    }
}

impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &SortKey) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for SortKey {
    fn eq(&self, other: &SortKey) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for SortKey {}

/// Is the record live (not soft-deleted)?
pub fn is_live(record: &Value) -> bool {
    record.get("deleted_at").is_none_or(Value::is_null)
}

/// Canonical tuple of `fields`, or `None` if any is null or missing.
pub fn tuple_key(record: &Value, fields: &[String]) -> Option<String> {
    let mut key = String::from("[");
    for (i, f) in fields.iter().enumerate() {
        match record.get(f) {
            None | Some(Value::Null) => return None,
            Some(v) => {
                if i > 0 {
                    key.push(',');
                }
                write_canonical(&mut key, v);
            }
        }
    }
    key.push(']');
    Some(key)
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
            .map(|f| SortKey::of(record.get(f)))
            .collect();
        Ok(RecordKeys {
            unique,
            exclude,
            refs,
            fields,
            live,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A tuple key is the canonical text of the array of its fields' values.
    #[test]
    fn a_tuple_key_is_the_canonical_array_of_its_values() {
        let record = json!({
            "a": {"z": 1, "b": [1, {"y": 2, "c": "é\"\n"}]},
            "n": 1.5,
            "s": "x",
            "empty": null,
        });
        let fields = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            tuple_key(&record, &fields(&["s", "a", "n"])),
            Some(to_canonical_string(&json!(["x", record["a"], 1.5])))
        );
        assert_eq!(
            tuple_key(&record, &fields(&["s"])).as_deref(),
            Some(r#"["x"]"#)
        );
        assert_eq!(tuple_key(&record, &fields(&["s", "empty"])), None);
        assert_eq!(tuple_key(&record, &fields(&["missing"])), None);
    }
}
