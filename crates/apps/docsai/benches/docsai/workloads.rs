//! The four workloads of issue 12, each on a fresh docsai store served over HTTP as
//! `bucketbase serve --app docsai` serves it (local disk, fsync on, view and checkpoints
//! on): requests one after another on one keep-alive connection.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bucketbase_docsai::Docsai;
use bucketbase_docsai::api_collections;
use bucketbase_docsai::migrate::progress::Progress;
use bucketbase_docsai::migrate::writer::{self, Options};
use bucketbase_docsai::migrate::{Mapping, ReadOptions, Source};
use bucketbase_docsai::postman::Limits;
use bucketbase_engine::collection::secret::SecretBox;
use bucketbase_engine::{CollectionName, TxnMeta};
use bucketbase_testkit::served::{Served, serve};
use reqwest::Method;
use serde_json::{Value, json};

use crate::stats::ms;

pub const IMPORT: &str = "/api/v1/docsai/api_collections/import";

/// docsai served on a fresh root, with two SuperAdmins (token, uuid).
pub struct App {
    pub served: Served,
    pub admin: (String, String),
    pub other: (String, String),
}

fn key() -> Arc<SecretBox> {
    Arc::new(SecretBox::new([7u8; 32]))
}

pub async fn spawn() -> App {
    // BENCH_VIEW=0 turns the materialized view off, to see what it costs.
    let served = serve(&Docsai, Some(key()), |o| {
        if std::env::var("BENCH_VIEW").is_ok_and(|v| v == "0") {
            o.materialize = false;
        }
    })
    .await;
    let admin = served.user("root@example.com", "SuperAdmin").await;
    let other = served.user("second@example.com", "SuperAdmin").await;
    // The view of the set-up is written before anything is measured.
    served.db.flush_view().await;
    App {
        served,
        admin,
        other,
    }
}

/// How long the view takes to be written and durable from now (ms).
pub async fn view_lag(app: &Served) -> f64 {
    let started = Instant::now();
    app.db.flush_view().await;
    ms(started.elapsed())
}

/// Sequential timings of `n` calls of `call(i)`, sorted; panics on an answer other than
/// `expected` (a figure of failed requests would mean nothing).
pub async fn sequential<F, Fut>(n: usize, expected: u16, mut call: F) -> Vec<Duration>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = (u16, Value)>,
{
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let (status, body) = call(i).await;
        out.push(started.elapsed());
        assert_eq!(status, expected, "request {i}: {body}");
    }
    out.sort();
    out
}

// 1. The migration ---------------------------------------------------------------------

/// The rows of the mapped tables of `db` (top-level, child and many-to-many tables).
pub fn source_rows(db: &Path, mapping: &Mapping) -> u64 {
    let source = Source::open(db).expect("open the SQLite database");
    mapping
        .all_tables()
        .iter()
        .map(|t| source.count(t).expect("count a mapped table"))
        .sum()
}

/// When the writer reported its last batch: the end of the writes (what follows is the
/// last pass over records that failed, none here, and the closing check).
#[derive(Default)]
struct LastBatch(Mutex<Option<Instant>>);

impl Progress for LastBatch {
    fn start(&self, _: &str, _: u64) {}

    fn advance(&self, _: &str, _: u64) {
        *self.0.lock().expect("not poisoned") = Some(Instant::now());
    }
}

pub struct MigrationRun {
    /// `writer::run` as the CLI calls it: reading, writing and the closing check (ms).
    pub total: f64,
    /// From the start to the last transaction committed.
    pub writes: f64,
    /// The closing check (and the last pass over failed records, none here).
    pub check: f64,
    /// The records written.
    pub records: u64,
    /// Log entries the run committed (its transactions, as the committer batched them).
    pub entries: u64,
    /// CPU time of the whole process during the run (ms): the rest of the wall time was
    /// spent waiting, mostly for each entry's fsync.
    pub cpu: f64,
    pub view_lag: f64,
}

