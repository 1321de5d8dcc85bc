//! Reverting a booking import through `POST /api/v1/audit/revert`: the 1,000-row
//! import (its 2,000 automatic tasks and ledger rows with it) undone as one changeset,
//! conflicts refused unless forced, the revert reverted, a re-import after a revert, and
//! a revert racing with writers on other records.

use std::collections::BTreeMap;

use bucketbase_engine::Database;
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::automation::templates;
use crate::support::*;
use crate::workbook;

const IMPORT: &str = "/api/v1/aristay/bookings/import";
const REVERT: &str = "/api/v1/audit/revert";

/// The live records of every user collection but the import logs, without the fields
/// every write touches.
fn live(db: &Database) -> BTreeMap<String, Value> {
    let state = db.snapshot();
    let mut out = BTreeMap::new();
    for (c, coll) in state.collections() {
        if c.is_system() || c.as_str() == "booking_import_logs" {
            continue;
        }
        for (id, doc) in coll.docs.iter() {
            let mut v = doc.value();
            if !v["deleted_at"].is_null() {
                continue;
            }
            let map = v.as_object_mut().unwrap();
            map.remove("updated_at");
            map.remove("updated_by");
            out.insert(format!("{c}/{id}"), v);
        }
    }
    out
}

fn count(live: &BTreeMap<String, Value>, collection: &str) -> usize {
    let prefix = format!("{collection}/");
    live.keys().filter(|k| k.starts_with(&prefix)).count()
}

/// 50 properties, the two templates; returns the workbook of 1,000 clean rows.
async fn setup(app: &TestApp) -> Vec<u8> {
    templates(app).await;
    for p in 1..=50 {
        app.property(&workbook::property_name(p)).await;
    }
    workbook::xlsx(&workbook::rows(1000, 50))
}

