//! Typed request parameters: the list query of `GET /api/v1/{collection}` ([`ListParams`])
//! and the yes/no flags that lists and multipart forms take ([`flag`]).
//!
//! One parser for flags, used by every route and every app, so that a flag means the same
//! wherever it is sent (decision 0015): `true`, `1`, `yes`, `on` and the empty value are
//! true; `false`, `0`, `no`, `off` are false; anything else is a 400 `bad_request` in the
//! envelope. The empty value counts as true because a flag given without a value
//! (`?include_deleted`, `?include_deleted=`) reads as "turn it on", which is how query
//! flags are written by hand; a client that means false sends `false` or leaves the flag
//! out.

use std::collections::BTreeMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use bucketbase_engine::collection::query::Deleted;
use serde_json::Value;

use crate::error::ApiError;

/// A yes/no flag named `name` (for the error message) from its text.
pub fn flag(name: &str, value: &str) -> Result<bool, ApiError> {
    match value.trim() {
        "" | "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(ApiError::bad_request(format!(
            "{name} must be true or false, not {other:?}"
        ))),
    }
}

/// A flag in a query struct (`#[serde(default)] purge: Flag`), parsed by [`flag`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flag(pub bool);

impl<'de> serde::Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        flag("the flag", &text)
            .map(Flag)
            .map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// The parameters of a list request that are not field filters.
pub const LIST_PARAMS: [&str; 6] = [
    "filter",
    "sort",
    "page",
    "per_page",
    "include_deleted",
    "only_deleted",
];

/// `GET /api/v1/{collection}?filter=&sort=&page=&per_page=&include_deleted=&only_deleted=&<field>=<value>`,
/// parsed: a bad value is a 400 before the handler runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ListParams {
    /// A filter expression (blank: none).
    pub filter: Option<String>,
    /// Fields to sort by, each with `true` for descending (`-field`).
    pub sort: Vec<(String, bool)>,
    pub page: usize,
    pub per_page: usize,
    pub deleted: Deleted,
    /// `<field>=<value>` equality filters: every parameter not in [`LIST_PARAMS`].
    pub equals: Vec<(String, Value)>,
}

impl ListParams {
    /// Parses the query's parameters.
    pub fn parse(params: &BTreeMap<String, String>) -> Result<Self, ApiError> {
        let flag_of = |name: &str| params.get(name).map_or(Ok(false), |v| flag(name, v));
        let number = |name: &str, default: usize| -> Result<usize, ApiError> {
            params.get(name).map_or(Ok(default), |v| {
                v.parse()
                    .map_err(|_| ApiError::bad_request(format!("{name} must be a positive number")))
            })
        };
        let deleted = match (flag_of("include_deleted")?, flag_of("only_deleted")?) {
            (_, true) => Deleted::Only,
            (true, false) => Deleted::Include,
            _ => Deleted::Exclude,
        };
        let sort = params
            .get("sort")
            .map(|s| {
                s.split(',')
                    .filter(|f| !f.is_empty())
                    .map(|f| match f.strip_prefix('-') {
                        Some(name) => (name.to_string(), true),
                        None => (f.to_string(), false),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(ListParams {
            filter: params
                .get("filter")
                .filter(|f| !f.trim().is_empty())
                .cloned(),
            sort,
            page: number("page", 1)?,
            per_page: number("per_page", 50)?,
            deleted,
            equals: params
                .iter()
                .filter(|(k, _)| !LIST_PARAMS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ListParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(params) = Query::<BTreeMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        ListParams::parse(&params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_meaning_for_every_flag_value() {
        for yes in ["", " ", "true", "1", "yes", "on"] {
            assert!(flag("f", yes).unwrap(), "{yes:?}");
        }
        for no in ["false", "0", "no", "off", " false "] {
            assert!(!flag("f", no).unwrap(), "{no:?}");
        }
        let err = flag("dry_run", "maybe").unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
    }

    #[test]
    fn list_parameters_and_field_filters_are_told_apart() {
        let params: BTreeMap<String, String> = [
            ("sort", "-created_at,name"),
            ("page", "2"),
            ("include_deleted", ""),
            ("topic", "demo"),
            ("filter", "  "),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = ListParams::parse(&params).unwrap();
        assert_eq!(p.deleted, Deleted::Include);
        assert_eq!(p.page, 2);
        assert_eq!(p.per_page, 50);
        assert_eq!(p.filter, None);
        assert_eq!(
            p.sort,
            vec![("created_at".into(), true), ("name".into(), false)]
        );
        assert_eq!(p.equals.len(), 1);
        let bad = BTreeMap::from([("page".to_string(), "-1".to_string())]);
        assert!(ListParams::parse(&bad).is_err());
    }
}
