//! The workloads of issue 15's table, each over HTTP on one keep-alive connection
//! (sequential requests) unless it says otherwise.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bucketbase_engine::{CollectionName, TxnMeta};
use bucketbase_testkit::aristay::{TestApp, id, spawn_with};
use bucketbase_testkit::workbook;
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::stats::ms;

pub const PROPERTIES: usize = 50;
pub const IMPORTED: usize = 1000;
pub const NOTES: usize = 10_000;

/// The data set: 50 properties, 2 active templates, 1,000 imported bookings
/// (2,000 automatic tasks). Returns the app, the properties, the import's time and its
/// changeset source.
pub struct Dataset {
    pub app: Arc<TestApp>,
    pub properties: Vec<String>,
    pub bookings: Vec<String>,
    pub import_ms: f64,
    pub import_source: String,
    /// Beside the root, for [`disk_floor`] (kept, like the root, until the bench ends).
    pub scratch: tempfile::TempDir,
}

pub async fn dataset() -> Dataset {
    // Variations, to see what the defaults cost: BENCH_VIEW=0 turns the view off,
    // BENCH_CHECKPOINT_EVERY sets the log entries between checkpoints (0 = none).
    let app = spawn_with(|o| {
        if std::env::var("BENCH_VIEW").is_ok_and(|v| v == "0") {
            o.materialize = false;
        }
        if let Some(every) = std::env::var("BENCH_CHECKPOINT_EVERY")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            o.checkpoint_every = every;
        }
    })
    .await;
    two_templates(&app).await;
    let mut properties = Vec::with_capacity(PROPERTIES);
    for p in 1..=PROPERTIES {
        properties.push(app.property(&workbook::property_name(p)).await);
    }
    let bytes = workbook::xlsx(&workbook::rows(IMPORTED, PROPERTIES));
    let form = Form::new()
        .part("file", Part::bytes(bytes).file_name("export.xlsx"))
        .text("mapping", workbook::mapping().to_string());
    // The view of the set-up is written first, so only the import is measured.
    app.db.flush_view().await;
    let started = Instant::now();
    let (status, body) = app
        .upload("/api/v1/aristay/bookings/import", &app.manager, form)
        .await;
    let import_ms = ms(started.elapsed());
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["counts"]["created"], IMPORTED);
    print_entry_size(&app).await;
    // Its 5,000 view files are written in the background: let them finish first.
    app.db.flush_view().await;
    assert_eq!(app.count("tasks", "").await, 2 * IMPORTED as u64);
    let bookings = app
        .list("bookings", "")
        .await
        .iter()
        .map(id)
        .collect::<Vec<_>>();
    let import_source = format!(
        "import:{}",
        body["data"]["log_id"].as_str().unwrap_or_default()
    );
    Dataset {
        app: Arc::new(app),
        properties,
        bookings,
        import_ms,
        import_source,
        scratch: tempfile::tempdir().expect("scratch directory"),
    }
}

/// The size of the import's log entry (the last one written) per record it writes.
async fn print_entry_size(app: &TestApp) {
    use bucketbase_engine::log::{LogEntry, read_entry};
    let seq = app.db.snapshot().seq();
    let Ok(Some(entry)) = read_entry(app.db.store(), seq).await else {
        return;
    };
    let records: usize = entry.body.txns.iter().map(|t| t.ops.len()).sum();
    let events: usize = entry.body.txns.iter().map(|t| t.audit.len()).sum();
    let audit: usize = entry
        .body
        .txns
        .iter()
        .flat_map(|t| t.audit.iter())
        .map(|e| e.get().len())
        .sum();
    let (_, bytes) = LogEntry::seal(entry.body);
    println!(
        "import log entry: {} bytes, {records} records ({:.0} bytes a record), {events} audit events ({:.0} bytes an event)",
        bytes.len(),
        bytes.len() as f64 / records.max(1) as f64,
        audit as f64 / events.max(1) as f64,
    );
}

async fn two_templates(app: &TestApp) {
    app.create(
        "auto_task_templates",
        json!({"name": "Turnover clean", "trigger": "check_out", "task_type": "cleaning",
               "title_pattern": "Clean {property.name} after {booking.guest_name}"}),
    )
    .await;
    app.create(
        "auto_task_templates",
        json!({"name": "Inspection", "trigger": "check_in", "offset_days": -1, "task_type": "inspection",
               "title_pattern": "Inspect {property.name}"}),
    )
    .await;
}

