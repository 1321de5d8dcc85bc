//! A fake OIDC issuer for tests: serves a JWK set over real HTTP and signs RS256 tokens
//! with the matching private keys (checked in under `keys/`, test-only).
//!
//! ```ignore
//! use bucketbase_testkit::fake_jwks;
//! let issuer = fake_jwks::FakeIssuer::start(&[("k1", fake_jwks::RSA1)]).await;
//! // configure the `jwks` provider with `issuer.jwks_url()`, then:
//! let token = issuer.token("k1", fake_jwks::RSA1, &claims);
//! issuer.serve(&[("k2", fake_jwks::RSA2)]); // rotate: the set now holds only k2
//! ```
//!
//! Depends only on axum, tokio, jsonwebtoken and serde_json.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// Private keys (PKCS#8 PEM) and the public half of the first.
pub const RSA1: &str = include_str!("keys/rsa1.pem");
pub const RSA1_PUBLIC: &str = include_str!("keys/rsa1.pub.pem");
pub const RSA2: &str = include_str!("keys/rsa2.pem");

#[derive(Clone, Default)]
struct Shared {
    /// The JWK set currently served.
    keys: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

/// The issuer; the server stops with the test's runtime.
pub struct FakeIssuer {
    url: String,
    shared: Shared,
}

impl FakeIssuer {
    /// Starts serving `GET /.well-known/jwks.json` with the public halves of `keys`
    /// (`(kid, private PEM)`).
    pub async fn start(keys: &[(&str, &str)]) -> Self {
        let shared = Shared::default();
        *shared.keys.lock().unwrap() = jwks(keys);
        let router = Router::new()
            .route("/.well-known/jwks.json", get(serve_jwks))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        FakeIssuer { url, shared }
    }

    /// The issuer's identifier (its base URL).
    pub fn issuer(&self) -> &str {
        &self.url
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.url)
    }

    /// Replaces the served key set (key rotation).
    pub fn serve(&self, keys: &[(&str, &str)]) {
        *self.shared.keys.lock().unwrap() = jwks(keys);
    }

    /// How many times the key set was fetched.
    pub fn fetches(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }

    /// An RS256 token over `claims`, with header `kid`, signed with `pem`.
    pub fn token(&self, kid: &str, pem: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

async fn serve_jwks(State(shared): State<Shared>) -> Json<Value> {
    shared.fetches.fetch_add(1, Ordering::SeqCst);
    let keys = shared.keys.lock().unwrap().clone();
    Json(keys)
}

/// A JWK set with the public halves of `(kid, private PEM)` keys.
fn jwks(keys: &[(&str, &str)]) -> Value {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(kid, pem)| {
            let key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
            let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
            jwk.common.key_id = Some((*kid).to_owned());
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            serde_json::to_value(jwk).unwrap()
        })
        .collect();
    json!({ "keys": keys })
}
