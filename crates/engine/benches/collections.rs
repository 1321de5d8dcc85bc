//! Collection benchmarks: integrity checks at commit, filtered lists, soft deletes.
//!
//! ```text
//! cargo bench -p bucketbase-engine --bench collections [-- constraints|list|delete ...]
//! ```
//!
//! 1. `constraints` (on `memory://`): 10,000 properties and 10,000 consecutive one-night
//!    bookings of one property (the test fixtures' definitions, with the
//!    `no_overlapping_stays` exclusion), loaded in 1,000-record transactions. Then µs per
//!    `Database::transact` creating one record: a booking that overlaps
//!    (`exclusion_violation`) or not, a property whose name is taken (`unique_violation`)
//!    or fresh; for comparison, a booking of a property with no bookings yet and a record
//!    of a collection without constraints (also before the load). Beside them, the
//!    per-record CPU work of a commit (parsing the stored JSON, schema + `check`, index
//!    keys) and a bare `OverlapIndex::find_overlap` on 10,000 intervals.
//! 2. `list`: `query::list` over 100,000 properties (10 cities, `city` indexed), page 1
//!    of 50 (target < 20 ms): an indexed equality filter sorted by rooms desc then name;
//!    a CEL filter sorted by name; no filter sorted by name, and unsorted (id order); and
//!    the time to parse every stored document once, which a list without an index pays;
//!    then as a role bound by a list rule (`query::list_under_rule`): an owner whose rule
//!    confines them to one city (10,000 records) and a manager whose rule always holds.
//! 3. `delete`: sequential single soft deletes on memory and a local temp dir (fsync on),
//!    targets < 1 ms and < 5 ms; and both again with the materialized view on.
//!
//! Load phases run with `materialize: false, checkpoint_every: 0`. Each figure is the
//! median over `BENCH_RUNS` runs (default 5) of a run's median, mean and p99 (the last two
//! where a run times many operations); timings are printed, never asserted.
//! `BENCH_ATTEMPTS` (2000): transactions per commit figure; `BENCH_LIST` (100000):
//! records listed; `BENCH_DELETES` (500): deletes per run; `BENCH_DIR`: where local roots
//! are made (default: the temp dir).

use std::hint::black_box;
use std::time::Instant;

use bucketbase_engine::collection::Definition;
use bucketbase_engine::collection::expr::Expr;
use bucketbase_engine::collection::integrity::validate_doc;
use bucketbase_engine::collection::keys::RecordKeys;
use bucketbase_engine::collection::overlap::{Bound, OverlapIndex};
use bucketbase_engine::collection::query::{self, Query};
use bucketbase_engine::{CollectionName, Database, DbOptions, RecordId, Txn, TxnMeta};
use chrono::{Days, NaiveDate};
use serde_json::{Value, json};

/// From `tests/engine/fixtures.rs`.
const PROPERTIES: &str = include_str!("../tests/fixtures/properties.toml");

/// From `tests/engine/fixtures.rs`.
const BOOKINGS: &str = include_str!("../tests/fixtures/bookings.toml");

/// The baseline: no schema rules, constraints or indexes.
const NOTES: &str = "name = \"notes\"\n[schema]\ntype = \"object\"\n";

const BATCH: usize = 1000;
/// Bookings (and properties) in the `constraints` section.
const LOADED: usize = 10_000;

fn main() {
    let sections: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |s: &str| sections.is_empty() || sections.iter().any(|x| x == s);
    let runs = env("BENCH_RUNS", 5).max(1);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    println!("collections benchmark: medians over {runs} runs of each run's median/mean/p99\n");
    println!(
        "{:<62} {:>7} {:>7} {:>7}  unit    target",
        "benchmark", "median", "mean", "p99"
    );
    rt.block_on(async {
        if want("constraints") {
            constraints(runs, env("BENCH_ATTEMPTS", 2000).max(1)).await;
        }
        if want("list") {
            lists(runs, env("BENCH_LIST", 100_000).max(10)).await;
        }
        if want("delete") {
            deletes(runs, env("BENCH_DELETES", 500).max(1)).await;
        }
    });
}

