//! HTTP API load benchmark (issue 4): the real server, in-process, over a local-disk
//! store with fsync, driven by closed-loop keep-alive connections.
//!
//! ```text
//! cargo bench -p bucketbase-server --bench http [-- get|list|create|delete ...]
//! ```
//!
//! Set-up, fresh for each scenario and connection count so that a row does not depend on
//! what ran before: `Database::open_url(<temp dir>, DbOptions::default())` (so the
//! materialized view and checkpoints are on, as in production), the local identity
//! provider with a SuperAdmin, and `bucketbase_server::app` served by axum on
//! 127.0.0.1:0. The `notes` collection is defined through `POST /api/v1/collections` and
//! seeded through the engine in 1,000-record transactions. Every request carries the
//! SuperAdmin's bearer token.
//!
//! Scenarios, each run with every connection count of `BENCH_CONNS`:
//!
//! 1. `get`: `GET /api/v1/notes/{id}` of a random seeded record;
//! 2. `list`: `GET /api/v1/notes?topic=t7&per_page=20` (an indexed equality filter);
//! 3. `create`: `POST /api/v1/notes` (~200-byte records);
//! 4. `delete`: soft `DELETE /api/v1/notes/{id}`, each of a pool of records seeded for
//!    it just before the run deleted once.
//!
//! Each connection sends its next request as soon as the previous answer is read (a
//! closed loop), for `BENCH_WARMUP` seconds unmeasured and then `BENCH_SECS` measured.
//! The load generator is a single-threaded runtime on its own OS thread; the server has
//! its own multi-threaded runtime. On a small machine they compete for the same cores.
//! The allocator is mimalloc, as in the `bucketbase` binary.
//!
//! Reported per scenario and connection count: requests/s, latency percentiles (sorted
//! samples, no histogram), the mean, non-2xx answers and transport failures (`errors`),
//! and for writes how long the materialized view took to catch up after the run (and how
//! long rendering the collection's `index.json` takes at its final size). Each
//! figure is the median of `BENCH_RUNS` runs, with their range in brackets. Timings are
//! reported, never asserted.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BENCH_SECS` | 5 | measured seconds per run |
//! | `BENCH_WARMUP` | 1 | unmeasured seconds before each run |
//! | `BENCH_RUNS` | 3 | runs per figure |
//! | `BENCH_CONNS` | 1,32 | connection counts |
//! | `BENCH_RECORDS` | 10000 | seeded records |
//! | `BENCH_SERVER_THREADS` | the CPU count | server runtime worker threads |
//! | `BENCH_DIR` | the temp dir | where store roots are made (a real disk; a new top-level directory for figures that do not depend on what ran before: docs/benchmarks.md, session 8) |
//! | `BENCH_VIEW` | 1 | 0 turns the materialized view off (to see what it costs) |
//! | `BENCH_CHECKPOINT_EVERY` | 1000 | log entries between checkpoints (0 = none) |

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bucketbase_engine::materialize::render_index;
use bucketbase_engine::{CollectionName, Database, DbOptions, RecordId, SystemClock, TxnMeta};
use bucketbase_server::auth::IdentityProvider;
use bucketbase_server::auth::local::{LocalConfig, LocalProvider};
use bucketbase_server::auth::store::DbUserStore;
use bucketbase_server::{AppState, ServerSettings};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

// The allocator `bucketbase` itself runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ADMIN: (&str, &str) = ("root@example.com", "correct horse battery staple");
const JWT_SECRET: &[u8] = b"http-bench-secret-0123456789abcdef";
const SEED_BATCH: usize = 1000;
const TOPICS: usize = 20;

