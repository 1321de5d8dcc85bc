//! `bucketbase serve` and its keys and identity: the secret-field key generated on a local
//! root for definitions that declare secret fields (0600, reused after a restart, nowhere
//! else on the root), refused on S3 without one, and docsai's appointment360 preset
//! selected from the environment.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use bucketbase_testkit::fake_identity::{FakeUser, spawn_fake_identity};
use bucketbase_testkit::process::{ADMIN, ADMIN_PASSWORD, Server};
use serde_json::{Value, json};

use crate::processes::bin;

/// A definitions folder with one collection that has a secret field.
fn vault_definitions(dir: &Path) -> String {
    let defs = dir.join("defs");
    std::fs::create_dir_all(&defs).unwrap();
    std::fs::write(
        defs.join("vault.toml"),
        "name = \"vault\"\nsecret = [\"password\"]\n[schema]\ntype = \"object\"\n",
    )
    .unwrap();
    defs.to_str().unwrap().to_string()
}

/// Every file under `root` outside `_keys/` that contains `needle`.
fn files_containing(root: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.ends_with("_keys") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if String::from_utf8_lossy(&std::fs::read(&path).unwrap()).contains(needle) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[tokio::test]
async fn secret_fields_get_a_private_key_on_a_local_root_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("db");
    let root_s = root.to_str().unwrap();
    let defs = vault_definitions(dir.path());
    let env = [("BUCKETBASE_DEFINITIONS_DIR", defs.as_str())];
    let mut server = Server::start_with(bin(), root_s, &env);
    let token = server.login(ADMIN, ADMIN_PASSWORD).await.unwrap();
    let (status, _, body) = server
        .post(
            "/api/v1/vault",
            &token,
            json!({"name": "db", "password": "hunter2-plaintext"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["password"], "********");

    let key_path = root.join("_keys/secret.key");
    let meta = std::fs::metadata(&key_path).expect("the key was generated");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(
        root.join("_keys/token.key").exists(),
        "beside the token key"
    );
    let key = std::fs::read_to_string(&key_path).unwrap();
    assert!(
        server
            .terminate(std::time::Duration::from_secs(10))
            .is_some()
    );
    assert_eq!(files_containing(&root, key.trim()), Vec::<String>::new());
    assert_eq!(
        files_containing(&root, "hunter2-plaintext"),
        Vec::<String>::new()
    );

    let server = Server::start_with(bin(), root_s, &env);
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), key, "reused");
    let token = server.login(ADMIN, ADMIN_PASSWORD).await.unwrap();
    let (status, _, body) = server
        .post(
            "/api/v1/vault",
            &token,
            json!({"name": "api", "password": "other"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, list) = server.get("/api/v1/vault", &token).await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
}

#[test]
fn on_s3_secret_fields_without_a_key_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let defs = vault_definitions(dir.path());
    let out = std::process::Command::new(bin())
        .args([
            "serve",
            "--store",
            "s3://no-such-bucket/db",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--app", "none"])
        .env("BUCKETBASE_DEFINITIONS_DIR", &defs)
        // Should it get as far as the store, it fails fast.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("secret_key") && stderr.contains("BUCKETBASE_SECRET_KEY"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\"vault\""),
        "names what needs it: {stderr}"
    );
}

#[tokio::test]
async fn serve_signs_in_through_appointment360_with_the_preset() {
    let idp = spawn_fake_identity(vec![
        FakeUser::new("uuid-root", "root@contact360.test", "pw-root", "SuperAdmin"),
        FakeUser::new("uuid-ann", "ann@contact360.test", "pw-ann", "staff"),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        bin(),
        dir.path().to_str().unwrap(),
        &[
            ("BUCKETBASE_AUTH__PROVIDER", "graphql"),
            ("BUCKETBASE_AUTH__GRAPHQL__PRESET", "appointment360"),
            ("BUCKETBASE_AUTH__GRAPHQL__ENDPOINT", idp.url()),
        ],
    );
    let login = |email: &str, password: &str| {
        let url = format!("{}/api/auth/login", server.url);
        let body = json!({"email": email, "password": password});
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = login("root@contact360.test", "pw-root").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["user"]["role"], "SuperAdmin");
    let (status, _) = login("ann@contact360.test", "pw-ann").await;
    assert_eq!(status, 401, "the preset admits SuperAdmins only");
}
