//! Putting one record back to an earlier state, as a revert does (`crate::revert`).

use serde::Serialize;
use serde_json::{Value, json};

use super::Txn;
use super::hooks::Action;
use crate::collection::keys::is_live;
use crate::error::{Error, Result};
use crate::names::{CollectionName, RecordId};

/// What [`Txn::revert_record`] did to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reverted {
    /// It was already as the target says.
    Unchanged,
    /// It had not existed (or had been deleted): soft-deleted.
    Deleted,
    /// It had not existed, in a collection without soft delete: purged.
    Purged,
    /// It was deleted, and is live again.
    Restored,
    /// It was purged, and exists again.
    Recreated,
    /// Its fields are back.
    Updated,
}

impl Reverted {
    /// Its name in answers and reports (`deleted`, `restored`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Reverted::Unchanged => "unchanged",
            Reverted::Deleted => "deleted",
            Reverted::Purged => "purged",
            Reverted::Restored => "restored",
            Reverted::Recreated => "recreated",
            Reverted::Updated => "updated",
        }
    }
}

impl Txn {
    /// Puts record `c/id` back to `target`, a stored form read from the log (`None`: the
    /// record did not exist), as a revert does (see `crate::revert`). No references are
    /// followed: the changeset being reverted holds every change its cascades and hooks
    /// made, and those are reverted with it; the commit checks every rule on the result.
    /// A record the target says did not exist is soft-deleted where the collection has
    /// soft delete, and purged otherwise.
    pub fn revert_record(
        &mut self,
        c: &CollectionName,
        id: &RecordId,
        target: Option<&Value>,
    ) -> Result<Reverted> {
        let def = self.definition(c)?;
        let current = self.get_value(c, id);
        let Some(target) = target else {
            return match current {
                None => Ok(Reverted::Unchanged),
                Some(before) if !def.def.soft_delete => {
                    self.remove(&def, id, before, Action::Purge)?;
                    Ok(Reverted::Purged)
                }
                Some(before) if is_live(&before) => {
                    let mut after = before.clone();
                    let map = after.as_object_mut().expect("records are objects");
                    map.insert("deleted_at".into(), json!(self.now()));
                    map.insert("deleted_by".into(), json!(self.meta.actor));
                    self.touch(&mut after);
                    self.store(&def, id, Some(before), after, Action::Delete)?;
                    Ok(Reverted::Deleted)
                }
                Some(_) => Ok(Reverted::Unchanged),
            };
        };
        let mut after = target.clone();
        if !after.is_object() {
            return Err(Error::corrupt("a reverted record", "not a JSON object"));
        }
        let own = |v: &Value| {
            let mut fields = v.as_object().cloned().unwrap_or_default();
            fields.remove("updated_at");
            fields.remove("updated_by");
            fields
        };
        if current.as_ref().is_some_and(|cur| own(cur) == own(&after)) {
            return Ok(Reverted::Unchanged);
        }
        self.touch(&mut after);
        let (action, reverted) = match &current {
            None => (Action::Create, Reverted::Recreated),
            Some(cur) if is_live(cur) && !is_live(&after) => (Action::Delete, Reverted::Deleted),
            Some(cur) if !is_live(cur) && is_live(&after) => (Action::Restore, Reverted::Restored),
            Some(_) => (Action::Update, Reverted::Updated),
        };
        self.store(&def, id, current, after, action)?;
        Ok(reverted)
    }
}
