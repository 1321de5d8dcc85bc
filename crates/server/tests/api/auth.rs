//! Authentication over HTTP: login, cookies and CSRF, refresh rotation, token attacks,
//! rate limiting, and the graphql provider against a fake appointment360 service.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};

use crate::fake_identity::{FakeUser, spawn_fake_identity};
use crate::support::*;

#[tokio::test]
async fn login_me_refresh_logout() {
    let app = spawn_app().await;
    let r = app.login(ADMIN.0, ADMIN.1).await;
    assert_eq!(r.status(), 200);
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("access_token=")
            && c.contains("HttpOnly")
            && c.contains("SameSite=Lax")),
        "{cookies:?}"
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("refresh_token=") && c.contains("Path=/;")),
        "{cookies:?}"
    );
    let body: Value = r.json().await.unwrap();
    let data = &body["data"];
    assert_eq!(data["user"]["role"], "SuperAdmin");
    assert!(
        data.get("password_hash").is_none() && !body.to_string().contains("argon2"),
        "no secrets in answers"
    );
    let access = data["access_token"].as_str().unwrap();
    let (s, me, _) = app
        .call(Method::GET, "/api/auth/me", Some(access), None)
        .await;
    assert_eq!((s, me["data"]["email"].as_str()), (200, Some(ADMIN.0)));

    let (s, wrong, _) = app
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": ADMIN.0, "password": "nope"})),
        )
        .await;
    assert_eq!(
        (s, wrong["error"]["code"].as_str()),
        (401, Some("invalid_credentials"))
    );
    let (s, _, _) = app
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": "who@x", "password": "nope"})),
        )
        .await;
    assert_eq!(s, 401, "unknown emails look the same");

    // Refresh rotates. Within the grace window the old token gets the very same answer
    // (a page's parallel requests), never a second pair of tokens.
    let refresh = data["refresh_token"].as_str().unwrap().to_string();
    let (s, first, _) = app
        .call(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(s, 200, "{first}");
    let newer = first["data"]["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(newer, refresh);
    let (s, again, _) = app
        .call(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(
        again["data"]["refresh_token"],
        first["data"]["refresh_token"]
    );
    assert_eq!(again["data"]["access_token"], first["data"]["access_token"]);

    let (s, _, _) = app
        .call(Method::POST, "/api/auth/logout", None, Some(json!({})))
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn a_refresh_token_reused_after_the_grace_revokes_its_family() {
    let app = spawn_with(
        bucketbase_server::ServerSettings {
            cookie_secure: false,
            refresh_grace: std::time::Duration::ZERO,
            ..Default::default()
        },
        None,
    )
    .await;
    let body: Value = app.login(ADMIN.0, ADMIN.1).await.json().await.unwrap();
    let refresh = body["data"]["refresh_token"].as_str().unwrap().to_string();
    let exchange = |token: String| {
        let app = &app;
        async move {
            app.call(
                Method::POST,
                "/api/auth/refresh",
                None,
                Some(json!({"refresh_token": token})),
            )
            .await
        }
    };
    let (s, first, _) = exchange(refresh.clone()).await;
    assert_eq!(s, 200, "{first}");
    let newer = first["data"]["refresh_token"].as_str().unwrap().to_string();
    let (s, _, _) = exchange(refresh).await;
    assert_eq!(s, 401, "a rotated refresh token is refused");
    let (s, _, _) = exchange(newer).await;
    assert_eq!(s, 401, "reuse revoked the whole family");
}

fn forge(token: &str, edit: impl Fn(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    edit(&mut claims);
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    )
}

#[tokio::test]
async fn token_attacks_are_rejected_with_401() {
    let app = spawn_app().await;
    let staff = app.user("staff@example.com", "staff").await;
    let body: Value = app
        .login("staff@example.com", "a long enough password")
        .await
        .json()
        .await
        .unwrap();
    let refresh = body["data"]["refresh_token"].as_str().unwrap().to_string();
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = staff.split('.').nth(1).unwrap();
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "x", "email": "staff@example.com", "role": "SuperAdmin", "iat": 1, "exp": 2, "iss": "bucketbase", "aud": "bucketbase", "jti": "j", "typ": "access"}),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET),
    )
    .unwrap();
    let attacks = [
        ("alg none", format!("{none_header}.{payload}.")),
        (
            "tampered role",
            forge(&staff, |c| c["role"] = json!("SuperAdmin")),
        ),
        ("expired", expired),
        ("wrong issuer", forge(&staff, |c| c["iss"] = json!("evil"))),
        ("refresh token as access token", refresh),
        ("garbage", "not-a-token".to_string()),
    ];
    for (what, token) in attacks {
        let (s, body, _) = app
            .call(Method::GET, "/api/auth/me", Some(&token), None)
            .await;
        assert_eq!(s, 401, "{what}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}");
    }
    let (s, _, _) = app.call(Method::GET, "/api/auth/me", None, None).await;
    assert_eq!(s, 401, "no token");
}

