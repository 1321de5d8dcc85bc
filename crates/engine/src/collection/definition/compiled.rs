//! The compiled form of a definition: what records are checked against (JSON Schema
//! validators and CEL programs built once per definition), and how fields are redacted.
//! Built only by `Definition::compile`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::collection::expr::Expr;
use crate::collection::secret::SecretFields;
use crate::error::FieldError;
use crate::error::{Error, Violation, ViolationCode};
use crate::names::{CollectionName, RecordId};

use super::{Definition, ExcludeDef, METADATA_FIELDS, ReferenceDef};

/// A definition checked and ready to validate records.
#[derive(Clone)]
pub struct Compiled {
    pub def: Definition,
    pub name: CollectionName,
    pub(super) schema: Arc<jsonschema::Validator>,
    /// The same schema applied to the whole record, when that is equivalent
    /// (`definition::whole_record_schema`): validating a record then copies nothing.
    pub(super) whole_schema: Option<Arc<jsonschema::Validator>>,
    /// The secret places of the record's own fields.
    pub secrets: SecretFields,
    pub checks: Vec<(String, Expr)>,
    pub excludes: Vec<CompiledExclude>,
    pub references: Vec<CompiledReference>,
    /// Nested arrays by field chain (see `nested.rs`).
    pub(super) items: super::NestedArrays,
    /// How the state keeps the records' nested arrays apart.
    pub shape: super::Shape,
    pub rules: BTreeMap<&'static str, Expr>,
    /// The schema's top-level `default` values, by field (what `fill_defaults` adds).
    pub(super) defaults: Vec<(String, Value)>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("name", &self.name)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct CompiledExclude {
    pub def: ExcludeDef,
    pub when: Option<Expr>,
}

#[derive(Debug, Clone)]
pub struct CompiledReference {
    pub def: ReferenceDef,
    pub target: CollectionName,
}

impl CompiledReference {
    /// The violation of record `id` of `collection` pointing at `target_id`, a record
    /// of the target collection that does not exist. The HTTP API answers the same for a
    /// target the writer may not see, so the answer does not tell the two apart.
    pub fn missing_target(&self, collection: &str, id: &RecordId, target_id: &str) -> Error {
        Error::from(Violation {
            code: ViolationCode::ReferenceViolation,
            collection: collection.to_string(),
            constraint: self.def.field.clone(),
            fields: vec![self.def.field.clone()],
            conflicting: None,
            message: format!(
                "record {id}: {} points at {}/{target_id}, which does not exist",
                self.def.field, self.target
            ),
            errors: Vec::new(),
        })
    }
}

impl Compiled {
    /// Fills missing top-level fields from the schema's `default` values (on create:
    /// `time_of_day` defaults to `"09:00"` because the schema says so, not code).
    pub fn fill_defaults(&self, fields: &mut serde_json::Map<String, Value>) {
        for (name, default) in &self.defaults {
            if !fields.contains_key(name) {
                fields.insert(name.clone(), default.clone());
            }
        }
    }

