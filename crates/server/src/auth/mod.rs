//! Authentication: who is calling.
//!
//! Identity providers are chosen by configuration (DESIGN.md §4): `local` (users stored
//! as records, argon2id, short-lived access JWTs and rotating refresh tokens), `graphql`
//! (an appointment360-compatible remote service) and `jwks` (any OIDC issuer). They all
//! answer the same question through [`IdentityProvider`]: given a token, who is it?
//! Access decisions (roles, per-collection rules) are made elsewhere, from the
//! [`Principal`] this returns.
//!
//! Browser sessions are cookies ([`cookies`]); a request whose access cookie has expired
//! is refreshed on the spot by [`renew`], and refreshes with one token are shared
//! ([`refresh`]) so that a page's parallel requests do not trip rotation.

pub mod cookies;
pub mod graphql;
pub mod graphql_preset;
pub mod jwks;
pub mod jwt;
pub mod local;
pub mod refresh;
pub mod renew;
pub mod role;
pub mod store;

pub use role::Role;

use serde::{Deserialize, Serialize};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Stable user id (the `uuid` of the identity service, or the local user's record id).
    pub uuid: String,
    pub email: String,
    /// Role, e.g. `SuperAdmin`, `manager`, `staff`, `owner`.
    pub role: Role,
}

/// Tokens handed to a client that logged in or refreshed. `Debug` leaves the tokens out.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Tokens {
    pub access_token: String,
    /// Absent for providers that do not issue refresh tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub user: Principal,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &"<redacted>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_in", &self.expires_in)
            .field("user", &self.user)
            .finish()
    }
}

/// Why authentication failed. None of these carry secrets or token text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Wrong email or password (never says which).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// The token is malformed, expired, of the wrong kind, badly signed, revoked, reused...
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The identity service cannot be reached: answer 503, never open access.
    #[error("identity service unavailable: {0}")]
    Unavailable(String),
    /// This provider does not do that (e.g. login with `jwks`).
    #[error("not supported by this identity provider: {0}")]
    NotSupported(&'static str),
}

/// One way of knowing who a caller is.
#[async_trait::async_trait]
pub trait IdentityProvider: Send + Sync + std::fmt::Debug {
    /// Verifies an access token (from the `access_token` cookie or `Authorization: Bearer`).
    async fn authenticate(&self, access_token: &str) -> Result<Principal, AuthError>;
    /// Exchanges credentials for tokens.
    async fn login(&self, email: &str, password: &str) -> Result<Tokens, AuthError>;
    /// Exchanges a refresh token for new tokens (rotating it where supported).
    async fn refresh(&self, refresh_token: &str) -> Result<Tokens, AuthError>;
    /// Ends a session: revokes the refresh token where supported, and forgets anything
    /// cached about the access token (both as the client sent them, unverified).
    async fn logout(
        &self,
        access_token: Option<&str>,
        refresh_token: Option<&str>,
    ) -> Result<(), AuthError>;
    /// Does [`IdentityProvider::login`] take an email and a password? (`jwks` does not:
    /// its users bring a token from their issuer, which the admin UI lets them paste.)
    fn password_login(&self) -> bool {
        true
    }
}
