//! How a stored record is shown: `_version` added, secrets (own fields, places inside
//! them, nested items) omitted, masked or decrypted. A pure function of the definition, the stored document and the key, used by
//! the API, the apps and queries alike.

use serde_json::Value;

use super::definition::Compiled;
use super::secret::SecretBox;
use crate::error::Result;
use crate::names::{CollectionName, RecordId, Seq};

pub use super::secret::{MASK, Secrets};

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
    if let Some(def) = def.filter(|d| d.has_secrets()) {
        let prefix = format!("{c}/{id}/");
        def.secrets.show(&mut value, secrets, &prefix, key)?;
        def.each_secret_item(id, &mut value, &mut |fields, item, at| {
            fields.show(item, secrets, at, key)
        })?;
    }
    if let Value::Object(map) = &mut value {
        map.insert("_version".into(), version.get().into());
    }
    Ok(value)
}

/// A nested item as the API shows it, secrets handled as asked: `path` is its place in
/// record `id` (`["executions", "<id>"]`, `["executions", "<id>", "logs", "<id>"]`).
/// Its own arrays' items are shown too.
pub fn render_item(
    def: &Compiled,
    id: &RecordId,
    path: &[String],
    item: &mut Value,
    secrets: Secrets,
    key: Option<&SecretBox>,
) -> Result<()> {
    if !def.has_secrets() {
        return Ok(());
    }
    let fields: Vec<String> = path.iter().step_by(2).cloned().collect();
    let Some(array) = def.nested_at(&fields) else {
        return Ok(());
    };
    let prefix = format!("{}/{id}/{}/", def.name, path.join("/"));
    array.secrets.show(item, secrets, &prefix, key)?;
    def.each_secret_item_below(&fields, item, &prefix, &mut |fields, item, at| {
        fields.show(item, secrets, at, key)
    })?;
    Ok(())
}
