//! `/api/auth/*`: login, refresh, logout, me. Tokens go back in the body (for API
//! clients) and in cookies (for the browser UI): `access_token` and `refresh_token` are
//! HttpOnly, SameSite=Lax, Secure unless configured off for plain-http localhost, both
//! `Path=/` (any request refreshes an expired session: `auth::renew`, decision 0019).
//! `csrf_token` is readable by the page and must be echoed in `X-CSRF-Token` on
//! cookie-authenticated writes. Cookies are written by `auth::cookies`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::routing::{get, post};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::access::{Caller, REFRESH_COOKIE, access_token, cookie};
use crate::auth::{Tokens, cookies};
use crate::contract::Resource;
use crate::envelope::{Envelope, JsonBody, RequestId};
use crate::error::{ApiError, Result};
use crate::openapi::{any, json_body, ok, operation, public, schema_ref};

pub fn router() -> Router<AppState> {
    resource().into_router()
}

/// The routes with their OpenAPI operations.
pub fn resource() -> Resource {
    use utoipa::openapi::path::HttpMethod::{Get, Post};
    Resource::new()
        .route(
            "/api/auth/login",
            post(login),
            [(
                Post,
                public(
                    operation(
                        "auth.login",
                        "auth",
                        "Log in (sets cookies, returns tokens)",
                        &[
                            "BadRequest",
                            "Unauthorized",
                            "TooManyRequests",
                            "Unavailable",
                        ],
                    )
                    .request_body(json_body(schema_ref("LoginRequest"), "Credentials"))
                    .response("200", ok("Tokens and the user", schema_ref("Tokens"))),
                ),
            )],
        )
        .route(
            "/api/auth/refresh",
            post(refresh),
            [(
                Post,
                public(
                    operation(
                        "auth.refresh",
                        "auth",
                        "Exchange a refresh token for new tokens (rotates it)",
                        &["BadRequest", "Unauthorized", "Unavailable"],
                    )
                    .request_body(json_body(
                        schema_ref("RefreshRequest"),
                        "The refresh token, unless sent as a cookie",
                    ))
                    .response("200", ok("New tokens", schema_ref("Tokens"))),
                ),
            )],
        )
        .route(
            "/api/auth/logout",
            post(logout),
            [(
                Post,
                public(
                    operation(
                        "auth.logout",
                        "auth",
                        "Log out (revokes the refresh token, clears cookies)",
                        &["BadRequest"],
                    )
                    .response("200", ok("Logged out", any())),
                ),
            )],
        )
        .route(
            "/api/auth/me",
            get(me),
            [(
                Get,
                operation(
                    "auth.me",
                    "auth",
                    "Who the token belongs to",
                    &["Unauthorized", "Forbidden", "Unavailable"],
                )
                .response("200", ok("The caller", schema_ref("Principal")))
                .build(),
            )],
        )
}

/// A fixed-window counter of login attempts per client address.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl LoginLimiter {
    /// Counts an attempt; false when the address is over `per_minute`.
    pub fn allow(&self, ip: IpAddr, per_minute: u32) -> bool {
        let now = Instant::now();
        let mut windows = self.windows.lock();
        if windows.len() > 100_000 {
            windows.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let entry = windows.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= per_minute
    }
}

fn with_session(st: &AppState, req: &RequestId, tokens: Tokens) -> Envelope {
    let csrf = cookies::new_csrf();
    let mut out = Envelope::ok(
        req,
        json!({
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "expires_in": tokens.expires_in,
            "token_type": "Bearer",
            "user": tokens.user,
            "csrf_token": csrf,
        }),
    );
    for c in cookies::session(&st.settings, &tokens, &csrf) {
        out = out.header(SET_COOKIE, &c);
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
}

/// The client's address, when the server was started with connection info.
struct ClientIp(IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(a)| a.ip());
        Ok(ClientIp(ip))
    }
}

async fn login(
    State(st): State<AppState>,
    req: RequestId,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Envelope> {
    if !st.login_limiter.allow(ip, st.settings.login_per_minute) {
        return Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many login attempts; try again in a minute",
        ));
    }
    let tokens = st
        .auth
        .login(&body.email, &body.password)
        .await
        .map_err(ApiError::from)?;
    Ok(with_session(&st, &req, tokens))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: Option<String>,
}

/// The refresh token from its cookie.
struct RefreshCookie(Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RefreshCookie {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RefreshCookie(cookie(parts, REFRESH_COOKIE)))
    }
}

/// The refresh token from an optional JSON body `{"refresh_token": ...}`, else the cookie.
fn refresh_token(body: &[u8], from_cookie: Option<String>) -> Result<Option<String>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(from_cookie);
    }
    let parsed: RefreshBody =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    Ok(parsed.refresh_token.or(from_cookie))
}

async fn refresh(
    State(st): State<AppState>,
    req: RequestId,
    RefreshCookie(from_cookie): RefreshCookie,
    body: axum::body::Bytes,
) -> Result<Envelope> {
    let token = refresh_token(&body, from_cookie)?
        .ok_or_else(|| ApiError::unauthorized("missing refresh token"))?;
    let tokens = st.auth.refresh(&token).await.map_err(ApiError::from)?;
    Ok(with_session(&st, &req, tokens))
}

/// The access token a request carries (cookie or bearer), unverified: logout hands it to
/// the provider so that a cached check of it is forgotten.
struct AccessToken(Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for AccessToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(AccessToken(access_token(parts)))
    }
}

async fn logout(
    State(st): State<AppState>,
    req: RequestId,
    AccessToken(access): AccessToken,
    RefreshCookie(from_cookie): RefreshCookie,
    body: axum::body::Bytes,
) -> Result<Envelope> {
    let token = refresh_token(&body, from_cookie)?;
    st.auth
        .logout(access.as_deref(), token.as_deref())
        .await
        .map_err(ApiError::from)?;
    let mut out = Envelope::ok(&req, json!({"logged_out": true}));
    for c in cookies::cleared(&st.settings) {
        out = out.header(SET_COOKIE, &c);
    }
    Ok(out)
}

async fn me(req: RequestId, caller: Caller) -> Envelope {
    Envelope::ok(&req, caller.principal)
}
