//! docsai through HTTP on the local-disk store (fsync on, materialized view and
//! checkpoints on, as `bucketbase serve --app docsai` runs): the benchmarks of issue 12.
//!
//! 1. `bucketbase migrate sqlite` of a Django SQLite database of about 100,000 rows
//!    (docsai's old schema, `django_schema.sql`, filled as tests/django's `fill --scale
//!    515` fills it: workflows → executions → logs, tasks → comments, collections →
//!    requests and mocks...), through the function the command calls, on a fresh
//!    store: rows per second and the total, the closing check included, and apart: the
//!    writes alone, the check alone, and the reading and casting alone (no store);
//! 2. the Postman import of a 2,000-request collection (folders three deep, every body
//!    mode, auth at several levels, saved responses) through
//!    `POST /api/v1/docsai/api_collections/import`, then the same file again (all
//!    unchanged), and both through the command's code path;
//! 3. lists of `knowledge` as its owner (10,000 records of theirs, 10,000 of another
//!    SuperAdmin beside them; the owner rule binds SuperAdmin, decision 0021): the first
//!    page (default size 50, with the total), sorted newest first, filtered on an
//!    indexed field;
//! 4. a log line appended to an execution of a workflow holding 1,000 executions (5 lines
//!    each), `POST /api/v1/workflows/{id}/executions/{exec_id}/logs`, and an execution
//!    appended to that workflow.
//!
//! Each run starts fresh servers on fresh roots; the SQLite database is made once.
//!
//! ```text
//! cargo bench -p bucketbase-docsai --bench docsai                   # 3 runs, ~4.5 min
//! BENCH_QUICK=1 cargo bench -p bucketbase-docsai --bench docsai     # 1 run, smaller, ~12 s
//! BENCH_RUNS=5 BENCH_N=500 ...            # runs; requests per append workload (1,000)
//! BENCH_LIST_N=300                        # requests per list workload
//! BENCH_VIEW=0                            # the materialized view off
//! BENCH_ONLY=migrate,postman,list,append  # some of the workloads
//! BENCH_SCALE=515                         # the Django fill scale (194 rows a unit)
//! BENCH_SQLITE=/path/db.sqlite3           # migrate this database instead (e.g. one made
//!                                         # by tests/django: manage.py fill --scale 515)
//! BENCH_REQUESTS=2000 BENCH_KNOWLEDGE=10000 BENCH_EXECUTIONS=1000
//! ```
//!
//! Timings are reported, never asserted; a wrong answer stops the bench.

mod django;
mod postman;
mod stats;
mod workloads;

use std::path::PathBuf;

use bucketbase_docsai::migrate::{DOCSAI_MAPPING, Mapping};
use stats::{Figures, Row, print_table};
use workloads as w;

// The allocator `bucketbase` itself runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// What to run and how big.
struct Plan {
    runs: usize,
    n: usize,
    /// Requests per list workload (a list as the owner decides the rule on every record:
    /// fewer than the appends, so a run stays within minutes).
    list_n: usize,
    scale: usize,
    requests: usize,
    knowledge: usize,
    executions: usize,
    only: Vec<String>,
}

impl Plan {
    fn from_env() -> Plan {
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
        let pick = |name: &str, full: usize, small: usize| {
            env_usize(name).unwrap_or(if quick { small } else { full })
        };
        Plan {
            runs: pick("BENCH_RUNS", 3, 1),
            n: pick("BENCH_N", 1000, 200),
            list_n: pick("BENCH_LIST_N", 300, 100),
            scale: pick("BENCH_SCALE", 515, 100),
            requests: pick("BENCH_REQUESTS", 2000, 500),
            knowledge: pick("BENCH_KNOWLEDGE", 10_000, 2_000),
            executions: pick("BENCH_EXECUTIONS", 1000, 1000),
            only: std::env::var("BENCH_ONLY")
                .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default(),
        }
    }

    fn runs(&self, workload: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == workload)
    }
}

#[derive(Default)]
struct All {
    migrate: Figures,
    writes: Figures,
    check: Figures,
    read: Figures,
    import: Figures,
    reimport: Figures,
    cli_import: Figures,
    cli_reimport: Figures,
    first_page: Figures,
    sorted: Figures,
    filtered: Figures,
    log_line: Figures,
    execution: Figures,
}

/// The SQLite database the migration reads, and what it holds.
struct Sqlite {
    path: PathBuf,
    rows: u64,
    records: u64,
    entries: Vec<f64>,
    cpu: Vec<f64>,
    _dir: Option<tempfile::TempDir>,
}

