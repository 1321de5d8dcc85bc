//! A stored document, with its nested arrays kept apart from its own fields.
//!
//! Why: a record's nested arrays grow (a workflow's executions, each with its logs), and
//! an item operation changes one item. Kept as one JSON text, every append would copy and
//! re-parse the whole record: the cost of an append would grow with the record. So a
//! [`Doc`] of a collection with nested arrays holds
//! - its **own fields** as canonical JSON text (without the nested arrays), and
//! - each nested array as a persistent vector ([`imbl::Vector`]) of [`Item`]s, each item
//!   its own fields' text, its id, and (two levels deep) its own arrays.
//!
//! An append pushes one item (O(log n), sharing every other item with the version
//! before), an item patch or removal replaces or removes one, a trim splits the vector.
//! Nothing else is copied or parsed. The whole document is assembled from the parts
//! only when someone reads it whole ([`Doc::body`], [`Doc::value`]), and the assembled
//! text is kept for that version, so a version is assembled at most once. The assembled
//! text is the canonical JSON of the same value, so answers, the view and checkpoints
//! are byte for byte what a whole-document log gives (docs/decisions/0018).
//!
//! Memory per item: its own fields' text, its id, and about 50 bytes of vector node and
//! pointers (measured by the `nested` bench).
//!
//! Which fields are split is the definition's ([`Shape`]); a document stored before its
//! collection declared an array, or whose array holds anything but objects with string
//! ids, keeps that field among its own fields, and an item operation on it goes the slow
//! way (the whole value, then split again).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use imbl::Vector;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::canonical::to_canonical_raw;
use crate::collection::ops::apply_op;
use crate::log::{Op, OpKind};
use crate::names::Seq;

pub use crate::collection::definition::Shape;

/// Nested arrays by field name (shared between versions: cloning is a pointer copy).
type Arrays = Option<Arc<BTreeMap<String, Vector<Item>>>>;

/// One item of a nested array.
#[derive(Debug, Clone)]
pub struct Item {
    id: Arc<str>,
    /// Its own fields (canonical JSON, without its nested arrays).
    own: Arc<RawValue>,
    arrays: Arrays,
}

impl Item {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The item, with its own nested arrays.
    pub fn value(&self) -> Value {
        join(&self.own, &self.arrays)
    }

    /// Its own fields (without its nested arrays).
    pub fn own_value(&self) -> Value {
        parse(&self.own)
    }

    /// The number of items of its array `field` (0 when it has none).
    pub fn count(&self, field: &str) -> usize {
        self.arrays
            .as_ref()
            .and_then(|a| a.get(field))
            .map_or(0, Vector::len)
    }

    /// The value of its own field `name`, read from its text.
    fn own_str(&self, name: &str) -> Option<String> {
        let fields: BTreeMap<&str, &RawValue> = serde_json::from_str(self.own.get()).ok()?;
        serde_json::from_str(fields.get(name)?.get()).ok()
    }

    /// `created_at`, for retention by age.
    pub fn created_at(&self) -> Option<String> {
        self.own_str("created_at")
    }
}

/// A stored document and the log position of its last change (its `_version`).
#[derive(Debug, Clone)]
pub struct Doc {
    pub version: Seq,
    /// The whole document when it has no split arrays; else its own fields.
    own: Arc<RawValue>,
    arrays: Arrays,
    /// The whole document, assembled on first read (shared by the clones of a version).
    whole: Arc<OnceLock<Arc<RawValue>>>,
}

impl Doc {
    /// A document from its whole canonical text, with the arrays of `shape` split out.
    pub fn new(version: Seq, body: Arc<RawValue>, shape: &Shape) -> Doc {
        if shape.is_empty() {
            return Doc::whole(version, body);
        }
        match serde_json::from_str::<Value>(body.get()) {
            Ok(value) => Doc::from_value(version, value, shape),
            Err(_) => Doc::whole(version, body),
        }
    }

    /// A document kept whole (no split arrays).
    pub fn whole(version: Seq, body: Arc<RawValue>) -> Doc {
        Doc {
            version,
            own: body,
            arrays: None,
            whole: Arc::default(),
        }
    }

