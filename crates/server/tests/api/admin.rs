//! The admin UI's server side, over real HTTP: the CSP on every admin answer, login and
//! logout on the API's cookie session (local, graphql, jwks), the CSRF check of every
//! admin form, and an expired access cookie renewed on the spot. Pages: admin_pages.rs;
//! the pages in a real browser: tests/ui.

use std::collections::HashMap;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use serde_json::json;

use crate::support::{ADMIN, TestApp, notes_definition, spawn_app};

/// A browser without redirects: keeps the cookies it is given at `Path=/`, by name.
pub(crate) struct Browser<'a> {
    app: &'a TestApp,
    pub(crate) client: reqwest::Client,
    pub(crate) cookies: HashMap<String, String>,
}

fn form(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.chars()
            .map(|c| match c {
                ' ' => "+".to_string(),
                c if c.is_ascii_alphanumeric() || "-_.@/".contains(c) => c.to_string(),
                c => format!("%{:02X}", c as u32),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl<'a> Browser<'a> {
    pub(crate) fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, r: &reqwest::Response) {
        for c in r.headers().get_all(SET_COOKIE) {
            let c = c.to_str().unwrap();
            let (kv, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            // Every cookie of the session lives at `/`; others (the clearing of older
            // copies at other paths) are not this jar's.
            if attrs
                .split(';')
                .any(|a| a.trim().starts_with("Path=") && a.trim() != "Path=/")
            {
                continue;
            }
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
    }

    pub(crate) async fn get(
        &mut self,
        path: &str,
    ) -> (StatusCode, String, reqwest::header::HeaderMap) {
        let r = self
            .client
            .get(self.app.at(path))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&r);
        let (status, headers) = (r.status(), r.headers().clone());
        (status, r.text().await.unwrap(), headers)
    }

    pub(crate) async fn post(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (StatusCode, String, reqwest::header::HeaderMap) {
        let mut req = self
            .client
            .post(self.app.at(path))
            .header(COOKIE, self.cookie_header())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(fields));
        if let Some(o) = origin {
            req = req.header(ORIGIN, o);
        }
        let r = req.send().await.unwrap();
        self.keep(&r);
        let (status, headers) = (r.status(), r.headers().clone());
        (status, r.text().await.unwrap(), headers)
    }

    pub(crate) fn csrf(&self) -> String {
        self.cookies.get("csrf_token").cloned().unwrap_or_default()
    }

    pub(crate) async fn login(&mut self, email: &str, password: &str) -> (StatusCode, String) {
        self.get("/admin/login").await;
        let csrf = self.csrf();
        let (status, body, headers) = self
            .post(
                "/admin/login",
                &[
                    ("csrf_token", &csrf),
                    ("next", "/admin/"),
                    ("email", email),
                    ("password", password),
                ],
                None,
            )
            .await;
        let location = headers
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_string());
        (status, location.unwrap_or(body))
    }
}

pub(crate) fn location(headers: &reqwest::header::HeaderMap) -> &str {
    headers.get(LOCATION).unwrap().to_str().unwrap()
}

#[tokio::test]
async fn every_admin_answer_carries_a_strict_csp() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    let (status, _, headers) = b.get("/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/admin/");
    for path in [
        "/admin/login",
        "/admin/",
        "/admin/assets/admin.css",
        "/admin/assets/htmx-2.0.11.min.js",
        "/admin/no-such-page",
    ] {
        let (_, _, headers) = b.get(path).await;
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert_eq!(csp, bucketbase_server::admin::CSP, "{path}");
        assert!(
            csp.contains("default-src 'self'") && !csp.contains("unsafe"),
            "{path}"
        );
    }
    let (status, body, headers) = b.get("/admin/login").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    // No inline script or style for the policy to refuse.
    assert!(!body.contains("<style") && !body.contains(" style="));
    assert!(!body.contains("<script>") && !body.contains("onclick"));
    // The API's answers are unchanged: JSON, in the envelope.
    let (status, body, _) = b.get("/api/nothing/here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["success"],
        false
    );
}

#[tokio::test]
async fn login_sets_the_api_session_and_logout_ends_it() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    let (status, _, headers) = b.get("/admin/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/admin/login?next=%2Fadmin%2F");

    let (status, body) = b.login(ADMIN.0, "not the password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("invalid email or password"), "{body}");

    let (status, target) = b.login(ADMIN.0, ADMIN.1).await;
    assert_eq!(
        (status, target.as_str()),
        (StatusCode::SEE_OTHER, "/admin/")
    );
    let (status, body, _) = b.get("/admin/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Dashboard") && body.contains(ADMIN.0));
    // The session is the API's: the same cookie works there.
    let r = b
        .client
        .get(app.at("/api/auth/me"))
        .header(COOKIE, b.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let refresh = b.cookies["refresh_token"].clone();
    let csrf = b.csrf();
    let (status, _, headers) = b
        .post("/admin/logout", &[("csrf_token", &csrf)], None)
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/admin/login");
    assert!(!b.cookies.contains_key("access_token") && !b.cookies.contains_key("refresh_token"));
    let (status, _, _) = b.get("/admin/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // The refresh token was revoked, not only forgotten by the browser.
    let (status, _, _) = app
        .call(
            reqwest::Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn admin_forms_need_the_csrf_token_or_a_same_origin() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.define(&admin, notes_definition()).await;
    let (_, note, _) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/notes",
            Some(&admin),
            Some(json!({"title": "Keep me"})),
        )
        .await;
    let id = note["data"]["id"].as_str().unwrap().to_string();
    let mut b = Browser::new(&app);

    // Even the login form needs it (no signing a browser into someone's account).
    let (status, body, _) = b
        .post(
            "/admin/login",
            &[("email", ADMIN.0), ("password", ADMIN.1)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("csrf_failed"), "{body}");
    assert!(!b.cookies.contains_key("access_token"));

    b.login(ADMIN.0, ADMIN.1).await;
    let path = format!("/admin/c/notes/{id}/delete");
    for (fields, origin) in [
        (vec![], None),
        (vec![("csrf_token", "forged")], None),
        (vec![], Some("http://evil.example")),
    ] {
        let (status, body, headers) = b.post(&path, &fields, origin).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{fields:?} {origin:?}");
        assert!(
            headers[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(body.contains("csrf_failed"), "{body}");
    }
    let (status, record, _) = app
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/notes/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        record["data"]["deleted_at"].is_null(),
        "refused forms changed nothing"
    );

    let csrf = b.csrf();
    let (status, _, headers) = b.post(&path, &[("csrf_token", &csrf)], None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        location(&headers),
        format!("/admin/c/notes/{id}?notice=deleted")
    );
    let (_, record, _) = app
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/notes/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert!(!record["data"]["deleted_at"].is_null());
}

#[tokio::test]
async fn an_expired_access_cookie_is_renewed_from_the_refresh_cookie() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    b.login(ADMIN.0, ADMIN.1).await;
    let old = b.cookies["refresh_token"].clone();
    b.cookies
        .insert("access_token".into(), "expired.or.forged".into());
    let (status, body, headers) = b.get("/admin/").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Dashboard"));
    let renewed: Vec<&str> = headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|c| c.to_str().unwrap())
        .collect();
    assert!(
        renewed
            .iter()
            .any(|c| c.starts_with("access_token=") && c.contains("HttpOnly"))
    );
    assert!(
        renewed
            .iter()
            .any(|c| c.starts_with("refresh_token=") && c.contains("Path=/;"))
    );
    assert_ne!(b.cookies["refresh_token"], old, "the refresh token rotates");
    // Without a refresh cookie, a bad access cookie means signing in again.
    b.cookies.remove("refresh_token");
    b.cookies
        .insert("access_token".into(), "expired.or.forged".into());
    let (status, _, _) = b.get("/admin/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn with_jwks_the_login_page_takes_a_bearer_token_checked_first() {
    use crate::fake_jwks::{FakeIssuer, RSA1};
    let issuer = FakeIssuer::start(&[("k1", RSA1)]).await;
    let app = crate::jwks::spawn_jwks_app(&issuer).await;
    let mut b = Browser::new(&app);
    let (status, body, _) = b.get("/admin/login").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("Bearer token") && !body.contains("type=\"password\""),
        "{body}"
    );
    let csrf = b.csrf();

    let forged = issuer.token("k1", RSA1, &json!({"iss": "someone else"}));
    let (status, body, _) = b
        .post(
            "/admin/login",
            &[("csrf_token", &csrf), ("token", &forged)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("invalid token"), "{body}");
    assert!(
        !b.cookies.contains_key("access_token"),
        "no cookie for a bad token"
    );

    let token = issuer.token("k1", RSA1, &crate::jwks::claims(issuer.issuer()));
    let (status, _, headers) = b
        .post(
            "/admin/login",
            &[("csrf_token", &csrf), ("token", &token)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/admin/");
    assert_eq!(b.cookies["access_token"], token);
    let (status, body, _) = b.get("/admin/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("ext@example.com (manager)"), "{body}");
}

#[tokio::test]
async fn with_graphql_the_login_form_signs_in_through_the_remote_service() {
    use crate::fake_identity::{FakeUser, spawn_fake_identity};
    let idp = spawn_fake_identity(vec![
        FakeUser::new("uuid-root", "root@corp", "pw-root", "SuperAdmin"),
        FakeUser::new("uuid-ann", "ann@corp", "pw-ann", "staff"),
    ])
    .await;
    let config = bucketbase_server::auth::graphql::GraphqlConfig {
        endpoint: idp.url().to_string(),
        ..Default::default()
    };
    let provider = bucketbase_server::auth::graphql::GraphqlProvider::new(config).unwrap();
    let settings = bucketbase_server::ServerSettings {
        cookie_secure: false,
        require_role: Some("SuperAdmin".into()),
        ..Default::default()
    };
    let app = crate::support::spawn_with(settings, Some(std::sync::Arc::new(provider))).await;

    let mut root = Browser::new(&app);
    let (status, target) = root.login("root@corp", "pw-root").await;
    assert_eq!(
        (status, target.as_str()),
        (StatusCode::SEE_OTHER, "/admin/")
    );
    let (status, body, _) = root.get("/admin/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("root@corp (SuperAdmin)"), "{body}");

    let (status, _) = root.login("root@corp", "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The server's required role holds for the pages as for the API.
    let mut ann = Browser::new(&app);
    ann.login("ann@corp", "pw-ann").await;
    let (status, body, _) = ann.get("/admin/").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("requires the SuperAdmin role"), "{body}");
}