async fn constraints(runs: usize, n: usize) {
    let labels = [
        "create note (no constraints), empty db",
        "create note (no constraints)",
        "create property, fresh name",
        "create property, taken name (unique_violation)",
        "create booking, free dates, property w/o bookings",
        "create booking, free dates, 10k on property",
        "create booking, overlap (exclusion_violation)",
    ];
    let mut commits = vec![Vec::new(); labels.len()];
    let mut cpu = vec![Vec::new(); 4]; // load, then per booking: parse, check, keys
    for _ in 0..runs {
        let db = open("memory://", false).await;
        define(&db, &[PROPERTIES, BOOKINGS, NOTES]).await;
        let (props, books, notes) = (coll("properties"), coll("bookings"), coll("notes"));
        let note = |i| json!({"text": format!("note {i}")});
        commits[0].push(timed(&db, &notes, n, None, note).await);
        let started = Instant::now();
        let p = |i| json!({"id": format!("p{i:05}"), "name": format!("Property {i}")});
        insert(&db, &props, (0..LOADED).map(p).collect()).await;
        let b = |d| booking("p00000", d);
        insert(&db, &books, (0..LOADED).map(b).collect()).await;
        cpu[0].push(vec![ms(started)]);

        commits[1].push(timed(&db, &notes, n, None, |i| note(n + i)).await);
        let fresh = |i| json!({"name": format!("Fresh {i}")});
        commits[2].push(timed(&db, &props, n, None, fresh).await);
        let taken = |i| json!({"name": format!("Property {}", i * 7 % LOADED)});
        commits[3].push(timed(&db, &props, n, Some("unique_violation"), taken).await);
        let empty = |i| booking("p00001", i);
        commits[4].push(timed(&db, &books, n, None, empty).await);
        let free = |i| booking("p00000", LOADED + i);
        commits[5].push(timed(&db, &books, n, None, free).await);
        let clash = |i| booking("p00000", i * 7919 % LOADED);
        commits[6].push(timed(&db, &books, n, Some("exclusion_violation"), clash).await);

        let [parse, check, keys] = commit_cpu(&db, &books);
        cpu[1].push(vec![parse]);
        cpu[2].push(vec![check]);
        cpu[3].push(vec![keys]);
        db.close().await;
    }
    row("load 10k properties + 10k bookings", "ms", &cpu[0], "");
    for (label, samples) in labels.iter().zip(&commits) {
        row(label, "µs/txn", samples, "");
    }
    row("per booking: parse stored JSON", "µs", &cpu[1], "");
    row("per booking: schema + check", "µs", &cpu[2], "");
    row("per booking: index keys (`when` CEL)", "µs", &cpu[3], "");
    overlap_index(runs);
}

/// µs per stored booking for the CPU work a commit does on each record: parsing its
/// JSON, schema + `check` expressions, and its index keys (with the `when` CEL).
fn commit_cpu(db: &Database, books: &CollectionName) -> [f64; 3] {
    let state = db.snapshot();
    let def = state.definition(books).expect("defined").clone();
    let docs = &state.collection(books).expect("loaded").docs;
    let docs: Vec<_> = docs.iter().collect();
    let per_doc = |started: Instant| us(started) / docs.len() as f64;
    let started = Instant::now();
    let values: Vec<Value> = docs.iter().map(|(_, d)| d.value()).collect();
    let parse = per_doc(started);
    let started = Instant::now();
    for ((id, _), v) in docs.iter().zip(&values) {
        validate_doc(&def, id, v).expect("valid");
    }
    let check = per_doc(started);
    let started = Instant::now();
    values
        .iter()
        .for_each(|v| drop(black_box(RecordKeys::of(&def, v))));
    [parse, check, per_doc(started)]
}

/// `find_overlap` on its own: 10,000 one-night intervals under one key.
fn overlap_index(runs: usize) {
    let bound = |d: usize| Bound::text(&date(d));
    let mut index = OverlapIndex::new();
    for d in 0..LOADED {
        let id = RecordId::parse(&format!("b{d}")).expect("id");
        let admitted = index.insert_checked("p00000", bound(d), bound(d + 1), id);
        admitted.expect("disjoint");
    }
    let clashing: Vec<usize> = (0..LOADED).map(|i| i * 7919 % LOADED).collect();
    let free: Vec<usize> = (LOADED..2 * LOADED).collect();
    for (conflict, days) in [(true, clashing), (false, free)] {
        let queries: Vec<_> = days.iter().map(|&d| (bound(d), bound(d + 1))).collect();
        let samples = repeat(runs, || {
            let started = Instant::now();
            for (s, e) in queries.iter().cycle().take(200_000) {
                let found = index.find_overlap("p00000", s, e).is_some();
                assert_eq!(black_box(found), conflict);
            }
            us(started) * 1000.0 / 200_000.0
        });
        let what = if conflict { "overlap" } else { "free" };
        let label = format!("OverlapIndex::find_overlap, {what}");
        row(label, "ns", &samples, "");
    }
}

