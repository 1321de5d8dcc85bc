//! Nested arrays of a definition, compiled: each array's item schema, its retention bounds
//! and its items' own arrays (two levels at most: a workflow's executions, each with its
//! logs). Arrays are named by their chain of field names (`["executions"]`,
//! `["executions", "logs"]`), the item ids of a path left out.
//!
//! Retention (`max_items`, `max_age`) prunes the oldest items, in array order, when a
//! write makes an array pass a bound (docs/decisions/0018-nested-item-operations.md). It
//! is a pure function of the array and the write's time, so the committer decides it once
//! and logs the outcome (a `trim` op).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::{METADATA_FIELDS, NestedDef, compile_schema};
use crate::collection::secret::SecretFields;
use crate::error::FieldError;

/// One nested array of a collection, compiled.
#[derive(Clone)]
pub struct CompiledNested {
    pub(super) schema: Arc<jsonschema::Validator>,
    pub max_items: Option<usize>,
    pub max_age: Option<Duration>,
    /// The items' own nested arrays.
    pub subs: Vec<String>,
    /// Places in each item encrypted at rest.
    pub secrets: SecretFields,
}

/// Which fields of a record are nested arrays, and (per array) which fields of its items
/// are arrays in turn: how the state keeps a record's arrays apart (`collection/stored.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape(BTreeMap<String, Shape>);

impl Shape {
    /// The shape of a collection without nested arrays.
    pub fn none() -> &'static Shape {
        static NONE: Shape = Shape(BTreeMap::new());
        &NONE
    }

    /// The shape `nested` declares (built once, when the definition compiles).
    pub(super) fn of(nested: &BTreeMap<String, NestedDef>) -> Shape {
        Shape(
            nested
                .iter()
                .map(|(name, n)| (name.clone(), Shape::of(&n.nested)))
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The shape of the items of array `field`.
    pub fn array(&self, field: &str) -> Option<&Shape> {
        self.0.get(field)
    }

    /// The arrays, by field, with their items' shapes.
    pub fn arrays(&self) -> impl Iterator<Item = (&String, &Shape)> {
        self.0.iter()
    }
}

/// Every nested array of a collection, by field chain.
#[derive(Clone, Default)]
pub struct NestedArrays(BTreeMap<Vec<String>, CompiledNested>);

impl NestedArrays {
    /// Compiles a definition's `nested`.
    pub(super) fn compile(nested: &BTreeMap<String, NestedDef>) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        compile_nested(nested, &[], &mut out)?;
        Ok(NestedArrays(out))
    }

    /// The array named by a chain of fields (`["executions", "logs"]`).
    pub fn get(&self, fields: &[String]) -> Option<&CompiledNested> {
        self.0.get(fields)
    }

    /// Does any array's item declare secrets?
    pub fn have_secrets(&self) -> bool {
        self.0.values().any(|a| !a.secrets.is_empty())
    }

    /// Calls `f` on the items of the array at `fields` (`items`, in a record whose
    /// items' places start with `prefix`) and of their own arrays, where they declare
    /// secrets (see `Compiled::each_secret_item`).
    pub(super) fn each_secret_item<E>(
        &self,
        fields: &[String],
        items: Option<&mut Value>,
        prefix: &str,
        f: &mut impl FnMut(&SecretFields, &mut Value, &str) -> Result<(), E>,
    ) -> Result<(), E> {
        let (Some(array), Some(Value::Array(items))) = (self.get(fields), items) else {
            return Ok(());
        };
        let field = fields.last().expect("a chain names an array");
        let below = array.subs.iter().any(|sub| {
            let chain: Vec<String> = fields.iter().cloned().chain([sub.clone()]).collect();
            self.get(&chain).is_some_and(|a| !a.secrets.is_empty())
        });
        if array.secrets.is_empty() && !below {
            return Ok(());
        }
        for item in items {
            let Some(item_id) = item.get("id").and_then(Value::as_str) else {
                continue;
            };
            let at = format!("{prefix}{field}/{item_id}/");
            if !array.secrets.is_empty() {
                f(&array.secrets, item, &at)?;
            }
            for sub in &array.subs {
                let chain: Vec<String> = fields.iter().cloned().chain([sub.clone()]).collect();
                self.each_secret_item(&chain, item.get_mut(sub), &at, f)?;
            }
        }
        Ok(())
    }
}

