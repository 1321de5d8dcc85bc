//! The JSON API, called in process by the admin pages: a request goes through the same
//! router, extractors and handlers as one from the network (with the signed-in user's
//! token as `Authorization: Bearer`), so every rule the API keeps holds for the pages
//! too, and a page never needs its own copy of one. Answers come back as the envelope's
//! `data`/`meta`, or as a [`Failure`] carrying the envelope's `error` (code, message,
//! details) for the page to show beside the fields it names.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, IF_MATCH, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::envelope::RequestId;
use crate::error::ErrorBody;

/// The API routes with their state (without the admin routes), as the admin sees them.
#[derive(Clone)]
pub struct InternalApi(pub Router);

/// Largest API answer a page reads (a page of records, an audit query).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// A successful API answer.
#[derive(Debug)]
pub struct Answer {
    pub data: Value,
    pub meta: Value,
    pub set_cookies: Vec<HeaderValue>,
}

/// A failed API answer: the envelope's `error` and the status.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub details: Value,
}

impl Failure {
    fn from_error(status: StatusCode, error: &Value) -> Self {
        let text = |k: &str| {
            error
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Failure {
            status,
            code: text("code"),
            message: text("message"),
            details: error.get("details").cloned().unwrap_or(Value::Null),
        }
    }
}

/// The API as one caller: their token (if signed in), the page request's id (so audit
/// events name the request that made them) and peer address (the login rate limit).
#[derive(Clone)]
pub struct Api {
    router: Router,
    token: Option<String>,
    request_id: RequestId,
    peer: Option<ConnectInfo<SocketAddr>>,
}

impl Api {
    pub fn new(
        api: &InternalApi,
        request_id: RequestId,
        peer: Option<ConnectInfo<SocketAddr>>,
    ) -> Self {
        Api {
            router: api.0.clone(),
            token: None,
            request_id,
            peer,
        }
    }

    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    pub async fn get(&self, uri: &str) -> Result<Answer, Failure> {
        self.call(Method::GET, uri, None, None).await
    }

    /// One API request. `if_match` is a record version (`_version`).
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<&Value>,
        if_match: Option<u64>,
    ) -> Result<Answer, Failure> {
        let body = body.map(|v| {
            (
                "application/json".to_string(),
                serde_json::to_vec(v).unwrap_or_default(),
            )
        });
        self.send(method, uri, body, if_match).await
    }

    /// A `POST` of a multipart form (an upload route of the API) built from `parts`.
    pub async fn post_multipart(
        &self,
        uri: &str,
        parts: &[super::upload::Part],
    ) -> Result<Answer, Failure> {
        let body = super::upload::encode(parts);
        self.send(Method::POST, uri, Some(body), None).await
    }

    /// A `POST` whose body is a file as it is (an API route that takes the file itself,
    /// such as docsai's Postman import), with its content type.
    pub async fn post_bytes(
        &self,
        uri: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Answer, Failure> {
        let body = (content_type.to_string(), bytes);
        self.send(Method::POST, uri, Some(body), None).await
    }

    async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<(String, Vec<u8>)>,
        if_match: Option<u64>,
    ) -> Result<Answer, Failure> {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(token) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(version) = if_match {
            req = req.header(IF_MATCH, format!("\"{version}\""));
        }
        let body = match body {
            Some((content_type, bytes)) => {
                req = req.header(CONTENT_TYPE, content_type);
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        let mut req = req.body(body).map_err(|e| internal(e.to_string()))?;
        req.extensions_mut().insert(self.request_id.clone());
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(peer);
        }
        let response = match self.router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status();
        if let Some(ErrorBody(error)) = response.extensions().get::<ErrorBody>() {
            return Err(Failure::from_error(status, error));
        }
        let set_cookies = cookies(response.headers());
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER)
            .await
            .map_err(|e| internal(e.to_string()))?;
        if !status.is_success() {
            // axum's own rejections (plain text), before the envelope layer wraps them.
            let message = String::from_utf8_lossy(&bytes).into_owned();
            return Err(Failure::from_error(
                status,
                &json!({"code": status.canonical_reason().unwrap_or("error").to_lowercase().replace(' ', "_"), "message": message}),
            ));
        }
        let envelope: Value =
            serde_json::from_slice(&bytes).map_err(|e| internal(e.to_string()))?;
        Ok(Answer {
            data: envelope.get("data").cloned().unwrap_or(Value::Null),
            meta: envelope.get("meta").cloned().unwrap_or(Value::Null),
            set_cookies,
        })
    }
}

fn cookies(headers: &HeaderMap) -> Vec<HeaderValue> {
    headers.get_all(SET_COOKIE).iter().cloned().collect()
}

fn internal(detail: String) -> Failure {
    tracing::error!(%detail, "admin: calling the API in process failed");
    Failure {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "internal".into(),
        message: "internal error".into(),
        details: Value::Null,
    }
}

/// Builds `path?k=v&...` with the values percent-encoded, leaving out empty ones.
pub fn with_query(path: &str, params: &[(&str, String)]) -> String {
    let kept: Vec<(&str, &str)> = params
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    if kept.is_empty() {
        return path.to_string();
    }
    format!(
        "{path}?{}",
        serde_urlencoded::to_string(&kept).unwrap_or_default()
    )
}