async fn lists(runs: usize, n: usize) {
    let db = open("memory://", false).await;
    define(&db, &[PROPERTIES]).await;
    let props = coll("properties");
    let doc = |i: usize| {
        // Names in an order unrelated to the (time-ordered) ids.
        let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
        let name = format!("Property {h:06x}-{i}");
        json!({"name": name, "city": format!("c{}", i % 10), "rooms": (i / 10) % 10})
    };
    let started = Instant::now();
    insert(&db, &props, (0..n).map(doc).collect()).await;
    let load = [vec![ms(started)]];
    row(format!("load {n} properties"), "ms", &load, "");
    let state = db.snapshot();
    let cel = r#"record.rooms >= 5 && record.city == "c3""#;
    let cases = [
        ("city == c3 (indexed)", Some("c3"), None, "-rooms,name"),
        ("CEL rooms >= 5 && city == c3", None, Some(cel), "name"),
        ("no filter", None, None, "name"),
        ("no filter", None, None, ""),
    ];
    for (label, city, filter, sort) in cases {
        let q = Query {
            equals: Vec::from_iter(city.map(|c| ("city".to_string(), json!(c)))),
            filter: filter.map(|f| Expr::compile(f).expect("cel")),
            // `-field` sorts descending.
            sort: sort
                .split_terminator(',')
                .map(|f| (f.replace('-', ""), f.starts_with('-')))
                .collect(),
            ..Query::default()
        };
        // As a caller who sees everything (SuperAdmin), and through an access callback
        // (every other role), which needs each candidate's whole document.
        let open = || query::list_with(&state, &props, &q, &[], None, None).expect("list");
        let ruled = || query::list(&state, &props, &q, &[], &|_| true, None).expect("list");
        let total = open().total; // and a warm-up
        assert_eq!(open().items, ruled().items, "both paths list the same page");
        for (who, list) in [
            ("all visible", &open as &dyn Fn() -> query::Page),
            ("access rule", &ruled),
        ] {
            let samples = repeat(runs, || {
                let started = Instant::now();
                black_box(list());
                ms(started)
            });
            let label = format!("list ({who}): {label}, sort {sort:?} ({total} match)");
            row(label, "ms", &samples, "< 20 ms");
        }
    }
    // A role bound by a list rule, as the server lists for it (`list_under_rule`): the
    // rule's index entries bound the candidates; a rule that holds for the role is not
    // decided per record at all.
    let rule = Expr::compile(
        r#"auth.role == "manager" || (auth.role == "owner" && record.city in auth.cities)"#,
    )
    .expect("cel");
    let owner = json!({"role": "owner", "cities": ["c3"]});
    let manager = json!({"role": "manager"});
    for (who, auth) in [("owner of 1 city", &owner), ("manager", &manager)] {
        for sort in ["", "name"] {
            let q = Query {
                sort: Vec::from_iter((!sort.is_empty()).then(|| (sort.to_string(), false))),
                ..Query::default()
            };
            let vars: &[(&str, &Value)] = &[("auth", auth)];
            let list = || {
                query::list_under_rule(&state, &props, &q, vars, Some(&rule), None).expect("list")
            };
            let total = list().total;
            let samples = repeat(runs, || {
                let started = Instant::now();
                black_box(list());
                ms(started)
            });
            let label = format!("list (rule, {who}): no filter, sort {sort:?} ({total} match)");
            row(label, "ms", &samples, "< 20 ms");
        }
    }
    let docs = &state.collection(&props).expect("loaded").docs;
    let parse = repeat(runs, || {
        let started = Instant::now();
        docs.values().for_each(|d| drop(black_box(d.value())));
        ms(started)
    });
    row(format!("parse all {n} stored documents"), "ms", &parse, "");
    db.close().await;
}

async fn deletes(runs: usize, n: usize) {
    let base = std::env::var("BENCH_DIR").map_or_else(|_| std::env::temp_dir(), Into::into);
    let configs = [
        ("memory", false, false, "< 1 ms"),
        ("local, fsync", true, false, "< 5 ms"),
        ("memory, view on", false, true, ""),
        ("local, fsync, view on", true, true, ""),
    ];
    for (label, local, materialize, target) in configs {
        let mut samples = Vec::new();
        for _ in 0..runs {
            let dir = tempfile::tempdir_in(&base).expect("temp dir");
            let path = dir.path().to_str().expect("utf-8 path");
            let url = if local { path } else { "memory://" };
            // A local root is loaded with the view off, then reopened; a memory root
            // lives only as long as its handle.
            let mut db = open(url, materialize && !local).await;
            define(&db, &[PROPERTIES]).await;
            let props = coll("properties");
            let doc = |i| json!({"id": format!("d{i:05}"), "name": format!("Delete me {i}")});
            insert(&db, &props, (0..n).map(doc).collect()).await;
            if local && materialize {
                db.close().await;
                db = open(url, true).await;
            }
            db.flush_view().await;
            let mut latencies = Vec::with_capacity(n);
            for i in 0..n {
                let id = RecordId::parse(&format!("d{i:05}")).expect("id");
                let started = Instant::now();
                let deleted = db
                    .transact(&meta(), |tx| tx.delete(&props, &id, None))
                    .await;
                latencies.push(ms(started));
                deleted.expect("delete");
            }
            db.close().await;
            samples.push(latencies);
        }
        row(format!("soft delete, {label}"), "ms", &samples, target);
    }
}

