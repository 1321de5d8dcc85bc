//! A stored record shown straight from its canonical text (issue 15 §4).
//!
//! Showing a record ([`crate::routes::records::show`]) parses its stored text into a
//! `Value`, masks its secrets, redacts its credential material, adds `_version`, and
//! the envelope writes the `Value` out again. For a collection without secrets or
//! redacted fields all that changes is `_version`, and since a document is stored as
//! canonical JSON (keys sorted by their bytes, written by serde_json's own writer:
//! `bucketbase_engine::canonical`), the `Value` would be written back as the same
//! text. So [`show_text`] copies the text and inserts `"_version":N` where a sorted
//! object puts it: the same bytes, without the parse, the tree of allocations and the
//! second write (together about a tenth of a GET by id's server CPU).
//!
//! Whenever that equivalence is not plain, [`show_text`] says `None` and the caller
//! takes the `Value` path: secrets or redacted fields declared, nested arrays kept apart
//! from the own fields (their whole text is assembled on demand), a document that is
//! not an object, one that already holds `_version`, a top-level key written with an
//! escape. Numbers need no exception: serde_json parses floats exactly
//! (`float_roundtrip`, on in the workspace) and writes the shortest text that parses
//! back to them, so a stored number is written back as it is stored. The tests compare
//! both paths byte for byte.

use std::fmt::Write;

use bucketbase_engine::Doc;
use bucketbase_engine::collection::Compiled;

use crate::envelope::JsonText;

/// `doc` as [`crate::routes::records::show`] shows it, written from its stored text;
/// `None` when that cannot be done without reading it (see the module docs).
pub fn show_text(def: &Compiled, doc: &Doc) -> Option<JsonText> {
    // `redact_record` never rewrites `id` (a record id that is credential material is
    // redacted where ids are shown elsewhere: audit events).
    if def.has_secrets() || def.def.redact.iter().any(|f| f != "id") || doc.is_split() {
        return None;
    }
    with_version(doc.body().get(), doc.version.get()).map(JsonText::new_unchecked)
}

/// The canonical object text `text` with `"_version":version` added where a sorted
/// object's keys put it; `None` when `text` is not an object, holds `_version` already,
/// or has a top-level key written with an escape.
fn with_version(text: &str, version: u64) -> Option<String> {
    const KEY: &[u8] = b"_version";
    let bytes = text.as_bytes();
    if bytes.first() != Some(&b'{') {
        return None;
    }
    // Walk the top-level keys (canonical text has no whitespace) up to the first one
    // sorting after `_version`, or the closing brace.
    let mut at = 1;
    while bytes.get(at) == Some(&b'"') {
        let end = string_end(bytes, at)?;
        let key = &bytes[at + 1..end - 1];
        if key.contains(&b'\\') || key == KEY {
            return None;
        }
        if key > KEY {
            break;
        }
        if bytes.get(end) != Some(&b':') {
            return None;
        }
        at = value_end(bytes, end + 1)?;
        match bytes.get(at) {
            Some(b',') => at += 1,
            Some(b'}') => break,
            _ => return None,
        }
    }
    let (before, after) = text.split_at(at);
    let mut out = String::with_capacity(text.len() + 32);
    out.push_str(before);
    match after.as_bytes().first() {
        Some(b'"') => {
            let _ = write!(out, "\"_version\":{version},");
        }
        Some(b'}') if at + 1 == text.len() => {
            if at > 1 {
                out.push(',');
            }
            let _ = write!(out, "\"_version\":{version}");
        }
        _ => return None,
    }
    out.push_str(after);
    Some(out)
}

/// The index just past the string starting at `start` (its opening quote).
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The index just past the JSON value starting at `start` (text without whitespace).
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = string_end(bytes, i)?,
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' if depth == 0 => return Some(i),
            b'}' | b']' => {
                depth -= 1;
                i += 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            b',' if depth == 0 => return Some(i),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests;
