//! What one log operation does to a whole record document: the single definition of the
//! item operations of entry format 2, shared by replay (`state`) and by the readers that
//! rebuild a past document from the log (`audit::as_of_many`, hence revert).
//!
//! An item operation names its target by a path of field names and item ids: an array
//! is `["executions"]` or `["executions", "<execution id>", "logs"]`, an item is the
//! array's path plus the item's id. Applying one also sets the record's `updated_at` and
//! `updated_by` to the op's `at` and `by`, exactly what the whole new document of format 1
//! carried, so a format 2 log replays to the same documents a format 1 log of the same
//! operations does.

use serde_json::{Value, json};

use crate::log::{Op, OpKind};

/// Applies `op` to `current` (the record before it, `None` when absent) and returns the
/// record after it. An item operation on an absent record, or on an array or item that is
/// not there, is an error: the committer checked it, so the log is corrupt.
pub fn apply_op(current: Option<Value>, op: &Op) -> Result<Option<Value>, String> {
    match op.op {
        OpKind::Put => {
            let doc = op.doc.as_ref().ok_or("put without a document")?;
            serde_json::from_str(doc.get())
                .map(Some)
                .map_err(|e| e.to_string())
        }
        OpKind::Delete => Ok(None),
        OpKind::Set => {
            let old = current.ok_or("a set of a record that does not exist")?;
            let doc = op.doc.as_ref().ok_or("set without a document")?;
            let mut new: Value = serde_json::from_str(doc.get()).map_err(|e| e.to_string())?;
            keep_fields(&old, &mut new, op.keep.as_deref().unwrap_or_default());
            Ok(Some(new))
        }
        _ => {
            let mut doc = current.ok_or("an item operation on a record that does not exist")?;
            apply_item_op(&mut doc, op)?;
            Ok(Some(doc))
        }
    }
}

/// Applies an item operation (not `put` / `delete`) to a record in place.
pub fn apply_item_op(doc: &mut Value, op: &Op) -> Result<(), String> {
    let path = op
        .path
        .as_deref()
        .ok_or("an item operation without a path")?;
    let item = || -> Result<Value, String> {
        let raw = op
            .item
            .as_ref()
            .ok_or("an item operation without its item")?;
        serde_json::from_str(raw.get()).map_err(|e| e.to_string())
    };
    match op.op {
        OpKind::Append => {
            let items = array_mut(doc, path, true).ok_or("append to a missing array")?;
            items.push(item()?);
        }
        OpKind::ItemSet | OpKind::ItemDelete => {
            let (item_id, array) = path.split_last().ok_or("an empty item path")?;
            let items = array_mut(doc, array, false).ok_or("no such nested array")?;
            let at = position(items, item_id).ok_or("no such nested item")?;
            if op.op == OpKind::ItemSet {
                let mut new = item()?;
                keep_fields(&items[at], &mut new, op.keep.as_deref().unwrap_or_default());
                items[at] = new;
            } else {
                items.remove(at);
            }
        }
        OpKind::Trim => {
            let count = op.count.ok_or("trim without a count")? as usize;
            let items = array_mut(doc, path, false).ok_or("trim of a missing array")?;
            items.drain(..count.min(items.len()));
        }
        OpKind::Put | OpKind::Delete | OpKind::Set => {
            return Err("not an item operation".into());
        }
    }
    let map = doc.as_object_mut().ok_or("records are objects")?;
    if let Some(at) = &op.at {
        map.insert("updated_at".into(), json!(at));
    }
    if let Some(by) = &op.by {
        map.insert("updated_by".into(), json!(by));
    }
    Ok(())
}

/// Copies the fields `keep` of `old` (those it has) into `new`.
fn keep_fields(old: &Value, new: &mut Value, keep: &[String]) {
    for field in keep {
        if let (Some(value), Some(map)) = (old.get(field), new.as_object_mut()) {
            map.insert(field.clone(), value.clone());
        }
    }
}

/// The array at `path` (odd length: field, item id, field, ...). With `create`, a missing
/// last field becomes an empty array (the first append to it).
pub fn array_mut<'a>(
    doc: &'a mut Value,
    path: &[String],
    create: bool,
) -> Option<&'a mut Vec<Value>> {
    let (field, rest) = path.split_first()?;
    let map = doc.as_object_mut()?;
    if rest.is_empty() {
        if create && !map.get(field).is_some_and(Value::is_array) {
            map.insert(field.clone(), json!([]));
        }
        return map.get_mut(field)?.as_array_mut();
    }
    let (item_id, rest) = rest.split_first()?;
    let items = map.get_mut(field)?.as_array_mut()?;
    let at = position(items, item_id)?;
    array_mut(&mut items[at], rest, create)
}

