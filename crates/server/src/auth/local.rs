//! The `local` identity provider: users stored by Bucketbase itself, argon2id passwords,
//! short-lived access JWTs ([`super::jwt`]) and rotating refresh tokens.
//!
//! Design choices:
//! - **Storage behind [`UserStore`].** The provider does not know about the engine; the
//!   database-backed store implements the trait, tests use [`MemoryUserStore`].
//! - **Passwords** are argon2id PHC strings. An unknown email is verified against a dummy
//!   hash with the same parameters, so response time does not reveal which emails exist;
//!   a wrong password, an unknown email and a disabled account all answer
//!   [`AuthError::InvalidCredentials`]. Emails are compared lowercased and trimmed.
//! - **Refresh tokens** are 256 random bits, base64url, and not JWTs, so a refresh token
//!   never passes as an access token nor the reverse. The store keeps only their SHA-256:
//!   a leaked table yields no usable token, and lookups by hash leak nothing useful.
//! - **Rotation with reuse detection.** Every refresh marks the presented token used and
//!   issues a new one in the same *family* (one login). Presenting a used token means two
//!   parties hold it (one of them stole it): the whole family, including the newest
//!   token, is revoked. The store's `rotate_session` is an atomic compare-and-set, so two
//!   racing refreshes with one token count as reuse too.
//! - **Access tokens are re-checked against the store.** `authenticate` looks the user up
//!   by `sub` and returns the stored email and role: disabling, deleting or demoting a user
//!   takes effect on the next request, not when the token expires. Logout revokes the
//!   refresh family; an access token already handed out stays valid until it expires
//!   (at most the access lifetime, 15 minutes by default).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::jwt::{ConfigError, DEFAULT_ACCESS_TTL, JwtIssuer, Now, invalid};
use super::{AuthError, IdentityProvider, Principal, Tokens};

/// Default refresh-token lifetime (each rotation starts a new one).
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Length of a refresh token: 32 bytes in unpadded base64url.
const REFRESH_TOKEN_LEN: usize = 43;
/// Longer passwords are refused without hashing (bounds the work per request).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// A user as the store keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredUser {
    pub uuid: String,
    /// Lowercase (see [`normalize_email`]).
    pub email: String,
    pub role: super::Role,
    /// argon2id PHC string from [`hash_password`].
    pub password_hash: String,
    pub disabled: bool,
}

impl fmt::Debug for StoredUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredUser")
            .field("uuid", &self.uuid)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("password_hash", &"<redacted>")
            .field("disabled", &self.disabled)
            .finish()
    }
}

impl StoredUser {
    pub fn principal(&self) -> Principal {
        Principal {
            uuid: self.uuid.clone(),
            email: self.email.clone(),
            role: self.role.clone(),
        }
    }
}

/// Where a refresh token is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// The newest token of its family: may be exchanged once.
    Active,
    /// Exchanged already; presenting it again is reuse.
    Rotated,
    /// Ended by logout or reuse detection.
    Revoked,
}

/// One refresh token, stored by hash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshSession {
    /// Hex SHA-256 of the token ([`hash_refresh_token`]); the token itself is never stored.
    pub token_hash: String,
    /// Shared by every token descending from one login.
    pub family_id: String,
    pub user_uuid: String,
    /// Unix seconds.
    pub created_at: u64,
    pub expires_at: u64,
    pub state: SessionState,
}

/// The token hash is credential material: never in logs (`{:?}`).
impl fmt::Debug for RefreshSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshSession")
            .field("token_hash", &"<redacted>")
            .field("family_id", &self.family_id)
            .field("user_uuid", &self.user_uuid)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("state", &self.state)
            .finish()
    }
}

/// What [`UserStore::rotate_session`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The old session was active: it is now rotated and the new one stored.
    Rotated,
    /// The old session had been rotated before: reuse. Nothing was stored.
    AlreadyUsed,
    /// The old session is missing or revoked. Nothing was stored.
    NotActive,
}