fn main() {
    // As the `bucketbase` binary runs (bucketbase_engine::memory).
    bucketbase_engine::memory::no_transparent_huge_pages().expect("huge pages off");
    let sections: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let cfg = Config::from_env();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.server_threads)
        .thread_name("server")
        .enable_all()
        .build()
        .expect("server runtime");
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "bucketbase HTTP bench: {cpus} CPUs, {} server threads + 1 client thread, {} seeded \
         records, {} s runs after {} s warm-up, medians of {} runs [range], stores in {}\n",
        cfg.server_threads,
        cfg.records,
        cfg.secs.as_secs_f64(),
        cfg.warmup.as_secs_f64(),
        cfg.runs,
        cfg.dir.display(),
    );
    print_header();
    // Create throughput (per connection count) sizes the delete pools.
    let mut create_rate: Vec<(usize, f64)> = Vec::new();
    let mut roots = Vec::new();
    for scenario in Scenario::ALL {
        if !sections.is_empty() && !sections.iter().any(|s| s == scenario.arg()) {
            continue;
        }
        for &conns in &cfg.conns {
            // A fresh server per row, so that a row does not depend on what ran before.
            let server = server_rt.block_on(Server::start(&cfg));
            let client = Arc::new(Client::new(server.addr, &server.token));
            client_rt.block_on(client.define_notes());
            let seeded = Arc::new(server_rt.block_on(seed(&server.db, cfg.records)));
            let mut samples = Vec::new();
            for _ in 0..cfg.runs {
                let work = match scenario {
                    Scenario::Get => Work::Get(seeded.clone()),
                    Scenario::List => Work::List,
                    Scenario::Create => Work::Create(AtomicUsize::new(0)),
                    Scenario::Delete => {
                        let n = delete_pool(&create_rate, conns, &cfg);
                        Work::Delete(server_rt.block_on(seed(&server.db, n)), AtomicUsize::new(0))
                    }
                };
                let records = server.notes();
                let mut sample = client_rt.block_on(measure(&client, Arc::new(work), conns, &cfg));
                let flush = Instant::now();
                server_rt.block_on(server.db.flush_view());
                sample.view_lag = flush.elapsed().as_secs_f64();
                sample.records = records;
                if scenario == Scenario::Create {
                    create_rate.push((conns, sample.rate));
                }
                samples.push(sample);
            }
            print_row(scenario, conns, &samples);
            if cfg.view && matches!(scenario, Scenario::Create | Scenario::Delete) {
                server.print_view_cost();
            }
            roots.push(server_rt.block_on(server.close()));
        }
    }
    drop(roots);
    println!();
    for scenario in Scenario::ALL {
        println!("target {:<8} {}", scenario.arg(), scenario.target());
    }
}

/// How many records to seed for one delete run: 1.5 times what the fastest create run
/// at this connection count would have deleted (warm-up included), at least 1,000.
fn delete_pool(create_rate: &[(usize, f64)], conns: usize, cfg: &Config) -> usize {
    let rate = create_rate
        .iter()
        .filter(|(c, _)| *c == conns)
        .map(|(_, r)| *r)
        .reduce(f64::max)
        .unwrap_or(3000.0);
    ((rate * (cfg.warmup + cfg.secs).as_secs_f64() * 1.5) as usize).max(1000)
}

struct Config {
    secs: Duration,
    warmup: Duration,
    runs: usize,
    conns: Vec<usize>,
    records: usize,
    server_threads: usize,
    dir: PathBuf,
    view: bool,
    checkpoint_every: u64,
}

