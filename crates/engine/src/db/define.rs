//! Installing definitions from the handle: one transaction for a set of them.

use crate::collection::definition::Definition;
use crate::error::Result;

use super::Database;

impl Database {
    /// Installs `defs` in one transaction (each a no-op when unchanged); true when any
    /// changed.
    pub async fn define_all(
        &self,
        meta: &crate::txn::TxnMeta,
        defs: &[Definition],
    ) -> Result<bool> {
        let committed = self
            .transact(meta, |tx| {
                let mut changed = false;
                for d in defs {
                    changed |= tx.define(d)?;
                }
                Ok::<_, crate::error::Error>(changed)
            })
            .await?;
        Ok(committed.value)
    }
}
