//! The `jwks` identity provider: verifies bearer JWTs issued by any OIDC issuer against the
//! keys it publishes at its JWKS URL. Login, refresh and logout belong to the issuer.
//!
//! Design choices:
//! - **Fixed algorithm list.** Only the configured algorithms are accepted, chosen from
//!   asymmetric ones ([`ALLOWED_ALGORITHMS`]; never HS*, so a public key can never be
//!   used as an HMAC secret). The token's `alg` must be in the list and, when the JWK names
//!   one, equal to the key's. Symmetric (`oct`) keys and encryption keys in the JWKS are
//!   ignored.
//! - **Whole-token verification**, as for local tokens: signature, then `iss`, `aud`, `exp`
//!   (against the injected clock), `nbf`, `iat`; errors are fixed phrases without token text.
//! - **Key cache by `kid`.** Keys are cached for `cache_ttl`. An unknown `kid` (the issuer
//!   rotated keys) triggers one refetch, but fetches are rate-limited to one per
//!   `min_refetch_interval`, so tokens with made-up `kid`s cannot make us hammer the issuer.
//!   Fetches are single-flight (one at a time; waiters reuse the result).
//! - **Fail closed.** If the JWKS cannot be fetched and no cached key fits, the answer is
//!   [`AuthError::Unavailable`] (503), never open access. While the issuer is down, keys
//!   fetched earlier keep working past their TTL; a successful fetch replaces the whole
//!   set, so keys the issuer dropped stop working.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::RwLock;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::jwt::{
    ConfigError, LEEWAY_SECS, MAX_TOKEN_LEN, Now, check_times, invalid, token_error, validation,
};
use super::{AuthError, IdentityProvider, Principal};

/// Algorithms a JWKS issuer may be configured with.
pub const ALLOWED_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::PS256,
];
/// Larger JWKS responses are refused.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Settings of a [`JwksProvider`]. Build with [`JwksConfig::new`], then adjust fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksConfig {
    /// `https://` (plain `http://` only to a loopback host).
    pub jwks_url: String,
    /// Required `iss`.
    pub issuer: String,
    /// Required member of `aud`.
    pub audience: String,
    /// Default `[RS256]`; a subset of [`ALLOWED_ALGORITHMS`].
    pub algorithms: Vec<Algorithm>,
    /// Top-level claim holding the role (a string). Default `role`.
    pub role_claim: String,
    /// Role for tokens without `role_claim`; `None` rejects such tokens.
    pub default_role: Option<String>,
    /// Top-level claim holding the email. Default `email`; missing gives `""`.
    pub email_claim: String,
    /// How long fetched keys are trusted before a refetch. Default 10 minutes.
    pub cache_ttl: Duration,
    /// At most one fetch per this interval. Default 10 seconds.
    pub min_refetch_interval: Duration,
    /// Timeout of one JWKS request. Default 5 seconds.
    pub http_timeout: Duration,
    /// Clock skew tolerated on `exp`, `nbf`, `iat`. Default 5 seconds.
    pub leeway: Duration,
}