/// µs per transaction creating `body(i)`; each must commit, or fail with `fails`.
async fn timed(
    db: &Database,
    c: &CollectionName,
    n: usize,
    fails: Option<&str>,
    body: impl Fn(usize) -> Value,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let doc = body(i);
        let started = Instant::now();
        let result = db.transact(&meta(), |tx| tx.create(c, doc.clone())).await;
        out.push(us(started));
        match (&result, fails) {
            (Ok(_), None) => {}
            (Err(e), Some(code)) if e.code() == code => {}
            _ => panic!("{i}: expected {fails:?}, got {result:?}"),
        }
    }
    out
}

/// `runs` single-sample runs.
fn repeat(runs: usize, mut f: impl FnMut() -> f64) -> Vec<Vec<f64>> {
    (0..runs).map(|_| vec![f()]).collect()
}

async fn open(url: &str, materialize: bool) -> Database {
    let opts = DbOptions {
        materialize,
        checkpoint_every: 0,
        ..Default::default()
    };
    Database::open_url(url, opts).await.expect("open")
}

async fn define(db: &Database, tomls: &[&str]) {
    let parse = |t: &&str| Definition::from_toml(t).expect("toml");
    let defs: Vec<Definition> = tomls.iter().map(parse).collect();
    let define_all = |tx: &mut Txn| defs.iter().try_for_each(|d| tx.define(d).map(drop));
    db.transact(&meta(), define_all).await.expect("define");
}

/// Creates `docs` in transactions of `BATCH`.
async fn insert(db: &Database, c: &CollectionName, docs: Vec<Value>) {
    for chunk in docs.chunks(BATCH) {
        let create = |tx: &mut Txn| {
            chunk
                .iter()
                .try_for_each(|d| tx.create(c, d.clone()).map(drop))
        };
        db.transact(&meta(), create).await.expect("load");
    }
}

/// A one-night stay on day `day`.
fn booking(property: &str, day: usize) -> Value {
    let (check_in, check_out) = (date(day), date(day + 1));
    json!({"property_id": property, "check_in": check_in, "check_out": check_out,
           "status": "confirmed", "guest": "Ada"})
}

/// Day `day` counted from 2000-01-01, as an ISO date.
fn date(day: usize) -> String {
    let start = NaiveDate::from_ymd_opt(2000, 1, 1).expect("date");
    (start + Days::new(day as u64))
        .format("%Y-%m-%d")
        .to_string()
}

fn coll(name: &str) -> CollectionName {
    CollectionName::parse(name).expect("collection name")
}

fn meta() -> TxnMeta {
    TxnMeta::new("bench", "bench")
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| v.parse().expect(name))
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn us(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e6
}

/// Prints a row from per-run samples: the median over runs of each run's median, mean
/// and p99 (the last two only where a run has several samples).
fn row(what: impl std::fmt::Display, unit: &str, runs: &[Vec<f64>], target: &str) {
    let over_runs = |f: &fn(&[f64]) -> f64| {
        let per_run: Vec<f64> = runs.iter().map(|r| f(r)).collect();
        fmt(median(&per_run))
    };
    let single = runs.iter().all(|r| r.len() == 1);
    let stats: &[fn(&[f64]) -> f64] = if single {
        &[median]
    } else {
        &[median, mean, p99]
    };
    let mut cols: Vec<String> = stats.iter().map(over_runs).collect();
    cols.resize(3, String::new());
    let (what, med, mean, p99) = (what.to_string(), &cols[0], &cols[1], &cols[2]);
    println!("{what:<62} {med:>7} {mean:>7} {p99:>7}  {unit:<6}  {target}");
}

fn median(v: &[f64]) -> f64 {
    quantile(v, 0.5)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn p99(v: &[f64]) -> f64 {
    quantile(v, 0.99)
}

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Three significant digits (at most three decimals).
fn fmt(v: f64) -> String {
    let decimals = (2 - v.abs().log10().floor() as i32).clamp(0, 3) as usize;
    format!("{v:.decimals$}")
}