    /// Validates a record's own fields (metadata and nested arrays aside) and the items
    /// of its nested arrays.
    pub fn validate_fields(&self, record: &Value) -> std::result::Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        let Value::Object(map) = record else {
            return Err(vec![FieldError {
                path: String::new(),
                message: "a record must be a JSON object".into(),
            }]);
        };
        // `is_valid` stops at the first failure and builds no error: most records pass,
        // and the whole-record schema checks them without copying their own fields out.
        let passed = self
            .whole_schema
            .as_ref()
            .is_some_and(|whole| whole.is_valid(record));
        if !passed {
            let own: serde_json::Map<String, Value> = map
                .iter()
                .filter(|(k, _)| !METADATA_FIELDS.contains(&k.as_str()) && !self.is_nested(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let own = Value::Object(own);
            if !self.schema.is_valid(&own) {
                errors.extend(self.schema.iter_errors(&own).map(|e| FieldError {
                    path: e.instance_path().to_string(),
                    message: e.to_string(),
                }));
            }
        }
        for field in self.def.nested.keys() {
            let chain = [field.clone()];
            self.items
                .validate_items(&chain, map.get(field), &format!("/{field}"), &mut errors);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Is `field` a nested array of this collection?
    pub fn is_nested(&self, field: &str) -> bool {
        self.def.nested.contains_key(field)
    }

    /// The nested array named by a chain of fields (`["executions", "logs"]`).
    pub fn nested_at(&self, fields: &[String]) -> Option<&super::CompiledNested> {
        self.items.get(fields)
    }

    /// Validates one item's own fields (its nested arrays aside) against the schema of
    /// the array at `fields`.
    pub fn validate_item_at(
        &self,
        fields: &[String],
        item: &Value,
    ) -> std::result::Result<(), Vec<FieldError>> {
        self.items.validate_item_at(fields, item)
    }

    /// Validates one item of the record's nested array `field` (its own fields).
    pub fn validate_item(
        &self,
        field: &str,
        item: &Value,
    ) -> std::result::Result<(), Vec<FieldError>> {
        self.validate_item_at(&[field.to_string()], item)
    }

    /// Is `field` secret as a whole (a top-level secret field)?
    pub fn is_secret(&self, field: &str) -> bool {
        self.secrets.is_field(field)
    }

    /// Does the collection declare any secret (own fields or nested items)? Reads and
    /// writes of the others skip the secret walks altogether.
    pub fn has_secrets(&self) -> bool {
        !self.secrets.is_empty() || self.items.have_secrets()
    }

    /// Are there secrets below the top level: inside an own field's value, or in
    /// nested items? (Their audit changes are masked wherever a sealed value shows.)
    pub fn has_deep_secrets(&self) -> bool {
        self.secrets.reaches_inside() || self.items.have_secrets()
    }

    /// Does a write of `record` seal the value at `pointer` (a JSON Pointer into it: a
    /// secret place, or inside one), in the record's own fields or in a nested item?
    /// (An importer checks a credential it writes will not be stored in clear.)
    pub fn seals(&self, record: &Value, pointer: &str) -> bool {
        fn covers(fields: &SecretFields, doc: &Value, rest: &[&str]) -> bool {
            let rest = format!("/{}", rest.join("/"));
            fields.paths().any(|p| {
                p.locations(doc).iter().any(|l| {
                    let at = l.pointer();
                    rest == at || rest.starts_with(&format!("{at}/"))
                })
            })
        }
        let parts: Vec<&str> = pointer
            .strip_prefix('/')
            .unwrap_or(pointer)
            .split('/')
            .collect();
        if covers(&self.secrets, record, &parts) {
            return true;
        }
        let (mut doc, mut rest, mut chain) = (record, parts.as_slice(), Vec::new());
        while let [field, index, tail @ ..] = rest {
            chain.push(field.to_string());
            let Some(array) = self.nested_at(&chain) else {
                return false;
            };
            let Some(item) = index
                .parse::<usize>()
                .ok()
                .and_then(|i| doc.get(field)?.get(i))
            else {
                return false;
            };
            if covers(&array.secrets, item, tail) {
                return true;
            }
            (doc, rest) = (item, tail);
        }
        false
    }

    /// Calls `f` for the items of the own arrays of one item (of the array at `fields`,
    /// whose place starts with `prefix`, `collection/id/executions/<id>/`) that declare
    /// secrets, as [`Self::each_secret_item`] does for a record.
    pub fn each_secret_item_below<E>(
        &self,
        fields: &[String],
        item: &mut Value,
        prefix: &str,
        f: &mut impl FnMut(&SecretFields, &mut Value, &str) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let Some(array) = self.nested_at(fields) else {
            return Ok(());
        };
        for sub in &array.subs {
            let chain: Vec<String> = fields.iter().cloned().chain([sub.clone()]).collect();
            self.items
                .each_secret_item(&chain, item.get_mut(sub), prefix, f)?;
        }
        Ok(())
    }

    /// Calls `f` for every nested item of `doc` (two levels deep) whose array declares
    /// secrets, with those secrets, the item and the prefix a sealed value there is
    /// bound to (`collection/id/executions/<id>/logs/<id>/`).
    pub fn each_secret_item<E>(
        &self,
        id: &RecordId,
        doc: &mut Value,
        f: &mut impl FnMut(&SecretFields, &mut Value, &str) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        if !self.items.have_secrets() {
            return Ok(());
        }
        let prefix = format!("{}/{id}/", self.name);
        for field in self.def.nested.keys() {
            self.items.each_secret_item(
                std::slice::from_ref(field),
                doc.get_mut(field),
                &prefix,
                f,
            )?;
        }
        Ok(())
    }

    /// Is `field` a system field (written by app code only, never through the API)?
    pub fn is_system(&self, field: &str) -> bool {
        self.def.system_fields.iter().any(|s| s == field)
    }

    /// Is `field` credential material (see [`Definition::redact`])?
    pub fn is_redacted(&self, field: &str) -> bool {
        self.def.redact.iter().any(|r| r == field)
    }

    /// A record as answers show it: redacted fields (set ones) become `"[redacted]"`.
    /// The record id is left alone (it names the record being answered).
    pub fn redact_record(&self, record: &mut Value) {
        if let Value::Object(map) = record {
            for field in self.def.redact.iter().filter(|f| *f != "id") {
                if let Some(v) = map.get_mut(field)
                    && !v.is_null()
                {
                    *v = json!(REDACTED);
                }
            }
        }
    }

    /// An audit event of this collection as answers show it: the `from`/`to` of
    /// redacted fields become `"[redacted]"`, and `record_id` too when `id` is redacted.
    /// Applied when events are read, so events logged before a field was declared
    /// redacted are covered as well.
    pub fn redact_event(&self, event: &mut Value) {
        if self.def.redact.is_empty() {
            return;
        }
        if self.is_redacted("id") && event.get("record_id").is_some() {
            event["record_id"] = json!(REDACTED);
        }
        let Some(changes) = event.get_mut("changes").and_then(Value::as_object_mut) else {
            return;
        };
        for field in &self.def.redact {
            if let Some(Value::Object(change)) = changes.get_mut(field) {
                for side in change.values_mut() {
                    if !side.is_null() {
                        *side = json!(REDACTED);
                    }
                }
            }
        }
    }
}

/// What answers show in place of a redacted value.
pub const REDACTED: &str = "[redacted]";
