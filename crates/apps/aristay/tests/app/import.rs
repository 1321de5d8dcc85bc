//! Booking import through HTTP: a 1,000-row workbook with 3 bad rows, dry run, both
//! modes, re-import, saved templates, and files that are not workbooks.

use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::automation::templates;
use crate::support::*;
use crate::workbook::{self, Date};

const IMPORT: &str = "/api/v1/aristay/bookings/import";

fn form(bytes: Vec<u8>, name: &str, fields: &[(&str, String)]) -> Form {
    let mut form = Form::new().part(
        "file",
        Part::bytes(bytes)
            .file_name(name.to_string())
            .mime_str("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
            .unwrap(),
    );
    for (k, v) in fields {
        form = form.text(k.to_string(), v.clone());
    }
    form
}

fn inline<'a>(extra: &[(&'a str, &str)]) -> Vec<(&'a str, String)> {
    let mut fields = vec![("mapping", workbook::mapping().to_string())];
    fields.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    fields
}

/// Uploads `bytes` as the manager, with the inline mapping and `extra` form fields.
async fn import_inline(app: &TestApp, bytes: Vec<u8>, extra: &[(&str, &str)]) -> (u16, Value) {
    app.upload(
        IMPORT,
        &app.manager,
        form(bytes, "export.xlsx", &inline(extra)),
    )
    .await
}

/// 50 properties, and a 1,000-row workbook whose rows 101, 502 and 903 (Excel numbering:
/// the header is row 1) are bad: a text date that is no date, an unknown property, and a
/// stay overlapping another row of the same file.
async fn setup(app: &TestApp) -> Vec<u8> {
    for p in 1..=50 {
        app.property(&workbook::property_name(p)).await;
    }
    let mut rows = workbook::rows(1000, 50);
    rows[99].check_in = Date::Text("31/02/2026".into());
    rows[500].property = "Nowhere Cottage".into();
    // Row 903 (index 901) takes the dates of index 851, at the same property (901 % 50 == 851 % 50).
    rows[901].check_in = rows[851].check_in.clone();
    rows[901].check_out = rows[851].check_out.clone();
    workbook::xlsx(&rows)
}