    /// A document from its value, with the arrays of `shape` split out.
    pub fn from_value(version: Seq, value: Value, shape: &Shape) -> Doc {
        let (own, arrays) = split(value, shape);
        Doc {
            version,
            own: Arc::from(to_canonical_raw(&own)),
            arrays,
            whole: Arc::default(),
        }
    }

    /// A document from its whole canonical text `body` and its parsed `value` (the
    /// same document), with the arrays of `shape` split out: no parse, and the whole
    /// text is kept for the first read.
    fn from_parsed(version: Seq, body: Arc<RawValue>, value: &Value, shape: &Shape) -> Doc {
        if !shape
            .arrays()
            .any(|(field, _)| value.get(field).is_some_and(Value::is_array))
        {
            // Nothing to split out (a task without a checklist): its own fields are the
            // whole text, as `from_value` would write them again.
            return Doc::whole(version, body);
        }
        let doc = Doc::from_value(version, value.clone(), shape);
        if doc.arrays.is_some() {
            let _ = doc.whole.set(body);
        }
        doc
    }

    /// The whole document's canonical JSON text.
    pub fn body(&self) -> &Arc<RawValue> {
        if self.arrays.is_none() {
            return &self.own;
        }
        self.whole
            .get_or_init(|| Arc::from(to_canonical_raw(&join(&self.own, &self.arrays))))
    }

    /// Parses the whole document.
    pub fn value(&self) -> Value {
        match (&self.arrays, self.whole.get()) {
            (None, _) => parse(&self.own),
            (Some(_), Some(whole)) => parse(whole),
            (Some(_), None) => join(&self.own, &self.arrays),
        }
    }

    /// Its own fields (without the nested arrays kept apart): what rules, indexes and
    /// the index row read. Cheap whatever the number of items.
    pub fn own_value(&self) -> Value {
        parse(&self.own)
    }

    /// The canonical text of its own fields.
    pub fn own_body(&self) -> &Arc<RawValue> {
        &self.own
    }

    /// Whether its nested arrays are kept apart (any of them).
    pub fn is_split(&self) -> bool {
        self.arrays.is_some()
    }

    /// The items of the array at `path` (field, item id, field...), when kept apart.
    pub fn items(&self, path: &[String]) -> Option<&Vector<Item>> {
        let (field, rest) = path.split_first()?;
        let items = self.arrays.as_ref()?.get(field)?;
        if rest.is_empty() {
            return Some(items);
        }
        let (item_id, rest) = rest.split_first()?;
        let item = items.iter().find(|i| &*i.id == item_id)?;
        items_in(item, rest)
    }

    /// The document after `op` (`None`: deleted), sharing every part `op` leaves alone.
    /// `shape` is the collection's, for documents written whole.
    pub fn apply(
        current: Option<&Doc>,
        op: &Op,
        version: Seq,
        shape: &Shape,
    ) -> Result<Option<Doc>, String> {
        match op.op {
            OpKind::Put => {
                let body = op.doc.clone().ok_or("put without a document")?;
                return Ok(Some(match &op.value {
                    Some(value) if !shape.is_empty() => {
                        Doc::from_parsed(version, body, value, shape)
                    }
                    _ => Doc::new(version, body, shape),
                }));
            }
            OpKind::Delete => return Ok(None),
            _ => {}
        }
        let current = current.ok_or("an operation on a record that does not exist")?;
        if let Some(doc) = current.apply_fast(op, version, shape)? {
            return Ok(Some(doc));
        }
        // The slow way: the whole value.
        let after = apply_op(Some(current.value()), op)?.ok_or("the operation kept no record")?;
        Ok(Some(Doc::from_value(version, after, shape)))
    }

