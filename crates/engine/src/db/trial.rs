//! Trial runs: check transactions one after another against the current state without
//! committing any of them.
//!
//! Each step runs like a transaction (the closure, then the hooks) and is validated
//! exactly as the committer would validate it (schema, checks, unique, exclude,
//! references, audit completeness) against the state left by the steps accepted before
//! it. A step that fails leaves the trial state as it was. Imports use it to name every
//! bad row of a file (including rows that clash with each other) before committing the
//! good ones, and for dry runs.

use std::sync::Arc;

use crate::collection::integrity::Mode;
use crate::db::Database;
use crate::error::Result;
use crate::names::Seq;
use crate::state::State;
use crate::txn::{Hook, resolve_appends, run_hooks};
use crate::txn::{Txn, TxnContext, TxnMeta};

/// See the module docs.
pub struct Trial {
    state: State,
    seq: Seq,
    ctx: Arc<TxnContext>,
    meta: TxnMeta,
    hooks: Vec<Arc<dyn Hook>>,
}

impl std::fmt::Debug for Trial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trial")
            .field("base", &self.state.seq())
            .finish()
    }
}

impl Database {
    /// A trial on the current state (see [`Trial`]), with this handle's hooks.
    pub fn trial(&self, meta: &TxnMeta) -> Trial {
        let state = (*self.snapshot()).clone();
        Trial {
            seq: state.seq().next(),
            state,
            ctx: self.context().clone(),
            meta: meta.clone(),
            hooks: self.hooks().to_vec(),
        }
    }
}

impl Trial {
    /// Runs `f` as one transaction on the trial state. When it passes every check its
    /// writes stay for the following steps; otherwise its error is returned and nothing
    /// of it stays.
    pub fn step<T>(&mut self, f: impl FnOnce(&mut Txn) -> Result<T>) -> Result<T> {
        let mut txn = Txn::new(
            Arc::new(self.state.clone()),
            self.ctx.clone(),
            self.meta.clone(),
        );
        let value = f(&mut txn)?;
        run_hooks(&mut txn, &self.hooks)?;
        if txn.is_read_only() {
            return Ok(value);
        }
        let pending = txn.take_pending(self.ctx.ids.new_id());
        let record = if pending.deferred.is_empty() {
            pending.record
        } else {
            resolve_appends(&self.state, &pending.record, &pending.deferred)?
        };
        let mut next = self.state.clone();
        next.apply_txn(&record, self.seq, Mode::Validate)?;
        self.state = next;
        Ok(value)
    }
}
