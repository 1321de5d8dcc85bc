//! Access tokens of the `local` provider: short-lived HS256 JWTs that this server both signs
//! and verifies.
//!
//! Design choices:
//! - **One fixed algorithm.** Verification accepts exactly `[HS256]`. The header's `alg` is
//!   only checked against that list; it never picks the algorithm or the key, so `alg: none`,
//!   other HMAC sizes and RSA/HMAC key confusion are all rejected before any signature work.
//! - **Whole-token handling.** A token is accepted or rejected as a whole: the signature over
//!   header and payload is checked before any claim is read, and nothing is taken from an
//!   unverified payload. Tokens and secrets never appear in errors or `Debug` output; error
//!   texts are fixed phrases (see [`token_error`]).
//! - **Typed tokens.** Claims carry `typ: "access"` and a fixed `iss`/`aud`. Refresh tokens
//!   are opaque random strings, not JWTs (see `local.rs`), so neither works as the other.
//! - **Injected time.** jsonwebtoken would check `exp` against the system clock; that check
//!   is turned off here and done against the injected [`Now`] with a small leeway
//!   ([`LEEWAY_SECS`]), so expiry is testable and there is one notion of "now".
//! - **Verified once.** Every request carries its token, and decoding and checking the
//!   signature was a good part of a cheap GET. A token that verified is remembered by its
//!   **whole** text (never a prefix: tokens of one issuer share their first bytes) with its
//!   claims; the same text again skips the decoding and signature check, never the time
//!   check, which runs on every use. At most [`VERIFIED_MAX`] tokens are kept (the map is
//!   emptied when full), and a token can only be remembered after it verified in full.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{AuthError, Principal};

/// The current time in unix seconds. Injected so tests can move time.
pub type Now = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The real clock: the one place in the auth modules that reads the system time.
#[allow(clippy::disallowed_methods)]
pub fn system_now() -> Now {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

/// A configuration value the auth modules refuse to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid authentication configuration: {0}")]
pub struct ConfigError(pub String);

/// `iss` and `aud` of every local access token.
pub const ISSUER: &str = "bucketbase";
pub const AUDIENCE: &str = "bucketbase";
/// The `typ` claim of an access token.
pub const ACCESS_TYP: &str = "access";
/// Shortest HMAC secret accepted (256 bits, the HS256 output size).
pub const MIN_SECRET_LEN: usize = 32;
/// Default access-token lifetime.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: u64 = 5;
/// Longer "tokens" are rejected unparsed.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The payload of a local access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user's uuid.
    pub sub: String,
    pub email: String,
    /// The role when the token was issued (`local` re-reads it from the store on use).
    pub role: String,
    pub iat: u64,
    pub exp: u64,
    pub iss: String,
    pub aud: String,
    /// Unique token id.
    pub jti: String,
    /// Always [`ACCESS_TYP`].
    pub typ: String,
}

/// Signs and verifies local access tokens with one HS256 secret.
pub struct JwtIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: u64,
    now: Now,
    /// Tokens that verified, by their whole text (see the module docs).
    verified: parking_lot::Mutex<HashMap<String, AccessClaims>>,
}

/// Most verified tokens remembered at once (about 0.5 KB each).
pub const VERIFIED_MAX: usize = 10_000;

impl fmt::Debug for JwtIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtIssuer")
            .field("algorithm", &Algorithm::HS256)
            .field("ttl_secs", &self.ttl)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl JwtIssuer {
    /// A secret shorter than [`MIN_SECRET_LEN`] bytes is refused. Lifetime:
    /// [`DEFAULT_ACCESS_TTL`] (see [`JwtIssuer::with_ttl`]).
    pub fn new(secret: &[u8], now: Now) -> Result<Self, ConfigError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(ConfigError(format!(
                "the JWT secret must be at least {MIN_SECRET_LEN} bytes"
            )));
        }
        Ok(JwtIssuer {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation: validation(vec![Algorithm::HS256], ISSUER, AUDIENCE),
            ttl: DEFAULT_ACCESS_TTL.as_secs(),
            now,
            verified: parking_lot::Mutex::new(HashMap::new()),
        })
    }

    /// Sets the access-token lifetime (at least one second).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.as_secs().max(1);
        self
    }

    /// Seconds an issued token stays valid (the `expires_in` handed to clients).
    pub fn ttl_secs(&self) -> u64 {
        self.ttl
    }

    /// Issues an access token for `user`.
    pub fn issue(&self, user: &Principal) -> Result<String, AuthError> {
        let iat = (self.now)();
        let claims = AccessClaims {
            sub: user.uuid.clone(),
            email: user.email.clone(),
            role: user.role.to_string(),
            iat,
            exp: iat.saturating_add(self.ttl),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            jti: hex::encode(rand::random::<[u8; 16]>()),
            typ: ACCESS_TYP.to_owned(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| AuthError::Unavailable("could not sign the access token".to_owned()))
    }

    /// Verifies signature, algorithm, issuer, audience, type and lifetime of a token.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid("token too long"));
        }
        let known = self.verified.lock().get(token).cloned();
        if let Some(claims) = known {
            check_times(
                claims.exp,
                None,
                Some(claims.iat),
                (self.now)(),
                LEEWAY_SECS,
            )?;
            return Ok(claims);
        }
        let claims = self.verify_in_full(token)?;
        let mut verified = self.verified.lock();
        if verified.len() >= VERIFIED_MAX {
            verified.clear();
        }
        verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    fn verify_in_full(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                if matches!(e.kind(), ErrorKind::InvalidSignature) {
                    explain_foreign_signature();
                }
                token_error(&e)
            })?;
        let claims = data.claims;
        if claims.typ != ACCESS_TYP {
            return Err(invalid("not an access token"));
        }
        check_times(
            claims.exp,
            None,
            Some(claims.iat),
            (self.now)(),
            LEEWAY_SECS,
        )?;
        Ok(claims)
    }
}