    /// `op` on the split parts, or `None` when its array is not kept apart.
    fn apply_fast(&self, op: &Op, version: Seq, shape: &Shape) -> Result<Option<Doc>, String> {
        let Some(arrays) = &self.arrays else {
            return Ok(None);
        };
        let mut arrays = arrays.clone();
        let done = match op.op {
            OpKind::Set => {
                let doc = op.doc.as_ref().ok_or("set without a document")?;
                let new: Value = serde_json::from_str(doc.get()).map_err(|e| e.to_string())?;
                let keep = op.keep.as_deref().unwrap_or_default();
                let own = replace_own(&self.own, new, keep, Arc::make_mut(&mut arrays))?;
                return Ok(Some(Doc {
                    version,
                    own: Arc::from(to_canonical_raw(&own)),
                    arrays: (!arrays.is_empty()).then_some(arrays),
                    whole: Arc::default(),
                }));
            }
            _ => {
                let path = op
                    .path
                    .as_deref()
                    .ok_or("an item operation without a path")?;
                item_op(Arc::make_mut(&mut arrays), path, op, shape)?
            }
        };
        if !done {
            return Ok(None);
        }
        let mut own = parse(&self.own);
        if let Some(map) = own.as_object_mut() {
            if let Some(at) = &op.at {
                map.insert("updated_at".into(), Value::String(at.clone()));
            }
            if let Some(by) = &op.by {
                map.insert("updated_by".into(), Value::String(by.clone()));
            }
        }
        Ok(Some(Doc {
            version,
            own: Arc::from(to_canonical_raw(&own)),
            arrays: Some(arrays),
            whole: Arc::default(),
        }))
    }
}

/// Applies an item op to split arrays; `false` when the array at `path` is not split.
fn item_op(
    arrays: &mut BTreeMap<String, Vector<Item>>,
    path: &[String],
    op: &Op,
    shape: &Shape,
) -> Result<bool, String> {
    let item_path = matches!(op.op, OpKind::ItemSet | OpKind::ItemDelete);
    let array_path = if item_path {
        &path[..path.len().saturating_sub(1)]
    } else {
        path
    };
    let Some(items) = vector_mut(arrays, array_path) else {
        return Ok(false);
    };
    let raw_item = || -> Result<Value, String> {
        let raw = op
            .item
            .as_ref()
            .ok_or("an item operation without its item")?;
        serde_json::from_str(raw.get()).map_err(|e| e.to_string())
    };
    match op.op {
        OpKind::Append => {
            let item = raw_item()?;
            // The item's own arrays, as the definition declares them.
            let fields = array_path.iter().step_by(2);
            let sub = fields.clone().try_fold(shape, |s, f| s.array(f));
            let Some(item) = sub.and_then(|sub| to_item(item, sub)) else {
                return Ok(false);
            };
            items.push_back(item);
        }
        OpKind::ItemSet | OpKind::ItemDelete => {
            let item_id = path.last().ok_or("an empty item path")?;
            let at = items
                .iter()
                .position(|i| &*i.id == item_id)
                .ok_or("no such nested item")?;
            if op.op == OpKind::ItemDelete {
                items.remove(at);
            } else {
                let new = raw_item()?;
                let keep = op.keep.as_deref().unwrap_or_default();
                let old = &items[at];
                let Some(Value::String(id)) = new.get("id").cloned() else {
                    return Ok(false);
                };
                let mut arrays = old.arrays.clone().unwrap_or_default();
                let own = replace_own(&old.own, new, keep, Arc::make_mut(&mut arrays))?;
                items.set(
                    at,
                    Item {
                        id: Arc::from(id),
                        own: Arc::from(to_canonical_raw(&own)),
                        arrays: (!arrays.is_empty()).then_some(arrays),
                    },
                );
            }
        }
        OpKind::Trim => {
            let count = op.count.ok_or("trim without a count")? as usize;
            let keep = items.split_off(count.min(items.len()));
            *items = keep;
        }
        OpKind::Put | OpKind::Delete | OpKind::Set => return Err("not an item operation".into()),
    }
    Ok(true)
}

