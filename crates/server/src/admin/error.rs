//! The admin UI's one error type, answered as an HTML page for a person (a hidden record
//! is a 404 *page*), never as a raw JSON body. A failed API call keeps the API's status,
//! code and message; a missing session is a redirect to the login page.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::api::Failure;
use super::render;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Not signed in (or the session ended): go to the login page, then back.
    #[error("sign in first")]
    Login { next: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// A POST without the CSRF token (or a same-origin `Origin`).
    #[error("this form has expired or did not come from this site; reload the page and try again")]
    Csrf,
    /// The API refused (its status, code and message are shown).
    #[error("{}", .0.message)]
    Api(Failure),
    #[error("internal error")]
    Internal(String),
}

impl From<Failure> for AdminError {
    fn from(f: Failure) -> Self {
        AdminError::Api(f)
    }
}

impl From<minijinja::Error> for AdminError {
    fn from(e: minijinja::Error) -> Self {
        AdminError::Internal(format!("template: {e:#}"))
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            AdminError::Login { next } => {
                let target = super::api::with_query("/admin/login", &[("next", next.clone())]);
                return Redirect::to(&target).into_response();
            }
            AdminError::Api(f) if f.status == StatusCode::UNAUTHORIZED => {
                return Redirect::to("/admin/login").into_response();
            }
            AdminError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found".to_string()),
            AdminError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request".to_string()),
            AdminError::Csrf => (StatusCode::FORBIDDEN, "csrf_failed".to_string()),
            AdminError::Api(f) => (f.status, f.code.clone()),
            AdminError::Internal(detail) => {
                tracing::error!(%detail, "admin page failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal".to_string())
            }
        };
        let title = match status {
            StatusCode::NOT_FOUND => "Not found".to_string(),
            StatusCode::FORBIDDEN => "Not allowed".to_string(),
            s => s.canonical_reason().unwrap_or("Error").to_string(),
        };
        let ctx = json!({"title": title, "status": status.as_u16(), "code": code, "message": self.to_string()});
        render::page(status, "error.html", ctx).unwrap_or_else(|e| {
            tracing::error!(error = %e, "admin error page failed");
            (status, self.to_string()).into_response()
        })
    }
}