fn error_rows(report: &Value) -> Vec<(u64, String)> {
    report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap(),
                e["code"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn expected_errors() -> Vec<(u64, String)> {
    vec![
        (101, "invalid_date".into()),
        (502, "unknown_property".into()),
        (903, "exclusion_violation".into()),
    ]
}

#[tokio::test]
async fn a_thousand_rows_with_three_bad_ones() {
    let app = spawn().await;
    templates(&app).await;
    let bytes = setup(&app).await;

    // Dry run: exactly the three bad rows, nothing written but the log.
    let (s, body) = import_inline(
        &app,
        bytes.clone(),
        &[("dry_run", "true"), ("mode", "partial")],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let report = &body["data"];
    assert_eq!(report["status"], "dry_run");
    assert_eq!(
        error_rows(report),
        expected_errors(),
        "{}",
        report["errors"]
    );
    assert_eq!(
        report["counts"],
        json!({"created": 997, "updated": 0, "unchanged": 0, "failed": 3, "skipped": 0})
    );
    assert_eq!(report["results"].as_array().unwrap().len(), 1000);
    let e = &report["errors"][0];
    assert_eq!(
        (e["column"].as_str(), e["field"].as_str()),
        (Some("Arrival"), Some("check_in")),
        "{e}"
    );
    assert_eq!(
        report["errors"][2]["column"], "Arrival",
        "{}",
        report["errors"][2]
    );
    assert!(app.list("bookings", "").await.is_empty());
    let log = app.list("booking_import_logs", "").await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["status"], "dry_run");

    // All or nothing: refused, nothing written.
    let (s, body) = import_inline(&app, bytes.clone(), &[]).await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["error"]["code"], "validation_failed");
    let details = &body["error"]["details"];
    assert_eq!(error_rows(details), expected_errors());
    assert_eq!(details["counts"]["skipped"], 997);
    assert!(app.list("bookings", "").await.is_empty());
    assert!(app.list("tasks", "").await.is_empty());

    // Partial: the 997 good rows, each with its two automatic tasks.
    let (s, body) = import_inline(&app, bytes.clone(), &[("mode", "partial")]).await;
    assert_eq!(s, 201, "{body}");
    let report = &body["data"];
    assert_eq!(report["status"], "partial");
    assert_eq!(error_rows(report), expected_errors());
    assert_eq!(report["counts"]["created"], 997);
    let log_id = report["log_id"].as_str().unwrap().to_string();
    assert_eq!(app.count("bookings", "").await, 997);
    // The inspection template wants 3+ nights from airbnb: every stay is 3 nights.
    assert_eq!(app.count("tasks", "").await, 1994);
    let (_, logrec) = app
        .call(
            Method::GET,
            &format!("/api/v1/booking_import_logs/{log_id}"),
            &app.manager,
            None,
        )
        .await;
    assert_eq!(logrec["data"]["counts"]["created"], 997, "{logrec}");
    assert_eq!(logrec["data"]["errors"].as_array().unwrap().len(), 3);
    // Every audit event of the import carries its source; the tasks' carry automation's.
    let events = |source: &str| {
        let app = &app;
        let filter = bucketbase_engine::collection::audit::AuditFilter {
            source: Some(source.to_string()),
            limit: usize::MAX,
            ..Default::default()
        };
        async move {
            bucketbase_engine::collection::audit::query(
                app.db.store(),
                app.db.snapshot().seq(),
                &filter,
            )
            .await
            .unwrap()
        }
    };
    let of_import = events(&format!("import:{log_id}")).await;
    let per_collection =
        |events: &[Value], c: &str| events.iter().filter(|e| e["collection"] == c).count();
    assert_eq!(per_collection(&of_import, "bookings"), 997);
    assert_eq!(per_collection(&of_import, "booking_import_logs"), 1);
    assert_eq!(
        of_import.len(),
        998,
        "nothing else is attributed to the import"
    );
    let automation = events("automation").await;
    assert_eq!(per_collection(&automation, "tasks"), 1994);
    assert_eq!(per_collection(&automation, "auto_task_records"), 1994);
    let (s, audit) = app
        .call(
            Method::GET,
            &format!("/api/v1/audit?source=import:{log_id}&collection=bookings&limit=1000"),
            &app.admin,
            None,
        )
        .await;
    assert_eq!(
        (s, audit["data"].as_array().map(Vec::len)),
        (200, Some(997))
    );

    // Again: nothing new, the rest unchanged, and no duplicate task.
    let (s, body) = import_inline(&app, bytes, &[("mode", "partial")]).await;
    assert_eq!(s, 201, "{body}");
    let counts = &body["data"]["counts"];
    assert_eq!(counts["created"], 0, "{counts}");
    assert_eq!(counts["unchanged"], 997, "{counts}");
    assert_eq!(app.count("bookings", "").await, 997);
    assert_eq!(app.count("tasks", "").await, 1994);
}

#[tokio::test]
async fn saved_templates_updates_and_automations_off() {
    let app = spawn().await;
    templates(&app).await;
    for p in 1..=2 {
        app.property(&workbook::property_name(p)).await;
    }
    let template = app
        .create(
            "booking_import_templates",
            json!({"name": "Airbnb export", "mapping": workbook::mapping()}),
        )
        .await;
    let mut rows = workbook::rows(4, 2);
    let with_template = |bytes: Vec<u8>, extra: &[(&str, String)]| {
        let mut fields = vec![("template_id", id(&template))];
        fields.extend(extra.iter().cloned());
        form(bytes, "airbnb.xlsx", &fields)
    };
    let (s, body) = app
        .upload(
            IMPORT,
            &app.manager,
            with_template(
                workbook::xlsx(&rows),
                &[("run_automations", "false".into())],
            ),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["data"]["counts"]["created"], 4);
    assert!(
        app.list("tasks", "").await.is_empty(),
        "automations were off"
    );

    // A changed guest name updates that booking only.
    rows[1].guest = "Renamed".into();
    let (s, body) = app
        .upload(
            IMPORT,
            &app.manager,
            with_template(workbook::xlsx(&rows), &[]),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(
        body["data"]["counts"],
        json!({"created": 0, "updated": 1, "unchanged": 3, "failed": 0, "skipped": 0})
    );
    let renamed = app.list("bookings", "guest_name=Renamed").await;
    assert_eq!(renamed.len(), 1);
    assert_eq!(renamed[0]["external_id"], "HM00001");
}

#[tokio::test]
async fn files_that_are_not_workbooks_and_bad_requests_are_refused() {
    let app = spawn().await;
    app.property(&workbook::property_name(1)).await;
    let html = b"<!doctype html><html><body><script>alert(1)</script></body></html>".to_vec();
    let cases: Vec<(Form, u16, &str)> = vec![
        (form(html, "bookings.xlsx", &inline(&[])), 415, "not_xlsx"),
        (form(workbook::zip_bomb(120), "bookings.xlsx", &inline(&[])), 413, "zip_bomb"),
        (form(b"PK\x03\x04 truncated".to_vec(), "b.xlsx", &inline(&[])), 400, "invalid_xlsx"),
        (
            form(workbook::xlsx(&workbook::rows(2, 1)), "b.xlsx", &[("mapping", json!({"columns": {"property": "Nope", "check_in": "Arrival", "check_out": "Departure", "external_id": "Confirmation code"}}).to_string())]),
            400,
            "invalid_mapping",
        ),
        (form(workbook::xlsx(&workbook::rows(2, 1)), "b.xlsx", &[("mapping", "{not json".into())]), 400, "invalid_mapping"),
        (form(workbook::xlsx(&workbook::rows(2, 1)), "b.xlsx", &[]), 400, "bad_request"),
        (
            form(workbook::xlsx(&workbook::rows(2, 1)), "b.xlsx", &[("template_id", "0190a0a0-0000-7000-8000-000000000000".into())]),
            404,
            "not_found",
        ),
        (form(workbook::xlsx(&workbook::rows(2, 1)), "b.xlsx", &inline(&[("mode", "some")])), 400, "bad_request"),
    ];
    for (i, (form, status, code)) in cases.into_iter().enumerate() {
        let (s, body) = app.upload(IMPORT, &app.manager, form).await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (status, Some(code)),
            "case {i}: {body}"
        );
    }
    // Nothing but JSON envelopes, and no booking written.
    assert!(app.list("bookings", "").await.is_empty());
}

/// The newest log entry file, in bytes.
async fn newest_entry_len(app: &TestApp) -> usize {
    use object_store::ObjectStoreExt;
    let seq = app.db.snapshot().seq();
    let path = bucketbase_engine::store::log_path(seq);
    let got = app.db.store().get(&path).await.unwrap();
    got.bytes().await.unwrap().len()
}

/// Issue 9, scaled down: a 5,000-character shared string in 5,000 cells. The dry run's
/// report, import log and log entry stay small; errors past the cap are counted.
#[tokio::test]
async fn a_hostile_workbook_leaves_a_small_log() {
    let app = spawn().await;
    app.property(&workbook::property_name(1)).await;
    let bytes = workbook::hostile(5000, 5000);
    assert!(bytes.len() < 200_000, "the file itself is small");
    let (s, body) = import_inline(&app, bytes, &[("dry_run", "true")]).await;
    assert_eq!(
        s,
        200,
        "{}",
        &body.to_string()[..2000.min(body.to_string().len())]
    );
    // What the issue measured first: the stored import log and the log entry.
    let log = app.list("booking_import_logs", "").await;
    assert_eq!(log.len(), 1);
    let stored = serde_json::to_string(&log[0]).unwrap().len();
    assert!(stored < 256 * 1024, "the import log is {stored} bytes");
    let entry = newest_entry_len(&app).await;
    assert!(entry < 256 * 1024, "the log entry is {entry} bytes");

    let report = &body["data"];
    assert_eq!(report["counts"]["failed"], 5000);
    let errors = report["errors"].as_array().unwrap();
    let truncated = report["errors_truncated"].as_u64().unwrap() as usize;
    assert!(!errors.is_empty() && truncated > 0, "{truncated}");
    assert_eq!(
        errors.len() + truncated,
        5000,
        "every error is shown or counted"
    );
    assert_eq!(log[0]["errors_truncated"].as_u64(), Some(truncated as u64));
    assert_eq!(errors[0]["code"], "text_too_long", "{}", errors[0]);
    for e in errors {
        assert!(e["message"].as_str().unwrap().chars().count() <= 600, "{e}");
    }
}

/// A record whose own fields pass `max_record_bytes` is refused through the API.
#[tokio::test]
async fn a_record_over_the_record_limit_is_413() {
    let app = spawn_with(|o| o.max_record_bytes = 4096).await;
    let (s, body) = app
        .call(
            Method::POST,
            "/api/v1/properties",
            &app.manager,
            Some(json!({"name": "Big", "notes": "n".repeat(5000)})),
        )
        .await;
    assert_eq!(s, 413, "{body}");
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "too_large");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("properties") && message.contains("4096"),
        "{message}"
    );
    assert!(app.list("properties", "").await.is_empty());
    app.create(
        "properties",
        json!({"name": "Small", "notes": "n".repeat(3000)}),
    )
    .await;

    // In an import, a row whose booking would be too large is a row error like any other.
    app.property(&workbook::property_name(1)).await;
    let mut rows = workbook::rows(3, 1);
    rows[1].guest = "g".repeat(4000);
    // The Guest column goes to `notes` (up to 10,000 characters; `guest_name` has 200).
    let mut mapping = workbook::mapping();
    mapping["columns"]["notes"] = mapping["columns"]["guest_name"].take();
    mapping["columns"]
        .as_object_mut()
        .unwrap()
        .remove("guest_name");
    let form = form(
        workbook::xlsx(&rows),
        "b.xlsx",
        &[("mapping", mapping.to_string())],
    );
    let (s, body) = app.upload(IMPORT, &app.manager, form).await;
    assert_eq!(s, 422, "{body}");
    let details = &body["error"]["details"];
    assert_eq!(
        error_rows(details),
        [(3, "too_large".to_string())],
        "{details}"
    );
    assert!(app.list("bookings", "").await.is_empty());
}

