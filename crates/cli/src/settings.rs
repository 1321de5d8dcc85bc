//! The one settings struct, layered: built-in defaults, then `bucketbase.toml` (or the
//! file named by `--config` / `BUCKETBASE_CONFIG`), then `BUCKETBASE_*` environment
//! variables (nested keys with `__`, e.g. `BUCKETBASE_AUTH__PROVIDER=graphql`), then
//! command-line flags. Secrets (keys, passwords) are never printed: `Debug` redacts them.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Everything `bucketbase serve` can be told.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address to listen on.
    pub listen: String,
    /// Database root: a path, `file:///path`, `memory://` or `s3://bucket/prefix`.
    pub store: String,
    /// Which app this process serves (one database, one app): a name from
    /// `crate::apps`, or `none`.
    pub app: String,
    /// Extra collection definitions (`*.toml`) installed at start.
    pub definitions_dir: Option<PathBuf>,
    /// Only callers with this role are served (docsai: `SuperAdmin`).
    pub require_role: Option<String>,
    /// Base64 AES-256 key for `secret` fields.
    pub secret_key: Option<String>,
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// `text` or `json` logs.
    pub log_format: String,
    /// Log filter, e.g. `info,bucketbase=debug`.
    pub log: String,
    /// Origins allowed by CORS (none by default).
    pub cors_origins: Vec<String>,
    /// How often, in milliseconds, the log tailer looks for other processes' commits
    /// (unset: 200 on a local root, 1000 on S3; 0 turns it off).
    pub tail_interval_ms: Option<u64>,
    /// How long, in milliseconds, a request with `X-Bucketbase-Min-Seq` waits for this
    /// process to reach that log position before it is answered 503.
    pub min_seq_wait_ms: u64,
    /// How long, in milliseconds, a log write whose outcome the store left unknown (a
    /// timeout, a 5xx) is settled by reading back and re-sending, before the write is
    /// answered 503 `outcome_unknown`. A write the store refused outright fails at once.
    pub settle_timeout_ms: u64,
    /// Ed25519 secret key (base64 seed) for signed audit digests; unset: no digests.
    /// `bucketbase audit keygen` makes one.
    pub digest_signing_key: Option<String>,
    /// Sign a digest after this many entries, or after `digest_every_secs`.
    pub digest_every_entries: u64,
    pub digest_every_secs: u64,
    /// How long one list query may spend evaluating records, in milliseconds.
    pub query_budget_ms: u64,
    /// Largest record (its own fields; each nested item separately), bytes.
    pub max_record_bytes: usize,
    /// Largest log entry, bytes.
    pub max_entry_bytes: usize,
    /// Change-feed subscriptions open at once in this process.
    pub feed_max_subscribers: usize,
    /// Change-feed subscriptions open at once per user.
    pub feed_max_per_user: usize,
    /// Log entries queued for one feed subscriber before it is cut off (resumable).
    pub feed_buffer_entries: usize,
    /// Bytes of documents those queued entries may hold before the subscriber is cut off.
    pub feed_buffer_bytes: usize,
    /// Seconds between keep-alive comments and token re-checks of a feed subscription.
    pub feed_keepalive_secs: u64,
    pub auth: AuthSettings,
}

/// Identity provider settings.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// `local`, `graphql` or `jwks`.
    pub provider: String,
    /// HS256 secret for local access tokens (at least 32 bytes). Unset: a random one per
    /// process (tokens do not survive a restart; set it when running several processes).
    pub jwt_secret: Option<String>,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    /// Mark cookies `Secure` (turn off only for plain-http localhost).
    pub cookie_secure: bool,
    /// Login attempts allowed per client address per minute.
    pub login_per_minute: u32,
    /// Seconds during which a refresh token already exchanged gets the same answer again
    /// (a page's parallel requests; `server::auth::refresh`). 0: only refreshes in flight
    /// are shared.
    pub refresh_grace_secs: u64,
    /// The `graphql` provider (appointment360-compatible); see `auth::graphql`. A
    /// `preset` key names a shipped configuration the other keys override
    /// (`auth::graphql_preset`).
    #[serde(
        skip_serializing,
        deserialize_with = "bucketbase_server::auth::graphql_preset::deserialize"
    )]
    pub graphql: bucketbase_server::auth::graphql::GraphqlConfig,
    /// The `jwks` provider: any OIDC issuer.
    pub jwks: JwksSettings,
}

