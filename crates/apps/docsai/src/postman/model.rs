//! The Postman collection format (v2.0.0 and v2.1.0) as Rust types.
//!
//! Each part is read from a `serde_json::Value` by a `from_json(value, path)` that knows
//! every shape the format allows for it (a request as a bare URL or an object, a URL as a
//! string or parts, headers as an array or one string, auth parameters as v2.0's map or
//! v2.1's list) and names the JSON path of anything it refuses. `to_json` writes the one
//! canonical v2.1 shape, so reading what was written gives back the same value: an
//! import, an export and an import again change nothing.
//!
//! Parts the server only stores and gives back (scripts, variables, query parameters,
//! form fields, body options, descriptions) stay `Value`s once their outer shape is
//! checked. Scripts are data here: nothing in this crate runs them.

use serde_json::{Map, Value, json};

use super::error::{Error, Result};
pub use super::parts::{Auth, AuthParam, Body, BodyMode, Request, Response};

/// The two versions of the format this reads; exports are always v2.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaVersion {
    V2_0,
    V2_1,
}

impl SchemaVersion {
    pub const V2_1_URL: &'static str =
        "https://schema.getpostman.com/json/collection/v2.1.0/collection.json";

    /// From `info.schema` (getpostman.com or schema.postman.com URLs).
    pub fn from_schema_url(url: &str) -> Option<SchemaVersion> {
        if url.contains("/collection/v2.1") {
            Some(SchemaVersion::V2_1)
        } else if url.contains("/collection/v2.0") {
            Some(SchemaVersion::V2_0)
        } else {
            None
        }
    }
}

/// A URL: the string as written, or its parts.
#[derive(Debug, Clone, PartialEq)]
pub enum Url {
    Raw(String),
    Parts(UrlParts),
}

/// `host` and `path` may each be one string or a list.
#[derive(Debug, Clone, PartialEq)]
pub enum OneOrMany {
    One(String),
    /// Path segments are strings or `{type, value}` objects (v2.1).
    Many(Vec<Value>),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct UrlParts {
    pub raw: Option<String>,
    pub protocol: Option<String>,
    pub host: Option<OneOrMany>,
    pub path: Option<OneOrMany>,
    pub port: Option<String>,
    pub query: Option<Vec<Value>>,
    pub hash: Option<String>,
    pub variable: Option<Vec<Value>>,
}

// ---- reading helpers ------------------------------------------------------------------

pub(crate) fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| Error::invalid(path, "must be an object"))
}

pub(crate) fn opt_string(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        // Postman writes some ids and ports as numbers.
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(Error::invalid(&format!("{path}/{key}"), "must be a string")),
    }
}

/// A list of objects (query parameters, form fields, variables, events, cookies).
pub(crate) fn opt_objects(
    m: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<Vec<Value>>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                object(item, &format!("{path}/{key}/{i}"))?;
            }
            Ok(Some(items.clone()))
        }
        Some(_) => Err(Error::invalid(&format!("{path}/{key}"), "must be an array")),
    }
}

pub(crate) fn put(out: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        out.insert(key.into(), v);
    }
}

// ---- Url ------------------------------------------------------------------------------

impl OneOrMany {
    fn from_json(v: &Value, path: &str, objects_allowed: bool) -> Result<OneOrMany> {
        match v {
            Value::String(s) => Ok(OneOrMany::One(s.clone())),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let ok = item.is_string() || (objects_allowed && item.is_object());
                    if !ok {
                        return Err(Error::invalid(&format!("{path}/{i}"), "must be a string"));
                    }
                }
                Ok(OneOrMany::Many(items.clone()))
            }
            _ => Err(Error::invalid(path, "must be a string or an array")),
        }
    }
    fn to_json(&self) -> Value {
        match self {
            OneOrMany::One(s) => json!(s),
            OneOrMany::Many(v) => Value::Array(v.clone()),
        }
    }
    fn joined(&self, sep: &str) -> String {
        match self {
            OneOrMany::One(s) => s.clone(),
            OneOrMany::Many(parts) => parts
                .iter()
                .map(|p| match p {
                    Value::String(s) => s.clone(),
                    other => other
                        .get("value")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .into(),
                })
                .collect::<Vec<_>>()
                .join(sep),
        }
    }
}

