//! Engine benchmarks: commit throughput, one large transaction, start-up time and memory.
//!
//! ```text
//! cargo bench -p bucketbase-engine --bench engine [-- commits|batch|startup ...]
//! ```
//!
//! 1. `commits`: single-document commits per second with 1, 16 and 64 concurrent writer
//!    tasks, each committing its share of the run (~200-byte documents, unique ids, one
//!    transaction after another) on `memory://`, a local directory (fsync on), the same
//!    with the materialized view on, and S3. Checkpoints and (but for that one row) the
//!    view writer are off. In brackets: mean transactions per log entry (group commit).
//! 2. `batch`: latency of one transaction of 1,000 documents (after a warm-up one).
//! 3. `startup`: builds a local root of N record-like documents (~250 bytes of JSON each)
//!    in 1,000-document transactions (`ingest`: the sum of their latencies), writes a
//!    checkpoint (`ckpt wr`) and closes it; then opens it in fresh child processes (this
//!    binary, re-executed) and reports the open time and the resident memory (`VmRSS`
//!    before and after, peak `VmHWM`) against the documents' JSON size (the sum of their
//!    stored canonical JSON).
//!
//! Every figure is the median of `BENCH_RUNS` runs; timings are reported, never asserted.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BENCH_RUNS` | 5 | runs per figure |
//! | `BENCH_COMMITS` | 4096 | commits per run on local disk (8 times as many on memory) |
//! | `BENCH_S3_COMMITS` | 512 | commits per run on S3 |
//! | `BENCH_SIZES` | 100000,1000000 | document counts for `startup` (empty: skip it) |
//! | `BENCH_DIR` | the temp dir | where local roots are made (make it a real disk) |
//! | `BUCKETBASE_TEST_S3_BUCKET` | unset | adds S3 rows at `s3://$it/bench-<random>` (deleted afterwards), configured by the `AWS_*` variables (`AWS_ENDPOINT_URL` etc.); `BENCH_SKIP_S3=1` drops them |
//!
//! A quicker run: `BENCH_RUNS=3 BENCH_SIZES=100000 cargo bench -p bucketbase-engine --bench engine`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bucketbase_engine::{
    CollectionName, Database, DbOptions, DynStore, RecordId, StoreUrl, TxnMeta, checkpoint,
};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

/// Set in the child process: the root to open.
const CHILD_ENV: &str = "BUCKETBASE_BENCH_OPEN_ROOT";
const WRITERS: [usize; 3] = [1, 16, 64];
const BATCH: usize = 1000;

fn main() {
    if let Ok(root) = std::env::var(CHILD_ENV) {
        return child_open(&root);
    }
    // `cargo bench` passes `--bench`; other arguments pick sections.
    let sections: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |s: &str| sections.is_empty() || sections.iter().any(|x| x == s);
    let cfg = Config::from_env();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "bucketbase engine bench: medians of {} runs, {cpus} CPUs, local roots in {}\n",
        cfg.runs,
        cfg.dir.display(),
    );
    if want("commits") {
        rt.block_on(commits(&cfg));
    }
    if want("batch") {
        rt.block_on(batch(&cfg));
    }
    if want("startup") && !cfg.sizes.is_empty() {
        startup(&cfg, &rt);
    }
}

struct Config {
    runs: usize,
    commits: usize,
    s3_commits: usize,
    sizes: Vec<usize>,
    dir: PathBuf,
    targets: Vec<Target>,
}