/// Says in the log, at most once a minute, why a well-formed token may fail here: the
/// usual cause is another process on the same store signing with a different key.
fn explain_foreign_signature() {
    static LAST: parking_lot::Mutex<Option<std::time::Instant>> = parking_lot::Mutex::new(None);
    let mut last = LAST.lock();
    if last.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(60)) {
        *last = Some(std::time::Instant::now());
        tracing::warn!(
            "an access token's signature does not match this process's token key; if another \
             process on this store issued it, give every process the same auth.jwt_secret (on \
             S3) or let them share <root>/_keys/token.key (on a local root)"
        );
    }
}

/// Validation for signature, algorithm list, issuer and audience. Times are left to
/// [`check_times`] (jsonwebtoken would read the system clock), but `exp` must be present.
pub(super) fn validation(algorithms: Vec<Algorithm>, issuer: &str, audience: &str) -> Validation {
    let mut v = Validation::new(Algorithm::HS256);
    v.algorithms = algorithms;
    v.validate_exp = false;
    v.validate_nbf = false;
    v.leeway = 0;
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v
}

/// Checks `exp` (required), `nbf` and `iat` (when present) against `now`.
pub(super) fn check_times(
    exp: u64,
    nbf: Option<u64>,
    iat: Option<u64>,
    now: u64,
    leeway: u64,
) -> Result<(), AuthError> {
    if now >= exp.saturating_add(leeway) {
        return Err(invalid("expired"));
    }
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(invalid("not yet valid"));
    }
    if iat.is_some_and(|iat| iat > now.saturating_add(leeway)) {
        return Err(invalid("issued in the future"));
    }
    Ok(())
}

/// Maps a jsonwebtoken error to a fixed phrase: library messages can quote token content.
pub(super) fn token_error(err: &jsonwebtoken::errors::Error) -> AuthError {
    invalid(match err.kind() {
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => "algorithm not allowed",
        ErrorKind::InvalidKeyFormat
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey => "key does not fit the algorithm",
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::ImmatureSignature => "not yet valid",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::InvalidSubject => "wrong subject",
        ErrorKind::MissingRequiredClaim(_) => "missing required claim",
        _ => "malformed token",
    })
}

