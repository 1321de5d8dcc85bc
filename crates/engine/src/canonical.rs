//! Canonical JSON and the hashes built on it.
//!
//! The audit hash chain must not depend on how a serializer happens to order keys or
//! space output, nor on whether some dependency switched on serde_json's
//! `preserve_order`. Canonical form here is: object keys sorted by their UTF-8 bytes, no
//! insignificant whitespace, strings and numbers as serde_json writes them. Documents are
//! stored in this form, so a log entry assembled from them is canonical by construction
//! and its hash can be recomputed by anyone from the parsed file.

use std::fmt::Write as _;

use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// Writes `value` in canonical form.
pub fn to_canonical_string(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(&mut out, value);
    out
}

/// Canonical form as a boxed raw JSON value (what records are stored as). Written once,
/// and not parsed again to check it: documents and events are written on every staged
/// change, and an import writes thousands.
pub fn to_canonical_raw(value: &Value) -> Box<RawValue> {
    // Room for a typical record at once: growing a string copies it, and so does
    // boxing one of less than half its capacity (the allocator keeps the block
    // otherwise).
    let mut out = String::with_capacity(768);
    write_canonical(&mut out, value);
    raw(out)
}

/// Text written by this module's writers as a raw JSON value, as it is.
fn raw(text: String) -> Box<RawValue> {
    // SAFETY: every caller passes text that `write_canonical` wrote whole, or an
    // `Object`'s, which only its methods wrote: one well-formed JSON value without
    // surrounding whitespace. Debug builds parse it again to check.
    unsafe { RawValue::from_string_unchecked(text) }
}

/// A canonical object written field by field, for a struct's stored form without an
/// intermediate `Value`. The caller gives the fields in key order.
pub(crate) struct Object {
    out: String,
    #[cfg(debug_assertions)]
    last: String,
}

impl Object {
    pub(crate) fn with_capacity(bytes: usize) -> Object {
        Object {
            out: String::with_capacity(bytes),
            #[cfg(debug_assertions)]
            last: String::new(),
        }
    }

    fn key(&mut self, name: &str) {
        #[cfg(debug_assertions)]
        {
            assert!(
                self.out.is_empty() || self.last.as_bytes() < name.as_bytes(),
                "fields in key order: {name:?} after {:?}",
                self.last
            );
            self.last = name.to_string();
        }
        let first = self.out.is_empty();
        write_key(&mut self.out, first, name);
    }

    /// A field whose value is a string.
    pub(crate) fn text(&mut self, name: &str, value: &str) {
        self.key(name);
        write_str(&mut self.out, value);
    }

    /// A field whose value is any JSON value, in canonical form.
    pub(crate) fn value(&mut self, name: &str, value: &Value) {
        self.key(name);
        write_canonical(&mut self.out, value);
    }

    pub(crate) fn finish(mut self) -> Box<RawValue> {
        let empty = self.out.is_empty();
        close_object(&mut self.out, empty);
        raw(self.out)
    }
}

/// Appends `value` in canonical form: object entries in key order, strings and numbers
/// as serde_json writes them, no whitespace.
///
/// Written here rather than through serde: serde_json looks at a string's bytes one at
/// a time to escape them, and the documents and audit events a transaction stages are
/// nearly all strings (ids, times, names) that need no escape. A string is checked
/// sixteen bytes at a time and copied whole when it has none; one that has is written
/// by serde_json itself.
pub fn write_canonical(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        // `Number`'s `Display` is its serialization (itoa / the shortest float that
        // reads back); the tests compare the two.
        Value::Number(n) => write!(out, "{n}").expect("writing to a String cannot fail"),
        Value::String(text) => write_str(out, text),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, item);
            }
            out.push(']');
        }
        // serde_json's map iterates in key order unless `preserve_order` is on: only
        // then are the entries collected and sorted.
        Value::Object(map) if map.keys().is_sorted_by(|a, b| a.as_bytes() < b.as_bytes()) => {
            write_object(out, map.iter())
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            write_object(out, entries.into_iter())
        }
    }
}

fn write_object<'a>(out: &mut String, entries: impl Iterator<Item = (&'a String, &'a Value)>) {
    let mut empty = true;
    for (key, value) in entries {
        write_key(out, empty, key);
        write_canonical(out, value);
        empty = false;
    }
    close_object(out, empty);
}

/// An object's key: the object opened before its first, a comma before any other.
fn write_key(out: &mut String, first: bool, key: &str) {
    out.push(if first { '{' } else { ',' });
    write_str(out, key);
    out.push(':');
}

/// Closes an object that [`write_key`] opened, or writes `{}` when it had no field.
fn close_object(out: &mut String, empty: bool) {
    out.push_str(if empty { "{}" } else { "}" });
}

/// Appends `text` as a JSON string, escaped as serde_json escapes it.
pub fn write_str(out: &mut String, text: &str) {
    if needs_escape(text.as_bytes()) {
        out.push_str(&serde_json::to_string(text).expect("strings always serialize"));
    } else {
        out.reserve(text.len() + 2);
        out.push('"');
        out.push_str(text);
        out.push('"');
    }
}

