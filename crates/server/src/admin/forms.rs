//! HTML forms: the CSRF check every admin POST passes, and the edit form generated from
//! a collection's JSON Schema (and back: form fields to the JSON the API takes).
//!
//! CSRF is the API's own rule ([`crate::access::csrf_ok`]): the `csrf_token` cookie
//! echoed in `X-CSRF-Token`, or a same-origin `Origin`. A plain form cannot set a
//! header, so it sends the token as the `csrf_token` field, which is moved into the
//! header before the check: one rule, two carriers.
//!
//! Form widgets by schema type: `string` (text; `format: date` → date, `time` or a
//! `HH:MM` pattern → time, `date-time` → datetime-local, `maxLength` > 300 → textarea),
//! `enum` → select, `integer`/`number` → number, `boolean` → checkbox, array of strings
//! → one item per line, anything else → raw JSON.

use axum::extract::{FromRequest, Request};
use axum::http::HeaderValue;
use serde_json::{Map, Value, json};

use super::error::AdminError;
use crate::AppState;
use crate::access::{CSRF_HEADER, csrf_ok};

/// A urlencoded form body that passed the CSRF check.
pub struct CsrfForm(pub Form);

/// Form fields in order (a name may repeat).
#[derive(Debug, Default)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl FromRequest<AppState> for CsrfForm {
    type Rejection = AdminError;

    async fn from_request(req: Request, st: &AppState) -> Result<Self, AdminError> {
        let (mut parts, body) = req.into_parts();
        // The API's own body limit (`body_limit`) holds for forms too.
        let bytes = axum::body::to_bytes(body, st.settings.body_limit)
            .await
            .map_err(|_| AdminError::BadRequest("the form is too large".into()))?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| AdminError::BadRequest(format!("the form does not parse: {e}")))?;
        let form = Form(fields);
        if let Some(token) = form.get("csrf_token")
            && let Ok(value) = HeaderValue::from_str(token)
        {
            parts.headers.insert(CSRF_HEADER, value);
        }
        if !csrf_ok(&parts, &st.settings) {
            return Err(AdminError::Csrf);
        }
        Ok(CsrfForm(form))
    }
}

/// One input of a generated form.
#[derive(Debug, serde::Serialize)]
pub struct Field {
    pub name: String,
    /// text, textarea, date, time, datetime-local, number, checkbox, select, lines, json
    pub widget: &'static str,
    pub value: String,
    pub checked: bool,
    pub options: Vec<String>,
    pub required: bool,
    pub step: &'static str,
    /// Set when the API named this field in a refusal.
    pub error: Option<String>,
}

/// The type a schema property admits besides `null`.
fn main_type(prop: &Value) -> Option<&str> {
    match prop.get("type") {
        Some(Value::String(t)) => Some(t.as_str()),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    }
}

fn widget(prop: &Value) -> &'static str {
    if prop.get("enum").is_some() {
        return "select";
    }
    match main_type(prop) {
        Some("string") => {
            let pattern = prop.get("pattern").and_then(Value::as_str).unwrap_or("");
            match prop.get("format").and_then(Value::as_str) {
                Some("date") => "date",
                Some("time") => "time",
                Some("date-time") => "datetime-local",
                _ if pattern.contains("[0-5][0-9]$") && pattern.starts_with("^(") => "time",
                _ if prop.get("maxLength").and_then(Value::as_u64).unwrap_or(300) > 300 => {
                    "textarea"
                }
                _ => "text",
            }
        }
        Some("integer") | Some("number") => "number",
        Some("boolean") => "checkbox",
        Some("array")
            if prop
                .pointer("/items/type")
                .and_then(Value::as_str)
                .is_some_and(|t| t == "string") =>
        {
            "lines"
        }
        _ => "json",
    }
}

/// How a stored value shows in its widget.
fn shown(widget: &str, value: Option<&Value>) -> String {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return String::new();
    };
    match (widget, value) {
        ("lines", Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect::<Vec<_>>()
            .join("\n"),
        ("datetime-local", Value::String(s)) => s.trim_end_matches('Z').chars().take(19).collect(),
        ("json", v) => serde_json::to_string_pretty(v).unwrap_or_default(),
        (_, Value::String(s)) => s.clone(),
        (_, v) => v.to_string(),
    }
}

