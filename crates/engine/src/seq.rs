//! Log positions: `Seq`, a plain number with no failure mode of its own, kept apart from
//! the parsed names so that the error type (which reports positions) needs nothing that
//! reports errors.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A position in the commit log. `Seq(0)` is the empty log; entries start at 1.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    pub const ZERO: Seq = Seq(0);

    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
