//! A whole collection: its info, its folder tree and its requests, read from a file with
//! the limits of [`Limits`], and written back as a v2.1 document.
//!
//! Hostile files are expected (the import is an upload). Before parsing, the size is
//! checked; serde_json refuses JSON nested deeper than 128 levels on its own (reported
//! as [`Error::TooDeep`]); the walk over folders is the only recursion here, and it
//! stops at `max_depth` (40 by default: one folder level is two JSON levels, so the
//! walk's own limit is reached well before serde_json's, with room for the requests'
//! contents). Folders, requests and responses are counted against `max_items`.

use serde_json::{Map, Value, json};

use super::error::{Error, Result};
use super::model::{Auth, Request, Response, SchemaVersion, object, opt_objects, opt_string, put};

/// The bounds of one import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the file (default 20 MiB, as the import route's body limit).
    pub max_bytes: usize,
    /// Folders inside folders.
    pub max_depth: usize,
    /// Folders plus requests plus saved responses.
    pub max_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 20 * 1024 * 1024,
            max_depth: 40,
            max_items: 100_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Collection {
    /// The version the file declared (an export is always v2.1).
    pub version: SchemaVersion,
    pub name: String,
    pub postman_id: Option<String>,
    pub description: Option<Value>,
    /// `info.version`: a string or `{major, minor, patch, identifier, meta}`.
    pub info_version: Option<Value>,
    pub auth: Option<Auth>,
    pub events: Option<Vec<Value>>,
    pub variables: Option<Vec<Value>>,
    pub protocol_profile_behavior: Option<Value>,
    pub items: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Folder(Box<Folder>),
    Request(Box<RequestItem>),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Folder {
    pub name: String,
    pub id: Option<String>,
    pub description: Option<Value>,
    pub auth: Option<Auth>,
    pub events: Option<Vec<Value>>,
    pub variables: Option<Vec<Value>>,
    pub protocol_profile_behavior: Option<Value>,
    pub items: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestItem {
    pub name: String,
    pub id: Option<String>,
    /// The item's description (the request has its own).
    pub description: Option<Value>,
    pub request: Request,
    pub responses: Vec<Response>,
    pub events: Option<Vec<Value>>,
    pub variables: Option<Vec<Value>>,
    pub protocol_profile_behavior: Option<Value>,
}

/// Reads a collection file.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Collection> {
    if bytes.len() > limits.max_bytes {
        return Err(Error::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| {
        if e.to_string().contains("recursion limit exceeded") {
            Error::TooDeep {
                what: "JSON",
                limit: 128,
            }
        } else {
            Error::NotJson(e.to_string())
        }
    })?;
    from_json(&doc, limits)
}

/// Reads a parsed collection document.
pub fn from_json(doc: &Value, limits: &Limits) -> Result<Collection> {
    let root = doc
        .as_object()
        .ok_or_else(|| Error::WrongSchema("the document is not a JSON object".into()))?;
    let Some(info) = root.get("info").and_then(Value::as_object) else {
        let why = if root.contains_key("requests") || root.contains_key("order") {
            "this looks like a v1 collection; export it from Postman as v2.1"
        } else {
            "it has no `info` object"
        };
        return Err(Error::WrongSchema(why.into()));
    };
    let schema = info
        .get("schema")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::WrongSchema("`info.schema` is missing".into()))?;
    let version = SchemaVersion::from_schema_url(schema)
        .ok_or_else(|| Error::WrongSchema(format!("unsupported schema {schema:?}")))?;
    let name = opt_string(info, "name", "/info")?
        .ok_or_else(|| Error::invalid("/info/name", "a collection needs a name"))?;
    let items = match root.get("item") {
        Some(Value::Array(items)) => items.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => return Err(Error::invalid("/item", "must be an array")),
    };
    let mut walk = Walk { limits, count: 0 };
    Ok(Collection {
        version,
        name,
        postman_id: opt_string(info, "_postman_id", "/info")?,
        description: info.get("description").filter(|v| !v.is_null()).cloned(),
        info_version: info.get("version").filter(|v| !v.is_null()).cloned(),
        auth: root
            .get("auth")
            .filter(|v| !v.is_null())
            .map(|a| Auth::from_json(a, "/auth"))
            .transpose()?,
        events: opt_objects(root, "event", "")?,
        variables: opt_objects(root, "variable", "")?,
        protocol_profile_behavior: root
            .get("protocolProfileBehavior")
            .filter(|v| !v.is_null())
            .cloned(),
        items: walk.items(items, "/item", 0)?,
    })
}

struct Walk<'a> {
    limits: &'a Limits,
    count: usize,
}

