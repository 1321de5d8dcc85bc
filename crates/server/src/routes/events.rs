//! `GET /api/v1/{collection}/events` and `GET /api/v1/events?collections=a,b`: the change
//! feed as Server-Sent Events (see `crate::feed` for what a subscriber is sent, and
//! docs/feed.md for the contract).
//!
//! An event's SSE `id` is its feed position `seq.index` (the log position of its entry
//! and its place among the entry's changes), so a client that reconnects with
//! `Last-Event-ID` (browsers do it on their own) or `?since=` gets exactly what came
//! after, read back from the log. Everything that can be refused is refused before the
//! stream starts, with the usual error envelope; once it runs, an error ends it with an
//! `error` event whose data is that envelope.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, KeepAliveStream, Sse};
use axum::routing::get;
use bucketbase_engine::collection::expr::Expr;
use bucketbase_engine::feed::FeedPos;
use bucketbase_engine::{CollectionName, Error as EngineError};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::json;
use utoipa::openapi::Type;
use utoipa::openapi::path::{HttpMethod, Operation};

use super::{collection, definition, record_id};
use crate::AppState;
use crate::access::{Caller, access_token};
use crate::contract::Resource;
use crate::error::{ApiError, Result};
use crate::feed::{self, Message, Spec};

/// The two routes, with their OpenAPI operations.
pub fn resource() -> Resource {
    Resource::new()
        .route(
            "/api/v1/events",
            get(several),
            [(
                HttpMethod::Get,
                described(
                    "events.several",
                    "Changes of several collections as Server-Sent Events",
                ),
            )],
        )
        .route(
            "/api/v1/{collection}/events",
            get(one),
            [(
                HttpMethod::Get,
                described(
                    "events.one",
                    "Changes of one collection as Server-Sent Events",
                ),
            )],
        )
}

pub fn router() -> Router<AppState> {
    resource().into_router()
}

/// What a subscription answers: the stream of events.
type Events = Sse<KeepAliveStream<BoxStream<'static, Result<Event, Infallible>>>>;

/// The query parameters a subscription accepts.
const PARAMS: [&str; 4] = ["collections", "record_id", "filter", "since"];

/// Most collections one subscription may name.
pub(crate) const MAX_COLLECTIONS: usize = 32;

async fn one(
    State(st): State<AppState>,
    caller: Caller,
    parts: Parts,
    Path(c): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Events> {
    if params.contains_key("collections") {
        return Err(ApiError::bad_request(
            "collections= belongs to /api/v1/events; this route names its collection",
        ));
    }
    let c = collection(&c)?;
    open(st, caller, &parts, vec![c], &params)
}

async fn several(
    State(st): State<AppState>,
    caller: Caller,
    parts: Parts,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Events> {
    let names = params
        .get("collections")
        .map(|s| s.split(',').map(str::trim).filter(|s| !s.is_empty()))
        .ok_or_else(|| ApiError::bad_request("name the collections: ?collections=a,b"))?;
    let mut collections = Vec::new();
    for name in names {
        let c = collection(name)?;
        if !collections.contains(&c) {
            collections.push(c);
        }
    }
    if collections.is_empty() || collections.len() > MAX_COLLECTIONS {
        return Err(ApiError::bad_request(format!(
            "name 1 to {MAX_COLLECTIONS} collections: ?collections=a,b"
        )));
    }
    open(st, caller, &parts, collections, &params)
}

/// Checks the request and starts the subscription.
fn open(
    st: AppState,
    caller: Caller,
    parts: &Parts,
    collections: Vec<CollectionName>,
    params: &BTreeMap<String, String>,
) -> Result<Events> {
    if let Some(unknown) = params.keys().find(|k| !PARAMS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown parameter {unknown:?}: use {}",
            PARAMS.join(", ")
        )));
    }
    let snap = st.db.snapshot();
    for c in &collections {
        definition(&snap, c)?;
    }
    let record_id = params
        .get("record_id")
        .map(|id| record_id(id))
        .transpose()?;
    let filter = params
        .get("filter")
        .filter(|f| !f.trim().is_empty())
        .map(|f| Expr::compile(f).map(Arc::new))
        .transpose()
        .map_err(|e| {
            ApiError::from(EngineError::InvalidFilter {
                reason: e.to_string(),
            })
        })?;
    let since = since(&parts.headers, params)?.unwrap_or(FeedPos::after(snap.seq()));
    let token = access_token(parts).unwrap_or_default();
    let spec = Spec {
        collections,
        record_id,
        filter,
        since,
    };
    let rx = feed::subscribe(&st, caller, token, spec)?;
    // A graceful shutdown ends the stream (the client resumes with Last-Event-ID).
    let mut stopping = st.shutdown.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let message = rx.recv().await?;
        Some((Ok(event(message)), rx))
    })
    .take_until(async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    })
    .boxed();
    Ok(Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(st.settings.feed.keepalive)
            .text("keep-alive"),
    ))
}

/// Where to start: `Last-Event-ID` (what a reconnecting client sends) wins over
/// `?since=`; neither means "from now on".
fn since(headers: &HeaderMap, params: &BTreeMap<String, String>) -> Result<Option<FeedPos>> {
    let header = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::bad_request("Last-Event-ID must be an event id like 12.3"))
        })
        .transpose()?
        .filter(|v| !v.trim().is_empty());
    header
        .or(params.get("since").map(String::as_str))
        .map(|text| FeedPos::parse(text).map_err(|e| ApiError::bad_request(e.to_string())))
        .transpose()
}

fn event(message: Message) -> Event {
    match message {
        Message::Event { id, event, data } => Event::default()
            .id(id.to_string())
            .event(event)
            .data(data.to_string()),
        Message::Dropped { resume } => Event::default()
            .id(resume.to_string())
            .event("dropped")
            .data(
                json!({
                    "reason": "the client did not keep up",
                    "resume": resume.to_string(),
                })
                .to_string(),
            ),
        Message::End { code, message } => Event::default().event("error").data(
            json!({
                "success": false,
                "error": {"code": code, "message": message, "details": null},
                "meta": {},
            })
            .to_string(),
        ),
    }
}

/// The OpenAPI path items of these routes.
fn described(id: &str, summary: &str) -> Operation {
    use crate::openapi::{operation, path_param, query_param};
    let mut op = operation(
        id,
        "events",
        summary,
        &["BadRequest", "Unauthorized", "Forbidden", "NotFound", "TooManyRequests"],
    )
    .parameter(query_param("record_id", Type::String, "Only this record"))
    .parameter(query_param("filter", Type::String, "CEL filter over `record` (as in lists)"))
    .parameter(query_param(
        "since",
        Type::String,
        "Start after this position (a log position like 12, or an event id like 12.3); the Last-Event-ID header wins",
    ))
    .response(
        "200",
        utoipa::openapi::ResponseBuilder::new()
            .description("A text/event-stream: one event per change the caller may see; id = seq.index")
            .build(),
    );
    if id == "events.several" {
        op = op.parameter(query_param(
            "collections",
            Type::String,
            "Comma-separated collection names",
        ));
    } else {
        op = op.parameter(path_param("collection", "Collection name"));
    }
    op.build()
}
