//! Counters the engine keeps about itself (exported as Prometheus metrics by the server).
//!
//! The engine knows nothing of Prometheus or HTTP: it keeps plain atomics and fixed-bucket
//! histograms, and hands out copies ([`EngineMetrics::snapshot`],
//! [`EngineMetrics::store_ops`], [`EngineMetrics::batch_sizes`]) for whoever exports
//! them. Recording is a few relaxed atomic adds, cheap enough for every object-store call.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds, in seconds, of the latency histograms (object-store operations here;
/// the server uses the same for HTTP requests).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds of the commit batch size histogram (transactions per log entry).
pub const BATCH_SIZE_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Monotonic counters; read with [`EngineMetrics::snapshot`].
#[derive(Debug)]
pub struct EngineMetrics {
    entries: AtomicU64,
    txns: AtomicU64,
    lost_slots: AtomicU64,
    reruns: AtomicU64,
    ambiguous_writes: AtomicU64,
    caught_up: AtomicU64,
    view_writes: AtomicU64,
    view_errors: AtomicU64,
    applied_ahead: AtomicU64,
    applied_ahead_unused: AtomicU64,
    /// Transactions per log entry written.
    batch_sizes: Histogram,
    /// Indexed by `StoreOp as usize`.
    store: [OpCounters; StoreOp::ALL.len()],
}

impl Default for EngineMetrics {
    fn default() -> Self {
        EngineMetrics {
            entries: AtomicU64::new(0),
            txns: AtomicU64::new(0),
            lost_slots: AtomicU64::new(0),
            reruns: AtomicU64::new(0),
            ambiguous_writes: AtomicU64::new(0),
            caught_up: AtomicU64::new(0),
            view_writes: AtomicU64::new(0),
            view_errors: AtomicU64::new(0),
            applied_ahead: AtomicU64::new(0),
            applied_ahead_unused: AtomicU64::new(0),
            batch_sizes: Histogram::new(&BATCH_SIZE_BUCKETS, 1.0),
            store: std::array::from_fn(|_| OpCounters::default()),
        }
    }
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsSnapshot {
    /// Log entries this handle wrote.
    pub entries: u64,
    /// Transactions in those entries (`txns / entries` is the mean batch size).
    pub txns: u64,
    /// Times another writer took the slot this handle was writing.
    pub lost_slots: u64,
    /// Times a transaction closure was re-run because its reads changed.
    pub reruns: u64,
    /// Log writes that failed and had to be settled by reading back.
    pub ambiguous_writes: u64,
    /// Entries of other writers applied by catching up.
    pub caught_up: u64,
    /// View files written.
    pub view_writes: u64,
    /// View writes that failed (retried later).
    pub view_errors: u64,
    /// Transactions whose writes were applied ahead and taken by the committer as they
    /// were, without validating them again (`txn::ahead`).
    pub applied_ahead: u64,
    /// Transactions applied ahead that the committer validated anyway (the head had
    /// moved, or another transaction went first in the entry).
    pub applied_ahead_unused: u64,
}

/// The kinds of object-store operation counted by the metered store
/// (`store::metered::MeteredStore`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreOp {
    /// `get_opts` (not `head`), `get_ranges`.
    Get,
    /// `get_opts` with `head: true`.
    Head,
    /// `put_opts` overwriting.
    Put,
    /// `put_opts` with create-if-absent (log slots, checkpoints).
    PutIfAbsent,
    /// `put_opts` conditional on a version (view files on S3).
    PutIfMatch,
    /// A multipart upload, counted at `complete`.
    PutMultipart,
    /// `list`, `list_with_offset`, `list_with_delimiter`.
    List,
    /// One deleted location.
    Delete,
    /// `copy_opts`.
    Copy,
    /// `rename_opts`.
    Rename,
}

