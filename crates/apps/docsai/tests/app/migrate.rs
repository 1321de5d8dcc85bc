//! `bucketbase migrate sqlite` on a database made by real Django (tests/django, in the
//! repository's .venv), written into a served docsai store and read back through HTTP:
//! counts, nesting, references, owners, the audit source, idempotence, resuming, the dry
//! run, and no secret in clear anywhere in the bucket. Without Django these tests say so
//! and pass, except under `CI=true`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bucketbase_docsai::Docsai;
use bucketbase_docsai::migrate::progress::Quiet;
use bucketbase_docsai::migrate::writer::{Options, run};
use bucketbase_docsai::migrate::{Check, DOCSAI_MAPPING, Mapping};
use bucketbase_engine::TxnMeta;
use bucketbase_server::app::App;
use serde_json::Value;
use uuid::Uuid;

use crate::support::{TestApp, spawn};

/// The fixture database, made in `dir` by Django, or `None` to skip.
fn django_db(dir: &Path) -> Option<PathBuf> {
    let py = bucketbase_testkit::django::python()?;
    let db = dir.join("db.sqlite3");
    let project = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/django");
    bucketbase_testkit::django::make_db(&py, &project, &db);
    Some(db)
}

fn sql(db: &Path, query: &str) -> u64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(query, [], |r| r.get::<_, i64>(0)).unwrap() as u64
}

fn sql_strings(db: &Path, query: &str) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c.prepare(query).unwrap();
    st.query_map([], |r| r.get::<_, Option<String>>(0))
        .unwrap()
        .filter_map(|r| r.unwrap())
        .collect()
}

/// Every string in a JSON text (or the text itself), of a length worth looking for.
fn leaves(text: &str, out: &mut BTreeSet<String>) {
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::String(s) if s.len() >= 8 => {
                out.insert(s.clone());
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) => walk(&v, out),
        Err(_) if text.len() >= 8 => {
            out.insert(text.to_string());
        }
        Err(_) => {}
    }
}

async fn migrate(app: &TestApp, db: &Path, mapping: &str, owner: Uuid, dry_run: bool) -> Check {
    let options = Options {
        owner: Some(owner),
        dry_run,
        batch: 50,
    };
    run(
        &app.db,
        db,
        &Mapping::from_toml(mapping).unwrap(),
        &options,
        &Quiet,
    )
    .await
    .unwrap()
}

/// Runs `bucketbase migrate sqlite` as the CLI does (the app's command).
async fn command(app: &TestApp, args: &[&str]) -> ExitCode {
    let group = Docsai
        .commands()
        .into_iter()
        .find(|g| g.get_name() == "migrate")
        .unwrap();
    let mut argv = vec!["migrate", "sqlite"];
    argv.extend(args);
    let matches = group.try_get_matches_from(argv).unwrap();
    let db = app.db.clone();
    let open: bucketbase_server::app::OpenDatabase =
        Box::new(move || Box::pin(async move { Ok(db) }));
    Docsai.run_command("migrate", &matches, open).await.unwrap()
}

