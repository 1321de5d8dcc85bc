//! `bucketbase serve`: settings → store (with the secret-field key, see `keys`) → app
//! definitions → identity provider → HTTP.
//!
//! On first start with the `local` provider and no users, a SuperAdmin is created and its
//! one-time password printed once on stdout (never logged), or taken from
//! `BUCKETBASE_ADMIN_EMAIL` / `BUCKETBASE_ADMIN_PASSWORD` for scripted set-ups. SIGINT and
//! SIGTERM stop accepting connections, let requests in flight finish, then close the
//! database (queued commits land, the view is flushed).

use std::sync::Arc;

use anyhow::Context;
use bucketbase_engine::collection::definition::load_dir;
use bucketbase_engine::collection::secret::SecretBox;
use bucketbase_engine::{Clock, Database, DbOptions, SystemClock, TxnMeta};
use bucketbase_server::auth::graphql::GraphqlProvider;
use bucketbase_server::auth::jwks::{JwksConfig, JwksProvider};
use bucketbase_server::auth::jwt::Now;
use bucketbase_server::auth::local::{LocalConfig, LocalProvider, generate_password};
use bucketbase_server::auth::store::DbUserStore;
use bucketbase_server::auth::{IdentityProvider, Role};
use bucketbase_server::{AppState, ServerSettings};

use crate::settings::Settings;

/// Names no user collection may take: the server's fixed routes and every app.
pub fn reserved_names() -> Vec<&'static str> {
    bucketbase_server::ROUTE_NAMES
        .iter()
        .copied()
        .chain(crate::apps::names())
        .collect()
}

/// Unix seconds from the engine's clock (the one place time is read).
pub fn now() -> Now {
    Arc::new(|| SystemClock.now().timestamp().max(0) as u64)
}

/// Opens the database the settings name.
pub async fn open_db(
    settings: &Settings,
) -> anyhow::Result<(Arc<Database>, Option<Arc<SecretBox>>)> {
    let secrets = crate::keys::secret_key(settings)?;
    let hooks = crate::apps::find(&settings.app)?
        .map(|app| app.hooks())
        .unwrap_or_default();
    anyhow::ensure!(
        settings.max_record_bytes > 0 && settings.max_entry_bytes > settings.max_record_bytes,
        "max_entry_bytes ({}) must be larger than max_record_bytes ({})",
        settings.max_entry_bytes,
        settings.max_record_bytes
    );
    anyhow::ensure!(
        settings.settle_timeout_ms > 0,
        "settle_timeout_ms must be at least 1 (milliseconds)"
    );
    let opts = DbOptions {
        settle_timeout: std::time::Duration::from_millis(settings.settle_timeout_ms),
        secret_key: secrets.clone(),
        hooks,
        tail_interval: settings
            .tail_interval_ms
            .map(std::time::Duration::from_millis),
        digest: digest_options(settings)?,
        max_record_bytes: settings.max_record_bytes,
        max_entry_bytes: settings.max_entry_bytes,
        ..DbOptions::default()
    };
    let db = Database::open_url(&settings.store, opts)
        .await
        .map_err(|e| {
            let torn = matches!(e, bucketbase_engine::Error::TornHead { .. });
            let e = anyhow::Error::new(e);
            if torn {
                e.context(format!(
                    "opening the database at {0} (recover with: bucketbase recover --store {0})",
                    settings.store
                ))
            } else {
                e.context(format!("opening the database at {}", settings.store))
            }
        })?;
    Ok((Arc::new(db), secrets))
}

/// Signed audit digests, when a key is configured.
fn digest_options(
    settings: &Settings,
) -> anyhow::Result<Option<bucketbase_engine::digest::DigestOptions>> {
    let Some(key) = &settings.digest_signing_key else {
        return Ok(None);
    };
    let mut opts =
        bucketbase_engine::digest::DigestOptions::from_base64(key).context("digest_signing_key")?;
    opts.every_entries = settings.digest_every_entries.max(1);
    opts.every = std::time::Duration::from_secs(settings.digest_every_secs.max(1));
    Ok(Some(opts))
}

/// Installs the app's and the operator's collection definitions (no-op when unchanged).
pub async fn install_definitions(db: &Database, settings: &Settings) -> anyhow::Result<()> {
    let mut defs = crate::apps::find(&settings.app)?
        .map(|app| app.definitions())
        .unwrap_or_default();
    if let Some(dir) = &settings.definitions_dir {
        defs.extend(load_dir(dir)?);
    }
    // The same check the definitions API makes: no system or reserved names.
    let reserved = reserved_names();
    for def in &defs {
        bucketbase_engine::CollectionName::parse_user(&def.name, &reserved)
            .with_context(|| format!("definition of collection {:?}", def.name))?;
    }
    if defs.is_empty() {
        return Ok(());
    }
    db.define_all(&TxnMeta::new("bucketbase", "definitions"), &defs)
        .await?;
    Ok(())
}

async fn first_admin(store: &DbUserStore) -> anyhow::Result<()> {
    if store.user_count() > 0 {
        return Ok(());
    }
    let email =
        std::env::var("BUCKETBASE_ADMIN_EMAIL").unwrap_or_else(|_| "admin@localhost".into());
    let (password, generated) = match std::env::var("BUCKETBASE_ADMIN_PASSWORD") {
        Ok(p) => (p, false),
        Err(_) => (generate_password(), true),
    };
    store
        .create_user(&email, &password, Role::SUPER_ADMIN.as_str(), "bucketbase")
        .await?;
    if generated {
        println!(
            "Created the first SuperAdmin.\n  email:    {email}\n  password: {password}\nThis password is shown once. Change it with `bucketbase user set-password`."
        );
    } else {
        println!("Created the first SuperAdmin {email} (password from BUCKETBASE_ADMIN_PASSWORD).");
    }
    Ok(())
}

