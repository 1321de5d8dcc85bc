//! `spawn()`: the docsai server on a fresh local-disk database with a secret key, served
//! as `bucketbase serve --app docsai` serves it (`bucketbase_server::app_for`), and
//! helpers to call it as one of several SuperAdmins.

use std::path::Path;
use std::sync::Arc;

use bucketbase_docsai::Docsai;
use bucketbase_engine::collection::secret::SecretBox;
use bucketbase_testkit::served::{Served, serve};
use reqwest::Method;
use serde_json::Value;

/// docsai served in process, with two SuperAdmins signed in (each owns their records).
pub struct TestApp {
    served: Served,
    /// A SuperAdmin (token, uuid).
    pub admin: (String, String),
    /// Another SuperAdmin (token, uuid).
    pub other: (String, String),
}

impl std::ops::Deref for TestApp {
    type Target = Served;

    fn deref(&self) -> &Served {
        &self.served
    }
}

pub fn secret_box() -> Arc<SecretBox> {
    Arc::new(SecretBox::new([7u8; 32]))
}

pub async fn spawn() -> TestApp {
    let served = serve(&Docsai, Some(secret_box()), |_| {}).await;
    let admin = served.user("root@example.com", "SuperAdmin").await;
    let other = served.user("second@example.com", "SuperAdmin").await;
    TestApp {
        served,
        admin,
        other,
    }
}

impl TestApp {
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
