//! Where secrets are in a document: secret paths, as definitions declare them.
//!
//! A path names a member, step by step through objects and arrays:
//!
//! - `auth`: the member `auth` (a top-level secret field, as before paths existed);
//! - `auth.password`: `password` inside the object `auth`;
//! - `folders[].auth`: `auth` of every element of the array `folders`;
//! - `variables[type=secret].value`: `value` of the elements of `variables` whose `type`
//!   is the string `secret`;
//! - `[type=secret].value` (for a nested array's items): `value` of an item whose own
//!   `type` is `secret`.
//!
//! A path ends at a member. The same path applied to a document gives its
//! [`Location`]s: where a value is, or would be, that the path names. A sealed value is
//! bound to its place by [`Location::aad_suffix`]: array positions are written `*`, so
//! reordering an array does not break decryption, while moving a value to another
//! record, field or nested item does.

use serde_json::Value;

/// One step of a secret path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Into the member of this name.
    Member(String),
    /// Into every element of the array.
    Each,
    /// Keep the object only if its member `.0` is the string `.1`.
    Where(String, String),
}

/// A parsed secret path (see the module documentation for the grammar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretPath {
    text: String,
    steps: Vec<Step>,
}

/// One concrete place a path names in a document: member names and array positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location(Vec<Place>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    Member(String),
    Index(usize),
}

impl SecretPath {
    /// Parses `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("secret path {text:?}: {why}");
        if text.is_empty() {
            return Err(bad("is empty"));
        }
        let mut steps = Vec::new();
        for (n, segment) in text.split('.').enumerate() {
            let (name, filter) = match segment.split_once('[') {
                Some((name, rest)) => {
                    let inner = rest
                        .strip_suffix(']')
                        .ok_or_else(|| bad("a `[` needs its `]` at the end of the segment"))?;
                    (name, Some(inner))
                }
                None => (segment, None),
            };
            if name.is_empty() && !(n == 0 && filter.is_some_and(|f| !f.is_empty())) {
                return Err(bad(
                    "every segment names a member (`[k=v]` alone comes first)",
                ));
            }
            if !name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            {
                return Err(bad("member names are letters, digits, `_` and `-`"));
            }
            if !name.is_empty() {
                steps.push(Step::Member(name.to_string()));
            }
            match filter {
                None => {}
                Some("") => steps.push(Step::Each),
                Some(cond) => {
                    let (k, v) = cond
                        .split_once('=')
                        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                        .ok_or_else(|| bad("a filter is `[member=value]`"))?;
                    if !name.is_empty() {
                        steps.push(Step::Each);
                    }
                    steps.push(Step::Where(k.to_string(), v.to_string()));
                }
            }
        }
        if !matches!(steps.last(), Some(Step::Member(_))) {
            return Err(bad("a path ends at a member"));
        }
        Ok(SecretPath {
            text: text.to_string(),
            steps,
        })
    }

    /// The path as declared.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The top-level member it names, when the path is only that (`auth`).
    pub fn field(&self) -> Option<&str> {
        match self.steps.as_slice() {
            [Step::Member(m)] => Some(m),
            _ => None,
        }
    }

    /// The top-level member the path goes through, if it starts with one.
    pub fn first_member(&self) -> Option<&str> {
        match self.steps.first() {
            Some(Step::Member(m)) => Some(m),
            _ => None,
        }
    }

    /// Every place in `doc` the path names whose parent object exists (the member itself
    /// may be absent: a value could be written there).
    pub fn locations(&self, doc: &Value) -> Vec<Location> {
        let mut out = Vec::new();
        walk(doc, &self.steps, &mut Vec::new(), &mut out);
        out
    }

    /// The sub-schema of the value the path names, within an object schema: member steps
    /// follow `properties`, array steps follow `items`, filters keep the schema.
    /// `None` when the schema does not describe that place.
    pub fn sub_schema_mut<'a>(&self, schema: &'a mut Value) -> Option<&'a mut Value> {
        let mut at = schema;
        for step in &self.steps {
            at = match step {
                Step::Member(m) => at.get_mut("properties")?.get_mut(m)?,
                Step::Each => at.get_mut("items")?,
                Step::Where(..) => at,
            };
        }
        Some(at)
    }
}

fn walk(value: &Value, steps: &[Step], at: &mut Vec<Place>, out: &mut Vec<Location>) {
    let Some((step, rest)) = steps.split_first() else {
        return;
    };
    match step {
        Step::Member(m) => {
            if !value.is_object() {
                return;
            }
            at.push(Place::Member(m.clone()));
            if rest.is_empty() {
                out.push(Location(at.clone()));
            } else if let Some(next) = value.get(m) {
                walk(next, rest, at, out);
            }
            at.pop();
        }
        Step::Each => {
            for (i, element) in value.as_array().into_iter().flatten().enumerate() {
                at.push(Place::Index(i));
                walk(element, rest, at, out);
                at.pop();
            }
        }
        Step::Where(k, v) => {
            if value.get(k).and_then(Value::as_str) == Some(v.as_str()) {
                walk(value, rest, at, out);
            }
        }
    }
}

