//! A collection as docsai stores it: one `api_collections` record, its `requests` items
//! (each with its folder path) and its `mocks` items (the saved example responses), and
//! the way back to a [`Collection`] for export.
//!
//! The folder tree is kept flat so that requests stay nested items (appended, patched
//! and removed one at a time, DESIGN.md §3): the record lists the folders (with their
//! own auth, scripts and variables) with the index of their parent, each request names
//! its folder by index (and by path, for people and filters), and every folder and
//! request carries its depth-first `position`, which puts the tree back in its order.
//! Item ids are deterministic: UUIDv5 of the collection's key and the item's own key
//! (its Postman `id`, else its folder path and name; a repeat gets `#2`, `#3`...), so
//! importing the same file twice gives the same ids, and a request keeps its id when
//! others are added or removed around it (a re-import updates it in place).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::error::{Error, Result};
use super::model::{Auth, Request, Response, Url, put};
use super::tree::{Collection, Folder, Limits, Node, RequestItem};

/// The namespace of the item ids docsai derives for Postman imports.
const NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a8e_4b7d_5e90_a1c3_0d2e_7f48_9b16);

/// What an import writes: the record's own fields and its two nested arrays.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Imported {
    pub record: Map<String, Value>,
    pub requests: Vec<Value>,
    pub mocks: Vec<Value>,
}

impl Imported {
    /// `{"record": .., "requests": [..], "mocks": [..]}`: the document the paths of
    /// [`super::secrets::credential_paths`] point into.
    pub fn to_json(&self) -> Value {
        json!({"record": self.record, "requests": self.requests, "mocks": self.mocks})
    }
}

/// What folders and requests both carry: scripts, variables, protocol settings.
fn put_common(
    o: &mut Map<String, Value>,
    events: &Option<Vec<Value>>,
    variables: &Option<Vec<Value>>,
    protocol_profile_behavior: &Option<Value>,
) {
    put(o, "events", events.clone().map(Value::Array));
    put(o, "variables", variables.clone().map(Value::Array));
    put(
        o,
        "protocol_profile_behavior",
        protocol_profile_behavior.clone(),
    );
}

/// The key item ids derive from: the Postman id, else the name.
fn key(c: &Collection) -> String {
    c.postman_id
        .clone()
        .unwrap_or_else(|| format!("name:{}", c.name))
}

/// The collection as a record with its items.
pub fn to_record(c: &Collection) -> Imported {
    let mut record = Map::new();
    record.insert("name".into(), json!(c.name));
    put(&mut record, "description", c.description.clone());
    put(
        &mut record,
        "postman_id",
        c.postman_id.clone().map(Value::from),
    );
    put(&mut record, "version", c.info_version.clone());
    put(&mut record, "auth", c.auth.as_ref().map(Auth::to_json));
    put(
        &mut record,
        "variables",
        c.variables.clone().map(Value::Array),
    );
    put(&mut record, "events", c.events.clone().map(Value::Array));
    put(
        &mut record,
        "protocol_profile_behavior",
        c.protocol_profile_behavior.clone(),
    );
    let mut flat = Flatten {
        key: key(c),
        used: HashSet::new(),
        folders: Vec::new(),
        requests: Vec::new(),
        mocks: Vec::new(),
        position: 0,
    };
    flat.nodes(&c.items, None, &[]);
    record.insert("folders".into(), Value::Array(flat.folders));
    Imported {
        record,
        requests: flat.requests,
        mocks: flat.mocks,
    }
}

struct Flatten {
    key: String,
    /// Item keys already given (ids must be distinct within the collection).
    used: HashSet<String>,
    folders: Vec<Value>,
    requests: Vec<Value>,
    mocks: Vec<Value>,
    position: u64,
}

