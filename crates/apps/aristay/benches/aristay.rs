//! aristay through HTTP on the local-disk store (fsync on), against what a Django +
//! PostgreSQL implementation of the same plan measured on this kind of machine:
//!
//! - a 1,000-booking import over 50 properties with 2 active templates (2,000 tasks),
//!   end to end (one multipart request; fresh database each run), and its revert
//!   (`POST /api/v1/audit/revert`: 5,000 records put back in one transaction);
//! - rejecting a conflicting booking (sequential requests, p50/p99);
//! - soft-deleting a booking with its 2 automatic tasks (sequential, p50/p99);
//! - 64 clients × 5 overlapping attempts on one property (wall time, 5xx count).
//!
//! `cargo bench -p bucketbase-aristay --bench aristay`; BENCH_RUNS (default 5) sets the
//! number of runs. Timings are reported, never asserted.

use bucketbase_testkit::aristay as support;
use bucketbase_testkit::workbook;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::json;

use support::{TestApp, id, spawn};

// The allocator `bucketbase` itself runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn runs() -> usize {
    std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn median(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    (xs[xs.len() / 2], xs[0], xs[xs.len() - 1])
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

/// The import's time, its tasks, and the time its revert took.
async fn import_run() -> (f64, u64, f64) {
    let app = spawn().await;
    two_templates(&app).await;
    for p in 1..=50 {
        app.property(&workbook::property_name(p)).await;
    }
    let bytes = workbook::xlsx(&workbook::rows(1000, 50));
    let form = Form::new()
        .part("file", Part::bytes(bytes).file_name("export.xlsx"))
        .text("mapping", workbook::mapping().to_string());
    // The view of the set-up is written first, so only the import is measured.
    app.db.flush_view().await;
    let started = Instant::now();
    let (status, body) = app
        .upload("/api/v1/aristay/bookings/import", &app.manager, form)
        .await;
    let took = ms(started.elapsed());
    // Its 5,000 view files are written in the background: let them finish before the
    // next run starts.
    app.db.flush_view().await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["counts"]["created"], 1000);
    let tasks = app.count("tasks", "").await;
    let source = format!(
        "import:{}",
        body["data"]["log_id"].as_str().unwrap_or_default()
    );
    let started = Instant::now();
    let (status, answer) = app
        .call(
            Method::POST,
            "/api/v1/audit/revert",
            &app.manager,
            Some(json!({"source": source})),
        )
        .await;
    let revert = ms(started.elapsed());
    assert_eq!(status, 200, "{}", answer["error"]);
    assert_eq!(
        answer["data"]["changes"].as_array().map(Vec::len),
        Some(5000)
    );
    app.db.flush_view().await;
    (took, tasks, revert)
}

/// Sequential timings of `n` calls made by `call(i)`.
async fn sequential<F, Fut>(n: usize, mut call: F) -> Vec<Duration>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let status = call(i).await;
        out.push(started.elapsed());
        assert!(status < 500, "status {status}");
    }
    out.sort();
    out
}

fn report(name: &str, target: &str, runs: &[Vec<Duration>]) {
    let p50 = median(runs.iter().map(|r| ms(percentile(r, 0.5))).collect());
    let p99 = median(runs.iter().map(|r| ms(percentile(r, 0.99))).collect());
    println!(
        "{name:<44} p50 {:>6.3} ms ({:.3}-{:.3})  p99 {:>6.3} ms ({:.3}-{:.3})  [{target}]",
        p50.0, p50.1, p50.2, p99.0, p99.1, p99.2
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if let Ok(filter) = std::env::var("BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let runs = runs();
    println!("aristay over HTTP, local-disk store with fsync; medians of {runs} runs (range)\n");

    let mut imports = Vec::new();
    let mut reverts = Vec::new();
    for _ in 0..runs {
        let (took, tasks, revert) = import_run().await;
        assert_eq!(tasks, 2000);
        imports.push(took);
        reverts.push(revert);
    }
    let (m, lo, hi) = median(imports);
    println!(
        "{:<44} {m:>8.1} ms ({lo:.1}-{hi:.1})  [target < 60 ms; Django 314 ms bulk_create, 1.9 s per-row saves]",
        "import 1,000 bookings + 2,000 tasks"
    );
    let (m, lo, hi) = median(reverts);
    println!(
        "{:<44} {m:>8.1} ms ({lo:.1}-{hi:.1})  [5,000 records in one transaction]",
        "revert that import"
    );

    if std::env::var("BENCH_ONLY").is_ok_and(|v| v == "import") {
        return;
    }
    let n = 1000;
    let mut rejections = Vec::new();
    let mut deletes = Vec::new();
    let mut bursts = Vec::new();
    let mut fivexx = 0;
    for _ in 0..runs {
        let app = Arc::new(spawn().await);
        two_templates(&app).await;
        let loft = app.property("Loft").await;
        app.create(
            "bookings",
            json!({"property_id": loft, "check_in": "2026-07-01", "check_out": "2026-07-10"}),
        )
        .await;
        // Conflicting bookings: each overlaps the stay above.
        let body =
            json!({"property_id": loft, "check_in": "2026-07-03", "check_out": "2026-07-05"});
        rejections.push(
            sequential(n, |_| {
                let (app, body) = (app.clone(), body.clone());
                async move {
                    let (s, b) = app
                        .call(Method::POST, "/api/v1/bookings", &app.manager, Some(body))
                        .await;
                    assert_eq!(b["error"]["code"], "exclusion_violation");
                    s
                }
            })
            .await,
        );
        // Bookings with 2 automatic tasks each, then their soft deletes.
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let day = chrono::NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()
                + chrono::Duration::days(2 * i as i64);
            let b = app
                .create(
                    "bookings",
                    json!({"property_id": loft, "check_in": day.to_string(), "check_out": (day + chrono::Duration::days(1)).to_string()}),
                )
                .await;
            ids.push(id(&b));
        }
        deletes.push(
            sequential(n, |i| {
                let (app, path) = (app.clone(), format!("/api/v1/bookings/{}", ids[i]));
                async move { app.call(Method::DELETE, &path, &app.manager, None).await.0 }
            })
            .await,
        );
        // 64 clients x 5 overlapping attempts on a fresh property.
        let barn = app.property("Barn").await;
        let started = Instant::now();
        let mut clients = Vec::new();
        for c in 0..64u32 {
            let (app, barn) = (app.clone(), barn.clone());
            clients.push(tokio::spawn(async move {
                let mut statuses = Vec::new();
                for a in 0..5u32 {
                    let start = (c * 7 + a * 13) % 30 + 1;
                    let body = json!({"property_id": barn, "check_in": format!("2026-09-{start:02}"),
                                      "check_out": format!("2026-10-{:02}", (start % 28) + 1)});
                    statuses.push(app.call(Method::POST, "/api/v1/bookings", &app.manager, Some(body)).await.0);
                }
                statuses
            }));
        }
        for c in clients {
            fivexx += c.await.unwrap().into_iter().filter(|s| *s >= 500).count();
        }
        bursts.push(ms(started.elapsed()));
    }
    report(
        "conflicting booking rejected (409)",
        "target p99 < 1 ms; Django + DRF 9.3 ms",
        &rejections,
    );
    report(
        "soft delete of a booking + its 2 tasks",
        "target p99 < 3 ms",
        &deletes,
    );
    let (m, lo, hi) = median(bursts);
    println!(
        "{:<44} {m:>8.1} ms ({lo:.1}-{hi:.1}), {fivexx} responses 5xx  [target < 300 ms; PostgreSQL 0.97 s with row locks]",
        "64 clients x 5 overlapping attempts"
    );
}
