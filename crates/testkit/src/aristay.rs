//! `spawn()`: the aristay server on a fresh local-disk database, with users of every role,
//! served as `bucketbase serve --app aristay` serves it (`bucketbase_server::app_for`).

use bucketbase_aristay::Aristay;
use bucketbase_engine::DbOptions;
use reqwest::Method;
use serde_json::{Value, json};

pub use crate::served::{JWT_SECRET, PASSWORD};
use crate::served::{Served, serve};

/// aristay served in process, with a SuperAdmin and a manager signed in.
pub struct TestApp {
    served: Served,
    pub admin: String,
    pub manager: String,
}

impl std::ops::Deref for TestApp {
    type Target = Served;

    fn deref(&self) -> &Served {
        &self.served
    }
}

pub async fn spawn() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(tune: impl FnOnce(&mut DbOptions)) -> TestApp {
    let served = serve(&Aristay, None, tune).await;
    let admin = served.user("root@example.com", "SuperAdmin").await.0;
    let manager = served.user("manager@example.com", "manager").await.0;
    TestApp {
        served,
        admin,
        manager,
    }
}

impl TestApp {
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
