//! The `graphql` identity provider: an appointment360-compatible remote service.
//!
//! Login, refresh and "who am I" are GraphQL operations POSTed as
//! `{"query": ..., "variables": {...}}` to one endpoint. The documents and the dot-paths
//! at which results are read (inside `data`) are configurable ([`GraphqlConfig`]); the
//! defaults are appointment360-style (`auth { login / refreshToken }`, `me`): check them
//! against the deployed schema, or start from a named preset ([`super::graphql_preset`],
//! e.g. `appointment360` for docsai). Variable names are fixed: `$email` and
//! `$password` (login), `$refreshToken` (refresh, logout); the "me" query takes no
//! variables and is sent with `Authorization: Bearer <access token>`.
//!
//! # Caching, keyed by the whole token
//!
//! Asking the service on every request would make it a bottleneck, so principals are
//! cached for `role_cache_ttl` (default 5 min). The key is the SHA-256 of the **whole**
//! token. docsai's middleware keyed its cache by `token[:20]`, but JWTs from one issuer
//! share their header and usually their first claims, so a prefix is the same for every
//! user: whoever was cached first (say a SuperAdmin) would lend their role to everyone
//! else for five minutes. Hashing also keeps raw tokens out of memory dumps of the cache.
//! The cache is bounded (`role_cache_max_entries`, oldest evicted first); only successful
//! lookups are cached. The TTL is also how long a revoked token keeps working here:
//! [`GraphqlProvider::evict`] lets the server drop a token it knows was logged out.
//!
//! # Failing closed
//!
//! A definite "no" from the service (GraphQL `errors`, a null user, HTTP 401/403) is
//! [`AuthError::InvalidToken`] (or [`AuthError::InvalidCredentials`] for login). Anything
//! else going wrong (connection refused, timeout, 5xx or other status, redirects, a body
//! that is not GraphQL JSON, missing fields) is [`AuthError::Unavailable`], which the
//! server answers with 503: an outage never opens access and never logs users out.
//! Principals already cached keep working during an outage until their TTL runs out:
//! that is what the cache is for, and it grants nothing the service did not grant.
//!
//! # Secrets
//!
//! Tokens and passwords never appear in errors or `Debug` output: error messages are
//! fixed strings or the service's own message with the request's secrets redacted, the
//! bearer header is marked sensitive, and endpoints embedding credentials are refused.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use parking_lot::Mutex;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::{AuthError, IdentityProvider, Principal, Tokens};

/// Default login document: `$email`, `$password` → tokens and the user.
pub const DEFAULT_LOGIN_MUTATION: &str = "mutation Login($email: String!, $password: String!) { auth { login(input: {email: $email, password: $password}) { accessToken refreshToken user { uuid email role } } } }";
/// Default refresh document: `$refreshToken` → new (rotated) tokens and the user.
pub const DEFAULT_REFRESH_MUTATION: &str = "mutation RefreshToken($refreshToken: String!) { auth { refreshToken(input: {refreshToken: $refreshToken}) { accessToken refreshToken user { uuid email role } } } }";
/// Default "who am I" document, sent with the bearer token.
pub const DEFAULT_ME_QUERY: &str = "query Me { me { uuid email role } }";

/// Largest response body accepted from the identity service.
const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// Longest service error message passed on.
const MAX_MESSAGE_CHARS: usize = 200;
const NOT_PERMITTED: &str = "role not permitted on this server";

/// The two operations that issue tokens.
#[derive(Clone, Copy)]
enum Op {
    Login,
    Refresh,
}

