//! Reverting a booking import (`POST /api/v1/audit/revert` with `import:<id>`).
//!
//! A manager may revert imports, and reverts of imports; everything else stays with
//! SuperAdmin. The revert puts back every booking, automatic task and auto-task ledger
//! row the import wrote, but not the import's own log record: that stays, marked
//! `reverted` with the source of its revert (`revert:import:<id>`, which the audit trail
//! answers for), and goes back to its earlier status when the revert is itself reverted.
//! A re-import after a revert finds no live booking of the file and creates them anew.

use bucketbase_engine::revert::Changeset;
use bucketbase_engine::{CollectionName, RecordId, Result, Txn};
use bucketbase_server::access::Caller;
use bucketbase_server::routes::revert::RevertPolicy;
use serde_json::{Value, json};

use crate::coll;

/// The collection of import logs.
const LOGS: &str = "booking_import_logs";

/// See the module docs.
#[derive(Debug, Default)]
pub struct ImportReverts;

/// The import a changeset is, or reverts: `(log id, is a revert)`.
fn import_of(changeset: &Changeset) -> Option<(&str, bool)> {
    let Changeset::Source(source) = changeset else {
        return None;
    };
    match source.strip_prefix("revert:") {
        Some(inner) => inner.strip_prefix("import:").map(|id| (id, true)),
        None => source.strip_prefix("import:").map(|id| (id, false)),
    }
}

impl RevertPolicy for ImportReverts {
    fn may_revert(&self, caller: &Caller, changeset: &Changeset) -> bool {
        caller.principal.role == "manager" && import_of(changeset).is_some()
    }

    fn leaves(&self, c: &CollectionName) -> bool {
        c.as_str() == LOGS
    }

    fn finish(&self, tx: &mut Txn, changeset: &Changeset) -> Result<()> {
        let Some((id, undoing)) = import_of(changeset) else {
            return Ok(());
        };
        let (logs, Ok(id)) = (coll(LOGS), RecordId::parse(id)) else {
            return Ok(());
        };
        let Some(log) = tx.get_value(&logs, &id) else {
            return Ok(());
        };
        let patch = if undoing {
            // Reverting the revert: the import's effects are back, and so is its status.
            let before = log.pointer("/reverted/status_before").cloned();
            json!({"status": before.unwrap_or(Value::Null), "reverted": null})
        } else {
            json!({
                "status": "reverted",
                "reverted": {
                    "source": format!("revert:import:{id}"),
                    "status_before": log.get("status").cloned().unwrap_or(Value::Null),
                },
            })
        };
        tx.update(&logs, &id, &patch, None).map(drop)
    }
}
