//! Nested items over HTTP: two levels deep (a workflow's executions, each with its logs),
//! one item, pages of items, `?nested=` on a record read, and access judged on the
//! record as for records (404 for a record the caller may not see).

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

fn flows_definition() -> Value {
    json!({
        "name": "flows",
        "schema": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "owner": {"type": "string"}}},
        "nested": {"executions": {
            "schema": {"type": "object", "properties": {"status": {"type": "string"}, "n": {"type": "integer"}}},
            "nested": {"logs": {"schema": {"type": "object", "required": ["line"],
                "properties": {"line": {"type": "string"}}}}}
        }},
        "rules": {
            "list": "record.owner == auth.uuid",
            "view": "record.owner == auth.uuid",
            "create": "record.owner == auth.uuid",
            "update": "record.owner == auth.uuid"
        }
    })
}

async fn flow(app: &TestApp, admin: &str) -> String {
    app.define(admin, flows_definition()).await;
    let (status, body, _) = app
        .call(
            Method::POST,
            "/api/v1/flows",
            Some(admin),
            Some(json!({"name": "etl", "owner": "nobody"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["data"]["id"].as_str().unwrap().to_string()
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let (status, answer, _) = app.call(Method::POST, path, Some(token), Some(body)).await;
    assert_eq!(status, 201, "POST {path}: {answer}");
    answer["data"].clone()
}

#[tokio::test]
async fn items_two_levels_deep_are_read_changed_and_removed_by_path() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let id = flow(&app, &admin).await;
    let base = format!("/api/v1/flows/{id}/executions");
    let exec = post(&app, &admin, &base, json!({"status": "running"})).await;
    let exec_id = exec["id"].as_str().unwrap();
    let logs = format!("{base}/{exec_id}/logs");
    let first = post(&app, &admin, &logs, json!({"line": "started"})).await;
    post(&app, &admin, &logs, json!({"line": "working"})).await;
    let log_id = first["id"].as_str().unwrap();
    assert!(first["created_at"].is_string());

    // One execution, with its logs.
    let (status, body, headers) = app
        .call(
            Method::GET,
            &format!("{base}/{exec_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "running");
    let lines: Vec<&str> = body["data"]["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["started", "working"]);
    assert!(headers.contains_key("etag"));

    // One log line; a page of them.
    let one = format!("{logs}/{log_id}");
    let (status, body, _) = app.call(Method::GET, &one, Some(&admin), None).await;
    assert_eq!(
        (status, body["data"]["line"].clone()),
        (200, json!("started"))
    );
    let (status, body, _) = app.call(Method::GET, &logs, Some(&admin), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["meta"]["total"], 2);

    // Patch and remove a log line.
    let (status, body, _) = app
        .call(
            Method::PATCH,
            &one,
            Some(&admin),
            Some(json!({"line": "begun"})),
        )
        .await;
    assert_eq!(
        (status, body["data"]["line"].clone()),
        (200, json!("begun")),
        "{body}"
    );
    let (status, _, _) = app.call(Method::DELETE, &one, Some(&admin), None).await;
    assert_eq!(status, 200);
    let (status, body, _) = app.call(Method::GET, &one, Some(&admin), None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");

    // The record shows the same thing whole.
    let (_, body, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/flows/{id}"),
            Some(&admin),
            None,
        )
        .await;
    let logs_in_record = &body["data"]["executions"][0]["logs"];
    assert_eq!(logs_in_record.as_array().unwrap().len(), 1);
    assert_eq!(logs_in_record[0]["line"], "working");

    // Unknown arrays and items, and a bad body, are client errors.
    for path in [
        format!("/api/v1/flows/{id}/nope"),
        format!("{base}/{exec_id}/nope"),
        format!("{base}/missing/logs"),
        format!("{base}/missing"),
    ] {
        let (status, body, _) = app.call(Method::GET, &path, Some(&admin), None).await;
        assert_eq!(status, 404, "GET {path}: {body}");
    }
    let (status, body, _) = app
        .call(
            Method::POST,
            &format!("{base}/missing/logs"),
            Some(&admin),
            Some(json!({"line": "x"})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body, _) = app
        .call(Method::POST, &logs, Some(&admin), Some(json!({"line": 5})))
        .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn item_pages_and_nested_views_of_a_record() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let id = flow(&app, &admin).await;
    let base = format!("/api/v1/flows/{id}/executions");
    for n in 0..7 {
        post(&app, &admin, &base, json!({"n": (n * 3) % 7})).await;
    }
    let ns = |body: &Value| -> Vec<i64> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["n"].as_i64().unwrap())
            .collect()
    };
    // Array order (oldest first), paged like lists.
    let (status, body, _) = app
        .call(
            Method::GET,
            &format!("{base}?per_page=3&page=2"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ns(&body), [2, 5, 1]);
    assert_eq!(body["meta"]["total"], 7);
    assert_eq!(body["meta"]["page"], 2);
    assert_eq!(body["meta"]["per_page"], 3);
    let (_, body, _) = app
        .call(
            Method::GET,
            &format!("{base}?per_page=3&page=3"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(ns(&body), [4]);
    // Sorted.
    let (_, body, _) = app
        .call(
            Method::GET,
            &format!("{base}?sort=-n&per_page=4"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(ns(&body), [6, 5, 4, 3]);
    let (status, _, _) = app
        .call(Method::GET, &format!("{base}?page=x"), Some(&admin), None)
        .await;
    assert_eq!(status, 400);

    // ?nested= on the record.
    let record = format!("/api/v1/flows/{id}");
    let (_, whole, _) = app.call(Method::GET, &record, Some(&admin), None).await;
    assert_eq!(whole["data"]["executions"].as_array().unwrap().len(), 7);
    let (_, none, _) = app
        .call(
            Method::GET,
            &format!("{record}?nested=none"),
            Some(&admin),
            None,
        )
        .await;
    assert!(none["data"].get("executions").is_none(), "{none}");
    assert_eq!(none["data"]["name"], "etl");
    assert!(none["meta"].get("nested_counts").is_none());
    let (_, count, _) = app
        .call(
            Method::GET,
            &format!("{record}?nested=count"),
            Some(&admin),
            None,
        )
        .await;
    assert!(count["data"].get("executions").is_none());
    assert_eq!(count["meta"]["nested_counts"], json!({"executions": 7}));
    let (_, newest, _) = app
        .call(
            Method::GET,
            &format!("{record}?nested=2"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        newest["data"]["executions"],
        json!(whole["data"]["executions"].as_array().unwrap()[5..])
    );
    assert_eq!(newest["meta"]["nested_counts"], json!({"executions": 7}));
    let (status, body, _) = app
        .call(
            Method::GET,
            &format!("{record}?nested=lots"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn nested_routes_hide_records_the_caller_may_not_see() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let id = flow(&app, &admin).await;
    let exec = post(
        &app,
        &admin,
        &format!("/api/v1/flows/{id}/executions"),
        json!({"status": "ok"}),
    )
    .await;
    let exec_id = exec["id"].as_str().unwrap();
    let user = app.user("someone@example.com", "member").await;
    let paths = [
        format!("/api/v1/flows/{id}/executions"),
        format!("/api/v1/flows/{id}/executions/{exec_id}"),
        format!("/api/v1/flows/{id}/executions/{exec_id}/logs"),
    ];
    for path in &paths {
        let (status, body, _) = app.call(Method::GET, path, Some(&user), None).await;
        assert_eq!(status, 404, "GET {path}: {body}");
    }
    let (status, body, _) = app
        .call(
            Method::POST,
            &paths[2],
            Some(&user),
            Some(json!({"line": "x"})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    // Nothing was written.
    let (_, body, _) = app.call(Method::GET, &paths[2], Some(&admin), None).await;
    assert_eq!(body["meta"]["total"], 0);
}

/// The change feed sends an item operation two levels deep as the item and its path,
/// live and when a client resumes from an earlier position.
#[tokio::test]
async fn the_feed_sends_second_level_items_with_their_path() {
    use bucketbase_testkit::sse::EventStream;
    use std::time::Duration;

    let app = spawn_app().await;
    let admin = app.admin().await;
    let id = flow(&app, &admin).await;
    let base = format!("/api/v1/flows/{id}/executions");
    let exec = post(&app, &admin, &base, json!({"status": "running"})).await;
    let exec_id = exec["id"].as_str().unwrap().to_string();
    let (_, page, _) = app.call(Method::GET, &base, Some(&admin), None).await;
    let since = page["meta"]["seq"].as_u64().unwrap();
    let url = app.at(&format!(
        "/api/v1/flows/events?record_id={id}&since={since}"
    ));
    let mut live = EventStream::open(&app.client, &url, &admin, None)
        .await
        .unwrap_or_else(|(status, body)| panic!("{status} {body}"));
    let logs = format!("{base}/{exec_id}/logs");
    let log = post(&app, &admin, &logs, json!({"line": "hello"})).await;
    let log_id = log["id"].as_str().unwrap();
    let expected_path = format!("executions/{exec_id}/logs/{log_id}");
    let event = live
        .next_within(Duration::from_secs(10))
        .await
        .expect("an event");
    assert_eq!(event.event, "item_added", "{event:?}");
    assert_eq!(event.data["item"]["path"], json!(expected_path));
    assert_eq!(event.data["item"]["item"]["line"], "hello");
    assert!(
        event.data.get("record").is_none(),
        "an item event carries the item only"
    );
    drop(live);

    // Resumed from before the append, the same event comes from the log.
    let mut replay = EventStream::open(&app.client, &url, &admin, None)
        .await
        .unwrap_or_else(|(status, body)| panic!("{status} {body}"));
    let again = replay
        .next_within(Duration::from_secs(10))
        .await
        .expect("a replayed event");
    assert_eq!(again.id, event.id);
    assert_eq!(again.data["item"]["path"], json!(expected_path));
    assert_eq!(again.data["item"]["item"]["line"], "hello");
}
