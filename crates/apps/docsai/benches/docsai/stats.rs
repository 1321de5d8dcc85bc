//! The printed table; the figures are `bucketbase_testkit::bench`'s.

pub use bucketbase_testkit::bench::{Figures, median, ms};

/// One row of the printed table.
pub struct Row {
    pub work: String,
    pub ours: String,
    pub lag: String,
}

pub fn print_table(rows: &[Row]) {
    println!("| work | Bucketbase (median [range]) | view lag after |");
    println!("|---|---|---|");
    for r in rows {
        println!("| {} | {} | {} |", r.work, r.ours, r.lag);
    }
}
