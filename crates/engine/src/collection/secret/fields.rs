//! The secret paths of one level of a document (a record's own fields, or the items of
//! one nested array), compiled: sealing what a write puts there, and showing it.
//!
//! The stored schema accepts a sealed value wherever a secret path points (its
//! sub-schema becomes "the declared schema, or a sealed string"), so the committer
//! checks stored documents as they are; the plaintext is checked against the declared
//! sub-schema before it is sealed.

use std::sync::Arc;

use serde_json::{Value, json};

use super::SecretBox;
use super::paths::{Location, SecretPath};
use super::{MASK, Secrets};
use crate::error::{Error, FieldError, Result};

/// One declared path and the schema its plaintext must meet.
#[derive(Clone)]
struct Entry {
    path: SecretPath,
    schema: Option<Arc<jsonschema::Validator>>,
}

/// The secret paths of one level, compiled.
#[derive(Clone, Default)]
pub struct SecretFields(Vec<Entry>);

/// What the stored schema accepts in place of a secret's own schema: a sealed value.
fn sealed_schema() -> Value {
    json!({"type": "string", "pattern": "^enc:v1:"})
}

/// Why a write's secrets could not be sealed.
pub enum SealError {
    /// Plaintext that does not meet its schema.
    Invalid(Vec<FieldError>),
    /// No key is configured (the place, as a JSON Pointer).
    NoKey(String),
    /// A stored value that does not decrypt (when a place stops being secret).
    Engine(Error),
}

