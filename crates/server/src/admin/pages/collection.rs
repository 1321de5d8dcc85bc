//! `/admin/c/{collection}`: a table of records (columns: the index fields), filtered by
//! a field value and a CEL expression (a filter that does not compile is shown with the
//! API's message), sorted by a column, paged, with deleted records included or alone.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::super::api::with_query;
use super::super::error::AdminError;
use super::super::session::Ctx;
use super::{could, label};
use crate::AppState;
use crate::access::Action;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/c/{collection}", get(table))
}

const PER_PAGE: u64 = 25;

#[derive(serde::Deserialize, Default)]
struct Params {
    filter: Option<String>,
    sort: Option<String>,
    page: Option<u64>,
    deleted: Option<String>,
    field: Option<String>,
    value: Option<String>,
    notice: Option<String>,
}

async fn table(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    Query(p): Query<Params>,
) -> Result<Response, AdminError> {
    let c = super::collection(&name)?;
    let def = ctx.api.get(&format!("/api/v1/collections/{c}")).await?.data;
    let compiled = super::compiled(&st, &c)?;
    let mut columns: Vec<String> = def["index"]
        .as_array()
        .map(|i| {
            i.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if columns.is_empty() {
        columns = def["schema"]["properties"]
            .as_object()
            .map(|p| p.keys().take(4).cloned().collect())
            .unwrap_or_default();
    }
    let fields: Vec<String> = def["schema"]["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    let page = p.page.unwrap_or(1).max(1);
    let deleted = p.deleted.clone().unwrap_or_default();
    let mut params = vec![
        ("filter", p.filter.clone().unwrap_or_default()),
        ("sort", p.sort.clone().unwrap_or_default()),
        ("page", page.to_string()),
        ("per_page", PER_PAGE.to_string()),
        (
            "include_deleted",
            if deleted == "include" {
                "true".into()
            } else {
                String::new()
            },
        ),
        (
            "only_deleted",
            if deleted == "only" {
                "true".into()
            } else {
                String::new()
            },
        ),
    ];
    let field = p.field.clone().unwrap_or_default();
    let value = p.value.clone().unwrap_or_default();
    // Only a schema field may be a filter (other names are the list's own parameters).
    if fields.contains(&field) && !value.is_empty() {
        params.push((field.as_str(), value.clone()));
    }
    let (rows, total, seq, error, status) = match ctx
        .api
        .get(&with_query(&format!("/api/v1/{c}"), &params))
        .await
    {
        Ok(answer) => (
            answer.data,
            answer.meta["total"].as_u64().unwrap_or(0),
            answer.meta["seq"].as_u64(),
            None,
            StatusCode::OK,
        ),
        Err(f) if f.status == StatusCode::BAD_REQUEST => {
            (json!([]), 0, None, Some(f.message), f.status)
        }
        Err(f) => return Err(f.into()),
    };
    // Live updates follow the feed from the position this table shows, so no change
    // after it is missed, however late the page subscribes.
    let feed = with_query(
        &format!("/api/v1/{c}/events"),
        &[("since", seq.map(|s| s.to_string()).unwrap_or_default())],
    );
    let rows: Vec<Value> = rows
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            json!({
                "id": r["id"],
                "label": label(r),
                "deleted": !r["deleted_at"].is_null(),
                "cells": columns.iter().map(|col| super::cell(r.get(col))).collect::<Vec<_>>(),
            })
        })
        .collect();
    let pages = total.div_ceil(PER_PAGE).max(1);
    // Links keep every other parameter of this view.
    let link = |overrides: &[(&str, String)]| {
        let mut kept: Vec<(&str, String)> = vec![
            ("filter", p.filter.clone().unwrap_or_default()),
            ("sort", p.sort.clone().unwrap_or_default()),
            ("deleted", deleted.clone()),
            ("field", field.clone()),
            ("value", value.clone()),
            ("page", page.to_string()),
        ];
        for (k, v) in overrides {
            kept.retain(|(key, _)| key != k);
            kept.push((k, v.clone()));
        }
        with_query(&format!("/admin/c/{c}"), &kept)
    };
    let current_sort = p.sort.clone().unwrap_or_default();
    let headers: Vec<Value> = columns
        .iter()
        .map(|col| {
            let next = if current_sort == *col { format!("-{col}") } else { col.clone() };
            let arrow = if current_sort == *col { "▲" } else if current_sort == format!("-{col}") { "▼" } else { "" };
            json!({"name": col, "href": link(&[("sort", next), ("page", "1".into())]), "arrow": arrow})
        })
        .collect();
    ctx.page_with(
        status,
        "collection.html",
        json!({
            "title": c.as_str(),
            "collection": c.as_str(),
            "feed": feed,
            "notice": super::notice(p.notice.as_deref()),
            "headers": headers,
            "rows": rows,
            "total": total,
            "page": page,
            "pages": pages,
            "prev": (page > 1).then(|| link(&[("page", (page - 1).to_string())])),
            "next": (page < pages).then(|| link(&[("page", (page + 1).to_string())])),
            "filter": p.filter,
            "filter_error": error,
            "fields": fields,
            "field": field,
            "value": value,
            "deleted": deleted,
            "sort": current_sort,
            "soft_delete": def["soft_delete"],
            "can_create": could(ctx.caller(), &compiled, Action::Create),
        }),
    )
}
