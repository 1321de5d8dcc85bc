//! Percentiles of one run, medians over runs, and the printed table.

use std::time::Duration;

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `p` percentile of sorted samples (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Median, minimum and maximum.
pub fn median(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    (xs[xs.len() / 2], xs[0], xs[xs.len() - 1])
}

/// What one workload measured in every run.
#[derive(Default)]
pub struct Figures {
    /// Sorted latencies, one list per run (sequential workloads).
    pub latencies: Vec<Vec<Duration>>,
    /// One figure per run, in ms (wall-time workloads).
    pub totals: Vec<f64>,
    /// How long the materialized view took to be written and durable after the run.
    pub view_lag: Vec<f64>,
    /// Answers 5xx (or anything unexpected), over all runs.
    pub errors: usize,
}

impl Figures {
    fn p(&self, p: f64) -> String {
        let (m, lo, hi) = median(
            self.latencies
                .iter()
                .map(|r| ms(percentile(r, p)))
                .collect(),
        );
        format!("{m:.2} [{lo:.2}–{hi:.2}]")
    }

    /// `p50 / p99` (medians over runs, with their range).
    pub fn p50_p99(&self) -> String {
        format!("{} / {} ms", self.p(0.5), self.p(0.99))
    }

    pub fn total(&self) -> String {
        let (m, lo, hi) = median(self.totals.clone());
        format!("{m:.0} ms [{lo:.0}–{hi:.0}]")
    }

    pub fn lag(&self) -> String {
        if self.view_lag.is_empty() {
            return "—".into();
        }
        let (m, _, hi) = median(self.view_lag.clone());
        format!("{m:.0} ms (max {hi:.0})")
    }
}

/// One row of the printed table.
pub struct Row<'a> {
    pub work: &'a str,
    pub peer: &'a str,
    pub ours: String,
    pub target: &'a str,
    pub lag: String,
}

pub fn print_table(rows: &[Row<'_>]) {
    println!(
        "| work | Django + DRF + PostgreSQL (issue 15) | Bucketbase | target | view lag after |"
    );
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.work, r.peer, r.ours, r.target, r.lag
        );
    }
}
