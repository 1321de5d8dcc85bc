//! Audit events and where a change came from: one type, [`AuditEvent`], for every event
//! the engine writes (record operations, deferred appends, definitions), and [`Source`],
//! the typed origin of a change.
//!
//! An event is stored as canonical JSON inside the log entry of the change it describes
//! (`TxnRecord::audit`), so its JSON form is part of the audit format: field names and
//! values here are exactly those of the events written before this type existed, and
//! [`Source`] reads and writes the same text (`api`, `import:<id>`, ...). Readers that
//! only filter or check events ([`EventHeader`]) borrow the few fields they need instead
//! of parsing the `changes`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Delete,
    Restore,
    Purge,
    /// A record's secrets were read out in clear (docsai's Postman export with
    /// `include_secrets`): no change, but who read them is on the audit trail.
    Export,
}

impl Action {
    /// The stored text (as serde writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Restore => "restore",
            Action::Purge => "purge",
            Action::Export => "export",
        }
    }
}

/// Where a change came from, as recorded with its transaction and its audit events.
///
/// The stored form is text; any text parses (unknown ones are [`Source::Other`]), so
/// reading an old log never fails and writing a source gives back the text it was made
/// from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// An HTTP request (`api`).
    Api,
    /// The server's own session and user records (`auth`).
    Auth,
    /// An operator command (`cli`).
    Cli,
    /// Definitions installed at start-up (`definitions`).
    Definitions,
    /// A hook's writes (`automation`: aristay's automatic tasks).
    Automation,
    /// A delete that followed a `references` rule (`cascade`).
    Cascade,
    /// Nested items pruned by a definition's `max_items` / `max_age` (`retention`).
    Retention,
    /// An import, named by its import log record (`import:<id>`).
    Import(String),
    /// A migration run (`migration:<run id>`: `bucketbase migrate sqlite`).
    Migration(String),
    /// A revert of a changeset, named by it (`revert:<changeset>`, e.g.
    /// `revert:import:<id>`; see `crate::revert`).
    Revert(String),
    /// Any other text (tests, benchmarks, tools).
    Other(String),
}

impl Source {
    /// The `import:<id>` source of an import whose log record is `id`.
    pub fn import(id: impl fmt::Display) -> Source {
        Source::Import(id.to_string())
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Import(id) => write!(f, "import:{id}"),
            Source::Migration(run) => write!(f, "migration:{run}"),
            Source::Revert(changeset) => write!(f, "revert:{changeset}"),
            Source::Other(text) => f.write_str(text),
            fixed => f.write_str(fixed.fixed_text().unwrap_or_default()),
        }
    }
}

impl FromStr for Source {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "api" => Source::Api,
            "auth" => Source::Auth,
            "cli" => Source::Cli,
            "definitions" => Source::Definitions,
            "automation" => Source::Automation,
            "cascade" => Source::Cascade,
            "retention" => Source::Retention,
            _ => match (s.strip_prefix("import:"), s.strip_prefix("revert:")) {
                (Some(id), _) => Source::Import(id.to_string()),
                (_, Some(changeset)) => Source::Revert(changeset.to_string()),
                _ => match s.strip_prefix("migration:") {
                    Some(run) => Source::Migration(run.to_string()),
                    None => Source::Other(s.to_string()),
                },
            },
        })
    }
}

impl From<&str> for Source {
    fn from(s: &str) -> Self {
        let Ok(source) = s.parse();
        source
    }
}

impl From<String> for Source {
    fn from(s: String) -> Self {
        Source::from(s.as_str())
    }
}

impl From<&Source> for Source {
    fn from(s: &Source) -> Self {
        s.clone()
    }
}

impl Source {
    /// The stored text of a source without a variable part (`None` for `import:` and
    /// other text).
    fn fixed_text(&self) -> Option<&'static str> {
        Some(match self {
            Source::Api => "api",
            Source::Auth => "auth",
            Source::Cli => "cli",
            Source::Definitions => "definitions",
            Source::Automation => "automation",
            Source::Cascade => "cascade",
            Source::Retention => "retention",
            Source::Import(_) | Source::Migration(_) | Source::Revert(_) | Source::Other(_) => {
                return None;
            }
        })
    }
}

/// Compares with the stored text (`change.source == "automation"`).
impl PartialEq<str> for Source {
    fn eq(&self, other: &str) -> bool {
        match self {
            Source::Import(id) => other.strip_prefix("import:") == Some(id.as_str()),
            Source::Migration(run) => other.strip_prefix("migration:") == Some(run.as_str()),
            Source::Other(text) => text == other,
            fixed => fixed.fixed_text() == Some(other),
        }
    }
}

impl PartialEq<&str> for Source {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl Serialize for Source {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Source::from(String::deserialize(d)?))
    }
}

