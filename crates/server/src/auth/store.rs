//! The local provider's users and refresh sessions, kept in the database itself.
//!
//! Users and sessions are records of the system collections `_users` and `_sessions`
//! (unreachable through the generic records API, whose collection names cannot start with
//! `_`). Every change is a transaction: a rotation reads the old session and writes both
//! sessions atomically, so two concurrent refreshes with one token cannot both succeed,
//! even across server processes, and all of it is in the audit trail (source `auth`).
//! Credential material is declared `redact` on the definitions (the password hash; a
//! session's id, which is its refresh token's hash), so no answer of the server shows it.

use std::collections::HashMap;
use std::sync::Arc;

use bucketbase_engine::collection::Definition;
use bucketbase_engine::collection::query::{self, Query};
use bucketbase_engine::{CollectionName, Database, Error, RecordId, Seq, TxnMeta};
use serde_json::{Value, json};

use super::AuthError;
use super::local::{RefreshSession, RotateOutcome, SessionState, StoredUser, UserStore};

const USERS: &str = r#"
name = "_users"
soft_delete = true
index = ["email", "role"]
redact = ["password_hash"]
[schema]
type = "object"
required = ["email", "role", "password_hash"]
properties.email = { type = "string", minLength = 3 }
properties.role = { type = "string", minLength = 1 }
properties.password_hash = { type = "string" }
properties.disabled = { type = "boolean" }
[[unique]]
name = "user_email"
fields = ["email"]
"#;

const SESSIONS: &str = r#"
name = "_sessions"
index = ["family_id"]
# A session's id is the SHA-256 of its refresh token: credential material too.
redact = ["id"]
[schema]
type = "object"
required = ["family_id", "user_uuid", "created_at_unix", "expires_at_unix", "state"]
properties.state = { enum = ["active", "rotated", "revoked"] }
"#;

/// `_users` and `_sessions` over a [`Database`].
#[derive(Debug, Clone)]
pub struct DbUserStore {
    db: Arc<Database>,
    /// Users as last read, by id, with the version they were read at: authenticating a
    /// request reads the user's version (a lookup) instead of parsing the record, and a
    /// change of the record (role, disabled), here or by another process once the
    /// tailer applies it, is a new version. Bounded: emptied at [`USERS_CACHED`].
    read: Arc<UsersRead>,
}

/// Most users kept parsed at once.
const USERS_CACHED: usize = 10_000;

#[derive(Default)]
struct UsersRead(parking_lot::Mutex<HashMap<RecordId, (Seq, StoredUser)>>);

impl std::fmt::Debug for UsersRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} users read", self.0.lock().len())
    }
}

fn users() -> CollectionName {
    CollectionName::parse_system("_users").expect("valid system name")
}

fn sessions() -> CollectionName {
    CollectionName::parse_system("_sessions").expect("valid system name")
}

fn meta() -> TxnMeta {
    TxnMeta::new("bucketbase", "auth")
}

fn unavailable(e: Error) -> AuthError {
    AuthError::Unavailable(e.code().to_string())
}

fn state_name(s: SessionState) -> &'static str {
    match s {
        SessionState::Active => "active",
        SessionState::Rotated => "rotated",
        SessionState::Revoked => "revoked",
    }
}

fn session_json(s: &RefreshSession) -> Value {
    json!({
        "id": s.token_hash,
        "family_id": s.family_id,
        "user_uuid": s.user_uuid,
        "created_at_unix": s.created_at,
        "expires_at_unix": s.expires_at,
        "state": state_name(s.state),
    })
}

fn session_from(v: &Value) -> Option<RefreshSession> {
    Some(RefreshSession {
        token_hash: v["id"].as_str()?.to_string(),
        family_id: v["family_id"].as_str()?.to_string(),
        user_uuid: v["user_uuid"].as_str()?.to_string(),
        created_at: v["created_at_unix"].as_u64()?,
        expires_at: v["expires_at_unix"].as_u64()?,
        state: match v["state"].as_str()? {
            "active" => SessionState::Active,
            "rotated" => SessionState::Rotated,
            _ => SessionState::Revoked,
        },
    })
}