fn sqlite(plan: &Plan, mapping: &Mapping) -> Sqlite {
    let (path, dir) = match std::env::var_os("BENCH_SQLITE") {
        Some(p) => (PathBuf::from(p), None),
        None => {
            let dir = tempfile::tempdir().expect("a temp dir");
            let path = dir.path().join("db.sqlite3");
            django::make(&path, plan.scale).expect("make the SQLite database");
            (path, Some(dir))
        }
    };
    let rows = w::source_rows(&path, mapping);
    Sqlite {
        path,
        rows,
        records: 0,
        entries: Vec::new(),
        cpu: Vec::new(),
        _dir: dir,
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // As the `bucketbase` binary runs (bucketbase_engine::memory).
    bucketbase_engine::memory::no_transparent_huge_pages().expect("huge pages off");
    let plan = Plan::from_env();
    let mapping = Mapping::from_toml(DOCSAI_MAPPING).expect("docsai's mapping");
    let mut db = plan.runs("migrate").then(|| sqlite(&plan, &mapping));
    let file = postman::collection(plan.requests);
    println!(
        "docsai over HTTP, local-disk store with fsync, view and checkpoints on; \
         medians of {} runs [range]; {} requests per append workload, {} per list\n",
        plan.runs, plan.n, plan.list_n
    );
    let mut all = All::default();
    for _ in 0..plan.runs {
        if let Some(db) = db.as_mut() {
            let r = w::migrate(&db.path, &mapping).await;
            db.records = r.records;
            db.entries.push(r.entries as f64);
            db.cpu.push(r.cpu);
            all.migrate.totals.push(r.total);
            all.migrate.view_lag.push(r.view_lag);
            all.writes.totals.push(r.writes);
            all.check.totals.push(r.check);
            all.read.totals.push(w::read_only(&db.path, &mapping).await);
        }
        if plan.runs("postman") {
            let r = w::postman(&file, plan.requests).await;
            all.import.totals.push(r.http);
            all.import.view_lag.push(r.http_lag);
            all.reimport.totals.push(r.http_again);
            all.cli_import.totals.push(r.cli);
            all.cli_reimport.totals.push(r.cli_again);
        }
        if plan.runs("list") || plan.runs("append") {
            let app = w::spawn().await;
            if plan.runs("list") {
                w::seed_knowledge(&app.served, &app.admin.1, plan.knowledge).await;
                w::seed_knowledge(&app.served, &app.other.1, plan.knowledge).await;
                app.served.db.flush_view().await;
                let l = w::lists(&app, plan.list_n, plan.knowledge).await;
                all.first_page.latencies.push(l.first_page);
                all.sorted.latencies.push(l.sorted);
                all.filtered.latencies.push(l.filtered);
            }
            if plan.runs("append") {
                let (id, execs) = w::seed_workflow(&app, plan.executions).await;
                let a = w::appends(&app, &id, &execs, plan.n).await;
                all.log_line.latencies.push(a.log_lines);
                all.log_line.view_lag.push(a.log_lag);
                all.execution.latencies.push(a.executions);
                all.execution.view_lag.push(a.execution_lag);
            }
        }
    }
    print(&all, &plan, db.as_ref(), file.len());
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print(all: &All, plan: &Plan, db: Option<&Sqlite>, file_bytes: usize) {
    let mut rows = Vec::new();
    if let Some(db) = db {
        let (n, r) = (thousands(db.rows), thousands(db.records));
        rows.extend([
            Row {
                work: format!(
                    "migrate sqlite, {n} rows into {r} records: total, closing check included"
                ),
                ours: format!(
                    "{}; {}",
                    all.migrate.total(),
                    all.migrate.rate(db.rows, "rows")
                ),
                lag: all.migrate.lag(),
            },
            Row {
                work: "… its writes (start to last commit)".into(),
                ours: format!(
                    "{}; {}; {:.0} log entries; process CPU over the run {:.0} ms",
                    all.writes.total(),
                    all.writes.rate(db.rows, "rows"),
                    stats::median(db.entries.clone()).0,
                    stats::median(db.cpu.clone()).0,
                ),
                lag: "".into(),
            },
            Row {
                work: "… its closing check (after the last commit)".into(),
                ours: all.check.total(),
                lag: "".into(),
            },
            Row {
                work: format!("reading and casting the {n} rows alone (no store)"),
                ours: format!("{}; {}", all.read.total(), all.read.rate(db.rows, "rows")),
                lag: "—".into(),
            },
        ]);
    }
    if !all.import.is_empty() {
        let size = format!(
            "{} requests, {:.1} MB",
            thousands(plan.requests as u64),
            file_bytes as f64 / 1e6
        );
        rows.extend([
            Row {
                work: format!("Postman import, {size}, HTTP (created)"),
                ours: all.import.total(),
                lag: all.import.lag(),
            },
            Row {
                work: "… the same file again, HTTP (all unchanged)".into(),
                ours: all.reimport.total(),
                lag: "—".into(),
            },
            Row {
                work: "… the command's path (parse + one transaction, created)".into(),
                ours: all.cli_import.total(),
                lag: "—".into(),
            },
            Row {
                work: "… the command's path again (all unchanged)".into(),
                ours: all.cli_reimport.total(),
                lag: "—".into(),
            },
        ]);
    }
    if !all.first_page.is_empty() {
        let k = thousands(plan.knowledge as u64);
        rows.extend([
            Row {
                work: format!(
                    "list knowledge as its owner ({k} theirs of {}), first page of 50 with total, p50 / p99",
                    thousands(2 * plan.knowledge as u64)
                ),
                ours: all.first_page.p50_p99(),
                lag: "—".into(),
            },
            Row {
                work: "… sorted newest first (`sort=-created_at`), p50 / p99".into(),
                ours: all.sorted.p50_p99(),
                lag: "—".into(),
            },
            Row {
                work: "… filtered on an indexed field (`category=api`), p50 / p99".into(),
                ours: all.filtered.p50_p99(),
                lag: "—".into(),
            },
        ]);
    }
    if !all.log_line.is_empty() {
        rows.extend([
            Row {
                work: format!(
                    "append a log line to an execution (workflow of {} executions), p50 / p99",
                    thousands(plan.executions as u64)
                ),
                ours: all.log_line.p50_p99(),
                lag: all.log_line.lag(),
            },
            Row {
                work: "append an execution to that workflow, p50 / p99".into(),
                ours: all.execution.p50_p99(),
                lag: all.execution.lag(),
            },
        ]);
    }
    print_table(&rows);
}