impl JwksConfig {
    pub fn new(jwks_url: &str, issuer: &str, audience: &str) -> Self {
        JwksConfig {
            jwks_url: jwks_url.to_owned(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            algorithms: vec![Algorithm::RS256],
            role_claim: "role".to_owned(),
            default_role: None,
            email_claim: "email".to_owned(),
            cache_ttl: Duration::from_secs(600),
            min_refetch_interval: Duration::from_secs(10),
            http_timeout: Duration::from_secs(5),
            leeway: Duration::from_secs(LEEWAY_SECS),
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        let err = |m: &str| Err(ConfigError(format!("jwks: {m}")));
        if self.algorithms.is_empty()
            || !self
                .algorithms
                .iter()
                .all(|a| ALLOWED_ALGORITHMS.contains(a))
        {
            return err("algorithms must be a non-empty subset of RS256/384/512, ES256/384, PS256");
        }
        if self.issuer.is_empty() || self.audience.is_empty() {
            return err("issuer and audience are required");
        }
        if self.role_claim.is_empty() || self.email_claim.is_empty() {
            return err("role_claim and email_claim must not be empty");
        }
        let Ok(url) = reqwest::Url::parse(&self.jwks_url) else {
            return err("jwks_url is not a URL");
        };
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        if !(url.scheme() == "https" || url.scheme() == "http" && loopback) {
            return err("jwks_url must use https");
        }
        Ok(())
    }
}

#[derive(Clone)]
struct CachedKey {
    key: DecodingKey,
    /// The JWK's `alg`, when it names one.
    alg: Option<Algorithm>,
}

#[derive(Default)]
struct KeyCache {
    /// By `kid` (`""` for a key without one).
    keys: HashMap<String, CachedKey>,
    /// Last successful fetch, unix seconds.
    fetched_at: Option<u64>,
    /// Last fetch attempt and whether it failed.
    attempted_at: Option<u64>,
    last_failed: bool,
}

impl KeyCache {
    fn get(&self, kid: Option<&str>) -> Option<CachedKey> {
        match kid {
            Some(kid) => self.keys.get(kid).cloned(),
            // No `kid`: only unambiguous with a single key.
            None if self.keys.len() == 1 => self.keys.values().next().cloned(),
            None => None,
        }
    }
}

/// The `jwks` identity provider.
pub struct JwksProvider {
    config: JwksConfig,
    validation: Validation,
    http: reqwest::Client,
    now: Now,
    cache: RwLock<KeyCache>,
    /// Held while fetching, so concurrent misses cause one request.
    fetching: tokio::sync::Mutex<()>,
}

impl fmt::Debug for JwksProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksProvider")
            .field("config", &self.config)
            .field("cached_keys", &self.cache.read().keys.len())
            .finish_non_exhaustive()
    }
}

