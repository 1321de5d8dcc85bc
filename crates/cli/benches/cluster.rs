//! Scale-out benchmark (issue 14): 1, 2 and 3 `bucketbase serve` processes over one root.
//!
//! ```text
//! cargo bench -p bucketbase --bench cluster
//! ```
//!
//! For each process count it starts the release binary that many times on a fresh root
//! (local disk; and a SeaweedFS bucket when `BUCKETBASE_TEST_SEAWEEDFS_ENDPOINT` and
//! `BUCKETBASE_TEST_SEAWEEDFS_BUCKET` are set, as `scripts/test` sets them), defines a
//! `notes` collection, and drives closed-loop keep-alive clients spread evenly over the
//! processes:
//!
//! - `create`: `POST /api/v1/notes` (~100-byte records), `BENCH_CONNS` clients;
//! - `read`: `GET /api/v1/notes/{id}` of seeded records, `BENCH_CONNS` clients;
//! - `staleness` (two or more processes, default tailing bound): a create through the
//!   first process, then `GET` of it through the second every millisecond until it answers
//!   200, without any consistency header: the time from the create's answer to the first
//!   200.
//!
//! Each figure is the median of `BENCH_RUNS` runs. Timings are reported, never asserted.
//! All processes and the load generator share this machine's cores, so on a small machine
//! the figures show the protocol's cost more than a cluster's capacity.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BENCH_SECS` | 3 | measured seconds per run |
//! | `BENCH_RUNS` | 3 | runs per figure |
//! | `BENCH_CONNS` | 16 | clients |
//! | `BENCH_PROCS` | 1,2,3 | process counts |
//! | `BENCH_STALE_SAMPLES` | 50 | staleness samples per run |

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bucketbase_testkit::process::{ADMIN, ADMIN_PASSWORD, JWT_SECRET, Server};
use serde_json::json;

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_bucketbase"))
}

struct Cluster {
    servers: Vec<Server>,
    token: String,
    _dir: Option<tempfile::TempDir>,
}

async fn cluster(procs: usize, root: Option<(&str, &str)>) -> Cluster {
    let (dir, url, endpoint) = match root {
        None => {
            let dir = tempfile::tempdir().unwrap();
            let url = dir.path().to_str().unwrap().to_string();
            (Some(dir), url, None)
        }
        Some((bucket, endpoint)) => {
            let prefix = format!("bench-{}-{}", std::process::id(), rand_u64());
            (None, format!("s3://{bucket}/{prefix}"), Some(endpoint))
        }
    };
    let mut env = vec![
        ("BUCKETBASE_AUTH__JWT_SECRET", JWT_SECRET),
        ("BUCKETBASE_LOG", "warn"),
    ];
    if let Some(endpoint) = endpoint {
        env.push(("AWS_ENDPOINT_URL", endpoint));
    }
    let first = Server::start_with(bin(), &url, &env);
    let token = first.login(ADMIN, ADMIN_PASSWORD).await.unwrap();
    first.define_notes(&token).await;
    let mut servers = vec![first];
    for _ in 1..procs {
        servers.push(Server::start_with(bin(), &url, &env));
    }
    Cluster {
        servers,
        token,
        _dir: dir,
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0u8)
}