impl Config {
    fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let num = |k: &str, d: usize| var(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        let sizes = var("BENCH_SIZES").unwrap_or_else(|| "100000,1000000".into());
        let skip_s3 = var("BENCH_SKIP_S3").is_some_and(|v| v != "0");
        let s3 = var("BUCKETBASE_TEST_S3_BUCKET").filter(|_| !skip_s3);
        Config {
            runs: num("BENCH_RUNS", 5).max(1),
            commits: num("BENCH_COMMITS", 4096).max(64),
            s3_commits: num("BENCH_S3_COMMITS", 512).max(64),
            sizes: sizes
                .split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect(),
            dir: var("BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from),
            targets: [Target::Memory, Target::Local]
                .into_iter()
                .chain(s3.map(Target::S3))
                .collect(),
        }
    }
}

#[derive(Clone)]
enum Target {
    Memory,
    Local,
    S3(String),
}

/// An open database, with its temp dir (kept until closed) or S3 prefix (emptied).
struct Opened {
    db: Database,
    _dir: Option<tempfile::TempDir>,
    s3: Option<DynStore>,
}

impl Target {
    fn label(&self) -> String {
        match self {
            Target::Memory => "memory://".into(),
            Target::Local => "local disk (fsync)".into(),
            Target::S3(bucket) => format!("s3://{bucket}"),
        }
    }

