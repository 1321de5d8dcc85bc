//! Cascades: what a delete does to the records that point at the deleted one
//! (`references` with `on_delete`: `restrict`, `cascade`, `set_null`). Cascaded changes
//! carry the source `cascade`.

use serde_json::{Value, json};

use super::Txn;
use crate::collection::definition::OnDelete;
use crate::collection::keys::is_live;
use crate::error::{Error, Result, Violation, ViolationCode};
use crate::names::{CollectionName, RecordId};

impl Txn {
    /// Applies `on_delete` of the live records pointing at `c/id`, which is about to stop
    /// being live; `removed` when it goes for good (a references that allows deleted
    /// records only acts then).
    pub(super) fn follow_references(
        &mut self,
        c: &CollectionName,
        id: &RecordId,
        removed: bool,
    ) -> Result<()> {
        // Any new referrer committed meanwhile must make this attempt re-run.
        let referring: Vec<CollectionName> = self
            .snapshot
            .definitions()
            .filter(|(_, d)| d.references.iter().any(|r| r.target == *c))
            .map(|(n, _)| n.clone())
            .collect();
        for rc in &referring {
            self.read_collection(rc);
        }
        let referrers: Vec<(CollectionName, RecordId)> = self
            .snapshot
            .referrers
            .get(&(c.clone(), id.clone()))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for (rc, rid) in referrers {
            let Some(current) = self.get_value(&rc, &rid) else {
                continue;
            };
            if !is_live(&current) {
                continue;
            }
            let rdef = self.definition(&rc)?;
            for r in rdef.references.iter().filter(|r| r.target == *c) {
                if current.get(&r.def.field).and_then(Value::as_str) != Some(id.as_str())
                    || (r.def.allow_deleted && !removed)
                {
                    continue;
                }
                match r.def.on_delete {
                    OnDelete::Restrict => {
                        return Err(Error::from(Violation {
                            code: ViolationCode::ReferenceViolation,
                            collection: c.to_string(),
                            constraint: format!("{rc}.{}", r.def.field),
                            fields: vec![r.def.field.clone()],
                            conflicting: Some(rid.to_string()),
                            message: format!("{c}/{id} is still referenced by {rc}/{rid}"),
                            errors: Vec::new(),
                        }));
                    }
                    OnDelete::Cascade => {
                        self.with_source("cascade", |tx| tx.delete(&rc, &rid, None).map(|_| ()))?;
                    }
                    OnDelete::SetNull => {
                        let patch = json!({ r.def.field.clone(): null });
                        self.with_source("cascade", |tx| {
                            tx.update(&rc, &rid, &patch, None).map(|_| ())
                        })?;
                    }
                }
            }
        }
        Ok(())
    }
}