/// The bytes [`write_str`] writes for `text`, counted without writing them.
pub fn str_len(text: &str) -> usize {
    if needs_escape(text.as_bytes()) {
        serde_json::to_string(text)
            .expect("strings always serialize")
            .len()
    } else {
        text.len() + 2
    }
}

/// Does `bytes` hold a quote, a backslash or a control character? Sixteen bytes are
/// looked at together, the last few padded with spaces: the compiler makes one vector
/// compare of each test, which is what makes the common case, no escape at all, cheap.
fn needs_escape(bytes: &[u8]) -> bool {
    fn any_of_16(chunk: &[u8; 16]) -> bool {
        chunk.iter().fold(false, |any, &b| {
            any | (b < 0x20) | (b == b'"') | (b == b'\\')
        })
    }
    let mut chunks = bytes.chunks_exact(16);
    for chunk in &mut chunks {
        if any_of_16(chunk.try_into().expect("chunks of sixteen")) {
            return true;
        }
    }
    let rest = chunks.remainder();
    let mut last = [b' '; 16];
    last[..rest.len()].copy_from_slice(rest);
    any_of_16(&last)
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Numbers and strings are written as serde_json writes (and formats) them.
    #[test]
    fn numbers_and_strings_as_serde_json_writes_them() {
        let v = json!([
            1.0,
            1.5,
            -0.25,
            1e300,
            12345678901234567890u64,
            -3,
            0,
            "tab\t\u{1}é"
        ]);
        let items: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|i| match i {
                Value::Number(n) => n.to_string(),
                other => serde_json::to_string(other).unwrap(),
            })
            .collect();
        assert_eq!(to_canonical_string(&v), format!("[{}]", items.join(",")));
    }

    #[test]
    fn sorts_keys_at_every_depth() {
        let v = json!({"b": 1, "a": {"z": [true, null, {"y": 1, "x": 2}], "c": "é\"\n"}});
        assert_eq!(
            to_canonical_string(&v),
            r#"{"a":{"c":"é\"\n","z":[true,null,{"x":2,"y":1}]},"b":1}"#
        );
    }

    #[test]
    fn canonical_form_round_trips() {
        let v = json!({"n": -1.5e10, "i": 18446744073709551615u64, "s": "\u{1f600}", "e": {}});
        let s = to_canonical_string(&v);
        let back: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(to_canonical_string(&back), s);
    }

    /// The canonical form as serde would write it: the reference the writer is
    /// compared with.
    struct BySerde<'a>(&'a Value);

    impl serde::Serialize for BySerde<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self.0 {
                Value::Array(items) => s.collect_seq(items.iter().map(BySerde)),
                Value::Object(map) => {
                    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                    s.collect_map(entries.into_iter().map(|(k, v)| (k, BySerde(v))))
                }
                other => serde::Serialize::serialize(other, s),
            }
        }
    }

    fn json_values() -> impl Strategy<Value = Value> {
        // Strings long and short, with and without what must be escaped, around the
        // sixteen-byte chunks the writer looks at.
        let text = prop_oneof![
            "[a-z0-9:-]{0,40}",
            "[ -~]{0,40}",
            "[\\x00-\\x1f\"\\\\a-zé\\u{1f600}\\u{2028}\\u{7f}]{0,40}",
            any::<String>(),
        ];
        let number = prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            number,
            text.clone().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec((text.clone(), inner), 0..8)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The writer writes what serde_json writes, keys sorted, for any value.
        #[test]
        fn writes_what_serde_json_writes(value in json_values()) {
            let expected = serde_json::to_string(&BySerde(&value)).unwrap();
            prop_assert_eq!(to_canonical_string(&value), expected.clone());
            let raw = to_canonical_raw(&value);
            prop_assert_eq!(raw.get(), expected);
        }
    }

    #[test]
    fn escapes_at_every_place_of_a_chunk() {
        for len in 0..40 {
            for at in 0..len {
                for special in ['"', '\\', '\n', '\u{1}', '\u{1f}'] {
                    let mut text: String = "x".repeat(len);
                    text.replace_range(at..at + 1, &special.to_string());
                    let mut out = String::new();
                    write_str(&mut out, &text);
                    assert_eq!(out, serde_json::to_string(&text).unwrap(), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn objects_written_field_by_field_are_canonical() {
        assert_eq!(Object::with_capacity(0).finish().get(), "{}");
        let mut object = Object::with_capacity(8);
        object.text("a", "x\"y");
        object.value("b", &json!({"d": [1, 2.5], "c": null}));
        object.text("c", "");
        let expected = json!({"a": "x\"y", "b": {"c": null, "d": [1, 2.5]}, "c": ""});
        assert_eq!(object.finish().get(), to_canonical_string(&expected));
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "fields in key order")]
    fn an_object_refuses_fields_out_of_order() {
        let mut object = Object::with_capacity(8);
        object.text("b", "1");
        object.text("a", "2");
    }

    #[test]
    fn a_string_is_counted_as_it_is_written() {
        for text in [
            "",
            "abc",
            "0190f5e4-aaaa-7bbb-8ccc-0123456789ab",
            "a\"b\\c\n\u{1}é",
        ] {
            let mut out = String::new();
            write_str(&mut out, text);
            assert_eq!(str_len(text), out.len(), "{text:?}");
        }
    }

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