#[tokio::test]
async fn a_django_database_moves_in_whole_and_a_second_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = django_db(dir.path()) else {
        return;
    };
    let app = spawn().await;
    let (token, me) = app.admin.clone();
    let owner: Uuid = me.parse().unwrap();
    let mapping = DOCSAI_MAPPING;
    let source_before = std::fs::read(&db).unwrap();

    // A dry run checks and writes nothing.
    let seq = app.db.snapshot().seq();
    let dry = migrate(&app, &db, mapping, owner, true).await;
    assert!(dry.matches(), "{}", dry.text());
    assert_eq!(app.db.snapshot().seq(), seq, "a dry run writes nothing");

    let report = migrate(&app, &db, mapping, owner, false).await;
    assert!(report.matches(), "{}", report.text());
    assert!(
        report.unmapped_tables.is_empty(),
        "{:?}",
        report.unmapped_tables
    );
    assert_eq!(report.unowned, 0);
    assert_eq!(
        std::fs::read(&db).unwrap(),
        source_before,
        "the source is only read"
    );

    // Counts through the API, per collection, as the owner sees them.
    for (table, collection) in [
        ("docsai_knowledgebase", "knowledge"),
        ("docsai_workflow", "workflows"),
        ("docsai_credential", "credentials"),
        ("docsai_collection", "api_collections"),
        ("docsai_environment", "environments"),
        ("docsai_requesthistory", "request_history"),
        ("docsai_task", "tasks"),
        ("docsai_roadmapitem", "roadmap_items"),
    ] {
        let (s, b) = app
            .get(&format!("/api/v1/{collection}?per_page=1"), &token)
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(
            b["meta"]["total"],
            sql(&db, &format!("SELECT count(*) FROM {table}")),
            "{collection}"
        );
    }
    // Nesting, two levels: each workflow has 4 nodes, 3 connections and 5 executions,
    // each with 4 log lines.
    let (_, workflows) = app.get("/api/v1/workflows?per_page=100", &token).await;
    for w in workflows["data"].as_array().unwrap() {
        let id = w["id"].as_str().unwrap();
        let (_, one) = app.get(&format!("/api/v1/workflows/{id}"), &token).await;
        assert_eq!(one["data"]["nodes"].as_array().unwrap().len(), 4);
        assert_eq!(one["data"]["connections"].as_array().unwrap().len(), 3);
        let executions = one["data"]["executions"].as_array().unwrap();
        assert_eq!(executions.len(), 5);
        for e in executions {
            assert_eq!(e["logs"].as_array().unwrap().len(), 4, "{e}");
        }
    }
    // References: a request history row points at a migrated collection.
    let (_, history) = app
        .get("/api/v1/request_history?per_page=1000", &token)
        .await;
    let pointing: Vec<&str> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["collection_id"].as_str())
        .collect();
    assert!(!pointing.is_empty());
    for id in pointing {
        let (s, _) = app
            .get(&format!("/api/v1/api_collections/{id}"), &token)
            .await;
        assert_eq!(s, 200, "request_history.collection_id {id}");
    }
    // Django's timestamps are kept; the audit names the run.
    let (_, k) = app
        .get("/api/v1/knowledge?per_page=1&sort=created_at", &token)
        .await;
    let first = sql_strings(
        &db,
        "SELECT created_at FROM docsai_knowledgebase ORDER BY created_at LIMIT 1",
    );
    assert_eq!(
        &k["data"][0]["created_at"].as_str().unwrap()[..19],
        &first[0].replace(' ', "T")[..19]
    );
    let (_, events) = app
        .get(
            &format!("/api/v1/audit?source={}&limit=5", report.source),
            &token,
        )
        .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 5, "{events}");

    // No secret in clear anywhere in the bucket (log, checkpoints, view).
    app.db.flush_view().await;
    let bucket = app.bucket_text();
    let mut secrets = BTreeSet::new();
    for q in [
        "SELECT data FROM docsai_credential",
        "SELECT auth FROM docsai_collection",
        "SELECT value FROM docsai_envvariable WHERE is_secret = 1",
    ] {
        for text in sql_strings(&db, q) {
            leaves(&text, &mut secrets);
        }
    }
    assert!(secrets.len() >= 3, "the fixture has secrets: {secrets:?}");
    for s in &secrets {
        assert!(
            !bucket.contains(s.as_str()),
            "{s} is in clear in the bucket"
        );
    }

    // A second run (the CLI's command) writes nothing and still matches.
    let seq = app.db.snapshot().seq();
    let mapping_file = dir.path().join("mapping.toml");
    std::fs::write(&mapping_file, mapping).unwrap();
    let code = command(
        &app,
        &[
            db.to_str().unwrap(),
            "--mapping",
            mapping_file.to_str().unwrap(),
            "--owner",
            &me,
        ],
    )
    .await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(app.db.snapshot().seq(), seq, "idempotent");
}

