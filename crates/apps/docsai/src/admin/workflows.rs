//! `/admin/docsai/workflows`: the caller's workflows; `/admin/docsai/workflows/{id}`: a
//! workflow's executions, newest first, paged; `.../executions/{execution}`: one
//! execution and its log lines, paged, live on the last page.
//!
//! Every read is the nested API's (`GET /api/v1/workflows/{id}/executions?page=`, then
//! `.../executions/{execution}/logs?page=`), so a page costs what it shows and access is
//! the workflow's (another owner's is a 404 page). Log lines read like a log file: oldest
//! first, opening on the last page, where new lines are appended while they are written.
//! That page subscribes to the change feed (`/api/v1/workflows/events?record_id=`) from
//! the position its lines were read at (`since` = the answer's `meta.seq`), so no line
//! written after the read is missed and none is shown twice; `live.js` appends the item
//! events under `executions/<execution>/logs/` (`data-live-items`).

use axum::Router;
use axum::extract::{Path, Query};
use axum::response::Response;
use axum::routing::get;
use bucketbase_server::AppState;
use bucketbase_server::admin::{AdminError, Ctx, with_query};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{TEMPLATES, page_number, pager};

/// Workflows per page of the list.
const WORKFLOWS_PER_PAGE: usize = 20;
/// Executions per page of a workflow.
const EXECUTIONS_PER_PAGE: usize = 20;
/// Log lines per page of an execution.
const LOGS_PER_PAGE: usize = 50;
/// The fields of a log line the table shows, in `live.js`'s `data-live-fields` form
/// (`a|b`: the first that is set), so a live row has the server-rendered row's cells.
const LOG_FIELDS: &str = "logged_at|created_at,level,node_key,message";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/docsai/workflows", get(list))
        .route("/admin/docsai/workflows/{id}", get(workflow))
        .route(
            "/admin/docsai/workflows/{id}/executions/{execution}",
            get(execution),
        )
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<String>,
}

/// A path segment percent-encoded (ids come from the URL and go back into API paths
/// and links; anything but unreserved characters is encoded).
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn pages_of(total: u64, per_page: usize) -> usize {
    (total as usize).div_ceil(per_page).max(1)
}

async fn list(ctx: Ctx, Query(q): Query<PageQuery>) -> Result<Response, AdminError> {
    let page = page_number(q.page.as_deref()).unwrap_or(1);
    let answer = ctx
        .api
        .get(&with_query(
            "/api/v1/workflows",
            &[
                ("sort", "name".into()),
                ("page", page.to_string()),
                ("per_page", WORKFLOWS_PER_PAGE.to_string()),
            ],
        ))
        .await?;
    let rows: Vec<Value> = answer
        .data
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            json!({"href": format!("/admin/docsai/workflows/{}", segment(w["id"].as_str().unwrap_or_default())),
                   "name": w["name"], "trigger_type": w["trigger_type"], "is_active": w["is_active"],
                   "executions": w["executions"].as_array().map_or(0, Vec::len)})
        })
        .collect();
    let total = answer.meta["total"].as_u64().unwrap_or(0);
    let pages = pager(page, pages_of(total, WORKFLOWS_PER_PAGE), |n| {
        format!("/admin/docsai/workflows?page={n}")
    });
    ctx.render(
        &TEMPLATES,
        "docsai/workflows.html",
        json!({"title": "Workflows", "rows": rows, "total": total, "pager": pages}),
    )
}

