//! Signing in and out of the admin UI, and who the signed-in user is on each page.
//!
//! The session is the JSON API's own: `/admin/login` calls `POST /api/auth/login` in
//! process and hands its cookies to the browser (`access_token`: HttpOnly, SameSite=Lax,
//! Secure unless `auth.cookie_secure` is off for plain-http localhost; `csrf_token`, the
//! double-submit token every admin form echoes in a field; `refresh_token`, `Path=/`).
//! An expired access cookie is renewed on the spot by the server-wide
//! [`crate::auth::renew`] middleware, the same one the API relies on, before [`resolve`]
//! reads the session: the admin has no refresh logic of its own. Tokens are signed with
//! the root's `_keys/token.key` and refresh tokens are records, so a session survives a
//! restart of the server on the same root.
//!
//! With the `jwks` provider (no passwords here) the login page asks for a bearer token
//! instead, checked through `GET /api/auth/me` before any cookie is set.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, Query, Request, State};
use axum::http::header::{AUTHORIZATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{Api, Failure, InternalApi};
use super::error::AdminError;
use super::forms::CsrfForm;
use super::render::{self, Nav};
use crate::AppState;
use crate::access::{ACCESS_COOKIE, CSRF_COOKIE, Caller, REFRESH_COOKIE, cookie};
use crate::auth::cookies;
use crate::auth::renew::{RenewUnavailable, Verified};
use crate::envelope::RequestId;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/login", get(login_page).post(login))
        .route("/admin/logout", post(logout))
}

/// A signed-in user.
#[derive(Clone)]
pub struct Session {
    pub caller: Caller,
    pub token: String,
    /// The CSRF token forms echo (the cookie's value, or the one just set).
    pub csrf: String,
}

/// What [`resolve`] found for this request.
#[derive(Clone)]
struct Resolved(Result<Session, Failure>);

/// Everything a page needs: the user, the API as them, the nav.
pub struct Ctx {
    pub session: Session,
    pub api: Api,
    pub nav: Nav,
}

impl Ctx {
    pub fn caller(&self) -> &Caller {
        &self.session.caller
    }
}

fn unsigned_api(parts: &Parts) -> Result<Api, AdminError> {
    let internal = parts
        .extensions
        .get::<InternalApi>()
        .ok_or_else(|| AdminError::Internal("the admin router has no API".into()))?;
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(|| RequestId(String::new()));
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().cloned();
    Ok(Api::new(internal, request_id, peer))
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, AdminError> {
        let session = match parts.extensions.get::<Resolved>() {
            Some(Resolved(Ok(session))) => session.clone(),
            Some(Resolved(Err(failure))) => return Err(AdminError::Api(failure.clone())),
            None => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default();
                return Err(AdminError::Login { next });
            }
        };
        let api = unsigned_api(parts)?.with_token(&session.token);
        let nav = parts.extensions.get::<Nav>().cloned().unwrap_or_default();
        Ok(Ctx { session, api, nav })
    }
}

/// The caller a token stands for, decided by the API's own extractor (token check,
/// required role, what the app adds to `auth`), with what the renewal middleware already
/// learnt about this request's session.
async fn caller(st: &AppState, token: &str, request: &Parts) -> Result<Caller, Failure> {
    let (mut parts, ()) = Request::builder()
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(())
        .unwrap_or_default()
        .into_parts();
    if let Some(v) = request.extensions.get::<Verified>() {
        parts.extensions.insert(v.clone());
    }
    if let Some(u) = request.extensions.get::<RenewUnavailable>() {
        parts.extensions.insert(u.clone());
    }
    Caller::from_request_parts(&mut parts, st)
        .await
        .map_err(|e| failure_of(e.into_response()))
}

fn failure_of(response: Response) -> Failure {
    let status = response.status();
    let error = response
        .extensions()
        .get::<crate::error::ErrorBody>()
        .map(|b| b.0.clone())
        .unwrap_or_else(|| json!({"code": "unauthorized", "message": "sign in again"}));
    Failure {
        status,
        code: error["code"].as_str().unwrap_or_default().to_string(),
        message: error["message"].as_str().unwrap_or_default().to_string(),
        details: error.get("details").cloned().unwrap_or(Value::Null),
    }
}

/// Finds the signed-in user of an admin request from the `access_token` cookie (already
/// renewed by [`crate::auth::renew`] if it had expired and a refresh cookie was there).
pub async fn resolve(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let csrf = cookie(&parts, CSRF_COOKIE).unwrap_or_default();
    let mut resolved = None;
    if let Some(token) = cookie(&parts, ACCESS_COOKIE).filter(|t| !t.is_empty()) {
        match caller(&st, &token, &parts).await {
            Ok(caller) => {
                resolved = Some(Ok(Session {
                    caller,
                    token,
                    csrf,
                }))
            }
            Err(f) if f.status == StatusCode::UNAUTHORIZED => {}
            Err(f) => resolved = Some(Err(f)),
        }
    } else if let Some(u) = parts.extensions.get::<RenewUnavailable>() {
        resolved = Some(Err(failure_of(
            crate::error::ApiError::from(crate::auth::AuthError::Unavailable(u.0.clone()))
                .into_response(),
        )));
    }
    req = Request::from_parts(parts, body);
    if let Some(r) = resolved {
        req.extensions_mut().insert(Resolved(r));
    }
    next.run(req).await
}

