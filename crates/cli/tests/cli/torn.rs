//! A damaged newest log entry (a write torn by a crash): `serve` refuses the root and names
//! the recovery command; `bucketbase recover` quarantines the bytes and voids the slot;
//! the server starts again with every earlier record, and `audit verify` reports the void.
//! Damage anywhere else, or to an entry a durable mark says was committed, is refused.

use std::path::Path;

use serde_json::{Value, json};

use super::bucketbase;
use super::crash::json_of;
use bucketbase_testkit::process::{ADMIN, ADMIN_PASSWORD};

use super::processes::{serve_refusal, serve_with};

fn run(args: &[&str]) -> (bool, String, String) {
    let out = bucketbase().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn log_file(root: &Path, seq: u64) -> std::path::PathBuf {
    root.join(format!("_log/{seq:020}.json"))
}

fn newest(root: &Path) -> u64 {
    std::fs::read_dir(root.join("_log"))
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()?
                .strip_suffix(".json")?
                .parse()
                .ok()
        })
        .max()
        .unwrap()
}

/// A server on `root` with a `notes` collection holding `n` notes; stopped on return.
async fn notes(root: &str, n: usize) -> Vec<String> {
    let server = serve_with(root, &[]);
    let token = server.login(ADMIN, ADMIN_PASSWORD).await.unwrap();
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/api/v1/collections", server.url))
        .bearer_auth(&token)
        .json(&json!({"name": "notes", "schema": {"type": "object"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut ids = Vec::new();
    for i in 0..n {
        let note = client.post(format!("{}/api/v1/notes", server.url));
        let r = json_of(
            note.bearer_auth(&token)
                .json(&json!({"text": format!("note {i}")})),
        )
        .await;
        ids.push(r["data"]["id"].as_str().unwrap().to_string());
    }
    ids
}

#[tokio::test]
async fn a_torn_newest_entry_is_quarantined_and_voided() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let ids = notes(root, 3).await;
    // A crash while the next entry was being written leaves a partial file in its slot.
    let head = newest(dir.path());
    let whole = std::fs::read(log_file(dir.path(), head)).unwrap();
    let torn = &whole[..whole.len() / 2];
    let slot = head + 1;
    std::fs::write(log_file(dir.path(), slot), torn).unwrap();

    let err = serve_refusal(root);
    assert!(err.contains(&format!("{slot:020}.json")), "{err}");
    assert!(
        err.contains(&format!("bucketbase recover --store {root}")),
        "{err}"
    );
    let (ok, out, _) = run(&["audit", "verify", "--store", root]);
    assert!(!ok, "{out}");

    let (ok, out, err) = run(&["recover", "--store", root]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("position {slot} was damaged")),
        "{out}"
    );

    let sha = bucketbase_engine::canonical::sha256_hex(torn);
    let kept = dir.path().join(format!("_quarantine/{slot:020}.{sha}.bin"));
    assert_eq!(
        std::fs::read(&kept).unwrap(),
        torn,
        "the damaged bytes are kept"
    );
    let void: Value =
        serde_json::from_slice(&std::fs::read(log_file(dir.path(), slot)).unwrap()).unwrap();
    assert_eq!(void["entry"]["txns"], json!([]));
    assert_eq!(
        void["entry"]["void"],
        json!({"bytes": torn.len(), "sha256": sha})
    );

    let (ok, out, _) = run(&["audit", "verify", "--store", root]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "position {slot} was voided: damaged bytes quarantined, sha256 {sha}"
        )),
        "{out}"
    );
    let (ok, out, _) = run(&["recover", "--store", root]);
    assert!(ok && out.contains("nothing to recover"), "{out}");

    // The server starts, serves every earlier record, and the chain goes on past the void.
    let server = serve_with(root, &[]);
    let token = server.login(ADMIN, ADMIN_PASSWORD).await.unwrap();
    let client = reqwest::Client::new();
    for id in &ids {
        let r = client
            .get(format!("{}/api/v1/notes/{id}", server.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{id}");
    }
    let verify = client.get(format!("{}/api/v1/audit/verify", server.url));
    let verified = json_of(verify.bearer_auth(&token)).await;
    assert_eq!(verified["data"]["intact"], true, "{verified}");
    assert_eq!(
        verified["data"]["voided"],
        json!([{"seq": slot, "sha256": sha, "bytes": torn.len()}])
    );
    let r = client
        .post(format!("{}/api/v1/notes", server.url))
        .bearer_auth(&token)
        .json(&json!({"text": "after recovery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    drop(server);
    assert!(newest(dir.path()) > slot);
    let (ok, out, _) = run(&["audit", "verify", "--store", root]);
    assert!(ok, "{out}");
}

/// Damage inside the log is tampering, not a torn write; damage to an entry the view
/// watermark covers was acknowledged. `recover` changes nothing in either case.
#[tokio::test]
async fn recover_refuses_damage_it_must_not_void() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    super::seed(root, 4).await;

    let (ok, out, _) = run(&["recover", "--store", root]);
    assert!(ok && out.contains("nothing to recover"), "{out}");

    // The newest entry, truncated after the view watermark recorded it.
    let newest_file = log_file(dir.path(), 4);
    let whole = std::fs::read(&newest_file).unwrap();
    std::fs::write(&newest_file, &whole[..whole.len() / 2]).unwrap();
    let (ok, out, err) = run(&["recover", "--store", root]);
    assert!(!ok, "{out}");
    assert!(err.contains("was committed"), "{err}");
    std::fs::write(&newest_file, &whole).unwrap();

    // An entry in the middle.
    let middle = log_file(dir.path(), 2);
    let whole = std::fs::read(&middle).unwrap();
    std::fs::write(&middle, &whole[..whole.len() / 2]).unwrap();
    let (ok, out, err) = run(&["recover", "--store", root]);
    assert!(!ok, "{out}");
    assert!(err.contains("Only a damaged newest entry"), "{err}");
    assert_eq!(std::fs::read(&middle).unwrap(), &whole[..whole.len() / 2]);
    assert!(!dir.path().join("_quarantine").exists());
}
