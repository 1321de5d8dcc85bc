//! Access as the seed had it: SuperAdmin only, and every record its owner's, for every
//! SuperAdmin too (the rules bind them: `bind_super_admin`, decision 0021). Another
//! owner's record is not found on every route that reaches it.

use std::time::Duration;

use bucketbase_testkit::sse::EventStream;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{id, spawn};

#[tokio::test]
async fn only_superadmins_get_in() {
    let app = spawn().await;
    for role in ["manager", "staff", "owner"] {
        let (token, _) = app.user(&format!("{role}@example.com"), role).await;
        let (s, b) = app.get("/api/v1/knowledge", &token).await;
        assert_eq!(s, 403, "{role}: {b}");
        assert_eq!(b["success"], false);
        assert_eq!(b["error"]["code"], "forbidden");
        let (s, _) = app.get("/api/v1/docsai/json_store/k", &token).await;
        assert_eq!(s, 403, "{role}");
    }
}

#[tokio::test]
async fn another_superadmins_records_are_not_found_anywhere() {
    let app = spawn().await;
    let (mine, me) = app.admin.clone();
    let (theirs, _) = app.other.clone();
    let record = app
        .create(&mine, "knowledge", json!({"title": "Mine", "content": "x"}))
        .await;
    assert_eq!(record["created_by"], me.as_str());
    let k = id(&record);
    let task = app.create(&mine, "tasks", json!({"title": "Do it"})).await;
    let t = id(&task);
    let (s, comment) = app
        .call(
            Method::POST,
            &format!("/api/v1/tasks/{t}/comments"),
            &mine,
            Some(json!({"text": "first"})),
        )
        .await;
    assert_eq!(s, 201, "{comment}");
    let item = comment["data"]["id"].as_str().unwrap().to_string();
    let seq = record["_version"].as_u64().unwrap();

    // The owner reaches everything.
    for path in [
        format!("/api/v1/knowledge/{k}"),
        format!("/api/v1/knowledge/{k}/history"),
        format!("/api/v1/knowledge/{k}?as_of={seq}"),
        format!("/api/v1/tasks/{t}/comments"),
    ] {
        let (s, b) = app.get(&path, &mine).await;
        assert_eq!(s, 200, "{path}: {b}");
    }
    // The other SuperAdmin reaches nothing of it: 404, in the envelope.
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/v1/knowledge/{k}"), None),
        (Method::GET, format!("/api/v1/knowledge/{k}/history"), None),
        (
            Method::GET,
            format!("/api/v1/knowledge/{k}?as_of={seq}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/knowledge/{k}"),
            Some(json!({"title": "Theirs"})),
        ),
        (
            Method::PUT,
            format!("/api/v1/knowledge/{k}"),
            Some(json!({"title": "Theirs", "content": "y"})),
        ),
        (Method::DELETE, format!("/api/v1/knowledge/{k}"), None),
        (
            Method::DELETE,
            format!("/api/v1/knowledge/{k}?purge=true"),
            None,
        ),
        (Method::POST, format!("/api/v1/knowledge/{k}/restore"), None),
        (Method::GET, format!("/api/v1/tasks/{t}/comments"), None),
        (
            Method::POST,
            format!("/api/v1/tasks/{t}/comments"),
            Some(json!({"text": "mine now"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/tasks/{t}/comments/{item}"),
            Some(json!({"text": "edited"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/tasks/{t}/comments/{item}"),
            None,
        ),
    ];
    for (method, path, body) in cases {
        let (s, b) = app.call(method.clone(), &path, &theirs, body).await;
        assert_eq!(s, 404, "{method} {path}: {b}");
        assert_eq!(b["error"]["code"], "not_found", "{method} {path}");
    }
    // Lists leave it out (and the index-backed count agrees).
    let (s, b) = app.get("/api/v1/knowledge", &theirs).await;
    assert_eq!(s, 200);
    assert_eq!(b["data"], json!([]));
    assert_eq!(b["meta"]["total"], 0);
    let (_, b) = app.get("/api/v1/knowledge", &mine).await;
    assert_eq!(b["meta"]["total"], 1);
    // Nothing changed.
    let (_, b) = app.get(&format!("/api/v1/tasks/{t}/comments"), &mine).await;
    assert_eq!(b["data"].as_array().unwrap().len(), 1);
    assert_eq!(b["data"][0]["text"], "first");
    let (_, b) = app.get(&format!("/api/v1/knowledge/{k}"), &mine).await;
    assert_eq!(b["data"]["title"], "Mine");
    assert!(b["data"]["deleted_at"].is_null());
}

#[tokio::test]
async fn a_reference_to_another_owners_record_is_refused() {
    let app = spawn().await;
    let (mine, _) = app.admin.clone();
    let (theirs, _) = app.other.clone();
    let collection = app
        .create(&mine, "api_collections", json!({"name": "Mine"}))
        .await;
    let body =
        |c: &str| json!({"method": "GET", "url": "https://example.com/", "collection_id": c});
    let (s, b) = app
        .call(
            Method::POST,
            "/api/v1/request_history",
            &theirs,
            Some(body(&id(&collection))),
        )
        .await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["error"]["code"], "reference_violation");
    let (s, b) = app
        .call(
            Method::POST,
            "/api/v1/request_history",
            &mine,
            Some(body(&id(&collection))),
        )
        .await;
    assert_eq!(s, 201, "{b}");
}

#[tokio::test]
async fn the_change_feed_shows_only_the_callers_own_records() {
    let app = spawn().await;
    let (mine, _) = app.admin.clone();
    let (theirs, _) = app.other.clone();
    let mut stream = EventStream::open(
        &app.client,
        &app.at("/api/v1/knowledge/events"),
        &theirs,
        None,
    )
    .await
    .expect("the feed opens");
    // Created before theirs: had it been admitted, it would come first.
    app.create(&mine, "knowledge", json!({"title": "Mine"}))
        .await;
    let own = app
        .create(&theirs, "knowledge", json!({"title": "Theirs"}))
        .await;
    let event = loop {
        let e = stream
            .next_within(Duration::from_secs(30))
            .await
            .expect("an event");
        if e.event != "ready" && e.data.get("record_id").is_some() {
            break e;
        }
    };
    assert_eq!(event.data["record_id"], own["id"], "{:?}", event);
}

#[tokio::test]
async fn another_owners_changeset_cannot_be_reverted() {
    let app = spawn().await;
    let (mine, _) = app.admin.clone();
    let (theirs, _) = app.other.clone();
    let r = app
        .client
        .post(app.at("/api/v1/knowledge"))
        .bearer_auth(&mine)
        .json(&json!({"title": "Mine"}))
        .send()
        .await
        .unwrap();
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let record: Value = r.json().await.unwrap();
    let body = json!({"request_id": request_id});
    let (s, b) = app
        .call(
            Method::POST,
            "/api/v1/audit/revert",
            &theirs,
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, 404, "{b}");
    let (s, _) = app
        .get(&format!("/api/v1/knowledge/{}", id(&record["data"])), &mine)
        .await;
    assert_eq!(s, 200, "still there");
    let (s, b) = app
        .call(Method::POST, "/api/v1/audit/revert", &mine, Some(body))
        .await;
    assert_eq!(s, 200, "{b}");
}