/// One audit event: who did what to which record, when, from where, and the field-level
/// changes (`{"field": {"from", "to"}}`, nested arrays as `{"added", "removed",
/// "changed"}`). Built by `Txn` for every record operation and definition change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// The event's own id (from the handle's id source).
    pub id: String,
    /// RFC 3339 time with milliseconds, from the handle's clock.
    pub at: String,
    pub actor: String,
    pub source: Source,
    pub action: Action,
    pub collection: String,
    pub record_id: String,
    pub changes: Value,
    /// The HTTP request that caused it, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl AuditEvent {
    /// The stored form: canonical JSON, as the log holds it.
    pub fn to_raw(&self) -> Box<RawValue> {
        self.to_raw_with("changes", &self.changes)
    }

    /// The stored form with the field `changes` written as `key: value` instead, where
    /// `key` sorts between `at` and `collection` as `changes` does (format 3's
    /// `changes_from_put`, `collection::created`). Written field by field, in key order,
    /// without an intermediate `Value`: an import writes thousands of events.
    pub(crate) fn to_raw_with(&self, key: &str, value: &Value) -> Box<RawValue> {
        debug_assert!("at" < key && key < "collection");
        let mut event = crate::canonical::Object::with_capacity(384);
        event.text("action", self.action.as_str());
        event.text("actor", &self.actor);
        event.text("at", &self.at);
        event.value(key, value);
        event.text("collection", &self.collection);
        event.text("id", &self.id);
        event.text("record_id", &self.record_id);
        if let Some(request_id) = &self.request_id {
            event.text("request_id", request_id);
        }
        match self.source.fixed_text() {
            Some(text) => event.text("source", text),
            None => event.text("source", &self.source.to_string()),
        }
        event.finish()
    }

    /// The fields filters and checks read, borrowed from a stored event.
    pub fn header(raw: &RawValue) -> serde_json::Result<EventHeader<'_>> {
        serde_json::from_str(raw.get())
    }
}

/// The fields of a stored event that audit queries filter on and the commit checks
/// read, borrowed (the `changes`, often most of an event, are skipped, not parsed).
#[derive(Debug, Default, Deserialize)]
pub struct EventHeader<'a> {
    #[serde(borrow, default)]
    pub collection: Option<&'a str>,
    #[serde(borrow, default)]
    pub record_id: Option<&'a str>,
    #[serde(borrow, default)]
    pub actor: Option<&'a str>,
    #[serde(borrow, default)]
    pub source: Option<&'a str>,
    #[serde(borrow, default)]
    pub at: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::canonical::to_canonical_raw;

    #[test]
    fn sources_read_and_write_the_same_text() {
        for text in [
            "api",
            "auth",
            "cli",
            "definitions",
            "automation",
            "cascade",
            "import:0190",
            "revert:import:0190",
            "revert:seq:7",
            "test",
            "",
        ] {
            let source = Source::from(text);
            assert_eq!(source.to_string(), text);
            assert_eq!(
                serde_json::to_string(&source).unwrap(),
                format!("\"{text}\"")
            );
        }
        assert_eq!(Source::from("import:42"), Source::Import("42".into()));
        assert_eq!(Source::from("automation"), Source::Automation);
        assert!(Source::Cascade == "cascade");
    }

    /// The stored bytes are those of the `json!` literals events were written with.
    #[test]
    fn events_store_as_they_always_did() {
        let changes = json!({"name": {"from": "a", "to": "b"}});
        let mut event = AuditEvent {
            id: "e1".into(),
            at: "2026-01-01T00:00:00.000Z".into(),
            actor: "u1".into(),
            source: Source::import("42"),
            action: Action::Update,
            collection: "notes".into(),
            record_id: "r1".into(),
            changes: changes.clone(),
            request_id: Some("req".into()),
        };
        let literal = json!({
            "id": "e1", "at": "2026-01-01T00:00:00.000Z", "actor": "u1", "source": "import:42",
            "action": "update", "collection": "notes", "record_id": "r1", "changes": changes,
            "request_id": "req",
        });
        assert_eq!(event.to_raw().get(), to_canonical_raw(&literal).get());
        event.request_id = None;
        let mut literal = literal;
        literal.as_object_mut().unwrap().remove("request_id");
        assert_eq!(event.to_raw().get(), to_canonical_raw(&literal).get());
        for (action, source) in [
            (Action::Create, Source::Automation),
            (Action::Delete, Source::Other("a \"quoted\" é tool".into())),
            (Action::Restore, Source::Revert("import:7".into())),
            (Action::Purge, Source::Api),
            (Action::Export, Source::Migration("m1".into())),
        ] {
            let other = AuditEvent {
                action,
                source,
                ..event.clone()
            };
            let value = serde_json::to_value(&other).unwrap();
            assert_eq!(other.to_raw().get(), to_canonical_raw(&value).get());
            let mut by_reference = value;
            let map = by_reference.as_object_mut().unwrap();
            map.remove("changes");
            map.insert("changes_from_put".into(), json!({"nested": ["x"]}));
            assert_eq!(
                other
                    .to_raw_with("changes_from_put", &json!({"nested": ["x"]}))
                    .get(),
                to_canonical_raw(&by_reference).get()
            );
        }
        let back: AuditEvent = serde_json::from_str(event.to_raw().get()).unwrap();
        assert_eq!(back, event);
        let raw = event.to_raw();
        let header = AuditEvent::header(&raw).unwrap();
        assert_eq!(
            (header.collection, header.source),
            (Some("notes"), Some("import:42"))
        );
    }
}