/// The form for a record of this schema (`record` = current values, or what was sent),
/// with `errors` (field → message) beside the fields they name.
pub fn fields(schema: &Value, record: &Value, errors: &Map<String, Value>) -> Vec<Field> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, prop)| {
            let widget = widget(prop);
            let value = record.get(name);
            Field {
                name: name.clone(),
                widget,
                value: shown(widget, value),
                checked: value.and_then(Value::as_bool).unwrap_or(false),
                options: prop
                    .get("enum")
                    .and_then(Value::as_array)
                    .map(|o| {
                        o.iter()
                            .map(|v| {
                                v.as_str()
                                    .map(str::to_string)
                                    .unwrap_or_else(|| v.to_string())
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                required: required.contains(&name.as_str()),
                step: if main_type(prop) == Some("integer") {
                    "1"
                } else {
                    "any"
                },
                error: errors.get(name).and_then(Value::as_str).map(str::to_string),
            }
        })
        .collect()
}

/// The JSON a submitted form stands for, one entry per schema property on the form: an
/// emptied field is `null` (a merge patch removes it). A value that does not parse as
/// its type is sent as text, for the API to refuse by name (422 beside the field).
pub fn to_json(schema: &Value, form: &Form) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return out;
    };
    for (name, prop) in props {
        let widget = widget(prop);
        if widget == "checkbox" {
            // Unchecked boxes send nothing: the hidden marker says the box was there.
            if form.get(&format!("__present_{name}")).is_some() {
                out.insert(name.clone(), json!(form.get(name).is_some()));
            }
            continue;
        }
        let Some(raw) = form.get(name) else { continue };
        let text = raw.trim();
        let value = if text.is_empty() {
            Value::Null
        } else {
            match widget {
                "number" => text
                    .parse::<i64>()
                    .map(Value::from)
                    .or_else(|_| text.parse::<f64>().map(|f| json!(f)))
                    .unwrap_or_else(|_| json!(text)),
                "lines" => Value::Array(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(|l| json!(l))
                        .collect(),
                ),
                "json" => serde_json::from_str(text).unwrap_or_else(|_| json!(text)),
                "datetime-local" if text.len() == 16 => json!(format!("{text}:00Z")),
                "datetime-local" => json!(format!("{text}Z")),
                "select" => {
                    // Enums may hold non-strings: match the option's JSON back.
                    let options = prop.get("enum").and_then(Value::as_array);
                    options
                        .and_then(|o| {
                            o.iter().find(|v| {
                                v.as_str() == Some(text)
                                    || serde_json::from_str::<Value>(text).ok().as_ref() == Some(*v)
                            })
                        })
                        .cloned()
                        .unwrap_or_else(|| json!(text))
                }
                _ => json!(raw),
            }
        };
        out.insert(name.clone(), value);
    }
    out
}

/// Field → message from an API refusal: a violation names `fields`; a schema refusal
/// lists `errors` with JSON pointers (`/title`) or `fields`.
pub fn field_errors(details: &Value, message: &str) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(errors) = details.get("errors").and_then(Value::as_array) {
        for e in errors {
            let path = e.get("path").and_then(Value::as_str).unwrap_or("");
            let text = e.get("message").and_then(Value::as_str).unwrap_or(message);
            let mut field = path.trim_start_matches('/').split('/').next().unwrap_or("");
            // A missing required property is reported on the object: `"name" is a
            // required property` at path "".
            if field.is_empty() && text.ends_with("is a required property") {
                field = text.split('"').nth(1).unwrap_or("");
            }
            if !field.is_empty() {
                out.insert(field.to_string(), json!(text));
            }
        }
    }
    if let Some(fields) = details.get("fields").and_then(Value::as_array) {
        for f in fields.iter().filter_map(Value::as_str) {
            out.entry(f.to_string()).or_insert_with(|| json!(message));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_round_trips_through_the_schema() {
        let schema = json!({"required": ["title"], "properties": {
            "title": {"type": "string"}, "n": {"type": "integer"}, "ok": {"type": "boolean"},
            "when": {"type": "string", "format": "date"}, "tags": {"type": "array", "items": {"type": "string"}},
            "kind": {"enum": ["a", "b"]}, "meta": {"type": "object"}}});
        let form = Form(
            [
                ("title", "Hi"),
                ("n", "3"),
                ("__present_ok", "1"),
                ("when", "2026-07-01"),
                ("tags", "x\n y \n"),
                ("kind", "b"),
                ("meta", "{\"a\": 1}"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        let json = Value::Object(to_json(&schema, &form));
        assert_eq!(
            json,
            json!({"title": "Hi", "n": 3, "ok": false, "when": "2026-07-01", "tags": ["x", "y"], "kind": "b", "meta": {"a": 1}})
        );
        let mut widgets: Vec<(String, &str)> = fields(&schema, &json, &Map::new())
            .into_iter()
            .map(|f| (f.name, f.widget))
            .collect();
        widgets.sort();
        let expected = [
            ("kind", "select"),
            ("meta", "json"),
            ("n", "number"),
            ("ok", "checkbox"),
            ("tags", "lines"),
            ("title", "text"),
            ("when", "date"),
        ];
        assert_eq!(widgets, expected.map(|(n, w)| (n.to_string(), w)).to_vec());
    }
}
