//! Defining a collection inside a transaction: the definition is a record of
//! `_definitions`, checked here and again at commit against the records it governs.

use serde_json::json;

use super::Txn;
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
        let event = json!({
            "action": if old.is_some() { "update" } else { "create" },
            "actor": self.meta.actor,
            "at": self.ctx.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "changes": {"definition": {"from": old, "to": new}},
            "collection": crate::names::DEFINITIONS,
            "id": self.ctx.ids.new_id().to_string(),
            "record_id": def.name,
            "source": self.event_source.clone().unwrap_or_else(|| self.meta.source.clone()),
        });
        self.audit(&event)?;
        Ok(true)
    }
}