impl Location {
    /// The value at this place, if there is one.
    pub fn get<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        self.0.iter().try_fold(doc, |v, p| match p {
            Place::Member(m) => v.get(m),
            Place::Index(i) => v.get(*i),
        })
    }

    /// The object holding this place and the member's name (the object must exist).
    pub fn parent_mut<'a>(
        &'a self,
        doc: &'a mut Value,
    ) -> Option<(&'a mut serde_json::Map<String, Value>, &'a str)> {
        let (last, up) = self.0.split_last()?;
        let Place::Member(name) = last else {
            return None;
        };
        let parent = up.iter().try_fold(doc, |v, p| match p {
            Place::Member(m) => v.get_mut(m),
            Place::Index(i) => v.get_mut(*i),
        })?;
        Some((parent.as_object_mut()?, name))
    }

    /// The place as a JSON Pointer into its document (for error messages).
    pub fn pointer(&self) -> String {
        self.0
            .iter()
            .map(|p| match p {
                Place::Member(m) => format!("/{m}"),
                Place::Index(i) => format!("/{i}"),
            })
            .collect()
    }

    /// What a sealed value here is bound to, after `collection/id/` and the nested
    /// item's place: members by name, array positions as `*` (`auth`,
    /// `folders/*/auth`).
    pub fn aad_suffix(&self) -> String {
        let parts: Vec<&str> = self
            .0
            .iter()
            .map(|p| match p {
                Place::Member(m) => m.as_str(),
                Place::Index(_) => "*",
            })
            .collect();
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pointers(path: &str, doc: &Value) -> Vec<String> {
        SecretPath::parse(path)
            .unwrap()
            .locations(doc)
            .iter()
            .map(Location::pointer)
            .collect()
    }

    #[test]
    fn grammar() {
        for good in [
            "auth",
            "auth.password",
            "folders[].auth",
            "variables[type=secret].value",
            "[type=secret].value",
            "a[].b[].c",
        ] {
            assert!(SecretPath::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "auth.",
            ".auth",
            "folders[]",
            "a[type=secret]",
            "a[=x].b",
            "a[k=].b",
            "a[k=v.b",
            "a.[k=v].b",
            "a b",
            "[].a",
        ] {
            assert!(SecretPath::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(SecretPath::parse("auth").unwrap().field(), Some("auth"));
        assert_eq!(SecretPath::parse("auth.password").unwrap().field(), None);
    }

    #[test]
    fn locations_follow_members_arrays_and_filters() {
        let doc = json!({
            "auth": {"type": "basic"},
            "variables": [
                {"key": "a", "type": "secret", "value": "1"},
                {"key": "b", "value": "2"},
                {"key": "c", "type": "secret"},
            ],
            "folders": [{"auth": {"x": 1}}, {"name": "no auth"}, "not an object"],
        });
        assert_eq!(pointers("auth", &doc), ["/auth"]);
        assert_eq!(pointers("auth.password", &doc), ["/auth/password"]);
        // An absent member is still a place a value could be written to.
        assert_eq!(
            pointers("variables[type=secret].value", &doc),
            ["/variables/0/value", "/variables/2/value"]
        );
        assert_eq!(
            pointers("folders[].auth", &doc),
            ["/folders/0/auth", "/folders/1/auth"]
        );
        assert!(pointers("missing.password", &doc).is_empty());
        let item = json!({"key": "k", "type": "secret", "value": "v"});
        assert_eq!(pointers("[type=secret].value", &item), ["/value"]);
        assert!(pointers("[type=default].value", &item).is_empty());

        let at = &SecretPath::parse("folders[].auth").unwrap().locations(&doc)[0];
        assert_eq!(at.aad_suffix(), "folders/*/auth");
        assert_eq!(at.get(&doc), Some(&json!({"x": 1})));
    }

    #[test]
    fn sub_schemas() {
        let mut schema = json!({"type": "object", "properties": {
            "vars": {"type": "array", "items": {"type": "object",
                "properties": {"value": {"type": "string"}}}}}});
        let path = SecretPath::parse("vars[type=secret].value").unwrap();
        assert_eq!(
            path.sub_schema_mut(&mut schema).cloned(),
            Some(json!({"type": "string"}))
        );
        let path = SecretPath::parse("vars[].other").unwrap();
        assert!(path.sub_schema_mut(&mut schema).is_none());
    }
}