impl StoreOp {
    pub const ALL: [StoreOp; 10] = [
        StoreOp::Get,
        StoreOp::Head,
        StoreOp::Put,
        StoreOp::PutIfAbsent,
        StoreOp::PutIfMatch,
        StoreOp::PutMultipart,
        StoreOp::List,
        StoreOp::Delete,
        StoreOp::Copy,
        StoreOp::Rename,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreOp::Get => "get",
            StoreOp::Head => "head",
            StoreOp::Put => "put",
            StoreOp::PutIfAbsent => "put_if_absent",
            StoreOp::PutIfMatch => "put_if_match",
            StoreOp::PutMultipart => "put_multipart",
            StoreOp::List => "list",
            StoreOp::Delete => "delete",
            StoreOp::Copy => "copy",
            StoreOp::Rename => "rename",
        }
    }
}

/// How an object-store operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpOutcome {
    /// It succeeded, or answered one of the outcomes the protocol asks about (not
    /// found, already exists, precondition failed, not modified).
    Ok,
    /// The store failed: network, permissions, 5xx, an injected fault...
    Error,
}

impl OpOutcome {
    /// Classifies a result: only failures of the store count as errors.
    pub fn of<T>(result: &object_store::Result<T>) -> OpOutcome {
        use object_store::Error as E;
        match result {
            Ok(_)
            | Err(E::NotFound { .. })
            | Err(E::AlreadyExists { .. })
            | Err(E::Precondition { .. })
            | Err(E::NotModified { .. }) => OpOutcome::Ok,
            Err(_) => OpOutcome::Error,
        }
    }
}

/// Counters of one kind of object-store operation.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreOpSnapshot {
    pub op: StoreOp,
    /// Operations finished (successful or not).
    pub count: u64,
    /// Of those, the ones the store failed (see [`OpOutcome`]).
    pub errors: u64,
    /// Seconds from the call to its answer (for reads, to the start of the body; for
    /// lists, to the end of the listing).
    pub latency: HistogramSnapshot,
}

/// A histogram at one moment, in the shape Prometheus exports.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Upper bounds of the finite buckets.
    pub bounds: &'static [f64],
    /// Observations per bucket, not cumulative: `buckets[i]` counts values in
    /// `(bounds[i-1], bounds[i]]`; the last (`bounds.len()`) counts values above every bound.
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

