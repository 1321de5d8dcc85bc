//! The printed table; the figures are `bucketbase_testkit::bench`'s.

pub use bucketbase_testkit::bench::{Figures, ms};

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