/// Settings of the `graphql` provider. Every field has a default; unknown keys are
/// rejected so a misspelt `require_role` cannot silently open access.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlConfig {
    /// GraphQL endpoint: http or https, no embedded credentials.
    /// Default `http://localhost:8000/graphql`.
    pub endpoint: String,
    /// Documents. Defaults [`DEFAULT_LOGIN_MUTATION`], [`DEFAULT_REFRESH_MUTATION`],
    /// [`DEFAULT_ME_QUERY`].
    pub login_mutation: String,
    pub refresh_mutation: String,
    pub me_query: String,
    /// Optional logout document, sent with the access token as bearer (when the client
    /// sent one) and `$refreshToken`, e.g. `mutation Logout($refreshToken: String!) {
    /// auth { logout(input: {refreshToken: $refreshToken}) } }`. Default none.
    pub logout_mutation: Option<String>,
    /// Dot-paths into login's `data`. Defaults `auth.login.accessToken`,
    /// `auth.login.refreshToken` (absent or null: no refresh token) and `auth.login.user`
    /// (absent or null: the me query is asked with the new access token).
    pub login_access_token_path: String,
    pub login_refresh_token_path: String,
    pub login_user_path: String,
    /// Dot-paths into refresh's `data`, as for login. Defaults
    /// `auth.refreshToken.accessToken`, `auth.refreshToken.refreshToken`, `auth.refreshToken.user`.
    pub refresh_access_token_path: String,
    pub refresh_refresh_token_path: String,
    pub refresh_user_path: String,
    /// Dot-path of the user object in the me query's `data` (null: invalid token). Default `me`.
    pub me_user_path: String,
    /// Dot-paths of non-empty strings inside a user object. Defaults `uuid`, `email`, `role`.
    pub user_uuid_field: String,
    pub user_email_field: String,
    pub user_role_field: String,
    /// `expires_in` reported to clients (the service stays the authority). Default 900.
    pub default_expires_in_secs: u64,
    /// How long a principal is cached. Key `role_cache_ttl_secs` (seconds, may be
    /// fractional); default 300.
    #[serde(rename = "role_cache_ttl_secs", deserialize_with = "seconds")]
    pub role_cache_ttl: Duration,
    /// Most cached principals (0 disables the cache). Default 10 000.
    pub role_cache_max_entries: usize,
    /// Whole-request timeout. Key `request_timeout_secs`; default 5.
    #[serde(rename = "request_timeout_secs", deserialize_with = "seconds")]
    pub request_timeout: Duration,
    /// If set, only principals with exactly this role are accepted (e.g. `SuperAdmin`):
    /// others get [`AuthError::InvalidToken`] (authenticate, refresh) or
    /// [`AuthError::InvalidCredentials`] (login). Default none. The server's global
    /// `require_role` (403) is the usual place for this; this is a second gate.
    pub require_role: Option<super::Role>,
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        let s = str::to_owned;
        Self {
            endpoint: s("http://localhost:8000/graphql"),
            login_mutation: s(DEFAULT_LOGIN_MUTATION),
            refresh_mutation: s(DEFAULT_REFRESH_MUTATION),
            me_query: s(DEFAULT_ME_QUERY),
            logout_mutation: None,
            login_access_token_path: s("auth.login.accessToken"),
            login_refresh_token_path: s("auth.login.refreshToken"),
            login_user_path: s("auth.login.user"),
            refresh_access_token_path: s("auth.refreshToken.accessToken"),
            refresh_refresh_token_path: s("auth.refreshToken.refreshToken"),
            refresh_user_path: s("auth.refreshToken.user"),
            me_user_path: s("me"),
            user_uuid_field: s("uuid"),
            user_email_field: s("email"),
            user_role_field: s("role"),
            default_expires_in_secs: 900,
            role_cache_ttl: Duration::from_secs(300),
            role_cache_max_entries: 10_000,
            request_timeout: Duration::from_secs(5),
            require_role: None,
        }
    }
}

fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Duration::try_from_secs_f64(f64::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// A [`GraphqlConfig`] that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid graphql identity provider configuration: {0}")]
pub struct GraphqlConfigError(String);

/// Identity from an appointment360-compatible GraphQL service. See the module docs.
pub struct GraphqlProvider {
    config: GraphqlConfig,
    endpoint: reqwest::Url,
    client: reqwest::Client,
    cache: Mutex<RoleCache>,
}

impl fmt::Debug for GraphqlProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphqlProvider")
            .field("endpoint", &self.endpoint.as_str())
            .field("role_cache_ttl", &self.config.role_cache_ttl)
            .field("require_role", &self.config.require_role)
            .field("cached", &self.cache.lock().map.len())
            .finish_non_exhaustive()
    }
}

