//! Sealing a write's secrets: the record's own secret places, and those of the nested
//! items it brings (`collection/secret`). Each write seals what it puts; what was sealed
//! stays sealed, so a write costs the secrets it carries.

use serde_json::Value;

use super::Txn;
use crate::collection::definition::Compiled;
use crate::collection::document::validation;
use crate::collection::secret::SealError;
use crate::error::{Error, Result};
use crate::names::RecordId;

impl Txn {
    /// Seals the secrets of `after`, a write of record `id` whose stored form was
    /// `before`: its own fields', and with `items`, those of its nested items (a create,
    /// or a write that replaces the arrays; an update keeps items as they were stored).
    pub(super) fn seal_record(
        &self,
        def: &Compiled,
        id: &RecordId,
        after: &mut Value,
        before: Option<&Value>,
        items: bool,
    ) -> Result<()> {
        if !def.has_secrets() {
            return Ok(());
        }
        let key = self.ctx.secrets.as_deref();
        let prefix = format!("{}/{id}/", def.name);
        def.secrets
            .seal(after, before, &prefix, key)
            .map_err(|e| sealing(def, e))?;
        if items {
            def.each_secret_item(id, after, &mut |fields, item, at| {
                fields.seal(item, None, at, key)
            })
            .map_err(|e| sealing(def, e))?;
        }
        Ok(())
    }

    /// Seals the secrets of one nested item at `path` of record `id` (the array's
    /// chain with item ids, the item's own id last), kept from `before` where masked,
    /// and of its own arrays' items.
    pub(super) fn seal_item(
        &self,
        def: &Compiled,
        id: &RecordId,
        path: &[String],
        item: &mut Value,
        before: Option<&Value>,
    ) -> Result<()> {
        if !def.has_secrets() {
            return Ok(());
        }
        let fields: Vec<String> = path.iter().step_by(2).cloned().collect();
        let Some(array) = def.nested_at(&fields) else {
            return Ok(());
        };
        let key = self.ctx.secrets.as_deref();
        let prefix = format!("{}/{id}/{}/", def.name, path.join("/"));
        array
            .secrets
            .seal(item, before, &prefix, key)
            .map_err(|e| sealing(def, e))?;
        def.each_secret_item_below(&fields, item, &prefix, &mut |fields, item, at| {
            fields.seal(item, None, at, key)
        })
        .map_err(|e| sealing(def, e))?;
        Ok(())
    }
}

/// The error a write's secrets give.
fn sealing(def: &Compiled, e: SealError) -> Error {
    match e {
        SealError::Invalid(errors) => validation(def, errors),
        SealError::NoKey(place) => Error::invalid(
            "secret field",
            format!("{}{place}: no secret key is configured", def.name),
        ),
        SealError::Engine(e) => e,
    }
}
