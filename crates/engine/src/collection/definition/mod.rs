//! Collection definitions: the declared shape and integrity rules of a collection.
//!
//! A definition is data, not code: an operator writes or edits one (TOML, with comments;
//! see `docs/collections.md`) without recompiling, apps ship theirs as files, and the API
//! exports them as JSON. Definitions are stored as records of the engine's own
//! `_collections` collection, so a change is a transaction like any other: validated
//! against the data it governs, committed in the log, audited.
//!
//! [`Definition`] is the serialized form; [`Compiled`] is what the engine checks records
//! against (JSON Schema validators and CEL programs built once per definition).

mod compiled;
mod nested;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::expr::Expr;
use super::secret::SecretFields;
pub use crate::error::FieldError;
use crate::error::{Error, Result};
use crate::names::CollectionName;

pub use compiled::{Compiled, CompiledExclude, CompiledReference, REDACTED};
pub use nested::{CompiledNested, NestedArrays, Shape, parse_age};

/// Fields every record carries, set by the engine.
pub const METADATA_FIELDS: [&str; 8] = [
    "id",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "deleted_at",
    "deleted_by",
    "_version",
];

/// A collection definition as written by people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the record's own fields (metadata and nested arrays excluded).
    #[serde(default = "open_schema")]
    pub schema: Value,
    /// Delete sets `deleted_at`/`deleted_by`; restore undoes it; purge removes.
    #[serde(default)]
    pub soft_delete: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique: Vec<UniqueDef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub check: Vec<CheckDef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<ExcludeDef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<ReferenceDef>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nested: BTreeMap<String, NestedDef>,
    /// Fields encrypted at rest and never listed: top-level fields (`"api_key"`) or
    /// places inside them (`"auth.password"`, `"variables[type=secret].value"`; the
    /// grammar is in `collection/secret/paths.rs` and docs/collections.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret: Vec<String>,
    /// Fields only app code sets (an upload's file key, an automation's marks): the
    /// generic API refuses a write that sets or changes one, whoever the caller is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system_fields: Vec<String>,
    /// Credential material (a password hash; `id` when the record id itself is one, as
    /// for refresh sessions): every answer of the server — audit events, history, as-of
    /// and current reads — shows `"[redacted]"` instead, whoever asks, and new audit
    /// events never hold the value. Declared here, once, not in each route. (Unlike
    /// `secret`, the value stays readable to the engine: a password hash is compared.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redact: Vec<String>,
    /// Fields carried in `index.json` and indexed for equality filters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub index: Vec<String>,
    /// The field naming a record's owner (compared with the caller by access rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_field: Option<String>,
    /// Access rules, CEL over `auth` and `record` (used by the server).
    #[serde(default, skip_serializing_if = "Rules::is_empty")]
    pub rules: Rules,
}

fn open_schema() -> Value {
    json!({"type": "object"})
}

/// Field sets that must be unique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UniqueDef {
    pub name: String,
    pub fields: Vec<String>,
    /// Also count soft-deleted records (default: only live ones).
    #[serde(default)]
    pub include_deleted: bool,
}

/// A named boolean CEL expression over `record`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckDef {
    pub name: String,
    pub expr: String,
}

/// No two live records with equal `key` fields whose `[start, end)` ranges overlap,
/// among those for which `when` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExcludeDef {
    pub name: String,
    pub key: Vec<String>,
    pub start: String,
    pub end: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
}

/// What deleting a referenced record does to the records that point at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDelete {
    /// Refuse the delete while live records point at it.
    #[default]
    Restrict,
    /// Soft-delete (or, without soft delete, delete) the records that point at it.
    Cascade,
    /// Set the pointing field to null.
    SetNull,
}

