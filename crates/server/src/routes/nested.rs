//! `/api/v1/{collection}/{id}/{nested}/...`: a record's nested items, two levels deep
//! (a workflow's executions, an execution's logs).
//!
//! Reads go to the record's items as the state keeps them (apart from its own fields,
//! see `bucketbase_engine::state::Doc`): a page of items, or one item, costs those items,
//! not the record's others. Access is judged on the record's own fields, which is what
//! rules read. Writes are the engine's item operations (one item in the log).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::ETAG;
use axum::routing::get;
use bucketbase_engine::collection::Compiled;
use bucketbase_engine::collection::keys::SortKey;
use bucketbase_engine::collection::ops::NestedPath;
use bucketbase_engine::collection::query::MAX_PER_PAGE;
use bucketbase_engine::collection::records::{Secrets, render_item};
use bucketbase_engine::{CollectionName, Doc, RecordId, Txn};
use serde_json::Value;

use super::records::hidden;
use super::{collection, definition, etag, record_id};
use crate::AppState;
use crate::access::{Action, Caller};
use crate::contract::Resource;
use crate::envelope::{Data, Envelope, JsonBody, RequestId};
use crate::error::{ApiError, Result};
use crate::params::ListParams;

const ITEMS: &str = "/api/v1/{collection}/{id}/{nested}";
const ITEM: &str = "/api/v1/{collection}/{id}/{nested}/{item_id}";
const SUB_ITEMS: &str = "/api/v1/{collection}/{id}/{nested}/{item_id}/{sub}";
const SUB_ITEM: &str = "/api/v1/{collection}/{id}/{nested}/{item_id}/{sub}/{sub_item_id}";

pub fn router() -> axum::Router<AppState> {
    resource().into_router()
}

/// The nested item routes, documented per collection from its definition.
pub fn resource() -> Resource {
    Resource::new()
        .route_per_collection(ITEMS, get(list).post(append))
        .route_per_collection(ITEM, get(read).patch(update).delete(remove))
        .route_per_collection(SUB_ITEMS, get(list).post(append))
        .route_per_collection(SUB_ITEM, get(read).patch(update).delete(remove))
}

/// The path segments after the record id, as the route gave them.
#[derive(serde::Deserialize)]
struct Segments {
    collection: String,
    id: String,
    nested: String,
    item_id: Option<String>,
    sub: Option<String>,
    sub_item_id: Option<String>,
}

/// What a nested route names: the record and the path of an array or an item in it
/// (the route decides which: an odd number of segments names an array, an even one an
/// item; each handler is routed only on paths of its kind).
struct Target {
    c: CollectionName,
    id: RecordId,
    path: NestedPath,
    def: std::sync::Arc<Compiled>,
}

impl Target {
    /// Resolves the route's segments against the collection's definition: an array the
    /// definition does not declare is not found.
    fn of(st: &AppState, s: Segments) -> Result<Target> {
        let (c, id) = (collection(&s.collection)?, record_id(&s.id)?);
        let def = definition(&st.db.snapshot(), &c)?;
        let segments: Vec<String> = [Some(s.nested), s.item_id, s.sub, s.sub_item_id]
            .into_iter()
            .flatten()
            .collect();
        let path = NestedPath::parse(segments).map_err(ApiError::not_found)?;
        if def.nested_at(&path.fields()).is_none() {
            return Err(ApiError::not_found(format!(
                "{c} has no nested array {:?}",
                path.fields().join("/")
            )));
        }
        Ok(Target { c, id, path, def })
    }

