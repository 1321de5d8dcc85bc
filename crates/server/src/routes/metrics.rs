//! `GET /metrics`: the Prometheus scrape endpoint (public, like `/healthz`; see
//! `crate::metrics` for what it holds). Its answer is the exposition text, not the JSON
//! envelope, because that is what scrapers read.

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;
use crate::contract::Resource;
use crate::error::ApiError;
use crate::openapi::{operation, public};

pub fn router() -> Router<AppState> {
    resource().into_router()
}

/// The route with its OpenAPI operation.
pub fn resource() -> Resource {
    use utoipa::openapi::{ContentBuilder, ResponseBuilder, path::HttpMethod};
    Resource::new().route(
        "/metrics",
        get(scrape),
        [(
            HttpMethod::Get,
            public(
                operation(
                    "system.metrics",
                    "system",
                    "Prometheus metrics (OpenMetrics text)",
                    &[],
                )
                .response(
                    "200",
                    ResponseBuilder::new()
                        .description("OpenMetrics text exposition")
                        .content(crate::metrics::CONTENT_TYPE, ContentBuilder::new().build())
                        .build(),
                ),
            ),
        )],
    )
}

async fn scrape(State(st): State<AppState>) -> Response {
    match st.metrics.render() {
        Ok(text) => ([(CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "metrics could not be encoded",
        )
        .into_response(),
    }
}