#[tokio::test]
async fn cookie_sessions_need_csrf_for_writes() {
    let app = spawn_app().await;
    let body: Value = app.login(ADMIN.0, ADMIN.1).await.json().await.unwrap();
    let (access, csrf) = (
        body["data"]["access_token"].as_str().unwrap(),
        body["data"]["csrf_token"].as_str().unwrap(),
    );
    let cookie = format!("access_token={access}; csrf_token={csrf}");
    let def = notes_definition();
    let read = app
        .client
        .get(app.at("/api/auth/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200, "reads need no CSRF token");
    let forged = app
        .client
        .post(app.at("/api/v1/collections"))
        .header("cookie", &cookie)
        .json(&def)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "a cross-site write is refused");
    let with_token = app
        .client
        .post(app.at("/api/v1/collections"))
        .header("cookie", &cookie)
        .header("x-csrf-token", csrf)
        .json(&def)
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), 200);
}

#[tokio::test]
async fn login_is_rate_limited() {
    let app = spawn_with(
        bucketbase_server::ServerSettings {
            cookie_secure: false,
            login_per_minute: 3,
            ..Default::default()
        },
        None,
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(app.login(ADMIN.0, "wrong").await.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
}

#[tokio::test]
async fn graphql_provider_through_the_server() {
    let idp = spawn_fake_identity(vec![
        FakeUser::new("uuid-root", "root@corp", "pw-root", "SuperAdmin"),
        FakeUser::new("uuid-ann", "ann@corp", "pw-ann", "staff"),
    ])
    .await;
    let config = bucketbase_server::auth::graphql::GraphqlConfig {
        endpoint: idp.url().to_string(),
        ..Default::default()
    };
    let provider =
        Arc::new(bucketbase_server::auth::graphql::GraphqlProvider::new(config).unwrap());
    let settings = bucketbase_server::ServerSettings {
        cookie_secure: false,
        require_role: Some("SuperAdmin".into()),
        ..Default::default()
    };
    let app = spawn_with(settings, Some(provider)).await;
    let root = app.token("root@corp", "pw-root").await;
    let ann = idp.issue_token("ann@corp");
    assert_eq!(
        &root[..20],
        &ann[..20],
        "JWT prefixes are shared across users"
    );
    let (s, me, _) = app
        .call(Method::GET, "/api/auth/me", Some(&root), None)
        .await;
    assert_eq!((s, me["data"]["role"].as_str()), (200, Some("SuperAdmin")));
    // Another user's token must not ride on the cached SuperAdmin check.
    let (s, _, _) = app
        .call(Method::GET, "/api/auth/me", Some(&ann), None)
        .await;
    assert_eq!(s, 403, "staff is not SuperAdmin: docsai is SuperAdmin-only");
    // The service down: uncached tokens get 503, never open access.
    idp.set_down(true);
    let fresh = idp.issue_token("root@corp");
    let (s, body, _) = app
        .call(Method::GET, "/api/auth/me", Some(&fresh), None)
        .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (503, Some("auth_unavailable"))
    );
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let settings = bucketbase_server::ServerSettings {
        cookie_secure: false,
        cors_origins: vec!["https://app.example.com".parse().unwrap()],
        ..Default::default()
    };
    let app = spawn_with(settings, None).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.at("/api/v1/notes"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .unwrap(),
        "https://app.example.com"
    );
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-credentials")
            .unwrap(),
        "true"
    );
    let other = preflight("https://evil.example.com").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn csrf_origin_must_match_scheme_host_and_port() {
    let app = spawn_app().await;
    let body: Value = app.login(ADMIN.0, ADMIN.1).await.json().await.unwrap();
    let access = body["data"]["access_token"].as_str().unwrap();
    let cookie = format!("access_token={access}");
    let host = app.url.trim_start_matches("http://").to_string();
    let write = |origin: String| {
        app.client
            .post(app.at("/api/v1/collections"))
            .header("cookie", &cookie)
            .header("origin", origin)
            .json(&json!({"name": "notes"}))
            .send()
    };
    for origin in [
        format!("evil://{host}"),
        format!("https://{host}"),
        format!("http://{host}.evil.example"),
        "null".to_string(),
    ] {
        let r = write(origin.clone()).await.unwrap();
        assert_eq!(r.status(), 403, "{origin}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["error"]["code"], "csrf_failed", "{origin}");
    }
    let same = write(format!("http://{host}")).await.unwrap();
    assert_eq!(same.status(), 200, "the server's own origin");
}

#[tokio::test]
async fn graphql_logout_forgets_the_cached_token() {
    let idp = spawn_fake_identity(vec![FakeUser::new(
        "uuid-root",
        "root@corp",
        "pw-root",
        "SuperAdmin",
    )])
    .await;
    let config = bucketbase_server::auth::graphql::GraphqlConfig {
        endpoint: idp.url().to_string(),
        ..Default::default()
    };
    let provider =
        Arc::new(bucketbase_server::auth::graphql::GraphqlProvider::new(config).unwrap());
    let settings = bucketbase_server::ServerSettings {
        cookie_secure: false,
        ..Default::default()
    };
    let app = spawn_with(settings, Some(provider)).await;
    let token = app.token("root@corp", "pw-root").await;
    let (s, _, _) = app
        .call(Method::GET, "/api/auth/me", Some(&token), None)
        .await;
    assert_eq!(
        (s, idp.calls()),
        (200, 0),
        "served from the cache login filled"
    );

    // The service ends the session; our logout must not keep honouring the token.
    idp.revoke(&token);
    let (s, _, _) = app
        .call(
            Method::POST,
            "/api/auth/logout",
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, body, _) = app
        .call(Method::GET, "/api/auth/me", Some(&token), None)
        .await;
    assert_eq!(idp.calls(), 1, "re-checked with the service, not the cache");
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
}