impl Config {
    fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let num = |k: &str, d: f64| var(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Config {
            secs: Duration::from_secs_f64(num("BENCH_SECS", 5.0).max(0.1)),
            warmup: Duration::from_secs_f64(num("BENCH_WARMUP", 1.0).max(0.0)),
            runs: (num("BENCH_RUNS", 3.0) as usize).max(1),
            conns: var("BENCH_CONNS")
                .unwrap_or_else(|| "1,32".into())
                .split(',')
                .filter_map(|s| s.trim().parse().ok())
                .filter(|&n| n > 0)
                .collect(),
            records: (num("BENCH_RECORDS", 10_000.0) as usize).max(1),
            server_threads: (num("BENCH_SERVER_THREADS", cpus as f64) as usize).max(1),
            dir: var("BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from),
            view: var("BENCH_VIEW").is_none_or(|v| v != "0"),
            checkpoint_every: num(
                "BENCH_CHECKPOINT_EVERY",
                DbOptions::default().checkpoint_every as f64,
            ) as u64,
        }
    }
}

// Server --------------------------------------------------------------------------------

struct Server {
    db: Arc<Database>,
    addr: SocketAddr,
    token: String,
    serve: tokio::task::JoinHandle<()>,
    dir: tempfile::TempDir,
}

impl Server {
    /// Opens a fresh local root and serves the API on it (on the current runtime).
    async fn start(cfg: &Config) -> Server {
        let dir = tempfile::tempdir_in(&cfg.dir).expect("temp dir");
        let url = dir.path().display().to_string();
        let db = Arc::new(
            Database::open_url(
                &url,
                DbOptions {
                    materialize: cfg.view,
                    checkpoint_every: cfg.checkpoint_every,
                    ..DbOptions::default()
                },
            )
            .await
            .expect("open"),
        );
        let users = DbUserStore::install(db.clone()).await.expect("users");
        users
            .create_user(ADMIN.0, ADMIN.1, "SuperAdmin", "bench")
            .await
            .expect("admin");
        let now: bucketbase_server::auth::jwt::Now = Arc::new(|| {
            bucketbase_engine::Clock::now(&SystemClock)
                .timestamp()
                .max(0) as u64
        });
        // The token must outlive the whole run.
        let config = LocalConfig {
            access_ttl: Duration::from_secs(24 * 3600),
            ..LocalConfig::default()
        };
        let provider = LocalProvider::new(Arc::new(users), JWT_SECRET, config, now).expect("idp");
        let token = provider
            .login(ADMIN.0, ADMIN.1)
            .await
            .expect("login")
            .access_token;
        let state = AppState::new(
            db.clone(),
            Arc::new(provider),
            ServerSettings::default(),
            None,
        );
        let app = bucketbase_server::app(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let serve = tokio::spawn(async move {
            bucketbase_server::serve(listener, app)
                .await
                .expect("serve");
        });
        Server {
            db,
            addr,
            token,
            serve,
            dir,
        }
    }

    /// How many notes there are (live or soft-deleted).
    fn notes(&self) -> usize {
        let notes = CollectionName::parse("notes").expect("name");
        self.db
            .snapshot()
            .collection(&notes)
            .map_or(0, |c| c.docs.len())
    }

    /// Times a full render of the collection's `index.json` at its final size: what the
    /// materializer's first pass costs (later passes re-render only changed rows, and an
    /// index is rewritten at most once per ten times its last cost).
    fn print_view_cost(&self) {
        let notes = CollectionName::parse("notes").expect("name");
        let snap = self.db.snapshot();
        let Some(coll) = snap.collection(&notes) else {
            return;
        };
        let fields = ["topic".to_string(), "owner".to_string()];
        let mut size = 0;
        let mut times: Vec<f64> = (0..3)
            .map(|_| {
                let start = Instant::now();
                size = render_index(&notes, coll, &fields).len();
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "    view: a full render of notes/index.json ({} records, {:.1} MiB) takes {:.0} ms",
            coll.docs.len(),
            size as f64 / (1024.0 * 1024.0),
            times[1],
        );
    }

    /// Stops serving (connections still open finish on their own) and removes the root.
    /// Stops serving; the root is handed back, to be removed when the bench ends (on
    /// ext4 without a journal, removed files slow file creation near them for minutes:
    /// docs/benchmarks.md, session 8, so removing a row's root would slow the next row).
    async fn close(self) -> tempfile::TempDir {
        self.db.flush_view().await;
        self.serve.abort();
        self.dir
    }
}

/// Creates `n` notes through the engine, in large transactions; returns their ids.
async fn seed(db: &Database, n: usize) -> Vec<String> {
    let notes = CollectionName::parse("notes").expect("name");
    let meta = TxnMeta::new("bench", "http-bench");
    let ids: Vec<RecordId> = (0..n).map(|_| db.new_id()).collect();
    for (chunk_no, chunk) in ids.chunks(SEED_BATCH).enumerate() {
        let docs: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let mut doc = note(chunk_no * SEED_BATCH + i);
                doc["id"] = json!(id.as_str());
                doc
            })
            .collect();
        db.transact(&meta, |tx| {
            docs.iter()
                .try_for_each(|doc| tx.create(&notes, doc.clone()).map(drop))
        })
        .await
        .expect("seed");
    }
    db.flush_view().await;
    ids.iter().map(|id| id.as_str().to_string()).collect()
}

/// A ~200-byte note, deterministic in `i`; topics `t0`..`t19` in turn.
fn note(i: usize) -> Value {
    json!({
        "title": format!("Note {i}: follow up with the front desk about room {}", i % 300),
        "topic": format!("t{}", i % TOPICS),
        "owner": format!("user-{}", i % 50),
        "body": "Guest asked for a late check-out and extra towels; confirm with housekeeping.",
        "priority": i % 5,
        "done": i.is_multiple_of(3),
    })
}

// Client --------------------------------------------------------------------------------

type Conn = SendRequest<Full<Bytes>>;

/// Builds requests for the server; each connection is one HTTP/1.1 keep-alive socket.
struct Client {
    addr: SocketAddr,
    host: HeaderValue,
    bearer: HeaderValue,
}

impl Client {
    fn new(addr: SocketAddr, token: &str) -> Self {
        Client {
            addr,
            host: HeaderValue::from_str(&addr.to_string()).expect("host"),
            bearer: HeaderValue::from_str(&format!("Bearer {token}")).expect("token"),
        }
    }

