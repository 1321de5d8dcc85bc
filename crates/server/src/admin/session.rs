//! Signing in and out of the admin UI, and who the signed-in user is on each page.
//!
//! The session is the JSON API's own: `/admin/login` calls `POST /api/auth/login` in
//! process and hands its cookies to the browser (`access_token`: HttpOnly, SameSite=Lax,
//! Secure unless `auth.cookie_secure` is off for plain-http localhost; `csrf_token`, the
//! double-submit token every admin form echoes in a field). The API scopes its refresh
//! cookie to `/api/auth`; the admin keeps a copy scoped to `/admin` so that [`resolve`]
//! can renew an expired access token on the spot (both copies are rotated together).
//! Tokens are signed with the root's `_keys/token.key` and refresh tokens are records, so
//! a session survives a restart of the server on the same root.
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
use crate::access::{ACCESS_COOKIE, CSRF_COOKIE, Caller, cookie};
use crate::envelope::RequestId;

/// The admin's copy of the refresh token (the API's own is scoped to `/api/auth`).
const REFRESH_COOKIE: &str = "refresh_token";
const REFRESH_PATH: &str = "/admin";

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
/// required role, what the app adds to `auth`).
async fn caller(st: &AppState, token: &str) -> Result<Caller, Failure> {
    let (mut parts, ()) = Request::builder()
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(())
        .unwrap_or_default()
        .into_parts();
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

/// Finds the signed-in user of an admin request from the `access_token` cookie; when
/// that token is no longer valid and the admin's refresh cookie is there, renews the
/// session on the spot (the new cookies go out with this answer).
pub async fn resolve(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let csrf = cookie(&parts, CSRF_COOKIE).unwrap_or_default();
    let mut resolved = None;
    let mut set_cookies = Vec::new();
    if let Some(token) = cookie(&parts, ACCESS_COOKIE).filter(|t| !t.is_empty()) {
        match caller(&st, &token).await {
            Ok(caller) => {
                resolved = Some(Ok(Session {
                    caller,
                    token,
                    csrf: csrf.clone(),
                }))
            }
            Err(f) if f.status == StatusCode::UNAUTHORIZED => {}
            Err(f) => resolved = Some(Err(f)),
        }
    }
    if resolved.is_none()
        && let Some(refresh) = cookie(&parts, REFRESH_COOKIE).filter(|t| !t.is_empty())
        && let Ok(api) = unsigned_api(&parts)
    {
        let body = json!({"refresh_token": refresh});
        if let Ok(answer) = api
            .call(Method::POST, "/api/auth/refresh", Some(&body), None)
            .await
        {
            let token = answer.data["access_token"].as_str().unwrap_or_default();
            if let Ok(caller) = caller(&st, token).await {
                set_cookies = session_cookies(&st, &answer);
                resolved = Some(Ok(Session {
                    caller,
                    token: token.to_string(),
                    csrf: answer.data["csrf_token"]
                        .as_str()
                        .unwrap_or_default()
                        .into(),
                }));
            }
        }
    }
    req = Request::from_parts(parts, body);
    if let Some(r) = resolved {
        req.extensions_mut().insert(Resolved(r));
    }
    let mut response = next.run(req).await;
    for c in set_cookies {
        response.headers_mut().append(SET_COOKIE, c);
    }
    response
}

/// The API's cookies from a login or refresh answer, plus the admin's refresh copy.
fn session_cookies(st: &AppState, answer: &super::api::Answer) -> Vec<HeaderValue> {
    let mut out = answer.set_cookies.clone();
    if let Some(refresh) = answer.data["refresh_token"].as_str() {
        let age = st.settings.refresh_ttl_secs;
        out.extend(set_cookie(
            st,
            REFRESH_COOKIE,
            refresh,
            REFRESH_PATH,
            Some(age),
            true,
        ));
    }
    out
}

/// A `Set-Cookie` value with the API's attributes (SameSite=Lax; Secure per settings).
fn set_cookie(
    st: &AppState,
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<u64>,
    http_only: bool,
) -> Option<HeaderValue> {
    let mut c = format!("{name}={value}; Path={path}; SameSite=Lax");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if http_only {
        c.push_str("; HttpOnly");
    }
    if st.settings.cookie_secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).ok()
}

fn new_csrf() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
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
            Ok(answer) => session_cookies(&st, &answer),
            Err(f) => return refused(&f.message, f.status),
        }
    };
    let mut response = Redirect::to(&next).into_response();
    for c in cookies {
        response.headers_mut().append(SET_COOKIE, c);
    }
    Ok(response)
}

/// Signs out: the API revokes the refresh token and clears its cookies; the admin's
/// refresh copy is cleared too.
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
    let mut cookies = match api
        .call(Method::POST, "/api/auth/logout", Some(&body), None)
        .await
    {
        Ok(answer) => answer.set_cookies,
        Err(f) => {
            tracing::warn!(code = %f.code, "admin logout: the API refused");
            Vec::new()
        }
    };
    cookies.extend(set_cookie(
        &st,
        REFRESH_COOKIE,
        "",
        REFRESH_PATH,
        Some(0),
        true,
    ));
    cookies.extend(set_cookie(&st, ACCESS_COOKIE, "", "/", Some(0), true));
    let mut response = Redirect::to("/admin/login").into_response();
    for c in cookies {
        response.headers_mut().append(SET_COOKIE, c);
    }
    Ok(response)
}
