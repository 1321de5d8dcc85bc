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
    let mut out = String::with_capacity(128);
    write_value(value, &mut out);
    out
}

/// Canonical form as a boxed raw JSON value (what records are stored as).
pub fn to_canonical_raw(value: &Value) -> Box<RawValue> {
    RawValue::from_string(to_canonical_string(value)).expect("canonical writer produces valid JSON")
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(k, out);
                out.push(':');
                write_value(v, out);
            }
            out.push('}');
        }
    }
}

fn write_str(s: &str, out: &mut String) {
    out.push_str(&serde_json::to_string(s).expect("strings always serialize"));
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
