//! The `bucketbase` binary, run as a user would run it.

use std::process::Command;

use bucketbase_engine::{CollectionName, Database, DbOptions, RecordId, TxnMeta};

mod backup;
mod cluster;
mod crash;
mod digests;
mod feed;
mod identity;
mod processes;
mod torn;
mod view_io;

fn bucketbase() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bucketbase"))
}

async fn seed(root: &str, n: u64) {
    let db = Database::open_url(root, DbOptions::default())
        .await
        .unwrap();
    let c = CollectionName::parse("things").unwrap();
    for i in 0..n {
        let id = RecordId::parse(&format!("t{i}")).unwrap();
        db.transact(&TxnMeta::new("cli-test", "test"), |tx| {
            tx.put(&c, &id, &serde_json::json!({"n": i}))
        })
        .await
        .unwrap();
    }
    db.flush_view().await;
    db.close().await;
}

#[tokio::test]
async fn audit_verify_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    seed(root, 4).await;
    let ok = bucketbase()
        .args(["audit", "verify", "--store", root])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("intact: 4 entries"));

    let entry = dir.path().join("_log/00000000000000000003.json");
    let text = std::fs::read_to_string(&entry).unwrap();
    std::fs::write(&entry, text.replace("\"n\":2", "\"n\":20")).unwrap();
    let bad = bucketbase()
        .args(["audit", "verify", "--store", root])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(out.contains("BROKEN at log position 3"), "{out}");
}

#[tokio::test]
async fn rebuild_restores_deleted_view_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    seed(root, 3).await;
    let doc = dir.path().join("things/t1.json");
    let index = dir.path().join("things/index.json");
    let (doc_before, index_before) = (std::fs::read(&doc).unwrap(), std::fs::read(&index).unwrap());
    std::fs::remove_file(&doc).unwrap();
    std::fs::remove_file(&index).unwrap();
    let out = bucketbase()
        .args(["rebuild", "--store", root])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 records"));
    assert_eq!(std::fs::read(&doc).unwrap(), doc_before);
    assert_eq!(std::fs::read(&index).unwrap(), index_before);
}

