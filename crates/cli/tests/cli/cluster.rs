//! Three server processes over one S3 bucket, on each S3 API server the test script
//! started (moto, a mock; SeaweedFS, a real distributed object store): concurrent writes
//! through all three, a unique constraint that holds across them, and every acknowledged
//! write readable through every process.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::bucketbase;
use bucketbase_testkit::process::{ADMIN, ADMIN_PASSWORD, JWT_SECRET, seq_of};

use super::processes::serve_with;

/// The S3 servers of this run: (name, endpoint, bucket). Under `CI=true` both must be there.
fn s3_servers() -> Vec<(&'static str, String, String)> {
    let servers = [
        ("moto", "AWS_ENDPOINT_URL", "BUCKETBASE_TEST_S3_BUCKET"),
        (
            "seaweedfs",
            "BUCKETBASE_TEST_SEAWEEDFS_ENDPOINT",
            "BUCKETBASE_TEST_SEAWEEDFS_BUCKET",
        ),
    ];
    servers
        .into_iter()
        .filter_map(|(name, endpoint, bucket)| {
            match (std::env::var(endpoint), std::env::var(bucket)) {
                (Ok(e), Ok(b)) => Some((name, e, b)),
                _ => {
                    assert!(
                        std::env::var("CI").as_deref() != Ok("true"),
                        "CI=true but the {name} test server is not configured: run scripts/test"
                    );
                    eprintln!("note: no {name} test server (run scripts/test); skipped");
                    None
                }
            }
        })
        .collect()
}

#[tokio::test]
async fn three_servers_over_one_bucket() {
    for (name, endpoint, bucket) in s3_servers() {
        let prefix = format!("cluster-{}-{:x}", std::process::id(), rand_u64());
        let root = format!("s3://{bucket}/{prefix}");
        let env = [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("BUCKETBASE_AUTH__JWT_SECRET", JWT_SECRET),
        ];
        // Started one after the other: the first creates the admin the others find.
        let a = serve_with(&root, &env);
        let token = a.login(ADMIN, ADMIN_PASSWORD).await.unwrap();
        let b = serve_with(&root, &env);
        let c = serve_with(&root, &env);
        let servers = [&a, &b, &c];
        let client = reqwest::Client::new();
        let r = client
            .post(format!("{}/api/v1/collections", a.url))
            .bearer_auth(&token)
            .json(&json!({
                "name": "slots",
                "schema": {"type": "object", "required": ["key"]},
                "unique": [{"name": "slot_key", "fields": ["key"]}]
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
        let defined = seq_of(&r).unwrap().to_string();

        // 3 servers x 4 clients x 6 creates, each client also racing for one shared key.
        let mut work = Vec::new();
        for (s, server) in servers.iter().enumerate() {
            for w in 0..4 {
                let (url, token, client, defined) = (
                    server.url.clone(),
                    token.clone(),
                    client.clone(),
                    defined.clone(),
                );
                work.push(tokio::spawn(async move {
                    let mut mine = Vec::new();
                    let mut shared = Vec::new();
                    for i in 0..7 {
                        let key = if i == 3 {
                            "shared".to_string()
                        } else {
                            format!("k-{s}-{w}-{i}")
                        };
                        let r = client
                            .post(format!("{url}/api/v1/slots"))
                            .bearer_auth(&token)
                            .header("x-bucketbase-min-seq", &defined)
                            .json(&json!({"key": key}))
                            .send()
                            .await
                            .unwrap();
                        let status = r.status().as_u16();
                        let seq = seq_of(&r).unwrap();
                        let body: Value = r.json().await.unwrap();
                        if key == "shared" {
                            shared.push(status);
                        } else {
                            assert_eq!(status, 201, "{body}");
                        }
                        if status == 201 {
                            mine.push((body["data"]["id"].as_str().unwrap().to_string(), seq));
                        }
                    }
                    (mine, shared)
                }));
            }
        }
        let mut acknowledged = BTreeSet::new();
        let mut shared_statuses = Vec::new();
        let mut newest = 0;
        for job in work {
            let (mine, shared) = job.await.unwrap();
            for (id, seq) in mine {
                newest = newest.max(seq);
                acknowledged.insert(id);
            }
            shared_statuses.extend(shared);
        }
        assert_eq!(
            shared_statuses.iter().filter(|s| **s == 201).count(),
            1,
            "{name}: exactly one process wins the shared key: {shared_statuses:?}"
        );
        assert!(
            shared_statuses.iter().all(|s| *s == 201 || *s == 409),
            "{shared_statuses:?}"
        );
        assert_eq!(acknowledged.len(), 3 * 4 * 6 + 1);

        // Every process, once at the newest acknowledged position, lists exactly them.
        let newest = newest.to_string();
        for server in servers {
            let r: Value = client
                .get(format!("{}/api/v1/slots?per_page=100", server.url))
                .bearer_auth(&token)
                .header("x-bucketbase-min-seq", &newest)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let listed: BTreeSet<String> = r["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(listed, acknowledged, "{name}: {}", server.url);
        }
        drop((a, b, c));
        let verify = bucketbase()
            .args(["audit", "verify", "--store", &root])
            .env("AWS_ENDPOINT_URL", &endpoint)
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0u8)
}
