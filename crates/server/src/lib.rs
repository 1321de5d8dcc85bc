//! Bucketbase's HTTP API (DESIGN.md §4-5): one JSON envelope, typed errors mapped to
//! status codes in one place, authentication by identity provider, access by
//! per-collection CEL rules. Handlers are thin: extract, authorise, call the engine, map
//! the result. Each resource module owns its routes; [`app`] only merges them.

pub mod access;
pub mod admin;
pub mod app;
pub mod auth;
pub mod conn;
pub mod consistency;
pub mod contract;
pub mod envelope;
pub mod error;
pub mod feed;
pub mod form;
pub mod frame;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod routes;
pub mod shown;

use std::sync::Arc;

use axum::Router;
use bucketbase_engine::Database;
use bucketbase_engine::collection::secret::SecretBox;

/// Server settings the handlers need (the full configuration lives in the CLI).
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Only callers with this role get anything (docsai runs with `SuperAdmin`).
    pub require_role: Option<auth::Role>,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Mark auth cookies `Secure`.
    pub cookie_secure: bool,
    /// Lifetime of the refresh cookie.
    pub refresh_ttl_secs: u64,
    /// How long a refresh's answer is handed to later refreshes with the same token
    /// (parallel requests of one page; see [`auth::refresh`]).
    pub refresh_grace: std::time::Duration,
    /// Login attempts allowed per client address per minute.
    pub login_per_minute: u32,
    /// Browser origins allowed by CORS (with credentials); none by default.
    pub cors_origins: Vec<axum::http::HeaderValue>,
    /// How long a request with `X-Bucketbase-Min-Seq` waits for this process to reach
    /// that log position before it is answered 503 (see [`consistency`]).
    pub min_seq_wait: std::time::Duration,
    /// How long one list query may spend evaluating records (400 `query_too_costly`
    /// past it).
    pub query_budget_ms: u64,
    /// Limits of the change feed (`/api/v1/.../events`).
    pub feed: feed::FeedSettings,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            require_role: None,
            body_limit: 2 * 1024 * 1024,
            cookie_secure: true,
            refresh_ttl_secs: 30 * 24 * 3600,
            refresh_grace: auth::refresh::DEFAULT_GRACE,
            login_per_minute: 10,
            cors_origins: Vec::new(),
            min_seq_wait: std::time::Duration::from_secs(5),
            query_budget_ms: 1000,
            feed: feed::FeedSettings::default(),
        }
    }
}

/// Everything a handler can reach: one shared value, so the clones axum makes of it (one
/// per middleware layer and state extractor, on every request) cost one reference count,
/// not one per field. Fields are read through `Deref` (`st.db`).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
#[derive(Clone)]
pub struct Shared {
    pub db: Arc<Database>,
    pub auth: Arc<dyn auth::IdentityProvider>,
    pub settings: Arc<ServerSettings>,
    pub secrets: Option<Arc<SecretBox>>,
    pub login_limiter: Arc<routes::auth::LoginLimiter>,
    /// Served at `/metrics`; counts requests and reads the engine's counters.
    pub metrics: Arc<metrics::Metrics>,
    /// What the app adds to `auth` for its rules.
    pub auth_context: Option<Arc<dyn access::AuthContext>>,
    /// The app's own routes as OpenAPI path items (`{"/api/v1/<app>/...": {...}}`),
    /// merged into `/api/openapi.json`.
    pub app_paths: Option<Arc<serde_json::Value>>,
    /// Names no user collection may take: [`ROUTE_NAMES`] plus every app's name
    /// ([`AppState::with_app_names`]).
    pub reserved_names: Arc<Vec<String>>,
    /// Who besides SuperAdmin may revert the app's changesets, and what the app keeps of
    /// them (see [`routes::revert::RevertPolicy`]).
    pub revert_policy: Option<Arc<dyn routes::revert::RevertPolicy>>,
    /// Open change-feed subscriptions (see [`feed::Limits`]).
    pub feed_limits: Arc<feed::Limits>,
    /// Set when the server begins to shut down: long-lived answers (change-feed streams)
    /// end then, so a graceful shutdown does not wait on them forever.
    pub shutdown: Arc<tokio::sync::watch::Sender<bool>>,
}

/// The names the fixed routes use under `/api/v1/` (a collection of that name would be
/// shadowed): reserved for every server, whatever app it runs.
pub const ROUTE_NAMES: [&str; 3] = ["audit", "collections", "events"];

impl AppState {
    pub fn new(
        db: Arc<Database>,
        auth: Arc<dyn auth::IdentityProvider>,
        settings: ServerSettings,
        secrets: Option<Arc<SecretBox>>,
    ) -> Self {
        let metrics = Arc::new(metrics::Metrics::new(db.metrics().clone()));
        // Every refresh (the route, and the renewal of any request) shares one exchange
        // per token.
        let auth = Arc::new(auth::refresh::CoalescedRefresh::new(
            auth,
            settings.refresh_grace,
        ));
        AppState(Arc::new(Shared {
            db,
            auth,
            settings: Arc::new(settings),
            secrets,
            login_limiter: Arc::default(),
            metrics,
            auth_context: None,
            app_paths: None,
            reserved_names: Arc::new(ROUTE_NAMES.iter().map(|n| n.to_string()).collect()),
            revert_policy: None,
            feed_limits: Arc::default(),
            shutdown: Arc::new(tokio::sync::watch::Sender::new(false)),
        }))
    }