/// Closed-loop clients over the cluster's processes for `secs`: requests/s and p99 (ms).
async fn drive(c: &Cluster, conns: usize, secs: f64, request: Request) -> (f64, f64) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let counter = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..conns {
        let url = c.servers[i % c.servers.len()].url.clone();
        let (token, request, counter) = (c.token.clone(), request.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let start = Instant::now();
                let r = request(&client, &url, &token, n).send().await.unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                let _ = r.bytes().await;
                latencies.push(start.elapsed().as_secs_f64() * 1000.0);
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_by(f64::total_cmp);
    let p99 = all.get(all.len() * 99 / 100).copied().unwrap_or(f64::NAN);
    (all.len() as f64 / secs, p99)
}

async fn staleness(c: &Cluster, samples: usize, pause_ms: u64) -> (f64, f64) {
    let client = reqwest::Client::new();
    let (a, b) = (&c.servers[0], &c.servers[1]);
    let mut waits = Vec::new();
    for i in 0..samples {
        // A random pause first: writing right after the previous sample was seen would
        // always land just after the reader's tailer tick.
        // A pause up to one and a quarter tailing intervals spreads writes over its phase.
        tokio::time::sleep(Duration::from_millis(rand_u64() % pause_ms)).await;
        let id = format!("stale-{i}-{}", rand_u64());
        let (status, _, _) = a.post("/api/v1/notes", &c.token, json!({"id": id})).await;
        assert_eq!(status, 201);
        let written = Instant::now();
        loop {
            let r = client
                .get(format!("{}/api/v1/notes/{id}", b.url))
                .bearer_auth(&c.token)
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        waits.push(written.elapsed().as_secs_f64() * 1000.0);
    }
    waits.sort_by(f64::total_cmp);
    (waits[waits.len() / 2], waits[waits.len() * 99 / 100])
}

/// Builds the `n`th request of a scenario: (client, server URL, token, n).
type Request =
    Arc<dyn Fn(&reqwest::Client, &str, &str, usize) -> reqwest::RequestBuilder + Send + Sync>;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let secs: f64 = var("BENCH_SECS", "3").parse().unwrap();
    let runs: usize = var("BENCH_RUNS", "3").parse().unwrap();
    let conns: usize = var("BENCH_CONNS", "16").parse().unwrap();
    let samples: usize = var("BENCH_STALE_SAMPLES", "50").parse().unwrap();
    let procs: Vec<usize> = var("BENCH_PROCS", "1,2,3")
        .split(',')
        .map(|p| p.trim().parse().unwrap())
        .collect();
    let seaweed = match (
        std::env::var("BUCKETBASE_TEST_SEAWEEDFS_BUCKET"),
        std::env::var("BUCKETBASE_TEST_SEAWEEDFS_ENDPOINT"),
    ) {
        (Ok(b), Ok(e)) => Some((b, e)),
        _ => None,
    };
    let mut roots: Vec<(&str, Option<(&str, &str)>)> = vec![("local", None)];
    if let Some((b, e)) = &seaweed {
        roots.push(("seaweedfs", Some((b.as_str(), e.as_str()))));
    }
    println!("{conns} clients, {secs} s per run, median of {runs} runs");
    println!(
        "| root | processes | creates/s | create p99 ms | reads/s | read p99 ms | staleness p50 / p99 ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let create: Request = Arc::new(|client, url, token, n| {
        client
            .post(format!("{url}/api/v1/notes"))
            .bearer_auth(token)
            .json(&json!({"title": format!("note {n}"), "body": "x".repeat(64)}))
    });
    let read: Request = Arc::new(|client, url, token, n| {
        client
            .get(format!("{url}/api/v1/notes/seed-{}", n % 200))
            .bearer_auth(token)
    });
    for (name, root) in roots {
        for &p in &procs {
            let (mut creates, mut create_p99, mut reads, mut read_p99) =
                (vec![], vec![], vec![], vec![]);
            let (mut stale50, mut stale99) = (vec![], vec![]);
            for _ in 0..runs {
                let c = cluster(p, root).await;
                let (rps, p99) = drive(&c, conns, secs, create.clone()).await;
                creates.push(rps);
                create_p99.push(p99);
                for i in 0..200 {
                    let (s, _, _) = c.servers[0]
                        .post(
                            "/api/v1/notes",
                            &c.token,
                            json!({"id": format!("seed-{i}")}),
                        )
                        .await;
                    assert_eq!(s, 201);
                }
                // Every process has seen the seeds before reads start.
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let (rps, p99) = drive(&c, conns, secs, read.clone()).await;
                reads.push(rps);
                read_p99.push(p99);
                if p >= 2 {
                    let pause_ms = if root.is_some() { 1250 } else { 250 };
                    let (p50, p99) = staleness(&c, samples, pause_ms).await;
                    stale50.push(p50);
                    stale99.push(p99);
                }
            }
            let stale = if p >= 2 {
                format!("{:.0} / {:.0}", median(stale50), median(stale99))
            } else {
                "—".into()
            };
            println!(
                "| {name} | {p} | {:.0} | {:.1} | {:.0} | {:.2} | {stale} |",
                median(creates),
                median(create_p99),
                median(reads),
                median(read_p99),
            );
        }
    }
}
