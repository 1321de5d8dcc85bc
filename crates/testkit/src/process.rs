//! `bucketbase serve` as a child process: started on port 0 on a root, its address read
//! from its first lines, killed (SIGKILL) when dropped. The admin is created from
//! [`ADMIN`] / [`ADMIN_PASSWORD`] on first start.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

pub const ADMIN: &str = "admin@localhost";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";
pub const JWT_SECRET: &str = "a shared token key for the two test server processes";

/// A `bucketbase serve` process on a root, stopped when dropped.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    /// A server with the token key shared by the test's servers.
    pub fn start(bin: &Path, root: &str) -> Server {
        Server::start_with(bin, root, &[("BUCKETBASE_AUTH__JWT_SECRET", JWT_SECRET)])
    }

    /// A server with `env` added to its environment (the admin's e-mail and password
    /// are set; the token key only if `env` sets it).
    pub fn start_with(bin: &Path, root: &str, env: &[(&str, &str)]) -> Server {
        Server::spawn(bin, root, env, Stdio::inherit())
    }

    /// [`Server::start_with`], its log (stderr) written to `log`.
    pub fn start_logging_to(bin: &Path, root: &str, env: &[(&str, &str)], log: &Path) -> Server {
        let file = std::fs::File::create(log).expect("a log file");
        Server::spawn(bin, root, env, Stdio::from(file))
    }

    fn spawn(bin: &Path, root: &str, env: &[(&str, &str)], stderr: Stdio) -> Server {
        let mut child = Command::new(bin)
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
            .env("BUCKETBASE_ADMIN_EMAIL", ADMIN)
            .env("BUCKETBASE_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
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

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn login(&self, email: &str, password: &str) -> Option<String> {
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

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let (status, _, body) = self.get_with(path, token, &[]).await;
        (status, body)
    }

    /// A POST of a JSON body: status, `X-Bucketbase-Seq`, body.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Option<u64>, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), seq_of(&r), r.json().await.unwrap())
    }

    /// Defines the schemaless collection `notes` (as SuperAdmin); its log position.
    pub async fn define_notes(&self, token: &str) -> u64 {
        let (status, seq, body) = self
            .post(
                "/api/v1/collections",
                token,
                json!({"name": "notes", "schema": {"type": "object"}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        seq.unwrap()
    }

    /// A GET with extra headers: status, `X-Bucketbase-Seq`, body.
    pub async fn get_with(
        &self,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Option<u64>, Value) {
        let mut request = reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .bearer_auth(token);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let r = request.send().await.unwrap();
        (r.status().as_u16(), seq_of(&r), r.json().await.unwrap())
    }
}

pub fn seq_of(r: &reqwest::Response) -> Option<u64> {
    r.headers()
        .get("x-bucketbase-seq")
        .and_then(|v| v.to_str().ok()?.parse().ok())
}

impl Server {
    /// Sends SIGTERM (a graceful shutdown) and waits up to `within` for the process to
    /// exit: its exit status, or `None` if it is still running then.
    pub fn terminate(&mut self, within: std::time::Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "could not signal the server");
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates `writers * each` records concurrently: writer `w` posts `body(w, i)` for
/// `i` in `0..each` to `urls[w % urls.len()]` (a collection's URL, on one server or
/// several) as `token`. Returns the created records (`data`), each checked to be 201.
pub async fn create_concurrently(
    urls: &[String],
    token: &str,
    writers: usize,
    each: usize,
    body: impl Fn(usize, usize) -> Value + Clone + Send + 'static,
) -> Vec<Value> {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (url, token, body) = (
            urls[w % urls.len()].clone(),
            token.to_string(),
            body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut created = Vec::with_capacity(each);
            for i in 0..each {
                let r = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body(w, i))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                let answer: Value = r.json().await.unwrap();
                created.push(answer["data"].clone());
            }
            created
        }));
    }
    let mut all = Vec::with_capacity(writers * each);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}
