//! Change-feed benchmark: what subscribers cost and how fast they hear of commits.
//!
//! ```text
//! cargo bench -p bucketbase-engine --bench feed
//! ```
//!
//! On a local directory (fsync on, view off), 8 writer tasks create records of a defined
//! collection (~150-byte documents, so every commit is an audited change):
//! 1. `fan-out`: events per second delivered to 100 subscribers of the writing handle
//!    (each takes every entry and splits it into changes, as the server does before
//!    judging access), and the commits per second meanwhile.
//! 2. `latency`: from a commit's acknowledgement to its event, p50/p99, for a subscriber
//!    of the same handle and one of a second handle on the same root (another process as
//!    far as the store is concerned: it learns of the commit through its log tailer,
//!    200 ms by default, `BENCH_TAIL_MS` here).
//! 3. `committer`: p99 of a commit's latency without subscribers and with 100.
//!
//! Timings are reported, never asserted. `BENCH_COMMITS` (default 2000) commits per run.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bucketbase_engine::collection::Definition;
use bucketbase_engine::feed::{FeedPos, Next, changes};
use bucketbase_engine::{CollectionName, Database, DbOptions, Seq, TxnMeta};
use parking_lot::Mutex;
use serde_json::json;

const WRITERS: usize = 8;
const SUBSCRIBERS: usize = 100;

fn main() {
    let commits: usize = env("BENCH_COMMITS", 2000);
    let tail_ms: u64 = env("BENCH_TAIL_MS", 200) as u64;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_str().expect("utf-8 path").to_string();
        let opts = DbOptions {
            materialize: false,
            checkpoint_every: 0,
            tail_interval: Some(Duration::from_millis(tail_ms)),
            ..DbOptions::default()
        };
        let a = Arc::new(Database::open_url(&root, opts.clone()).await.expect("open"));
        let notes = CollectionName::parse("notes").expect("name");
        let def = Definition::from_toml("name = \"notes\"\n[schema]\ntype = \"object\"\n")
            .expect("definition");
        a.transact(&TxnMeta::new("bench", "bench"), |tx| tx.define(&def).map(drop))
            .await
            .expect("define");
        let b = Arc::new(Database::open_url(&root, opts).await.expect("open b"));

        // 3a. The committer alone.
        let (_, alone) = write(&a, &notes, commits).await;
        // 1 + 3b. 100 subscribers of the writing handle.
        let from = FeedPos::after(a.snapshot().seq());
        let mut subs = Vec::new();
        for _ in 0..SUBSCRIBERS {
            let mut sub = a.subscribe(from, 4096);
            subs.push(tokio::spawn(async move {
                let mut events = 0usize;
                while events < commits {
                    match sub.next().await.expect("feed") {
                        Next::Entry(applied) => events += changes(&applied).len(),
                        Next::Lagged => panic!("a subscriber fell behind its 4096 entries"),
                    }
                }
                (events, Instant::now())
            }));
        }
        let start = Instant::now();
        let (_, with_subs) = write(&a, &notes, commits).await;
        let mut delivered = 0;
        let mut last = start;
        for s in subs {
            let (events, done) = s.await.expect("subscriber");
            delivered += events;
            last = last.max(done);
        }
        let secs = last.duration_since(start).as_secs_f64();
        println!(
            "fan-out   {SUBSCRIBERS} subscribers: {:.0} events/s delivered ({delivered} events in {secs:.2} s; {:.0} commits/s meanwhile)",
            delivered as f64 / secs,
            commits as f64 / secs
        );

        // 2. Commit-to-event latency, same handle and the other one.
        let acked: Arc<Mutex<HashMap<Seq, Instant>>> = Arc::default();
        b.catch_up().await.expect("catch up");
        let same = listen(&a, commits);
        let other = listen(&b, commits);
        let (seqs, _) = write_noting(&a, &notes, commits, Some(acked.clone())).await;
        let (same, other) = (same.await.expect("same"), other.await.expect("other"));
        let lat = |got: &HashMap<Seq, Instant>| -> Vec<Duration> {
            let acked = acked.lock();
            seqs.iter()
                .filter_map(|s| Some(got.get(s)?.saturating_duration_since(*acked.get(s)?)))
                .collect()
        };
        report("latency   same process ", lat(&same));
        report("latency   other process", lat(&other));
        report("committer no subscribers ", alone);
        report("committer 100 subscribers", with_subs);
    });
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A subscriber noting when each entry arrived, until `n` changes.
fn listen(db: &Database, n: usize) -> tokio::task::JoinHandle<HashMap<Seq, Instant>> {
    let mut sub = db.subscribe(FeedPos::after(db.snapshot().seq()), 1 << 16);
    tokio::spawn(async move {
        let mut got = HashMap::new();
        let mut events = 0;
        while events < n {
            if let Next::Entry(applied) = sub.next().await.expect("feed") {
                events += changes(&applied).len();
                got.insert(applied.entry.seq(), Instant::now());
            }
        }
        got
    })
}

async fn write(db: &Arc<Database>, c: &CollectionName, n: usize) -> (Vec<Seq>, Vec<Duration>) {
    write_noting(db, c, n, None).await
}

/// `n` creates by 8 writers; the positions and each commit's latency.
async fn write_noting(
    db: &Arc<Database>,
    c: &CollectionName,
    n: usize,
    acked: Option<Arc<Mutex<HashMap<Seq, Instant>>>>,
) -> (Vec<Seq>, Vec<Duration>) {
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (db, c, acked) = (db.clone(), c.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (w..n).step_by(WRITERS) {
                let doc = json!({"title": format!("note {i}"), "body": "x".repeat(100)});
                let t = Instant::now();
                let done = db
                    .transact(&TxnMeta::new("bench", "bench"), |tx| {
                        tx.create(&c, doc.clone())
                    })
                    .await
                    .expect("commit");
                let now = Instant::now();
                if let Some(acked) = &acked {
                    acked.lock().entry(done.seq).or_insert(now);
                }
                out.push((done.seq, now - t));
            }
            out
        }));
    }
    let mut seqs = Vec::new();
    let mut lat = Vec::new();
    for t in tasks {
        for (s, l) in t.await.expect("writer") {
            seqs.push(s);
            lat.push(l);
        }
    }
    seqs.sort();
    seqs.dedup();
    (seqs, lat)
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| {
        samples
            .get(((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{what}: p50 {:>8.2} ms  p99 {:>8.2} ms  ({} samples)",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples.len()
    );
}