/// The vector at `path` (field, item id, field...) of split arrays, for change. A first
/// append to an item's array that it does not hold yet creates it.
fn vector_mut<'a>(
    arrays: &'a mut BTreeMap<String, Vector<Item>>,
    path: &[String],
) -> Option<&'a mut Vector<Item>> {
    let (field, rest) = path.split_first()?;
    let items = arrays.get_mut(field)?;
    if rest.is_empty() {
        return Some(items);
    }
    let (item_id, rest) = rest.split_first()?;
    let at = items.iter().position(|i| &*i.id == item_id)?;
    let item = items.get_mut(at)?;
    let arrays = Arc::make_mut(item.arrays.get_or_insert_with(Default::default));
    if rest.len() == 1 && !arrays.contains_key(&rest[0]) {
        // The item's own fields must not hold that array (else it is not split).
        let own: Map<String, Value> = serde_json::from_str(item.own.get()).ok()?;
        if own.contains_key(&rest[0]) {
            return None;
        }
        arrays.insert(rest[0].clone(), Vector::new());
    }
    vector_mut(arrays, rest)
}

fn items_in<'a>(item: &'a Item, path: &[String]) -> Option<&'a Vector<Item>> {
    let (field, rest) = path.split_first()?;
    let items = item.arrays.as_ref()?.get(field)?;
    if rest.is_empty() {
        return Some(items);
    }
    let (item_id, rest) = rest.split_first()?;
    let item = items.iter().find(|i| &*i.id == item_id)?;
    items_in(item, rest)
}

/// A stored document's (or item's) canonical text, parsed.
pub(crate) fn parse(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).expect("stored documents are valid JSON")
}

/// `set` / `item_set` on split parts: `new` replaces the own fields, except the fields
/// `keep`, which keep their old value where there was one (a split array stays in
/// `arrays`; another is copied from the old own fields); split arrays not kept are
/// dropped. Exactly what [`apply_op`] does to the whole value. Returns the new own fields.
fn replace_own(
    old_own: &RawValue,
    new: Value,
    keep: &[String],
    arrays: &mut BTreeMap<String, Vector<Item>>,
) -> Result<Value, String> {
    let Value::Object(mut map) = new else {
        return Err("records and items are objects".into());
    };
    arrays.retain(|field, _| keep.contains(field));
    let mut old: Option<Map<String, Value>> = None;
    for field in keep {
        if arrays.contains_key(field) {
            map.remove(field);
            continue;
        }
        if old.is_none() {
            old = Some(serde_json::from_str(old_own.get()).map_err(|e| e.to_string())?);
        }
        if let Some(value) = old.as_ref().and_then(|o| o.get(field)) {
            map.insert(field.clone(), value.clone());
        }
    }
    Ok(Value::Object(map))
}

/// Splits the arrays of `shape` out of a record or item value (those that hold objects
/// with string ids; anything else stays among the own fields).
fn split(value: Value, shape: &Shape) -> (Value, Arrays) {
    let Value::Object(mut map) = value else {
        return (value, None);
    };
    let mut arrays = BTreeMap::new();
    for (field, sub) in shape.arrays() {
        let splittable = map.get(field).and_then(Value::as_array).is_some_and(|a| {
            a.iter()
                .all(|i| i.get("id").is_some_and(Value::is_string) && i.is_object())
        });
        if !splittable {
            continue;
        }
        let Some(Value::Array(items)) = map.remove(field) else {
            continue;
        };
        let items: Vector<Item> = items
            .into_iter()
            .map(|i| to_item(i, sub).expect("checked: objects with string ids"))
            .collect();
        arrays.insert(field.clone(), items);
    }
    let arrays = (!arrays.is_empty()).then(|| Arc::new(arrays));
    (Value::Object(map), arrays)
}

fn to_item(value: Value, shape: &Shape) -> Option<Item> {
    let id: Arc<str> = Arc::from(value.get("id")?.as_str()?);
    if !value.is_object() {
        return None;
    }
    let (own, arrays) = split(value, shape);
    Some(Item {
        id,
        own: Arc::from(to_canonical_raw(&own)),
        arrays,
    })
}

/// The whole value of own fields and split arrays.
fn join(own: &RawValue, arrays: &Arrays) -> Value {
    let mut value = parse(own);
    if let (Some(arrays), Value::Object(map)) = (arrays, &mut value) {
        for (field, items) in arrays.iter() {
            map.insert(
                field.clone(),
                Value::Array(items.iter().map(Item::value).collect()),
            );
        }
    }
    value
}
