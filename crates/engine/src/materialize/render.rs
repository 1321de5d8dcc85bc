//! How records and indexes render as view files: canonical JSON, deterministic, so a
//! rebuild reproduces the live files byte for byte.

use serde_json::{Map, Value};

use crate::canonical::to_canonical_string;
use crate::names::{CollectionName, RecordId, Seq};
use crate::state::{CollectionState, Doc, State};

/// A record as the view shows it: the document plus `_seq` and `_version`.
pub fn render_doc(doc: &Doc) -> Vec<u8> {
    let mut value = doc.value();
    if let Value::Object(map) = &mut value {
        map.insert("_seq".into(), doc.version.get().into());
        map.insert("_version".into(), doc.version.get().into());
    }
    to_canonical_string(&value).into_bytes()
}

/// A collection's `index.json`: every record's id, version and the chosen fields.
pub fn render_index(c: &CollectionName, coll: &CollectionState, fields: &[String]) -> Vec<u8> {
    render_index_from(c, coll, fields.to_vec(), None).0
}

/// An index's rows as last rendered, in id order.
pub(super) struct RenderedIndex {
    fields: Vec<String>,
    rows: Vec<(RecordId, Seq, Box<str>)>,
}

/// Renders an index, reusing the rows of `previous` whose record has the same version
/// (so the cost is a walk of the collection plus the changed records). The output is
/// the canonical form of `{"_seq", "collection", "count", "records"}` whatever
/// `previous` holds: [`render_index`] is this with nothing to reuse.
pub(super) fn render_index_from(
    c: &CollectionName,
    coll: &CollectionState,
    fields: Vec<String>,
    previous: Option<RenderedIndex>,
) -> (Vec<u8>, RenderedIndex) {
    let reusable = previous
        .filter(|p| p.fields == fields)
        .map(|p| p.rows)
        .unwrap_or_default();
    let mut old = reusable.into_iter().peekable();
    let mut rows = Vec::with_capacity(coll.docs.len());
    for (id, doc) in coll.docs.iter() {
        while old.next_if(|(old_id, _, _)| old_id < id).is_some() {}
        let row = match old.next_if(|(old_id, version, _)| old_id == id && *version == doc.version)
        {
            Some((_, _, row)) => row,
            None => render_index_row(id, doc, &fields).into_boxed_str(),
        };
        rows.push((id.clone(), doc.version, row));
    }
    let body: usize = rows.iter().map(|(_, _, row)| row.len() + 1).sum();
    let mut out = String::with_capacity(body + 128);
    // Keys in canonical (byte) order: _seq, collection, count, records.
    out.push_str("{\"_seq\":");
    out.push_str(&coll.changed.get().to_string());
    out.push_str(",\"collection\":");
    out.push_str(&to_canonical_string(&Value::from(c.as_str())));
    out.push_str(",\"count\":");
    out.push_str(&rows.len().to_string());
    out.push_str(",\"records\":[");
    for (i, (_, _, row)) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(row);
    }
    out.push_str("]}");
    (out.into_bytes(), RenderedIndex { fields, rows })
}

fn render_index_row(id: &RecordId, doc: &Doc, fields: &[String]) -> String {
    let mut row = Map::new();
    row.insert("id".into(), id.as_str().into());
    row.insert("_version".into(), doc.version.get().into());
    if !fields.is_empty()
        && let Value::Object(body) = doc.value()
    {
        for f in fields {
            if let Some(v) = body.get(f) {
                row.insert(f.clone(), v.clone());
            }
        }
    }
    to_canonical_string(&Value::Object(row))
}

/// The fields a collection's definition puts in its index (none when undefined).
pub(super) fn index_fields(state: &State, c: &CollectionName) -> Vec<String> {
    state
        .definition(c)
        .map(|d| d.def.index.clone())
        .unwrap_or_default()
}
