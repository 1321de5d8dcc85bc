//! Refresh on any request (decision 0019): an expired access cookie with a refresh cookie
//! is refreshed on the request itself, for the API and the admin UI alike, once for a
//! page's parallel requests, with CSRF still required on writes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

/// A browser's cookies after login.
#[derive(Clone)]
pub(crate) struct Cookies {
    pub access: String,
    pub refresh: String,
    pub csrf: String,
}

impl Cookies {
    pub(crate) fn header(&self) -> String {
        let mut parts = Vec::new();
        for (name, value) in [
            ("access_token", &self.access),
            ("refresh_token", &self.refresh),
            ("csrf_token", &self.csrf),
        ] {
            if !value.is_empty() {
                parts.push(format!("{name}={value}"));
            }
        }
        parts.join("; ")
    }
}

pub(crate) async fn logged_in(app: &TestApp, email: &str, password: &str) -> Cookies {
    let r = app.login(email, password).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let data = &body["data"];
    let s = |k: &str| data[k].as_str().unwrap().to_string();
    Cookies {
        access: s("access_token"),
        refresh: s("refresh_token"),
        csrf: s("csrf_token"),
    }
}

/// The same access token, expired an hour ago, signed with the server's key.
fn expired(access: &str) -> String {
    let payload = access.split('.').nth(1).unwrap();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let now = now()() as i64;
    claims["iat"] = json!(now - 7200);
    claims["exp"] = json!(now - 3600);
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET),
    )
    .unwrap()
}

pub(crate) struct Answer {
    pub status: u16,
    pub body: String,
    pub set_cookies: Vec<String>,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The `Set-Cookie` of `name` with a value (not a clearing one).
    pub(crate) fn cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies.iter().map(String::as_str).find(|c| {
            c.strip_prefix(name)
                .and_then(|r| r.strip_prefix('='))
                .is_some_and(|r| !r.starts_with(';'))
        })
    }

    pub(crate) fn cookie_value(&self, name: &str) -> Option<String> {
        let c = self.cookie(name)?;
        let value = c.split(';').next()?.split_once('=')?.1;
        Some(value.to_string())
    }
}

pub(crate) async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    cookies: &Cookies,
    extra: &[(&str, &str)],
    body: Option<Value>,
) -> Answer {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = client
        .request(method, app.at(path))
        .header("cookie", cookies.header());
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let set_cookies = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    Answer {
        status,
        body: r.text().await.unwrap(),
        set_cookies,
    }
}

#[tokio::test]
async fn an_expired_access_cookie_is_refreshed_on_an_api_request() {
    let app = spawn_app().await;
    let mut c = logged_in(&app, ADMIN.0, ADMIN.1).await;
    c.access = expired(&c.access);
    let a = send(&app, Method::GET, "/api/auth/me", &c, &[], None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json()["data"]["email"],
        ADMIN.0,
        "served as the refreshed user"
    );
    let access = a.cookie("access_token").expect("a new access cookie");
    assert!(
        access.contains("HttpOnly") && access.contains("Path=/;"),
        "{access}"
    );
    let refresh = a.cookie("refresh_token").expect("a new refresh cookie");
    for attribute in ["Path=/;", "HttpOnly", "SameSite=Lax"] {
        assert!(refresh.contains(attribute), "{refresh}");
    }
    let rotated = a.cookie_value("refresh_token").unwrap();
    assert_ne!(rotated, c.refresh, "the refresh token rotates");
    assert_eq!(a.cookie_value("csrf_token").unwrap(), c.csrf, "CSRF kept");
    // Older copies scoped to /api/auth and /admin are cleared.
    for path in ["/api/auth", "/admin"] {
        assert!(
            a.set_cookies
                .iter()
                .any(|s| s.starts_with("refresh_token=;") && s.contains(&format!("Path={path};"))),
            "{:?}",
            a.set_cookies
        );
    }
    // The new cookies work as they are; a missing access cookie is refreshed too.
    c.access = a.cookie_value("access_token").unwrap();
    c.refresh = rotated;
    let a = send(&app, Method::GET, "/api/v1/collections", &c, &[], None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.cookie("refresh_token").is_none(),
        "a valid cookie is not refreshed"
    );
    c.access.clear();
    let a = send(&app, Method::GET, "/api/v1/collections", &c, &[], None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.cookie("access_token").is_some());
}

#[tokio::test]
async fn the_login_cookie_is_scoped_to_the_whole_site() {
    let app = spawn_app().await;
    let r = app.login(ADMIN.0, ADMIN.1).await;
    let set: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let refresh = set
        .iter()
        .find(|c| c.starts_with("refresh_token=") && !c.starts_with("refresh_token=;"))
        .unwrap();
    assert!(
        refresh.contains("Path=/;") && refresh.contains("HttpOnly"),
        "{refresh}"
    );
}

#[tokio::test]
async fn without_a_refresh_cookie_an_expired_session_is_401() {
    let app = spawn_app().await;
    let mut c = logged_in(&app, ADMIN.0, ADMIN.1).await;
    c.access = expired(&c.access);
    c.refresh.clear();
    let a = send(&app, Method::GET, "/api/v1/collections", &c, &[], None).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(a.json()["error"]["code"], "unauthorized");
    // A refresh cookie the provider refuses: 401 as well, in the envelope.
    c.refresh = "not-a-refresh-token".into();
    let a = send(&app, Method::GET, "/api/v1/collections", &c, &[], None).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(a.json()["success"], false);
    assert!(a.cookie("access_token").is_none());
}

#[tokio::test]
async fn parallel_requests_with_one_refresh_cookie_keep_the_session() {
    let app = spawn_app().await;
    let mut c = logged_in(&app, ADMIN.0, ADMIN.1).await;
    c.access = expired(&c.access);
    let answers = join_all((0..8).map(|i| {
        let path = if i % 2 == 0 {
            "/api/v1/collections"
        } else {
            "/admin/"
        };
        send(&app, Method::GET, path, &c, &[], None)
    }))
    .await;
    let mut rotated = Vec::new();
    for a in &answers {
        assert_eq!(a.status, 200, "{}", a.body);
        rotated.push(a.cookie_value("refresh_token").expect("new cookies"));
    }
    rotated.dedup();
    assert_eq!(rotated.len(), 1, "one refresh for all of them");
    // The local provider saw no reuse: the session lives on with the new token.
    c.access.clear();
    c.refresh = rotated.pop().unwrap();
    let a = send(&app, Method::GET, "/api/auth/me", &c, &[], None).await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn a_renewed_write_still_needs_its_csrf_proof() {
    let app = spawn_app().await;
    let mut c = logged_in(&app, ADMIN.0, ADMIN.1).await;
    c.access = expired(&c.access);
    let def = notes_definition();
    let a = send(
        &app,
        Method::POST,
        "/api/v1/collections",
        &c,
        &[],
        Some(def.clone()),
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(a.json()["error"]["code"], "csrf_failed");
    let (_, list, _) = app
        .call(
            Method::GET,
            "/api/v1/collections",
            Some(&app.admin().await),
            None,
        )
        .await;
    assert!(
        !list.to_string().contains("\"notes\""),
        "nothing was defined"
    );
    // The refused request renewed the session; the browser keeps the new cookies.
    c.access = a.cookie_value("access_token").unwrap();
    c.refresh = a.cookie_value("refresh_token").unwrap();
    let csrf = c.csrf.clone();
    let a = send(
        &app,
        Method::POST,
        "/api/v1/collections",
        &c,
        &[("x-csrf-token", &csrf)],
        Some(def),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
}
