//! [`show_text`] against the `Value` path it stands in for, byte for byte.

use bucketbase_engine::canonical::to_canonical_raw;
use bucketbase_engine::collection::Definition;
use bucketbase_engine::collection::records::{Secrets, render};
use bucketbase_engine::{Doc, RecordId, Seq};
use serde_json::{Value, json};

use super::*;
use crate::envelope::{Envelope, RequestId};

fn compiled(def: Value) -> Compiled {
    Definition::from_json(&def).unwrap().compile().unwrap()
}

fn plain() -> Compiled {
    compiled(json!({"name": "notes"}))
}

/// Documents whose text stresses the splice: keys either side of `_version`, braces,
/// quotes and commas inside strings, nested objects, escapes, numbers of every kind.
fn documents() -> Vec<Value> {
    vec![
        json!({}),
        json!({"id": "n1"}),
        json!({"A": 1, "Z": 2, "_a": 3, "_w": 4, "a": 5}),
        json!({"0": [], "9": {}, "^": null, "_": false, "_version0": true, "`": "x"}),
        json!({"_vers": 1, "_versio": 2, "_versionx": 3}),
        json!({"title": "a \"quoted\" {brace}, [bracket] \\ and \n\t\u{1} é 😀"}),
        json!({"id": "n2", "nested": {"_version": 7, "z": [{"a": "}"}, "]", ","]},
               "list": [[], [{}], [1, [2, [3]]]]}),
        json!({"f": 1.5, "g": -0.25, "h": 1e300, "i": 5e-324, "j": 0.1, "k": 1.7976931348623157e308,
               "l": 18446744073709551615u64, "m": -9223372036854775808i64, "n": 0,
               "o": 2.2250738585072014e-308, "p": 123456789.12345679, "q": -0.0,
               "r": 1e21, "s": 1e-7, "t": 0.30000000000000004}),
        json!({"created_at": "2026-12-02T18:00:00Z", "created_by": "u", "deleted_at": null,
               "owner": "o", "topic": "t7", "title": "note 1", "updated_at": "2026-12-02T18:00:00Z"}),
    ]
}

/// What the record read answers through `routes::records::show` and a `Value`.
fn value_answer(def: &Compiled, doc: &Doc, req: &RequestId) -> Vec<u8> {
    let id = RecordId::parse("r1").unwrap();
    let mut shown = render(
        Some(def),
        &def.name,
        &id,
        doc.value(),
        doc.version,
        Secrets::Mask,
        None,
    )
    .unwrap();
    def.redact_record(&mut shown);
    Envelope::ok(req, shown).body()
}

fn doc(def: &Compiled, value: &Value, version: u64) -> Doc {
    Doc::new(
        Seq(version),
        std::sync::Arc::from(to_canonical_raw(value)),
        &def.shape,
    )
}

#[test]
fn the_text_answer_is_the_value_answer_byte_for_byte() {
    let def = plain();
    let req = RequestId("0b7d-request".into());
    for (i, value) in documents().iter().enumerate() {
        for version in [1, 9, 10, 12345, u64::MAX] {
            let doc = doc(&def, value, version);
            let text = show_text(&def, &doc).unwrap_or_else(|| panic!("document {i}"));
            let fast = Envelope::ok_text(&req, text).body();
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                String::from_utf8(value_answer(&def, &doc, &req)).unwrap(),
                "document {i} at version {version}"
            );
        }
    }
}

#[test]
fn the_value_path_is_kept_where_showing_changes_more_than_the_version() {
    let record = json!({"id": "r1", "title": "t", "api_key": "k", "password": "h",
                        "executions": [{"id": "e1", "status": "ok"}]});
    let secret = compiled(json!({"name": "hooks", "secret": ["api_key"]}));
    let redacted = compiled(json!({"name": "accounts", "redact": ["password"]}));
    let nested = compiled(json!({"name": "workflows", "nested": {"executions": {}}}));
    for def in [&secret, &redacted, &nested] {
        assert!(
            show_text(def, &doc(def, &record, 3)).is_none(),
            "{}",
            def.name
        );
    }
    // Items kept among the own fields (not an array of objects with ids) are plain text.
    let unsplit = json!({"id": "r1", "executions": "not an array"});
    assert!(show_text(&nested, &doc(&nested, &unsplit, 3)).is_some());
    // Redacting only `id` changes nothing in a record's answer.
    let only_id = compiled(json!({"name": "sessions", "redact": ["id"]}));
    assert!(show_text(&only_id, &doc(&only_id, &record, 3)).is_some());
    // A stored `_version`, an escaped key, not an object: the Value path decides.
    let def = plain();
    for odd in [
        json!({"_version": 1}),
        json!({"a\"b": 1}),
        json!([1]),
        json!("s"),
    ] {
        assert!(show_text(&def, &doc(&def, &odd, 3)).is_none(), "{odd}");
    }
}

#[test]
fn version_goes_where_a_sorted_object_puts_it() {
    assert_eq!(with_version("{}", 4).unwrap(), r#"{"_version":4}"#);
    assert_eq!(
        with_version(r#"{"A":1}"#, 4).unwrap(),
        r#"{"A":1,"_version":4}"#
    );
    assert_eq!(
        with_version(r#"{"a":1}"#, 4).unwrap(),
        r#"{"_version":4,"a":1}"#
    );
    assert_eq!(
        with_version(r#"{"B":{"z":"}","a":[1,"]"]},"a":{}}"#, 4).unwrap(),
        r#"{"B":{"z":"}","a":[1,"]"]},"_version":4,"a":{}}"#
    );
    assert_eq!(with_version("", 4), None);
    assert_eq!(with_version("[]", 4), None);
}