async fn workflow(
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Response, AdminError> {
    let base = format!("/api/v1/workflows/{}", segment(&id));
    let here = format!("/admin/docsai/workflows/{}", segment(&id));
    let record = ctx
        .api
        .get(&with_query(&base, &[("nested", "count".into())]))
        .await?;
    let page = page_number(q.page.as_deref()).unwrap_or(1);
    let executions = ctx
        .api
        .get(&with_query(
            &format!("{base}/executions"),
            &[
                ("sort", "-created_at".into()),
                ("page", page.to_string()),
                ("per_page", EXECUTIONS_PER_PAGE.to_string()),
            ],
        ))
        .await?;
    let rows: Vec<Value> = executions
        .data
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let exec = e["id"].as_str().unwrap_or_default();
            json!({"href": format!("{here}/executions/{}", segment(exec)), "id": exec,
                   "status": e["status"], "mode": e["mode"], "started_at": e["started_at"],
                   "finished_at": e["finished_at"], "created_at": e["created_at"],
                   "logs": e["logs"].as_array().map_or(0, Vec::len)})
        })
        .collect();
    let total = executions.meta["total"].as_u64().unwrap_or(0);
    let pages = pager(page, pages_of(total, EXECUTIONS_PER_PAGE), |n| {
        format!("{here}?page={n}")
    });
    let w = &record.data;
    ctx.render(
        &TEMPLATES,
        "docsai/workflow.html",
        json!({"title": format!("Workflow {}", w["name"].as_str().unwrap_or_default()),
               "workflow": {"id": w["id"], "name": w["name"], "description": w["description"],
                            "trigger_type": w["trigger_type"], "is_active": w["is_active"]},
               "record_href": format!("/admin/c/workflows/{}", segment(&id)),
               "rows": rows, "total": total, "pager": pages}),
    )
}

async fn execution(
    ctx: Ctx,
    Path((id, exec)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> Result<Response, AdminError> {
    let base = format!("/api/v1/workflows/{}", segment(&id));
    let here = format!(
        "/admin/docsai/workflows/{}/executions/{}",
        segment(&id),
        segment(&exec)
    );
    let record = ctx
        .api
        .get(&with_query(&base, &[("nested", "none".into())]))
        .await?;
    let item = ctx
        .api
        .get(&format!("{base}/executions/{}", segment(&exec)))
        .await?;
    let lines = item.data["logs"].as_array().map_or(0, Vec::len) as u64;
    // Like a log file: the newest lines (the last page) unless a page is asked for; a
    // page past the end is the last one (so live lines never land on an empty page 99).
    let last = pages_of(lines, LOGS_PER_PAGE);
    let page = page_number(q.page.as_deref()).map_or(last, |p| p.min(last));
    let logs = ctx
        .api
        .get(&with_query(
            &format!("{base}/executions/{}/logs", segment(&exec)),
            &[
                ("page", page.to_string()),
                ("per_page", LOGS_PER_PAGE.to_string()),
            ],
        ))
        .await?;
    let total = logs.meta["total"].as_u64().unwrap_or(0);
    let pages = pages_of(total, LOGS_PER_PAGE);
    // New lines are appended to the last page only (on another page they would land
    // among older ones); the feed starts where this read was made.
    let live = (page >= pages).then(|| {
        json!({
            "feed": with_query(
                "/api/v1/workflows/events",
                &[
                    ("record_id", id.clone()),
                    ("since", logs.meta["seq"].as_u64().map(|s| s.to_string()).unwrap_or_default()),
                ],
            ),
            "prefix": format!("executions/{exec}/logs/"),
            "fields": LOG_FIELDS,
        })
    });
    let rows: Vec<Value> = logs
        .data
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let at = if l["logged_at"].is_null() {
                &l["created_at"]
            } else {
                &l["logged_at"]
            };
            json!({"id": l["id"], "at": at, "level": l["level"], "node_key": l["node_key"],
                   "message": l["message"]})
        })
        .collect();
    let e = &item.data;
    let w = &record.data;
    ctx.render(
        &TEMPLATES,
        "docsai/execution.html",
        json!({"title": format!("Execution {exec}"),
               "workflow": {"name": w["name"], "href": format!("/admin/docsai/workflows/{}", segment(&id))},
               "execution": {"id": exec, "status": e["status"], "mode": e["mode"],
                             "started_at": e["started_at"], "finished_at": e["finished_at"],
                             "created_at": e["created_at"], "error": e["error"]},
               "rows": rows, "total": total, "live": live,
               "pager": pager(page, pages, |n| format!("{here}?page={n}"))}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("0192f0c1-ab"), "0192f0c1-ab");
        assert_eq!(segment("a/b?c d"), "a%2Fb%3Fc%20d");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn an_empty_array_is_one_page() {
        assert_eq!(pages_of(0, 50), 1);
        assert_eq!(pages_of(50, 50), 1);
        assert_eq!(pages_of(51, 50), 2);
    }
}
