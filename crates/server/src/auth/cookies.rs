//! The session cookies, written in one place: login, refresh, the refresh on any request
//! ([`super::renew`]), logout and the admin UI all hand out the same three.
//!
//! - `access_token`: HttpOnly, `Path=/`, lives as long as the token.
//! - `refresh_token`: HttpOnly, `Path=/` (decision 0019): a browser sends it with every
//!   request, so that any request with an expired access token can be refreshed on the
//!   spot. It was scoped to `/api/auth` (and the admin UI kept a copy at `/admin`); those
//!   older copies are cleared whenever a new one is set, since a browser would send a stale
//!   copy first (longer paths first) and a rotated token presented again is reuse.
//! - `csrf_token`: readable by the page (double submit), `Path=/`.
//!
//! All are `SameSite=Lax`, and `Secure` unless `auth.cookie_secure` is off (plain-http
//! localhost).

use crate::ServerSettings;
use crate::access::{ACCESS_COOKIE, CSRF_COOKIE, REFRESH_COOKIE};
use crate::auth::Tokens;

/// Where earlier versions scoped the refresh cookie; cleared when a new one is set.
const LEGACY_REFRESH_PATHS: [&str; 2] = ["/api/auth", "/admin"];

/// One `Set-Cookie` value. `max_age: None` makes a session cookie.
pub fn set_cookie(
    settings: &ServerSettings,
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<u64>,
    http_only: bool,
) -> String {
    let mut c = format!("{name}={value}; Path={path}");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c.push_str("; SameSite=Lax");
    if http_only {
        c.push_str("; HttpOnly");
    }
    if settings.cookie_secure {
        c.push_str("; Secure");
    }
    c
}

/// The cookies of a session that just began or was refreshed.
pub fn session(settings: &ServerSettings, tokens: &Tokens, csrf: &str) -> Vec<String> {
    let refresh_age = settings.refresh_ttl_secs;
    let access = &tokens.access_token;
    let mut out = vec![
        set_cookie(
            settings,
            ACCESS_COOKIE,
            access,
            "/",
            Some(tokens.expires_in),
            true,
        ),
        set_cookie(settings, CSRF_COOKIE, csrf, "/", Some(refresh_age), false),
    ];
    if let Some(refresh) = &tokens.refresh_token {
        out.push(set_cookie(
            settings,
            REFRESH_COOKIE,
            refresh,
            "/",
            Some(refresh_age),
            true,
        ));
        out.extend(legacy_refresh_cleared(settings));
    }
    out
}

/// The cookies that end a session in the browser.
pub fn cleared(settings: &ServerSettings) -> Vec<String> {
    let mut out = vec![
        set_cookie(settings, ACCESS_COOKIE, "", "/", Some(0), true),
        set_cookie(settings, REFRESH_COOKIE, "", "/", Some(0), true),
        set_cookie(settings, CSRF_COOKIE, "", "/", Some(0), false),
    ];
    out.extend(legacy_refresh_cleared(settings));
    out
}

fn legacy_refresh_cleared(settings: &ServerSettings) -> impl Iterator<Item = String> + '_ {
    LEGACY_REFRESH_PATHS
        .iter()
        .map(|path| set_cookie(settings, REFRESH_COOKIE, "", path, Some(0), true))
}

/// A fresh CSRF token: 256 random bits, hex.
pub fn new_csrf() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
