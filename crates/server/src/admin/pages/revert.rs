//! `/admin/revert`: undo an import, a migration, a request or one log entry as one
//! changeset (docs/revert.md). The page shows the API's own dry run (the changeset's
//! transactions, the later changes in the way, what would change per collection); its form
//! reverts, over the later changes only when "revert over these changes" is ticked. Who may
//! is the API's rule (SuperAdmin, or what the app allows).

use axum::Router;
use axum::extract::Query;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::super::api::{Failure, with_query};
use super::super::error::AdminError;
use super::super::forms::CsrfForm;
use super::super::session::Ctx;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/revert", get(preview).post(revert))
}

/// Which changeset: one of the three, as the API takes it.
#[derive(Debug, Default, Deserialize, Serialize)]
struct Which {
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    seq: Option<String>,
}

impl Which {
    /// The API's request body, or why there is none.
    fn body(&self, dry_run: bool, force: bool) -> Result<Value, AdminError> {
        fn given(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|s| !s.is_empty())
        }
        let mut body = json!({"dry_run": dry_run, "force": force});
        match (
            given(&self.source),
            given(&self.request_id),
            given(&self.seq),
        ) {
            (Some(s), None, None) => body["source"] = json!(s),
            (None, Some(r), None) => body["request_id"] = json!(r),
            (None, None, Some(n)) => {
                let n: u64 = n.parse().map_err(|_| {
                    AdminError::BadRequest("seq is a log position (a number)".into())
                })?;
                body["seq"] = json!(n);
            }
            _ => {
                return Err(AdminError::BadRequest(
                    "name the changeset with one of source, request_id or seq".into(),
                ));
            }
        }
        Ok(body)
    }
}

/// Links to the revert page of an audit event's changesets: its source (when it names
/// one, like `import:<id>`), its request and its log entry.
pub(super) fn links(event: &Value) -> Value {
    let mut links = Map::new();
    if let Some(source) = event["source"].as_str().filter(|s| s.contains(':')) {
        let href = with_query("/admin/revert", &[("source", source.to_string())]);
        links.insert("source".into(), json!(href));
    }
    if let Some(request) = event["request_id"].as_str() {
        let href = with_query("/admin/revert", &[("request_id", request.to_string())]);
        links.insert("request".into(), json!(href));
    }
    if let Some(seq) = event["seq"].as_u64() {
        links.insert("seq".into(), json!(format!("/admin/revert?seq={seq}")));
    }
    Value::Object(links)
}

/// The API's answer as the page shows it: the changes counted per collection and action.
fn plan_view(data: &Value) -> Value {
    let mut counts: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for change in data["changes"].as_array().into_iter().flatten() {
        let key = (
            change["collection"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            change["action"]
                .as_str()
                .unwrap_or_default()
                .replace('_', " "),
        );
        *counts.entry(key).or_default() += 1;
    }
    let counts: Vec<Value> = counts
        .into_iter()
        .map(
            |((collection, action), n)| json!({"collection": collection, "action": action, "n": n}),
        )
        .collect();
    let conflicts: Vec<Value> = data["conflicts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let mut c = c.clone();
            c["href"] = json!(format!(
                "/admin/c/{}/{}",
                c["collection"].as_str().unwrap_or_default(),
                c["record_id"].as_str().unwrap_or_default()
            ));
            c
        })
        .collect();
    let audit = with_query(
        "/admin/audit",
        &[(
            "source",
            data["revert_source"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )],
    );
    json!({
        "changeset": data["changeset"], "seq": data["seq"], "transactions": data["transactions"],
        "conflicts": conflicts, "counts": counts, "audit": audit,
    })
}

fn failure_view(f: &Failure) -> Value {
    json!({"code": f.code, "message": f.message})
}

/// A refusal a person can act on (a bad name, an unknown changeset, a rule the revert
/// would break, later changes): shown on the page, not as an error page.
fn shown(f: &Failure) -> bool {
    matches!(
        f.status,
        StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND | StatusCode::CONFLICT
    )
}

async fn dry_run(ctx: &Ctx, which: &Which) -> Result<Result<Value, Failure>, AdminError> {
    let body = which.body(true, false)?;
    match ctx
        .api
        .call(Method::POST, "/api/v1/audit/revert", Some(&body), None)
        .await
    {
        Ok(answer) => Ok(Ok(plan_view(&answer.data))),
        Err(f) if shown(&f) => Ok(Err(f)),
        Err(f) => Err(f.into()),
    }
}

async fn preview(ctx: Ctx, Query(which): Query<Which>) -> Result<Response, AdminError> {
    let (status, page) = match dry_run(&ctx, &which).await? {
        Ok(plan) => (StatusCode::OK, json!({"plan": plan})),
        Err(f) => (f.status, json!({"failure": failure_view(&f)})),
    };
    let mut page = page;
    page["title"] = json!("Revert");
    page["which"] = json!(which);
    ctx.page_with(status, "revert.html", page)
}

async fn revert(ctx: Ctx, CsrfForm(form): CsrfForm) -> Result<Response, AdminError> {
    let text = |k: &str| form.get(k).map(str::to_string);
    let which = Which {
        source: text("source"),
        request_id: text("request_id"),
        seq: text("seq"),
    };
    let force = form.get("force").is_some();
    let body = which.body(false, force)?;
    let (status, mut page) = match ctx
        .api
        .call(Method::POST, "/api/v1/audit/revert", Some(&body), None)
        .await
    {
        Ok(answer) => (
            StatusCode::OK,
            json!({"plan": plan_view(&answer.data), "done": true}),
        ),
        Err(f) if shown(&f) => {
            // Show what is in the way again, from a fresh dry run.
            let plan = dry_run(&ctx, &which).await?.ok();
            (f.status, json!({"plan": plan, "failure": failure_view(&f)}))
        }
        Err(f) => return Err(f.into()),
    };
    page["title"] = json!("Revert");
    page["which"] = json!(which);
    ctx.page_with(status, "revert.html", page)
}