/// Sequential timings of `n` calls of `call(i)`, sorted, and how many answered
/// something other than `expected`.
pub async fn sequential<F, Fut>(n: usize, expected: u16, mut call: F) -> (Vec<Duration>, usize)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = (u16, Value)>,
{
    let mut out = Vec::with_capacity(n);
    let mut unexpected = 0;
    for i in 0..n {
        let started = Instant::now();
        let (status, body) = call(i).await;
        out.push(started.elapsed());
        if status != expected {
            unexpected += 1;
            eprintln!("unexpected {status}: {body}");
        }
    }
    out.sort();
    (out, unexpected)
}

pub async fn get_by_id(d: &Dataset, n: usize) -> (Vec<Duration>, usize) {
    let app = &d.app;
    sequential(n, 200, |i| {
        // A fixed stride through the bookings: every one is read, in no particular order.
        let path = format!(
            "/api/v1/bookings/{}",
            d.bookings[(i * 7919) % d.bookings.len()]
        );
        async move { app.call(Method::GET, &path, &app.manager, None).await }
    })
    .await
}

/// A booking overlapping an imported stay (the workbook's first stay of each property
/// is 2026-01-11 to 2026-01-14).
pub async fn conflicting(d: &Dataset, n: usize) -> (Vec<Duration>, usize) {
    let app = &d.app;
    sequential(n, 409, |i| {
        let body = json!({"property_id": d.properties[i % PROPERTIES],
                          "check_in": "2026-01-12", "check_out": "2026-01-13"});
        async move {
            app.call(Method::POST, "/api/v1/bookings", &app.manager, Some(body))
                .await
        }
    })
    .await
}

/// Creates `n` bookings (each with its 2 automatic tasks): one night, after the
/// imported stays, spread over the properties. Returns the timings and the ids.
pub async fn create_bookings(
    d: &Dataset,
    n: usize,
    round: usize,
) -> (Vec<Duration>, usize, Vec<String>) {
    let app = &d.app;
    let first = chrono::NaiveDate::from_ymd_opt(2028 + round as i32, 1, 1).unwrap();
    let ids = parking_lot::Mutex::new(Vec::with_capacity(n));
    let (times, unexpected) = sequential(n, 201, |i| {
        let day = first + chrono::Duration::days(2 * (i / PROPERTIES) as i64);
        let body = json!({"property_id": d.properties[i % PROPERTIES],
                          "check_in": day.to_string(),
                          "check_out": (day + chrono::Duration::days(1)).to_string(),
                          "guest_name": format!("Guest {i}")});
        let ids = &ids;
        async move {
            let (s, b) = app
                .call(Method::POST, "/api/v1/bookings", &app.manager, Some(body))
                .await;
            if s == 201 {
                ids.lock().push(id(&b["data"]));
            }
            (s, b)
        }
    })
    .await;
    (times, unexpected, ids.into_inner())
}

pub async fn soft_delete(d: &Dataset, ids: &[String]) -> (Vec<Duration>, usize) {
    let app = &d.app;
    sequential(ids.len(), 200, |i| {
        let path = format!("/api/v1/bookings/{}", ids[i]);
        async move { app.call(Method::DELETE, &path, &app.manager, None).await }
    })
    .await
}

/// 64 clients × 5 overlapping attempts on a fresh property: wall time and 5xx answers.
pub async fn burst(d: &Dataset, round: usize) -> (f64, usize) {
    let barn = d.app.property(&format!("Barn {round}")).await;
    let started = Instant::now();
    let mut clients = Vec::new();
    for c in 0..64u32 {
        let (app, barn) = (d.app.clone(), barn.clone());
        clients.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for a in 0..5u32 {
                let start = (c * 7 + a * 13) % 30 + 1;
                let body = json!({"property_id": barn, "check_in": format!("2026-09-{start:02}"),
                                  "check_out": format!("2026-10-{:02}", (start % 28) + 1)});
                statuses.push(
                    app.call(Method::POST, "/api/v1/bookings", &app.manager, Some(body))
                        .await
                        .0,
                );
            }
            statuses
        }));
    }
    let mut fivexx = 0;
    for c in clients {
        fivexx += c.await.unwrap().into_iter().filter(|s| *s >= 500).count();
    }
    (ms(started.elapsed()), fivexx)
}

