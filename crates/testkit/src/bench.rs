//! What the apps' benchmarks measure and how they report it: percentiles of one run,
//! medians over runs with their range, and the view's lag.

use std::time::Duration;

/// A duration in milliseconds.
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
    /// Sorted latencies, one list per run (sequential requests).
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

    /// Whether nothing was measured (the workload did not run).
    pub fn is_empty(&self) -> bool {
        self.latencies.is_empty() && self.totals.is_empty()
    }

    /// `p50 / p99` (medians over runs, with their range).
    pub fn p50_p99(&self) -> String {
        format!("{} / {} ms", self.p(0.5), self.p(0.99))
    }

    /// The median total with its range, in ms (in s from 10 s).
    pub fn total(&self) -> String {
        let (m, lo, hi) = median(self.totals.clone());
        if m >= 10_000.0 {
            format!("{:.2} s [{:.2}–{:.2}]", m / 1e3, lo / 1e3, hi / 1e3)
        } else {
            format!("{m:.0} ms [{lo:.0}–{hi:.0}]")
        }
    }

    /// `count` things per second over the totals (median, range).
    pub fn rate(&self, count: u64, unit: &str) -> String {
        let (m, lo, hi) = median(
            self.totals
                .iter()
                .map(|t| count as f64 / (t / 1000.0))
                .collect(),
        );
        format!("{m:.0} {unit}/s [{lo:.0}–{hi:.0}]")
    }

    /// The view's lag: median, and the worst run.
    pub fn lag(&self) -> String {
        if self.view_lag.is_empty() {
            return "—".into();
        }
        let (m, _, hi) = median(self.view_lag.clone());
        format!("{m:.0} ms (max {hi:.0})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_medians_and_totals() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.5), Duration::from_millis(51));
        assert_eq!(percentile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(median(vec![3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        let f = Figures {
            totals: vec![12_000.0, 9_000.0, 15_000.0],
            ..Figures::default()
        };
        assert_eq!(f.total(), "12.00 s [9.00–15.00]");
        assert_eq!(f.rate(3_000, "rows"), "250 rows/s [200–333]");
        assert_eq!(Figures::default().lag(), "—");
    }
}