/// A fixed-bucket histogram of non-negative integer observations (nanoseconds, counts).
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    /// What one observed unit is worth in the exported unit (1e-9 for nanoseconds).
    scale: f64,
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64], scale: f64) -> Self {
        Histogram {
            bounds,
            scale,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    fn observe(&self, units: u64) {
        let value = units as f64 * self.scale;
        let i = self.bounds.partition_point(|b| *b < value);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum.fetch_add(units, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let buckets: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        HistogramSnapshot {
            bounds: self.bounds,
            // Counted from the buckets, so the count agrees with them under concurrency.
            count: buckets.iter().sum(),
            buckets,
            sum: self.sum.load(Relaxed) as f64 * self.scale,
        }
    }
}

#[derive(Debug)]
struct OpCounters {
    errors: AtomicU64,
    /// In nanoseconds.
    latency: Histogram,
}

impl Default for OpCounters {
    fn default() -> Self {
        OpCounters {
            errors: AtomicU64::new(0),
            latency: Histogram::new(&LATENCY_BUCKETS, 1e-9),
        }
    }
}

impl EngineMetrics {
    pub(crate) fn record_batch(&self, txns: usize) {
        self.entries.fetch_add(1, Relaxed);
        self.txns.fetch_add(txns as u64, Relaxed);
        self.batch_sizes.observe(txns as u64);
    }
    pub(crate) fn lost_slot(&self) {
        self.lost_slots.fetch_add(1, Relaxed);
    }
    pub(crate) fn rerun(&self) {
        self.reruns.fetch_add(1, Relaxed);
    }
    pub(crate) fn ambiguous_write(&self) {
        self.ambiguous_writes.fetch_add(1, Relaxed);
    }
    pub(crate) fn caught_up(&self) {
        self.caught_up.fetch_add(1, Relaxed);
    }
    pub(crate) fn applied_ahead(&self, used: bool) {
        if used {
            self.applied_ahead.fetch_add(1, Relaxed);
        } else {
            self.applied_ahead_unused.fetch_add(1, Relaxed);
        }
    }
    pub(crate) fn view_write(&self, ok: bool) {
        if ok {
            self.view_writes.fetch_add(1, Relaxed);
        } else {
            self.view_errors.fetch_add(1, Relaxed);
        }
    }

    /// Counts one finished object-store operation.
    pub fn store_op(&self, op: StoreOp, elapsed: Duration, outcome: OpOutcome) {
        let counters = &self.store[op as usize];
        if outcome == OpOutcome::Error {
            counters.errors.fetch_add(1, Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        counters.latency.observe(nanos);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            entries: self.entries.load(Relaxed),
            txns: self.txns.load(Relaxed),
            lost_slots: self.lost_slots.load(Relaxed),
            reruns: self.reruns.load(Relaxed),
            ambiguous_writes: self.ambiguous_writes.load(Relaxed),
            caught_up: self.caught_up.load(Relaxed),
            view_writes: self.view_writes.load(Relaxed),
            view_errors: self.view_errors.load(Relaxed),
            applied_ahead: self.applied_ahead.load(Relaxed),
            applied_ahead_unused: self.applied_ahead_unused.load(Relaxed),
        }
    }

    /// Object-store operations by kind, every kind included (zeros too).
    pub fn store_ops(&self) -> Vec<StoreOpSnapshot> {
        StoreOp::ALL
            .iter()
            .map(|&op| {
                let counters = &self.store[op as usize];
                let latency = counters.latency.snapshot();
                StoreOpSnapshot {
                    op,
                    count: latency.count,
                    errors: counters.errors.load(Relaxed),
                    latency,
                }
            })
            .collect()
    }

    /// Transactions per log entry written by this handle.
    pub fn batch_sizes(&self) -> HistogramSnapshot {
        self.batch_sizes.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_bucket_by_upper_bound() {
        let m = EngineMetrics::default();
        for txns in [1, 1, 3, 2000] {
            m.record_batch(txns);
        }
        let h = m.batch_sizes();
        assert_eq!((h.count, h.sum), (4, 2005.0));
        assert_eq!(h.buckets.len(), BATCH_SIZE_BUCKETS.len() + 1);
        assert_eq!((h.buckets[0], h.buckets[2]), (2, 1), "1 <= 1, 3 <= 4");
        assert_eq!(h.buckets[BATCH_SIZE_BUCKETS.len()], 1, "2000 overflows");
        assert_eq!(m.snapshot().txns, 2005);
    }

    #[test]
    fn store_ops_count_errors_and_latency() {
        let m = EngineMetrics::default();
        m.store_op(StoreOp::Get, Duration::from_micros(300), OpOutcome::Ok);
        m.store_op(StoreOp::Get, Duration::from_millis(20), OpOutcome::Error);
        m.store_op(StoreOp::PutIfAbsent, Duration::from_secs(60), OpOutcome::Ok);
        let ops = m.store_ops();
        assert_eq!(ops.len(), StoreOp::ALL.len());
        let get = &ops[0];
        assert_eq!((get.op, get.count, get.errors), (StoreOp::Get, 2, 1));
        assert_eq!(get.latency.buckets[0], 1, "300µs <= 0.5ms");
        assert_eq!(get.latency.buckets[5], 1, "20ms <= 25ms");
        assert!((get.latency.sum - 0.0203).abs() < 1e-9);
        let create = ops.iter().find(|o| o.op == StoreOp::PutIfAbsent).unwrap();
        assert_eq!(create.latency.buckets[LATENCY_BUCKETS.len()], 1);
    }

    #[test]
    fn expected_answers_are_not_errors() {
        let not_found: object_store::Result<()> = Err(object_store::Error::NotFound {
            path: "x".into(),
            source: "gone".into(),
        });
        assert_eq!(OpOutcome::of(&not_found), OpOutcome::Ok);
        let failed: object_store::Result<()> = Err(object_store::Error::Generic {
            store: "test",
            source: "boom".into(),
        });
        assert_eq!(OpOutcome::of(&failed), OpOutcome::Error);
    }
}
