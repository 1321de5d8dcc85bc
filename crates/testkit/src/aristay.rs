//! `spawn()`: the aristay server on a fresh local-disk database, with users of every role,
//! served as `bucketbase serve --app aristay` serves it (`bucketbase_server::app_for`).

use std::sync::Arc;

use bucketbase_aristay::Aristay;
use bucketbase_engine::{Clock, Database, DbOptions, SystemClock, TxnMeta};
use bucketbase_server::app::App;
use bucketbase_server::auth::local::{LocalConfig, LocalProvider};
use bucketbase_server::auth::store::DbUserStore;
use bucketbase_server::{AppState, ServerSettings};
use reqwest::Method;
use serde_json::{Value, json};

pub const JWT_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";
pub const PASSWORD: &str = "a long enough password";

pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    pub db: Arc<Database>,
    pub users: DbUserStore,
    pub admin: String,
    pub manager: String,
    _dir: tempfile::TempDir,
}

pub async fn spawn() -> TestApp {
    spawn_with(|_| {}).await
}

/// [`spawn`], with the database options changed by `tune` (e.g. small size limits).
pub async fn spawn_with(tune: impl FnOnce(&mut DbOptions)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = DbOptions {
        hooks: Aristay.hooks(),
        ..DbOptions::default()
    };
    tune(&mut opts);
    let db = Arc::new(
        Database::open_url(dir.path().to_str().unwrap(), opts)
            .await
            .unwrap(),
    );
    db.define_all(&TxnMeta::new("test", "definitions"), &Aristay.definitions())
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
    let state = AppState::new(db.clone(), provider, settings, None);
    let app = bucketbase_server::app_for(state, &Aristay);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        bucketbase_server::serve(listener, app).await.unwrap();
    });
    let mut app = TestApp {
        url: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(128)
            .build()
            .unwrap(),
        db,
        users,
        admin: String::new(),
        manager: String::new(),
        _dir: dir,
    };
    app.admin = app.user("root@example.com", "SuperAdmin").await.0;
    app.manager = app.user("manager@example.com", "manager").await.0;
    app
}

impl TestApp {
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

    /// Creates a record as the manager; panics unless 201. Returns the record.
    pub async fn create(&self, collection: &str, body: Value) -> Value {
        let (s, b) = self
            .call(
                Method::POST,
                &format!("/api/v1/{collection}"),
                &self.manager,
                Some(body),
            )
            .await;
        assert_eq!(s, 201, "create {collection}: {b}");
        b["data"].clone()
    }

    pub async fn property(&self, name: &str) -> String {
        id(&self
            .create("properties", json!({"name": name, "city": "Lisbon"}))
            .await)
    }

    /// Every live record of a collection matching `field=value`, as the SuperAdmin.
    pub async fn list(&self, collection: &str, query: &str) -> Vec<Value> {
        let (s, b) = self
            .call(
                Method::GET,
                &format!("/api/v1/{collection}?per_page=1000&{query}"),
                &self.admin,
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b["data"].as_array().unwrap().clone()
    }

    /// How many live records of a collection match `query` (the list's total).
    pub async fn count(&self, collection: &str, query: &str) -> u64 {
        let (s, b) = self
            .call(
                Method::GET,
                &format!("/api/v1/{collection}?per_page=1&{query}"),
                &self.admin,
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b["meta"]["total"].as_u64().unwrap()
    }

    /// Posts a multipart form.
    pub async fn upload(
        &self,
        path: &str,
        token: &str,
        form: reqwest::multipart::Form,
    ) -> (u16, Value) {
        let r = self
            .client
            .post(self.at(path))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

pub fn id(record: &Value) -> String {
    record["id"]
        .as_str()
        .expect("a record with an id")
        .to_string()
}