pub(super) fn invalid(why: &str) -> AuthError {
    AuthError::InvalidToken(why.to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use serde_json::{Value, json};

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";
    const T0: u64 = 1_700_000_000;

    fn clock() -> (Arc<AtomicU64>, Now) {
        let t = Arc::new(AtomicU64::new(T0));
        let c = t.clone();
        (t, Arc::new(move || c.load(Ordering::SeqCst)))
    }

    fn user() -> Principal {
        Principal {
            uuid: "u-1".into(),
            email: "a@example.com".into(),
            role: "staff".into(),
        }
    }

    fn issuer() -> (Arc<AtomicU64>, JwtIssuer) {
        let (t, now) = clock();
        (t, JwtIssuer::new(SECRET, now).expect("issuer"))
    }

    /// Signs arbitrary header/claims with the test secret (HS256 over exactly these bytes).
    fn forge(header: &Value, claims: &Value, secret: &[u8]) -> String {
        let msg = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = jsonwebtoken::crypto::sign(
            msg.as_bytes(),
            &EncodingKey::from_secret(secret),
            Algorithm::HS256,
        )
        .expect("sign");
        format!("{msg}.{sig}")
    }

    fn good_claims() -> Value {
        json!({"sub": "u-1", "email": "a@example.com", "role": "staff", "iat": T0,
               "exp": T0 + 900, "iss": ISSUER, "aud": AUDIENCE, "jti": "j", "typ": "access"})
    }

    fn assert_invalid(r: Result<AccessClaims, AuthError>) {
        assert!(matches!(r, Err(AuthError::InvalidToken(_))), "{r:?}");
    }

    #[tokio::test]
    async fn round_trip() {
        let (_, jwt) = issuer();
        let token = jwt.issue(&user()).expect("issue");
        let c = jwt.verify(&token).expect("verify");
        assert_eq!((c.sub.as_str(), c.role.as_str()), ("u-1", "staff"));
        assert_eq!((c.exp - c.iat, c.typ.as_str()), (900, "access"));
        // Forged with the same secret and the right claims: accepted (sanity for `forge`).
        let forged = forge(
            &json!({"alg": "HS256", "typ": "JWT"}),
            &good_claims(),
            SECRET,
        );
        jwt.verify(&forged).expect("forged-but-valid token");
    }

    #[test]
    fn short_secret_refused() {
        let (_, now) = clock();
        assert!(JwtIssuer::new(&[7u8; 31], now).is_err());
    }

    #[tokio::test]
    async fn a_remembered_token_is_matched_whole() {
        let (_, jwt) = issuer();
        let token = jwt.issue(&user()).expect("issue");
        jwt.verify(&token).expect("valid");
        // Same prefix, other signature; same signature, other payload.
        let mut other_sig = token.clone();
        let last = other_sig.pop().expect("non-empty");
        other_sig.push(if last == 'A' { 'B' } else { 'A' });
        assert_invalid(jwt.verify(&other_sig));
        let (head, rest) = token.split_once('.').expect("three parts");
        let (_, sig) = rest.split_once('.').expect("three parts");
        let claims = B64.encode(serde_json::to_vec(&json!({"sub": "someone-else"})).expect("json"));
        assert_invalid(jwt.verify(&format!("{head}.{claims}.{sig}")));
        jwt.verify(&token).expect("still valid");
    }

    #[tokio::test]
    async fn expiry_uses_injected_clock() {
        let (t, jwt) = issuer();
        let jwt = jwt.with_ttl(Duration::from_secs(60));
        let token = jwt.issue(&user()).expect("issue");
        t.store(T0 + 60 + LEEWAY_SECS - 1, Ordering::SeqCst);
        jwt.verify(&token).expect("within leeway");
        t.store(T0 + 60 + LEEWAY_SECS, Ordering::SeqCst);
        assert_invalid(jwt.verify(&token));
    }

    #[tokio::test]
    async fn alg_none_and_other_algorithms_rejected() {
        let (_, jwt) = issuer();
        let payload = B64.encode(good_claims().to_string());
        for alg in ["none", "None", "HS384", "HS512", "RS256"] {
            let header = B64.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
            assert_invalid(jwt.verify(&format!("{header}.{payload}.")));
            assert_invalid(jwt.verify(&format!("{header}.{payload}")));
        }
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &good_claims(),
            &EncodingKey::from_secret(SECRET),
        )
        .expect("encode");
        assert_invalid(jwt.verify(&hs512));
    }

    #[tokio::test]
    async fn wrong_claims_rejected() {
        let (_, jwt) = issuer();
        let header = json!({"alg": "HS256", "typ": "JWT"});
        let cases: [(&str, Value); 6] = [
            ("iss", json!("someone-else")),
            ("aud", json!("someone-else")),
            ("typ", json!("refresh")),
            ("exp", json!(T0 - 10)),
            ("iat", json!(T0 + 3600)),
            ("sub", Value::Null),
        ];
        for (claim, value) in cases {
            let mut claims = good_claims();
            if value.is_null() {
                claims.as_object_mut().expect("object").remove(claim);
            } else {
                claims[claim] = value;
            }
            assert_invalid(jwt.verify(&forge(&header, &claims, SECRET)));
        }
        // Right claims, wrong secret.
        let other = b"another-secret-another-secret-another";
        assert_invalid(jwt.verify(&forge(&header, &good_claims(), other)));
    }

    #[tokio::test]
    async fn tampered_payload_or_signature_rejected() {
        let (_, jwt) = issuer();
        let token = jwt.issue(&user()).expect("issue");
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: Value =
            serde_json::from_slice(&B64.decode(parts[1]).expect("b64")).expect("json");
        claims["role"] = json!("SuperAdmin");
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            B64.encode(claims.to_string()),
            parts[2]
        );
        assert_invalid(jwt.verify(&tampered));
        let mut sig = B64.decode(parts[2]).expect("b64");
        sig[0] ^= 1;
        let bad_sig = format!("{}.{}.{}", parts[0], parts[1], B64.encode(sig));
        assert_invalid(jwt.verify(&bad_sig));
        assert_invalid(jwt.verify(""));
        assert_invalid(jwt.verify(&"a".repeat(MAX_TOKEN_LEN + 1)));
    }

    #[test]
    fn debug_hides_secret() {
        let (_, jwt) = issuer();
        let shown = format!("{jwt:?}");
        assert!(shown.contains("redacted") && !shown.contains("0123456789abcdef"));
    }
}