    /// The record, if the caller may see it (else not found, as for records).
    fn visible<'a>(&self, st: &'a bucketbase_engine::State, caller: &Caller) -> Result<&'a Doc> {
        let doc = st
            .get(&self.c, &self.id)
            .ok_or_else(|| hidden(&self.c, &self.id))?;
        if !caller.may(&self.def, Action::View, &doc.own_value()) {
            return Err(hidden(&self.c, &self.id));
        }
        Ok(doc)
    }

    /// An item at `path` as answers show it (secrets masked).
    fn shown(&self, path: &[String], mut item: Value) -> Result<Value> {
        render_item(&self.def, &self.id, path, &mut item, Secrets::Mask, None)?;
        Ok(item)
    }

    /// An item of the array this target names, as answers show it.
    fn shown_in_array(&self, item: Value) -> Result<Value> {
        let item_id = item.get("id").and_then(Value::as_str).unwrap_or_default();
        let path = [self.path.segments(), &[item_id.to_string()]].concat();
        self.shown(&path, item)
    }

    fn item_missing(&self) -> ApiError {
        ApiError::not_found(format!(
            "{}/{}/{} not found",
            self.c,
            self.id,
            self.path.display()
        ))
    }
}

/// A page of the items of an array (`?page=&per_page=&sort=`, the page shape of lists:
/// `meta.total`, `page`, `per_page`). Unsorted, the items come in array order (oldest
/// first) and only the page's items are read; a sort reads each item's sort fields.
async fn list(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    Path(segments): Path<Segments>,
    params: ListParams,
) -> Result<Envelope> {
    let t = Target::of(&st, segments)?;
    if params.filter.is_some() || !params.equals.is_empty() {
        return Err(ApiError::bad_request(
            "nested item pages take page, per_page and sort only",
        ));
    }
    let per_page = params.per_page.clamp(1, MAX_PER_PAGE);
    let page = params.page.max(1);
    let snap = st.db.snapshot();
    let doc = t.visible(&snap, &caller)?;
    // The array's items as the state keeps them, or (not kept apart: an old document,
    // or an array never written) read from the whole value.
    let kept = doc.items(t.path.segments());
    let whole;
    let items: Vec<Value> = match kept {
        Some(_) => Vec::new(),
        None => {
            whole = doc.value();
            let segments = t.path.segments();
            if segments.len() == 3
                && bucketbase_engine::collection::ops::item_at(&whole, &segments[..2]).is_none()
            {
                return Err(ApiError::not_found(format!(
                    "{}/{}/{} not found",
                    t.c,
                    t.id,
                    segments[..2].join("/")
                )));
            }
            array_in(&whole, segments).cloned().unwrap_or_default()
        }
    };
    let total = kept.map_or(items.len(), |k| k.len());
    let item = |at: usize| match kept {
        Some(k) => k[at].value(),
        None => items[at].clone(),
    };
    let skip = (page - 1).saturating_mul(per_page);
    let order: Vec<usize> = if params.sort.is_empty() {
        (skip..total.min(skip.saturating_add(per_page))).collect()
    } else {
        let mut keyed: Vec<(Vec<SortKey>, usize)> = (0..total)
            .map(|at| {
                let own = match kept {
                    Some(k) => k[at].own_value(),
                    None => items[at].clone(),
                };
                (sort_keys(&own, &params.sort), at)
            })
            .collect();
        keyed.sort_by(|a, b| compare(&a.0, &b.0, &params.sort).then(a.1.cmp(&b.1)));
        keyed
            .into_iter()
            .skip(skip)
            .take(per_page)
            .map(|(_, at)| at)
            .collect()
    };
    let items = order
        .into_iter()
        .map(|at| t.shown_in_array(item(at)))
        .collect::<Result<Vec<Value>>>()?;
    Ok(Envelope::ok(&req, items)
        .meta("total", total)
        .meta("page", page)
        .meta("per_page", per_page)
        .meta("seq", snap.seq().get())
        .header(ETAG, &etag(doc.version)))
}

/// The array at `path` (field, or field / item id / field) of a whole record.
fn array_in<'a>(whole: &'a Value, path: &[String]) -> Option<&'a Vec<Value>> {
    match path {
        [field] => whole.get(field)?.as_array(),
        [field, item_id, sub] => {
            bucketbase_engine::collection::ops::item_at(whole, &[field.clone(), item_id.clone()])?
                .get(sub)?
                .as_array()
        }
        _ => None,
    }
}