    /// The shared value, to change while the state is being built (before serving, it
    /// has no other owner; after, a change makes a copy).
    fn shared_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }

    /// Reserves app names (`/api/v1/<app>/...` is theirs) as collection names. The CLI
    /// passes every app it knows, not only the one it serves, so a database keeps working
    /// when it moves to another app.
    pub fn with_app_names(mut self, names: &[&str]) -> Self {
        let mut reserved = self.reserved_names.as_ref().clone();
        reserved.extend(names.iter().map(|n| n.to_string()));
        self.shared_mut().reserved_names = Arc::new(reserved);
        self
    }

    /// Documents an app's routes in `/api/openapi.json` (OpenAPI path items by path).
    pub fn with_app_paths(mut self, paths: serde_json::Value) -> Self {
        self.shared_mut().app_paths = Some(Arc::new(paths));
        self
    }

    /// Ends the long-lived answers (change-feed streams, which a client would otherwise
    /// keep open): call it when a graceful shutdown begins. Clients resume elsewhere, or
    /// here after a restart, with `Last-Event-ID`.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Lets an app decide about reverts of its changesets.
    pub fn with_revert_policy(mut self, policy: Arc<dyn routes::revert::RevertPolicy>) -> Self {
        self.shared_mut().revert_policy = Some(policy);
        self
    }

    /// Adds an app's facts to `auth` (see [`access::AuthContext`]).
    pub fn with_auth_context(mut self, context: Arc<dyn access::AuthContext>) -> Self {
        self.shared_mut().auth_context = Some(context);
        self
    }
}

/// The listener [`serve`] runs on: [`conn::Listener`] (hyper's refusals in the
/// envelope), tapped with a no-op so that axum gives handlers the peer's `SocketAddr`
/// (axum provides that connect info for tapped listeners of any kind).
type ServeListener =
    axum::serve::TapIo<conn::Listener, fn(&mut conn::Enveloped<tokio::net::TcpStream>)>;

/// What [`serve`] returns: await it, or add `.with_graceful_shutdown(...)` first.
pub type Serving = axum::serve::Serve<
    ServeListener,
    axum::extract::connect_info::IntoMakeServiceWithConnectInfo<Router, std::net::SocketAddr>,
    axum::middleware::AddExtension<Router, axum::extract::ConnectInfo<std::net::SocketAddr>>,
>;

/// Serves `app` on `listener`, giving handlers each connection's peer address (the login
/// rate limit needs it) and answering even hyper's own refusals in the envelope.
pub fn serve(listener: tokio::net::TcpListener, app: Router) -> Serving {
    use axum::serve::ListenerExt;
    let tap: fn(&mut conn::Enveloped<tokio::net::TcpStream>) = |_| {};
    axum::serve(
        conn::Listener(listener).tap_io(tap),
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
}

/// The whole API.
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new())
}

/// The whole API plus an app's own routes (under `/api/v1/<app>/...`; they take
/// precedence over the generic collection routes they overlap).
pub fn app_with(state: AppState, app_routes: Router<AppState>) -> Router {
    app_with_pages(state, app_routes, admin::AdminPages::default())
}

/// [`app_with`] plus an app's admin pages.
fn app_with_pages(
    state: AppState,
    app_routes: Router<AppState>,
    pages: admin::AdminPages,
) -> Router {
    let body_limit = state.settings.body_limit;
    let cors = cors(&state.settings.cors_origins);
    // App routes (uploads) carry their own body limits.
    let generic = Router::new()
        .merge(routes::system::router())
        .merge(routes::auth::router())
        .merge(routes::records::router())
        .merge(routes::nested::router())
        .merge(routes::revert::router())
        .merge(routes::events::router())
        .merge(routes::metrics::router())
        .merge(routes::docs::router())
        .layer(tower_http::limit::RequestBodyLimitLayer::new(body_limit));
    let api = Router::new().merge(app_routes).merge(generic);
    // The admin UI calls the API in process, so its pages obey the very same rules.
    let admin = admin::router(state.clone(), api.clone().with_state(state.clone()), pages);
    let router = Router::new()
        .merge(api)
        .merge(admin)
        .fallback(routes::system::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            frame::frame,
        ))
        .with_state(state);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// The whole API plus `app`'s routes, with its facts for access rules and its paths in
/// `/api/openapi.json`: how a server process serves an app (see [`app::App`]).
pub fn app_for(state: AppState, app: &dyn app::App) -> Router {
    let (router, paths) = app.routes().into_parts();
    let mut state = state.with_app_paths(serde_json::Value::Object(paths));
    if let Some(context) = app.auth_context() {
        state = state.with_auth_context(context);
    }
    if let Some(policy) = app.revert_policy() {
        state = state.with_revert_policy(policy);
    }
    if state.settings.require_role.is_none()
        && let Some(role) = app.require_role()
    {
        let settings = Arc::new(ServerSettings {
            require_role: Some(role),
            ..ServerSettings::clone(&state.settings)
        });
        state.shared_mut().settings = settings;
    }
    app_with_pages(state, router, app.admin_pages())
}

/// CORS for the configured origins only (credentials allowed, so never `*`).
fn cors(origins: &[axum::http::HeaderValue]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{Method, header};
    if origins.is_empty() {
        return None;
    }
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins.to_vec())
            .allow_credentials(true)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::IF_MATCH,
                header::HeaderName::from_static(access::CSRF_HEADER),
                consistency::MIN_SEQ,
                consistency::CONSISTENCY,
            ])
            .expose_headers([header::ETAG, envelope::REQUEST_ID, consistency::SEQ]),
    )
}
