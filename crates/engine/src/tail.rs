//! The log tailer: keeps a handle within a bound of the log head even when it only reads.
//!
//! A handle learns of other processes' commits when it catches up: when it loses a slot,
//! when a read asks for [`Consistency::Latest`](crate::Consistency), and here. Without
//! the tailer a process that only reads would serve its last state forever (a role
//! changed by `bucketbase user set-role`, a collection defined through another server).
//!
//! Every `interval` the tailer reads the one slot after the head (`_log/{head+1}.json`):
//! one GET per interval, a NotFound when nothing is new, never a listing of the log. When
//! the slot exists it catches up until the next empty one. So without writing, a handle is
//! at most about one interval (plus one store round trip) behind. The default bound is
//! 200 ms on a local root and 1 s on S3 (see [`default_interval`]); its cost is one request
//! per interval per process (on S3 about 2.6 million GETs a month per process at 1 s).
//!
//! The tailer's health is kept in [`TailHealth`]: the last success and the last error, so
//! `/readyz` can say how stale a process may be and why.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::shared::Shared;
use crate::store::StoreUrl;

/// The default tailing interval for a root: 200 ms locally, 1 s on S3, none in memory
/// (a memory root cannot be shared between processes).
pub fn default_interval(url: &StoreUrl) -> Option<Duration> {
    match url {
        StoreUrl::Memory => None,
        StoreUrl::Local(_) => Some(Duration::from_millis(200)),
        StoreUrl::S3 { .. } => Some(Duration::from_secs(1)),
    }
}

/// How the tailer has been doing.
#[derive(Debug, Clone)]
pub struct TailStatus {
    /// How often the tailer reads the next slot.
    pub interval: Duration,
    /// Time since the last successful read of the log (its staleness bound in practice).
    pub since_success: Duration,
    /// The error of the last attempt, when it failed.
    pub last_error: Option<String>,
}

impl TailStatus {
    /// A tailer that has not succeeded for ten intervals is considered stalled.
    pub fn is_stalled(&self) -> bool {
        self.since_success > self.interval * 10
    }
}

/// Shared between the tailer task and the handle.
#[derive(Debug)]
pub(crate) struct TailHealth {
    interval: Duration,
    inner: Mutex<(Instant, Option<String>)>,
}

impl TailHealth {
    pub fn new(interval: Duration) -> Self {
        TailHealth {
            interval,
            inner: Mutex::new((Instant::now(), None)),
        }
    }

    pub fn status(&self) -> TailStatus {
        let (at, error) = &*self.inner.lock();
        TailStatus {
            interval: self.interval,
            since_success: at.elapsed(),
            last_error: error.clone(),
        }
    }

    fn succeeded(&self) {
        let mut inner = self.inner.lock();
        if inner.1.take().is_some() {
            tracing::info!("log tailer recovered");
        }
        inner.0 = Instant::now();
    }

    fn failed(&self, error: String) {
        let mut inner = self.inner.lock();
        // Log the change, not every failed attempt (a store outage would flood the log).
        if inner.1.is_none() {
            tracing::warn!(%error, "log tailer cannot read the log");
        }
        inner.1 = Some(error);
    }
}

/// Runs until `stop` is dropped or signalled.
pub(crate) async fn run(
    shared: Arc<Shared>,
    health: Arc<TailHealth>,
    mut stop: watch::Receiver<()>,
) {
    let mut ticks = tokio::time::interval(health.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        match shared.catch_up().await {
            Ok(_) => health.succeeded(),
            Err(e) => health.failed(e.to_string()),
        }
    }
}