impl JwksProvider {
    /// Checks the configuration; keys are fetched on first use.
    pub fn new(config: JwksConfig, now: Now) -> Result<Self, ConfigError> {
        config.check()?;
        let http = reqwest::Client::builder()
            .timeout(config.http_timeout)
            .connect_timeout(config.http_timeout)
            .build()
            .map_err(|_| ConfigError("jwks: cannot build the HTTP client".to_owned()))?;
        let validation = validation(config.algorithms.clone(), &config.issuer, &config.audience);
        Ok(JwksProvider {
            config,
            validation,
            http,
            now,
            cache: RwLock::new(KeyCache::default()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// A fresh cached key for `kid`, else a refetch if the rate limit allows, else a
    /// stale cached key.
    async fn key_for(&self, kid: Option<&str>) -> Result<CachedKey, AuthError> {
        if let Some(key) = self.fresh_key(kid) {
            return Ok(key);
        }
        let _single_flight = self.fetching.lock().await;
        if let Some(key) = self.fresh_key(kid) {
            return Ok(key); // fetched by whoever held the lock before us
        }
        let now = (self.now)();
        let interval = self.config.min_refetch_interval.as_secs();
        let may_fetch = {
            let cache = self.cache.read();
            cache
                .attempted_at
                .is_none_or(|at| now.saturating_sub(at) >= interval)
        };
        if may_fetch {
            let fetched = self.fetch().await;
            let mut cache = self.cache.write();
            cache.attempted_at = Some(now);
            cache.last_failed = fetched.is_err();
            match fetched {
                Ok(keys) => {
                    cache.keys = keys;
                    cache.fetched_at = Some(now);
                }
                Err(e) => return cache.get(kid).ok_or(e),
            }
        }
        let cache = self.cache.read();
        match cache.get(kid) {
            Some(key) => Ok(key),
            None if cache.last_failed => Err(AuthError::Unavailable(
                "JWKS endpoint unreachable".to_owned(),
            )),
            None => Err(invalid("unknown key id")),
        }
    }

    fn fresh_key(&self, kid: Option<&str>) -> Option<CachedKey> {
        let cache = self.cache.read();
        let ttl = self.config.cache_ttl.as_secs();
        let fresh = cache
            .fetched_at
            .is_some_and(|at| (self.now)().saturating_sub(at) < ttl);
        if fresh { cache.get(kid) } else { None }
    }

    async fn fetch(&self) -> Result<HashMap<String, CachedKey>, AuthError> {
        let unavailable = |why: &str| AuthError::Unavailable(format!("JWKS fetch failed: {why}"));
        let mut response = self
            .http
            .get(&self.config.jwks_url)
            .send()
            .await
            .map_err(|e| {
                unavailable(if e.is_timeout() {
                    "timeout"
                } else {
                    "no connection"
                })
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(unavailable(&format!("HTTP {}", status.as_u16())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|_| unavailable("body not received"))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(unavailable("response too large"));
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body).ok_or_else(|| unavailable("not a JWK set"))
    }
}

/// The usable keys of a JWK set; keys we cannot or must not use are skipped.
fn parse_jwks(body: &[u8]) -> Option<HashMap<String, CachedKey>> {
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<Value>,
    }
    let raw: RawSet = serde_json::from_slice(body).ok()?;
    let keys = raw.keys.into_iter().filter_map(|value| {
        let jwk: Jwk = serde_json::from_value(value).ok()?;
        if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
            return None;
        }
        if !matches!(
            jwk.algorithm,
            AlgorithmParameters::RSA(_) | AlgorithmParameters::EllipticCurve(_)
        ) {
            return None; // never `oct` (symmetric) keys
        }
        let alg = match jwk.common.key_algorithm {
            Some(alg) => Some(Algorithm::try_from(alg).ok()?),
            None => None,
        };
        let key = DecodingKey::from_jwk(&jwk).ok()?;
        let kid = jwk.common.key_id.clone().unwrap_or_default();
        Some((kid, CachedKey { key, alg }))
    });
    Some(keys.collect())
}

/// A numeric date claim; some issuers write floats.
fn seconds(claims: &Map<String, Value>, name: &str) -> Option<u64> {
    let v = claims.get(name)?;
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
}

#[async_trait]
impl IdentityProvider for JwksProvider {
    async fn authenticate(&self, access_token: &str) -> Result<Principal, AuthError> {
        if access_token.len() > MAX_TOKEN_LEN {
            return Err(invalid("token too long"));
        }
        let header = jsonwebtoken::decode_header(access_token).map_err(|e| token_error(&e))?;
        if !self.config.algorithms.contains(&header.alg) {
            return Err(invalid("algorithm not allowed"));
        }
        let key = self.key_for(header.kid.as_deref()).await?;
        if key.alg.is_some_and(|alg| alg != header.alg) {
            return Err(invalid("algorithm does not match the key"));
        }
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let claims =
            jsonwebtoken::decode::<Map<String, Value>>(access_token, &key.key, &validation)
                .map_err(|e| token_error(&e))?
                .claims;
        let exp = seconds(&claims, "exp").ok_or_else(|| invalid("bad exp"))?;
        let now = (self.now)();
        let leeway = self.config.leeway.as_secs();
        let (nbf, iat) = (seconds(&claims, "nbf"), seconds(&claims, "iat"));
        check_times(exp, nbf, iat, now, leeway)?;

        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let uuid = text("sub").filter(|s| !s.is_empty());
        let uuid = uuid.ok_or_else(|| invalid("missing subject"))?;
        let role = text(&self.config.role_claim).or(self.config.default_role.as_deref());
        let role = role.ok_or_else(|| invalid("missing role claim"))?;
        Ok(Principal {
            uuid: uuid.to_owned(),
            email: text(&self.config.email_claim)
                .unwrap_or_default()
                .to_owned(),
            role: role.into(),
        })
    }

    fn password_login(&self) -> bool {
        false
    }

    async fn login(&self, _email: &str, _password: &str) -> Result<super::Tokens, AuthError> {
        Err(AuthError::NotSupported(
            "login (sign in with the identity provider)",
        ))
    }

    async fn refresh(&self, _refresh_token: &str) -> Result<super::Tokens, AuthError> {
        Err(AuthError::NotSupported(
            "refresh (renew tokens with the identity provider)",
        ))
    }

    async fn logout(
        &self,
        _access_token: Option<&str>,
        _refresh_token: Option<&str>,
    ) -> Result<(), AuthError> {
        Err(AuthError::NotSupported(
            "logout (sign out with the identity provider)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    use jsonwebtoken::{EncodingKey, Header};
    use parking_lot::Mutex;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const ISS: &str = "https://issuer.example";
    const AUD: &str = "bucketbase-api";
    const T0: u64 = 1_700_000_000;

    /// Test keys generated offline with `openssl genrsa 2048` (PKCS#8).
    const KEY1: &str = "\
    -----BEGIN PRIVATE KEY-----\n\
    MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCpM38rVeZrOY3/\n\
    SKVlVNSZSUuUlbYcFRtHVmx+F9hrziuQcDFM3e56C5mVKyqb9svpJm99wKo85jY+\n\
    X9ZVf7uI9PKKnExOrwXE2F2PA72nTNx9p1Qvi6pwr00ofdSnAeTNqKK8XDckXuBv\n\
    I8sKGdhIXMNcO+7Np+nPY+IhgIEp5lX6ldPbXRWMTBteEwqQZyP6P2fNx2nKzdGa\n\
    UMh3PnfVs6X/YyK7Ddd6xXa2P5E5zZOoyo6SKlLNRpCDpzxpoG1tRhpPFxOnzLbh\n\
    VPENy6ni46QoNhnMWfSX8rZ1za4JlA//RdpPKNExS9cH/hzJX+9hM2tkaaIUB8dF\n\
    nkgxkedNAgMBAAECggEABdCHZWmuy5mEkoogZkfmLxxbNLsjsSRdNcmNBz+c3YY4\n\
    w15vpfNsf2oy+B2DJIKfMEnKBA7LwDWtwIf87smUcW5FgCjt4GMDC5LfPYvEh+F2\n\
    zvn3RSkDYvBLR6xx/d6X9SSp7wIrl5w2Z0CveLnkT7Ghubjfida5jLnN1WvmmcDK\n\
    fgdHAub2MvDek8qdpAbiut44GpoQefSs0T1jKVndRJ+jPjp5ksyiZUnAsxpNaRuu\n\
    NZzoeg5EAuulMsBfb54jhenzNSJ95Mg7ENcg87gDlZCr4GFCfEM4I60FNasZOr8l\n\
    /55OMey5YxEKgXYI86juEjqfCw/TqTdB1YjXrPDliwKBgQDUB/Wf7vQJY4OtXYV2\n\
    ZoVBTyU1Y0Y8jKdJf5pNhKGoSwPhWFuSpstbF+tJM/aIrZfhFY5lx0Zi0zV0GRJR\n\
    N0Vv50MRLW7zcHMvAEHeCbDdhgetgT1OD+FuHNrPOZFZujYlGvL/vQcHoL2BCUyp\n\
    Y8IF24qqcVlALVflRc+vofFAzwKBgQDMSdXoFhd/d8sn2bt4eBokF/IOZ02Bbkpw\n\
    Ucfh+tm+CcdLMbL1kp3G+vYkPhCr3IGN07DF2S9eHoSCPKurQmSi2RtAjdios2K3\n\
    oXlS1tSmQYMLKd1I017io85uAWpIKkSeD0ZQjSPHbcNCXjBaN1ksZdkbio+NTHLM\n\
    omO0dA4FIwKBgHJP/EAGrzEkoshkBGFqMmuchP38kNByMHqyvfkPCazXDLeAUJaH\n\
    MFnjUmm8By13Ecw7N/NtdWgwYMBACB0bRGdpckIfkZLTzHXJmLlh1iYIbblAVVHx\n\
    w+L+0YUpj1Cl0S0+E0aHnfOh2Klp3xfv/Zn03BS6WZj9GUc11RvmnlAHAoGBALQO\n\
    Q/XqOs3DpRC7rKuSl9/GJzegv0RcFEoJGrbHpVEFR120MTqW/m9Z1Ma+2WzQznNV\n\
    6NGJCmHXXg14MgqhWxfZaVatbw/KBDE7pjZoWUcsKLcXMA23F0OFAzYcEzQF5TK2\n\
    3c+zhpyI1vfREqcBb5xdLE1FBB+TCP/qBR0QySanAoGBAMrGw8bApd7Ff/XNSaWu\n\
    VGAn1PZ/dz28GcjBqQRbTF5y8OtNCdcxnflEteC82eutvMl82ODrO0E3jf6d2FBl\n\
    r9sNkY30PejN9jYPakbTDj0Bx/Direu9w4CcZgaZPQgW8bXR563Gg71cOydj2XXI\n\
    hKQCtQtmxIENcpD1MrAxVHws\n\
    -----END PRIVATE KEY-----\n\
    ";
    const KEY1_PUBLIC: &str = "\
    -----BEGIN PUBLIC KEY-----\n\
    MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqTN/K1XmazmN/0ilZVTU\n\
    mUlLlJW2HBUbR1ZsfhfYa84rkHAxTN3ueguZlSsqm/bL6SZvfcCqPOY2Pl/WVX+7\n\
    iPTyipxMTq8FxNhdjwO9p0zcfadUL4uqcK9NKH3UpwHkzaiivFw3JF7gbyPLChnY\n\
    SFzDXDvuzafpz2PiIYCBKeZV+pXT210VjEwbXhMKkGcj+j9nzcdpys3RmlDIdz53\n\
    1bOl/2Miuw3XesV2tj+ROc2TqMqOkipSzUaQg6c8aaBtbUYaTxcTp8y24VTxDcup\n\
    4uOkKDYZzFn0l/K2dc2uCZQP/0XaTyjRMUvXB/4cyV/vYTNrZGmiFAfHRZ5IMZHn\n\
    TQIDAQAB\n\
    -----END PUBLIC KEY-----\n\
    ";
    const KEY2: &str = "\
    -----BEGIN PRIVATE KEY-----\n\
    MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCkGik2FfeH+k93\n\
    9VT2ZcRNieGjMyBpUmMWkCH3CyGWaYoBBSZq0a+IuUjaBLW78pgLwZ1Y7eWw24OI\n\
    qTD6GaGz+h3kHuUlQYGo7Ej1TxOZ6eF1txe7VHEIyfUfW06ygsTaYaf3kvtRdUrr\n\
    Yb1NH5Rv0GEoVGdZ+KxKMd1x99899ByDEfOxZ1zDuwYcCVyagWRDvsZv5GGnlZI/\n\
    Se5zN0u99jdPgbMjlXYxG95swoOE80G1jz74HYFyLNRZJJcoO0eVSnOgIyHES7U3\n\
    xnD86tTbInUbxC5bwiSI544vZxwbmvJRNtbiRW9d8ckmtwnCc/fuyG53syPBX/bC\n\
    2yvAx6MBAgMBAAECggEAAhcj45X9DLo3YppOm5g+m2mVumak041NSNTLh0zuKm8s\n\
    EbOXQoYVm9gXDFFCCrkI5HbHbSy+n8r0DnzFQcereSecU4hsjSsb8+MVUiv7M8Xj\n\
    GC+duZurmEaQ/PYZ9wkrvnJprtbW+mR+8Ken6dXB+3imkYUdueuChQFvRjaM8p+R\n\
    CeEW6EZfDSK5Ov1DQv0+nky3Yii3VDoiYqZVh1E96iLtI0HzAy+kXaYnxluu2Nlq\n\
    jdvtek9F2+IkmZA/SEUXOIUmMWu9wly1GP/0LMogFd7TUq5Bg0g6YCpxrIgRijjv\n\
    Ewn1JsUTsgEV75huEPv3WxzAwQFh9hi2Yi1i6v+x7wKBgQDcHBkAlFhIRvSoATxb\n\
    STkEXcYeHRY1co5HQpm23ISdzakqD0yzNIrJJQ8GNvTew/WN1iod+FspLfENEbo0\n\
    hfsWwm6jsPIfJplaMm8Tb3oAgIs9mbsjJhpXeG9hOaQuiAUKvo0KwAOvxtIe3RGm\n\
    2Al8vs/PQJ2QGpgRMW0CMvNuSwKBgQC+3CzJmrL8T6oYRui7HrwnAGTMCPmRKbGZ\n\
    9st0Qi9CwFv+Um0IlKKnvqqJPoEslswbOxagPIA138Es66woUHc8pZDSkgqs0zeO\n\
    KuPOyMmKTLd1MYQah8Nm7pbJj/tue+Elk0RKJcOs9k2HBMsoHd8on7YEou5wMFyG\n\
    Yz+Fyb50YwKBgDVssHjeiMsKRendWuwBStCPfj3i63gPlQ8g0DR9M8clmvC1g/Vf\n\
    RGxsDUiB4E+NmrVRjSl3FZFaME7uxZZoCrjMepRKp4n+EWy+Hw3FmgQzLxjFjpGK\n\
    dwxSFB6yIfKVWzvvYkaAsqRgirGpENbBSxQ3MDNqyJOokM5jg8Tr3wAfAoGABu/d\n\
    uN4kj0Md/Y/mOZbeY9SB1WCmIX6Qc/YiYvFc4mI3dcDtMZilaM9nR2G8NDCu7nZx\n\
    VhWc21hsnwNZ2IVEMDIcV2rzdGCg7kvkx8lIefxb1qicEpLIqV8Wn/DZxKRABKub\n\
    mc5RlGHHY5brA2RCjilv5i8911oKot/MmUJB590CgYEAxwM1V0NWY8qAGSk5z6mP\n\
    ClFv+VHgsxLtgWvmS3LKDALlA3AKrOm66kW7kfO7pxGSF1/tVS0CKSZCoPhIW+0I\n\
    zz3vCtlsh6en00hCzs9xIyeeNisJtV8Ful0awZYBQJjGZOUvRCkb5Ch079RjzdNs\n\
    IJlzYQMDz0vl4Zk9uTJ4UVc=\n\
    -----END PRIVATE KEY-----\n\
    ";

    /// A JWKS endpoint on 127.0.0.1 answering every request with `(status, body)`.
    struct TestIssuer {
        url: String,
        reply: Arc<Mutex<(u16, String)>>,
        hits: Arc<AtomicUsize>,
    }

    impl TestIssuer {
        async fn start(keys: &[(&str, &str)]) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let url = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
            let reply = Arc::new(Mutex::new((200, jwks(keys))));
            let hits = Arc::new(AtomicUsize::new(0));
            let (r, h) = (reply.clone(), hits.clone());
            tokio::spawn(async move {
                while let Ok((mut conn, _)) = listener.accept().await {
                    h.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = r.lock().clone();
                    tokio::spawn(async move {
                        let mut request = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match conn.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&buf[..n]),
                            }
                        }
                        let response = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = conn.write_all(response.as_bytes()).await;
                        let _ = conn.shutdown().await;
                    });
                }
            });
            TestIssuer { url, reply, hits }
        }

        fn serve(&self, status: u16, keys: &[(&str, &str)]) {
            *self.reply.lock() = (status, jwks(keys));
        }

        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }
    }

    /// A JWK set with the public halves of `(kid, private PEM)` keys.
    fn jwks(keys: &[(&str, &str)]) -> String {
        let keys: Vec<Value> = keys
            .iter()
            .map(|(kid, pem)| {
                let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("pem");
                let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).expect("jwk");
                jwk.common.key_id = Some((*kid).to_owned());
                jwk.common.public_key_use = Some(PublicKeyUse::Signature);
                serde_json::to_value(jwk).expect("json")
            })
            .collect();
        json!({ "keys": keys }).to_string()
    }

    fn claims() -> Value {
        json!({"sub": "ext-1", "email": "x@example.com", "role": "manager",
               "iss": ISS, "aud": AUD, "iat": T0, "exp": T0 + 300})
    }

    fn sign(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, key).expect("sign")
    }

