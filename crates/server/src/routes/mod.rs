//! The API's resources; each module owns its routes and their OpenAPI paths (a
//! [`Resource`]), and [`resource`] lists them all: `/api/openapi.json` documents what it
//! holds, and a test checks that every path it routes is in the document.

pub mod auth;
pub mod docs;
pub mod events;
pub mod metrics;
pub mod nested;
pub mod records;
pub mod revert;
pub mod system;

use std::sync::{Arc, LazyLock};

use bucketbase_engine::collection::Compiled;
use bucketbase_engine::{CollectionName, RecordId, Seq, State};

use crate::contract::Resource;
use crate::error::ApiError;

/// Every resource of the server (not an app's: those come with the app).
pub fn resource() -> Resource {
    Resource::new()
        .merge(system::resource())
        .merge(auth::resource())
        .merge(records::resource())
        .merge(nested::resource())
        .merge(revert::resource())
        .merge(events::resource())
        .merge(metrics::resource())
        .merge(docs::resource())
}

/// The OpenAPI path items of [`resource`], built once.
pub fn documented_paths() -> &'static serde_json::Map<String, serde_json::Value> {
    static PATHS: LazyLock<serde_json::Map<String, serde_json::Value>> =
        LazyLock::new(|| resource().into_parts().1);
    &PATHS
}

/// A collection named in a path: unknown names answer 404.
pub fn collection(name: &str) -> Result<CollectionName, ApiError> {
    CollectionName::parse(name)
        .map_err(|_| ApiError::not_found(format!("unknown collection {name:?}")))
}

/// The definition of a collection in `state`: undefined ones answer 404.
pub fn definition(state: &State, c: &CollectionName) -> Result<Arc<Compiled>, ApiError> {
    state
        .definition(c)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("unknown collection {:?}", c.as_str())))
}

/// The name of a collection a user defines: a valid name, not a system one (`_x`), not
/// reserved by a route or an app ([`crate::AppState::reserved_names`]). A bad one is an
/// invalid definition (422).
pub fn user_collection(st: &crate::AppState, name: &str) -> Result<CollectionName, ApiError> {
    CollectionName::parse_user(name, &st.reserved_names).map_err(|e| {
        ApiError::from(bucketbase_engine::Error::InvalidDefinition {
            collection: name.to_string(),
            problem: e.to_string(),
        })
    })
}

/// Audit events matching `filter` as answers show them: credential material redacted as
/// each collection's definition declares (see `Definition::redact`), for every caller.
/// Every route that answers audit events goes through here.
pub async fn audit_events(
    st: &crate::AppState,
    snap: &State,
    filter: &bucketbase_engine::collection::audit::AuditFilter,
) -> Result<Vec<serde_json::Value>, ApiError> {
    // Reading the log back is a walk of unbounded length: off the async workers.
    let (store, head, filter) = (st.db.store().clone(), snap.seq(), filter.clone());
    let mut events = off_workers(async move {
        bucketbase_engine::collection::audit::query(&store, head, &filter).await
    })
    .await?;
    for event in &mut events {
        let def = event
            .get("collection")
            .and_then(serde_json::Value::as_str)
            .and_then(|c| CollectionName::parse_any(c).ok())
            .and_then(|c| snap.definition(&c));
        if let Some(def) = def {
            def.redact_event(event);
        }
    }
    Ok(events)
}

/// A record id named in a path: malformed ids answer 400.
pub fn record_id(id: &str) -> Result<RecordId, ApiError> {
    RecordId::parse(id).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Parses `If-Match`: `"5"`, `W/"5"`, `5` or `*` (any version).
pub fn if_match(headers: &axum::http::HeaderMap) -> Result<Option<Seq>, ApiError> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("If-Match must be a version like \"5\""))?
        .trim();
    if text == "*" {
        return Ok(None);
    }
    let digits = text.trim_start_matches("W/").trim_matches('"');
    digits
        .parse::<u64>()
        .map(|v| Some(Seq(v)))
        .map_err(|_| ApiError::bad_request("If-Match must be a version like \"5\""))
}

/// Runs a walk of the log (an audit query, a chain verification: fetching, decoding and
/// hashing entry after entry, as far back as the log goes) on tokio's blocking pool,
/// driving its I/O from there, so the async workers keep answering other requests.
/// (The server runs on the multi-threaded runtime, whose workers drive the I/O.)
pub async fn off_workers<T: Send + 'static>(
    walk: impl std::future::Future<Output = bucketbase_engine::Result<T>> + Send + 'static,
) -> Result<T, ApiError> {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(walk))
        .await
        .map_err(|e| ApiError::internal(format!("blocking task: {e}")))?
        .map_err(ApiError::from)
}

/// The `ETag` of a record version.
pub fn etag(version: Seq) -> String {
    format!("\"{version}\"")
}