/// Users and refresh sessions, as the local provider needs them.
#[async_trait]
pub trait UserStore: Send + Sync + fmt::Debug {
    /// `email` is already normalized (lowercase).
    async fn find_by_email(&self, email: &str) -> Result<Option<StoredUser>, AuthError>;
    async fn find_by_id(&self, uuid: &str) -> Result<Option<StoredUser>, AuthError>;
    async fn create_session(&self, session: RefreshSession) -> Result<(), AuthError>;
    async fn find_session(&self, token_hash: &str) -> Result<Option<RefreshSession>, AuthError>;
    /// Atomically: if `old_hash` is [`SessionState::Active`], mark it
    /// [`SessionState::Rotated`] and store `new`; otherwise store nothing.
    async fn rotate_session(
        &self,
        old_hash: &str,
        new: RefreshSession,
    ) -> Result<RotateOutcome, AuthError>;
    /// Marks every session of the family [`SessionState::Revoked`].
    async fn revoke_family(&self, family_id: &str) -> Result<(), AuthError>;
}

/// An in-memory [`UserStore`] for tests.
#[derive(Default)]
pub struct MemoryUserStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    users: HashMap<String, StoredUser>,
    sessions: HashMap<String, RefreshSession>,
}

impl fmt::Debug for MemoryUserStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("MemoryUserStore")
            .field("users", &inner.users.len())
            .field("sessions", &inner.sessions.len())
            .finish()
    }
}

impl MemoryUserStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts or replaces a user (by uuid); the email is normalized.
    pub fn put_user(&self, mut user: StoredUser) {
        user.email = normalize_email(&user.email);
        self.inner.lock().users.insert(user.uuid.clone(), user);
    }

    pub fn remove_user(&self, uuid: &str) {
        self.inner.lock().users.remove(uuid);
    }

    /// All sessions of a family (for tests).
    pub fn family(&self, family_id: &str) -> Vec<RefreshSession> {
        let inner = self.inner.lock();
        let family = inner.sessions.values().filter(|s| s.family_id == family_id);
        family.cloned().collect()
    }
}

#[async_trait]
impl UserStore for MemoryUserStore {
    async fn find_by_email(&self, email: &str) -> Result<Option<StoredUser>, AuthError> {
        let email = normalize_email(email);
        let inner = self.inner.lock();
        Ok(inner.users.values().find(|u| u.email == email).cloned())
    }

    async fn find_by_id(&self, uuid: &str) -> Result<Option<StoredUser>, AuthError> {
        Ok(self.inner.lock().users.get(uuid).cloned())
    }

    async fn create_session(&self, session: RefreshSession) -> Result<(), AuthError> {
        let mut inner = self.inner.lock();
        inner.sessions.insert(session.token_hash.clone(), session);
        Ok(())
    }

    async fn find_session(&self, token_hash: &str) -> Result<Option<RefreshSession>, AuthError> {
        Ok(self.inner.lock().sessions.get(token_hash).cloned())
    }

    async fn rotate_session(
        &self,
        old_hash: &str,
        new: RefreshSession,
    ) -> Result<RotateOutcome, AuthError> {
        let mut inner = self.inner.lock();
        let outcome = match inner.sessions.get_mut(old_hash) {
            Some(old) if old.state == SessionState::Active => {
                old.state = SessionState::Rotated;
                RotateOutcome::Rotated
            }
            Some(old) if old.state == SessionState::Rotated => RotateOutcome::AlreadyUsed,
            _ => RotateOutcome::NotActive,
        };
        if outcome == RotateOutcome::Rotated {
            inner.sessions.insert(new.token_hash.clone(), new);
        }
        Ok(outcome)
    }

    async fn revoke_family(&self, family_id: &str) -> Result<(), AuthError> {
        let mut inner = self.inner.lock();
        for s in inner.sessions.values_mut() {
            if s.family_id == family_id {
                s.state = SessionState::Revoked;
            }
        }
        Ok(())
    }
}

/// Lowercased and trimmed: the form emails are stored and compared in.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Hashes a password with argon2id (default parameters, random salt) into a PHC string.
/// CPU-heavy: call it from `spawn_blocking` on async paths.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|_| AuthError::Unavailable("password hashing failed".to_owned()))
}

/// Checks a password against a PHC string; a malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// A random 24-character password (144 bits), e.g. for the first SuperAdmin.
pub fn generate_password() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>())
}

/// The stored form of a refresh token: hex SHA-256.
pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Lifetimes of the local provider's tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            access_ttl: DEFAULT_ACCESS_TTL,
            refresh_ttl: DEFAULT_REFRESH_TTL,
        }
    }
}

/// The `local` identity provider.
pub struct LocalProvider {
    store: Arc<dyn UserStore>,
    jwt: JwtIssuer,
    refresh_ttl: u64,
    now: Now,
    /// Verified against when the email is unknown, so timing matches a real user's.
    dummy_hash: String,
}

