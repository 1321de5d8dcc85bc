//! The `bucketbase` binary, run as a user would run it.

use std::process::Command;

use bucketbase_engine::{CollectionName, Database, DbOptions, RecordId, TxnMeta};

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
