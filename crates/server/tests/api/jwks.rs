//! The `jwks` identity provider through the real server, against a fake OIDC issuer
//! serving its keys over HTTP: valid tokens pass; forged, stale and misaddressed ones
//! answer 401; a rotated key is picked up by refetching the key set.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bucketbase_server::ServerSettings;
use bucketbase_server::auth::jwks::{JwksConfig, JwksProvider};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

use crate::fake_jwks::{FakeIssuer, RSA1, RSA1_PUBLIC, RSA2};
use crate::support::*;

const AUDIENCE: &str = "bucketbase-api";

fn unix_now() -> u64 {
    now()()
}

pub(crate) fn claims(issuer: &str) -> Value {
    let t = unix_now();
    json!({"sub": "ext-42", "email": "ext@example.com", "role": "manager",
           "iss": issuer, "aud": AUDIENCE, "iat": t, "exp": t + 300})
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

/// `header.payload.` with no signature.
fn unsigned(header: &Value, claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.", part(header), part(claims))
}

pub(crate) async fn spawn_jwks_app(issuer: &FakeIssuer) -> TestApp {
    let mut config = JwksConfig::new(&issuer.jwks_url(), issuer.issuer(), AUDIENCE);
    // Let every unknown kid refetch at once (the default limits refetches to one per 10 s).
    config.min_refetch_interval = Duration::ZERO;
    let provider = JwksProvider::new(config, now()).unwrap();
    let settings = ServerSettings {
        cookie_secure: false,
        ..ServerSettings::default()
    };
    spawn_with(settings, Some(Arc::new(provider))).await
}

async fn me(app: &TestApp, token: &str) -> (u16, Value) {
    let (status, body, _) = app
        .call(Method::GET, "/api/auth/me", Some(token), None)
        .await;
    (status, body)
}

#[tokio::test]
async fn jwks_provider_accepts_valid_tokens_and_refuses_forgeries() {
    let issuer = FakeIssuer::start(&[("k1", RSA1)]).await;
    let app = spawn_jwks_app(&issuer).await;
    let good = claims(issuer.issuer());

    let token = issuer.token("k1", RSA1, &good);
    let (status, body) = me(&app, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["uuid"], "ext-42");
    assert_eq!(body["data"]["email"], "ext@example.com");
    assert_eq!(body["data"]["role"], "manager");
    assert_eq!(issuer.fetches(), 1);

    // The classic key-confusion attack: HS256 with the RSA public key as the HMAC secret.
    let mut hs256 = Header::new(Algorithm::HS256);
    hs256.kid = Some("k1".into());
    let confused = jsonwebtoken::encode(
        &hs256,
        &good,
        &EncodingKey::from_secret(RSA1_PUBLIC.as_bytes()),
    )
    .unwrap();
    // A tampered payload keeps a valid signature over the original one.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(with(good.clone(), "role", json!("SuperAdmin")).to_string());
    let tampered = parts.join(".");
    let t = unix_now();
    let expired = with(
        with(good.clone(), "iat", json!(t - 7200)),
        "exp",
        json!(t - 3600),
    );
    let cases = [
        (
            "alg none",
            unsigned(&json!({"alg": "none", "typ": "JWT", "kid": "k1"}), &good),
        ),
        ("HS256 signed with the public key", confused),
        ("expired", issuer.token("k1", RSA1, &expired)),
        (
            "wrong issuer",
            issuer.token(
                "k1",
                RSA1,
                &with(good.clone(), "iss", json!("https://evil.example")),
            ),
        ),
        (
            "wrong audience",
            issuer.token("k1", RSA1, &with(good.clone(), "aud", json!("other-api"))),
        ),
        ("tampered payload", tampered),
        ("unknown kid", issuer.token("k9", RSA2, &good)),
        ("known kid, other key", issuer.token("k1", RSA2, &good)),
        ("not a JWT", "not.a.jwt".to_owned()),
    ];
    for (what, token) in cases {
        let (status, body) = me(&app, &token).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}");
        assert!(!body.to_string().contains(&token), "{what}: token echoed");
    }
    // Only the unknown kid made the provider look for new keys.
    assert_eq!(issuer.fetches(), 2);
    // Still fine after all that.
    assert_eq!(me(&app, &token).await.0, 200);
}

#[tokio::test]
async fn jwks_provider_follows_key_rotation() {
    let issuer = FakeIssuer::start(&[("k1", RSA1)]).await;
    let app = spawn_jwks_app(&issuer).await;
    let good = claims(issuer.issuer());
    let old = issuer.token("k1", RSA1, &good);
    assert_eq!(me(&app, &old).await.0, 200);

    // The issuer rotates to a new key under a new kid.
    issuer.serve(&[("k2", RSA2)]);
    let new = issuer.token("k2", RSA2, &good);
    let (status, body) = me(&app, &new).await;
    assert_eq!(status, 200, "a new kid triggers a refetch: {body}");
    assert_eq!(issuer.fetches(), 2);
    // The refetched set replaced the old one: the retired key no longer verifies.
    assert_eq!(me(&app, &old).await.0, 401);
    assert_eq!(me(&app, &new).await.0, 200);
}