impl GraphqlProvider {
    pub fn new(config: GraphqlConfig) -> Result<Self, GraphqlConfigError> {
        let bad = |m: &str| GraphqlConfigError(m.to_owned());
        let endpoint =
            reqwest::Url::parse(&config.endpoint).map_err(|_| bad("bad endpoint URL"))?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(bad("endpoint must be http or https"));
        }
        if !endpoint.username().is_empty() || endpoint.password().is_some() {
            return Err(bad("endpoint must not embed credentials"));
        }
        if config.request_timeout.is_zero() {
            return Err(bad("request_timeout_secs must be positive"));
        }
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| GraphqlConfigError(format!("HTTP client: {e}")))?;
        let cache = RoleCache::new(config.role_cache_ttl, config.role_cache_max_entries);
        Ok(Self {
            config,
            endpoint,
            client,
            cache: Mutex::new(cache),
        })
    }

    /// Forgets a cached access token (e.g. on logout, when the server has it at hand).
    pub fn evict(&self, access_token: &str) {
        self.cache.lock().map.remove(&cache_key(access_token));
    }

    fn permitted(&self, principal: &Principal) -> bool {
        self.config
            .require_role
            .as_ref()
            .is_none_or(|role| *role == principal.role)
    }

    /// Asks the service who holds `token`, bypassing the cache.
    async fn me(&self, token: &str) -> Result<Principal, AuthError> {
        let data = self
            .call(&self.config.me_query, json!({}), Some(token), &[token])
            .await
            .map_err(|e| e.into_auth(AuthError::InvalidToken))?;
        match lookup(&data, &self.config.me_user_path) {
            None => Err(malformed("no user field")),
            Some(Value::Null) => Err(AuthError::InvalidToken("no user for this token".into())),
            Some(user) => self.principal(user),
        }
    }

    fn principal(&self, user: &Value) -> Result<Principal, AuthError> {
        let field = |path: &str| match lookup(user, path) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(malformed("user without uuid, email or role")),
        };
        Ok(Principal {
            uuid: field(&self.config.user_uuid_field)?,
            email: field(&self.config.user_email_field)?,
            role: field(&self.config.user_role_field)?.into(),
        })
    }

    /// Login or refresh: runs the operation's document and reads tokens and user at its
    /// paths. A "no" from the service is wrong credentials for login, a bad token otherwise.
    async fn exchange(&self, op: Op, vars: Value, secrets: &[&str]) -> Result<Tokens, AuthError> {
        let c = &self.config;
        let (document, access, refresh, user) = match op {
            Op::Login => (
                &c.login_mutation,
                &c.login_access_token_path,
                &c.login_refresh_token_path,
                &c.login_user_path,
            ),
            Op::Refresh => (
                &c.refresh_mutation,
                &c.refresh_access_token_path,
                &c.refresh_refresh_token_path,
                &c.refresh_user_path,
            ),
        };
        let rejected = |message: String| match op {
            Op::Login => AuthError::InvalidCredentials,
            Op::Refresh => AuthError::InvalidToken(message),
        };
        let answer = self.call(document, vars, None, secrets).await;
        let data = answer.map_err(|e| e.into_auth(rejected))?;
        let access_token = match lookup(&data, access) {
            Some(Value::String(t)) if !t.is_empty() => t.clone(),
            Some(Value::Null) => return Err(rejected("refresh token rejected".into())),
            _ => return Err(malformed("no access token")),
        };
        let refresh_token = lookup(&data, refresh)
            .and_then(Value::as_str)
            .map(str::to_owned);
        let user = match lookup(&data, user) {
            Some(user) if !user.is_null() => self.principal(user)?,
            _ => self.me(&access_token).await?,
        };
        if !self.permitted(&user) {
            return Err(rejected(NOT_PERMITTED.into()));
        }
        let key = cache_key(&access_token);
        self.cache.lock().insert(key, user.clone(), Instant::now());
        Ok(Tokens {
            access_token,
            refresh_token,
            expires_in: c.default_expires_in_secs,
            user,
        })
    }

    /// POSTs one GraphQL operation and returns its `data`. `secrets` are redacted from
    /// any message the service sends back.
    async fn call(
        &self,
        document: &str,
        variables: Value,
        bearer: Option<&str>,
        secrets: &[&str],
    ) -> Result<Value, CallError> {
        let body = json!({ "query": document, "variables": variables });
        let mut request = self.client.post(self.endpoint.clone()).json(&body);
        if let Some(token) = bearer {
            let mut value = HeaderValue::try_from(format!("Bearer {token}"))
                .map_err(|_| CallError::Rejected("token is not a valid header value".into()))?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        let answered = format!("identity service answered {status}");
        if matches!(status.as_u16(), 401 | 403) {
            return Err(CallError::Rejected(answered));
        }
        if !status.is_success() {
            return Err(CallError::Unavailable(answered));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(CallError::Unavailable("response too large".into()));
            }
            bytes.extend_from_slice(&chunk);
        }
        parse_response(&bytes, secrets)
    }
}