/// `bucketbase migrate sqlite DB --mapping docsai.toml` on a fresh store, through the
/// function the command calls (`migrate::writer::run`, 200 records a transaction as the
/// command's default, owners from the profile table).
pub async fn migrate(db: &Path, mapping: &Mapping) -> MigrationRun {
    let app = spawn().await;
    let progress = LastBatch::default();
    let seq = app.served.db.snapshot().seq().get();
    let cpu = cpu_ms();
    let started = Instant::now();
    let check = writer::run(&app.served.db, db, mapping, &Options::default(), &progress)
        .await
        .expect("the migration runs");
    let total = started.elapsed();
    let cpu = cpu_ms() - cpu;
    let entries = app.served.db.snapshot().seq().get() - seq;
    assert!(check.matches(), "the closing check:\n{}", check.text());
    let last = progress.0.lock().expect("not poisoned").unwrap_or(started);
    let writes = last - started;
    let records = check
        .tables
        .iter()
        .filter(|t| !t.target.contains('.'))
        .map(|t| t.written)
        .sum();
    MigrationRun {
        total: ms(total),
        writes: ms(writes),
        check: ms(total - writes),
        records,
        entries,
        cpu,
        view_lag: view_lag(&app.served).await,
    }
}

/// User and system CPU time of this process so far (ms; Linux, 10 ms ticks; 0 elsewhere).
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses: utime is the 14th
    // field of the line, stime the 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: Vec<f64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    ticks.iter().sum::<f64>() * 10.0
}

/// Reading and casting every table into documents, nothing written: the source's share.
pub async fn read_only(db: &Path, mapping: &Mapping) -> f64 {
    let (db, mapping) = (db.to_path_buf(), mapping.clone());
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let source = Source::open(&db).expect("open the SQLite database");
        for t in &mapping.tables {
            source
                .read_table(&mapping, t, &ReadOptions::default(), |doc| {
                    std::hint::black_box(doc);
                    Ok(())
                })
                .expect("read a table");
        }
        ms(started.elapsed())
    })
    .await
    .expect("the reading task")
}

// 2. The Postman import ----------------------------------------------------------------

pub struct PostmanRun {
    pub http: f64,
    pub http_again: f64,
    pub http_lag: f64,
    pub cli: f64,
    pub cli_again: f64,
}

/// The import through HTTP (created, then the same file again: unchanged), then as
/// another SuperAdmin through what `bucketbase import postman FILE --owner UUID` runs
/// (`cli::import`: the file parsed, then one transaction of `api_collections::import`;
/// the command's clap parsing, file read and printing are left out).
pub async fn postman(file: &[u8], requests: usize) -> PostmanRun {
    let app = spawn().await;
    let s = &app.served;
    let timed = |token: String, expect: (u16, &'static str)| {
        let bytes = file.to_vec();
        async move {
            let started = Instant::now();
            let (status, body) = s.post_bytes(IMPORT, &token, bytes).await;
            let took = ms(started.elapsed());
            assert_eq!(status, expect.0, "{body}");
            assert_eq!(body["data"]["outcome"], expect.1, "{body}");
            let counted = &body["data"]["requests"];
            let seen =
                counted["added"].as_u64().unwrap_or(0) + counted["unchanged"].as_u64().unwrap_or(0);
            assert_eq!(seen, requests as u64, "{body}");
            took
        }
    };
    let http = timed(app.admin.0.clone(), (201, "created")).await;
    let http_lag = view_lag(s).await;
    let http_again = timed(app.admin.0.clone(), (200, "unchanged")).await;
    s.db.flush_view().await;
    let cli = cli_import(s, &app.other.1, file, "created").await;
    s.db.flush_view().await;
    let cli_again = cli_import(s, &app.other.1, file, "unchanged").await;
    PostmanRun {
        http,
        http_again,
        http_lag,
        cli,
        cli_again,
    }
}

async fn cli_import(app: &Served, owner: &str, file: &[u8], expect: &str) -> f64 {
    let key = key();
    let started = Instant::now();
    let (_, imported) =
        bucketbase_docsai::postman::import(file, &Limits::default()).expect("a good file");
    let meta = TxnMeta::new(owner, "cli");
    let report = app
        .db
        .transact(&meta, |tx| {
            api_collections::import(tx, owner, imported.clone(), Some(&key), false)
        })
        .await
        .expect("the import commits")
        .value;
    let took = ms(started.elapsed());
    assert_eq!(report.outcome, expect);
    took
}

// 3. and 4. Lists and appends ----------------------------------------------------------

/// A ~600-byte knowledge article.
fn article(i: usize) -> Value {
    let category = ["api", "guides", "faq", "reference"][i % 4];
    json!({
        "title": format!("How to configure integration {i}"),
        "slug": format!("how-to-configure-integration-{i}"),
        "content": format!("# Integration {i}\n\n{}", "Set the endpoint, the token and the retry policy; then run the check. ".repeat(6)),
        "category": category,
        "tags": ["setup", format!("t{}", i % 13)],
        "is_published": !i.is_multiple_of(3),
        "view_count": i % 1000,
        "metadata": {"source": "bench", "rank": i},
    })
}