#[tokio::test]
async fn an_interrupted_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = django_db(dir.path()) else {
        return;
    };
    // The first run got through part of the database: the same rows, fewer of them.
    let partial = dir.path().join("partial.sqlite3");
    std::fs::copy(&db, &partial).unwrap();
    let c = rusqlite::Connection::open(&partial).unwrap();
    c.execute_batch(
        "PRAGMA foreign_keys = OFF;
         DELETE FROM docsai_knowledgebase WHERE id % 2 = 0;
         DELETE FROM docsai_task WHERE id > 2;",
    )
    .unwrap();
    drop(c);
    let app = spawn().await;
    let owner: Uuid = app.admin.1.parse().unwrap();
    let mapping = DOCSAI_MAPPING;
    let first = migrate(&app, &partial, mapping, owner, false).await;
    assert!(first.matches(), "{}", first.text());
    let rest = migrate(&app, &db, mapping, owner, false).await;
    assert!(rest.matches(), "{}", rest.text());
    let knowledge = rest
        .tables
        .iter()
        .find(|t| t.table == "docsai_knowledgebase")
        .unwrap();
    let half = sql(&partial, "SELECT count(*) FROM docsai_knowledgebase");
    assert_eq!(knowledge.already_there, half);
    assert_eq!(knowledge.written, knowledge.rows - half);
    assert_eq!(knowledge.stored, knowledge.rows);
}

/// A nested level the target collection does not declare (here an operator's
/// workflows without the executions' logs) cannot be written: the closing check names
/// it and the command exits 1, instead of losing the rows silently.
#[tokio::test]
async fn a_nested_level_the_collection_lacks_is_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = django_db(dir.path()) else {
        return;
    };
    let app = spawn().await;
    let mut workflows = Docsai
        .definitions()
        .into_iter()
        .find(|d| d.name == "workflows")
        .unwrap();
    workflows
        .nested
        .get_mut("executions")
        .unwrap()
        .nested
        .clear();
    app.db
        .define_all(&TxnMeta::new("test", "definitions"), &[workflows])
        .await
        .unwrap();
    let owner: Uuid = app.admin.1.parse().unwrap();
    let report = migrate(&app, &db, DOCSAI_MAPPING, owner, false).await;
    let logs = report
        .tables
        .iter()
        .find(|t| t.table == "docsai_executionlog")
        .unwrap();
    assert!(!report.matches());
    assert_eq!(logs.left_out, logs.rows);
    assert_eq!(logs.stored, 0);
    assert!(report.text().contains("FAIL"), "{}", report.text());
    let mapping_file = dir.path().join("docsai.toml");
    std::fs::write(&mapping_file, DOCSAI_MAPPING).unwrap();
    let me = app.admin.1.clone();
    let code = command(
        &app,
        &[
            db.to_str().unwrap(),
            "--mapping",
            mapping_file.to_str().unwrap(),
            "--owner",
            &me,
        ],
    )
    .await;
    assert_eq!(code, ExitCode::FAILURE);
}

/// A column the mapping calls secret must land where the definition seals it: marking a
/// plain field secret (here a knowledge article's title) stops the run before anything
/// of that table is stored in clear, naming the place.
#[tokio::test]
async fn a_secret_column_the_definition_does_not_seal_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = django_db(dir.path()) else {
        return;
    };
    let app = spawn().await;
    let mapping = DOCSAI_MAPPING.replacen(
        "title = \"title\"",
        "title = { field = \"title\", secret = true }",
        1,
    );
    assert_ne!(mapping, DOCSAI_MAPPING, "the mapping maps knowledge titles");
    let options = Options {
        owner: Some(app.admin.1.parse().unwrap()),
        dry_run: false,
        batch: 50,
    };
    let err = run(
        &app.db,
        &db,
        &Mapping::from_toml(&mapping).unwrap(),
        &options,
        &Quiet,
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("knowledge") && text.contains("/title") && text.contains("clear"),
        "{text}"
    );
    let (_, list) = app.get("/api/v1/knowledge", &app.admin.0).await;
    assert_eq!(list["meta"]["total"], 0, "{list}");
}