#[async_trait::async_trait]
impl IdentityProvider for GraphqlProvider {
    async fn authenticate(&self, access_token: &str) -> Result<Principal, AuthError> {
        if access_token.is_empty() {
            return Err(AuthError::InvalidToken("empty token".into()));
        }
        let key = cache_key(access_token);
        let cached = self.cache.lock().get(&key, Instant::now());
        let principal = match cached {
            Some(principal) => principal,
            None => {
                let principal = self.me(access_token).await?;
                let now = Instant::now();
                self.cache.lock().insert(key, principal.clone(), now);
                principal
            }
        };
        if !self.permitted(&principal) {
            return Err(AuthError::InvalidToken(NOT_PERMITTED.into()));
        }
        Ok(principal)
    }

    async fn login(&self, email: &str, password: &str) -> Result<Tokens, AuthError> {
        let vars = json!({ "email": email, "password": password });
        self.exchange(Op::Login, vars, &[email, password]).await
    }

    async fn refresh(&self, refresh_token: &str) -> Result<Tokens, AuthError> {
        let vars = json!({ "refreshToken": refresh_token });
        self.exchange(Op::Refresh, vars, &[refresh_token]).await
    }

    /// Forgets the access token's cached principal (so a token the service revoked at
    /// logout is not honoured here for the rest of the cache TTL), then, best effort,
    /// runs `logout_mutation` if configured and ignores its outcome, so a client can
    /// always log out locally.
    async fn logout(
        &self,
        access_token: Option<&str>,
        refresh_token: Option<&str>,
    ) -> Result<(), AuthError> {
        if let Some(token) = access_token {
            self.evict(token);
        }
        let Some(document) = &self.config.logout_mutation else {
            return Ok(());
        };
        if access_token.is_none() && refresh_token.is_none() {
            return Ok(());
        }
        // Services that know the session from the bearer (appointment360) and services
        // that take the refresh token both get what they need.
        let variables = json!({ "refreshToken": refresh_token });
        let secrets: Vec<&str> = access_token.into_iter().chain(refresh_token).collect();
        let _ = self.call(document, variables, access_token, &secrets).await;
        Ok(())
    }
}

/// How one GraphQL call went wrong.
#[derive(Debug)]
enum CallError {
    /// The service answered and said no.
    Rejected(String),
    /// No usable answer.
    Unavailable(String),
}

impl CallError {
    fn into_auth(self, rejected: impl FnOnce(String) -> AuthError) -> AuthError {
        match self {
            CallError::Rejected(message) => rejected(message),
            CallError::Unavailable(message) => AuthError::Unavailable(message),
        }
    }
}

fn transport(e: reqwest::Error) -> CallError {
    let what = if e.is_timeout() {
        "request timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    CallError::Unavailable(what.into())
}

fn malformed(what: &str) -> AuthError {
    AuthError::Unavailable(format!("malformed identity service response: {what}"))
}

/// Interprets a 2xx body: GraphQL `errors` → rejected; `data` object → ok; else unavailable.
fn parse_response(body: &[u8], secrets: &[&str]) -> Result<Value, CallError> {
    let unavailable =
        |what: &str| CallError::Unavailable(format!("malformed identity service response: {what}"));
    let mut doc: Value = serde_json::from_slice(body).map_err(|_| unavailable("not JSON"))?;
    match doc.get("errors") {
        None | Some(Value::Null) => {}
        Some(Value::Array(errors)) if errors.is_empty() => {}
        Some(errors) => {
            let message = errors
                .pointer("/0/message")
                .and_then(Value::as_str)
                .unwrap_or("request rejected");
            return Err(CallError::Rejected(redact(message, secrets)));
        }
    }
    match doc.get_mut("data").map(Value::take) {
        Some(data @ Value::Object(_)) => Ok(data),
        _ => Err(unavailable("no data")),
    }
}

/// Removes secrets from (then shortens) a message written by the service.
fn redact(message: &str, secrets: &[&str]) -> String {
    let mut message = message.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        message = message.replace(secret, "[redacted]");
    }
    message.chars().take(MAX_MESSAGE_CHARS).collect()
}

