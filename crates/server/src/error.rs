//! The server's error type and its one mapping to HTTP.
//!
//! Engine errors carry stable codes; here each code gets its status. Internal details
//! (store errors, corruption) are logged once with the request id and answered with a
//! generic message: a 5xx never leaks internals.
//!
//! Every 503 carries `Retry-After`: the store (or the identity service) is away and may
//! come back, so a client should retry the same request later, not give up. It is added
//! here, where errors become responses, so no route can forget it.

use axum::Json;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bucketbase_engine::{Error as EngineError, ErrorCode};
use serde_json::{Value, json};

use crate::auth::AuthError;
use crate::envelope::RequestId;

/// Result alias for handlers.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// An error answer: status, stable code, message, optional details.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// A failure of the server itself: logged here, answered as a bare 500.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// The error for a status the server answers without a more specific cause (axum's
    /// own rejections, hyper's refusals of a request head): each status has one code.
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::NOT_FOUND => ("not_found", "no such route"),
            StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed here"),
            StatusCode::PAYLOAD_TOO_LARGE => ("too_large", "request body too large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ("unsupported_media_type", "unsupported content type")
            }
            StatusCode::URI_TOO_LONG => ("uri_too_long", "request target too long"),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
                ("headers_too_large", "request headers too large or too many")
            }
            StatusCode::UNAUTHORIZED => ("unauthorized", "missing or invalid token"),
            StatusCode::FORBIDDEN => ("forbidden", "forbidden"),
            StatusCode::TOO_MANY_REQUESTS => ("rate_limited", "too many requests"),
            StatusCode::REQUEST_TIMEOUT => ("timeout", "request timed out"),
            StatusCode::SERVICE_UNAVAILABLE => ("unavailable", "service unavailable"),
            StatusCode::CONFLICT => ("conflict", "conflict"),
            StatusCode::LENGTH_REQUIRED => ("length_required", "length required"),
            StatusCode::PRECONDITION_FAILED => ("version_conflict", "precondition failed"),
            // A bare 422 is axum's rejection of a JSON body's shape: a bad request, since
            // 422 is only for `validation_failed` and `invalid_definition`.
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                return Self::bad_request("bad request");
            }
            s if s.is_server_error() => ("internal", "internal error"),
            _ => ("client_error", "the request cannot be served"),
        };
        Self::new(status, code, message)
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
}

/// The HTTP status of each engine error code: one exhaustive match, so a new code that
/// nobody maps fails to compile instead of answering 500.
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::ValidationFailed | ErrorCode::InvalidDefinition => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ErrorCode::UniqueViolation
        | ErrorCode::CheckViolation
        | ErrorCode::ExclusionViolation
        | ErrorCode::ReferenceViolation
        | ErrorCode::RevertConflict
        | ErrorCode::Contention => StatusCode::CONFLICT,
        ErrorCode::VersionConflict => StatusCode::PRECONDITION_FAILED,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::BadRequest | ErrorCode::InvalidFilter | ErrorCode::QueryTooCostly => {
            StatusCode::BAD_REQUEST
        }
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Unavailable | ErrorCode::OutcomeUnknown => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let code = e.code();
        let status = status_of(code);
        if status.is_server_error() {
            tracing::error!(error = %e, code = code.as_str(), "request failed");
            let message = match code {
                ErrorCode::OutcomeUnknown => {
                    "the store did not confirm the write; it may or may not have been applied"
                }
                // A read (or a write's own reads) that needed the store.
                ErrorCode::Unavailable if e.is_store_outage() => {
                    "the store is unavailable; try again later"
                }
                ErrorCode::Unavailable => "the store is unavailable; nothing was written",
                _ => "internal error",
            };
            return ApiError::new(status, code.as_str(), message);
        }
        let details = match &e {
            EngineError::Violation(v) => serde_json::to_value(v.as_ref()).ok(),
            EngineError::VersionConflict { actual, .. } => Some(json!({"current_version": actual})),
            _ => None,
        };
        ApiError {
            status,
            code: code.as_str(),
            message: e.to_string(),
            details,
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unavailable(reason) => {
                tracing::warn!(%reason, "identity service unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "auth_unavailable",
                    "the identity service is unavailable",
                )
            }
            AuthError::NotSupported(what) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "not_supported",
                format!("not supported by this identity provider: {what}"),
            ),
            AuthError::InvalidCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "invalid email or password",
            ),
            AuthError::InvalidToken(_) => ApiError::unauthorized("missing or invalid token"),
        }
    }
}

/// The `error` object of a failed answer. The request-id layer, which knows the id,
/// turns it into the envelope (so no handler has to thread the id into its errors).
#[derive(Debug, Clone)]
pub struct ErrorBody(pub Value);

impl ApiError {
    /// The `error` object of the envelope.
    fn error_json(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(details) = &self.details {
            error["details"] = details.clone();
        }
        error
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = self.error_json();
        let mut response = self.status.into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(RETRY_AFTER, retry_after());
        }
        response.extensions_mut().insert(ErrorBody(error));
        response
    }
}

/// Seconds a client should wait before retrying a 503: long enough not to hammer a store
/// that is away, short enough that a client notices its return quickly.
pub const RETRY_AFTER_SECS: u64 = 1;

fn retry_after() -> HeaderValue {
    HeaderValue::from(RETRY_AFTER_SECS)
}

/// The error envelope for `error`, with the request id in `meta`.
pub fn error_envelope(
    status: axum::http::StatusCode,
    error: Value,
    request_id: &RequestId,
) -> Response {
    (status, Json(envelope_json(error, &request_id.0))).into_response()
}

/// The whole error envelope of `error`, for answers written outside the router (see
/// [`crate::conn`]).
pub fn error_body(error: &ApiError, request_id: &str) -> Value {
    envelope_json(error.error_json(), request_id)
}

fn envelope_json(error: Value, request_id: &str) -> Value {
    json!({"success": false, "error": error, "meta": {"request_id": request_id}})
}