/// Compiles `nested` (the record's arrays, `prefix` empty, or an item's) into `out`.
fn compile_nested(
    nested: &BTreeMap<String, NestedDef>,
    prefix: &[String],
    out: &mut BTreeMap<Vec<String>, CompiledNested>,
) -> Result<(), String> {
    for (field, n) in nested {
        let chain: Vec<String> = prefix.iter().cloned().chain([field.clone()]).collect();
        let name = chain.join(".");
        let reserved = METADATA_FIELDS.contains(&field.as_str())
            || (!prefix.is_empty() && matches!(field.as_str(), "created_at" | "updated_at"));
        if field.is_empty() || reserved {
            return Err(format!("nested: bad field name {name:?}"));
        }
        if prefix.len() == 1 && !n.nested.is_empty() {
            return Err(format!(
                "nested {name:?}: nested arrays go two levels deep at most"
            ));
        }
        compile_schema(&n.schema).map_err(|e| format!("nested {name:?} schema: {e}"))?;
        let mut stored_schema = n.schema.clone();
        let secrets = SecretFields::compile(&n.secret, &mut stored_schema, compile_schema)
            .map_err(|e| format!("nested {name:?}: {e}"))?;
        if let Some(p) = secrets.paths().find(|p| {
            p.first_member().is_some_and(|m| {
                n.nested.contains_key(m) || matches!(m, "id" | "created_at" | "updated_at")
            })
        }) {
            return Err(format!(
                "nested {name:?}: secret {:?} cannot be in an id, a timestamp or a nested array",
                p.as_str()
            ));
        }
        let schema =
            compile_schema(&stored_schema).map_err(|e| format!("nested {name:?} schema: {e}"))?;
        if n.max_items == Some(0) {
            return Err(format!("nested {name:?}: max_items must be at least 1"));
        }
        let max_age = n
            .max_age
            .as_deref()
            .map(parse_age)
            .transpose()
            .map_err(|e| format!("nested {name:?} max_age: {e}"))?;
        out.insert(
            chain.clone(),
            CompiledNested {
                schema: Arc::new(schema),
                max_items: n.max_items,
                max_age,
                subs: n.nested.keys().cloned().collect(),
                secrets,
            },
        );
        compile_nested(&n.nested, &chain, out)?;
    }
    Ok(())
}

/// A duration as definitions write it: a whole number and a unit, `d`, `h` or `m`
/// (`"14d"`, `"12h"`, `"30m"`).
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like \"14d\", \"12h\" or \"30m\"");
    let (digits, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let duration = match unit {
        "d" => Duration::try_days(n),
        "h" => Duration::try_hours(n),
        "m" => Duration::try_minutes(n),
        _ => None,
    };
    duration.filter(|d| *d > Duration::zero()).ok_or_else(bad)
}