    async fn open(&self, cfg: &Config, materialize: bool) -> Opened {
        let dir = matches!(self, Target::Local)
            .then(|| tempfile::tempdir_in(&cfg.dir).expect("temp dir"));
        let url = match self {
            Target::Memory => "memory://".to_string(),
            Target::Local => dir.as_ref().unwrap().path().display().to_string(),
            Target::S3(bucket) => format!("s3://{bucket}/bench-{:016x}", rand::random::<u64>()),
        };
        let db = Database::open_url(&url, options(materialize))
            .await
            .expect("open");
        let s3 = matches!(self, Target::S3(_)).then(|| db.store().clone());
        Opened { db, _dir: dir, s3 }
    }
}

impl Opened {
    async fn close(self) {
        self.db.close().await;
        if let Some(store) = self.s3 {
            let keys = store.list(None).map_ok(|m| m.location).boxed();
            let _ = store.delete_stream(keys).try_collect::<Vec<_>>().await;
        }
    }
}

fn options(materialize: bool) -> DbOptions {
    DbOptions {
        materialize,
        checkpoint_every: 0,
        ..Default::default()
    }
}

fn name(s: &str) -> CollectionName {
    CollectionName::parse(s).expect("collection name")
}

fn rid(s: String) -> RecordId {
    RecordId::parse(&s).expect("record id")
}

fn meta() -> TxnMeta {
    TxnMeta::new("bench", "engine-bench")
}

// 1. Commit throughput ------------------------------------------------------------------

async fn commits(cfg: &Config) {
    println!("1. Single-document commits/s [mean txns per log entry]");
    println!(
        "{:<28}{:>8}{:>18}{:>18}{:>18}",
        "store", "commits", "1 writer", "16 writers", "64 writers"
    );
    // Each store with the view off, and local disk once more with it on.
    let rows = cfg.targets.iter().flat_map(|t| {
        let view = matches!(t, Target::Local).then_some((t, true));
        [Some((t, false)), view]
    });
    for (target, materialize) in rows.flatten() {
        let total = match target {
            Target::Memory => cfg.commits * 8,
            Target::Local => cfg.commits,
            Target::S3(_) => cfg.s3_commits,
        };
        let view = if materialize { " + view" } else { "" };
        print!("{:<28}{total:>8}", format!("{}{view}", target.label()));
        for writers in WRITERS {
            let mut runs = Vec::new();
            for _ in 0..cfg.runs {
                runs.push(commit_run(cfg, target, materialize, writers, total).await);
            }
            let [rate, per_entry] = medians(runs);
            print!("{:>18}", format!("{rate:.0} [{per_entry:.1}]"));
            std::io::Write::flush(&mut std::io::stdout()).ok();
        }
        println!();
    }
    println!();
}

/// Returns commits per second and mean transactions per log entry.
async fn commit_run(
    cfg: &Config,
    target: &Target,
    view: bool,
    writers: usize,
    total: usize,
) -> [f64; 2] {
    let opened = target.open(cfg, view).await;
    let db = Arc::new(opened.db);
    let per_writer = total / writers;
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let db = db.clone();
            tokio::spawn(async move {
                let (items, meta) = (name("items"), meta());
                for i in 0..per_writer {
                    let (id, doc) = (rid(format!("w{w}-{i}")), small_doc(w, i));
                    db.transact(&meta, |tx| tx.put(&items, &id, &doc))
                        .await
                        .expect("commit");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer task");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let m = db.metrics().snapshot();
    let db = Arc::into_inner(db).expect("writers are done");
    Opened { db, ..opened }.close().await;
    let per_entry = m.txns as f64 / m.entries.max(1) as f64;
    [(per_writer * writers) as f64 / elapsed, per_entry]
}

/// A ~200-byte document.
fn small_doc(writer: usize, i: usize) -> Value {
    const STATUS: [&str; 3] = ["open", "in_progress", "done"];
    json!({
        "assignee": format!("user-{}", (writer * 7 + i) % 50),
        "n": i,
        "priority": i % 5,
        "status": STATUS[i % 3],
        "tags": ["bench", "commit"],
        "title": format!("Follow up on request {writer}-{i} from the front desk"),
        "writer": writer,
    })
}

// 2. One large transaction --------------------------------------------------------------

async fn batch(cfg: &Config) {
    println!("2. One transaction of {BATCH} documents (~250 B each)");
    println!("{:<28}{:>12}", "store", "latency");
    for target in &cfg.targets {
        let mut runs = Vec::new();
        for run in 0..cfg.runs as u64 {
            let opened = target.open(cfg, false).await;
            commit_records(&opened.db, 2 * run * BATCH as u64, BATCH).await;
            runs.push([commit_records(&opened.db, (2 * run + 1) * BATCH as u64, BATCH).await]);
            opened.close().await;
        }
        let [latency] = medians(runs);
        println!("{:<28}{:>12}", target.label(), ms(latency));
    }
    println!();
}

/// Commits records `first..first + n` in one transaction; returns how long the
/// transaction took (not counting making the documents).
async fn commit_records(db: &Database, first: u64, n: usize) -> f64 {
    let records = name("records");
    let docs: Vec<(RecordId, Value)> = (first..first + n as u64)
        .map(|i| (rid(format!("r{i:08}")), record(i)))
        .collect();
    let start = Instant::now();
    db.transact(&meta(), |tx| {
        docs.iter()
            .try_for_each(|(id, doc)| tx.put(&records, id, doc))
    })
    .await
    .expect("commit");
    start.elapsed().as_secs_f64()
}

/// A ~250-byte record-like document (a booking), deterministic in `i`.
fn record(i: u64) -> Value {
    const FIRST: [&str; 8] = [
        "Ana", "Bruno", "Chloé", "David", "Elif", "Farah", "Gus", "Hana",
    ];
    const LAST: [&str; 8] = [
        "Silva", "Okafor", "Dubois", "Nowak", "Yilmaz", "Haddad", "Costa", "Sato",
    ];
    const CITY: [&str; 4] = ["Lisbon", "Porto", "Faro", "Braga"];
    const SOURCE: [&str; 3] = ["direct", "airbnb", "booking"];
    const STATUS: [&str; 4] = ["confirmed", "pending", "cancelled", "checked_out"];
    let h = splitmix(i);
    let pick = |shift: u32, len: usize| ((h >> shift) as usize) % len;
    let (first, last) = (FIRST[pick(0, 8)], LAST[pick(3, 8)]);
    json!({
        "amount_cents": 8_000 + h % 90_000,
        "check_in": format!("2025-{:02}-{:02}", 1 + h % 12, 1 + (h >> 8) % 28),
        "city": CITY[pick(16, 4)],
        "email": format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), i % 1000),
        "guest": format!("{first} {last}"),
        "guests": 1 + (h >> 20) % 4,
        "nights": 1 + (h >> 24) % 14,
        "paid": !h.is_multiple_of(3),
        "phone": format!("+351 9{:08}", h % 100_000_000),
        "property": format!("prop-{:04}", (h >> 28) % 2000),
        "source": SOURCE[pick(40, 3)],
        "status": STATUS[pick(44, 4)],
    })
}

fn splitmix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// 3. Start-up time and resident memory --------------------------------------------------

fn startup(cfg: &Config, rt: &tokio::runtime::Runtime) {
    println!("3. Start-up: open a local root from its checkpoint, in a fresh process");
    println!(
        "     docs   ingest  ckpt wr       JSON checkpoint      open  RSS before   RSS after   \
         RSS delta  delta/JSON    peak RSS"
    );
    for &n in &cfg.sizes {
        let dir = tempfile::tempdir_in(&cfg.dir).expect("temp dir");
        let root = dir.path().join("db");
        let [ingest, json_bytes, checkpoint_secs, checkpoint_bytes] = rt.block_on(build(&root, n));
        let [open, before, after, peak] =
            medians((0..cfg.runs).map(|_| run_child(&root, n)).collect());
        println!(
            "{n:>9}{:>9}{:>9}{:>11}{:>11}{:>10}{:>12}{:>12}{:>12}{:>11.2}x{:>12}",
            format!("{ingest:.1} s"),
            format!("{checkpoint_secs:.1} s"),
            mib(json_bytes),
            mib(checkpoint_bytes),
            ms(open),
            mib(before),
            mib(after),
            mib(after - before),
            (after - before) / json_bytes,
            mib(peak),
        );
    }
    println!();
}

/// Builds a local root of `n` records in 1,000-document transactions, checkpoints it and
/// closes it. Returns [ingest seconds, JSON bytes, checkpoint seconds, checkpoint bytes].
async fn build(root: &Path, n: usize) -> [f64; 4] {
    let db = Database::open_url(&root.display().to_string(), options(false))
        .await
        .expect("open");
    let mut ingest = 0.0;
    for first in (0..n).step_by(BATCH) {
        ingest += commit_records(&db, first as u64, BATCH.min(n - first)).await;
    }
    let state = db.snapshot();
    let json: usize = state
        .collections()
        .flat_map(|(_, c)| c.docs.values())
        .map(|d| d.body().get().len())
        .sum();
    let start = Instant::now();
    checkpoint::write(db.store(), &state)
        .await
        .expect("checkpoint");
    let checkpoint_secs = start.elapsed().as_secs_f64();
    let checkpoint: u64 = db
        .store()
        .list(Some(&"_checkpoints".into()))
        .map_ok(|m| m.size)
        .try_fold(0, |a, b| async move { Ok(a + b) })
        .await
        .expect("list");
    db.close().await;
    [ingest, json as f64, checkpoint_secs, checkpoint as f64]
}

/// Opens `root` in a child process: [open seconds, RSS before, RSS after, peak RSS].
fn run_child(root: &Path, expect_docs: usize) -> [f64; 4] {
    let out = std::process::Command::new(std::env::current_exe().expect("current exe"))
        .env(CHILD_ENV, root)
        .output()
        .expect("spawn child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {stdout}{stderr}");
    let v: Vec<f64> = stdout
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    assert!(
        v.len() == 5 && v[4] as usize == expect_docs,
        "unexpected child output: {stdout}"
    );
    [v[0], v[1] * 1024.0, v[2] * 1024.0, v[3] * 1024.0]
}

/// The child: opens the root; prints open seconds, VmRSS before and after, VmHWM (in kB)
/// and the number of documents.
fn child_open(root: &str) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = StoreUrl::parse(root)
        .and_then(|u| u.build())
        .expect("store");
    let before = proc_status_kb("VmRSS");
    let start = Instant::now();
    let db = rt
        .block_on(Database::open(store, options(false)))
        .expect("open");
    let open = start.elapsed().as_secs_f64();
    let after = proc_status_kb("VmRSS");
    let docs = db.snapshot().len();
    println!("{open} {before} {after} {} {docs}", proc_status_kb("VmHWM"));
    rt.block_on(db.close());
}

fn proc_status_kb(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'));
    line.and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

// Reporting -----------------------------------------------------------------------------

/// The median of each column.
fn medians<const K: usize>(runs: Vec<[f64; K]>) -> [f64; K] {
    std::array::from_fn(|k| {
        let mut xs: Vec<f64> = runs.iter().map(|r| r[k]).collect();
        xs.sort_by(f64::total_cmp);
        (xs[(xs.len() - 1) / 2] + xs[xs.len() / 2]) / 2.0
    })
}

fn ms(secs: f64) -> String {
    format!("{:.1} ms", secs * 1e3)
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}
