//! Named configurations of the `graphql` provider, selected with `auth.graphql.preset`.
//!
//! A deployment speaks to one particular identity service, whose documents and result
//! paths are long and easy to get subtly wrong. A preset is such a configuration shipped
//! with the binary as a commented TOML file (`presets/<name>.toml`, which is also its
//! documentation): the operator names it and sets only what is theirs (the endpoint).
//! Keys set beside `preset` override the preset's, key by key, so a preset is a base, not
//! a lock. An unknown preset name is a configuration error, like an unknown key.
//!
//! - `appointment360`: the Contact360 identity service docsai signs in with
//!   (docs/docsai.md, "Identity").

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::graphql::GraphqlConfig;

/// The presets, by name: each a TOML file of [`GraphqlConfig`] keys.
pub const PRESETS: [(&str, &str); 1] = [(
    "appointment360",
    include_str!("presets/appointment360.toml"),
)];

/// The keys of preset `name`.
pub fn preset(name: &str) -> Result<Map<String, Value>, String> {
    let (_, text) = PRESETS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
        let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
        format!(
            "unknown graphql preset {name:?} (presets: {})",
            names.join(", ")
        )
    })?;
    toml::from_str(text).map_err(|e| format!("graphql preset {name}: {e}"))
}

/// A [`GraphqlConfig`] whose `preset` key, if any, names its base: the preset's keys,
/// then the explicit ones over them, then the defaults for the rest. For settings fields
/// (`#[serde(deserialize_with = ...)]`).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<GraphqlConfig, D::Error> {
    let mut explicit = Map::<String, Value>::deserialize(d)?;
    let mut keys = match explicit.remove("preset") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::String(name)) => preset(&name).map_err(serde::de::Error::custom)?,
        Some(_) => return Err(serde::de::Error::custom("preset must be a name")),
    };
    keys.extend(explicit);
    GraphqlConfig::deserialize(Value::Object(keys)).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config(json: &str) -> Result<GraphqlConfig, serde_json::Error> {
        let mut d = serde_json::Deserializer::from_str(json);
        deserialize(&mut d)
    }

    #[test]
    fn every_preset_is_a_valid_configuration() {
        for (name, _) in PRESETS {
            let keys = preset(name).unwrap();
            assert!(!keys.is_empty(), "{name}");
            GraphqlConfig::deserialize(Value::Object(keys)).unwrap();
        }
    }

    #[test]
    fn explicit_keys_override_the_preset() {
        let c = config(r#"{"preset":"appointment360","endpoint":"https://a360.example/graphql","role_cache_ttl_secs":60}"#).unwrap();
        assert_eq!(c.endpoint, "https://a360.example/graphql");
        assert_eq!(c.role_cache_ttl, Duration::from_secs(60));
        assert_eq!(c.me_user_path, "auth.me");
        assert_eq!(c.user_role_field, "profile.role");
        assert_eq!(c.require_role.as_deref(), Some("SuperAdmin"));
        assert_eq!(config("{}").unwrap(), GraphqlConfig::default(), "no preset");
        assert!(
            config(r#"{"preset":"nope"}"#)
                .unwrap_err()
                .to_string()
                .contains("appointment360")
        );
        assert!(config(r#"{"preset":"appointment360","typo":1}"#).is_err());
    }
}
