//! How a stored record is shown: `_version` added, secret fields omitted, masked or
//! decrypted. A pure function of the definition, the stored document and the key, used by
//! the API, the apps and queries alike.

use serde_json::{Value, json};

use super::definition::Compiled;
use super::secret::SecretBox;
use crate::error::{Error, Result};
use crate::names::{CollectionName, RecordId, Seq};

/// How secret fields appear when a record is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// Left out (lists, index.json).
    Omit,
    /// Shown as `"********"` when set.
    Mask,
    /// Decrypted (needs the key).
    Reveal,
}

/// The value a masked secret shows; writing it back leaves the secret unchanged.
pub const MASK: &str = "********";

/// A stored record as the API shows it: with `_version`, secrets handled as asked.
pub fn render(
    def: Option<&Compiled>,
    c: &CollectionName,
    id: &RecordId,
    mut value: Value,
    version: Seq,
    secrets: Secrets,
    key: Option<&SecretBox>,
) -> Result<Value> {
    if let (Some(def), Value::Object(map)) = (def, &mut value) {
        for field in &def.def.secret {
            let Some(stored) = map.get(field).cloned() else {
                continue;
            };
            match secrets {
                Secrets::Omit => {
                    map.remove(field);
                }
                Secrets::Mask => {
                    map.insert(field.clone(), json!(MASK));
                }
                Secrets::Reveal => {
                    let key = key.ok_or_else(|| {
                        Error::invalid("secret field", "no secret key is configured")
                    })?;
                    let plain =
                        key.open(stored.as_str().unwrap_or_default(), &aad(c, id, field))?;
                    map.insert(field.clone(), plain);
                }
            }
        }
    }
    if let Value::Object(map) = &mut value {
        map.insert("_version".into(), version.get().into());
    }
    Ok(value)
}

/// The additional data a sealed secret is bound to: its collection, record and field.
pub(crate) fn aad(c: &CollectionName, id: &RecordId, field: &str) -> String {
    format!("{c}/{id}/{field}")
}