    fn rs256(kid: &str, pem: &str, claims: &Value) -> String {
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("pem");
        sign(Algorithm::RS256, kid, &key, claims)
    }

    fn provider(url: &str) -> (Arc<AtomicU64>, JwksProvider) {
        let time = Arc::new(AtomicU64::new(T0));
        let t = time.clone();
        let now: Now = Arc::new(move || t.load(Ordering::SeqCst));
        let mut config = JwksConfig::new(url, ISS, AUD);
        config.http_timeout = Duration::from_secs(2);
        (time, JwksProvider::new(config, now).expect("provider"))
    }

    fn assert_invalid(r: Result<Principal, AuthError>) {
        assert!(matches!(r, Err(AuthError::InvalidToken(_))), "{r:?}");
    }

    #[tokio::test]
    async fn valid_token_accepted_and_keys_cached() {
        let issuer = TestIssuer::start(&[("k1", KEY1)]).await;
        let (_, auth) = provider(&issuer.url);
        let token = rs256("k1", KEY1, &claims());
        let p = auth.authenticate(&token).await.expect("valid token");
        let want = ("ext-1", "x@example.com", "manager");
        assert_eq!((p.uuid.as_str(), p.email.as_str(), p.role.as_str()), want);
        auth.authenticate(&token).await.expect("again");
        assert_eq!(issuer.hits(), 1);
    }