/// An all-or-nothing import that would not fit in one log entry is refused up front,
/// saying how many rows fit; that many rows then import.
#[tokio::test]
async fn an_import_over_the_entry_limit_is_413_with_the_rows_that_fit() {
    let app = spawn_with(|o| o.max_entry_bytes = 256 * 1024).await;
    templates(&app).await;
    for p in 1..=10 {
        app.property(&workbook::property_name(p)).await;
    }
    let rows = workbook::rows(400, 10);
    let (s, body) = import_inline(&app, workbook::xlsx(&rows), &[]).await;
    assert_eq!(s, 413, "{body}");
    assert_eq!(body["error"]["code"], "too_large");
    let details = &body["error"]["details"];
    assert_eq!(details["rows"], 400, "{details}");
    let fit = details["rows_fit"].as_u64().unwrap() as usize;
    assert!((1..400).contains(&fit), "{details}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("first {fit} rows fit")),
        "{message}"
    );
    assert!(app.list("bookings", "").await.is_empty(), "nothing written");
    assert!(app.list("booking_import_logs", "").await.is_empty());

    let (s, body) = import_inline(&app, workbook::xlsx(&rows[..fit]), &[]).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["data"]["counts"]["created"], fit as u64);
    assert!(newest_entry_len(&app).await <= 256 * 1024);
}

/// A form flag means what the same flag means in a query (decision 0015): an empty
/// `dry_run` is a dry run (it used to import for real), and a value that is no flag is a
/// 400 in the envelope.
#[tokio::test]
async fn an_empty_flag_is_true_and_a_bad_flag_is_a_bad_request() {
    let app = spawn().await;
    app.property(&workbook::property_name(1)).await;
    let bytes = workbook::xlsx(&workbook::rows(3, 1));

    let (s, body) = import_inline(&app, bytes.clone(), &[("dry_run", "")]).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["status"], "dry_run");
    assert!(app.list("bookings", "").await.is_empty());

    for bad in [("dry_run", "maybe"), ("run_automations", "2")] {
        let (s, body) = import_inline(&app, bytes.clone(), &[bad]).await;
        assert_eq!(s, 400, "{bad:?}: {body}");
        assert_eq!(body["success"], false);
        assert_eq!(body["error"]["code"], "bad_request");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(bad.0),
            "{body}"
        );
        assert!(body["meta"]["request_id"].is_string(), "{body}");
    }
    assert!(app.list("bookings", "").await.is_empty());
}
