//! Hooks: observers of a transaction's changes that may add writes to it (aristay's
//! automatic tasks). [`Change`] is what they see.

use std::sync::Arc;

use serde_json::Value;

use super::Txn;
pub use crate::collection::event::Action;
use crate::collection::event::Source;
use crate::error::{Error, Result};
use crate::names::{CollectionName, RecordId};

/// One record change inside a transaction (stored forms: secrets encrypted).
///
/// For a nested item operation (`item` is set), `before` and `after` are the record's own
/// fields only, without its nested arrays (a record of 10,000 items is not copied twice
/// for the hooks), and `item` says which item changed and how.
#[derive(Debug, Clone)]
pub struct Change {
    pub collection: CollectionName,
    pub id: RecordId,
    pub action: Action,
    /// Shared with the transaction's staged write: hooks read it without a copy.
    pub before: Option<Arc<Value>>,
    pub after: Option<Arc<Value>>,
    /// Source of the change (`api`, `import:<id>`, `automation`, `cascade`, ...).
    pub source: Source,
    /// The nested item an item operation changed (`None` for a change of the record).
    pub item: Option<ItemChange>,
}

/// The item a nested item operation changed.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemChange {
    /// The item's path (`["executions", "<id>"]`, `["executions", "<id>", "logs", "<id>"]`).
    pub path: Vec<String>,
    /// The item after the change (its own fields), `None` when it was removed.
    pub item: Option<Value>,
}

/// Observes a transaction's changes and may add writes to it (aristay's automatic tasks).
/// Called after the transaction's own operations, then again for the changes hooks made,
/// until no new changes appear.
pub trait Hook: Send + Sync + std::fmt::Debug {
    fn on_changes(&self, tx: &mut Txn, changes: &[Change]) -> Result<()>;
}

/// Runs the hooks to a fixed point (at most 8 rounds).
pub(crate) fn run_hooks(tx: &mut Txn, hooks: &[Arc<dyn Hook>]) -> Result<()> {
    if hooks.is_empty() || tx.meta().has_tag(super::Tag::NO_HOOKS) {
        return Ok(());
    }
    // Changes the hooks saw in an earlier call (`Txn::run_hooks`) are not shown again.
    let mut seen = tx.hooked;
    for _ in 0..8 {
        if seen == tx.changes.len() {
            tx.hooked = seen;
            return Ok(());
        }
        // Moved out while the hooks run (they append their own changes), then put back
        // in order: no copy of the documents.
        let fresh = tx.changes.split_off(seen);
        seen += fresh.len();
        let mut outcome = Ok(());
        for hook in hooks {
            outcome = hook.on_changes(tx, &fresh);
            if outcome.is_err() {
                break;
            }
        }
        let added = tx.changes.split_off(seen - fresh.len());
        tx.changes.extend(fresh);
        tx.changes.extend(added);
        outcome?;
    }
    Err(Error::invalid(
        "transaction",
        "hooks kept producing changes after 8 rounds",
    ))
}
