//! The generic record routes on docsai's collections.

use reqwest::Method;
use serde_json::json;

use crate::support::{id, spawn};

/// A record whose secret field holds an object (a credential's data) can be patched
/// without touching the secret: the sealed value is kept, not re-checked against the
/// object schema (it was a 422 before).
#[tokio::test]
async fn a_record_with_a_secret_object_can_be_patched() {
    let app = spawn().await;
    let (mine, _) = app.admin.clone();
    let cred = app
        .create(
            &mine,
            "credentials",
            json!({"name": "GitHub", "credential_type": "token", "data": {"token": "gh-secret"}}),
        )
        .await;
    assert_eq!(cred["data"], "********");
    let path = format!("/api/v1/credentials/{}", id(&cred));
    let (s, b) = app
        .call(
            Method::PATCH,
            &path,
            &mine,
            Some(json!({"name": "GitHub (work)"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["name"], "GitHub (work)");
    assert_eq!(b["data"]["data"], "********", "the secret is still set");
    // A new value is still checked against the field's schema.
    let (s, b) = app
        .call(
            Method::PATCH,
            &path,
            &mine,
            Some(json!({"data": "not an object"})),
        )
        .await;
    assert_eq!(s, 422, "{b}");
}
