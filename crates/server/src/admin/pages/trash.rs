//! `/admin/trash`: the soft-deleted records of every collection the user may list,
//! newest first, filterable by collection, each with its restore button (the dashboard's
//! nav link, then the button: two clicks) and, for the SuperAdmin, purge.

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::super::api::with_query;
use super::super::error::AdminError;
use super::super::session::Ctx;
use super::label;
use crate::AppState;
use crate::access::Action;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/trash", get(trash))
}

/// Deleted records read per collection.
const PER_COLLECTION: usize = 200;

#[derive(serde::Deserialize)]
struct Params {
    collection: Option<String>,
    notice: Option<String>,
}

async fn trash(
    State(st): State<AppState>,
    ctx: Ctx,
    Query(p): Query<Params>,
) -> Result<Response, AdminError> {
    let defs = ctx.api.get("/api/v1/collections").await?.data;
    let soft: Vec<String> = defs
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["soft_delete"].as_bool().unwrap_or(false))
        .filter_map(|d| d["name"].as_str().map(str::to_string))
        .collect();
    let wanted = p.collection.clone().filter(|c| !c.is_empty());
    let mut rows = Vec::new();
    for name in soft
        .iter()
        .filter(|n| wanted.as_ref().is_none_or(|w| w == *n))
    {
        let uri = with_query(
            &format!("/api/v1/{name}"),
            &[
                ("only_deleted", "true".into()),
                ("sort", "-deleted_at".into()),
                ("per_page", PER_COLLECTION.to_string()),
            ],
        );
        let Ok(answer) = ctx.api.get(&uri).await else {
            continue;
        };
        let Ok(c) = super::collection(name) else {
            continue;
        };
        let compiled = super::compiled(&st, &c)?;
        for r in answer.data.as_array().into_iter().flatten() {
            rows.push(json!({
                "collection": name, "id": r["id"], "label": label(r),
                "deleted_at": r["deleted_at"], "deleted_by": r["deleted_by"],
                "can_restore": ctx.caller().may(&compiled, Action::Delete, r),
            }));
        }
    }
    rows.sort_by(|a, b| {
        let at = |v: &Value| v["deleted_at"].as_str().unwrap_or_default().to_string();
        at(b).cmp(&at(a))
    });
    ctx.page(
        "trash.html",
        json!({"title": "Trash", "rows": rows, "collections": soft, "collection": wanted,
               "notice": super::notice(p.notice.as_deref()),
               "can_purge": ctx.caller().is_super_admin()}),
    )
}
