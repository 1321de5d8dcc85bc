//! Credential material (declared `redact` on a definition) never appears in answers:
//! audit events, history, as-of reads, current reads and lists, whoever asks.

use bucketbase_server::auth::local::{hash_password, hash_refresh_token};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn password_and_refresh_token_hashes_stay_out_of_audit_answers() {
    let app = spawn_app().await;
    let login: Value = app.login(ADMIN.0, ADMIN.1).await.json().await.unwrap();
    let admin = login["data"]["access_token"].as_str().unwrap().to_string();
    let refresh = login["data"]["refresh_token"].as_str().unwrap().to_string();
    let (s, _, _) = app
        .call(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(s, 200);
    let new_hash = hash_password("a new long password").unwrap();
    app.users
        .update_user(ADMIN.0, json!({"password_hash": new_hash}), "test")
        .await
        .unwrap();

    let (s, users, _) = app
        .call(
            Method::GET,
            "/api/v1/audit?collection=_users",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 200, "{users}");
    let events = users["data"].as_array().unwrap();
    assert_eq!(events.len(), 2, "create and password change: {users}");
    for event in events {
        assert_eq!(
            event["changes"]["password_hash"]["to"], "[redacted]",
            "{event}"
        );
    }
    assert_eq!(events[0]["changes"]["password_hash"]["from"], "[redacted]");

    let (s, sessions, _) = app
        .call(
            Method::GET,
            "/api/v1/audit?collection=_sessions",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let events = sessions["data"].as_array().unwrap();
    assert_eq!(events.len(), 3, "login, rotation (old + new): {sessions}");
    assert!(
        events.iter().all(|e| e["record_id"] == "[redacted]"),
        "{sessions}"
    );

    let (_, everything, _) = app
        .call(Method::GET, "/api/v1/audit?limit=1000", Some(&admin), None)
        .await;
    let text = everything.to_string();
    assert!(!text.contains("$argon2"), "no password hash: {text}");
    assert!(!text.contains(&new_hash));
    assert!(
        !text.contains(&hash_refresh_token(&refresh)),
        "no token hash"
    );
}

#[tokio::test]
async fn redacted_fields_of_user_collections_in_every_answer() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.define(
        &admin,
        json!({"name": "api_keys", "redact": ["key_hash"],
               "schema": {"type": "object", "properties": {"label": {"type": "string"}, "key_hash": {"type": "string"}}}}),
    )
    .await;
    let (s, created, _) = app
        .call(
            Method::POST,
            "/api/v1/api_keys",
            Some(&admin),
            Some(json!({"label": "ci", "key_hash": "first-hash-value"})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["data"]["key_hash"], "[redacted]");
    let id = created["data"]["id"].as_str().unwrap();
    let version = created["data"]["_version"].as_u64().unwrap();
    let (s, _, _) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/api_keys/{id}"),
            Some(&admin),
            Some(json!({"key_hash": "second-hash-value"})),
        )
        .await;
    assert_eq!(s, 200);
    let answers = [
        format!("/api/v1/api_keys/{id}"),
        "/api/v1/api_keys".to_string(),
        format!("/api/v1/api_keys/{id}?as_of={version}"),
        format!("/api/v1/api_keys/{id}/history"),
        "/api/v1/audit?collection=api_keys".to_string(),
    ];
    for path in answers {
        let (s, body, _) = app.call(Method::GET, &path, Some(&admin), None).await;
        assert_eq!(s, 200, "{path}: {body}");
        let text = body.to_string();
        assert!(
            !text.contains("first-hash-value") && !text.contains("second-hash-value"),
            "{path}: {text}"
        );
        assert!(text.contains("[redacted]"), "{path}: {text}");
    }
}
