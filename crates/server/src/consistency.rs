//! Read-your-writes across processes: the log position an answer reflects, and requests
//! that ask for a position or for the latest state.
//!
//! Every process holds the whole state in memory and learns of other processes' commits
//! from the log (its tailer reads the next slot every interval; see the engine's `tail`).
//! So a read through process B right after a write through process A may not show it yet.
//! Three headers make that visible and controllable:
//!
//! - `X-Bucketbase-Seq` on every answer: the log position it reflects. For a read
//!   (`GET`/`HEAD`) it is the position the process had reached when the request arrived,
//!   a lower bound of what the answer shows (so it never claims to be fresher than it is).
//!   For a write it is the position after the handler, which includes the write's commit.
//! - `X-Bucketbase-Min-Seq: N` on a request: the process catches up with the log until it
//!   has applied position N, waiting at most [`ServerSettings::min_seq_wait`]
//!   (5 s by default), and otherwise answers 503 `stale` with `Retry-After`.
//! - `X-Bucketbase-Consistency: latest` on a request: the process catches up with the
//!   log (one read per new entry, plus one for the empty slot) before answering.
//!
//! [`ServerSettings::min_seq_wait`]: crate::ServerSettings::min_seq_wait

use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bucketbase_engine::Seq;

use crate::AppState;
use crate::error::ApiError;

pub const SEQ: HeaderName = HeaderName::from_static("x-bucketbase-seq");
pub const MIN_SEQ: HeaderName = HeaderName::from_static("x-bucketbase-min-seq");
pub const CONSISTENCY: HeaderName = HeaderName::from_static("x-bucketbase-consistency");

/// How long to wait between catch-up attempts while a request waits for a position.
const POLL: Duration = Duration::from_millis(10);

/// Runs the request: honours its headers, then stamps the answer (a part of
/// [`crate::frame`]).
pub async fn around(st: &AppState, req: Request, next: Next) -> Response {
    let wanted = match requested(&req) {
        Ok(wanted) => wanted,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = reach(st, wanted).await {
        let mut response = e.into_response();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        return response;
    }
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let before = st.db.snapshot().seq();
    let mut response = next.run(req).await;
    let seq = if read { before } else { st.db.snapshot().seq() };
    if let Ok(value) = HeaderValue::from_str(&seq.get().to_string()) {
        response.headers_mut().insert(SEQ, value);
    }
    response
}

/// What a request asks for.
enum Wanted {
    Local,
    Latest,
    AtLeast(Seq),
}

fn requested(req: &Request) -> Result<Wanted, ApiError> {
    let header = |name: &HeaderName| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().map(str::trim).unwrap_or(""))
    };
    if let Some(min) = header(&MIN_SEQ) {
        return min
            .parse::<u64>()
            .map(|n| Wanted::AtLeast(Seq(n)))
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "X-Bucketbase-Min-Seq must be a log position (a whole number), not {min:?}"
                ))
            });
    }
    match header(&CONSISTENCY) {
        None => Ok(Wanted::Local),
        Some(v) if v.eq_ignore_ascii_case("latest") => Ok(Wanted::Latest),
        Some(v) if v.eq_ignore_ascii_case("local") => Ok(Wanted::Local),
        Some(v) => Err(ApiError::bad_request(format!(
            "X-Bucketbase-Consistency must be \"latest\" or \"local\", not {v:?}"
        ))),
    }
}

async fn reach(st: &AppState, wanted: Wanted) -> Result<(), ApiError> {
    match wanted {
        Wanted::Local => Ok(()),
        Wanted::Latest => {
            st.db.catch_up().await.map_err(ApiError::from)?;
            Ok(())
        }
        Wanted::AtLeast(target) => {
            let deadline = Instant::now() + st.settings.min_seq_wait;
            loop {
                if st.db.snapshot().seq() >= target {
                    return Ok(());
                }
                // A failed read of the log is retried until the deadline like a missing
                // entry: either way the position is not here yet.
                if let Ok(seq) = st.db.catch_up().await
                    && seq >= target
                {
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    return Err(not_yet(target, st.db.snapshot().seq()));
                }
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

fn not_yet(target: Seq, head: Seq) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "stale",
        format!("this process has reached log position {head}, not yet {target}; retry"),
    )
    .with_details(serde_json::json!({"seq": head.get(), "min_seq": target.get()}))
}
