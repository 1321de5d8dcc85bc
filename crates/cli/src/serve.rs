//! `bucketbase serve`: settings → store → app definitions → identity provider → HTTP.
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
use bucketbase_server::auth::IdentityProvider;
use bucketbase_server::auth::graphql::GraphqlProvider;
use bucketbase_server::auth::jwks::{JwksConfig, JwksProvider};
use bucketbase_server::auth::jwt::Now;
use bucketbase_server::auth::local::{LocalConfig, LocalProvider, generate_password};
use bucketbase_server::auth::store::DbUserStore;
use bucketbase_server::{AppState, ServerSettings};

use crate::settings::{AppKind, Settings};

/// Unix seconds from the engine's clock (the one place time is read).
pub fn now() -> Now {
    Arc::new(|| SystemClock.now().timestamp().max(0) as u64)
}

/// Opens the database the settings name.
pub async fn open_db(
    settings: &Settings,
) -> anyhow::Result<(Arc<Database>, Option<Arc<SecretBox>>)> {
    let secrets = settings
        .secret_key
        .as_deref()
        .map(SecretBox::from_base64)
        .transpose()
        .context("secret_key")?
        .map(Arc::new);
    let hooks = match settings.app {
        AppKind::Aristay => bucketbase_aristay::hooks(),
        AppKind::Docsai | AppKind::None => Vec::new(),
    };
    anyhow::ensure!(
        settings.max_record_bytes > 0 && settings.max_entry_bytes > settings.max_record_bytes,
        "max_entry_bytes ({}) must be larger than max_record_bytes ({})",
        settings.max_entry_bytes,
        settings.max_record_bytes
    );
    let opts = DbOptions {
        secret_key: secrets.clone(),
        hooks,
        max_record_bytes: settings.max_record_bytes,
        max_entry_bytes: settings.max_entry_bytes,
        ..DbOptions::default()
    };
    let db = Database::open_url(&settings.store, opts)
        .await
        .with_context(|| format!("opening the database at {}", settings.store))?;
    Ok((Arc::new(db), secrets))
}

/// Installs the app's and the operator's collection definitions (no-op when unchanged).
pub async fn install_definitions(db: &Database, settings: &Settings) -> anyhow::Result<()> {
    let mut defs = Vec::new();
    match settings.app {
        AppKind::Aristay => defs.extend(bucketbase_aristay::definitions()),
        // docsai's definitions arrive with its own issue.
        AppKind::Docsai | AppKind::None => {}
    }
    if let Some(dir) = &settings.definitions_dir {
        defs.extend(load_dir(dir)?);
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
        .create_user(&email, &password, "SuperAdmin", "bucketbase")
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
            let secret = match &auth.jwt_secret {
                Some(s) => s.clone().into_bytes(),
                None => {
                    tracing::warn!(
                        "auth.jwt_secret is not set: using a random key; tokens end with this process"
                    );
                    generate_password()
                        .into_bytes()
                        .into_iter()
                        .chain(generate_password().into_bytes())
                        .collect()
                }
            };
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
    let server_settings = ServerSettings {
        cors_origins,
        require_role: settings.require_role.clone(),
        body_limit: settings.body_limit,
        cookie_secure: settings.auth.cookie_secure,
        refresh_ttl_secs: settings.auth.refresh_ttl_secs,
        login_per_minute: settings.auth.login_per_minute,
    };
    let state = AppState::new(db.clone(), auth, server_settings, secrets);
    let app = match settings.app {
        AppKind::Aristay => bucketbase_server::app_with(
            state
                .with_auth_context(bucketbase_aristay::auth_context())
                .with_app_paths(bucketbase_aristay::openapi_paths()),
            bucketbase_aristay::router(),
        ),
        AppKind::Docsai | AppKind::None => bucketbase_server::app(state),
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
        .with_graceful_shutdown(shutdown_signal())
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