impl fmt::Debug for LocalProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalProvider")
            .field("store", &self.store)
            .field("jwt", &self.jwt)
            .field("refresh_ttl_secs", &self.refresh_ttl)
            .finish_non_exhaustive()
    }
}

impl LocalProvider {
    /// `secret` signs access tokens (at least 32 bytes). Computes one argon2 hash.
    pub fn new(
        store: Arc<dyn UserStore>,
        secret: &[u8],
        config: LocalConfig,
        now: Now,
    ) -> Result<Self, ConfigError> {
        let jwt = JwtIssuer::new(secret, now.clone())?.with_ttl(config.access_ttl);
        let dummy_hash = hash_password(&generate_password())
            .map_err(|_| ConfigError("cannot hash passwords".to_owned()))?;
        Ok(LocalProvider {
            store,
            jwt,
            refresh_ttl: config.refresh_ttl.as_secs().max(1),
            now,
            dummy_hash,
        })
    }

    /// Issues an access token and a new refresh token in `family_id`, returning the tokens
    /// and the session to store for the refresh token.
    fn issue(
        &self,
        user: &StoredUser,
        family_id: &str,
    ) -> Result<(Tokens, RefreshSession), AuthError> {
        let refresh_token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let now = (self.now)();
        let session = RefreshSession {
            token_hash: hash_refresh_token(&refresh_token),
            family_id: family_id.to_owned(),
            user_uuid: user.uuid.clone(),
            created_at: now,
            expires_at: now.saturating_add(self.refresh_ttl),
            state: SessionState::Active,
        };
        let principal = user.principal();
        let tokens = Tokens {
            access_token: self.jwt.issue(&principal)?,
            refresh_token: Some(refresh_token),
            expires_in: self.jwt.ttl_secs(),
            user: principal,
        };
        Ok((tokens, session))
    }

    async fn reuse_detected(&self, family_id: &str) -> AuthError {
        match self.store.revoke_family(family_id).await {
            Ok(()) => invalid("refresh token reused; session revoked"),
            Err(e) => e,
        }
    }
}

/// The stored hash of a well-formed refresh token; anything else is rejected unhashed.
fn refresh_token_hash(token: &str) -> Result<String, AuthError> {
    let well_formed = token.len() == REFRESH_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(invalid("malformed refresh token"));
    }
    Ok(hash_refresh_token(token))
}

#[async_trait]
impl IdentityProvider for LocalProvider {
    async fn authenticate(&self, access_token: &str) -> Result<Principal, AuthError> {
        let claims = self.jwt.verify(access_token)?;
        match self.store.find_by_id(&claims.sub).await? {
            Some(user) if !user.disabled => Ok(user.principal()),
            Some(_) => Err(invalid("user disabled")),
            None => Err(invalid("unknown user")),
        }
    }

    async fn login(&self, email: &str, password: &str) -> Result<Tokens, AuthError> {
        let user = self.store.find_by_email(&normalize_email(email)).await?;
        let hash = user
            .as_ref()
            .map_or_else(|| self.dummy_hash.clone(), |u| u.password_hash.clone());
        // Too long: refused without hashing; that path does not depend on the email.
        let password_ok = password.len() <= MAX_PASSWORD_LEN && {
            let password = password.to_owned();
            tokio::task::spawn_blocking(move || verify_password(&password, &hash))
                .await
                .map_err(|_| AuthError::Unavailable("password check failed".to_owned()))?
        };
        let user = match user {
            Some(user) if password_ok && !user.disabled => user,
            _ => return Err(AuthError::InvalidCredentials),
        };
        let family_id = hex::encode(rand::random::<[u8; 16]>());
        let (tokens, session) = self.issue(&user, &family_id)?;
        self.store.create_session(session).await?;
        Ok(tokens)
    }

    async fn refresh(&self, refresh_token: &str) -> Result<Tokens, AuthError> {
        let hash = refresh_token_hash(refresh_token)?;
        let Some(session) = self.store.find_session(&hash).await? else {
            return Err(invalid("unknown refresh token"));
        };
        match session.state {
            SessionState::Active => {}
            SessionState::Rotated => return Err(self.reuse_detected(&session.family_id).await),
            SessionState::Revoked => return Err(invalid("refresh token revoked")),
        }
        if (self.now)() >= session.expires_at {
            return Err(invalid("refresh token expired"));
        }
        let user = match self.store.find_by_id(&session.user_uuid).await? {
            Some(user) if !user.disabled => user,
            _ => {
                self.store.revoke_family(&session.family_id).await?;
                return Err(invalid("user unknown or disabled"));
            }
        };
        let (tokens, new_session) = self.issue(&user, &session.family_id)?;
        match self.store.rotate_session(&hash, new_session).await? {
            RotateOutcome::Rotated => Ok(tokens),
            RotateOutcome::AlreadyUsed => Err(self.reuse_detected(&session.family_id).await),
            RotateOutcome::NotActive => Err(invalid("refresh token revoked")),
        }
    }