/// `field` must name a live record of `collection` (or, with `allow_deleted`, an
/// existing one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceDef {
    pub field: String,
    pub collection: String,
    #[serde(default)]
    pub on_delete: OnDelete,
    /// The referenced record may be soft-deleted: a soft delete is then an update like
    /// any other and leaves this record alone (pointing at it, ready for a restore); only
    /// a purge applies `on_delete`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_deleted: bool,
    /// Fields that must be equal: `{local field = field of the referenced record}`.
    #[serde(default, rename = "match", skip_serializing_if = "BTreeMap::is_empty")]
    pub matches: BTreeMap<String, String>,
}

/// An array of sub-records with their own schema and ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NestedDef {
    #[serde(default = "open_schema")]
    pub schema: Value,
    /// Retention: a write that takes the array past this many items prunes the oldest
    /// (docs/decisions/0018-nested-item-operations.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<usize>,
    /// Retention: a write prunes the oldest items whose `created_at` is older than this
    /// (`"14d"`, `"12h"`, `"30m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// The items' own nested arrays (one level more at most), in the same shape.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nested: BTreeMap<String, NestedDef>,
    /// Places in each item encrypted at rest, as a collection's `secret` paths, from
    /// the item (`"value"`, `"[type=secret].value"`, `"auth.password"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret: Vec<String>,
}

/// CEL access rules; a missing rule means "role checks only".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<String>,
    /// The rules bind `SuperAdmin` too (who otherwise passes every rule): for apps whose
    /// records belong to their owner whatever the role (docsai, where every caller is a
    /// SuperAdmin). A missing rule still admits only SuperAdmin. Decision 0021.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bind_super_admin: bool,
}

impl Rules {
    fn is_empty(&self) -> bool {
        *self == Rules::default()
    }

    fn all(&self) -> [(&'static str, &Option<String>); 5] {
        [
            ("list", &self.list),
            ("view", &self.view),
            ("create", &self.create),
            ("update", &self.update),
            ("delete", &self.delete),
        ]
    }
}

impl Definition {
    /// Parses a TOML definition file.
    pub fn from_toml(text: &str) -> Result<Definition> {
        toml::from_str(text).map_err(|e| Error::InvalidDefinition {
            collection: String::new(),
            problem: e.to_string(),
        })
    }

    /// Parses a JSON definition.
    pub fn from_json(value: &Value) -> Result<Definition> {
        serde_json::from_value(value.clone()).map_err(|e| Error::InvalidDefinition {
            collection: value
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            problem: e.to_string(),
        })
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("definitions serialize")
    }

