//! Progress of a migration: one bar per table on stderr, drawn only when stderr is a
//! terminal (a script or a test sees none of it).

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What the writer reports as it goes.
pub trait Progress {
    /// Reading `table` begins; it has `rows` rows.
    fn start(&self, table: &str, rows: u64);
    /// `n` more rows of `table` are done.
    fn advance(&self, table: &str, n: u64);
}

/// No progress shown.
pub struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: &str, _: u64) {}
}

/// One indicatif bar per table.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}

impl Bars {
    pub fn new() -> Self {
        // `stderr()` draws only on a terminal.
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// Leaves the finished bars on screen.
    pub fn finish(&self) {
        for bar in self.bars.lock().expect("not poisoned").values() {
            bar.finish();
        }
    }
}

impl Progress for Bars {
    fn start(&self, table: &str, rows: u64) {
        let bar = self.multi.add(ProgressBar::new(rows));
        bar.set_style(
            ProgressStyle::with_template("{msg:32} [{bar:30}] {pos}/{len} ({per_sec}, {eta})")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_message(table.to_string());
        self.bars
            .lock()
            .expect("not poisoned")
            .insert(table.to_string(), bar);
    }

    fn advance(&self, table: &str, n: u64) {
        if let Some(bar) = self.bars.lock().expect("not poisoned").get(table) {
            bar.inc(n);
        }
    }
}
