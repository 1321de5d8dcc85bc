//! Canonical JSON and the hashes built on it.
//!
//! The audit hash chain must not depend on how a serializer happens to order keys or
//! space output, nor on whether some dependency switched on serde_json's
//! `preserve_order`. Canonical form here is: object keys sorted by their UTF-8 bytes, no
//! insignificant whitespace, strings and numbers as serde_json writes them. Documents are
//! stored in this form, so a log entry assembled from them is canonical by construction
//! and its hash can be recomputed by anyone from the parsed file.

use serde::{Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// Writes `value` in canonical form.
pub fn to_canonical_string(value: &Value) -> String {
    serde_json::to_string(&Canonical(value)).expect("JSON values always serialize")
}

/// Canonical form as a boxed raw JSON value (what records are stored as). Written once:
/// `to_raw_value` takes the text as serialized, where `RawValue::from_string` would
/// parse it again to check it (documents and events are written on every staged change).
pub fn to_canonical_raw(value: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(&Canonical(value)).expect("JSON values always serialize")
}

/// A value that serializes in canonical form: object entries in key order, everything
/// else (strings, numbers, compact layout) as serde_json writes it.
pub(crate) struct Canonical<'a>(pub &'a Value);

impl Serialize for Canonical<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Array(items) => s.collect_seq(items.iter().map(Canonical)),
            // serde_json's map iterates in key order unless `preserve_order` is on: only
            // then are the entries collected and sorted.
            Value::Object(map) if map.keys().is_sorted_by(|a, b| a.as_bytes() < b.as_bytes()) => {
                s.collect_map(map.iter().map(|(k, v)| (k, Canonical(v))))
            }
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                s.collect_map(entries.into_iter().map(|(k, v)| (k, Canonical(v))))
            }
            other => other.serialize(s),
        }
    }
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
