//! The key of `secret` fields, for the database a command opens.
//!
//! A collection with secret fields cannot take a write without the key, so a server whose
//! app (or whose `definitions_dir`) declares secret fields must have one from its first
//! start, and every process on a root must use the same one. The rule belongs to the
//! definitions, not to an app's name: whatever declares a secret field (at the top, in a
//! nested item, at a path inside an object) needs the key.
//!
//! 1. `secret_key` (`BUCKETBASE_SECRET_KEY`) set: that key, wherever the root is.
//! 2. A local root: `<root>/_keys/secret.key`, generated at the first start that needs it
//!    (mode 0600 in a 0700 folder, created atomically across processes: see the engine's
//!    `keyfile`), beside the token key; kept out of the log, the view and backups, and
//!    never answered. Once there it is always loaded, even if no definition declares a
//!    secret any more, so secrets written before stay readable.
//! 3. `memory://`: a random key, which lives and dies with the data.
//! 4. S3 (or any other shared root) with secret fields: refuse to start, naming the
//!    setting. There is no private place in a bucket, and a key per process would make
//!    each process's secrets unreadable to the others.
//!
//! Without secret fields and without a configured or stored key: no key.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use bucketbase_engine::StoreUrl;
use bucketbase_engine::collection::Definition;
use bucketbase_engine::collection::definition::load_dir;
use bucketbase_engine::collection::secret::SecretBox;
use bucketbase_engine::keyfile::{self, KEYS_DIR};
use serde_json::Value;

use crate::settings::Settings;

/// The file of a local root's secret-field key, in `_keys/`.
pub const SECRET_KEY_FILE: &str = "secret.key";

/// The secret-field key for `settings` (see the module docs).
pub fn secret_key(settings: &Settings) -> anyhow::Result<Option<Arc<SecretBox>>> {
    if let Some(text) = &settings.secret_key {
        let key = SecretBox::from_base64(text).context("secret_key")?;
        return Ok(Some(Arc::new(key)));
    }
    let declared = declared_by(settings)?;
    let key = match StoreUrl::parse(&settings.store)? {
        StoreUrl::Local(root) => {
            let stored = root.join(KEYS_DIR).join(SECRET_KEY_FILE).exists();
            if declared.is_none() && !stored {
                return Ok(None);
            }
            local_key(&root)?
        }
        _ if declared.is_none() => return Ok(None),
        StoreUrl::Memory => SecretBox::new(rand::random()),
        StoreUrl::S3 { .. } => anyhow::bail!(
            "{} declares secret fields, and their key must be configured on a shared store: \
             set secret_key (BUCKETBASE_SECRET_KEY) to a base64 32-byte key, the same for \
             every process on {} (e.g. `openssl rand -base64 32`)",
            declared.unwrap_or_default(),
            settings.store
        ),
    };
    Ok(Some(Arc::new(key)))
}

fn local_key(root: &Path) -> anyhow::Result<SecretBox> {
    let (key, created) = keyfile::load_or_create(root, SECRET_KEY_FILE)?;
    let path = root.join(KEYS_DIR).join(SECRET_KEY_FILE);
    if created {
        tracing::info!("generated the secret-field key {}", path.display());
    }
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| anyhow::anyhow!("{} must hold a 32-byte key", path.display()))?;
    Ok(SecretBox::new(key))
}

/// The first collection whose definition (the app's, then `definitions_dir`'s) declares
/// secret fields, named for the message: `collection "credentials" of the docsai app`.
fn declared_by(settings: &Settings) -> anyhow::Result<Option<String>> {
    let app = crate::apps::find(&settings.app)?;
    if let Some(app) = &app
        && let Some(def) = app.definitions().into_iter().find(has_secrets)
    {
        let name = &def.name;
        return Ok(Some(format!(
            "collection {name:?} of the {} app",
            app.name()
        )));
    }
    if let Some(dir) = &settings.definitions_dir
        && let Some(def) = load_dir(dir)?.into_iter().find(has_secrets)
    {
        let name = &def.name;
        let dir = dir.display();
        return Ok(Some(format!(
            "collection {name:?} of definitions_dir {dir}"
        )));
    }
    Ok(None)
}

/// Does the definition declare a secret field anywhere: a non-empty `secret` list at its
/// top or in any of its parts (nested items included), JSON Schemas aside (a property
/// may well be called `secret`)?
fn has_secrets(def: &Definition) -> bool {
    fn walk(v: &Value) -> bool {
        match v {
            Value::Object(map) => map.iter().any(|(k, v)| match (k.as_str(), v) {
                ("schema", _) => false,
                ("secret", Value::Array(fields)) if !fields.is_empty() => true,
                _ => walk(v),
            }),
            Value::Array(items) => items.iter().any(walk),
            _ => false,
        }
    }
    serde_json::to_value(def).is_ok_and(|v| walk(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(v: Value) -> Definition {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn secrets_are_found_where_definitions_declare_them() {
        use serde_json::json;
        assert!(has_secrets(&def(json!({"name": "a", "secret": ["data"]}))));
        assert!(!has_secrets(&def(json!({"name": "a", "secret": []}))));
        let schema_only = json!({"name": "a", "schema": {"type": "object",
            "properties": {"secret": {"type": "array"}}, "secret": ["not a declaration"]}});
        assert!(!has_secrets(&def(schema_only)));
    }
}
