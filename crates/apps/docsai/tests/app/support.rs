//! `spawn()`: the docsai server on a fresh local-disk database with a secret key, served
//! as `bucketbase serve --app docsai` serves it (`bucketbase_server::app_for`), and
//! helpers to call it as one of several SuperAdmins.

use std::path::Path;
use std::sync::Arc;

use bucketbase_docsai::Docsai;
use bucketbase_engine::collection::secret::SecretBox;
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
    /// A SuperAdmin (token, uuid).
    pub admin: (String, String),
    /// Another SuperAdmin (token, uuid).
    pub other: (String, String),
    pub dir: tempfile::TempDir,
}

pub fn secret_box() -> Arc<SecretBox> {
    Arc::new(SecretBox::new([7u8; 32]))
}

pub async fn spawn() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let key = secret_box();
    let db = Arc::new(
        Database::open_url(
            dir.path().to_str().unwrap(),
            DbOptions {
                secret_key: Some(key.clone()),
                ..DbOptions::default()
            },
        )
        .await
        .unwrap(),
    );
    db.define_all(&TxnMeta::new("test", "definitions"), &Docsai.definitions())
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
    let state = AppState::new(db.clone(), provider, settings, Some(key));
    let app = bucketbase_server::app_for(state, &Docsai);
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
        admin: Default::default(),
        other: Default::default(),
        dir,
    };
    app.admin = app.user("root@example.com", "SuperAdmin").await;
    app.other = app.user("second@example.com", "SuperAdmin").await;
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

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(Method::GET, path, token, None).await
    }

    /// Creates a record as `token`; panics unless 201. Returns the record.
    pub async fn create(&self, token: &str, collection: &str, body: Value) -> Value {
        let (s, b) = self
            .call(
                Method::POST,
                &format!("/api/v1/{collection}"),
                token,
                Some(body),
            )
            .await;
        assert_eq!(s, 201, "create {collection}: {b}");
        b["data"].clone()
    }

    /// Posts raw bytes (a Postman file) to `path`.
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

    /// Every file under the store root, as text (what someone reading the bucket sees).
    pub fn bucket_text(&self) -> String {
        let mut out = String::new();
        walk(self.dir.path(), &mut out);
        out
    }
}

fn walk(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push_str(&String::from_utf8_lossy(&bytes));
            out.push('\n');
        }
    }
}

pub fn id(record: &Value) -> String {
    record["id"]
        .as_str()
        .expect("a record with an id")
        .to_string()
}