impl Flatten {
    /// Recursion bounded by the parsed tree's depth (`Limits::max_depth`).
    fn nodes(&mut self, nodes: &[Node], parent: Option<usize>, path: &[String]) {
        for n in nodes {
            let position = self.position;
            self.position += 1;
            match n {
                Node::Folder(f) => {
                    let index = self.folders.len();
                    let mut here = path.to_vec();
                    here.push(f.name.clone());
                    let mut o = Map::new();
                    o.insert("name".into(), json!(f.name));
                    o.insert("path".into(), json!(here));
                    put(&mut o, "parent", parent.map(Value::from));
                    o.insert("position".into(), json!(position));
                    put(&mut o, "postman_id", f.id.clone().map(Value::from));
                    put(&mut o, "description", f.description.clone());
                    put(&mut o, "auth", f.auth.as_ref().map(Auth::to_json));
                    put_common(
                        &mut o,
                        &f.events,
                        &f.variables,
                        &f.protocol_profile_behavior,
                    );
                    self.folders.push(Value::Object(o));
                    self.nodes(&f.items, Some(index), &here);
                }
                Node::Request(r) => self.request(r, parent, path, position),
            }
        }
    }

    /// A key not given before: `base`, else `base#2`, `base#3`...
    fn fresh(&mut self, base: String) -> String {
        let mut k = base.clone();
        let mut n = 1;
        while !self.used.insert(k.clone()) {
            n += 1;
            k = format!("{base}#{n}");
        }
        k
    }

    fn request(&mut self, r: &RequestItem, folder: Option<usize>, path: &[String], position: u64) {
        let own = match &r.id {
            Some(pid) => format!("id:{pid}"),
            None => format!("path:{}\0{}", path.join("\0"), r.name),
        };
        let own = self.fresh(format!("request\0{own}"));
        let id = Uuid::new_v5(&NAMESPACE, format!("{}\0{own}", self.key).as_bytes());
        let req = &r.request;
        let mut o = Map::new();
        o.insert("id".into(), json!(id.to_string()));
        o.insert("name".into(), json!(r.name));
        put(&mut o, "postman_id", r.id.clone().map(Value::from));
        o.insert("folder_path".into(), json!(path));
        put(&mut o, "folder", folder.map(Value::from));
        o.insert("position".into(), json!(position));
        o.insert(
            "method".into(),
            json!(req.method.clone().unwrap_or_else(|| "GET".into())),
        );
        o.insert(
            "url".into(),
            json!(req.url.as_ref().map(Url::display).unwrap_or_default()),
        );
        if let Some(u @ Url::Parts(_)) = &req.url {
            o.insert("url_detail".into(), u.to_json());
        }
        put(&mut o, "headers", req.headers.clone().map(Value::Array));
        put(&mut o, "body", req.body.as_ref().map(|b| b.to_json()));
        put(&mut o, "auth", req.auth.as_ref().map(Auth::to_json));
        put(&mut o, "description", req.description.clone());
        put(&mut o, "proxy", req.proxy.clone());
        put(&mut o, "certificate", req.certificate.clone());
        put(&mut o, "item_description", r.description.clone());
        put_common(
            &mut o,
            &r.events,
            &r.variables,
            &r.protocol_profile_behavior,
        );
        self.requests.push(Value::Object(o));
        for (i, resp) in r.responses.iter().enumerate() {
            let which = resp
                .id
                .as_ref()
                .map_or_else(|| format!("#{i}"), |id| format!("id:{id}"));
            let key = self.fresh(format!("{own}\0mock\0{which}"));
            let mock_id = Uuid::new_v5(&NAMESPACE, format!("{}\0{key}", self.key).as_bytes());
            self.mocks.push(mock(mock_id, id, req, resp));
        }
    }
}

fn mock(id: Uuid, request_id: Uuid, req: &Request, resp: &Response) -> Value {
    let source = resp.original_request.as_ref().unwrap_or(req);
    let mut o = Map::new();
    o.insert("id".into(), json!(id.to_string()));
    o.insert("request_id".into(), json!(request_id.to_string()));
    put(&mut o, "name", resp.name.clone().map(Value::from));
    put(&mut o, "postman_id", resp.id.clone().map(Value::from));
    o.insert(
        "method".into(),
        json!(source.method.clone().unwrap_or_else(|| "GET".into())),
    );
    o.insert(
        "path".into(),
        json!(
            source
                .url
                .as_ref()
                .map(Url::path)
                .unwrap_or_else(|| "/".into())
        ),
    );
    put(&mut o, "status_code", resp.code.map(Value::from));
    put(&mut o, "status", resp.status.clone().map(Value::from));
    put(&mut o, "headers", resp.headers.clone().map(Value::Array));
    put(&mut o, "cookies", resp.cookies.clone().map(Value::Array));
    put(&mut o, "body", resp.body.clone().map(Value::from));
    put(
        &mut o,
        "preview_language",
        resp.preview_language.clone().map(Value::from),
    );
    put(
        &mut o,
        "original_request",
        resp.original_request.as_ref().map(Request::to_json),
    );
    put(&mut o, "response_time", resp.response_time.clone());
    Value::Object(o)
}