/// The key that signs local access tokens: `auth.jwt_secret` when set; on a local root,
/// otherwise, the root's own `_keys/token.key` (generated once, shared by every process
/// on the root, kept across restarts); elsewhere a random key of this process's, with a
/// warning, since the tokens it issues fail on its peers and end with it.
fn token_key(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &settings.auth.jwt_secret {
        return Ok(secret.clone().into_bytes());
    }
    match bucketbase_engine::StoreUrl::parse(&settings.store)? {
        bucketbase_engine::StoreUrl::Local(root) => {
            let (key, created) = bucketbase_engine::keyfile::load_or_create(&root, "token.key")?;
            if created {
                tracing::info!("generated the token key {}/_keys/token.key", root.display());
            }
            Ok(key)
        }
        _ => {
            tracing::warn!(
                "auth.jwt_secret is not set: this process signs tokens with a key of its own; \
                 they fail on other processes and end with this one. Give every process the \
                 same auth.jwt_secret"
            );
            Ok(generate_password()
                .into_bytes()
                .into_iter()
                .chain(generate_password().into_bytes())
                .collect())
        }
    }
}

/// Builds the configured identity provider.
pub async fn provider(
    settings: &Settings,
    db: &Arc<Database>,
) -> anyhow::Result<Arc<dyn IdentityProvider>> {
    let auth = &settings.auth;
    Ok(match auth.provider.as_str() {
        "local" => {
            let store = DbUserStore::install(db.clone()).await?;
            first_admin(&store).await?;
            let secret = token_key(settings)?;
            let config = LocalConfig {
                access_ttl: std::time::Duration::from_secs(auth.access_ttl_secs),
                refresh_ttl: std::time::Duration::from_secs(auth.refresh_ttl_secs),
            };
            Arc::new(
                LocalProvider::new(Arc::new(store), &secret, config, now())
                    .map_err(|e| anyhow::anyhow!("auth: {}", e.0))?,
            )
        }
        "graphql" => Arc::new(
            GraphqlProvider::new(auth.graphql.clone())
                .map_err(|e| anyhow::anyhow!("auth.graphql: {e}"))?,
        ),
        "jwks" => {
            let mut config =
                JwksConfig::new(&auth.jwks.url, &auth.jwks.issuer, &auth.jwks.audience);
            if let Some(claim) = &auth.jwks.role_claim {
                config.role_claim = claim.clone();
            }
            config.default_role = auth.jwks.default_role.clone();
            Arc::new(
                JwksProvider::new(config, now())
                    .map_err(|e| anyhow::anyhow!("auth.jwks: {}", e.0))?,
            )
        }
        other => anyhow::bail!("auth.provider must be local, graphql or jwks, not {other:?}"),
    })
}

/// Runs the server until SIGINT/SIGTERM.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let (db, secrets) = open_db(&settings).await?;
    install_definitions(&db, &settings).await?;
    let auth = provider(&settings, &db).await?;
    let cors_origins = settings
        .cors_origins
        .iter()
        .map(|o| {
            axum::http::HeaderValue::from_str(o).with_context(|| format!("cors_origins: {o:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(
        settings.query_budget_ms > 0,
        "query_budget_ms must be at least 1 (milliseconds)"
    );
    anyhow::ensure!(
        settings.feed_buffer_entries > 0 && settings.feed_keepalive_secs > 0,
        "feed_buffer_entries and feed_keepalive_secs must be at least 1"
    );
    let server_settings = ServerSettings {
        cors_origins,
        require_role: settings.require_role.clone().map(Role::from),
        body_limit: settings.body_limit,
        cookie_secure: settings.auth.cookie_secure,
        refresh_ttl_secs: settings.auth.refresh_ttl_secs,
        refresh_grace: std::time::Duration::from_secs(settings.auth.refresh_grace_secs),
        login_per_minute: settings.auth.login_per_minute,
        min_seq_wait: std::time::Duration::from_millis(settings.min_seq_wait_ms),
        query_budget_ms: settings.query_budget_ms,
        feed: bucketbase_server::feed::FeedSettings {
            max_subscribers: settings.feed_max_subscribers,
            max_per_user: settings.feed_max_per_user,
            buffer: settings.feed_buffer_entries,
            buffer_bytes: settings.feed_buffer_bytes,
            keepalive: std::time::Duration::from_secs(settings.feed_keepalive_secs),
        },
    };
    let state = AppState::new(db.clone(), auth, server_settings, secrets)
        .with_app_names(&crate::apps::names());
    let stopping = state.clone();
    let app = match crate::apps::find(&settings.app)? {
        Some(app) => bucketbase_server::app_for(state, app.as_ref()),
        None => bucketbase_server::app(state),
    };
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    println!(
        "Bucketbase serving {} on http://{}",
        settings.store,
        listener.local_addr()?
    );
    bucketbase_server::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            stopping.begin_shutdown();
        })
        .await?;
    tracing::info!("shutting down: flushing the database");
    match Arc::try_unwrap(db) {
        Ok(db) => db.close().await,
        Err(db) => db.flush_view().await,
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
