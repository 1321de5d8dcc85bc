//! Refresh on any request (decision 0019): a browser whose access cookie is missing or
//! expired, but which still holds a refresh cookie, is refreshed on the request it makes,
//! served as the refreshed user, and handed the new cookies with that answer.
//!
//! One middleware does it for the JSON API (`/api/v1/...`, `/api/auth/me`) and the admin
//! UI (`/admin/...`) alike, so neither keeps its own refresh logic:
//!
//! 1. Only cookie sessions are renewed: a request with `Authorization` manages its own
//!    tokens, and one without a `refresh_token` cookie has nothing to renew with. Routes
//!    that do not ask who is calling (login, refresh, logout, assets, health) pass as they
//!    came.
//! 2. A valid access cookie is used as it is. Its principal is left in the request
//!    ([`Verified`]) so the extractor does not ask the provider a second time.
//! 3. Otherwise the refresh token is exchanged through the provider's shared refresh
//!    ([`super::refresh`]: parallel requests with one token make one exchange, so a
//!    rotating provider does not log the user out), the request's `Cookie` header is
//!    rewritten to carry the new tokens (everything downstream, including the change
//!    feed, sees an ordinary valid cookie session), and the new cookies are appended to
//!    the answer. The CSRF cookie keeps its value (pages already rendered keep working).
//! 4. A refusal leaves the request as it came: the extractor answers 401 (the admin
//!    redirects to its login page). The cookies are not cleared: the refusal may be a
//!    lost race with another process, whose answer must not be undone. An outage of the
//!    identity service is noted ([`RenewUnavailable`]) so the answer is 503, not 401.
//!
//! CSRF is not weakened: renewing changes only which token stands for the same user, and
//! every unsafe request is still checked (header or same origin) by the extractor or the
//! admin form before it acts. No token is ever logged.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::response::Response;

use super::{AuthError, Principal, cookies};
use crate::AppState;
use crate::access::{ACCESS_COOKIE, CSRF_COOKIE, REFRESH_COOKIE, cookie};

/// The principal of the request's access cookie, already checked by [`renew`].
#[derive(Clone)]
pub struct Verified {
    pub token: String,
    pub principal: Principal,
}

/// The request's session could not be renewed because the identity service is down.
#[derive(Clone)]
pub struct RenewUnavailable(pub String);

/// Does this route ask who is calling? (Public routes are not worth a refresh.)
fn asks_identity(path: &str) -> bool {
    path.starts_with("/api/v1/")
        || path == "/api/auth/me"
        || (path.starts_with("/admin/")
            && !path.starts_with("/admin/assets/")
            && path != "/admin/login"
            && path != "/admin/logout")
}

/// Renews the request's session if it needs it (a part of [`crate::frame`]): the
/// request as it goes on, and the cookies to set on its answer.
pub async fn renew(st: &AppState, req: Request) -> (Request, Vec<HeaderValue>) {
    let (mut parts, body) = req.into_parts();
    let set_cookies = renew_parts(st, &mut parts).await;
    (Request::from_parts(parts, body), set_cookies)
}

/// Sets the renewed session's cookies on the answer.
pub fn set_cookies(response: &mut Response, cookies: Vec<HeaderValue>) {
    for c in cookies {
        response.headers_mut().append(SET_COOKIE, c);
    }
}

fn non_empty(parts: &Parts, name: &str) -> Option<String> {
    cookie(parts, name).filter(|v| !v.is_empty())
}

/// Renews the session of `parts` if it needs it; returns the cookies to set.
async fn renew_parts(st: &AppState, parts: &mut Parts) -> Vec<HeaderValue> {
    if parts.headers.contains_key(AUTHORIZATION) || !asks_identity(parts.uri.path()) {
        return Vec::new();
    }
    let Some(refresh) = non_empty(parts, REFRESH_COOKIE) else {
        return Vec::new();
    };
    if let Some(token) = non_empty(parts, ACCESS_COOKIE) {
        match st.auth.authenticate(&token).await {
            Ok(principal) => {
                parts.extensions.insert(Verified { token, principal });
                return Vec::new();
            }
            Err(AuthError::InvalidToken(_)) => {}
            // The extractor asks again and answers for itself (503).
            Err(_) => return Vec::new(),
        }
    }
    let tokens = match st.auth.refresh(&refresh).await {
        Ok(tokens) => tokens,
        Err(AuthError::Unavailable(message)) => {
            parts.extensions.insert(RenewUnavailable(message));
            return Vec::new();
        }
        Err(e) => {
            tracing::debug!(reason = %e, "refresh cookie refused; the request goes on without a session");
            return Vec::new();
        }
    };
    let csrf = non_empty(parts, CSRF_COOKIE).unwrap_or_else(cookies::new_csrf);
    let refresh = tokens.refresh_token.clone().unwrap_or(refresh);
    let sent = [
        (ACCESS_COOKIE, tokens.access_token.as_str()),
        (REFRESH_COOKIE, refresh.as_str()),
        (CSRF_COOKIE, csrf.as_str()),
    ];
    let set: Option<Vec<HeaderValue>> = cookies::session(&st.settings, &tokens, &csrf)
        .into_iter()
        .map(|c| HeaderValue::from_str(&c).ok())
        .collect();
    let (Some(set), Some(header)) = (set, cookie_header(parts, &sent)) else {
        tracing::warn!("the identity provider issued a token that is not a cookie value");
        return Vec::new();
    };
    parts.headers.insert(COOKIE, header);
    parts.extensions.insert(Verified {
        token: tokens.access_token,
        principal: tokens.user,
    });
    set
}

/// The request's cookies with `replaced` put in place of (or beside) their namesakes.
fn cookie_header(parts: &Parts, replaced: &[(&str, &str)]) -> Option<HeaderValue> {
    let kept = parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|kv| {
            let name = kv.split_once('=').map_or(*kv, |(k, _)| k);
            !kv.is_empty() && !replaced.iter().any(|(n, _)| *n == name)
        })
        .map(str::to_owned);
    let new = replaced.iter().map(|(n, v)| format!("{n}={v}"));
    let all: Vec<String> = kept.chain(new).collect();
    HeaderValue::from_str(&all.join("; ")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_routes_renew() {
        for path in [
            "/api/v1/notes",
            "/api/v1/docsai/x",
            "/api/auth/me",
            "/admin/",
            "/admin/c/notes",
        ] {
            assert!(asks_identity(path), "{path}");
        }
        for path in [
            "/api/auth/login",
            "/api/auth/refresh",
            "/api/auth/logout",
            "/admin/login",
            "/admin/logout",
            "/admin/assets/admin.css",
            "/healthz",
            "/metrics",
            "/api/openapi.json",
            "/",
        ] {
            assert!(!asks_identity(path), "{path}");
        }
    }

    #[test]
    fn the_cookie_header_is_rewritten_in_place() {
        let (parts, ()) = Request::builder()
            .header(COOKIE, "a=1; access_token=old; refresh_token=r0")
            .header(COOKIE, "theme=dark")
            .body(())
            .unwrap()
            .into_parts();
        let header = cookie_header(&parts, &[("access_token", "new"), ("refresh_token", "r1")]);
        assert_eq!(
            header.unwrap().to_str().unwrap(),
            "a=1; theme=dark; access_token=new; refresh_token=r1"
        );
    }
}
