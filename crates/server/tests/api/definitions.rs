//! The definitions API's boundaries: names checked in one place (no system, no reserved
//! names), system collections unreachable, and what each caller may read of definitions.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

fn names(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn system_and_reserved_names_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for name in [
        "_users",
        "_sessions",
        "_collections",
        "_evil",
        "audit",
        "collections",
        "events",
    ] {
        let (s, body, _) = app
            .call(
                Method::POST,
                "/api/v1/collections",
                Some(&admin),
                Some(json!({"name": name, "schema": {"type": "object"}})),
            )
            .await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (422, Some("invalid_definition")),
            "{name}: {body}"
        );
    }
    // `_users` keeps its schema and its unique email: a second user with the same email
    // is still refused.
    let again = app
        .users
        .create_user(ADMIN.0, "another long password", "staff", "test")
        .await;
    assert!(again.is_err(), "the email uniqueness of _users still holds");
    // Nor can they be changed, read or listed here, even by the SuperAdmin.
    for (method, path, body) in [
        (
            Method::PATCH,
            "/api/v1/collections/_users",
            Some(json!({"unique": []})),
        ),
        (Method::GET, "/api/v1/collections/_users", None),
        (Method::GET, "/api/v1/collections/_sessions", None),
    ] {
        let (s, answer, _) = app.call(method.clone(), path, Some(&admin), body).await;
        assert_eq!(s, 404, "{method} {path}: {answer}");
    }
    let (s, listed, _) = app
        .call(Method::GET, "/api/v1/collections", Some(&admin), None)
        .await;
    assert_eq!(s, 200);
    assert!(
        names(&listed).iter().all(|n| !n.starts_with('_')),
        "{listed}"
    );
    // Nor does the public OpenAPI document describe them (or the `_users` schema).
    let openapi: Value = app
        .client
        .get(app.at("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = openapi.to_string();
    assert!(
        !text.contains("/api/v1/_users") && !text.contains("password_hash"),
        "system collections in the OpenAPI document"
    );
}

#[tokio::test]
async fn app_names_are_reserved_when_the_server_is_told_them() {
    let settings = bucketbase_server::ServerSettings {
        cookie_secure: false,
        ..Default::default()
    };
    let app = spawn_reserving(settings, None, &["aristay", "docsai"]).await;
    let admin = app.admin().await;
    for name in ["aristay", "docsai"] {
        let (s, body, _) = app
            .call(
                Method::POST,
                "/api/v1/collections",
                Some(&admin),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (422, Some("invalid_definition")),
            "{name}"
        );
    }
    app.define(&admin, json!({"name": "aristay_notes"})).await;
}

#[tokio::test]
async fn system_collections_are_not_records_of_the_api() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, me, _) = app
        .call(Method::GET, "/api/auth/me", Some(&admin), None)
        .await;
    let user = me["data"]["uuid"].as_str().unwrap().to_string();
    for path in [
        "/api/v1/_users".to_string(),
        format!("/api/v1/_users/{user}"),
        format!("/api/v1/_users/{user}?as_of=1"),
        format!("/api/v1/_users/{user}/history"),
        "/api/v1/_sessions".to_string(),
        "/api/v1/_collections".to_string(),
    ] {
        let (s, body, _) = app.call(Method::GET, &path, Some(&admin), None).await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{path}: {body}"
        );
    }
    let (s, _, _) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/_users/{user}"),
            Some(&admin),
            Some(json!({"role": "SuperAdmin"})),
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn definitions_are_shown_by_role() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.define(&admin, notes_definition()).await;
    app.define(
        &admin,
        json!({
            "name": "ledgers",
            "nested": {"lines": {"schema": {"type": "object", "properties": {"amount": {"type": "number"}}}}},
            "check": [{"name": "positive", "expr": "true"}],
            "rules": {"list": "auth.role == \"manager\"", "view": "auth.role == \"manager\""}
        }),
    )
    .await;
    app.define(&admin, json!({"name": "internal"})).await;
    let staff = app.user("staff@example.com", "staff").await;
    let manager = app.user("manager@example.com", "manager").await;

    // staff: only notes (its list rule depends on the record), and only its shape.
    let (s, listed, _) = app
        .call(Method::GET, "/api/v1/collections", Some(&staff), None)
        .await;
    assert_eq!(s, 200, "{listed}");
    assert_eq!(names(&listed), ["notes"]);
    let notes = &listed["data"][0];
    let mut keys: Vec<&str> = notes
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["index", "name", "nested", "schema", "soft_delete"]);
    assert_eq!(notes["schema"], notes_definition()["schema"]);
    assert_eq!(notes["soft_delete"], true);
    for hidden in ["ledgers", "internal", "_users"] {
        let (s, _, _) = app
            .call(
                Method::GET,
                &format!("/api/v1/collections/{hidden}"),
                Some(&staff),
                None,
            )
            .await;
        assert_eq!(s, 404, "{hidden}");
    }
    let (s, one, _) = app
        .call(Method::GET, "/api/v1/collections/notes", Some(&staff), None)
        .await;
    assert_eq!((s, &one["data"]), (200, notes));
    assert!(!one.to_string().contains("rules"), "{one}");

    // manager: ledgers too, with its nested item schema, without rules or checks.
    let (_, listed, _) = app
        .call(Method::GET, "/api/v1/collections", Some(&manager), None)
        .await;
    assert_eq!(names(&listed), ["ledgers", "notes"]);
    let ledgers = &listed["data"][0];
    assert_eq!(
        ledgers["nested"]["lines"]["schema"]["properties"]["amount"]["type"],
        "number"
    );
    assert!(
        ledgers.get("rules").is_none() && ledgers.get("check").is_none(),
        "{ledgers}"
    );

    // SuperAdmin: every user collection, in full.
    let (_, listed, _) = app
        .call(Method::GET, "/api/v1/collections", Some(&admin), None)
        .await;
    assert_eq!(names(&listed), ["internal", "ledgers", "notes"]);
    assert_eq!(listed["data"][1]["check"][0]["name"], "positive");
    assert_eq!(
        listed["data"][2]["rules"]["list"],
        "record.owner == auth.uuid"
    );
}