    /// Checks the definition and builds its validators.
    pub fn compile(&self) -> Result<Compiled> {
        let bad = |problem: String| Error::InvalidDefinition {
            collection: self.name.clone(),
            problem,
        };
        let name = CollectionName::parse_any(&self.name).map_err(|e| bad(e.to_string()))?;
        compile_schema(&self.schema).map_err(|e| bad(format!("schema: {e}")))?;
        // Secrets are stored encrypted: the commit-time schema accepts their sealed form,
        // and their plaintext is checked against their own sub-schema before encryption.
        let mut stored_schema = self.schema.clone();
        let secrets =
            SecretFields::compile(&self.secret, &mut stored_schema, compile_schema).map_err(bad)?;
        let schema = compile_schema(&stored_schema).map_err(|e| bad(format!("schema: {e}")))?;
        let whole_schema = whole_record_schema(&stored_schema, self.nested.keys())
            .map(|s| compile_schema(&s).map(Arc::new))
            .transpose()
            .map_err(|e| bad(format!("schema: {e}")))?;

        let mut names = BTreeSet::new();
        let mut unique_name = |kind: &str, n: &str| {
            if n.is_empty() || !names.insert(n.to_string()) {
                Err(bad(format!(
                    "{kind} {n:?}: names must be non-empty and distinct"
                )))
            } else {
                Ok(())
            }
        };
        for u in &self.unique {
            unique_name("unique", &u.name)?;
            check_fields(&u.fields).map_err(|e| bad(format!("unique {:?}: {e}", u.name)))?;
        }
        let mut checks = Vec::new();
        for c in &self.check {
            unique_name("check", &c.name)?;
            let expr =
                Expr::compile(&c.expr).map_err(|e| bad(format!("check {:?}: {e}", c.name)))?;
            checks.push((c.name.clone(), expr));
        }
        let mut excludes = Vec::new();
        for x in &self.exclude {
            unique_name("exclude", &x.name)?;
            check_fields(&x.key).map_err(|e| bad(format!("exclude {:?}: key {e}", x.name)))?;
            if x.start.is_empty() || x.end.is_empty() || x.start == x.end {
                return Err(bad(format!(
                    "exclude {:?}: start and end must name two different fields",
                    x.name
                )));
            }
            let when = x
                .when
                .as_deref()
                .map(Expr::compile)
                .transpose()
                .map_err(|e| bad(format!("exclude {:?}: when: {e}", x.name)))?;
            excludes.push(CompiledExclude {
                def: x.clone(),
                when,
            });
        }
        let mut references = Vec::new();
        for r in &self.references {
            let target = CollectionName::parse_any(&r.collection)
                .map_err(|e| bad(format!("references {:?}: {e}", r.field)))?;
            if r.field.is_empty() || METADATA_FIELDS.contains(&r.field.as_str()) {
                return Err(bad(format!("references: bad field {:?}", r.field)));
            }
            references.push(CompiledReference {
                def: r.clone(),
                target,
            });
        }
        let items = nested::NestedArrays::compile(&self.nested).map_err(bad)?;
        for p in secrets.paths() {
            let top = p.first_member().unwrap_or_default();
            if METADATA_FIELDS.contains(&top)
                || self.index.iter().any(|f| f == top)
                || self.nested.contains_key(top)
            {
                return Err(bad(format!(
                    "secret {:?} cannot be in a metadata, index or nested array field (a nested array's items declare their own)",
                    p.as_str()
                )));
            }
        }
        self.check_system_fields().map_err(bad)?;
        for r in &self.redact {
            let metadata = METADATA_FIELDS.contains(&r.as_str()) && r != "id";
            if r.is_empty() || metadata || self.index.contains(r) {
                return Err(bad(format!(
                    "redact field {r:?} cannot be empty, a metadata or an index field"
                )));
            }
        }
        let mut rules = BTreeMap::new();
        for (action, rule) in self.rules.all() {
            if let Some(src) = rule {
                let expr = Expr::compile(src).map_err(|e| bad(format!("rules.{action}: {e}")))?;
                rules.insert(action, expr);
            }
        }
        Ok(Compiled {
            def: self.clone(),
            name,
            schema: Arc::new(schema),
            whole_schema,
            secrets,
            checks,
            excludes,
            references,
            items,
            shape: Shape::of(&self.nested),
            rules,
            defaults: self
                .schema
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(name, prop)| Some((name.clone(), prop.get("default")?.clone())))
                .collect(),
        })
    }
}

impl Definition {
    /// System fields are own fields of the record that app code sets: not metadata (the
    /// engine sets those), not nested arrays or secrets (changed and compared otherwise),
    /// and without a schema `default` (a default would be written on every create).
    fn check_system_fields(&self) -> std::result::Result<(), String> {
        let mut seen = BTreeSet::new();
        for f in &self.system_fields {
            let default = self
                .schema
                .get("properties")
                .and_then(|p| p.get(f))
                .is_some_and(|p| p.get("default").is_some());
            let why = if f.is_empty() || !seen.insert(f) {
                "names must be non-empty and distinct"
            } else if METADATA_FIELDS.contains(&f.as_str()) {
                "is a metadata field (set by the engine already)"
            } else if self.nested.contains_key(f) {
                "is a nested array"
            } else if self.secret.contains(f) {
                "is a secret field"
            } else if default {
                "has a schema default"
            } else {
                continue;
            };
            return Err(format!("system field {f:?} {why}"));
        }
        Ok(())
    }
}