fn user_from(v: &Value) -> Option<StoredUser> {
    if !v["deleted_at"].is_null() {
        return None;
    }
    Some(StoredUser {
        uuid: v["id"].as_str()?.to_string(),
        email: v["email"].as_str()?.to_string(),
        role: v["role"].as_str()?.into(),
        password_hash: v["password_hash"].as_str()?.to_string(),
        disabled: v["disabled"].as_bool().unwrap_or(false),
    })
}

impl DbUserStore {
    /// Installs the system collections (a no-op when unchanged).
    pub async fn install(db: Arc<Database>) -> Result<DbUserStore, Error> {
        let defs = [
            Definition::from_toml(USERS)?,
            Definition::from_toml(SESSIONS)?,
        ];
        db.define_all(&meta(), &defs).await?;
        Ok(DbUserStore {
            db,
            read: Arc::default(),
        })
    }

    /// How many users exist.
    pub fn user_count(&self) -> usize {
        self.db
            .snapshot()
            .collection(&users())
            .map_or(0, |c| c.docs.len())
    }

    /// Creates a user; `password` is hashed with argon2id.
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        role: &str,
        actor: &str,
    ) -> Result<StoredUser, Error> {
        let hash = super::local::hash_password(password).map_err(|e| Error::Invalid {
            what: "password",
            reason: e.to_string(),
        })?;
        let email = super::local::normalize_email(email);
        let body = json!({"email": email, "role": role, "password_hash": hash, "disabled": false});
        let created = self
            .db
            .transact(&TxnMeta::new(actor, "cli"), |tx| {
                tx.create(&users(), body.clone()).map(|(_, user)| user)
            })
            .await?;
        Ok(user_from(&created.value).expect("just created"))
    }

    /// Changes a user's password or role.
    pub async fn update_user(&self, email: &str, patch: Value, actor: &str) -> Result<(), Error> {
        let email = super::local::normalize_email(email);
        let user = self.find(&email).ok_or_else(|| Error::NotFound {
            collection: "_users".into(),
            id: email.clone(),
        })?;
        let id = RecordId::parse(&user.uuid)?;
        self.db
            .transact(&TxnMeta::new(actor, "cli"), |tx| {
                tx.update(&users(), &id, &patch, None)
            })
            .await?;
        Ok(())
    }

    fn find(&self, email: &str) -> Option<StoredUser> {
        let snap = self.db.snapshot();
        let q = Query {
            equals: vec![("email".into(), json!(email))],
            per_page: 1,
            ..Query::default()
        };
        let page = query::list_with(&snap, &users(), &q, &[], None, None).ok()?;
        page.items.first().and_then(user_from)
    }
}

#[async_trait::async_trait]
impl UserStore for DbUserStore {
    async fn find_by_email(&self, email: &str) -> Result<Option<StoredUser>, AuthError> {
        Ok(self.find(email))
    }

    async fn find_by_id(&self, uuid: &str) -> Result<Option<StoredUser>, AuthError> {
        let Ok(id) = RecordId::parse(uuid) else {
            return Ok(None);
        };
        let snapshot = self.db.snapshot();
        let Some(doc) = snapshot.get(&users(), &id) else {
            return Ok(None);
        };
        if let Some((version, user)) = self.read.0.lock().get(&id)
            && *version == doc.version
        {
            return Ok(Some(user.clone()));
        }
        let Some(user) = user_from(&doc.value()) else {
            return Ok(None);
        };
        let mut read = self.read.0.lock();
        if read.len() >= USERS_CACHED {
            read.clear();
        }
        read.insert(id, (doc.version, user.clone()));
        Ok(Some(user))
    }