/// `jwks` provider settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwksSettings {
    pub url: String,
    pub issuer: String,
    pub audience: String,
    /// Claim holding the role (default `role`).
    pub role_claim: Option<String>,
    /// Role for tokens without the claim.
    pub default_role: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8080".into(),
            store: "./bucketbase-data".into(),
            app: "aristay".into(),
            definitions_dir: None,
            require_role: None,
            secret_key: None,
            body_limit: 2 * 1024 * 1024,
            log_format: "text".into(),
            log: "info".into(),
            cors_origins: Vec::new(),
            tail_interval_ms: None,
            min_seq_wait_ms: 5000,
            settle_timeout_ms: 10_000,
            digest_signing_key: None,
            digest_every_entries: 1000,
            digest_every_secs: 60,
            query_budget_ms: 1000,
            max_record_bytes: bucketbase_engine::DEFAULT_MAX_RECORD_BYTES,
            max_entry_bytes: bucketbase_engine::DEFAULT_MAX_ENTRY_BYTES,
            feed_max_subscribers: 1000,
            feed_max_per_user: 10,
            feed_buffer_entries: 1024,
            feed_buffer_bytes: 64 << 20,
            feed_keepalive_secs: 15,
            auth: AuthSettings::default(),
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            provider: "local".into(),
            jwt_secret: None,
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 30 * 24 * 3600,
            cookie_secure: true,
            login_per_minute: 10,
            refresh_grace_secs: 30,
            graphql: Default::default(),
            jwks: JwksSettings::default(),
        }
    }
}

fn redact(secret: &Option<String>) -> &'static str {
    if secret.is_some() { "<set>" } else { "<unset>" }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("store", &self.store)
            .field("app", &self.app)
            .field("definitions_dir", &self.definitions_dir)
            .field("require_role", &self.require_role)
            .field("secret_key", &redact(&self.secret_key))
            .field("body_limit", &self.body_limit)
            .field("tail_interval_ms", &self.tail_interval_ms)
            .field("min_seq_wait_ms", &self.min_seq_wait_ms)
            .field("settle_timeout_ms", &self.settle_timeout_ms)
            .field("digest_signing_key", &redact(&self.digest_signing_key))
            .field("query_budget_ms", &self.query_budget_ms)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("max_entry_bytes", &self.max_entry_bytes)
            .field("feed_max_subscribers", &self.feed_max_subscribers)
            .field("feed_max_per_user", &self.feed_max_per_user)
            .field("feed_buffer_entries", &self.feed_buffer_entries)
            .field("feed_buffer_bytes", &self.feed_buffer_bytes)
            .field("feed_keepalive_secs", &self.feed_keepalive_secs)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("provider", &self.provider)
            .field("jwt_secret", &redact(&self.jwt_secret))
            .field("access_ttl_secs", &self.access_ttl_secs)
            .field("cookie_secure", &self.cookie_secure)
            .finish_non_exhaustive()
    }
}

/// Command-line values that override everything else.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

/// The top-level setting names, read off the settings struct itself so that a new
/// setting is reachable from the environment without a second list to keep.
fn setting_keys() -> Vec<String> {
    match serde_json::to_value(Settings::default()) {
        Ok(serde_json::Value::Object(map)) => map.into_iter().map(|(k, _)| k).collect(),
        _ => Vec::new(),
    }
}