/// `count` articles owned by `owner`, written through the engine 1,000 a transaction
/// (the owner is the transaction's actor, so their `created_by`).
pub async fn seed_knowledge(app: &Served, owner: &str, count: usize) {
    let c = CollectionName::parse("knowledge").expect("a collection name");
    let meta = TxnMeta::new(owner, "docsai-bench");
    for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
        let docs: Vec<Value> = chunk.iter().map(|i| article(*i)).collect();
        app.db
            .transact(&meta, |tx| {
                docs.iter()
                    .try_for_each(|doc| tx.create(&c, doc.clone()).map(drop))
            })
            .await
            .expect("seed knowledge");
    }
}

pub struct Lists {
    pub first_page: Vec<Duration>,
    pub sorted: Vec<Duration>,
    pub filtered: Vec<Duration>,
}

/// `n` requests of each list: the first page (default size, with the total), the first
/// page sorted newest first, and an equality filter on an indexed field.
pub async fn lists(app: &App, n: usize, owned: usize) -> Lists {
    let s = &app.served;
    let token = &app.admin.0;
    let (_, first) = s.call(Method::GET, "/api/v1/knowledge", token, None).await;
    assert_eq!(first["meta"]["total"], owned, "the owner's records only");
    assert_eq!(first["data"].as_array().map(Vec::len), Some(50));
    let list = |path: &'static str| {
        sequential(n, 200, move |_| async move {
            s.call(Method::GET, path, token, None).await
        })
    };
    Lists {
        first_page: list("/api/v1/knowledge").await,
        sorted: list("/api/v1/knowledge?sort=-created_at").await,
        filtered: list("/api/v1/knowledge?category=api").await,
    }
}

pub struct Appends {
    pub log_lines: Vec<Duration>,
    pub log_lag: f64,
    pub executions: Vec<Duration>,
    pub execution_lag: f64,
}

/// A workflow of `executions` executions of 5 log lines each, created by the admin in
/// one transaction; its executions' ids, read through HTTP.
pub async fn seed_workflow(app: &App, executions: usize) -> (String, Vec<String>) {
    let c = CollectionName::parse("workflows").expect("a collection name");
    let execs: Vec<Value> = (0..executions)
        .map(|e| {
            let logs: Vec<Value> = (0..5)
                .map(|l| json!({"level": "info", "message": format!("execution {e} step {l}: done"), "node_key": format!("node{l}")}))
                .collect();
            json!({"status": "success", "mode": "trigger", "data": {"e": e}, "logs": logs})
        })
        .collect();
    let meta = TxnMeta::new(app.admin.1.as_str(), "docsai-bench");
    let id = app
        .served
        .db
        .transact(&meta, |tx| {
            tx.create(
                &c,
                json!({"name": "Nightly sync", "trigger_type": "schedule", "executions": execs}),
            )
        })
        .await
        .expect("seed a workflow")
        .value
        .0
        .to_string();
    let (status, page) = app
        .served
        .call(
            Method::GET,
            &format!("/api/v1/workflows/{id}/executions?per_page=1000"),
            &app.admin.0,
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["meta"]["total"], executions);
    let ids = page["data"]
        .as_array()
        .expect("a page of executions")
        .iter()
        .map(|e| e["id"].as_str().expect("an item id").to_string())
        .collect();
    app.served.db.flush_view().await;
    (id, ids)
}

/// `n` log lines appended to the workflow's executions (a fixed stride through them),
/// then `n` executions appended to the workflow.
pub async fn appends(app: &App, workflow: &str, executions: &[String], n: usize) -> Appends {
    let s = &app.served;
    let token = &app.admin.0;
    let log_lines = sequential(n, 201, |i| {
        let path = format!(
            "/api/v1/workflows/{workflow}/executions/{}/logs",
            executions[(i * 7919) % executions.len()]
        );
        let line = json!({"level": "info", "message": format!("bench line {i}: request sent, 200 in 12 ms"), "node_key": "node1"});
        async move { s.call(Method::POST, &path, token, Some(line)).await }
    })
    .await;
    let log_lag = view_lag(s).await;
    let path = format!("/api/v1/workflows/{workflow}/executions");
    let executions = sequential(n, 201, |i| {
        let run = json!({"status": "running", "mode": "webhook", "data": {"bench": i}});
        let path = &path;
        async move { s.call(Method::POST, path, token, Some(run)).await }
    })
    .await;
    let execution_lag = view_lag(s).await;
    Appends {
        log_lines,
        log_lag,
        executions,
        execution_lag,
    }
}
