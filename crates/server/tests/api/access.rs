//! The authorization matrix: role × endpoint × expected status.

use reqwest::Method;
use serde_json::json;

use crate::support::*;

/// (who, token, method, path, body, expected status)
type Case<'a> = (
    &'a str,
    Option<&'a str>,
    Method,
    &'a str,
    Option<serde_json::Value>,
    u16,
);

#[tokio::test]
async fn authorization_matrix() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.define(&admin, notes_definition()).await;
    let ann = app.user("ann@example.com", "staff").await;
    let bob = app.user("bob@example.com", "staff").await;
    let uuid = |token: String| {
        let app = &app;
        async move {
            app.call(Method::GET, "/api/auth/me", Some(&token), None)
                .await
                .1["data"]["uuid"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let ann_id = uuid(ann.clone()).await;
    let (s, note, _) = app
        .call(
            Method::POST,
            "/api/v1/notes",
            Some(&ann),
            Some(json!({"title": "Ann's", "owner": ann_id})),
        )
        .await;
    assert_eq!(s, 201, "{note}");
    let id = note["data"]["id"].as_str().unwrap().to_string();
    let one = format!("/api/v1/notes/{id}");
    let restore = format!("{one}/restore");
    let history = format!("{one}/history");
    let purge = format!("{one}?purge=true");

    // (who, method, path, body, expected)
    let matrix: Vec<Case<'_>> = vec![
        ("anonymous", None, Method::GET, "/api/v1/notes", None, 401),
        ("anonymous", None, Method::GET, &one, None, 401),
        (
            "anonymous",
            None,
            Method::GET,
            "/api/v1/collections",
            None,
            401,
        ),
        ("owner", Some(&ann), Method::GET, &one, None, 200),
        ("owner", Some(&ann), Method::GET, &history, None, 200),
        (
            "owner",
            Some(&ann),
            Method::PATCH,
            &one,
            Some(json!({"topic": "t"})),
            200,
        ),
        ("other staff", Some(&bob), Method::GET, &one, None, 404),
        ("other staff", Some(&bob), Method::GET, &history, None, 404),
        (
            "other staff",
            Some(&bob),
            Method::PATCH,
            &one,
            Some(json!({"topic": "x"})),
            404,
        ),
        ("other staff", Some(&bob), Method::DELETE, &one, None, 404),
        (
            "other staff",
            Some(&bob),
            Method::POST,
            "/api/v1/notes",
            Some(json!({"title": "forged", "owner": ann_id})),
            403,
        ),
        (
            "other staff",
            Some(&bob),
            Method::POST,
            "/api/v1/collections",
            Some(json!({"name": "x"})),
            403,
        ),
        (
            "other staff",
            Some(&bob),
            Method::GET,
            "/api/v1/audit",
            None,
            403,
        ),
        (
            "other staff",
            Some(&bob),
            Method::GET,
            "/api/v1/audit/verify",
            None,
            403,
        ),
        // Definitions: shapes of what the caller may list; system collections never.
        (
            "other staff",
            Some(&bob),
            Method::GET,
            "/api/v1/collections/notes",
            None,
            200,
        ),
        (
            "other staff",
            Some(&bob),
            Method::GET,
            "/api/v1/collections/_users",
            None,
            404,
        ),
        (
            "SuperAdmin",
            Some(&admin),
            Method::GET,
            "/api/v1/collections/_users",
            None,
            404,
        ),
        (
            "SuperAdmin",
            Some(&admin),
            Method::GET,
            "/api/v1/_users",
            None,
            404,
        ),
        (
            "other staff",
            Some(&bob),
            Method::GET,
            "/api/v1/_users",
            None,
            404,
        ),
        ("owner", Some(&ann), Method::DELETE, &purge, None, 403),
        ("owner", Some(&ann), Method::DELETE, &one, None, 200),
        ("owner", Some(&ann), Method::POST, &restore, None, 200),
        ("SuperAdmin", Some(&admin), Method::GET, &one, None, 200),
        (
            "SuperAdmin",
            Some(&admin),
            Method::GET,
            "/api/v1/audit",
            None,
            200,
        ),
        (
            "SuperAdmin",
            Some(&admin),
            Method::DELETE,
            &purge,
            None,
            200,
        ),
    ];
    for (who, token, method, path, body, expected) in matrix {
        let (status, answer, _) = app.call(method.clone(), path, token, body).await;
        assert_eq!(status, expected, "{who} {method} {path}: {answer}");
    }
    // Lists only show what the caller may see.
    let (_, bobs, _) = app
        .call(Method::GET, "/api/v1/notes", Some(&bob), None)
        .await;
    assert_eq!(bobs["meta"]["total"], 0);
}