    #[tokio::test]
    async fn attacks_rejected() {
        let issuer = TestIssuer::start(&[("k1", KEY1)]).await;
        let (_, auth) = provider(&issuer.url);
        let b64 = |v: &Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "kid": "k1"})),
            b64(&claims())
        );
        let confused = sign(
            Algorithm::HS256,
            "k1",
            &EncodingKey::from_secret(KEY1_PUBLIC.as_bytes()),
            &claims(),
        );
        let rs384 = {
            let key = EncodingKey::from_rsa_pem(KEY1.as_bytes()).expect("pem");
            sign(Algorithm::RS384, "k1", &key, &claims())
        };
        let with = |name: &str, value: Value| {
            let mut c = claims();
            c[name] = value;
            rs256("k1", KEY1, &c)
        };
        let valid = rs256("k1", KEY1, &claims());
        let parts: Vec<&str> = valid.split('.').collect();
        let mut flipped = claims();
        flipped["role"] = json!("SuperAdmin");
        let tampered = format!("{}.{}.{}", parts[0], b64(&flipped), parts[2]);
        let attacks = [
            none,
            confused,
            rs384,
            with("exp", json!(T0 - 60)),
            with("nbf", json!(T0 + 600)),
            with("iss", json!("https://evil.example")),
            with("aud", json!("someone-else")),
            with("sub", json!("")),
            tampered,
            rs256("k1", KEY2, &claims()), // signed by another key under k1's id
            "not.a.jwt".to_owned(),
        ];
        for token in attacks {
            assert_invalid(auth.authenticate(&token).await);
        }
        let mut no_role = claims();
        no_role.as_object_mut().expect("object").remove("role");
        assert_invalid(auth.authenticate(&rs256("k1", KEY1, &no_role)).await);
    }

    #[tokio::test]
    async fn key_rotation_and_unknown_kids() {
        let issuer = TestIssuer::start(&[("k1", KEY1)]).await;
        let (time, auth) = provider(&issuer.url);
        auth.authenticate(&rs256("k1", KEY1, &claims()))
            .await
            .expect("k1");
        issuer.serve(200, &[("k2", KEY2)]);
        let new_token = rs256("k2", KEY2, &claims());
        // Within the refetch interval: no new request, the unknown kid is rejected.
        assert_invalid(auth.authenticate(&new_token).await);
        assert_eq!(issuer.hits(), 1);
        time.fetch_add(11, Ordering::SeqCst);
        auth.authenticate(&new_token)
            .await
            .expect("k2 after refetch");
        assert_eq!(issuer.hits(), 2);
        // k1 was dropped by the issuer: its tokens no longer verify.
        assert_invalid(auth.authenticate(&rs256("k1", KEY1, &claims())).await);
        // Made-up kids cause at most one fetch per interval.
        for i in 0..20 {
            assert_invalid(
                auth.authenticate(&rs256(&format!("junk-{i}"), KEY2, &claims()))
                    .await,
            );
        }
        assert_eq!(issuer.hits(), 2);
    }

    #[tokio::test]
    async fn issuer_down() {
        // Nothing listens: no key at all, so 503 rather than 401.
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            l.local_addr().expect("addr").port()
        };
        let (_, auth) = provider(&format!("http://127.0.0.1:{port}/jwks.json"));
        let token = rs256("k1", KEY1, &claims());
        let r = auth.authenticate(&token).await;
        assert!(matches!(r, Err(AuthError::Unavailable(_))), "{r:?}");
        assert!(matches!(
            auth.authenticate(&token).await,
            Err(AuthError::Unavailable(_))
        ));

        // Up, then failing: cached keys keep working past their TTL, unknown kids get 503.
        let issuer = TestIssuer::start(&[("k1", KEY1)]).await;
        let (time, auth) = provider(&issuer.url);
        auth.authenticate(&token).await.expect("fetched");
        issuer.serve(500, &[]);
        time.fetch_add(3600, Ordering::SeqCst);
        let mut later = claims();
        later["exp"] = json!(T0 + 7200);
        auth.authenticate(&rs256("k1", KEY1, &later))
            .await
            .expect("stale key");
        let r = auth.authenticate(&rs256("k9", KEY2, &later)).await;
        assert!(matches!(r, Err(AuthError::Unavailable(_))), "{r:?}");
    }

    #[test]
    fn unusable_keys_are_skipped() {
        let set = json!({"keys": [
            {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "weird", "kid": "w"},
        ]});
        let keys = parse_jwks(set.to_string().as_bytes()).expect("set");
        assert!(keys.is_empty());
        assert!(parse_jwks(b"{}").is_none());
    }

    #[tokio::test]
    async fn config_and_unsupported_operations() {
        let now: Now = Arc::new(|| T0);
        let mut c = JwksConfig::new("https://issuer.example/jwks", ISS, AUD);
        assert!(JwksProvider::new(c.clone(), now.clone()).is_ok());
        for bad in [vec![Algorithm::HS256], vec![], vec![Algorithm::EdDSA]] {
            c.algorithms = bad;
            assert!(JwksProvider::new(c.clone(), now.clone()).is_err());
        }
        let c = JwksConfig::new("http://issuer.example/jwks", ISS, AUD);
        assert!(JwksProvider::new(c, now.clone()).is_err());
        let (_, auth) = provider("http://127.0.0.1:9/jwks");
        assert!(matches!(
            auth.login("a", "b").await,
            Err(AuthError::NotSupported(_))
        ));
        assert!(matches!(
            auth.refresh("r").await,
            Err(AuthError::NotSupported(_))
        ));
        assert!(matches!(
            auth.logout(None, None).await,
            Err(AuthError::NotSupported(_))
        ));
    }
}
