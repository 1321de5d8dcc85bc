//! aristay through HTTP on the local-disk store (fsync on, materialized view and
//! checkpoints on, as in production): the table of issue 15, beside the figures a
//! Django 5.2 + DRF + PostgreSQL 15 implementation of the same plan measured on this
//! kind of machine (copied from the issue; that peer is not run here).
//!
//! Each run starts a fresh server on a fresh root with the issue's data set (50
//! properties, 2 active templates, 1,000 bookings imported through one multipart
//! request, so 2,000 automatic tasks), then on it, one keep-alive connection, requests
//! one after another:
//!
//! 1. GET a booking by id;
//! 2. a conflicting booking, rejected with 409;
//! 3. create a booking (+2 automatic tasks), then soft delete each of them (+ their
//!    tasks);
//! 4. 64 clients × 5 overlapping bookings on one new property (wall time, 5xx);
//! 5. a `notes` collection seeded with 10,000 notes, then (after the disk's own floor
//!    under a commit, measured without the server: `disk_floor`) plain creates of notes;
//! 6. the revert of the import (5,000 records in one transaction).
//!
//! After each write workload the bench times how long the view then takes to be
//! written and durable (`flush_view`): the view lag.
//!
//! ```text
//! cargo bench -p bucketbase-aristay --bench aristay              # 5 runs, ~3 min
//! BENCH_QUICK=1 cargo bench -p bucketbase-aristay --bench aristay  # 1 run, < 1 min
//! BENCH_RUNS=3 BENCH_N=2000 ...                                     # runs; requests per workload
//! BENCH_ONLY=import ...                                             # the import and its revert
//! BENCH_LOG=bucketbase_aristay=debug ...                            # import phase timings
//! BENCH_VIEW=0 ...; BENCH_CHECKPOINT_EVERY=0 ...                    # without view; checkpoints
//! ```
//!
//! Roots are made in the temp dir (`TMPDIR`). On ext4 without a journal, files removed in
//! the last minutes slow the creation of files near them (docs/benchmarks.md, session 8):
//! for figures that do not depend on what ran before, point `TMPDIR` at a new directory
//! at the top of the filesystem (`mkdir /bench-1 && TMPDIR=/bench-1 cargo bench ...`).
//!
//! Timings are reported, never asserted.

mod stats;
mod workloads;

use stats::{Figures, Row, print_table};
use workloads as w;

// The allocator `bucketbase` itself runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[derive(Default)]
struct All {
    import: Figures,
    revert: Figures,
    get: Figures,
    conflict: Figures,
    create: Figures,
    delete: Figures,
    burst: Figures,
    notes: Figures,
    floor: Figures,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // As the `bucketbase` binary runs (bucketbase_engine::memory).
    bucketbase_engine::memory::no_transparent_huge_pages().expect("huge pages off");
    if let Ok(filter) = std::env::var("BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let runs = env_usize("BENCH_RUNS").unwrap_or(if quick { 1 } else { 5 });
    let n = env_usize("BENCH_N").unwrap_or(if quick { 500 } else { 1000 });
    let only_import = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "import");
    println!(
        "aristay over HTTP, local-disk store with fsync, view and checkpoints on; \
         medians of {runs} runs [range], {n} requests per workload\n"
    );
    let mut all = All::default();
    // Each run's root is removed only when the bench ends: on ext4 without a journal,
    // the inodes a removal frees slow every file creation in their block group for up
    // to 5 minutes (docs/benchmarks.md, session 8), so removing a run's 20,000 files
    // would slow the next run's commits and view.
    let mut done = Vec::with_capacity(runs);
    for round in 0..runs {
        let d = w::dataset().await;
        all.import.totals.push(d.import_ms);
        if !only_import {
            one_run(&d, n, round, &mut all).await;
        }
        all.revert.totals.push(w::revert_import(&d).await);
        all.revert.view_lag.push(w::view_lag(&d).await);
        done.push(d);
    }
    print(&all, only_import);
    drop(done);
}

async fn one_run(d: &w::Dataset, n: usize, round: usize, all: &mut All) {
    let (t, e) = w::get_by_id(d, n).await;
    all.get.latencies.push(t);
    all.get.errors += e;
    let (t, e) = w::conflicting(d, n).await;
    all.conflict.latencies.push(t);
    all.conflict.errors += e;
    let (t, e, ids) = w::create_bookings(d, n, round).await;
    all.create.latencies.push(t);
    all.create.errors += e;
    all.create.view_lag.push(w::view_lag(d).await);
    let (t, e) = w::soft_delete(d, &ids).await;
    all.delete.latencies.push(t);
    all.delete.errors += e;
    all.delete.view_lag.push(w::view_lag(d).await);
    let (t, e) = w::burst(d, round).await;
    all.burst.totals.push(t);
    all.burst.errors += e;
    w::seed_notes(d).await;
    all.floor.latencies.push(w::disk_floor(d, n).await);
    let (t, e) = w::create_notes(d, n).await;
    all.notes.latencies.push(t);
    all.notes.errors += e;
    all.notes.view_lag.push(w::view_lag(d).await);
}

fn print(all: &All, only_import: bool) {
    let mut rows = vec![Row {
        work: "import 1,000 bookings + 2,000 tasks",
        peer: "343 ms bulk_create; 2,561 ms per-row ORM",
        ours: all.import.total(),
        target: "≤ 60 ms",
        lag: "—".into(),
    }];
    if !only_import {
        rows.extend([
            Row {
                work: "GET a booking by id, p50 / p99",
                peer: "2.04 / 2.91 ms",
                ours: all.get.p50_p99(),
                target: "",
                lag: "—".into(),
            },
            Row {
                work: "conflicting booking rejected (409), p50 / p99",
                peer: "3.27 / 5.38 ms",
                ours: all.conflict.p50_p99(),
                target: "",
                lag: "—".into(),
            },
            Row {
                work: "64 clients × 5 overlapping bookings, one property",
                peer: "0.80 s with row locks; 24.2 s and 39 deadlock errors without",
                ours: format!("{}, {} errors", all.burst.total(), all.burst.errors),
                target: "",
                lag: "—".into(),
            },
            Row {
                work: "create a booking (+2 automatic tasks), p50 / p99",
                peer: "5.83 / 7.69 ms",
                ours: all.create.p50_p99(),
                target: "p99 ≤ 3 ms",
                lag: all.create.lag(),
            },
            Row {
                work: "soft delete a booking (+2 tasks), p50 / p99",
                peer: "1.45 / 2.10 ms, in-process without HTTP",
                ours: all.delete.p50_p99(),
                target: "p99 ≤ 3 ms",
                lag: all.delete.lag(),
            },
            Row {
                work: "create a note on a 10,000-note collection, p50 / p99",
                peer: "",
                ours: all.notes.p50_p99(),
                target: "p99 ≤ 2 ms",
                lag: all.notes.lag(),
            },
            Row {
                work: "the disk alone, just before the notes: a 1.1 KB file created, \
                       fsynced, renamed, its directory fsynced (no server), p50 / p99",
                peer: "",
                ours: all.floor.p50_p99(),
                target: "",
                lag: "—".into(),
            },
        ]);
    }
    rows.push(Row {
        work: "revert the import (5,000 records, one transaction)",
        peer: "",
        ours: all.revert.total(),
        target: "",
        lag: all.revert.lag(),
    });
    print_table(&rows);
    let unexpected = all.get.errors + all.conflict.errors + all.create.errors;
    let unexpected = unexpected + all.delete.errors + all.notes.errors;
    if unexpected > 0 {
        println!("\n{unexpected} answers had an unexpected status (see stderr)");
    }
}
