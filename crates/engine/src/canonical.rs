//! Canonical JSON and the hashes built on it.
//!
//! The audit hash chain must not depend on how a serializer happens to order keys or
//! space output, nor on whether some dependency switched on serde_json's
//! `preserve_order`. Canonical form here is: object keys sorted by their UTF-8 bytes, no
//! insignificant whitespace, strings and numbers as serde_json writes them. Documents are
//! stored in this form, so a log entry assembled from them is canonical by construction
//! and its hash can be recomputed by anyone from the parsed file.

use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// Writes `value` in canonical form.
pub fn to_canonical_string(value: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out);
    // Only whole UTF-8 strings and ASCII punctuation were written.
    String::from_utf8(out).expect("canonical JSON is UTF-8")
}

/// Canonical form as a boxed raw JSON value (what records are stored as).
pub fn to_canonical_raw(value: &Value) -> Box<RawValue> {
    RawValue::from_string(to_canonical_string(value)).expect("canonical writer produces valid JSON")
}

/// Writes into a byte buffer (strings and numbers by serde_json's own writer, without
/// a string allocated per value: documents are written on every staged change).
pub(crate) fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            serde_json::to_writer(&mut *out, n).expect("numbers always serialize");
        }
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // serde_json's map iterates in key order unless `preserve_order` is on: only
            // then are the entries collected and sorted.
            if map.keys().is_sorted_by(|a, b| a.as_bytes() < b.as_bytes()) {
                write_entries(map.iter(), out);
            } else {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                write_entries(entries.into_iter(), out);
            }
        }
    }
}

fn write_entries<'a>(entries: impl Iterator<Item = (&'a String, &'a Value)>, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(k, out);
        out.push(b':');
        write_value(v, out);
    }
    out.push(b'}');
}

pub(crate) fn write_str(s: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, s).expect("strings always serialize");
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
