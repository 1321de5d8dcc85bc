//! `/admin/`: the collections the user may list with their live and deleted counts, the
//! latest audit events (SuperAdmin), the log position, the view writer and the tailer
//! (how far behind the log this process may be), and the store's readiness.

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::super::error::AdminError;
use super::super::session::Ctx;
use crate::AppState;
use crate::routes::events::MAX_COLLECTIONS as MAX_FEED_COLLECTIONS;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/", get(dashboard))
}

#[derive(serde::Deserialize)]
struct Params {
    notice: Option<String>,
}

async fn dashboard(
    State(st): State<AppState>,
    ctx: Ctx,
    Query(p): Query<Params>,
) -> Result<Response, AdminError> {
    let defs = ctx.api.get("/api/v1/collections").await?.data;
    let mut collections = Vec::new();
    for def in defs.as_array().into_iter().flatten() {
        let name = def["name"].as_str().unwrap_or_default();
        let total = |answer: Result<super::super::api::Answer, _>| {
            answer.ok().and_then(|a| a.meta["total"].as_u64())
        };
        let live = total(ctx.api.get(&format!("/api/v1/{name}?per_page=1")).await);
        let soft = def["soft_delete"].as_bool().unwrap_or(false);
        let deleted = if soft {
            total(
                ctx.api
                    .get(&format!("/api/v1/{name}?per_page=1&only_deleted=true"))
                    .await,
            )
        } else {
            None
        };
        collections
            .push(json!({"name": name, "live": live, "deleted": deleted, "soft_delete": soft}));
    }
    let audit = if ctx.caller().is_super_admin() {
        let events = ctx.api.get("/api/v1/audit?limit=8").await.map(|a| a.data);
        let mut events = events.unwrap_or(Value::Null);
        for e in events.as_array_mut().into_iter().flatten() {
            e["href"] = json!(super::record_href(e));
        }
        events
    } else {
        Value::Null
    };
    let health = match ctx.api.get("/readyz").await {
        Ok(a) => json!({"ready": true, "tail": a.data["tail"]}),
        Err(f) => json!({"ready": false, "reason": f.message, "tail": f.details["tail"]}),
    };
    // Live changes of the collections the user may list, from the current position
    // (the change feed sends only what they may see).
    let listable: Vec<&str> = collections
        .iter()
        .filter(|c| !c["live"].is_null())
        .filter_map(|c| c["name"].as_str())
        .take(MAX_FEED_COLLECTIONS)
        .collect();
    let seq = st.db.snapshot().seq().get();
    let feed = (!listable.is_empty()).then(|| {
        super::super::api::with_query(
            "/api/v1/events",
            &[
                ("collections", listable.join(",")),
                ("since", seq.to_string()),
            ],
        )
    });
    let engine = st.db.metrics().snapshot();
    ctx.page(
        "dashboard.html",
        json!({
            "title": "Dashboard",
            "notice": super::notice(p.notice.as_deref()),
            "collections": collections,
            "audit": audit,
            "feed": feed,
            "health": health,
            "seq": seq,
            "view": {"writes": engine.view_writes, "errors": engine.view_errors},
        }),
    )
}