#[test]
fn commands_refuse_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nothing-here");
    let out = bucketbase()
        .args(["rebuild", "--store", root.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database at"));
    assert!(!root.exists(), "a typo must not create an empty database");
}

/// `bucketbase serve` as a user starts it: first-start admin, login over HTTP, graceful
/// stop on SIGTERM without losing the acknowledged write.
#[tokio::test]
async fn serve_first_start_login_and_graceful_stop() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let mut child = bucketbase()
        .args([
            "serve",
            "--store",
            root,
            "--listen",
            "127.0.0.1:0",
            "--app",
            "none",
        ])
        .env("BUCKETBASE_AUTH__COOKIE_SECURE", "false")
        .env_remove("BUCKETBASE_ADMIN_PASSWORD")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut password, mut url) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(p) = line.trim().strip_prefix("password: ") {
            password = Some(p.to_string());
        }
        if let Some((_, u)) = line.split_once(" on http://") {
            url = Some(format!("http://{u}"));
            break;
        }
    }
    let (password, url) = (
        password.expect("one-time password printed"),
        url.expect("address printed"),
    );
    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("{url}/api/auth/login"))
        .json(&serde_json::json!({"email": "admin@localhost", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["data"]["access_token"]
        .as_str()
        .expect("login works")
        .to_string();
    let def = serde_json::json!({"name": "notes", "schema": {"type": "object"}});
    let r = client
        .post(format!("{url}/api/v1/collections"))
        .bearer_auth(&token)
        .json(&def)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Every app's name is reserved, even on a server that runs none of them.
    for name in ["aristay", "docsai", "events"] {
        let r = client
            .post(format!("{url}/api/v1/collections"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{name}");
    }
    let r = client
        .post(format!("{url}/api/v1/notes"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"id": "kept", "x": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let health = client.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    // SIGTERM: the process exits cleanly and the write is there afterwards, view included.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let db = Database::open_url(root, DbOptions::default())
        .await
        .unwrap();
    let c = CollectionName::parse("notes").unwrap();
    assert!(
        db.snapshot()
            .get(&c, &RecordId::parse("kept").unwrap())
            .is_some()
    );
    assert!(
        dir.path().join("notes/kept.json").exists(),
        "view flushed on shutdown"
    );
    db.close().await;
    // A second start creates no second admin and prints no password.
    let out = bucketbase()
        .args([
            "user",
            "set-role",
            "--store",
            root,
            "--email",
            "admin@localhost",
            "--role",
            "SuperAdmin",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

use bucketbase_testkit::workbook;

#[tokio::test]
async fn import_bookings_from_the_command_line() {
    use bucketbase_engine::Error;
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_string();
    // A database with the aristay collections, two properties and a saved template.
    {
        let opts = bucketbase_engine::DbOptions {
            hooks: bucketbase_server::app::App::hooks(&bucketbase_aristay::Aristay),
            ..Default::default()
        };
        let db = bucketbase_engine::Database::open_url(&root, opts)
            .await
            .unwrap();
        let c = |n: &str| CollectionName::parse(n).unwrap();
        db.define_all(
            &TxnMeta::new("test", "setup"),
            &bucketbase_server::app::App::definitions(&bucketbase_aristay::Aristay),
        )
        .await
        .unwrap();
        db.transact(&TxnMeta::new("test", "setup"), |tx| {
            for p in 1..=2 {
                tx.create(
                    &c("properties"),
                    json!({"name": workbook::property_name(p)}),
                )?;
            }
            tx.create(
                &c("booking_import_templates"),
                json!({"name": "Airbnb export", "mapping": workbook::mapping()}),
            )?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        db.close().await;
    }
    let mut rows = workbook::rows(40, 2);
    rows[7].check_in = workbook::Date::Text("not a date".into());
    let file = dir.path().join("export.xlsx");
    std::fs::write(&file, workbook::xlsx(&rows)).unwrap();
    let import = |extra: &[&str]| {
        let out = bucketbase()
            .args([
                "import",
                "bookings",
                file.to_str().unwrap(),
                "--template",
                "Airbnb export",
                "--store",
                &root,
            ])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = import(&["--dry-run"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.starts_with("dry_run: 40 rows: 39 created, 0 updated, 0 unchanged, 1 failed"),
        "{out}{err}"
    );
    assert!(out.contains("row 9, column \"Arrival\""), "{out}");
    // The size limits come from the settings: 39 rows do not fit in a 16 KiB entry.
    let small = bucketbase()
        .args(["import", "bookings", file.to_str().unwrap()])
        .args([
            "--template",
            "Airbnb export",
            "--mode",
            "partial",
            "--store",
            &root,
        ])
        .env("BUCKETBASE_MAX_RECORD_BYTES", "4096")
        .env("BUCKETBASE_MAX_ENTRY_BYTES", "16384")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&small.stderr);
    assert_eq!(small.status.code(), Some(2), "{err}");
    assert!(err.contains("rows fit") && err.contains("16384"), "{err}");
    let (code, out, err) = import(&["--mode", "partial", "--json"]);
    assert_eq!(code, Some(1), "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            report["status"].as_str(),
            report["counts"]["created"].as_u64()
        ),
        (Some("partial"), Some(39))
    );
    // The partial import reverted: a dry run first, then for real.
    let source = format!("import:{}", report["log_id"].as_str().unwrap());
    let revert = |extra: &[&str]| {
        let out = bucketbase()
            .args(["revert", "--source", &source, "--store", &root])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = revert(&["--dry-run"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("bookings: 39 deleted"), "{out}");
    assert!(out.contains("dry run: nothing was written"), "{out}");
    let (code, out, err) = revert(&[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(&format!("audited as revert:{source}")),
        "{out}"
    );
    // Again: the revert changed every record after the import, so each is a conflict
    // (exit 2, nothing written); there is nothing left to change anyway.
    let (code, out, err) = revert(&["--json"]);
    assert_eq!(code, Some(2), "{out}{err}");
    let again: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(again["conflicts"].as_array().unwrap().len(), 39);
    assert_eq!(again["changes"], json!([]));
    assert!(err.contains("refused: 39 record(s) changed"), "{err}");
    // A template that does not exist, and a file that is not a workbook.
    let (code, _, err) = import(&["--template", "Nope"]);
    assert_ne!(code, Some(0), "{err}");
    std::fs::write(&file, b"<html></html>").unwrap();
    let (code, _, err) = import(&[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not an .xlsx workbook"), "{err}");

    let db = bucketbase_engine::Database::open_url(&root, Default::default())
        .await
        .unwrap();
    let bookings = CollectionName::parse("bookings").unwrap();
    let state = db.snapshot();
    let docs = &state.collection(&bookings).unwrap().docs;
    assert_eq!(docs.len(), 39);
    assert!(
        docs.values().all(|d| !d.value()["deleted_at"].is_null()),
        "every imported booking reverted"
    );
}

/// App commands come from the apps (decision 0014): `import bookings` is aristay's, listed
/// under `import`, and refused, before any store is touched, when the settings select
/// another app; an app name nobody registered is refused with the choices.
#[test]
fn app_commands_belong_to_their_app() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("db");
    let help = bucketbase().args(["import", "--help"]).output().unwrap();
    assert!(help.status.success(), "{help:?}");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.starts_with("Import data into the app's collections"),
        "{help}"
    );
    assert!(help.contains("bookings"), "{help}");

    let file = dir.path().join("export.xlsx");
    std::fs::write(&file, workbook::xlsx(&workbook::rows(2, 1))).unwrap();
    let other = bucketbase()
        .args(["import", "bookings", file.to_str().unwrap()])
        .args(["--template", "t", "--store", root.to_str().unwrap()])
        .env("BUCKETBASE_APP", "docsai")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&other.stderr);
    assert_eq!(other.status.code(), Some(1), "{err}");
    assert!(err.contains("belongs to the aristay app"), "{err}");
    assert!(!root.exists(), "no store is opened for a refused command");

    let config = dir.path().join("bucketbase.toml");
    std::fs::write(&config, "app = \"nope\"\n").unwrap();
    let unknown = bucketbase()
        .args(["import", "bookings", file.to_str().unwrap()])
        .args(["--template", "t", "--store", root.to_str().unwrap()])
        .args(["--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert_ne!(unknown.status.code(), Some(0), "{err}");
    assert!(err.contains("nope"), "{err}");
    assert!(!root.exists());
}
