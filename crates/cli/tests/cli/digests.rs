//! Signed audit digests through the binary: a server signs the log head, `audit verify
//! --public-key` checks it, and the attacks the hash chain alone cannot see are caught: a
//! re-hashed chain, and newest entries removed together with the watermarks.

use std::process::Output;
use std::time::{Duration, Instant};

use bucketbase_engine::log::{EntryBody, LogEntry};
use serde_json::json;

use super::bucketbase;
use bucketbase_testkit::process::{ADMIN, ADMIN_PASSWORD, JWT_SECRET};

use super::processes::serve_with;

fn keygen() -> (String, String) {
    let out = bucketbase().args(["audit", "keygen"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let secret = text
        .split('"')
        .nth(1)
        .expect("the secret is quoted")
        .to_string();
    let public = text
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the public key is printed")
        .to_string();
    (secret, public)
}

fn verify(root: &str, keys: &[&str]) -> (Option<i32>, String) {
    let mut cmd = bucketbase();
    cmd.args(["audit", "verify", "--store", root]);
    for k in keys {
        cmd.args(["--public-key", k]);
    }
    let Output {
        status,
        stdout,
        stderr,
        ..
    } = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    (status.code(), text)
}

fn log_file(dir: &std::path::Path, seq: u64) -> std::path::PathBuf {
    dir.join(format!("_log/{seq:020}.json"))
}

fn newest_digest(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir.join("_audit/digests"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn signed_digests_catch_a_rehashed_or_shortened_log() {
    let (secret, public) = keygen();
    let (_, other_public) = keygen();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let server = serve_with(
        root,
        &[
            ("BUCKETBASE_AUTH__JWT_SECRET", JWT_SECRET),
            ("BUCKETBASE_DIGEST_SIGNING_KEY", &secret),
            ("BUCKETBASE_DIGEST_EVERY_ENTRIES", "5"),
            ("BUCKETBASE_DIGEST_EVERY_SECS", "1"),
        ],
    );
    let token = server.login(ADMIN, ADMIN_PASSWORD).await.unwrap();
    server.define_notes(&token).await;
    // Two rounds of writes, each signed before the next: the second digest chains on.
    let mut head = 0;
    for round in 0..2 {
        for i in 0..6 {
            let (status, _, _) = server
                .post(
                    "/api/v1/notes",
                    &token,
                    json!({"id": format!("n{round}-{i}"), "n": i}),
                )
                .await;
            assert_eq!(status, 201);
        }
        // The server signs what it has within a second or so; wait for the head.
        head = std::fs::read_dir(dir.path().join("_log")).unwrap().count() as u64;
        let deadline = Instant::now() + Duration::from_secs(20);
        while newest_digest(dir.path()) < head {
            assert!(
                Instant::now() < deadline,
                "no digest of the head was written"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The public key and the newest digest are served to anyone who wants a copy.
    let served: serde_json::Value = reqwest::get(format!("{}/api/v1/audit/digest", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served["data"]["public_key"], public.as_str());
    assert_eq!(
        served["data"]["digest"]["last_seq"],
        newest_digest(dir.path())
    );
    drop(server);
    let signed = newest_digest(dir.path());
    assert!(
        std::fs::read_dir(dir.path().join("_audit/digests"))
            .unwrap()
            .count()
            >= 2
    );

    let (code, out) = verify(root, &[&public]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("digests intact"), "{out}");
    // Keys rotate by giving both; a digest signed by an unknown key fails.
    assert_eq!(verify(root, &[&other_public, &public]).0, Some(0));
    let (code, out) = verify(root, &[&other_public]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("which was not given"), "{out}");

    // Attack 1: edit an old entry and re-hash the chain after it. The hash chain alone
    // is whole again; the signed head hash is not.
    let pristine: Vec<Vec<u8>> = (1..=head)
        .map(|s| std::fs::read(log_file(dir.path(), s)).unwrap())
        .collect();
    let mut prev_hash = None::<String>;
    for seq in 3..=head {
        let path = log_file(dir.path(), seq);
        let entry = LogEntry::decode("x", &std::fs::read(&path).unwrap()).unwrap();
        let mut body: EntryBody = entry.body;
        if let Some(prev) = prev_hash.take() {
            body.prev_hash = prev;
        }
        body.at = "2020-01-01T00:00:00.000Z".into();
        let (sealed, bytes) = LogEntry::seal(body);
        std::fs::write(&path, bytes).unwrap();
        prev_hash = Some(sealed.hash);
    }
    let (code, out) = verify(root, &[]);
    assert_eq!(
        code,
        Some(0),
        "the re-hashed chain fools the hash chain alone: {out}"
    );
    let (code, out) = verify(root, &[&public]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("is not the one that was signed"), "{out}");
    for (i, bytes) in pristine.iter().enumerate() {
        std::fs::write(log_file(dir.path(), i as u64 + 1), bytes).unwrap();
    }
    assert_eq!(verify(root, &[&public]).0, Some(0));

    // Attack 2: remove the newest entries and rewrite the watermarks to match.
    for seq in signed - 2..=head {
        std::fs::remove_file(log_file(dir.path(), seq)).unwrap();
    }
    std::fs::write(
        dir.path().join("_meta/view.json"),
        format!("{{\"_seq\":{}}}", signed - 3),
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(dir.path().join("_checkpoints"));
    let (code, out) = verify(root, &[&public]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("signed audit digest"), "{out}");
}