    /// Access tokens are stateless JWTs that expire on their own: only the refresh
    /// session is revoked.
    async fn logout(
        &self,
        _access_token: Option<&str>,
        refresh_token: Option<&str>,
    ) -> Result<(), AuthError> {
        // Logging out with nothing, or with a token we don't know, is not an error.
        let Some(Ok(hash)) = refresh_token.map(refresh_token_hash) else {
            return Ok(());
        };
        if let Some(session) = self.store.find_session(&hash).await? {
            self.store.revoke_family(&session.family_id).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    const SECRET: &[u8] = b"local-provider-test-secret-0123456789";
    const T0: u64 = 1_700_000_000;

    struct Fixture {
        store: Arc<MemoryUserStore>,
        auth: LocalProvider,
        time: Arc<AtomicU64>,
    }

    fn user(uuid: &str, email: &str, password: &str) -> StoredUser {
        StoredUser {
            uuid: uuid.into(),
            email: email.into(),
            role: "staff".into(),
            password_hash: hash_password(password).expect("hash"),
            disabled: false,
        }
    }

    fn fixture() -> Fixture {
        let store = Arc::new(MemoryUserStore::new());
        store.put_user(user("u-1", "Alice@Example.com", "correct horse"));
        let time = Arc::new(AtomicU64::new(T0));
        let t = time.clone();
        let now: Now = Arc::new(move || t.load(Ordering::SeqCst));
        let auth = LocalProvider::new(store.clone(), SECRET, LocalConfig::default(), now)
            .expect("provider");
        Fixture { store, auth, time }
    }

    fn refresh_of(t: &Tokens) -> &str {
        t.refresh_token.as_deref().expect("refresh token")
    }

    fn assert_invalid<T: fmt::Debug>(r: Result<T, AuthError>) {
        assert!(matches!(r, Err(AuthError::InvalidToken(_))), "{r:?}");
    }

    #[tokio::test]
    async fn login_then_authenticate() {
        let f = fixture();
        let t = f
            .auth
            .login("  ALICE@example.COM ", "correct horse")
            .await
            .expect("login");
        assert_eq!(
            (t.expires_in, t.user.email.as_str()),
            (900, "alice@example.com")
        );
        let p = f
            .auth
            .authenticate(&t.access_token)
            .await
            .expect("authenticate");
        assert_eq!((p.uuid.as_str(), p.role.as_str()), ("u-1", "staff"));
    }

    #[tokio::test]
    async fn bad_credentials_are_indistinguishable() {
        let f = fixture();
        let wrong = f.auth.login("alice@example.com", "wrong").await;
        let unknown = f.auth.login("bob@example.com", "correct horse").await;
        let long = f
            .auth
            .login("alice@example.com", &"x".repeat(MAX_PASSWORD_LEN + 1))
            .await;
        for r in [wrong, unknown, long] {
            assert_eq!(r, Err(AuthError::InvalidCredentials));
        }
    }

    #[tokio::test]
    async fn disabled_or_deleted_user_is_refused() {
        let f = fixture();
        let t = f
            .auth
            .login("alice@example.com", "correct horse")
            .await
            .expect("login");
        let mut alice = f
            .store
            .find_by_id("u-1")
            .await
            .expect("find")
            .expect("alice");
        alice.disabled = true;
        f.store.put_user(alice.clone());
        assert_invalid(f.auth.authenticate(&t.access_token).await);
        assert_invalid(f.auth.refresh(refresh_of(&t)).await);
        let login = f.auth.login("alice@example.com", "correct horse").await;
        assert_eq!(login, Err(AuthError::InvalidCredentials));
        alice.disabled = false;
        f.store.put_user(alice);
        f.auth
            .authenticate(&t.access_token)
            .await
            .expect("re-enabled");
        f.store.remove_user("u-1");
        assert_invalid(f.auth.authenticate(&t.access_token).await);
    }

    #[tokio::test]
    async fn role_is_reread_from_the_store() {
        let f = fixture();
        let t = f
            .auth
            .login("alice@example.com", "correct horse")
            .await
            .expect("login");
        let mut alice = f
            .store
            .find_by_id("u-1")
            .await
            .expect("find")
            .expect("alice");
        alice.role = "guest".into();
        f.store.put_user(alice);
        let p = f
            .auth
            .authenticate(&t.access_token)
            .await
            .expect("authenticate");
        assert_eq!(p.role, "guest");
    }

    #[tokio::test]
    async fn tokens_do_not_cross_over() {
        let f = fixture();
        let t = f
            .auth
            .login("alice@example.com", "correct horse")
            .await
            .expect("login");
        assert_invalid(f.auth.authenticate(refresh_of(&t)).await);
        assert_invalid(f.auth.refresh(&t.access_token).await);
        assert_invalid(f.auth.refresh("").await);
    }

    #[tokio::test]
    async fn refresh_rotates_and_reuse_revokes_the_family() {
        let f = fixture();
        let t0 = f
            .auth
            .login("alice@example.com", "correct horse")
            .await
            .expect("login");
        let t1 = f
            .auth
            .refresh(refresh_of(&t0))
            .await
            .expect("first refresh");
        assert_ne!(refresh_of(&t0), refresh_of(&t1));
        f.auth
            .authenticate(&t1.access_token)
            .await
            .expect("new access token");
        let t2 = f
            .auth
            .refresh(refresh_of(&t1))
            .await
            .expect("second refresh");
        // The first token comes back: reuse. It fails, and so does the newest one.
        assert_invalid(f.auth.refresh(refresh_of(&t0)).await);
        assert_invalid(f.auth.refresh(refresh_of(&t2)).await);
        let family = f.store.family(
            &f.store
                .find_session(&hash_refresh_token(refresh_of(&t2)))
                .await
                .expect("find")
                .expect("session")
                .family_id,
        );
        assert_eq!(family.len(), 3);
        assert!(family.iter().all(|s| s.state == SessionState::Revoked));
        // Another login is a new family and unaffected.
        let fresh = f
            .auth
            .login("alice@example.com", "correct horse")
            .await
            .expect("login");
        f.auth
            .refresh(refresh_of(&fresh))
            .await
            .expect("other family");
    }

    #[tokio::test]
    async fn only_hashes_are_stored() {
        let f = fixture();
        let t = f
            .auth
            .login("alice@example.com", "correct horse")
            .await
            .expect("login");
        let stored = format!(
            "{:?}",
            f.store
                .find_session(&hash_refresh_token(refresh_of(&t)))
                .await
        );
        assert!(!stored.contains(refresh_of(&t)));
        assert_eq!(refresh_of(&t).len(), REFRESH_TOKEN_LEN);
        let shown = format!("{:?} {:?}", f.auth, f.store.find_by_id("u-1").await);
        assert!(!shown.contains("argon2") && !shown.contains(SECRET_STR));
    }
    const SECRET_STR: &str = "local-provider-test-secret";

    #[tokio::test]
    async fn refresh_and_access_expire() {
        let f = fixture();
        let t = f
            .auth
            .login("alice@example.com", "correct horse")
            .await
            .expect("login");
        f.time.store(T0 + 16 * 60, Ordering::SeqCst);
        assert_invalid(f.auth.authenticate(&t.access_token).await);
        let t = f
            .auth
            .refresh(refresh_of(&t))
            .await
            .expect("refresh after access expiry");
        f.time
            .fetch_add(DEFAULT_REFRESH_TTL.as_secs(), Ordering::SeqCst);
        assert_invalid(f.auth.refresh(refresh_of(&t)).await);
    }

    #[tokio::test]
    async fn logout_revokes_the_session() {
        let f = fixture();
        let t = f
            .auth
            .login("alice@example.com", "correct horse")
            .await
            .expect("login");
        f.auth.logout(None, None).await.expect("no token");
        f.auth
            .logout(None, Some("not-a-token"))
            .await
            .expect("unknown token");
        f.auth
            .logout(None, Some(refresh_of(&t)))
            .await
            .expect("logout");
        assert_invalid(f.auth.refresh(refresh_of(&t)).await);
    }

    #[test]
    fn passwords() {
        let h = hash_password("pw").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("pw", &h) && !verify_password("pW", &h));
        assert!(!verify_password("pw", "not a phc string"));
        assert_eq!(generate_password().len(), 24);
    }
}