    async fn connect(&self) -> Conn {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (conn, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(driver);
        conn
    }

    fn request(&self, method: Method, path: &str, body: Option<Bytes>) -> Request<Full<Bytes>> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.host)
            .header(AUTHORIZATION, &self.bearer);
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        req.body(Full::new(body.unwrap_or_default()))
            .expect("request")
    }

    /// Defines the `notes` collection as the SuperAdmin.
    async fn define_notes(&self) {
        let def = json!({
            "name": "notes",
            "soft_delete": true,
            "index": ["topic", "owner"],
            "schema": {"type": "object", "required": ["title"], "properties": {
                "title": {"type": "string", "minLength": 1},
                "topic": {"type": "string"},
                "owner": {"type": "string"},
                "body": {"type": "string"},
                "priority": {"type": "integer", "minimum": 0},
                "done": {"type": "boolean"}}}
        });
        let mut conn = self.connect().await;
        let req = self.request(
            Method::POST,
            "/api/v1/collections",
            Some(def.to_string().into()),
        );
        let (status, body) = send(&mut conn, req).await.expect("define");
        assert!(
            status.is_success(),
            "define notes: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
}

async fn send(
    conn: &mut Conn,
    req: Request<Full<Bytes>>,
) -> Result<(hyper::StatusCode, Bytes), hyper::Error> {
    conn.ready().await?;
    let resp = conn.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

// Scenarios -----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Get,
    List,
    Create,
    Delete,
}

impl Scenario {
    const ALL: [Scenario; 4] = [
        Scenario::Get,
        Scenario::List,
        Scenario::Create,
        Scenario::Delete,
    ];

    fn arg(self) -> &'static str {
        match self {
            Scenario::Get => "get",
            Scenario::List => "list",
            Scenario::Create => "create",
            Scenario::Delete => "delete",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Scenario::Get => "GET by id",
            Scenario::List => "list topic=t7",
            Scenario::Create => "create",
            Scenario::Delete => "soft delete",
        }
    }

    fn target(self) -> &'static str {
        match self {
            Scenario::Get => "p99 < 0.5 ms (Django+DRF+PostgreSQL, same kind of machine: 3.3 ms)",
            Scenario::List => "none set",
            Scenario::Create => "p99 < 3 ms (Django+DRF+PostgreSQL: 10 ms)",
            Scenario::Delete => "p99 < 3 ms",
        }
    }
}

/// What each connection sends next.
enum Work {
    Get(Arc<Vec<String>>),
    List,
    Create(AtomicUsize),
    /// A pool of ids, each deleted once; `None` from [`Work::next`] once it runs out.
    Delete(Vec<String>, AtomicUsize),
}

impl Work {
    fn next(&self, client: &Client) -> Option<Request<Full<Bytes>>> {
        Some(match self {
            Work::Get(ids) => {
                let id = &ids[rand::random_range(0..ids.len())];
                client.request(Method::GET, &format!("/api/v1/notes/{id}"), None)
            }
            Work::List => client.request(Method::GET, "/api/v1/notes?topic=t7&per_page=20", None),
            Work::Create(n) => {
                let body = note(n.fetch_add(1, Ordering::Relaxed)).to_string();
                client.request(Method::POST, "/api/v1/notes", Some(body.into()))
            }
            Work::Delete(ids, next) => {
                let id = ids.get(next.fetch_add(1, Ordering::Relaxed))?;
                client.request(Method::DELETE, &format!("/api/v1/notes/{id}"), None)
            }
        })
    }
}

// Measurement ---------------------------------------------------------------------------

/// One run of one scenario at one connection count; times in milliseconds.
#[derive(Default)]
struct Sample {
    rate: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    mean: f64,
    errors: usize,
    view_lag: f64,
    /// Notes in the collection when the run started.
    records: usize,
    /// The delete pool ran out before the end of the run.
    ran_out: bool,
    first_error: Option<String>,
}

/// What one connection saw in one phase.
#[derive(Default)]
struct Loop {
    latencies: Vec<u64>,
    errors: usize,
    ran_out: bool,
    first_error: Option<String>,
}