impl Settings {
    /// Layers defaults, the config file (if present), the environment and `overrides`.
    pub fn load(config: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Settings> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match config {
            Some(path) => {
                anyhow::ensure!(
                    path.exists(),
                    "config file {} does not exist",
                    path.display()
                );
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("bucketbase.toml")),
        }
        let keys = setting_keys();
        let settings: Settings = figment
            .merge(
                // Only variables naming a setting: BUCKETBASE_CONFIG, BUCKETBASE_PASSWORD,
                // BUCKETBASE_TEST_* and friends are not settings.
                Env::prefixed("BUCKETBASE_")
                    .filter(move |key| {
                        let top = key.as_str().split("__").next().unwrap_or_default();
                        keys.iter().any(|k| top.eq_ignore_ascii_case(k))
                    })
                    .split("__"),
            )
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        Ok(settings)
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error
mod tests {
    use super::*;

    #[test]
    fn layers_file_env_and_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "bucketbase.toml",
                "listen = \"0.0.0.0:9000\"\nstore = \"/from/file\"\n[auth]\naccess_ttl_secs = 60\n",
            )?;
            jail.set_env("BUCKETBASE_STORE", "/from/env");
            jail.set_env("BUCKETBASE_AUTH__COOKIE_SECURE", "false");
            jail.set_env("BUCKETBASE_QUERY_BUDGET_MS", "250");
            jail.set_env("BUCKETBASE_MAX_RECORD_BYTES", "65536");
            jail.set_env("BUCKETBASE_SETTLE_TIMEOUT_MS", "2500");
            jail.set_env("BUCKETBASE_FEED_MAX_PER_USER", "3");
            jail.set_env("BUCKETBASE_TEST_S3_BUCKET", "not a setting");
            jail.set_env("BUCKETBASE_PASSWORD", "not a setting either");
            let s = Settings::load(
                None,
                &Overrides {
                    app: Some("docsai".into()),
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(s.listen, "0.0.0.0:9000", "file over default");
            assert_eq!(s.store, "/from/env", "env over file");
            assert_eq!(s.app, "docsai", "flag over all");
            assert_eq!(s.auth.access_ttl_secs, 60);
            assert!(!s.auth.cookie_secure);
            assert_eq!(s.query_budget_ms, 250);
            assert_eq!(s.max_record_bytes, 65536);
            assert_eq!(s.settle_timeout_ms, 2500);
            assert_eq!(s.max_entry_bytes, 64 << 20, "default");
            assert_eq!(s.feed_max_per_user, 3);
            assert_eq!(s.feed_max_subscribers, 1000, "default");
            let flags = Overrides {
                store: Some("/from/flag".into()),
                ..Default::default()
            };
            assert_eq!(Settings::load(None, &flags).unwrap().store, "/from/flag");
            Ok(())
        });
    }

    #[test]
    fn a_graphql_preset_is_a_base_the_other_keys_override() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "bucketbase.toml",
                "[auth.graphql]\npreset = \"appointment360\"\nrole_cache_ttl_secs = 60\n",
            )?;
            jail.set_env(
                "BUCKETBASE_AUTH__GRAPHQL__ENDPOINT",
                "https://a360.example/graphql",
            );
            let s = Settings::load(None, &Overrides::default()).unwrap();
            let g = &s.auth.graphql;
            assert_eq!(g.endpoint, "https://a360.example/graphql");
            assert_eq!(g.me_user_path, "auth.me", "from the preset");
            assert_eq!(
                g.role_cache_ttl,
                std::time::Duration::from_secs(60),
                "file over preset"
            );
            assert_eq!(s.auth.refresh_grace_secs, 30, "default");
            jail.set_env("BUCKETBASE_AUTH__GRAPHQL__PRESET", "nope");
            let err = Settings::load(None, &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("unknown graphql preset"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_missing_files_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bucketbase.toml", "lisen = \"typo\"\n")?;
            let err = Settings::load(None, &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("lisen"), "{err}");
            assert!(Settings::load(Some(Path::new("/nope.toml")), &Overrides::default()).is_err());
            Ok(())
        });
    }

    #[test]
    fn debug_never_shows_secrets() {
        let s = Settings {
            secret_key: Some("c2VjcmV0".into()),
            auth: AuthSettings {
                jwt_secret: Some("super-secret-value".into()),
                ..AuthSettings::default()
            },
            ..Settings::default()
        };
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("c2VjcmV0") && !shown.contains("super-secret-value"),
            "{shown}"
        );
    }
}