fn sort_keys(item: &Value, sort: &[(String, bool)]) -> Vec<SortKey> {
    sort.iter()
        .map(|(field, _)| SortKey::of(item.get(field)))
        .collect()
}

fn compare(a: &[SortKey], b: &[SortKey], sort: &[(String, bool)]) -> std::cmp::Ordering {
    for ((x, y), (_, descending)) in a.iter().zip(b).zip(sort) {
        let order = x.order(y);
        let order = if *descending { order.reverse() } else { order };
        if order.is_ne() {
            return order;
        }
    }
    std::cmp::Ordering::Equal
}

/// One item (with its own nested arrays).
async fn read(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    Path(segments): Path<Segments>,
) -> Result<Envelope> {
    let t = Target::of(&st, segments)?;
    let snap = st.db.snapshot();
    let doc = t.visible(&snap, &caller)?;
    let (item_id, array) = t.path.segments().split_last().expect("an item path");
    let item = match doc.items(array) {
        Some(items) => items.iter().find(|i| i.id() == item_id).map(|i| i.value()),
        None => {
            bucketbase_engine::collection::ops::item_at(&doc.value(), t.path.segments()).cloned()
        }
    };
    let item = item.ok_or_else(|| t.item_missing())?;
    let item = t.shown(t.path.segments(), item)?;
    Ok(Envelope::ok(&req, item).header(ETAG, &etag(doc.version)))
}

/// Appends an item to an array (201 with the item).
async fn append(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    Path(segments): Path<Segments>,
    JsonBody(item): JsonBody<Value>,
) -> Result<Envelope> {
    let t = Target::of(&st, segments)?;
    let mut out = write(&st, &req, &caller, &t, Check::Snapshot, |tx| {
        tx.nested_append_at(&t.c, &t.id, &t.path, item.clone())
            .map(Some)
    })
    .await?;
    out.data = Data::Value(t.shown_in_array(out.take_data())?);
    out.status = StatusCode::CREATED;
    Ok(out)
}

/// Merge-patches an item's own fields.
async fn update(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    Path(segments): Path<Segments>,
    JsonBody(patch): JsonBody<Value>,
) -> Result<Envelope> {
    let t = Target::of(&st, segments)?;
    let mut out = write(&st, &req, &caller, &t, Check::InTxn, |tx| {
        tx.nested_patch_at(&t.c, &t.id, &t.path, &patch).map(Some)
    })
    .await?;
    out.data = Data::Value(t.shown(t.path.segments(), out.take_data())?);
    Ok(out)
}

/// Removes an item (with its own nested arrays).
async fn remove(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    Path(segments): Path<Segments>,
) -> Result<Envelope> {
    let t = Target::of(&st, segments)?;
    write(&st, &req, &caller, &t, Check::InTxn, |tx| {
        tx.nested_remove_at(&t.c, &t.id, &t.path).map(|()| None)
    })
    .await
}

/// How an item operation's access check reads the record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// In the transaction: a concurrent change of the record re-runs the operation (a
    /// patch or removal reads the record anyway).
    InTxn,
    /// On the snapshot the request starts from, without taking part in the transaction's
    /// reads: an append is placed at commit and must not conflict with other appends to
    /// the same record (32 writers appending to one record would re-run each other).
    /// The rule judges the record's own fields as of that snapshot (docs/collections.md).
    Snapshot,
}