impl SecretFields {
    /// Parses `declared` and rewrites `schema` (the stored schema of this level) so
    /// that each place accepts its sealed form.
    /// `compile_schema` builds a validator (the definition's way of building them).
    pub fn compile(
        declared: &[String],
        schema: &mut Value,
        compile_schema: impl Fn(&Value) -> std::result::Result<jsonschema::Validator, String>,
    ) -> std::result::Result<Self, String> {
        let mut out = Vec::new();
        for text in declared {
            let path = SecretPath::parse(text)?;
            if out.iter().any(|e: &Entry| e.path == path) {
                return Err(format!("secret path {text:?} is declared twice"));
            }
            let schema = match path.sub_schema_mut(schema) {
                Some(sub) if sub.is_object() => {
                    let declared = std::mem::take(sub);
                    let v = compile_schema(&declared)
                        .map_err(|e| format!("schema of secret {text:?}: {e}"))?;
                    *sub = json!({"anyOf": [declared, sealed_schema()]});
                    Some(Arc::new(v))
                }
                _ => None,
            };
            out.push(Entry { path, schema });
        }
        Ok(SecretFields(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The declared paths.
    pub fn paths(&self) -> impl Iterator<Item = &SecretPath> {
        self.0.iter().map(|e| &e.path)
    }

    /// Is `field` secret as a whole (a path that is only that member)?
    pub fn is_field(&self, field: &str) -> bool {
        self.paths().any(|p| p.field() == Some(field))
    }

    /// Does any path name a place below the top level?
    pub fn reaches_inside(&self) -> bool {
        self.paths().any(|p| p.field().is_none())
    }

    fn places(&self, doc: &Value) -> Vec<(Location, &Entry)> {
        self.0
            .iter()
            .flat_map(|e| e.path.locations(doc).into_iter().map(move |l| (l, e)))
            .collect()
    }

    /// Seals what a write puts at this level's secret places in `doc`, bound to
    /// `aad_prefix` (`collection/id/`, then the nested item's place): plaintext is
    /// checked and sealed; the mask keeps what `before` holds there (or nothing); a
    /// sealed value stays. A place that was secret in `before` and is not any more
    /// (its filter no longer holds) gets its value back in clear.
    pub fn seal(
        &self,
        doc: &mut Value,
        before: Option<&Value>,
        aad_prefix: &str,
        key: Option<&SecretBox>,
    ) -> std::result::Result<(), SealError> {
        if self.is_empty() {
            return Ok(());
        }
        let places = self.places(doc);
        let mut errors = Vec::new();
        for (at, entry) in &places {
            let Some(value) = at.get(doc) else { continue };
            if value == MASK {
                // Keep what is stored there (sealed below if it was stored in clear,
                // before the path was declared), or set nothing.
                let kept = before.and_then(|b| at.get(b)).filter(|v| !v.is_null());
                let (parent, name) = at.parent_mut(doc).expect("the value is there");
                match kept {
                    Some(kept) => parent.insert(name.to_string(), kept.clone()),
                    None => parent.remove(name),
                };
            }
            let Some(value) = at.get(doc) else { continue };
            if value.is_null() || SecretBox::is_sealed(value) {
                continue;
            }
            if let Some(schema) = &entry.schema {
                errors.extend(schema.iter_errors(value).map(|e| FieldError {
                    path: format!("{}{}", at.pointer(), e.instance_path()),
                    message: e.to_string(),
                }));
                if !errors.is_empty() {
                    continue;
                }
            }
            let key = key.ok_or_else(|| SealError::NoKey(at.pointer()))?;
            let sealed = key.seal(value, &format!("{aad_prefix}{}", at.aad_suffix()));
            let (parent, name) = at.parent_mut(doc).expect("the value is there");
            parent.insert(name.to_string(), json!(sealed));
        }
        if !errors.is_empty() {
            return Err(SealError::Invalid(errors));
        }
        let Some(before) = before else {
            return Ok(());
        };
        for (at, _) in self.places(before) {
            if places.iter().any(|(p, _)| *p == at) {
                continue;
            }
            let (Some(old), Some(now)) = (at.get(before), at.get(doc)) else {
                continue;
            };
            if old != now || !SecretBox::is_sealed(now) {
                continue;
            }
            let key = key.ok_or_else(|| SealError::NoKey(at.pointer()))?;
            let sealed = now.as_str().unwrap_or_default().to_string();
            let plain = key
                .open(&sealed, &format!("{aad_prefix}{}", at.aad_suffix()))
                .map_err(SealError::Engine)?;
            let (parent, name) = at.parent_mut(doc).expect("the value is there");
            parent.insert(name.to_string(), plain);
        }
        Ok(())
    }

    /// Shows this level's secrets in `doc` as `secrets` asks: left out, masked (when
    /// set) or decrypted (with `key`, bound to `aad_prefix` as [`Self::seal`] bound it).
    pub fn show(
        &self,
        doc: &mut Value,
        secrets: Secrets,
        aad_prefix: &str,
        key: Option<&SecretBox>,
    ) -> Result<()> {
        for (at, _) in self.places(doc) {
            let Some(value) = at.get(doc).filter(|v| !v.is_null()) else {
                continue;
            };
            let shown = match secrets {
                Secrets::Omit => None,
                Secrets::Mask => Some(json!(MASK)),
                // A value stored before its path was declared is in clear already.
                Secrets::Reveal if !SecretBox::is_sealed(value) => continue,
                Secrets::Reveal => {
                    let key = key.ok_or_else(|| {
                        Error::invalid("secret field", "no secret key is configured")
                    })?;
                    let aad = format!("{aad_prefix}{}", at.aad_suffix());
                    Some(key.open(value.as_str().unwrap_or_default(), &aad)?)
                }
            };
            let (parent, name) = at.parent_mut(doc).expect("the value is there");
            match shown {
                Some(v) => parent.insert(name.to_string(), v),
                None => parent.remove(name),
            };
        }
        Ok(())
    }
}

/// Replaces every sealed value inside `value` with `"[secret]"` (audit changes: a
/// secret's ciphertext says nothing, and is not shown either).
pub fn mask_sealed(value: &mut Value) {
    match value {
        Value::String(_) if SecretBox::is_sealed(value) => *value = json!(SECRET_CHANGE),
        Value::Array(items) => items.iter_mut().for_each(mask_sealed),
        Value::Object(map) => map.values_mut().for_each(mask_sealed),
        _ => {}
    }
}

/// What an audit change shows for a secret's value.
pub const SECRET_CHANGE: &str = "[secret]";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(declared: &[&str]) -> SecretFields {
        let declared: Vec<String> = declared.iter().map(|s| s.to_string()).collect();
        let compile = |s: &Value| jsonschema::validator_for(s).map_err(|e| e.to_string());
        SecretFields::compile(&declared, &mut json!({"type": "object"}), compile).unwrap()
    }

    #[test]
    fn a_value_stored_before_its_path_was_declared_is_sealed_by_the_next_write() {
        let key = SecretBox::new([3; 32]);
        let secrets = fields(&["auth.password"]);
        // Stored in clear (the path was declared later); the mask is written back.
        let before = json!({"auth": {"password": "old-plain"}});
        let mut doc = json!({"auth": {"password": MASK}});
        assert!(
            secrets
                .seal(&mut doc, Some(&before), "c/1/", Some(&key))
                .is_ok()
        );
        let stored = doc["auth"]["password"].clone();
        assert!(SecretBox::is_sealed(&stored), "{doc}");
        assert_eq!(
            key.open(stored.as_str().unwrap(), "c/1/auth/password")
                .unwrap(),
            "old-plain"
        );
        // Revealing a legacy clear value shows it as it is.
        let mut legacy = before.clone();
        secrets
            .show(&mut legacy, Secrets::Reveal, "c/1/", Some(&key))
            .unwrap();
        assert_eq!(legacy, before);
        // The mask where nothing is stored sets nothing.
        let mut doc = json!({"auth": {"password": MASK, "user": "u"}});
        assert!(secrets.seal(&mut doc, None, "c/1/", Some(&key)).is_ok());
        assert_eq!(doc, json!({"auth": {"user": "u"}}));
    }

    #[test]
    fn without_a_key_plaintext_is_refused_not_stored() {
        let secrets = fields(&["token"]);
        let mut doc = json!({"token": "abc"});
        assert!(matches!(
            secrets.seal(&mut doc, None, "c/1/", None),
            Err(SealError::NoKey(place)) if place == "/token"
        ));
    }

    #[test]
    fn sealed_values_are_masked_in_audit_changes() {
        let key = SecretBox::new([3; 32]);
        let mut changes =
            json!({"vars": {"added": [{"value": key.seal(&json!("x"), "a")}, {"value": "plain"}]}});
        mask_sealed(&mut changes);
        assert_eq!(
            changes,
            json!({"vars": {"added": [{"value": SECRET_CHANGE}, {"value": "plain"}]}})
        );
    }
}
