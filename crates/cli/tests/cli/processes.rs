//! Several processes on one root: what the CLI writes while a server runs, two servers on
//! one store, and a log whose newest entries were removed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{bucketbase, seed};

const ADMIN: &str = "admin@localhost";
const ADMIN_PASSWORD: &str = "correct horse battery staple";
const JWT_SECRET: &str = "a shared token key for the two test server processes";

/// A `bucketbase serve` process on a root, stopped when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(root: &str) -> Server {
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
            .env("BUCKETBASE_AUTH__JWT_SECRET", JWT_SECRET)
            .env("BUCKETBASE_ADMIN_EMAIL", ADMIN)
            .env("BUCKETBASE_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = lines
            .map_while(|l| l.ok())
            .find_map(|l| {
                l.split_once(" on http://")
                    .map(|(_, u)| format!("http://{u}"))
            })
            .expect("the server prints its address");
        Server { child, url }
    }

    async fn login(&self, email: &str, password: &str) -> Option<String> {
        let r: Value = reqwest::Client::new()
            .post(format!("{}/api/auth/login", self.url))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["data"]["access_token"].as_str().map(str::to_string)
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` until it yields a value. The deadline only bounds a failing test; the
/// tailer's bound is 200 ms on a local root.
async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn cli(args: &[&str], password: Option<&str>) {
    let mut cmd = bucketbase();
    cmd.args(args);
    if let Some(p) = password {
        cmd.env("BUCKETBASE_PASSWORD", p);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server that only reads still sees what the CLI commits: a new user can log in, and a
/// role change shows in `/me`, without the server writing anything in between.
#[tokio::test]
async fn a_reading_server_sees_what_the_cli_commits() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let server = Server::start(root);
    assert!(server.login(ADMIN, ADMIN_PASSWORD).await.is_some());

    let (email, password) = ("staff@example.com", "a staff member's password");
    cli(
        &[
            "user", "create", "--store", root, "--email", email, "--role", "staff",
        ],
        Some(password),
    );
    let token = eventually("the new user logs in", async || {
        server.login(email, password).await
    })
    .await;
    let (status, me) = server.get("/api/auth/me", &token).await;
    assert_eq!((status, me["data"]["role"].as_str()), (200, Some("staff")));

    cli(
        &[
            "user", "set-role", "--store", root, "--email", email, "--role", "manager",
        ],
        None,
    );
    eventually("the role change reaches /me", async || {
        let (_, me) = server.get("/api/auth/me", &token).await;
        (me["data"]["role"] == "manager").then_some(())
    })
    .await;
}

/// A collection defined through one server is served by another on the same root, and a
/// record written through the second is read through the first.
#[tokio::test]
async fn a_second_server_sees_definitions_of_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let a = Server::start(root);
    let b = Server::start(root);
    let token = a.login(ADMIN, ADMIN_PASSWORD).await.unwrap();
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/api/v1/collections", a.url))
        .bearer_auth(&token)
        .json(&json!({"name": "notes", "schema": {"type": "object"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    eventually("B serves the collection A defined", async || {
        (b.get("/api/v1/notes", &token).await.0 == 200).then_some(())
    })
    .await;
    let r = client
        .post(format!("{}/api/v1/notes", b.url))
        .bearer_auth(&token)
        .json(&json!({"id": "from-b", "text": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    eventually("A reads the record written through B", async || {
        (a.get("/api/v1/notes/from-b", &token).await.0 == 200).then_some(())
    })
    .await;
}

/// Removing the newest log entries is caught by `audit verify` and refused by `serve`,
/// which would otherwise answer 404 for acknowledged records and reuse their positions.
#[tokio::test]
async fn removing_the_newest_log_entries_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    seed(root, 6).await;
    for seq in 4..=6 {
        std::fs::remove_file(dir.path().join(format!("_log/{seq:020}.json"))).unwrap();
    }
    let verify = bucketbase()
        .args(["audit", "verify", "--store", root])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(verify.status.code(), Some(1), "{out}");
    assert!(out.contains("BROKEN at log position 4"), "{out}");
    assert!(out.contains("view watermark"), "{out}");

    let serve = bucketbase()
        .args([
            "serve",
            "--store",
            root,
            "--listen",
            "127.0.0.1:0",
            "--app",
            "none",
        ])
        .env("BUCKETBASE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&serve.stderr);
    assert!(!serve.status.success(), "{err}");
    assert!(err.contains("the log ends at position 3"), "{err}");
    assert!(
        !dir.path().join(format!("_log/{:020}.json", 4)).exists(),
        "no slot was reused"
    );
}
