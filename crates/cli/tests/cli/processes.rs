//! Several processes on one root: what the CLI writes while a server runs, two servers on
//! one store, and a log whose newest entries were removed.

use std::time::{Duration, Instant};

use bucketbase_testkit::process::{ADMIN, ADMIN_PASSWORD, JWT_SECRET, Server};
use serde_json::{Value, json};

use super::{bucketbase, seed};

/// A `bucketbase serve` child process of this build, with the token key the test's
/// servers share (see `bucketbase_testkit::process`).
pub fn serve(root: &str) -> Server {
    Server::start(bin(), root)
}

/// [`serve`] with `env` added (the token key only if `env` sets it).
pub fn serve_with(root: &str, env: &[(&str, &str)]) -> Server {
    Server::start_with(bin(), root, env)
}

pub fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_bucketbase"))
}

/// Runs `bucketbase serve` on `root`, expecting it to refuse to start; its stderr.
pub fn serve_refusal(root: &str) -> String {
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
    let err = String::from_utf8_lossy(&serve.stderr).into_owned();
    assert!(!serve.status.success(), "serve must refuse: {err}");
    err
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

/// Creates a user with `bucketbase user create` on `root`.
pub fn cli_create_user(root: &str, email: &str, role: &str, password: &str) {
    cli(
        &[
            "user", "create", "--store", root, "--email", email, "--role", role,
        ],
        Some(password),
    );
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
    let server = serve(root);
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
    let a = serve(root);
    let b = serve(root);
    let token = a.login(ADMIN, ADMIN_PASSWORD).await.unwrap();
    a.define_notes(&token).await;
    eventually("B serves the collection A defined", async || {
        (b.get("/api/v1/notes", &token).await.0 == 200).then_some(())
    })
    .await;
    let (status, _, _) = b
        .post(
            "/api/v1/notes",
            &token,
            json!({"id": "from-b", "text": "hello"}),
        )
        .await;
    assert_eq!(status, 201);
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

    let err = serve_refusal(root);
    assert!(err.contains("the log ends at position 3"), "{err}");
    assert!(
        !dir.path().join(format!("_log/{:020}.json", 4)).exists(),
        "no slot was reused"
    );
}

/// Read-your-writes across processes: B's tailer is slowed to a minute, so only the
/// request headers can make B see A's write at once.
#[tokio::test]
async fn read_your_writes_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let a = serve(root);
    let b = serve_with(
        root,
        &[
            ("BUCKETBASE_AUTH__JWT_SECRET", JWT_SECRET),
            ("BUCKETBASE_TAIL_INTERVAL_MS", "60000"),
            ("BUCKETBASE_MIN_SEQ_WAIT_MS", "300"),
        ],
    );
    let token = a.login(ADMIN, ADMIN_PASSWORD).await.unwrap();
    let client = reqwest::Client::new();
    a.define_notes(&token).await;
    let (status, written_at, _) = a
        .post(
            "/api/v1/notes",
            &token,
            json!({"id": "n1", "text": "written through A"}),
        )
        .await;
    assert_eq!(status, 201);
    let written = written_at.expect("a write answers with its log position");

    // Without a position, B answers from what it has: not the note yet.
    let (status, seq, _) = b.get_with("/api/v1/notes/n1", &token, &[]).await;
    assert_eq!(
        status, 404,
        "B's tailer is slow, so B has not seen the note"
    );
    assert!(seq.unwrap() < written);

    // With A's position, B catches up first.
    let min = written.to_string();
    let (status, seq, body) = b
        .get_with(
            "/api/v1/notes/n1",
            &token,
            &[("x-bucketbase-min-seq", &min)],
        )
        .await;
    assert_eq!(
        (status, body["data"]["text"].as_str()),
        (200, Some("written through A"))
    );
    assert!(seq.unwrap() >= written);

    // `latest` catches up too (a second note, so B has not seen it).
    let (status, _, _) = a.post("/api/v1/notes", &token, json!({"id": "n2"})).await;
    assert_eq!(status, 201);
    let (status, _, _) = b
        .get_with(
            "/api/v1/notes/n2",
            &token,
            &[("x-bucketbase-consistency", "latest")],
        )
        .await;
    assert_eq!(status, 200);

    // A position nobody has written: 503 with Retry-After once the wait runs out.
    let far = (written + 1_000).to_string();
    let r = client
        .get(format!("{}/api/v1/notes/n1", b.url))
        .bearer_auth(&token)
        .header("x-bucketbase-min-seq", &far)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "stale");
    // A malformed position is the client's mistake.
    let (status, _, body) = b
        .get_with(
            "/api/v1/notes/n1",
            &token,
            &[("x-bucketbase-min-seq", "soon")],
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
}

/// With the default bound (200 ms locally), a process that only reads sees another's
/// write within ten times the bound, and `/readyz` reports the tailer's lag.
#[tokio::test]
async fn staleness_is_bounded_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let a = serve(root);
    let b = serve(root);
    let token = a.login(ADMIN, ADMIN_PASSWORD).await.unwrap();
    a.define_notes(&token).await;
    let written = Instant::now();
    let bound = Duration::from_millis(200);
    loop {
        if b.get("/api/v1/notes", &token).await.0 == 200 {
            break;
        }
        assert!(
            written.elapsed() < bound * 10,
            "B did not see A's definition within ten times the tailing bound"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ready: Value = reqwest::get(format!("{}/readyz", b.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["data"]["status"], "ready");
    assert_eq!(ready["data"]["tail"]["interval_ms"], 200);
    assert!(ready["data"]["tail"]["since_success_ms"].as_u64().unwrap() < 2000);
}

/// Without a configured key, a local root keeps its own token key in `_keys/token.key`
/// (0600): a session survives a restart, and a second process accepts the first's tokens.
/// The key is never in the log or the view.
#[tokio::test]
async fn logins_survive_restarts_and_are_shared_on_a_local_root() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let first = serve_with(root, &[]);
    let token = first.login(ADMIN, ADMIN_PASSWORD).await.unwrap();
    let peer = serve_with(root, &[]);
    assert_eq!(
        peer.get("/api/auth/me", &token).await.0,
        200,
        "the peer accepts it"
    );
    drop((first, peer));

    let restarted = serve_with(root, &[]);
    let (status, me) = restarted.get("/api/auth/me", &token).await;
    assert_eq!((status, me["data"]["email"].as_str()), (200, Some(ADMIN)));

    let key = dir.path().join("_keys/token.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let key_text = std::fs::read_to_string(&key).unwrap();
    for entry in walk(dir.path()) {
        if entry.starts_with(dir.path().join("_keys")) {
            continue;
        }
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(key_text.trim()),
            "the token key leaked into {}",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// A process that cannot verify a token another process issued says why in its log.
#[tokio::test]
async fn a_token_signed_with_another_key_is_explained_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let a = serve(root);
    let token = a.login(ADMIN, ADMIN_PASSWORD).await.unwrap();
    let log = dir.path().join("b.log");
    let b = Server::start_logging_to(
        bin(),
        root,
        &[(
            "BUCKETBASE_AUTH__JWT_SECRET",
            "another key, not the one process A signs with",
        )],
        &log,
    );
    assert_eq!(b.get("/api/auth/me", &token).await.0, 401);
    drop(b);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("does not match this process's token key"),
        "{text}"
    );
}
