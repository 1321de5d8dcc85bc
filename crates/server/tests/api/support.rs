//! `spawn_app()`: a real server on 127.0.0.1:0 over a fresh in-memory database, with the
//! local identity provider and a SuperAdmin, plus an HTTP client. `spawn_on_store()`: the
//! same over a store the test provides.

use std::sync::Arc;

use bucketbase_engine::store::DynStore;
use bucketbase_engine::{Clock, Database, DbOptions, SystemClock};
use bucketbase_server::auth::IdentityProvider;
use bucketbase_server::auth::local::{LocalConfig, LocalProvider};
use bucketbase_server::auth::store::DbUserStore;
use bucketbase_server::{AppState, ServerSettings};
use serde_json::{Value, json};

pub const ADMIN: (&str, &str) = ("root@example.com", "correct horse battery staple");
pub const JWT_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";

pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    /// Kept for tests that look at the database behind the server.
    #[allow(dead_code)]
    pub db: Arc<Database>,
    pub users: DbUserStore,
}

pub fn now() -> bucketbase_server::auth::jwt::Now {
    Arc::new(|| SystemClock.now().timestamp().max(0) as u64)
}

pub async fn spawn_with(
    settings: ServerSettings,
    provider: Option<Arc<dyn IdentityProvider>>,
) -> TestApp {
    spawn_reserving(settings, provider, &[]).await
}

/// [`spawn_with`], telling the server these app names (reserved as collection names).
pub async fn spawn_reserving(
    settings: ServerSettings,
    provider: Option<Arc<dyn IdentityProvider>>,
    app_names: &[&str],
) -> TestApp {
    let db = Database::open_url("memory://", DbOptions::default())
        .await
        .unwrap();
    spawn_on(Arc::new(db), settings, provider, app_names).await
}

/// A server over a database opened on `store` (e.g. a `FaultStore` the test keeps a
/// handle to, to make the store fail and come back while the server runs).
#[allow(dead_code)]
pub async fn spawn_on_store(store: DynStore, opts: DbOptions) -> TestApp {
    let db = Database::open(store, opts).await.unwrap();
    let settings = ServerSettings {
        cookie_secure: false,
        ..ServerSettings::default()
    };
    spawn_on(Arc::new(db), settings, None, &[]).await
}

async fn spawn_on(
    db: Arc<Database>,
    settings: ServerSettings,
    provider: Option<Arc<dyn IdentityProvider>>,
    app_names: &[&str],
) -> TestApp {
    let users = DbUserStore::install(db.clone()).await.unwrap();
    users
        .create_user(ADMIN.0, ADMIN.1, "SuperAdmin", "test")
        .await
        .unwrap();
    let provider = provider.unwrap_or_else(|| {
        Arc::new(
            LocalProvider::new(
                Arc::new(users.clone()),
                JWT_SECRET,
                LocalConfig::default(),
                now(),
            )
            .unwrap(),
        )
    });
    let state = AppState::new(db.clone(), provider, settings, None).with_app_names(app_names);
    let app = bucketbase_server::app(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        bucketbase_server::serve(listener, app).await.unwrap();
    });
    TestApp {
        url: format!("http://{addr}"),
        client: reqwest::Client::builder().build().unwrap(),
        db,
        users,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(
        ServerSettings {
            cookie_secure: false,
            ..ServerSettings::default()
        },
        None,
    )
    .await
}

impl TestApp {
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Logs in and returns the full `data` of the answer.
    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.at("/api/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
    }

    pub async fn token(&self, email: &str, password: &str) -> String {
        let r = self.login(email, password).await;
        assert_eq!(r.status(), 200, "login of {email}");
        let body: Value = r.json().await.unwrap();
        body["data"]["access_token"].as_str().unwrap().to_string()
    }

    pub async fn admin(&self) -> String {
        self.token(ADMIN.0, ADMIN.1).await
    }

    /// Creates a user with `role` and returns their token.
    pub async fn user(&self, email: &str, role: &str) -> String {
        self.users
            .create_user(email, "a long enough password", role, "test")
            .await
            .unwrap();
        self.token(email, "a long enough password").await
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut req = self.client.request(method, self.at(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.json().await.unwrap_or(Value::Null);
        (status, body, headers)
    }

    /// Defines a collection through the API as the SuperAdmin.
    pub async fn define(&self, admin: &str, def: Value) {
        let (status, body, _) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/collections",
                Some(admin),
                Some(def),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

/// A collection with owner-scoped rules, used across the tests.
pub fn notes_definition() -> Value {
    json!({
        "name": "notes",
        "soft_delete": true,
        "index": ["owner", "topic"],
        "schema": {"type": "object", "required": ["title"], "properties": {
            "title": {"type": "string", "minLength": 1}, "topic": {"type": "string"}, "owner": {"type": "string"}}},
        "unique": [{"name": "note_title", "fields": ["title"]}],
        "rules": {
            "list": "record.owner == auth.uuid",
            "view": "record.owner == auth.uuid",
            "create": "record.owner == auth.uuid",
            "update": "record.owner == auth.uuid",
            "delete": "record.owner == auth.uuid"
        }
    })
}