/// Runs an item operation as the caller: the record must be one the caller may see and
/// update, judged on its own fields (an item operation leaves them, but for the times it
/// sets).
async fn write(
    st: &AppState,
    req: &RequestId,
    caller: &Caller,
    t: &Target,
    check: Check,
    f: impl Fn(&mut Txn) -> bucketbase_engine::Result<Option<Value>>,
) -> Result<Envelope> {
    let allowed = |own: &Value| {
        caller.may(&t.def, Action::View, own) && caller.may(&t.def, Action::Update, own)
    };
    if check == Check::Snapshot {
        let snap = st.db.snapshot();
        let doc = snap.get(&t.c, &t.id).ok_or_else(|| hidden(&t.c, &t.id))?;
        if !allowed(&doc.own_value()) {
            return Err(hidden(&t.c, &t.id));
        }
    }
    let committed = st
        .db
        .transact(&caller.txn_meta(req), |tx| {
            if check == Check::InTxn && !allowed(&tx.record_own(&t.c, &t.id)?) {
                return Err(hidden(&t.c, &t.id));
            }
            Ok(f(tx)?)
        })
        .await?;
    Ok(
        Envelope::ok(req, committed.value.unwrap_or(Value::Null))
            .header(ETAG, &etag(committed.seq)),
    )
}

/// `?nested=` of a record read: how its nested arrays are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NestedView {
    /// The whole record (the default).
    All,
    /// Without its arrays.
    None,
    /// Without its arrays, with `meta.nested_counts`.
    Count,
    /// With the newest n items of each array, and the counts.
    Newest(usize),
}

impl NestedView {
    pub fn parse(text: Option<&str>) -> Result<NestedView> {
        Ok(match text.map(str::trim) {
            None | Some("") | Some("all") => NestedView::All,
            Some("none") => NestedView::None,
            Some("count") => NestedView::Count,
            Some(n) => match n.parse::<usize>() {
                Ok(n) if n <= MAX_PER_PAGE => NestedView::Newest(n),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "nested must be none, count or a number of items up to {MAX_PER_PAGE}"
                    )));
                }
            },
        })
    }

    /// The record to show for `doc` (own fields plus what this view keeps of its arrays)
    /// and the counts of its top-level arrays (for `count` and `<n>`).
    pub fn record(
        self,
        def: &Compiled,
        doc: &Doc,
    ) -> (Value, Option<serde_json::Map<String, Value>>) {
        if self == NestedView::All {
            return (doc.value(), None);
        }
        let mut own = doc.own_value();
        let mut counts = serde_json::Map::new();
        for field in def.def.nested.keys() {
            let path = [field.clone()];
            let (len, newest): (usize, Vec<Value>) = match doc.items(&path) {
                Some(items) => {
                    let n = match self {
                        NestedView::Newest(n) => n.min(items.len()),
                        _ => 0,
                    };
                    let from = items.len() - n;
                    (
                        items.len(),
                        items.iter().skip(from).map(|i| i.value()).collect(),
                    )
                }
                None => {
                    // Kept among the own fields (not split): take it from there.
                    let items = own
                        .as_object_mut()
                        .and_then(|m| m.remove(field))
                        .and_then(|v| match v {
                            Value::Array(a) => Some(a),
                            _ => None,
                        })
                        .unwrap_or_default();
                    let n = match self {
                        NestedView::Newest(n) => n.min(items.len()),
                        _ => 0,
                    };
                    let len = items.len();
                    (len, items.into_iter().skip(len - n).collect())
                }
            };
            if let Some(map) = own.as_object_mut() {
                map.remove(field);
                if let NestedView::Newest(_) = self {
                    map.insert(field.clone(), Value::Array(newest));
                }
            }
            counts.insert(field.clone(), Value::from(len));
        }
        let counts = (self != NestedView::None).then_some(counts);
        (own, counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_views_parse() {
        assert_eq!(NestedView::parse(None).unwrap(), NestedView::All);
        assert_eq!(NestedView::parse(Some("none")).unwrap(), NestedView::None);
        assert_eq!(NestedView::parse(Some("count")).unwrap(), NestedView::Count);
        assert_eq!(NestedView::parse(Some("5")).unwrap(), NestedView::Newest(5));
        assert!(NestedView::parse(Some("-1")).is_err());
        assert!(NestedView::parse(Some("all of them")).is_err());
        assert!(NestedView::parse(Some("100000")).is_err());
    }
}