impl CompiledNested {
    /// How many of the oldest `items` retention removes at `now`: those past
    /// `max_items`, and the leading run of items whose `created_at` is older than
    /// `max_age` (array order is age order; the first item not expired ends the run).
    pub fn retention_count(&self, items: &[Value], now: DateTime<Utc>) -> usize {
        let created = items.iter().map(|i| {
            i.get("created_at")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        self.retention_count_of(items.len(), created, now)
    }

    /// [`Self::retention_count`] of an array of `len` items whose `created_at` values,
    /// oldest first, `created` yields (read only as far as retention by age needs).
    pub fn retention_count_of(
        &self,
        len: usize,
        created: impl Iterator<Item = Option<String>>,
        now: DateTime<Utc>,
    ) -> usize {
        let over = self.max_items.map_or(0, |max| len.saturating_sub(max));
        let expired = self.max_age.map_or(0, |age| {
            let cutoff = now - age;
            created
                .take_while(|t| {
                    t.as_deref()
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .is_some_and(|t| t < cutoff)
                })
                .count()
        });
        over.max(expired)
    }
}

impl NestedArrays {
    /// Validates one item's own fields (its nested arrays aside) against the schema of
    /// the array at `fields`.
    pub fn validate_item_at(&self, fields: &[String], item: &Value) -> Result<(), Vec<FieldError>> {
        let Some(array) = self.get(fields) else {
            return Err(vec![FieldError {
                path: format!("/{}", fields.join("/")),
                message: "not a nested array of this collection".into(),
            }]);
        };
        let errors: Vec<_> = array
            .schema
            .iter_errors(&own_item_fields(item, &array.subs))
            .map(|e| FieldError {
                path: e.instance_path().to_string(),
                message: e.to_string(),
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Validates the items of the array at `fields` (`at`: its JSON pointer in the
    /// record), and their own arrays.
    pub fn validate_items(
        &self,
        fields: &[String],
        items: Option<&Value>,
        at: &str,
        errors: &mut Vec<FieldError>,
    ) {
        let Some(array) = self.get(fields) else {
            return;
        };
        let items = match items {
            None | Some(Value::Null) => return,
            Some(Value::Array(items)) => items,
            Some(_) => {
                errors.push(FieldError {
                    path: at.to_string(),
                    message: "must be an array".into(),
                });
                return;
            }
        };
        for (i, item) in items.iter().enumerate() {
            if item.get("id").and_then(Value::as_str).is_none() {
                errors.push(FieldError {
                    path: format!("{at}/{i}"),
                    message: "nested items need a string id".into(),
                });
            }
            let own = own_item_fields(item, &array.subs);
            if !array.schema.is_valid(&own) {
                errors.extend(array.schema.iter_errors(&own).map(|e| FieldError {
                    path: format!("{at}/{i}{}", e.instance_path()),
                    message: e.to_string(),
                }));
            }
            for sub in &array.subs {
                let chain: Vec<String> = fields.iter().cloned().chain([sub.clone()]).collect();
                self.validate_items(&chain, item.get(sub), &format!("{at}/{i}/{sub}"), errors);
            }
        }
    }
}

/// An item without what the engine sets (`id`, timestamps) and without its own arrays:
/// what its schema describes.
fn own_item_fields(item: &Value, subs: &[String]) -> Value {
    match item {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "id" | "created_at" | "updated_at") && !subs.contains(k)
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::collection::Definition;

    #[test]
    fn ages_and_levels() {
        assert_eq!(parse_age("14d").unwrap(), Duration::days(14));
        assert_eq!(parse_age("30m").unwrap(), Duration::minutes(30));
        for bad in ["", "d", "14", "1w", "-1h", "0h", "1.5h"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
        let three = json!({"name": "w", "nested": {"a": {"nested": {"b": {"nested": {"c": {}}}}}}});
        let err = Definition::from_json(&three)
            .unwrap()
            .compile()
            .unwrap_err();
        assert!(err.to_string().contains("two levels"), "{err}");
    }

    #[test]
    fn retention_prunes_the_oldest() {
        let def = Definition::from_json(&json!({"name": "w", "nested": {"logs": {
            "max_items": 3, "max_age": "1h"}}}))
        .unwrap()
        .compile()
        .unwrap();
        let logs = def.nested_at(&["logs".into()]).unwrap();
        let now: DateTime<Utc> = "2026-01-01T12:00:00Z".parse().unwrap();
        let item = |t: &str| json!({"id": t, "created_at": format!("2026-01-01T{t}:00Z")});
        let items: Vec<Value> = ["10:00", "11:30", "10:30", "11:40", "11:50"]
            .iter()
            .map(|t| item(t))
            .collect();
        // Two past max_items; one expired at the front (the third is old too, but the
        // second ends the run).
        assert_eq!(logs.retention_count(&items, now), 2);
        assert_eq!(logs.retention_count(&items[..3], now), 1);
        assert_eq!(logs.retention_count(&items[3..], now), 0);
    }
}
