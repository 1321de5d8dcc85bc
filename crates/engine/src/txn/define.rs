//! Defining a collection inside a transaction: the definition is a record of
//! `_definitions`, checked here and again at commit against the records it governs.

use serde_json::json;

use super::{Action, Txn};
use crate::collection::definition::Definition;
use crate::error::Result;
use crate::names::CollectionName;

impl Txn {
    /// Creates or replaces a collection definition. It is checked here and again at
    /// commit, against the records it governs. Returns whether anything changed.
    pub fn define(&mut self, def: &Definition) -> Result<bool> {
        def.compile()?;
        let defs = CollectionName::definitions();
        let id = crate::names::RecordId::parse(&def.name)?;
        let new = def.to_json();
        let old = self.get_value(&defs, &id);
        if old.as_ref() == Some(&new) {
            return Ok(false);
        }
        self.put(&defs, &id, &new)?;
        let action = if old.is_some() {
            Action::Update
        } else {
            Action::Create
        };
        let changes = json!({"definition": {"from": old, "to": new}});
        let mut event = self.audit_event(crate::names::DEFINITIONS, &def.name, action, changes);
        // Definition events have never carried the request id; kept so that their stored
        // form is what it was.
        event.request_id = None;
        self.audit(&event);
        Ok(true)
    }
}