/// Imports `bytes` as the manager (all or nothing); returns the import log id.
async fn import(app: &TestApp, bytes: Vec<u8>) -> String {
    let form = Form::new()
        .part(
            "file",
            Part::bytes(bytes)
                .file_name("export.xlsx")
                .mime_str("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
                .unwrap(),
        )
        .text("mapping", workbook::mapping().to_string());
    let (s, body) = app.upload(IMPORT, &app.manager, form).await;
    assert_eq!(s, 201, "{}", body["error"]);
    assert_eq!(
        body["data"]["status"], "committed",
        "{}",
        body["data"]["errors"]
    );
    body["data"]["log_id"].as_str().unwrap().to_string()
}

async fn revert(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    app.call(Method::POST, REVERT, token, Some(body)).await
}

async fn import_log(app: &TestApp, id: &str) -> Value {
    let (s, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/booking_import_logs/{id}"),
            &app.manager,
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    body["data"].clone()
}

#[tokio::test]
async fn an_import_reverted_and_the_revert_reverted() {
    let app = spawn().await;
    let bytes = setup(&app).await;
    let before = live(&app.db);
    let log_id = import(&app, bytes.clone()).await;
    let imported = live(&app.db);
    assert_eq!(count(&imported, "bookings"), 1000);
    assert_eq!(count(&imported, "tasks"), 2000);
    assert_eq!(count(&imported, "auto_task_records"), 2000);
    let source = format!("import:{log_id}");

    // Staff may not; a bad body is a 400.
    let (staff, _) = app.user("staff@example.com", "staff").await;
    let (s, body) = revert(&app, &staff, json!({"source": source})).await;
    assert_eq!(s, 403, "{body}");
    let (s, body) = revert(&app, &app.manager, json!({"source": source, "seq": 3})).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    let (s, _) = revert(&app, &app.manager, json!({"source": "import:unknown"})).await;
    assert_eq!(s, 404);

    // The dry run shows every change and writes nothing.
    let (s, body) = revert(
        &app,
        &app.manager,
        json!({"source": source, "dry_run": true}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let changes = body["data"]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 5000);
    let mut actions = BTreeMap::new();
    for c in changes {
        let key = format!(
            "{} {}",
            c["collection"].as_str().unwrap(),
            c["action"].as_str().unwrap()
        );
        *actions.entry(key).or_insert(0) += 1;
    }
    // Created by the import: soft-deleted, or purged where there is no soft delete.
    let expected: BTreeMap<String, i32> = [
        ("auto_task_records purged", 2000),
        ("bookings deleted", 1000),
        ("tasks deleted", 2000),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect();
    assert_eq!(actions, expected);
    assert_eq!(body["data"]["transactions"].as_array().unwrap().len(), 1);
    assert_eq!(live(&app.db), imported);

    // The revert: what was there before the import, and the log says so.
    let (s, body) = revert(&app, &app.manager, json!({"source": source})).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["revert_source"], format!("revert:{source}"));
    assert_eq!(live(&app.db), before);
    let log = import_log(&app, &log_id).await;
    assert_eq!(log["status"], "reverted");
    assert_eq!(log["reverted"]["source"], format!("revert:{source}"));
    let (s, audit) = app
        .call(
            Method::GET,
            &format!("/api/v1/audit?source=revert:{source}&limit=1000"),
            &app.admin,
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(audit["data"].as_array().unwrap().len(), 1000);

    // Reverting the revert brings the import back, and its log's status.
    let (s, body) = revert(
        &app,
        &app.manager,
        json!({"source": format!("revert:{source}")}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(live(&app.db), imported);
    let log = import_log(&app, &log_id).await;
    assert_eq!(log["status"], "committed");
    assert!(log["reverted"].is_null(), "{log}");
}

#[tokio::test]
async fn a_later_change_is_a_conflict_and_an_import_can_follow_its_revert() {
    let app = spawn().await;
    let bytes = setup(&app).await;
    let before = live(&app.db);
    let log_id = import(&app, bytes.clone()).await;
    let source = format!("import:{log_id}");
    let booking = app.list("bookings", "per_page=1").await[0].clone();
    let (s, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/bookings/{}", id(&booking)),
            &app.admin,
            Some(json!({"guest_name": "Someone Else"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");

    let (s, body) = revert(&app, &app.manager, json!({"source": source})).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (409, Some("revert_conflict")),
        "{body}"
    );
    let conflicts = body["error"]["details"]["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0]["record_id"], id(&booking));
    assert_eq!(conflicts[0]["fields"], json!(["guest_name"]));
    assert_eq!(conflicts[0]["source"], "api");
    let (s, body) = revert(
        &app,
        &app.manager,
        json!({"source": source, "dry_run": true}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(body["data"]["conflicts"].as_array().unwrap().len(), 1);

    let (s, body) = revert(&app, &app.manager, json!({"source": source, "force": true})).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(live(&app.db), before);

    // The same file again: new bookings, new tasks.
    import(&app, bytes).await;
    let again = live(&app.db);
    assert_eq!(count(&again, "bookings"), 1000);
    assert_eq!(count(&again, "tasks"), 2000);
}

#[tokio::test]
async fn a_revert_racing_with_writers_loses_nothing() {
    let app = spawn().await;
    let bytes = setup(&app).await;
    let log_id = import(&app, bytes).await;
    let source = format!("import:{log_id}");
    let app = std::sync::Arc::new(app);
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..20 {
                    ids.push(app.property(&format!("Writer {w} house {i}")).await);
                }
                ids
            })
        })
        .collect();
    let (s, body) = revert(&app, &app.manager, json!({"source": source})).await;
    assert_eq!(s, 200, "{body}");
    let mut written = Vec::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    let now = live(&app.db);
    assert_eq!(count(&now, "bookings"), 0);
    assert_eq!(count(&now, "tasks"), 0);
    for id in &written {
        assert!(now.contains_key(&format!("properties/{id}")), "{id} lost");
    }
    assert_eq!(count(&now, "properties"), 50 + 16 * 20);
}
