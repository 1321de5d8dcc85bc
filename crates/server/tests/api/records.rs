//! Records through the API: envelope, status codes, ETags, soft delete, history; bad input.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn record_lifecycle_over_http() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.define(&admin, notes_definition()).await;

    let (s, created, h) = app
        .call(
            Method::POST,
            "/api/v1/notes",
            Some(&admin),
            Some(json!({"title": "First", "topic": "a"})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["success"], true);
    assert!(created["meta"]["request_id"].is_string());
    assert!(h.get("x-request-id").is_some());
    let id = created["data"]["id"].as_str().unwrap().to_string();
    let etag = h.get("etag").unwrap().to_str().unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", created["data"]["_version"]));

    let (s, got, h) = app
        .call(
            Method::GET,
            &format!("/api/v1/notes/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((s, got["data"]["title"].as_str()), (200, Some("First")));
    assert_eq!(h.get("etag").unwrap().to_str().unwrap(), etag);

    // A stale If-Match is refused with 412.
    let ok = app
        .client
        .patch(app.at(&format!("/api/v1/notes/{id}")))
        .bearer_auth(&admin)
        .header("if-match", &etag)
        .json(&json!({"topic": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let stale = app
        .client
        .patch(app.at(&format!("/api/v1/notes/{id}")))
        .bearer_auth(&admin)
        .header("if-match", &etag)
        .json(&json!({"topic": "c"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    let body: Value = stale.json().await.unwrap();
    assert_eq!(body["error"]["code"], "version_conflict");

    // Unique violation is a 409 naming the constraint.
    let (s, dup, _) = app
        .call(
            Method::POST,
            "/api/v1/notes",
            Some(&admin),
            Some(json!({"title": "First"})),
        )
        .await;
    assert_eq!(
        (s, dup["error"]["code"].as_str()),
        (409, Some("unique_violation"))
    );
    assert_eq!(dup["error"]["details"]["constraint"], "note_title");

    // Soft delete hides it from lists; restore brings it back; history shows it all.
    let (s, _, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/notes/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (_, list, _) = app
        .call(Method::GET, "/api/v1/notes", Some(&admin), None)
        .await;
    assert_eq!(list["meta"]["total"], 0);
    let (_, list, _) = app
        .call(
            Method::GET,
            "/api/v1/notes?only_deleted=true",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(list["meta"]["total"], 1);
    let (s, _, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/notes/{id}/restore"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (_, hist, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/notes/{id}/history"),
            Some(&admin),
            None,
        )
        .await;
    let actions: Vec<&str> = hist["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["restore", "delete", "update", "create"]);

    // Filters, sort and pages.
    for t in ["B", "C", "D"] {
        app.call(
            Method::POST,
            "/api/v1/notes",
            Some(&admin),
            Some(json!({"title": t, "topic": "z"})),
        )
        .await;
    }
    let (_, list, _) = app
        .call(
            Method::GET,
            "/api/v1/notes?topic=z&sort=-title&per_page=2",
            Some(&admin),
            None,
        )
        .await;
    let titles: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        (titles, list["meta"]["total"].as_u64()),
        (vec!["D", "C"], Some(3))
    );
    let (_, list, _) = app.call(Method::GET, "/api/v1/notes?filter=record.title%20%3E%3D%20%22C%22%20%26%26%20record.topic%20%3D%3D%20%22z%22", Some(&admin), None).await;
    assert_eq!(list["meta"]["total"], 2);

    // Purge is SuperAdmin-only and final.
    let (s, _, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/notes/{id}?purge=true"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/notes/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 404);

    // Audit: query and verify.
    let (s, audit, _) = app
        .call(
            Method::GET,
            "/api/v1/audit?collection=notes&limit=3",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((s, audit["data"].as_array().unwrap().len()), (200, 3));
    let (_, verify, _) = app
        .call(Method::GET, "/api/v1/audit/verify", Some(&admin), None)
        .await;
    assert_eq!(verify["data"]["intact"], true);
}

#[tokio::test]
async fn bad_input_answers_4xx_envelopes_never_500() {
    let app = spawn_with(
        bucketbase_server::ServerSettings {
            cookie_secure: false,
            body_limit: 64 * 1024,
            ..Default::default()
        },
        None,
    )
    .await;
    let admin = app.admin().await;
    app.define(&admin, notes_definition()).await;
    let send =
        |req: reqwest::RequestBuilder| async { req.bearer_auth(&admin).send().await.unwrap() };
    let cases: Vec<(&str, reqwest::Response, u16, &str)> = vec![
        (
            "malformed JSON",
            send(
                app.client
                    .post(app.at("/api/v1/notes"))
                    .header("content-type", "application/json")
                    .body("{\"title\": "),
            )
            .await,
            400,
            "bad_request",
        ),
        (
            "wrong content type",
            send(
                app.client
                    .post(app.at("/api/v1/notes"))
                    .header("content-type", "text/plain")
                    .body("title=x"),
            )
            .await,
            415,
            "unsupported_media_type",
        ),
        (
            "oversized body",
            send(
                app.client
                    .post(app.at("/api/v1/notes"))
                    .json(&json!({"title": "x".repeat(100_000)})),
            )
            .await,
            413,
            "too_large",
        ),
        (
            "unknown collection",
            send(app.client.get(app.at("/api/v1/nope"))).await,
            404,
            "not_found",
        ),
        (
            "invalid id",
            send(app.client.get(app.at("/api/v1/notes/..%2Fetc"))).await,
            400,
            "bad_request",
        ),
        (
            "schema violation",
            send(
                app.client
                    .post(app.at("/api/v1/notes"))
                    .json(&json!({"title": ""})),
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            "not an object",
            send(
                app.client
                    .post(app.at("/api/v1/notes"))
                    .json(&json!([1, 2])),
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            "bad If-Match",
            send(
                app.client
                    .patch(app.at("/api/v1/notes/x"))
                    .header("if-match", "soon")
                    .json(&json!({})),
            )
            .await,
            400,
            "bad_request",
        ),
        (
            "bad filter",
            send(app.client.get(app.at("/api/v1/notes?filter=record.%3E"))).await,
            400,
            "invalid_filter",
        ),
        (
            "bad page",
            send(app.client.get(app.at("/api/v1/notes?per_page=100000"))).await,
            400,
            "bad_request",
        ),
        (
            "unknown route",
            send(app.client.get(app.at("/nothing/here"))).await,
            404,
            "not_found",
        ),
        (
            "wrong method",
            send(app.client.put(app.at("/api/v1/notes"))).await,
            405,
            "method_not_allowed",
        ),
        (
            "bad definition",
            send(
                app.client
                    .post(app.at("/api/v1/collections"))
                    .json(&json!({"name": "x", "check": [{"name": "c", "expr": "record.a >"}]})),
            )
            .await,
            422,
            "invalid_definition",
        ),
    ];
    for (what, response, status, code) in cases {
        assert_eq!(response.status().as_u16(), status, "{what}");
        let request_id = response
            .headers()
            .get("x-request-id")
            .expect(what)
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(
            response.headers().get("x-content-type-options").unwrap(),
            "nosniff",
            "{what}"
        );
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|_| panic!("{what}: not JSON"));
        assert_eq!(body["success"], false, "{what}");
        assert_eq!(
            body["meta"]["request_id"],
            request_id.as_str(),
            "{what}: the id is in the envelope too"
        );
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
    }
}