// ---- back to a collection -------------------------------------------------------------

fn opt<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    m.get(k).filter(|v| !v.is_null())
}

fn objects(m: &Map<String, Value>, k: &str, path: &str) -> Result<Option<Vec<Value>>> {
    super::model::opt_objects(m, k, path)
}

fn index(m: &Map<String, Value>, k: &str, path: &str) -> Result<Option<usize>> {
    match opt(m, k) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| Error::invalid(&format!("{path}/{k}"), "must be an index")),
    }
}

/// Rebuilds the collection from what [`to_record`] stored (and what people changed
/// since through the API, so every shape is checked again, and the folder tree is
/// bounded: a parent must come before its child, nesting at most `limits.max_depth`).
pub fn from_record(stored: &Imported, limits: &Limits) -> Result<Collection> {
    let r = &stored.record;
    let name = opt(r, "name")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid("/record/name", "must be a string"))?
        .to_string();
    let folders = match opt(r, "folders") {
        None => &[][..],
        Some(Value::Array(f)) => f.as_slice(),
        Some(_) => return Err(Error::invalid("/record/folders", "must be an array")),
    };
    // Read every folder, its parent and its depth.
    let mut shells: Vec<Option<(Option<usize>, u64, Folder)>> = Vec::with_capacity(folders.len());
    let mut depths: Vec<usize> = Vec::with_capacity(folders.len());
    for (i, f) in folders.iter().enumerate() {
        let path = format!("/record/folders/{i}");
        let m = super::model::object(f, &path)?;
        let parent = index(m, "parent", &path)?;
        let depth = match parent {
            None => 1,
            Some(p) if p < i => depths[p] + 1,
            Some(_) => {
                return Err(Error::invalid(
                    &format!("{path}/parent"),
                    "must name an earlier folder",
                ));
            }
        };
        if depth > limits.max_depth {
            return Err(Error::TooDeep {
                what: "folders",
                limit: limits.max_depth,
            });
        }
        depths.push(depth);
        let folder = Folder {
            name: opt(m, "name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            id: opt(m, "postman_id")
                .and_then(Value::as_str)
                .map(String::from),
            description: opt(m, "description").cloned(),
            auth: opt(m, "auth")
                .map(|a| Auth::from_json(a, &format!("{path}/auth")))
                .transpose()?,
            events: objects(m, "events", &path)?,
            variables: objects(m, "variables", &path)?,
            protocol_profile_behavior: opt(m, "protocol_profile_behavior").cloned(),
            items: Vec::new(),
        };
        let position = opt(m, "position")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX);
        shells.push(Some((parent, position, folder)));
    }
    // Saved responses by the id of their request.
    let mut responses: HashMap<&str, Vec<Response>> = HashMap::new();
    for (i, k) in stored.mocks.iter().enumerate() {
        let path = format!("/mocks/{i}");
        let m = super::model::object(k, &path)?;
        if let Some(rid) = opt(m, "request_id").and_then(Value::as_str) {
            responses.entry(rid).or_default().push(response(k, &path)?);
        }
    }
    // Requests (with their responses), each under its folder.
    let mut children: Vec<Vec<(u64, usize, Node)>> = vec![Vec::new(); folders.len() + 1];
    let root = folders.len();
    for (i, q) in stored.requests.iter().enumerate() {
        let path = format!("/requests/{i}");
        let m = super::model::object(q, &path)?;
        let folder = index(m, "folder", &path)?;
        if folder.is_some_and(|f| f >= folders.len()) {
            return Err(Error::invalid(&format!("{path}/folder"), "names no folder"));
        }
        let item = request_item(m, &path, &mut responses)?;
        let position = opt(m, "position")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX);
        children[folder.unwrap_or(root)].push((position, i, Node::Request(Box::new(item))));
    }
    // Children before parents: a folder's index is always greater than its parent's.
    for i in (0..shells.len()).rev() {
        let mut kids = std::mem::take(&mut children[i]);
        kids.sort_by_key(|(pos, tie, _)| (*pos, *tie));
        let (parent, position, mut folder) = shells[i].take().expect("each folder once");
        folder.items = kids.into_iter().map(|(_, _, n)| n).collect();
        children[parent.unwrap_or(root)].push((
            position,
            usize::MAX - (shells.len() - i),
            Node::Folder(Box::new(folder)),
        ));
    }
    let mut top = std::mem::take(&mut children[root]);
    top.sort_by_key(|(pos, tie, _)| (*pos, *tie));
    Ok(Collection {
        version: super::model::SchemaVersion::V2_1,
        name,
        postman_id: opt(r, "postman_id")
            .and_then(Value::as_str)
            .map(String::from),
        description: opt(r, "description").cloned(),
        info_version: opt(r, "version").cloned(),
        auth: opt(r, "auth")
            .map(|a| Auth::from_json(a, "/record/auth"))
            .transpose()?,
        events: objects(r, "events", "/record")?,
        variables: objects(r, "variables", "/record")?,
        protocol_profile_behavior: opt(r, "protocol_profile_behavior").cloned(),
        items: top.into_iter().map(|(_, _, n)| n).collect(),
    })
}