impl Url {
    pub fn from_json(v: &Value, path: &str) -> Result<Url> {
        if let Value::String(s) = v {
            return Ok(Url::Raw(s.clone()));
        }
        let m =
            object(v, path).map_err(|_| Error::invalid(path, "must be a string or an object"))?;
        let sub = |k: &str| format!("{path}/{k}");
        Ok(Url::Parts(UrlParts {
            raw: opt_string(m, "raw", path)?,
            protocol: opt_string(m, "protocol", path)?,
            host: m
                .get("host")
                .filter(|v| !v.is_null())
                .map(|v| OneOrMany::from_json(v, &sub("host"), false))
                .transpose()?,
            path: m
                .get("path")
                .filter(|v| !v.is_null())
                .map(|v| OneOrMany::from_json(v, &sub("path"), true))
                .transpose()?,
            port: opt_string(m, "port", path)?,
            query: opt_objects(m, "query", path)?,
            hash: opt_string(m, "hash", path)?,
            variable: opt_objects(m, "variable", path)?,
        }))
    }

    pub fn to_json(&self) -> Value {
        match self {
            Url::Raw(s) => json!(s),
            Url::Parts(p) => {
                let mut out = Map::new();
                put(&mut out, "raw", p.raw.clone().map(Value::from));
                put(&mut out, "protocol", p.protocol.clone().map(Value::from));
                put(&mut out, "host", p.host.as_ref().map(OneOrMany::to_json));
                put(&mut out, "port", p.port.clone().map(Value::from));
                put(&mut out, "path", p.path.as_ref().map(OneOrMany::to_json));
                put(&mut out, "query", p.query.clone().map(Value::Array));
                put(&mut out, "hash", p.hash.clone().map(Value::from));
                put(&mut out, "variable", p.variable.clone().map(Value::Array));
                Value::Object(out)
            }
        }
    }

    /// The URL as one string: `raw` when given, else assembled from the parts.
    pub fn display(&self) -> String {
        match self {
            Url::Raw(s) => s.clone(),
            Url::Parts(p) => {
                if let Some(raw) = &p.raw {
                    return raw.clone();
                }
                let mut s = String::new();
                if let Some(proto) = &p.protocol {
                    s.push_str(proto);
                    s.push_str("://");
                }
                if let Some(h) = &p.host {
                    s.push_str(&h.joined("."));
                }
                if let Some(port) = &p.port {
                    s.push(':');
                    s.push_str(port);
                }
                if let Some(path) = &p.path {
                    let joined = path.joined("/");
                    if !joined.starts_with('/') {
                        s.push('/');
                    }
                    s.push_str(&joined);
                }
                s
            }
        }
    }

    /// The path part (for a mock endpoint), without query or hash.
    pub fn path(&self) -> String {
        match self {
            Url::Parts(p) if p.path.is_some() => {
                let joined = p.path.as_ref().map(|x| x.joined("/")).unwrap_or_default();
                if joined.starts_with('/') {
                    joined
                } else {
                    format!("/{joined}")
                }
            }
            other => {
                let full = other.display();
                let no_scheme = full.split_once("://").map_or(full.as_str(), |(_, r)| r);
                let rest = no_scheme.find('/').map_or("/", |i| &no_scheme[i..]);
                rest.split(['?', '#']).next().unwrap_or("/").to_string()
            }
        }
    }
}

// ---- headers --------------------------------------------------------------------------

/// Headers: an array of `{key, value, disabled, description}` or one string of
/// `Key: value` lines (read into the array form).
pub fn headers_from_json(v: Option<&Value>, path: &str) -> Result<Option<Vec<Value>>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(
            s.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| match l.split_once(':') {
                    Some((k, v)) => json!({"key": k.trim(), "value": v.trim()}),
                    None => json!({"key": l.trim(), "value": ""}),
                })
                .collect(),
        )),
        Some(Value::Array(items)) => {
            for (i, h) in items.iter().enumerate() {
                let m = object(h, &format!("{path}/{i}"))?;
                if !m.get("key").is_some_and(Value::is_string) {
                    return Err(Error::invalid(
                        &format!("{path}/{i}/key"),
                        "must be a string",
                    ));
                }
            }
            Ok(Some(items.clone()))
        }
        Some(_) => Err(Error::invalid(path, "must be an array or a string")),
    }
}
