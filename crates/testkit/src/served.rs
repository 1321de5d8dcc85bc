//! An app served in process on a fresh local database, as the apps' integration tests use
//! it: its address, a client, its users (local provider) and request helpers. aristay's
//! and docsai's test support wrap a [`Served`].

use std::sync::Arc;

use bucketbase_engine::collection::secret::SecretBox;
use bucketbase_engine::{Clock, Database, DbOptions, SystemClock, TxnMeta};
use bucketbase_server::app::App;
use bucketbase_server::auth::local::{LocalConfig, LocalProvider};
use bucketbase_server::auth::store::DbUserStore;
use bucketbase_server::{AppState, ServerSettings};
use reqwest::Method;
use serde_json::{Value, json};

/// The key local tokens are signed with in these tests.
pub const JWT_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";
/// Every test user's password.
pub const PASSWORD: &str = "a long enough password";

pub struct Served {
    pub url: String,
    pub client: reqwest::Client,
    pub db: Arc<Database>,
    pub users: DbUserStore,
    pub dir: tempfile::TempDir,
}

/// Serves `app` on a fresh local root: its definitions installed, its hooks and the
/// secret key `key` given to the database (`tune` adjusts the options first), local
/// sign-in with [`JWT_SECRET`], no login rate limit to speak of.
pub async fn serve(
    app: &dyn App,
    key: Option<Arc<SecretBox>>,
    tune: impl FnOnce(&mut DbOptions),
) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = DbOptions {
        hooks: app.hooks(),
        secret_key: key.clone(),
        ..DbOptions::default()
    };
    tune(&mut opts);
    let db = Arc::new(
        Database::open_url(dir.path().to_str().unwrap(), opts)
            .await
            .unwrap(),
    );
    db.define_all(&TxnMeta::new("test", "definitions"), &app.definitions())
        .await
        .unwrap();
    let users = DbUserStore::install(db.clone()).await.unwrap();
    let now: bucketbase_server::auth::jwt::Now =
        Arc::new(|| SystemClock.now().timestamp().max(0) as u64);
    let provider = Arc::new(
        LocalProvider::new(
            Arc::new(users.clone()),
            JWT_SECRET,
            LocalConfig::default(),
            now,
        )
        .unwrap(),
    );
    let settings = ServerSettings {
        cookie_secure: false,
        login_per_minute: 10_000,
        ..ServerSettings::default()
    };
    let state = AppState::new(db.clone(), provider, settings, key);
    let router = bucketbase_server::app_for(state, app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        bucketbase_server::serve(listener, router).await.unwrap();
    });
    Served {
        url: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(128)
            .build()
            .unwrap(),
        db,
        users,
        dir,
    }
}

impl Served {
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Creates a user with `role`; returns their token and uuid.
    pub async fn user(&self, email: &str, role: &str) -> (String, String) {
        self.users
            .create_user(email, PASSWORD, role, "test")
            .await
            .unwrap();
        let r = self
            .client
            .post(self.at("/api/auth/login"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login of {email}");
        let body: Value = r.json().await.unwrap();
        (
            body["data"]["access_token"].as_str().unwrap().to_string(),
            body["data"]["user"]["uuid"].as_str().unwrap().to_string(),
        )
    }

    /// A request as `token`: the status and the JSON answer (null when not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, self.at(path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Posts raw JSON bytes (a file, as an upload sends it) to `path` as `token`.
    pub async fn post_bytes(&self, path: &str, token: &str, bytes: Vec<u8>) -> (u16, Value) {
        let r = self
            .client
            .post(self.at(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}
