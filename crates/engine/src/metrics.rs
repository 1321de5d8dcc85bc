//! Counters the engine keeps about itself (exported as Prometheus metrics by the server).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Monotonic counters; read with [`EngineMetrics::snapshot`].
#[derive(Debug, Default)]
pub struct EngineMetrics {
    entries: AtomicU64,
    txns: AtomicU64,
    lost_slots: AtomicU64,
    reruns: AtomicU64,
    ambiguous_writes: AtomicU64,
    caught_up: AtomicU64,
    view_writes: AtomicU64,
    view_errors: AtomicU64,
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
}

impl EngineMetrics {
    pub(crate) fn record_batch(&self, txns: usize) {
        self.entries.fetch_add(1, Relaxed);
        self.txns.fetch_add(txns as u64, Relaxed);
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
    pub(crate) fn view_write(&self, ok: bool) {
        if ok {
            self.view_writes.fetch_add(1, Relaxed);
        } else {
            self.view_errors.fetch_add(1, Relaxed);
        }
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
        }
    }
}