    async fn create_session(&self, session: RefreshSession) -> Result<(), AuthError> {
        let body = session_json(&session);
        self.db
            .transact(&meta(), |tx| tx.create(&sessions(), body.clone()))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn find_session(&self, token_hash: &str) -> Result<Option<RefreshSession>, AuthError> {
        let Ok(id) = RecordId::parse(token_hash) else {
            return Ok(None);
        };
        let snap = self
            .db
            .read(bucketbase_engine::Consistency::Latest)
            .await
            .map_err(unavailable)?;
        Ok(snap
            .get(&sessions(), &id)
            .and_then(|d| session_from(&d.value())))
    }

    async fn rotate_session(
        &self,
        old_hash: &str,
        new: RefreshSession,
    ) -> Result<RotateOutcome, AuthError> {
        let Ok(old_id) = RecordId::parse(old_hash) else {
            return Ok(RotateOutcome::NotActive);
        };
        let body = session_json(&new);
        self.db
            .transact(&meta(), |tx| {
                let Some(old) = tx
                    .get_value(&sessions(), &old_id)
                    .as_ref()
                    .and_then(session_from)
                else {
                    return Ok(RotateOutcome::NotActive);
                };
                match old.state {
                    SessionState::Rotated => return Ok(RotateOutcome::AlreadyUsed),
                    SessionState::Revoked => return Ok(RotateOutcome::NotActive),
                    SessionState::Active => {}
                }
                tx.update(&sessions(), &old_id, &json!({"state": "rotated"}), None)?;
                tx.create(&sessions(), body.clone())?;
                Ok::<_, Error>(RotateOutcome::Rotated)
            })
            .await
            .map(|c| c.value)
            .map_err(unavailable)
    }

    async fn revoke_family(&self, family_id: &str) -> Result<(), AuthError> {
        let family = family_id.to_string();
        self.db
            .transact(&meta(), |tx| {
                tx.read_collection(&sessions());
                let snap = tx.state().clone();
                let q = Query {
                    equals: vec![("family_id".into(), json!(family))],
                    per_page: query::MAX_PER_PAGE,
                    ..Query::default()
                };
                let page = query::list_with(&snap, &sessions(), &q, &[], None, None)?;
                for s in page.items {
                    if s["state"] != "revoked"
                        && let Some(id) = s["id"].as_str().and_then(|i| RecordId::parse(i).ok())
                    {
                        tx.update(&sessions(), &id, &json!({"state": "revoked"}), None)?;
                    }
                }
                Ok::<_, Error>(())
            })
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bucketbase_engine::{DbOptions, StoreUrl};

    use super::*;

    /// A user read once and then changed is read anew: the role or a disabled flag takes
    /// effect on the next request, though authenticating reuses the parsed user.
    #[tokio::test]
    async fn a_changed_user_is_read_anew() {
        let store = StoreUrl::Memory.build().unwrap();
        let db = Arc::new(Database::open(store, DbOptions::default()).await.unwrap());
        let users = DbUserStore::install(db.clone()).await.unwrap();
        let user = users
            .create_user("a@example.com", "pw-pw-pw-pw", "staff", "test")
            .await
            .unwrap();
        let read = |users: &DbUserStore| {
            let users = users.clone();
            let uuid = user.uuid.clone();
            async move { users.find_by_id(&uuid).await.unwrap().unwrap() }
        };
        assert_eq!(read(&users).await.role, "staff");
        assert_eq!(read(&users).await.role, "staff");
        users
            .update_user("a@example.com", json!({"role": "manager"}), "test")
            .await
            .unwrap();
        assert_eq!(read(&users).await.role, "manager");
        users
            .update_user("a@example.com", json!({"disabled": true}), "test")
            .await
            .unwrap();
        assert!(read(&users).await.disabled);
        assert_eq!(users.read.0.lock().len(), 1);
    }
}