impl Walk<'_> {
    fn counted(&mut self, what: &'static str) -> Result<()> {
        self.count += 1;
        if self.count > self.limits.max_items {
            return Err(Error::TooManyItems {
                what,
                limit: self.limits.max_items,
            });
        }
        Ok(())
    }

    /// `depth` is the number of folders around `items`.
    fn items(&mut self, items: &[Value], path: &str, depth: usize) -> Result<Vec<Node>> {
        items
            .iter()
            .enumerate()
            .map(|(i, item)| self.node(item, &format!("{path}/{i}"), depth))
            .collect()
    }

    fn node(&mut self, v: &Value, path: &str, depth: usize) -> Result<Node> {
        let m = object(v, path)?;
        let name = opt_string(m, "name", path)?;
        let common_events = opt_objects(m, "event", path)?;
        let variables = opt_objects(m, "variable", path)?;
        let ppb = m
            .get("protocolProfileBehavior")
            .filter(|v| !v.is_null())
            .cloned();
        let description = m.get("description").filter(|v| !v.is_null()).cloned();
        if let Some(children) = m.get("item") {
            self.counted("folders and requests")?;
            if depth + 1 > self.limits.max_depth {
                return Err(Error::TooDeep {
                    what: "folders",
                    limit: self.limits.max_depth,
                });
            }
            let children = children
                .as_array()
                .ok_or_else(|| Error::invalid(&format!("{path}/item"), "must be an array"))?;
            return Ok(Node::Folder(Box::new(Folder {
                name: name.unwrap_or_default(),
                id: opt_string(m, "id", path)?,
                description,
                auth: m
                    .get("auth")
                    .filter(|v| !v.is_null())
                    .map(|a| Auth::from_json(a, &format!("{path}/auth")))
                    .transpose()?,
                events: common_events,
                variables,
                protocol_profile_behavior: ppb,
                items: self.items(children, &format!("{path}/item"), depth + 1)?,
            })));
        }
        self.counted("folders and requests")?;
        let request = m.get("request").ok_or_else(|| {
            Error::invalid(path, "an item needs `request` (or `item`, for a folder)")
        })?;
        let request = Request::from_json(request, &format!("{path}/request"))?;
        let responses = match m.get("response") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(rs)) => rs
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    self.counted("saved responses")?;
                    Response::from_json(r, &format!("{path}/response/{i}"))
                })
                .collect::<Result<_>>()?,
            Some(_) => {
                return Err(Error::invalid(
                    &format!("{path}/response"),
                    "must be an array",
                ));
            }
        };
        let name = name.unwrap_or_else(|| {
            request
                .url
                .as_ref()
                .map(|u| u.display())
                .unwrap_or_default()
        });
        Ok(Node::Request(Box::new(RequestItem {
            name,
            id: opt_string(m, "id", path)?,
            description,
            request,
            responses,
            events: common_events,
            variables,
            protocol_profile_behavior: ppb,
        })))
    }
}

/// What folders and requests both carry, in the file's own names.
fn put_common(
    o: &mut Map<String, Value>,
    events: &Option<Vec<Value>>,
    variables: &Option<Vec<Value>>,
    protocol_profile_behavior: &Option<Value>,
) {
    put(o, "event", events.clone().map(Value::Array));
    put(o, "variable", variables.clone().map(Value::Array));
    put(
        o,
        "protocolProfileBehavior",
        protocol_profile_behavior.clone(),
    );
}

impl Collection {
    /// The collection as a v2.1 document.
    pub fn to_json(&self) -> Value {
        let mut info = Map::new();
        put(
            &mut info,
            "_postman_id",
            self.postman_id.clone().map(Value::from),
        );
        info.insert("name".into(), json!(self.name));
        put(&mut info, "description", self.description.clone());
        put(&mut info, "version", self.info_version.clone());
        info.insert("schema".into(), json!(SchemaVersion::V2_1_URL));
        let mut out = Map::new();
        out.insert("info".into(), Value::Object(info));
        out.insert("item".into(), nodes_json(&self.items));
        put(&mut out, "auth", self.auth.as_ref().map(Auth::to_json));
        put_common(
            &mut out,
            &self.events,
            &self.variables,
            &self.protocol_profile_behavior,
        );
        Value::Object(out)
    }
}

/// Recursion bounded by the tree's depth, which [`parse`] and the record reader bound.
fn nodes_json(nodes: &[Node]) -> Value {
    Value::Array(
        nodes
            .iter()
            .map(|n| match n {
                Node::Folder(f) => {
                    let mut o = Map::new();
                    o.insert("name".into(), json!(f.name));
                    put(&mut o, "id", f.id.clone().map(Value::from));
                    put(&mut o, "description", f.description.clone());
                    o.insert("item".into(), nodes_json(&f.items));
                    put(&mut o, "auth", f.auth.as_ref().map(Auth::to_json));
                    put_common(
                        &mut o,
                        &f.events,
                        &f.variables,
                        &f.protocol_profile_behavior,
                    );
                    Value::Object(o)
                }
                Node::Request(r) => {
                    let mut o = Map::new();
                    put(&mut o, "id", r.id.clone().map(Value::from));
                    o.insert("name".into(), json!(r.name));
                    put(&mut o, "description", r.description.clone());
                    o.insert("request".into(), r.request.to_json());
                    o.insert(
                        "response".into(),
                        Value::Array(r.responses.iter().map(Response::to_json).collect()),
                    );
                    put_common(
                        &mut o,
                        &r.events,
                        &r.variables,
                        &r.protocol_profile_behavior,
                    );
                    Value::Object(o)
                }
            })
            .collect(),
    )
}
