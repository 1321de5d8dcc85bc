//! What every request passes through, in one layer: its id, the renewal of a cookie
//! session, read-your-writes across processes, then on the way out the envelope for
//! errors, the request id and security headers, and the request metrics.
//!
//! One `from_fn` layer, not one per concern: axum applies a router's layers to each
//! route, and every `from_fn` layer costs a cloned and boxed inner service and a boxed
//! future per request. Six of them were a measurable share of a GET by id (issue 15 §4).
//!
//! In order, as the layers were stacked before (outermost first):
//! 1. metrics: the start time, method and matched route;
//! 2. [`envelope::assign_request_id`];
//! 3. [`auth::renew`] (decision 0019);
//! 4. [`consistency::around`], which runs the handler;
//!
//! and on the way out, the renewed cookies, [`envelope::finish`] (bare errors and
//! handlers' errors in the envelope, `X-Request-Id`, security headers), and the metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::{AppState, auth, consistency, envelope};

/// The layer's function: `axum::middleware::from_fn_with_state(state, frame)`.
pub async fn frame(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let request_id = envelope::assign_request_id(&mut req);
    let (req, cookies) = auth::renew::renew(&st, req).await;
    let mut response = consistency::around(&st, req, next).await;
    auth::renew::set_cookies(&mut response, cookies);
    let response = envelope::finish(response, &request_id);
    st.metrics.observe_request(
        &method,
        route.as_ref().map(MatchedPath::as_str),
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}
