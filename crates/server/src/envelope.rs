//! The one response envelope, request ids, and the response-wide layers.
//!
//! Success: `{"success": true, "data": ..., "meta": {"request_id": ..., ...}}`; error:
//! `{"success": false, "error": {"code", "message", "details"}, "meta": {...}}`. Every
//! response carries `X-Request-Id` and the security headers, including responses axum
//! produces itself (unknown route, wrong method, body too large), which
//! [`envelope_bare_errors`] wraps in the error envelope.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{CONTENT_TYPE, HeaderValue};
use axum::http::request::Parts;
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ErrorBody, error_envelope};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(String::new())))
    }
}

/// A fresh request id. Ids only need to be unique, not time-ordered: a random (v4) UUID.
pub fn new_request_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

/// Gives the request its id (a sane incoming `X-Request-Id` is kept); [`finish`] echoes it.
pub fn assign_request_id(req: &mut Request) -> RequestId {
    let incoming = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_string);
    let request_id = RequestId(incoming.unwrap_or_else(new_request_id));
    req.extensions_mut().insert(request_id.clone());
    request_id
}

/// Makes `response` what every answer is: an error in the envelope (handlers' errors and
/// axum's own bare ones, see [`envelope_bare_errors`]) with the request's id, and the
/// security headers.
pub fn finish(response: Response, request_id: &RequestId) -> Response {
    let mut response = envelope_bare_errors(response);
    if let Some(ErrorBody(error)) = response.extensions_mut().remove::<ErrorBody>() {
        let status = response.status();
        let mut headers = std::mem::take(response.headers_mut());
        headers.remove(CONTENT_TYPE);
        headers.remove(axum::http::header::CONTENT_LENGTH);
        response = error_envelope(status, error, request_id);
        for (k, v) in headers.iter() {
            response.headers_mut().append(k, v.clone());
        }
    }
    if let Ok(value) = HeaderValue::from_str(&request_id.0) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    security_headers(response)
}

/// Adds the security headers every answer carries.
fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.entry("content-security-policy")
        .or_insert(HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'",
        ));
    h.entry("cache-control")
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Wraps error responses that are not already JSON (axum's own 404/405/413/415...) in the
/// error envelope.
fn envelope_bare_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let enveloped = response.extensions().get::<ErrorBody>().is_some();
    // The admin UI answers its browser with HTML error pages (a hidden record is a 404
    // page); axum's own rejections are plain text, never HTML.
    let is_page = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_json || enveloped || is_page {
        return response;
    }
    let mut out = ApiError::for_status(status).into_response();
    for (k, v) in response.headers().iter() {
        if k != CONTENT_TYPE && k != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().append(k, v.clone());
        }
    }
    out
}

/// A success answer in the envelope.
pub struct Envelope {
    pub status: StatusCode,
    pub data: Data,
    pub meta: Map<String, Value>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// An answer's `data`: a value, or JSON text written as it is.
pub enum Data {
    Value(Value),
    Text(JsonText),
}

/// Valid JSON text, written into an answer as it is: a stored record shown straight
/// from its canonical text (`routes::records::show_text`), which skips parsing it into
/// a `Value` and writing that again. Only code that keeps the text valid makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(String);

impl JsonText {
    /// `text` must be valid JSON, written as serde_json writes a `Value` (objects' keys
    /// sorted, no whitespace), so an answer is the same bytes whichever form it takes.
    pub(crate) fn new_unchecked(text: String) -> Self {
        JsonText(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Envelope {
    fn with_data(status: StatusCode, req: &RequestId, data: Data) -> Self {
        let mut meta = Map::new();
        meta.insert("request_id".into(), json!(req.0));
        Envelope {
            status,
            data,
            meta,
            headers: Vec::new(),
        }
    }

    pub fn ok(req: &RequestId, data: impl Serialize) -> Self {
        let data = serde_json::to_value(data).unwrap_or(Value::Null);
        Envelope::with_data(StatusCode::OK, req, Data::Value(data))
    }

    /// A success answer whose `data` is `text`.
    pub fn ok_text(req: &RequestId, text: JsonText) -> Self {
        Envelope::with_data(StatusCode::OK, req, Data::Text(text))
    }

    pub fn created(req: &RequestId, data: impl Serialize) -> Self {
        Envelope {
            status: StatusCode::CREATED,
            ..Envelope::ok(req, data)
        }
    }

    pub fn meta(mut self, key: &str, value: impl Serialize) -> Self {
        self.meta.insert(
            key.into(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }

    pub fn header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    /// Takes `data` out as a value (leaving null), to be shown otherwise and put back.
    pub fn take_data(&mut self) -> Value {
        match std::mem::replace(&mut self.data, Data::Value(Value::Null)) {
            Data::Value(value) => value,
            Data::Text(text) => serde_json::from_str(&text.0).unwrap_or(Value::Null),
        }
    }

    /// The answer's body: `{"data":...,"meta":{...},"success":true}`, the keys in the
    /// order serde_json writes an object `Value` (sorted), as answers always were.
    pub fn body(&self) -> Vec<u8> {
        let data_len = match &self.data {
            Data::Text(text) => text.0.len(),
            Data::Value(_) => 128,
        };
        let mut out = Vec::with_capacity(data_len + 96);
        out.extend_from_slice(b"{\"data\":");
        match &self.data {
            Data::Value(value) => {
                serde_json::to_writer(&mut out, value).expect("a Value always serializes")
            }
            Data::Text(text) => out.extend_from_slice(text.0.as_bytes()),
        }
        out.extend_from_slice(b",\"meta\":");
        serde_json::to_writer(&mut out, &self.meta).expect("a Value always serializes");
        out.extend_from_slice(b",\"success\":true}");
        out
    }
}

impl IntoResponse for Envelope {
    fn into_response(self) -> Response {
        let body = self.body();
        let content_type = [(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        let mut response = (self.status, content_type, body).into_response();
        for (k, v) in self.headers {
            response.headers_mut().append(k, v);
        }
        response
    }
}

/// A JSON request body, the one body extractor of every route, whose rejections answer
/// in the envelope: 415 without a JSON content type, 413 when too large, and 400
/// `bad_request` for a body that does not parse *or* does not fit the expected shape
/// (unknown field, wrong type). axum says 422 for the latter; here 422 is kept for
/// `validation_failed` and `invalid_definition`, which the engine decides.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::rejection::JsonRejection;
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::bad_request(e.body_text())),
            Err(rejection) => {
                let status = rejection.status();
                Err(ApiError::for_status(status).with_message(rejection.body_text()))
            }
        }
    }
}