/// A `Set-Cookie` header with the API's attributes (SameSite=Lax; Secure per settings).
fn set_cookie(
    st: &AppState,
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<u64>,
    http_only: bool,
) -> Option<HeaderValue> {
    let c = cookies::set_cookie(&st.settings, name, value, path, max_age, http_only);
    HeaderValue::from_str(&c).ok()
}

fn new_csrf() -> String {
    cookies::new_csrf()
}

/// Only admin pages are places to go back to after signing in (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/admin") && !n.starts_with("//") && !n.contains('\\') => {
            n.to_string()
        }
        _ => "/admin/".to_string(),
    }
}

#[derive(Deserialize)]
struct NextParam {
    next: Option<String>,
}

/// The login form. It carries a CSRF token too (set here if the browser has none), so
/// that another site cannot sign a browser into an account of its choosing.
async fn login_page(
    State(st): State<AppState>,
    parts: Parts,
    Query(q): Query<NextParam>,
) -> Result<Response, AdminError> {
    let existing = cookie(&parts, CSRF_COOKIE).filter(|c| !c.is_empty());
    let csrf = existing.clone().unwrap_or_else(new_csrf);
    let mut response = login_form(
        &st,
        &csrf,
        &safe_next(q.next.as_deref()),
        None,
        "",
        StatusCode::OK,
    )?;
    if existing.is_none()
        && let Some(c) = set_cookie(&st, CSRF_COOKIE, &csrf, "/", None, false)
    {
        response.headers_mut().append(SET_COOKIE, c);
    }
    Ok(response)
}

fn login_form(
    st: &AppState,
    csrf: &str,
    next: &str,
    error: Option<&str>,
    email: &str,
    status: StatusCode,
) -> Result<Response, AdminError> {
    render::page(
        status,
        "login.html",
        json!({
            "csrf": csrf,
            "next": next,
            "error": error,
            "email": email,
            "password_login": st.auth.password_login(),
            "title": "Sign in",
        }),
    )
}

async fn login(
    State(st): State<AppState>,
    parts: Parts,
    CsrfForm(form): CsrfForm,
) -> Result<Response, AdminError> {
    let next = safe_next(form.get("next"));
    let csrf = cookie(&parts, CSRF_COOKIE).unwrap_or_default();
    let api = unsigned_api(&parts)?;
    let email = form.get("email").unwrap_or_default();
    let refused =
        |message: &str, status| login_form(&st, &csrf, &next, Some(message), email, status);
    let cookies = if let Some(token) = form.get("token").filter(|t| !t.trim().is_empty()) {
        // A pasted bearer token: checked by the API before it becomes a cookie.
        let token = token.trim();
        match api.clone().with_token(token).get("/api/auth/me").await {
            Ok(_) => {
                let csrf = new_csrf();
                [
                    set_cookie(&st, ACCESS_COOKIE, token, "/", None, true),
                    set_cookie(&st, CSRF_COOKIE, &csrf, "/", None, false),
                ]
                .into_iter()
                .flatten()
                .collect()
            }
            Err(f) => return refused(&f.message, f.status),
        }
    } else {
        let body = json!({"email": email, "password": form.get("password").unwrap_or_default()});
        match api
            .call(Method::POST, "/api/auth/login", Some(&body), None)
            .await
        {
            Ok(answer) => answer.set_cookies,
            Err(f) => return refused(&f.message, f.status),
        }
    };
    let mut response = Redirect::to(&next).into_response();
    for c in cookies {
        response.headers_mut().append(SET_COOKIE, c);
    }
    Ok(response)
}

/// Signs out: the API revokes the refresh token and clears the session's cookies.
async fn logout(
    State(st): State<AppState>,
    parts: Parts,
    CsrfForm(_): CsrfForm,
) -> Result<Response, AdminError> {
    let mut api = unsigned_api(&parts)?;
    if let Some(token) = cookie(&parts, ACCESS_COOKIE).filter(|t| !t.is_empty()) {
        api = api.with_token(&token);
    }
    let refresh = cookie(&parts, REFRESH_COOKIE);
    let body = json!({"refresh_token": refresh});
    let cookies = match api
        .call(Method::POST, "/api/auth/logout", Some(&body), None)
        .await
    {
        Ok(answer) => answer.set_cookies,
        Err(f) => {
            tracing::warn!(code = %f.code, "admin logout: the API refused");
            cookies::cleared(&st.settings)
                .iter()
                .filter_map(|c| HeaderValue::from_str(c).ok())
                .collect()
        }
    };
    let mut response = Redirect::to("/admin/login").into_response();
    for c in cookies {
        response.headers_mut().append(SET_COOKIE, c);
    }
    Ok(response)
}