/// Defines `notes` and seeds 10,000 through the engine (1,000 a transaction); the view
/// of the seed is written before anything is measured.
pub async fn seed_notes(d: &Dataset) {
    let app = &d.app;
    let def = json!({
        "name": "notes", "soft_delete": true, "index": ["topic", "owner"],
        "schema": {"type": "object", "required": ["title"], "properties": {
            "title": {"type": "string", "minLength": 1}, "topic": {"type": "string"},
            "owner": {"type": "string"}, "body": {"type": "string"}}}
    });
    let (s, b) = app
        .call(Method::POST, "/api/v1/collections", &app.admin, Some(def))
        .await;
    assert!(s < 300, "define notes: {b}");
    let notes = CollectionName::parse("notes").unwrap();
    let meta = TxnMeta::new("bench", "aristay-bench");
    for chunk in 0..NOTES / 1000 {
        let docs: Vec<Value> = (0..1000).map(|i| note(chunk * 1000 + i)).collect();
        app.db
            .transact(&meta, |tx| {
                docs.iter()
                    .try_for_each(|doc| tx.create(&notes, doc.clone()).map(drop))
            })
            .await
            .expect("seed notes");
    }
    app.db.flush_view().await;
}

pub async fn create_notes(d: &Dataset, n: usize) -> (Vec<Duration>, usize) {
    let app = &d.app;
    sequential(n, 201, |i| {
        let body = note(NOTES + i);
        async move {
            app.call(Method::POST, "/api/v1/notes", &app.admin, Some(body))
                .await
        }
    })
    .await
}

/// A ~200-byte note (as in the server's HTTP bench).
fn note(i: usize) -> Value {
    json!({
        "title": format!("Note {i}: follow up with the front desk about room {}", i % 300),
        "topic": format!("t{}", i % 20),
        "owner": format!("user-{}", i % 50),
        "body": "Guest asked for a late check-out and extra towels; confirm with housekeeping.",
    })
}

/// The disk's own floor under a commit, without the server: `n` times what the local
/// store does to publish a small log entry (create a staging file, write 1.1 KB to it,
/// fsync it, rename it into place, fsync the directory), in the run's scratch directory
/// on the same filesystem. A durable write through the server does this and more, so
/// this row tells how much of its tail the disk of the moment accounts for.
pub async fn disk_floor(d: &Dataset, n: usize) -> Vec<Duration> {
    use std::io::Write;
    let dir = d.scratch.path().to_path_buf();
    let mut timings = tokio::task::spawn_blocking(move || {
        let entry = vec![b'x'; 1100];
        let parent = std::fs::File::open(&dir).expect("scratch directory");
        (0..n)
            .map(|i| {
                let started = Instant::now();
                let staging = dir.join(format!(".{i}.staging"));
                let mut file = std::fs::File::create_new(&staging).expect("staging file");
                file.write_all(&entry).expect("write");
                file.sync_all().expect("fsync");
                std::fs::rename(&staging, dir.join(format!("{i:020}.json"))).expect("rename");
                parent.sync_all().expect("fsync the directory");
                started.elapsed()
            })
            .collect::<Vec<_>>()
    })
    .await
    .expect("disk floor");
    timings.sort();
    timings
}

/// Reverts the import (5,000 records in one transaction): its time.
pub async fn revert_import(d: &Dataset) -> f64 {
    let app = &d.app;
    let started = Instant::now();
    let (status, answer) = app
        .call(
            Method::POST,
            "/api/v1/audit/revert",
            &app.manager,
            Some(json!({"source": d.import_source})),
        )
        .await;
    let took = ms(started.elapsed());
    assert_eq!(status, 200, "{}", answer["error"]);
    assert_eq!(
        answer["data"]["changes"].as_array().map(Vec::len),
        Some(5 * IMPORTED)
    );
    took
}

/// How long the view takes to be written and durable from now (ms).
pub async fn view_lag(d: &Dataset) -> f64 {
    let started = Instant::now();
    d.app.db.flush_view().await;
    ms(started.elapsed())
}