fn check_fields(fields: &[String]) -> std::result::Result<(), String> {
    if fields.is_empty() {
        return Err("needs at least one field".into());
    }
    if let Some(f) = fields.iter().find(|f| f.is_empty()) {
        return Err(format!("empty field name {f:?}"));
    }
    Ok(())
}

/// The top-level keywords a schema may use for [`whole_record_schema`] to apply: with
/// these, the fields it leaves out of account make no difference to the others.
const WHOLE_RECORD_KEYWORDS: [&str; 16] = [
    "type",
    "properties",
    "required",
    "additionalProperties",
    "title",
    "description",
    "$schema",
    "$id",
    "$comment",
    "$defs",
    "definitions",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// `schema` turned into a schema of the whole record, which accepts a record exactly
/// when `schema` accepts its own fields (the record without its metadata and its
/// `nested` arrays): the left-out fields declared as anything (`true`). Validating
/// that way copies nothing. `None` when `schema` uses a keyword that could see the
/// left-out fields otherwise (`maxProperties`, `patternProperties`, `allOf`...), or
/// requires one (which fails for every record), or is not a plain object schema:
/// such a schema is applied to a copy of the own fields (`Compiled::validate_fields`).
fn whole_record_schema<'a>(
    schema: &Value,
    nested: impl Iterator<Item = &'a String>,
) -> Option<Value> {
    let mut schema = schema.as_object()?.clone();
    if schema
        .keys()
        .any(|k| !WHOLE_RECORD_KEYWORDS.contains(&k.as_str()))
    {
        return None;
    }
    let left_out: Vec<&str> = METADATA_FIELDS
        .iter()
        .copied()
        .chain(nested.map(String::as_str))
        .collect();
    let required_left_out = match schema.get("required") {
        None => false,
        Some(Value::Array(names)) => names
            .iter()
            .any(|n| n.as_str().is_none_or(|n| left_out.contains(&n))),
        Some(_) => true,
    };
    if required_left_out {
        return None;
    }
    let properties = schema
        .entry("properties")
        .or_insert_with(|| Value::Object(serde_json::Map::new()))
        .as_object_mut()?;
    for field in left_out {
        properties.insert(field.to_string(), Value::Bool(true));
    }
    Some(Value::Object(schema))
}

pub(crate) fn compile_schema(schema: &Value) -> std::result::Result<jsonschema::Validator, String> {
    if !schema.is_object() {
        return Err("must be a JSON Schema object".into());
    }
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| e.to_string())
}