/// Follows a dot-path (`auth.login.user`, `items.0.id`); through a null it yields null.
fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .try_fold(root, |value, segment| match value {
            Value::Null => Some(value),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => value.get(segment),
        })
}

/// SHA-256 (hex) of the whole token: never a prefix, see the module docs.
fn cache_key(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Principals by token hash, expiring after `ttl`, at most `max` of them. All entries
/// share one TTL, so insertion order is expiry order and the oldest go first.
struct RoleCache {
    ttl: Duration,
    max: usize,
    map: HashMap<String, (Principal, Instant)>,
    order: VecDeque<(String, Instant)>,
}

impl RoleCache {
    fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn get(&self, key: &str, now: Instant) -> Option<Principal> {
        let (principal, at) = self.map.get(key)?;
        (now.saturating_duration_since(*at) < self.ttl).then(|| principal.clone())
    }

    fn insert(&mut self, key: String, principal: Principal, now: Instant) {
        if self.max == 0 || self.ttl.is_zero() {
            return;
        }
        self.map.insert(key.clone(), (principal, now));
        self.order.push_back((key, now));
        while let Some((key, at)) = self.order.front() {
            // A queue entry is stale if its key was re-inserted (or evicted) since.
            let live = self.map.get(key).is_some_and(|(_, t)| t == at);
            let expired = now.saturating_duration_since(*at) >= self.ttl;
            if live && !expired && self.map.len() <= self.max {
                break;
            }
            if live {
                self.map.remove(key);
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bucketbase_testkit::fake_identity::{
        FakeIdentity, FakeUser, JWT_HEADER, b64url, spawn_fake_identity,
    };

    const ROOT: &str = "root@example.com";
    const STAFF: &str = "staff@example.com";

    async fn setup(tweak: impl FnOnce(&mut GraphqlConfig)) -> (FakeIdentity, GraphqlProvider) {
        let idp = spawn_fake_identity(vec![
            FakeUser::new("uuid-root", ROOT, "root-password", "SuperAdmin"),
            FakeUser::new("uuid-staff", STAFF, "staff-password", "staff"),
        ])
        .await;
        let mut config = GraphqlConfig {
            endpoint: idp.url().to_owned(),
            ..GraphqlConfig::default()
        };
        tweak(&mut config);
        (idp, GraphqlProvider::new(config).unwrap())
    }

    fn principal(uuid: &str, email: &str, role: &str) -> Principal {
        Principal {
            uuid: uuid.into(),
            email: email.into(),
            role: role.into(),
        }
    }

    fn is_unavailable(r: &Result<Principal, AuthError>) -> bool {
        matches!(r, Err(AuthError::Unavailable(_)))
    }

    #[tokio::test]
    async fn login_returns_tokens_and_user() {
        let (idp, p) = setup(|_| {}).await;
        let tokens = p.login(ROOT, "root-password").await.unwrap();
        assert_eq!(tokens.user, principal("uuid-root", ROOT, "SuperAdmin"));
        assert!(
            tokens
                .access_token
                .starts_with(&b64url(JWT_HEADER.as_bytes()))
        );
        assert!(tokens.refresh_token.is_some());
        assert_eq!(tokens.expires_in, 900);
        // Login's user is cached: authenticating the new token asks nothing.
        assert_eq!(
            p.authenticate(&tokens.access_token).await.unwrap(),
            tokens.user
        );
        assert_eq!(idp.calls(), 0);
    }

    #[tokio::test]
    async fn wrong_credentials_are_invalid_credentials() {
        let (_idp, p) = setup(|_| {}).await;
        assert_eq!(
            p.login(ROOT, "nope").await,
            Err(AuthError::InvalidCredentials)
        );
        assert_eq!(
            p.login("who@example.com", "root-password").await,
            Err(AuthError::InvalidCredentials)
        );
    }

    #[tokio::test]
    async fn authenticate_returns_the_principal() {
        let (idp, p) = setup(|_| {}).await;
        let token = idp.issue_token(STAFF);
        assert_eq!(
            p.authenticate(&token).await.unwrap(),
            principal("uuid-staff", STAFF, "staff")
        );
        assert_eq!(idp.calls(), 1);
    }

    #[tokio::test]
    async fn unknown_token_is_invalid_and_not_echoed() {
        let (idp, p) = setup(|_| {}).await;
        let token = idp.issue_token(ROOT);
        idp.revoke(&token);
        let Err(AuthError::InvalidToken(message)) = p.authenticate(&token).await else {
            panic!()
        };
        assert!(!message.contains(&token));
        assert!(matches!(
            p.authenticate("").await,
            Err(AuthError::InvalidToken(_))
        ));
        // Not a header value: the caller's fault (401), not an outage (503).
        assert!(matches!(
            p.authenticate("a\nb").await,
            Err(AuthError::InvalidToken(_))
        ));
        // A service echoing the token back has it redacted.
        let echo = format!(r#"{{"errors":[{{"message":"bad token {token}"}}],"data":null}}"#);
        idp.set_response(Some((200, &echo)));
        let Err(AuthError::InvalidToken(message)) = p.authenticate(&token).await else {
            panic!()
        };
        assert_eq!(message, "bad token [redacted]");
    }

    #[tokio::test]
    async fn principals_are_cached_within_the_ttl() {
        let (idp, p) = setup(|_| {}).await;
        let token = idp.issue_token(ROOT);
        p.authenticate(&token).await.unwrap();
        p.authenticate(&token).await.unwrap();
        assert_eq!(idp.calls(), 1);
        p.evict(&token);
        p.authenticate(&token).await.unwrap();
        assert_eq!(idp.calls(), 2);
    }

    #[tokio::test]
    async fn the_cache_expires_after_the_ttl() {
        let (idp, p) = setup(|c| c.role_cache_ttl = Duration::from_millis(100)).await;
        let token = idp.issue_token(ROOT);
        assert_eq!(p.authenticate(&token).await.unwrap().role, "SuperAdmin");
        idp.set_role(ROOT, "staff");
        assert_eq!(p.authenticate(&token).await.unwrap().role, "SuperAdmin");
        assert_eq!(idp.calls(), 1);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(p.authenticate(&token).await.unwrap().role, "staff");
        assert_eq!(idp.calls(), 2);
    }

    #[tokio::test]
    async fn the_cache_is_keyed_by_the_whole_token() {
        let (idp, p) = setup(|_| {}).await;
        let root = idp.issue_token(ROOT);
        let staff = idp.issue_token(STAFF);
        let shared = root
            .chars()
            .zip(staff.chars())
            .take_while(|(a, b)| a == b)
            .count();
        assert!(shared >= 100, "tokens share only {shared} characters");
        assert_eq!(p.authenticate(&root).await.unwrap().role, "SuperAdmin");
        assert_eq!(
            p.authenticate(&staff).await.unwrap(),
            principal("uuid-staff", STAFF, "staff")
        );
        assert_eq!(idp.calls(), 2);
    }

    #[tokio::test]
    async fn refresh_returns_new_tokens() {
        let (idp, p) = setup(|_| {}).await;
        let first = p.login(STAFF, "staff-password").await.unwrap();
        let old = first.refresh_token.unwrap();
        let second = p.refresh(&old).await.unwrap();
        assert_eq!(second.user, first.user);
        assert_ne!(second.access_token, first.access_token);
        assert_ne!(second.refresh_token.as_deref(), Some(old.as_str()));
        assert_eq!(
            p.authenticate(&second.access_token).await.unwrap(),
            first.user
        );
        assert_eq!(idp.calls(), 0);
        // The fake rotates refresh tokens: the old one is spent.
        let Err(AuthError::InvalidToken(message)) = p.refresh(&old).await else {
            panic!()
        };
        assert!(!message.contains(&old));
    }

    #[tokio::test]
    async fn an_outage_is_unavailable_but_cached_principals_survive_it() {
        let (idp, p) = setup(|_| {}).await;
        let cached = idp.issue_token(ROOT);
        let uncached = idp.issue_token(STAFF);
        p.authenticate(&cached).await.unwrap();
        idp.set_down(true);
        assert!(is_unavailable(&p.authenticate(&uncached).await));
        assert!(matches!(
            p.login(ROOT, "root-password").await,
            Err(AuthError::Unavailable(_))
        ));
        assert_eq!(p.authenticate(&cached).await.unwrap().role, "SuperAdmin");
        // Connection refused too.
        idp.stop().await;
        assert!(is_unavailable(&p.authenticate(&uncached).await));
        assert_eq!(p.authenticate(&cached).await.unwrap().role, "SuperAdmin");
        assert_eq!(p.logout(None, Some("whatever")).await, Ok(()));
    }

    #[tokio::test]
    async fn malformed_answers_are_unavailable() {
        let (idp, p) = setup(|_| {}).await;
        let token = idp.issue_token(ROOT);
        for body in [
            "<html>oops</html>",
            "{}",
            r#"{"data": 3}"#,
            r#"{"data":{"me":{"uuid":"x"}}}"#,
            r#"{"data":{}}"#,
        ] {
            idp.set_response(Some((200, body)));
            assert!(is_unavailable(&p.authenticate(&token).await), "{body}");
        }
        idp.set_response(Some((500, "{}")));
        assert!(is_unavailable(&p.authenticate(&token).await));
        idp.set_response(Some((302, "")));
        assert!(is_unavailable(&p.authenticate(&token).await));
        idp.set_response(None);
        assert!(p.authenticate(&token).await.is_ok());
    }

    #[tokio::test]
    async fn unauthorized_and_null_users_are_invalid_tokens() {
        let (idp, p) = setup(|_| {}).await;
        let token = idp.issue_token(ROOT);
        for (status, body) in [(401, ""), (403, "{}"), (200, r#"{"data":{"me":null}}"#)] {
            idp.set_response(Some((status, body)));
            assert!(
                matches!(
                    p.authenticate(&token).await,
                    Err(AuthError::InvalidToken(_))
                ),
                "{status}"
            );
        }
    }

    #[tokio::test]
    async fn slow_services_time_out() {
        let (idp, p) = setup(|c| c.request_timeout = Duration::from_millis(100)).await;
        idp.set_delay(Duration::from_millis(500));
        assert!(is_unavailable(
            &p.authenticate(&idp.issue_token(ROOT)).await
        ));
    }

    #[tokio::test]
    async fn require_role_rejects_other_roles() {
        let (idp, p) = setup(|c| c.require_role = Some("SuperAdmin".into())).await;
        assert!(p.authenticate(&idp.issue_token(ROOT)).await.is_ok());
        assert!(matches!(
            p.authenticate(&idp.issue_token(STAFF)).await,
            Err(AuthError::InvalidToken(_))
        ));
        assert_eq!(
            p.login(STAFF, "staff-password").await,
            Err(AuthError::InvalidCredentials)
        );
        assert!(p.login(ROOT, "root-password").await.is_ok());
    }

    #[tokio::test]
    async fn logout_runs_the_configured_mutation() {
        let (_idp, p) = setup(|_| {}).await;
        let tokens = p.login(ROOT, "root-password").await.unwrap();
        assert_eq!(
            p.logout(None, tokens.refresh_token.as_deref()).await,
            Ok(())
        );
        assert!(
            p.refresh(tokens.refresh_token.as_deref().unwrap())
                .await
                .is_ok(),
            "no logout mutation by default"
        );

        let logout = "mutation Logout($refreshToken: String!) { auth { logout(input: {refreshToken: $refreshToken}) } }";
        let (idp, p) = setup(|c| c.logout_mutation = Some(logout.into())).await;
        let tokens = p.login(ROOT, "root-password").await.unwrap();
        assert_eq!(
            p.logout(None, tokens.refresh_token.as_deref()).await,
            Ok(())
        );
        assert!(
            p.refresh(tokens.refresh_token.as_deref().unwrap())
                .await
                .is_err()
        );
        assert_eq!(p.logout(None, None).await, Ok(()));
        assert_eq!(idp.requests(), 3);
    }

    #[tokio::test]
    async fn a_missing_user_in_the_login_result_is_asked_for() {
        let login = "mutation Login($email: String!, $password: String!) { auth { login(input: {email: $email, password: $password}) { accessToken refreshToken } } }";
        let (idp, p) = setup(|c| {
            c.login_mutation = login.into();
            c.login_user_path = "auth.login.nothing".into();
        })
        .await;
        assert_eq!(
            p.login(STAFF, "staff-password").await.unwrap().user.role,
            "staff"
        );
        assert_eq!(idp.calls(), 1);
    }

    #[tokio::test]
    async fn secrets_stay_out_of_debug_and_errors() {
        let (idp, p) = setup(|_| {}).await;
        let tokens = p.login(ROOT, "root-password").await.unwrap();
        let debug = format!("{p:?}");
        assert!(!debug.contains(&tokens.access_token) && !debug.contains("root-password"));
        idp.set_response(Some((
            200,
            r#"{"errors":[{"message":"root-password is wrong"}]}"#,
        )));
        assert_eq!(
            p.login(ROOT, "root-password").await,
            Err(AuthError::InvalidCredentials)
        );
        let Err(error) = p.refresh(&tokens.access_token).await else {
            panic!()
        };
        assert!(!error.to_string().contains(&tokens.access_token));
    }

    #[test]
    fn config_defaults_and_parsing() {
        let config: GraphqlConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, GraphqlConfig::default());
        assert_eq!(config.role_cache_ttl, Duration::from_secs(300));
        assert_eq!(config.request_timeout, Duration::from_secs(5));
        let config: GraphqlConfig = serde_json::from_str(
            r#"{"endpoint":"https://a360.example/graphql","role_cache_ttl_secs":0.5,"request_timeout_secs":2,"require_role":"SuperAdmin"}"#,
        )
        .unwrap();
        assert_eq!(config.role_cache_ttl, Duration::from_millis(500));
        assert_eq!(config.require_role.as_deref(), Some("SuperAdmin"));
        assert!(serde_json::from_str::<GraphqlConfig>(r#"{"require_rol":"SuperAdmin"}"#).is_err());
        assert!(serde_json::from_str::<GraphqlConfig>(r#"{"role_cache_ttl_secs":-1}"#).is_err());
        for endpoint in ["not a url", "ftp://x/graphql", "https://user:pw@x/graphql"] {
            let config = GraphqlConfig {
                endpoint: endpoint.into(),
                ..GraphqlConfig::default()
            };
            assert!(GraphqlProvider::new(config).is_err(), "{endpoint}");
        }
    }

    #[test]
    fn the_cache_is_bounded_and_expires() {
        let p = |n: &str| principal(n, n, "r");
        let t0 = Instant::now();
        let mut cache = RoleCache::new(Duration::from_secs(10), 2);
        cache.insert("a".into(), p("a"), t0);
        cache.insert("b".into(), p("b"), t0);
        cache.insert("a".into(), p("a2"), t0 + Duration::from_secs(1)); // refresh "a"
        cache.insert("c".into(), p("c"), t0 + Duration::from_secs(2)); // evicts "b", the oldest
        let now = t0 + Duration::from_secs(3);
        assert_eq!(cache.get("a", now).map(|p| p.uuid), Some("a2".into()));
        assert_eq!(cache.get("b", now), None);
        assert!(cache.get("c", now).is_some());
        assert_eq!(cache.get("a", t0 + Duration::from_secs(11)), None);
        cache.insert("d".into(), p("d"), t0 + Duration::from_secs(12)); // prunes expired "a", "c"
        assert_eq!(cache.map.len(), 1);
        assert_eq!(cache.order.len(), 1);
    }

    #[test]
    fn helpers() {
        assert_eq!(
            b64url(JWT_HEADER.as_bytes()),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
        );
        assert_eq!(b64url(b"ab"), "YWI");
        assert_eq!(b64url(b"a"), "YQ");
        let v = json!({"a": {"b": [{"c": 1}], "n": null}});
        assert_eq!(lookup(&v, "a.b.0.c"), Some(&json!(1)));
        assert_eq!(lookup(&v, "a.n.x"), Some(&Value::Null));
        assert_eq!(lookup(&v, "a.z"), None);
        assert_eq!(cache_key("x").len(), 64);
        assert_ne!(cache_key("same-prefix-1"), cache_key("same-prefix-2"));
    }
}