fn request_item(
    m: &Map<String, Value>,
    path: &str,
    responses: &mut HashMap<&str, Vec<Response>>,
) -> Result<RequestItem> {
    let url = match opt(m, "url_detail") {
        Some(detail) => Some(Url::from_json(detail, &format!("{path}/url_detail"))?),
        None => opt(m, "url")
            .map(|u| Url::from_json(u, &format!("{path}/url")))
            .transpose()?,
    };
    let request = Request {
        url,
        method: opt(m, "method").and_then(Value::as_str).map(String::from),
        headers: super::model::headers_from_json(opt(m, "headers"), &format!("{path}/headers"))?,
        body: opt(m, "body")
            .map(|b| super::model::Body::from_json(b, &format!("{path}/body")))
            .transpose()?,
        auth: opt(m, "auth")
            .map(|a| Auth::from_json(a, &format!("{path}/auth")))
            .transpose()?,
        description: opt(m, "description").cloned(),
        proxy: opt(m, "proxy").cloned(),
        certificate: opt(m, "certificate").cloned(),
    };
    let responses = opt(m, "id")
        .and_then(Value::as_str)
        .and_then(|id| responses.remove(id))
        .unwrap_or_default();
    Ok(RequestItem {
        name: opt(m, "name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        id: opt(m, "postman_id")
            .and_then(Value::as_str)
            .map(String::from),
        description: opt(m, "item_description").cloned(),
        request,
        responses,
        events: objects(m, "events", path)?,
        variables: objects(m, "variables", path)?,
        protocol_profile_behavior: opt(m, "protocol_profile_behavior").cloned(),
    })
}

fn response(v: &Value, path: &str) -> Result<Response> {
    let m = super::model::object(v, path)?;
    Ok(Response {
        id: opt(m, "postman_id")
            .and_then(Value::as_str)
            .map(String::from),
        name: opt(m, "name").and_then(Value::as_str).map(String::from),
        original_request: opt(m, "original_request")
            .map(|r| Request::from_json(r, &format!("{path}/original_request")))
            .transpose()?,
        status: opt(m, "status").and_then(Value::as_str).map(String::from),
        code: opt(m, "status_code").and_then(Value::as_i64),
        headers: super::model::headers_from_json(opt(m, "headers"), &format!("{path}/headers"))?,
        cookies: objects(m, "cookies", path)?,
        body: opt(m, "body").and_then(Value::as_str).map(String::from),
        preview_language: opt(m, "preview_language")
            .and_then(Value::as_str)
            .map(String::from),
        response_time: opt(m, "response_time").cloned(),
    })
}