async fn measure(client: &Arc<Client>, work: Arc<Work>, conns: usize, cfg: &Config) -> Sample {
    let mut pool = Vec::with_capacity(conns);
    for _ in 0..conns {
        pool.push(client.connect().await);
    }
    let (pool, _) = phase(client, &work, pool, cfg.warmup).await;
    let start = Instant::now();
    let (_, loops) = phase(client, &work, pool, cfg.secs).await;
    let elapsed = start.elapsed().as_secs_f64();
    let mut latencies: Vec<u64> = loops.iter().flat_map(|l| &l.latencies).copied().collect();
    latencies.sort_unstable();
    let at = |q: f64| {
        let n = latencies.len();
        let i = ((q * n as f64).ceil() as usize).clamp(1, n.max(1)) - 1;
        latencies.get(i).map_or(0.0, |&ns| ns as f64 / 1e6)
    };
    let total: u64 = latencies.iter().sum();
    Sample {
        rate: latencies.len() as f64 / elapsed,
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        p999: at(0.999),
        mean: total as f64 / latencies.len().max(1) as f64 / 1e6,
        errors: loops.iter().map(|l| l.errors).sum(),
        view_lag: 0.0,
        records: 0,
        ran_out: loops.iter().any(|l| l.ran_out),
        first_error: loops.into_iter().find_map(|l| l.first_error),
    }
}

/// Runs every connection in a closed loop for `length`; hands the connections back.
async fn phase(
    client: &Arc<Client>,
    work: &Arc<Work>,
    pool: Vec<Conn>,
    length: Duration,
) -> (Vec<Conn>, Vec<Loop>) {
    let end = Instant::now() + length;
    let tasks: Vec<_> = pool
        .into_iter()
        .map(|mut conn| {
            let (client, work) = (client.clone(), work.clone());
            tokio::spawn(async move {
                let mut seen = Loop::default();
                while Instant::now() < end {
                    let Some(req) = work.next(&client) else {
                        seen.ran_out = true;
                        break;
                    };
                    let start = Instant::now();
                    let answer = send(&mut conn, req).await;
                    let latency = start.elapsed().as_nanos() as u64;
                    let failure = match answer {
                        Ok((status, _)) if status.is_success() => None,
                        Ok((status, body)) => {
                            Some(format!("{status} {}", String::from_utf8_lossy(&body)))
                        }
                        Err(e) => {
                            conn = client.connect().await;
                            Some(format!("transport: {e}"))
                        }
                    };
                    if let Some(failure) = failure {
                        seen.errors += 1;
                        seen.first_error.get_or_insert(failure);
                    }
                    seen.latencies.push(latency);
                }
                (conn, seen)
            })
        })
        .collect();
    let mut pool = Vec::with_capacity(tasks.len());
    let mut loops = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (conn, seen) = task.await.expect("connection task");
        pool.push(conn);
        loops.push(seen);
    }
    (pool, loops)
}

// Report --------------------------------------------------------------------------------

/// Reads one figure of a run.
type Figure = fn(&Sample) -> f64;

const COLUMNS: [&str; 7] = [
    "req/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "p99.9 ms",
    "mean ms",
    "view lag s",
];

fn print_header() {
    print!("{:<14}{:>6}{:>8}", "scenario", "conns", "records");
    for c in COLUMNS {
        print!("{c:>21}");
    }
    println!("{:>8}", "errors");
}

fn print_row(scenario: Scenario, conns: usize, samples: &[Sample]) {
    let records = samples.first().map_or(0, |s| s.records);
    print!("{:<14}{conns:>6}{records:>8}", scenario.label());
    let writes = matches!(scenario, Scenario::Create | Scenario::Delete);
    let figures: [(Figure, bool); 7] = [
        (|s| s.rate, true),
        (|s| s.p50, true),
        (|s| s.p90, true),
        (|s| s.p99, true),
        (|s| s.p999, true),
        (|s| s.mean, true),
        (|s| s.view_lag, writes),
    ];
    for (figure, shown) in figures {
        let cell = if shown {
            spread(samples, figure)
        } else {
            "-".into()
        };
        print!("{cell:>21}");
    }
    println!("{:>8}", samples.iter().map(|s| s.errors).sum::<usize>());
    if let Some(e) = samples.iter().find_map(|s| s.first_error.as_deref()) {
        println!(
            "    first error: {}",
            e.chars().take(300).collect::<String>()
        );
    }
    if samples.iter().any(|s| s.ran_out) {
        println!("    the delete pool ran out before the end of a run (that run is shorter)");
    }
}

/// `median [min-max]` of one figure over the runs, with 3 significant-ish digits.
fn spread(samples: &[Sample], figure: Figure) -> String {
    let mut v: Vec<f64> = samples.iter().map(figure).collect();
    v.sort_by(f64::total_cmp);
    let (lo, mid, hi) = (v[0], v[v.len() / 2], v[v.len() - 1]);
    let digits = match hi {
        h if h >= 100.0 => 0,
        h if h >= 10.0 => 1,
        h if h >= 1.0 => 2,
        _ => 3,
    };
    format!("{mid:.digits$} [{lo:.digits$}-{hi:.digits$}]")
}
