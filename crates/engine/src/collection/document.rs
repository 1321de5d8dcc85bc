//! Rules on one record document, whatever operation writes it: metadata stripped from
//! input, JSON merge patch, size limits (`max_record_bytes` for a record's own fields and
//! for each nested item), nested item lookup, and the errors these raise. Pure functions
//! of the definition and the document.

use serde_json::{Map, Value, json};

use super::definition::{Compiled, FieldError, METADATA_FIELDS};
use crate::error::{Error, Result, Violation, ViolationCode};
use crate::names::{CollectionName, RecordId};

pub fn validation(def: &Compiled, errors: Vec<FieldError>) -> Error {
    Error::from(Violation {
        code: ViolationCode::ValidationFailed,
        collection: def.name.to_string(),
        constraint: "schema".into(),
        fields: errors.iter().map(|e| e.path.clone()).collect(),
        conflicting: None,
        message: errors
            .first()
            .map(|e| format!("{}: {}", e.path, e.message))
            .unwrap_or_default(),
        errors,
    })
}

pub fn bad_input(def: &Compiled, path: &str, message: impl Into<String>) -> Error {
    validation(
        def,
        vec![FieldError {
            path: path.into(),
            message: message.into(),
        }],
    )
}

/// Checks a document about to be staged against `max_record_bytes`: its own fields
/// (the canonical document, `len` bytes, less its nested arrays) and, separately, each
/// item of its nested arrays. A record with many items is fine; one huge field is not.
pub fn check_record_size(
    def: Option<&Compiled>,
    c: &CollectionName,
    doc: &Value,
    len: usize,
    limit: usize,
) -> Result<()> {
    let mut own = len;
    // Only a definition with nested arrays has any to look for among the fields.
    let def = def.filter(|def| !def.def.nested.is_empty());
    if let (Some(def), Some(map)) = (def, doc.as_object()) {
        for (field, items) in map.iter().filter(|(f, _)| def.is_nested(f)) {
            own = own.saturating_sub(crate::log::json_len(items));
            check_items_size(def, c, std::slice::from_ref(field), items, limit)?;
        }
    }
    if own > limit {
        return Err(Error::TooLarge {
            what: format!("a record of {c} (its own fields)"),
            size: own,
            limit,
        });
    }
    Ok(())
}

/// Each item of the array named by `fields`: its own fields (less its nested arrays,
/// whose items count one by one) within `limit`.
fn check_items_size(
    def: &Compiled,
    c: &CollectionName,
    fields: &[String],
    items: &Value,
    limit: usize,
) -> Result<()> {
    let subs = def
        .nested_at(fields)
        .map(|a| a.subs.as_slice())
        .unwrap_or_default();
    for item in items.as_array().into_iter().flatten() {
        let mut own = crate::log::json_len(item);
        for sub in subs {
            if let Some(sub_items) = item.get(sub) {
                own = own.saturating_sub(crate::log::json_len(sub_items));
                let chain: Vec<String> = fields.iter().cloned().chain([sub.clone()]).collect();
                check_items_size(def, c, &chain, sub_items, limit)?;
            }
        }
        check_item_size(c, &fields.join("."), own, limit)?;
    }
    Ok(())
}

pub fn strip_metadata(fields: &mut Map<String, Value>) {
    // Most inputs carry none: one look at each key rather than a removal per field.
    if fields.keys().any(|k| METADATA_FIELDS.contains(&k.as_str())) {
        fields.retain(|k, _| !METADATA_FIELDS.contains(&k.as_str()));
    }
}

/// RFC 7396 merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().expect("made an object");
    for (k, v) in patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

pub fn check_item_size(c: &CollectionName, field: &str, size: usize, limit: usize) -> Result<()> {
    if size > limit {
        return Err(Error::TooLarge {
            what: format!("an item of {c}.{field}"),
            size,
            limit,
        });
    }
    Ok(())
}

pub fn item_not_found(c: &CollectionName, id: &RecordId, field: &str, item_id: &str) -> Error {
    Error::NotFound {
        collection: format!("{c}/{id}/{field}"),
        id: item_id.to_string(),
    }
}

pub fn find_item<'a>(record: &'a mut Value, field: &str, item_id: &str) -> Option<&'a mut Value> {
    record
        .get_mut(field)?
        .as_array_mut()?
        .iter_mut()
        .find(|i| i.get("id").and_then(Value::as_str) == Some(item_id))
}