/// The item at `path` (even length).
pub fn item_mut<'a>(doc: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let (item_id, array) = path.split_last()?;
    let items = array_mut(doc, array, false)?;
    let at = position(items, item_id)?;
    Some(&mut items[at])
}

/// The item at `path` (even length), read-only.
pub fn item_at<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    let (field, rest) = path.split_first()?;
    let items = doc.get(field)?.as_array()?;
    let (item_id, rest) = rest.split_first()?;
    let item = &items[position(items, item_id)?];
    if rest.is_empty() {
        Some(item)
    } else {
        item_at(item, rest)
    }
}

/// A path into a record's nested arrays: an array (`["executions"]`,
/// `["executions", "<id>", "logs"]`) or an item (`["executions", "<id>"]`,
/// `["executions", "<id>", "logs", "<id>"]`). Fields and item ids alternate; two levels
/// at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NestedPath(Vec<String>);

impl NestedPath {
    /// The record's array `field`.
    pub fn array(field: impl Into<String>) -> Self {
        NestedPath(vec![field.into()])
    }

    /// One step down: an item id after an array, a field after an item.
    pub fn then(mut self, segment: impl Into<String>) -> Self {
        self.0.push(segment.into());
        self
    }

    /// A path from its segments (1 to 4 of them).
    pub fn parse(segments: Vec<String>) -> Result<Self, String> {
        if segments.is_empty() || segments.len() > 4 || segments.iter().any(String::is_empty) {
            return Err("a nested path is field[/item id[/field[/item id]]]".into());
        }
        Ok(NestedPath(segments))
    }

    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// Does it name an item (rather than an array)?
    pub fn is_item(&self) -> bool {
        self.0.len().is_multiple_of(2)
    }

    /// The fields along the path, item ids left out: the array's name in a definition.
    pub fn fields(&self) -> Vec<String> {
        self.0.iter().step_by(2).cloned().collect()
    }

    /// The path shown in errors: `executions/<id>/logs`.
    pub fn display(&self) -> String {
        self.0.join("/")
    }
}

fn position(items: &[Value], item_id: &str) -> Option<usize> {
    items
        .iter()
        .position(|i| i.get("id").and_then(Value::as_str) == Some(item_id))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::canonical::to_canonical_raw;
    use crate::names::{CollectionName, RecordId};

    fn op(kind: OpKind, path: &[&str], item: Option<Value>, count: Option<u64>) -> Op {
        Op::item(
            CollectionName::parse("w").unwrap(),
            RecordId::parse("r").unwrap(),
            kind,
            path.iter().map(|s| s.to_string()).collect(),
            item.map(|i| Arc::from(to_canonical_raw(&i))),
            count,
            "T",
            "bob",
        )
    }

    #[test]
    fn item_operations_two_levels_deep() {
        let mut doc = json!({"id": "r", "updated_at": "0", "updated_by": "a"});
        let steps = [
            op(OpKind::Append, &["ex"], Some(json!({"id": "e1"})), None),
            op(OpKind::Append, &["ex"], Some(json!({"id": "e2"})), None),
            op(
                OpKind::Append,
                &["ex", "e1", "logs"],
                Some(json!({"id": "l1"})),
                None,
            ),
            op(
                OpKind::Append,
                &["ex", "e1", "logs"],
                Some(json!({"id": "l2"})),
                None,
            ),
            op(
                OpKind::ItemSet,
                &["ex", "e1", "logs", "l2"],
                Some(json!({"id": "l2", "x": 1})),
                None,
            ),
            op(OpKind::ItemDelete, &["ex", "e2"], None, None),
            op(OpKind::Trim, &["ex", "e1", "logs"], None, Some(1)),
        ];
        for step in &steps {
            apply_item_op(&mut doc, step).unwrap();
        }
        assert_eq!(
            doc,
            json!({"id": "r", "updated_at": "T", "updated_by": "bob",
                   "ex": [{"id": "e1", "logs": [{"id": "l2", "x": 1}]}]})
        );
        let missing = op(OpKind::ItemDelete, &["ex", "nope"], None, None);
        assert!(apply_item_op(&mut doc, &missing).is_err());
        assert!(apply_op(None, &steps[0]).is_err());
    }
}
