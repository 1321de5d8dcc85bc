//! The concurrency the seed's services lost writes under (677 of 800 creates missing
//! from `index.json`, 689 of 800 comment appends lost), through HTTP: every acknowledged
//! write is there afterwards, in the API and in the materialized view.

use std::collections::BTreeSet;

use bucketbase_testkit::process::create_concurrently;
use serde_json::{Value, json};

use crate::support::{TestApp, id, spawn};

/// Posts `writers * each` bodies to `path` concurrently, `writers` clients at a time;
/// every answer must be 201. Returns the created items / records (`data`).
async fn post_concurrently(
    app: &TestApp,
    path: &str,
    writers: usize,
    each: usize,
    body: impl Fn(usize, usize) -> Value + Clone + Send + 'static,
) -> Vec<Value> {
    create_concurrently(&[app.at(path)], &app.admin.0, writers, each, body).await
}

fn ids(values: &[Value]) -> BTreeSet<String> {
    values.iter().map(id).collect()
}

#[tokio::test]
async fn sixteen_clients_times_fifty_creates_are_all_in_the_api_and_in_index_json() {
    let app = spawn().await;
    let created = post_concurrently(
        &app,
        "/api/v1/knowledge",
        16,
        50,
        |w, i| json!({"title": format!("note {w}-{i}"), "content": "x"}),
    )
    .await;
    let created = ids(&created);
    assert_eq!(created.len(), 800);
    let (s, b) = app
        .get("/api/v1/knowledge?per_page=1000", &app.admin.0)
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["meta"]["total"], 800);
    assert_eq!(ids(b["data"].as_array().unwrap()), created);
    // The view, once it has caught up with the log.
    app.db.flush_view().await;
    let index: Value = serde_json::from_slice(
        &std::fs::read(app.dir.path().join("knowledge/index.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(index["count"], 800);
    let rows: Vec<Value> = match &index["records"] {
        Value::Array(a) => a.clone(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                let mut v = v.clone();
                v["id"] = json!(k);
                v
            })
            .collect(),
        other => panic!("records: {other}"),
    };
    assert_eq!(ids(&rows), created);
}

#[tokio::test]
async fn sixteen_clients_times_fifty_comments_on_one_task_are_all_kept() {
    let app = spawn().await;
    let task = app
        .create(&app.admin.0, "tasks", json!({"title": "Busy task"}))
        .await;
    let path = format!("/api/v1/tasks/{}/comments", id(&task));
    let comments = post_concurrently(
        &app,
        &path,
        16,
        50,
        |w, i| json!({"text": format!("comment {w}-{i}")}),
    )
    .await;
    // Item lists are pages (at most 1,000 items each).
    let (s, b) = app
        .get(&format!("{path}?per_page=1000"), &app.admin.0)
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["meta"]["total"], 800);
    let stored = b["data"].as_array().unwrap();
    assert_eq!(stored.len(), 800);
    assert_eq!(ids(stored), ids(&comments));
}

#[tokio::test]
async fn logs_appended_by_eight_workers_survive_a_rename_of_their_workflow() {
    let app = spawn().await;
    let token = app.admin.0.clone();
    let workflow = app
        .create(&token, "workflows", json!({"name": "Nightly sync"}))
        .await;
    let w = id(&workflow);
    let mut executions = Vec::new();
    for _ in 0..4 {
        let (s, b) = app
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/workflows/{w}/executions"),
                &token,
                Some(json!({"status": "running"})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        executions.push(id(&b["data"]));
    }
    // Another client renames the workflow over and over meanwhile.
    let renamer = {
        let (client, url, token) = (
            app.client.clone(),
            app.at(&format!("/api/v1/workflows/{w}")),
            token.clone(),
        );
        tokio::spawn(async move {
            for n in 0..40 {
                let r = client
                    .patch(&url)
                    .bearer_auth(&token)
                    .json(&json!({"name": format!("Nightly sync v{n}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        })
    };
    let mut workers = Vec::new();
    for worker in 0..8 {
        let (client, token) = (app.client.clone(), token.clone());
        let urls: Vec<String> = executions
            .iter()
            .map(|e| app.at(&format!("/api/v1/workflows/{w}/executions/{e}/logs")))
            .collect();
        workers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..50 {
                let r = client
                    .post(&urls[i % urls.len()])
                    .bearer_auth(&token)
                    .json(&json!({"message": format!("worker {worker} line {i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                let b: Value = r.json().await.unwrap();
                ids.push(id(&b["data"]));
            }
            ids
        }));
    }
    let mut appended = BTreeSet::new();
    for worker in workers {
        appended.extend(worker.await.unwrap());
    }
    renamer.await.unwrap();
    assert_eq!(appended.len(), 400);
    let (_, b) = app.get(&format!("/api/v1/workflows/{w}"), &token).await;
    assert_eq!(
        b["data"]["name"], "Nightly sync v39",
        "the last rename holds"
    );
    let stored: BTreeSet<String> = b["data"]["executions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["logs"].as_array().unwrap().iter().map(id))
        .collect();
    assert_eq!(stored, appended, "every acknowledged line is there");
    // The nested route reads them back per execution (the generic API, two levels deep).
    let (s, b) = app
        .get(
            &format!(
                "/api/v1/workflows/{w}/executions/{}/logs?per_page=1000",
                executions[0]
            ),
            &token,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let to_first = 8 * (0..50).filter(|i| i % executions.len() == 0).count();
    assert_eq!(b["data"].as_array().unwrap().len(), to_first);
    // Another owner reaches none of it.
    let (s, _) = app
        .get(
            &format!("/api/v1/workflows/{w}/executions/{}/logs", executions[0]),
            &app.other.0,
        )
        .await;
    assert_eq!(s, 404);
}
