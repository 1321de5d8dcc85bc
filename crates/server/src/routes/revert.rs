//! `POST /api/v1/audit/revert`: undo an import, a migration, a request or one log entry
//! as one changeset (see `bucketbase_engine::revert`).
//!
//! The body names the changeset with exactly one of `source` (`import:<id>`, ...),
//! `request_id` or `seq`, and may ask for a `dry_run` (what would change, and the
//! conflicts, without writing) or `force` (revert over later changes). Without `force`, a
//! changeset whose records were changed afterwards is refused with 409 `revert_conflict`,
//! listing each later change. SuperAdmin may revert anything; an app may let other roles
//! revert its own changesets and keep its own record of them ([`RevertPolicy`]).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use bucketbase_engine::revert::{self, Changeset, Revert};
use bucketbase_engine::{CollectionName, Seq, Txn};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::access::{Action, Caller};
use crate::contract::Resource;
use crate::envelope::{Envelope, JsonBody, RequestId};
use crate::error::{ApiError, Result};

/// What an app decides about reverts of its changesets.
pub trait RevertPolicy: Send + Sync {
    /// May `caller` (not a SuperAdmin, who always may) revert `changeset`?
    fn may_revert(&self, caller: &Caller, changeset: &Changeset) -> bool;
    /// Records of collection `c` are left as they are (the app updates them in `finish`).
    fn leaves(&self, c: &CollectionName) -> bool;
    /// Runs at the end of the revert's transaction (and of its dry run).
    fn finish(&self, tx: &mut Txn, changeset: &Changeset) -> bucketbase_engine::Result<()>;
}

/// The route, with its OpenAPI operation.
pub fn resource() -> Resource {
    use crate::openapi::{any, json_body, ok, operation, raw_schema};
    use utoipa::openapi::path::HttpMethod;
    let body = raw_schema(&json!({
        "type": "object",
        "description": "Exactly one of source, request_id or seq names the changeset",
        "properties": {
            "source": {"type": "string", "description": "import:<id>, migration:<id>, revert:<changeset>, ..."},
            "request_id": {"type": "string", "description": "Every transaction of one API request"},
            "seq": {"type": "integer", "minimum": 1, "description": "Every transaction of one log entry"},
            "dry_run": {"type": "boolean", "description": "Check and report; write nothing"},
            "force": {"type": "boolean", "description": "Revert over changes made after the changeset"},
        },
        "additionalProperties": false,
    }));
    Resource::new().route(
        "/api/v1/audit/revert",
        post(revert_changeset),
        [(
            HttpMethod::Post,
            operation(
                "audit.revert",
                "audit",
                "Revert a changeset in one transaction (SuperAdmin; an app may allow others)",
                &["BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict"],
            )
            .request_body(json_body(body, "The changeset"))
            .response(
                "200",
                ok(
                    "The changeset, its transactions, conflicts and changes (seq of the revert unless a dry run)",
                    any(),
                ),
            )
            .build(),
        )],
    )
}

pub fn router() -> Router<AppState> {
    resource().into_router()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevertBody {
    source: Option<String>,
    request_id: Option<String>,
    seq: Option<u64>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    force: bool,
}

impl RevertBody {
    fn changeset(&self) -> Result<Changeset> {
        match (&self.source, &self.request_id, self.seq) {
            (Some(s), None, None) if !s.is_empty() => Ok(Changeset::Source(s.clone())),
            (None, Some(r), None) if !r.is_empty() => Ok(Changeset::RequestId(r.clone())),
            (None, None, Some(n)) => Ok(Changeset::Seq(Seq(n))),
            _ => Err(ApiError::bad_request(
                "name the changeset with exactly one of source, request_id or seq",
            )),
        }
    }
}

async fn revert_changeset(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    JsonBody(body): JsonBody<RevertBody>,
) -> Result<Envelope> {
    let changeset = body.changeset()?;
    let policy = st.revert_policy.clone();
    let allowed = caller.is_super_admin()
        || policy
            .as_ref()
            .is_some_and(|p| p.may_revert(&caller, &changeset));
    if !allowed {
        return Err(ApiError::forbidden(format!(
            "reverting {} needs the SuperAdmin role",
            changeset.label()
        )));
    }
    let db = st.db.clone();
    let found = changeset.clone();
    let mut plan = super::off_workers(async move { revert::prepare(&db, &found).await }).await?;
    if let Some(p) = &policy {
        plan.leave(|c| p.leaves(c));
    }
    owners_admit(&st, &caller, &plan, &changeset)?;
    let meta = caller.txn_meta(&req);
    let plan = Arc::new(plan);
    let finish = {
        let (policy, changeset) = (policy.clone(), changeset.clone());
        move |tx: &mut Txn| match &policy {
            Some(p) => p.finish(tx, &changeset),
            None => Ok(()),
        }
    };
    if body.dry_run {
        let (db, plan_, meta) = (st.db.clone(), plan.clone(), meta.clone());
        let steps = tokio::task::spawn_blocking(move || plan_.dry_run(&db, &meta, &finish))
            .await
            .map_err(|e| ApiError::internal(format!("dry run task: {e}")))??;
        return Ok(Envelope::ok(&req, answer(&plan, &steps, true, None)));
    }
    if !body.force && !plan.conflicts.is_empty() {
        return Err(ApiError::from(bucketbase_engine::Error::RevertConflict {
            changeset: plan.changeset.clone(),
            records: plan.conflicted_records(),
        })
        .with_details(json!({ "conflicts": plan.conflicts })));
    }
    let done = plan.apply(&st.db, &meta, body.force, &finish).await?;
    Ok(Envelope::ok(
        &req,
        answer(&plan, &done.value, false, Some(done.seq)),
    ))
}

/// A changeset that touches records of a collection whose rules bind SuperAdmin too
/// (`bind_super_admin`, decision 0021) is reverted only by a caller those rules let see
/// and update each such record: another owner's records are not found, as everywhere.
fn owners_admit(
    st: &AppState,
    caller: &Caller,
    plan: &Revert,
    changeset: &Changeset,
) -> Result<()> {
    let snap = st.db.snapshot();
    for (c, id) in plan.records() {
        let Some(def) = snap.definition(c) else {
            continue;
        };
        if !def.def.rules.bind_super_admin {
            continue;
        }
        let admitted = snap.get(c, id).is_some_and(|doc| {
            let value = doc.value();
            caller.may(def, Action::View, &value) && caller.may(def, Action::Update, &value)
        });
        if !admitted {
            return Err(ApiError::not_found(format!(
                "{} not found",
                changeset.label()
            )));
        }
    }
    Ok(())
}

fn answer(plan: &Revert, steps: &[revert::Step], dry_run: bool, seq: Option<Seq>) -> Value {
    json!({
        "changeset": plan.changeset,
        "revert_source": format!("revert:{}", plan.changeset),
        "dry_run": dry_run,
        "seq": seq,
        "transactions": plan.transactions,
        "conflicts": plan.conflicts,
        "skipped": plan.skipped,
        "changes": steps,
    })
}
