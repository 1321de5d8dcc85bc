//! Parsed names: collection names, record ids and log positions.
//!
//! "Parse, don't validate": a `CollectionName` or `RecordId` can only be built through
//! `parse`, so a value that reaches the store is always safe to use as an object key
//! (`<collection>/<id>.json`) and cannot collide with the engine's own files.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};

pub use crate::seq::Seq;

/// A collection name: `[a-z][a-z0-9_]{0,62}`. Names starting with `_` are the engine's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct CollectionName(Arc<str>);

impl CollectionName {
    pub fn parse(s: &str) -> Result<Self> {
        let mut chars = s.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !first_ok || !rest_ok || s.len() > 63 {
            return Err(Error::invalid(
                "collection name",
                format!("{s:?}: use 1-63 characters a-z, 0-9 and _, starting with a letter"),
            ));
        }
        Ok(Self(Arc::from(s)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses the name of a collection a user may define: a valid [`Self::parse`] name
    /// that is not in `reserved` (the names fixed routes and apps use, e.g. `audit`,
    /// `events`, `aristay`: a collection of that name would be shadowed by the route).
    /// This is the one check every user-defined collection name goes through; the engine
    /// does not know the reserved names, the server passes them.
    pub fn parse_user<R: AsRef<str>>(s: &str, reserved: &[R]) -> Result<Self> {
        let name = Self::parse(s)?;
        if reserved.iter().any(|r| r.as_ref() == s) {
            return Err(Error::invalid(
                "collection name",
                format!("{s:?} is reserved: a route of the server or an app uses it"),
            ));
        }
        Ok(name)
    }

    /// Parses a system collection name: `_` then a valid collection name. System
    /// collections (the engine's `_collections`, the server's `_users`...) are not
    /// reachable through the generic records API, which only accepts [`Self::parse`].
    pub fn parse_system(s: &str) -> Result<Self> {
        match s.strip_prefix('_') {
            Some(rest) if Self::parse(rest).is_ok() => Ok(Self(Arc::from(s))),
            _ => Err(Error::invalid(
                "system collection name",
                format!("{s:?}: use _ followed by a collection name"),
            )),
        }
    }

    /// Parses a user or system collection name (what the engine's own files hold).
    pub fn parse_any(s: &str) -> Result<Self> {
        if s.starts_with('_') {
            Self::parse_system(s)
        } else {
            Self::parse(s)
        }
    }

    /// The engine's own collection of collection definitions.
    pub fn definitions() -> Self {
        Self(Arc::from(DEFINITIONS))
    }

    /// Is this one of the engine's own collections?
    pub fn is_system(&self) -> bool {
        self.0.starts_with('_')
    }
}

/// Name of the collection holding collection definitions (one record per collection,
/// id = the collection's name).
pub const DEFINITIONS: &str = "_collections";

impl fmt::Display for CollectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CollectionName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse_any(&s).map_err(serde::de::Error::custom)
    }
}

/// A record id: 1-128 characters `A-Z a-z 0-9 - _ .`, not starting with `.`, and not
/// `index` (which would collide with the collection's `index.json`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RecordId(Arc<str>);

impl RecordId {
    pub fn parse(s: &str) -> Result<Self> {
        // Bytes, not chars: every allowed character is ASCII, and no byte of another
        // character is.
        let chars_ok = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if s.is_empty() || s.len() > 128 || !chars_ok || s.starts_with('.') || s == "index" {
            return Err(Error::invalid(
                "record id",
                format!(
                    "{s:?}: use 1-128 characters A-Z, a-z, 0-9, '-', '_' and '.', not starting \
                     with '.', and not the reserved name \"index\""
                ),
            ));
        }
        Ok(Self(Arc::from(s)))
    }

    pub fn from_uuid(id: uuid::Uuid) -> Self {
        Self(Arc::from(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RecordId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_names() {
        for ok in ["bookings", "a", "auto_task_records", "t2"] {
            assert!(CollectionName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "_log",
            "Bookings",
            "2x",
            "a-b",
            "a/b",
            "a.b",
            &"x".repeat(64),
        ] {
            assert!(CollectionName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn record_ids() {
        for ok in ["0193b0a8-6c1e-7b7e-9a43-2f1b1b7f0a11", "abc", "A.b_c-1"] {
            assert!(RecordId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "index",
            ".hidden",
            "a/b",
            "../x",
            "a b",
            "é",
            "a\u{0301}",
            "ａｂｃ",
            &"x".repeat(129),
        ] {
            assert!(RecordId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn user_names_are_checked_against_the_reserved_ones() {
        let reserved = ["audit", "collections", "events", "aristay"];
        assert!(CollectionName::parse_user("notes", &reserved).is_ok());
        for bad in ["audit", "events", "aristay", "_users", "_evil", "Notes"] {
            assert!(CollectionName::parse_user(bad, &reserved).is_err(), "{bad}");
        }
    }

    #[test]
    fn system_names() {
        assert!(CollectionName::parse_system("_users").is_ok());
        assert!(
            CollectionName::parse("_users").is_err(),
            "not through the user-facing parser"
        );
        for bad in ["users", "_", "__x", "_Bad"] {
            assert!(CollectionName::parse_system(bad).is_err(), "{bad}");
        }
        assert_eq!(
            CollectionName::parse_any("_collections").unwrap(),
            CollectionName::definitions()
        );
    }

    #[test]
    fn deserialize_checks() {
        assert!(serde_json::from_str::<RecordId>("\"../etc\"").is_err());
        assert_eq!(
            serde_json::from_str::<CollectionName>("\"tasks\"")
                .unwrap()
                .as_str(),
            "tasks"
        );
    }
}
