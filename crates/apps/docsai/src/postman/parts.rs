//! The parts of a request: auth, body, the request itself and its saved responses,
//! read from every shape the format allows and written in the v2.1 shape (see
//! [`super::model`] for the approach).

use serde_json::{Map, Value, json};

use super::error::{Error, Result};
use super::model::{Url, headers_from_json, object, opt_objects, opt_string, put};

/// Auth: a type and its parameters (kept as data; values may be credentials, see
/// `secrets.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct Auth {
    pub kind: String,
    pub params: Vec<AuthParam>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthParam {
    pub key: String,
    pub value: Value,
    pub kind: Option<String>,
}

/// The body modes of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    Raw,
    Urlencoded,
    Formdata,
    File,
    Graphql,
}

impl BodyMode {
    fn parse(s: &str) -> Option<BodyMode> {
        Some(match s {
            "raw" => BodyMode::Raw,
            "urlencoded" => BodyMode::Urlencoded,
            "formdata" => BodyMode::Formdata,
            "file" => BodyMode::File,
            "graphql" => BodyMode::Graphql,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            BodyMode::Raw => "raw",
            BodyMode::Urlencoded => "urlencoded",
            BodyMode::Formdata => "formdata",
            BodyMode::File => "file",
            BodyMode::Graphql => "graphql",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Body {
    pub mode: Option<BodyMode>,
    pub raw: Option<String>,
    pub urlencoded: Option<Vec<Value>>,
    pub formdata: Option<Vec<Value>>,
    /// `{src, content}`.
    pub file: Option<Value>,
    /// `{query, variables}`.
    pub graphql: Option<Value>,
    /// Per-mode options, e.g. `{raw: {language: "json"}}`.
    pub options: Option<Value>,
    pub disabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub url: Option<Url>,
    pub method: Option<String>,
    pub headers: Option<Vec<Value>>,
    pub body: Option<Body>,
    pub auth: Option<Auth>,
    pub description: Option<Value>,
    pub proxy: Option<Value>,
    pub certificate: Option<Value>,
}

/// A saved example response.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    pub id: Option<String>,
    pub name: Option<String>,
    pub original_request: Option<Request>,
    pub status: Option<String>,
    pub code: Option<i64>,
    pub headers: Option<Vec<Value>>,
    pub cookies: Option<Vec<Value>>,
    pub body: Option<String>,
    pub preview_language: Option<String>,
    pub response_time: Option<Value>,
}

// ---- auth -----------------------------------------------------------------------------

impl Auth {
    /// v2.1: `{type, <type>: [{key, value, type}]}`; v2.0: `{type, <type>: {key: value}}`.
    pub fn from_json(v: &Value, path: &str) -> Result<Auth> {
        let m = object(v, path)?;
        let kind = opt_string(m, "type", path)?
            .filter(|k| !k.is_empty())
            .ok_or_else(|| Error::invalid(&format!("{path}/type"), "must name the auth type"))?;
        let ppath = format!("{path}/{kind}");
        let params = match m.get(&kind) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let at = format!("{ppath}/{i}");
                    let pm = object(p, &at)?;
                    Ok(AuthParam {
                        key: opt_string(pm, "key", &at)?.ok_or_else(|| {
                            Error::invalid(&format!("{at}/key"), "must be a string")
                        })?,
                        value: pm.get("value").cloned().unwrap_or(Value::Null),
                        kind: opt_string(pm, "type", &at)?,
                    })
                })
                .collect::<Result<_>>()?,
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| AuthParam {
                    key: k.clone(),
                    value: v.clone(),
                    kind: None,
                })
                .collect(),
            Some(_) => return Err(Error::invalid(&ppath, "must be an array or an object")),
        };
        Ok(Auth { kind, params })
    }

    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("type".into(), json!(self.kind));
        if !self.params.is_empty() {
            let params = self
                .params
                .iter()
                .map(|p| {
                    let mut o = Map::new();
                    o.insert("key".into(), json!(p.key));
                    o.insert("value".into(), p.value.clone());
                    put(&mut o, "type", p.kind.clone().map(Value::from));
                    Value::Object(o)
                })
                .collect();
            out.insert(self.kind.clone(), Value::Array(params));
        }
        Value::Object(out)
    }
}

// ---- body -----------------------------------------------------------------------------

