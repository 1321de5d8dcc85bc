//! Nested item benchmark: what one append costs on a record that already holds many items.
//!
//! ```text
//! cargo bench -p bucketbase-engine --bench nested
//! ```
//!
//! For each size (100, 1,000 and 10,000 items of about 500 bytes, created in one
//! transaction), on `memory://` and on a local directory (fsync on): `BENCH_APPENDS`
//! appends of one more 500-byte item, one after another, and reports the log bytes of an
//! append's entry (median), the commit latency p50 / p99, and the growth of the process's
//! resident memory (`VmRSS`) while the record was built, per item. Checkpoints and the
//! view are off. Timings are reported, never asserted.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BENCH_APPENDS` | 100 | appends per size and store |
//! | `BENCH_DIR` | the temp dir | where local roots are made (make it a real disk) |

use std::time::Instant;

use bucketbase_engine::collection::Definition;
use bucketbase_engine::{CollectionName, Database, DbOptions, TxnMeta};
use object_store::ObjectStoreExt;
use serde_json::{Value, json};

const SIZES: [usize; 3] = [100, 1_000, 10_000];

fn main() {
    let appends: usize = std::env::var("BENCH_APPENDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = std::env::var("BENCH_DIR").map_or_else(|_| std::env::temp_dir(), Into::into);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    println!("bucketbase nested bench: {appends} appends of a 500-byte item per row\n");
    println!(
        "{:<8} {:>7} {:>12} {:>10} {:>10} {:>14}",
        "store", "items", "log B/append", "p50 ms", "p99 ms", "RSS B/item"
    );
    for store in ["memory", "local"] {
        for size in SIZES {
            let tmp = tempfile::tempdir_in(&dir).expect("temp dir");
            let url = match store {
                "memory" => "memory://".to_string(),
                _ => tmp.path().to_str().expect("utf-8 path").to_string(),
            };
            let row = rt.block_on(run(&url, size, appends));
            println!(
                "{store:<8} {size:>7} {:>12} {:>10.2} {:>10.2} {:>14.0}",
                row.log_bytes, row.p50_ms, row.p99_ms, row.rss_per_item
            );
        }
    }
}

struct Row {
    log_bytes: usize,
    p50_ms: f64,
    p99_ms: f64,
    rss_per_item: f64,
}

fn item(i: usize) -> Value {
    json!({"status": "done", "i": i, "output": "x".repeat(440)})
}

async fn run(url: &str, size: usize, appends: usize) -> Row {
    let opts = DbOptions {
        materialize: false,
        checkpoint_every: 0,
        ..DbOptions::default()
    };
    let db = Database::open_url(url, opts).await.expect("open");
    let meta = TxnMeta::new("bench", "bench");
    let def = Definition::from_toml("name = \"workflows\"\n[nested.executions]\n").expect("def");
    db.define_all(&meta, &[def]).await.expect("define");
    let wf = CollectionName::parse("workflows").expect("name");
    let rss_before = rss_bytes();
    let items: Vec<Value> = (0..size).map(item).collect();
    let (id, _) = db
        .transact(&meta, |tx| {
            tx.create(&wf, json!({"name": "w", "executions": items}))
        })
        .await
        .expect("create")
        .value;
    let rss_per_item = rss_bytes().saturating_sub(rss_before) as f64 / size as f64;
    let mut latencies = Vec::with_capacity(appends);
    let mut sizes = Vec::with_capacity(appends);
    for i in 0..appends {
        let start = Instant::now();
        let committed = db
            .transact(&meta, |tx| {
                tx.nested_append(&wf, &id, "executions", item(size + i))
            })
            .await
            .expect("append");
        latencies.push(start.elapsed().as_secs_f64() * 1000.0);
        let path = bucketbase_engine::store::log_path(committed.seq);
        let got = db.store().get(&path).await.expect("entry");
        sizes.push(got.bytes().await.expect("bytes").len());
    }
    db.close().await;
    latencies.sort_by(f64::total_cmp);
    sizes.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Row {
        log_bytes: sizes[sizes.len() / 2],
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        rss_per_item,
    }
}

/// Resident memory of this process (Linux; 0 elsewhere).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