/// Reads every `*.toml` definition in a directory, in name order.
pub fn load_dir(dir: &std::path::Path) -> Result<Vec<Definition>> {
    let read_err = |e: std::io::Error| {
        Error::invalid("definitions directory", format!("{}: {e}", dir.display()))
    };
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(read_err)?;
            Definition::from_toml(&text).map_err(|e| match e {
                Error::InvalidDefinition { problem, .. } => Error::InvalidDefinition {
                    collection: p.display().to_string(),
                    problem,
                },
                other => other,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_system(fields: &[&str]) -> Result<Compiled> {
        let mut def = Definition::from_json(&json!({
            "name": "photos",
            "schema": {"type": "object", "properties": {
                "file_key": {"type": "string"}, "kind": {"type": "string", "default": "png"}}},
            "nested": {"notes": {}},
            "secret": ["token"],
        }))?;
        def.system_fields = fields.iter().map(|f| f.to_string()).collect();
        def.compile()
    }

    #[test]
    fn system_fields_are_own_fields_without_defaults() {
        let ok = with_system(&["file_key"]).unwrap();
        assert!(ok.is_system("file_key") && !ok.is_system("kind"));
        for (bad, why) in [
            (&["created_by"][..], "metadata"),
            (&["notes"], "nested"),
            (&["token"], "secret"),
            (&["kind"], "default"),
            (&["file_key", "file_key"], "distinct"),
            (&[""], "distinct"),
        ] {
            let err = with_system(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    fn compiled(extra: Value) -> Result<Compiled> {
        let mut def = json!({"name": "keys", "index": ["label"]});
        def.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Definition::from_json(&def)?.compile()
    }

    #[test]
    fn redacted_fields_are_checked_and_masked_in_records_and_events() {
        assert!(
            compiled(json!({"redact": ["label"]})).is_err(),
            "an index field"
        );
        assert!(
            compiled(json!({"redact": ["created_at"]})).is_err(),
            "metadata"
        );
        let def = compiled(json!({"redact": ["hash", "id"]})).unwrap();
        let mut record = json!({"id": "k1", "hash": "h", "label": "ci", "none": null});
        def.redact_record(&mut record);
        assert_eq!(
            record,
            json!({"id": "k1", "hash": REDACTED, "label": "ci", "none": null})
        );
        let mut event = json!({"record_id": "k1", "changes": {
            "hash": {"from": null, "to": "h"}, "label": {"from": "a", "to": "b"}}});
        def.redact_event(&mut event);
        assert_eq!(
            event,
            json!({"record_id": REDACTED, "changes": {
                "hash": {"from": null, "to": REDACTED}, "label": {"from": "a", "to": "b"}}})
        );
    }

    /// A record's own fields, as `validate_fields` sees them without the shortcut.
    fn own_fields(record: &Value, nested: &[&str]) -> Value {
        let own = record.as_object().unwrap().iter().filter(|(k, _)| {
            !METADATA_FIELDS.contains(&k.as_str()) && !nested.contains(&k.as_str())
        });
        Value::Object(own.map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    #[test]
    fn a_whole_record_schema_accepts_exactly_what_the_own_fields_schema_does() {
        let records = [
            json!({"id": "r1", "created_at": "t", "_version": 3, "title": "a", "comments": []}),
            json!({"id": "r1", "title": "a", "extra": 1}),
            json!({"id": "r1", "title": 5}),
            json!({"id": "r1", "comments": [], "deleted_at": null}),
            json!({"title": "a", "size": 2, "x_1": "y"}),
        ];
        let plain = [
            json!({"type": "object", "additionalProperties": false, "required": ["title"],
                   "properties": {"title": {"type": "string"}}}),
            // The left-out fields are not checked, even where the schema declares them.
            json!({"type": "object", "properties": {"id": {"type": "integer"},
                   "comments": {"type": "string"}, "title": {"type": "string"}}}),
            json!({"type": "object", "additionalProperties": {"type": "integer"},
                   "properties": {"title": {"type": "string"}}}),
        ];
        let other = [
            // Required metadata is never among the own fields: every record fails.
            json!({"type": "object", "required": ["id"]}),
            json!({"type": "object", "required": ["comments"]}),
            json!({"type": "object", "maxProperties": 2}),
            json!({"type": "object", "patternProperties": {"^x_": {"type": "integer"}}}),
            json!({"type": "object", "propertyNames": {"maxLength": 5}}),
            json!({"allOf": [{"required": ["title"]}]}),
        ];
        for (schemas, shortcut) in [(&plain[..], true), (&other[..], false)] {
            for schema in schemas {
                let def = Definition::from_json(&json!({
                    "name": "notes", "schema": schema, "nested": {"comments": {}}}))
                .unwrap()
                .compile()
                .unwrap();
                assert_eq!(def.whole_schema.is_some(), shortcut, "{schema}");
                let reference = compile_schema(schema).unwrap();
                for record in &records {
                    let expected = reference.is_valid(&own_fields(record, &["comments"]));
                    let found = def.validate_fields(record);
                    assert_eq!(found.is_ok(), expected, "{schema} on {record}: {found:?}");
                    // Exact, not only safe: a record it refuses takes the slow path.
                    if let Some(whole) = &def.whole_schema {
                        assert_eq!(whole.is_valid(record), expected, "{schema} on {record}");
                    }
                }
            }
        }
    }
}