impl Body {
    pub fn from_json(v: &Value, path: &str) -> Result<Body> {
        let m = object(v, path)?;
        let mode = match opt_string(m, "mode", path)? {
            None => None,
            Some(s) => Some(BodyMode::parse(&s).ok_or_else(|| {
                Error::invalid(
                    &format!("{path}/mode"),
                    format!("unknown body mode {s:?} (raw, urlencoded, formdata, file, graphql)"),
                )
            })?),
        };
        let obj_or_null = |k: &str| -> Result<Option<Value>> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
                Some(_) => Err(Error::invalid(&format!("{path}/{k}"), "must be an object")),
            }
        };
        let disabled = match m.get("disabled") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                return Err(Error::invalid(
                    &format!("{path}/disabled"),
                    "must be a boolean",
                ));
            }
        };
        Ok(Body {
            mode,
            raw: opt_string(m, "raw", path)?,
            urlencoded: opt_objects(m, "urlencoded", path)?,
            formdata: opt_objects(m, "formdata", path)?,
            file: obj_or_null("file")?,
            graphql: obj_or_null("graphql")?,
            options: obj_or_null("options")?,
            disabled,
        })
    }

    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        put(&mut out, "mode", self.mode.map(|m| json!(m.as_str())));
        put(&mut out, "raw", self.raw.clone().map(Value::from));
        put(
            &mut out,
            "urlencoded",
            self.urlencoded.clone().map(Value::Array),
        );
        put(
            &mut out,
            "formdata",
            self.formdata.clone().map(Value::Array),
        );
        put(&mut out, "file", self.file.clone());
        put(&mut out, "graphql", self.graphql.clone());
        put(&mut out, "options", self.options.clone());
        put(&mut out, "disabled", self.disabled.map(Value::from));
        Value::Object(out)
    }
}

// ---- request and response -------------------------------------------------------------

impl Request {
    /// A bare URL string is a GET of that URL.
    pub fn from_json(v: &Value, path: &str) -> Result<Request> {
        if let Value::String(s) = v {
            return Ok(Request {
                url: Some(Url::Raw(s.clone())),
                method: None,
                headers: None,
                body: None,
                auth: None,
                description: None,
                proxy: None,
                certificate: None,
            });
        }
        let m = object(v, path)
            .map_err(|_| Error::invalid(path, "must be a URL string or an object"))?;
        let sub = |k: &str| format!("{path}/{k}");
        Ok(Request {
            url: m
                .get("url")
                .filter(|v| !v.is_null())
                .map(|u| Url::from_json(u, &sub("url")))
                .transpose()?,
            method: opt_string(m, "method", path)?,
            headers: headers_from_json(m.get("header"), &sub("header"))?,
            body: m
                .get("body")
                .filter(|v| !v.is_null())
                .map(|b| Body::from_json(b, &sub("body")))
                .transpose()?,
            auth: m
                .get("auth")
                .filter(|v| !v.is_null())
                .map(|a| Auth::from_json(a, &sub("auth")))
                .transpose()?,
            description: m.get("description").filter(|v| !v.is_null()).cloned(),
            proxy: m.get("proxy").filter(|v| !v.is_null()).cloned(),
            certificate: m.get("certificate").filter(|v| !v.is_null()).cloned(),
        })
    }

    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        put(&mut out, "method", self.method.clone().map(Value::from));
        put(&mut out, "header", self.headers.clone().map(Value::Array));
        put(&mut out, "body", self.body.as_ref().map(Body::to_json));
        put(&mut out, "url", self.url.as_ref().map(Url::to_json));
        put(&mut out, "auth", self.auth.as_ref().map(Auth::to_json));
        put(&mut out, "description", self.description.clone());
        put(&mut out, "proxy", self.proxy.clone());
        put(&mut out, "certificate", self.certificate.clone());
        Value::Object(out)
    }
}

impl Response {
    pub fn from_json(v: &Value, path: &str) -> Result<Response> {
        let m = object(v, path)?;
        let sub = |k: &str| format!("{path}/{k}");
        let code =
            match m.get("code") {
                None | Some(Value::Null) => None,
                Some(c) => Some(c.as_i64().filter(|c| (100..=599).contains(c)).ok_or_else(
                    || Error::invalid(&sub("code"), "must be an HTTP status (100-599)"),
                )?),
            };
        Ok(Response {
            id: opt_string(m, "id", path)?,
            name: opt_string(m, "name", path)?,
            original_request: m
                .get("originalRequest")
                .filter(|v| !v.is_null())
                .map(|r| Request::from_json(r, &sub("originalRequest")))
                .transpose()?,
            status: opt_string(m, "status", path)?,
            code,
            headers: headers_from_json(m.get("header"), &sub("header"))?,
            cookies: opt_objects(m, "cookie", path)?,
            body: opt_string(m, "body", path)?,
            preview_language: opt_string(m, "_postman_previewlanguage", path)?,
            response_time: m.get("responseTime").filter(|v| !v.is_null()).cloned(),
        })
    }

    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        put(&mut out, "id", self.id.clone().map(Value::from));
        put(&mut out, "name", self.name.clone().map(Value::from));
        put(
            &mut out,
            "originalRequest",
            self.original_request.as_ref().map(Request::to_json),
        );
        put(&mut out, "status", self.status.clone().map(Value::from));
        put(&mut out, "code", self.code.map(Value::from));
        put(
            &mut out,
            "_postman_previewlanguage",
            self.preview_language.clone().map(Value::from),
        );
        put(&mut out, "header", self.headers.clone().map(Value::Array));
        put(&mut out, "cookie", self.cookies.clone().map(Value::Array));
        put(&mut out, "responseTime", self.response_time.clone());
        put(&mut out, "body", self.body.clone().map(Value::from));
        Value::Object(out)
    }
}
