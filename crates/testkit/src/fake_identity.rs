//! A fake appointment360 GraphQL identity service for tests.
//!
//! It speaks the real protocol over real HTTP: `POST /graphql` with
//! `{"query": ..., "variables": {...}}`, the operation chosen by what the document
//! contains (`login(`, `logout`, `refreshToken(`, `me {`), answers shaped at the result
//! paths of both dialects the server ships: the `graphql` provider's defaults
//! (`data.auth.login.{accessToken,refreshToken,user}`, `data.auth.refreshToken.{...}`,
//! `data.me.{uuid,email,role}`) and appointment360's (`preset = "appointment360"`:
//! `me` under `auth`, the role at `profile.role`, no user in a refresh's answer unless
//! the document selects `user { ... }`, logout by the bearer's session). Refusals are
//! `{"errors": [{"message": ...}], "data": null}` with status 200.
//!
//! Tokens are JWT-shaped (`header.payload.signature`, base64url, header
//! `{"alg":"HS256","typ":"JWT"}`, payload starting with the same `iss`, `aud`, type and
//! times for everyone) so, as with real JWTs, tokens of different users share their first
//! ~200 characters. Refresh tokens rotate: each works once.
//!
//! ```ignore
//! use bucketbase_testkit::fake_identity::{FakeUser, spawn_fake_identity};
//!
//! let idp = spawn_fake_identity(vec![FakeUser::new("u-1", "root@example.com", "pw", "SuperAdmin")]).await;
//! // configure the server with `endpoint = idp.url()`, then:
//! let token = idp.issue_token("root@example.com");
//! assert_eq!(idp.calls(), 0);
//! idp.set_down(true); // every request now gets 503
//! ```
//!
//! Depends only on axum, tokio and serde_json.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The JWT header every token carries (base64url: `eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9`).
pub const JWT_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
const ISSUER: &str = "https://appointment360.example.test/graphql";

/// An account of the fake service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeUser {
    pub uuid: String,
    pub email: String,
    pub password: String,
    pub role: String,
}

impl FakeUser {
    pub fn new(uuid: &str, email: &str, password: &str, role: &str) -> Self {
        let s = str::to_owned;
        Self {
            uuid: s(uuid),
            email: s(email),
            password: s(password),
            role: s(role),
        }
    }

    /// The user as both dialects select it: `role` (the provider's default documents)
    /// and `profile.role` (appointment360's).
    fn json(&self) -> Value {
        json!({
            "uuid": self.uuid,
            "email": self.email,
            "role": self.role,
            "profile": { "role": self.role },
        })
    }
}

/// Which GraphQL operation a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Login,
    Logout,
    Refresh,
    Me,
    Unknown,
}

impl Operation {
    fn of(document: &str) -> Self {
        let compact: String = document.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.contains("login(") {
            Self::Login
        } else if compact.contains("logout") {
            Self::Logout
        } else if compact.contains("refreshToken(") {
            Self::Refresh
        } else if compact.contains("me{") {
            Self::Me
        } else {
            Self::Unknown
        }
    }
}

#[derive(Default)]
struct Inner {
    users: Vec<FakeUser>,
    /// Live access and refresh tokens → index into `users`.
    access: HashMap<String, usize>,
    refresh: HashMap<String, usize>,
    issued: u64,
    /// Refresh tokens exchanged.
    refreshes: usize,
    signer: RandomState,
    down: bool,
    response_override: Option<(u16, String)>,
    delay: Duration,
}

type Answer = Result<Value, &'static str>;

impl Inner {
    fn user(&self, email: &str) -> usize {
        self.users
            .iter()
            .position(|u| u.email == email)
            .unwrap_or_else(|| panic!("no fake user {email}"))
    }

    /// A fresh JWT-shaped token for `user`; `kind` is `access` or `refresh`.
    fn mint(&mut self, user: usize, kind: &str) -> String {
        self.issued += 1;
        let u = &self.users[user];
        let payload = format!(
            r#"{{"iss":"{ISSUER}","aud":"bucketbase","token_type":"{kind}","iat":1767225600,"exp":1767229200,"sub":{},"email":{},"role":{},"jti":"{}"}}"#,
            Value::from(u.uuid.as_str()),
            Value::from(u.email.as_str()),
            Value::from(u.role.as_str()),
            self.issued,
        );
        let signed = format!(
            "{}.{}",
            b64url(JWT_HEADER.as_bytes()),
            b64url(payload.as_bytes())
        );
        let signature: Vec<u8> = (0..4u8)
            .flat_map(|i| self.signer.hash_one((&signed, i)).to_be_bytes())
            .collect();
        let token = format!("{signed}.{}", b64url(&signature));
        let live = if kind == "access" {
            &mut self.access
        } else {
            &mut self.refresh
        };
        live.insert(token.clone(), user);
        token
    }

    /// New tokens, and the user if the document selects it (appointment360's refresh
    /// does not).
    fn session(&mut self, user: usize, with_user: bool) -> Value {
        let mut session = json!({
            "accessToken": self.mint(user, "access"),
            "refreshToken": self.mint(user, "refresh"),
        });
        if with_user {
            session["user"] = self.users[user].json();
        }
        session
    }

    fn login(&mut self, variables: &Value, with_user: bool) -> Answer {
        let (email, password) = (variables["email"].as_str(), variables["password"].as_str());
        let user = self
            .users
            .iter()
            .position(|u| Some(u.email.as_str()) == email && Some(u.password.as_str()) == password);
        let user = user.ok_or("Invalid email or password")?;
        Ok(json!({ "auth": { "login": self.session(user, with_user) } }))
    }

    fn refresh(&mut self, variables: &Value, with_user: bool) -> Answer {
        let token = variables["refreshToken"].as_str().unwrap_or_default();
        let user = self
            .refresh
            .remove(token)
            .ok_or("Invalid or expired refresh token")?;
        self.refreshes += 1;
        Ok(json!({ "auth": { "refreshToken": self.session(user, with_user) } }))
    }

    /// Ends the session of the refresh token sent, or else of the bearer's access token.
    fn logout(&mut self, variables: &Value, bearer: Option<&str>) -> Answer {
        let ended = match variables["refreshToken"].as_str() {
            Some(token) => self.refresh.remove(token).is_some(),
            None => bearer.is_some_and(|t| self.access.remove(t).is_some()),
        };
        Ok(json!({ "auth": { "logout": ended } }))
    }

    /// `me` at the top (the provider's default) or under `auth` (appointment360).
    fn me(&self, bearer: Option<&str>, under_auth: bool) -> Answer {
        let user = match bearer {
            None => Value::Null,
            Some(token) => {
                let user = self.access.get(token).ok_or("Invalid or expired token")?;
                self.users[*user].json()
            }
        };
        Ok(if under_auth {
            json!({ "auth": { "me": user } })
        } else {
            json!({ "me": user })
        })
    }
}

struct Shared {
    inner: Mutex<Inner>,
    me_calls: AtomicUsize,
    requests: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running fake service. Dropping it shuts the server down.
pub struct FakeIdentity {
    url: String,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Starts a fake service on `127.0.0.1:0` with these accounts.
pub async fn spawn_fake_identity(users: Vec<FakeUser>) -> FakeIdentity {
    let shared = Arc::new(Shared {
        inner: Mutex::new(Inner {
            users,
            ..Inner::default()
        }),
        me_calls: AtomicUsize::new(0),
        requests: AtomicUsize::new(0),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fake identity service");
    let url = format!(
        "http://{}/graphql",
        listener.local_addr().expect("local address")
    );
    let app = Router::new()
        .route("/graphql", post(graphql))
        .with_state(shared.clone());
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    FakeIdentity {
        url,
        shared,
        shutdown: Some(shutdown),
        task: Some(task),
    }
}

impl FakeIdentity {
    /// The GraphQL endpoint, e.g. `http://127.0.0.1:41234/graphql`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many "me" queries arrived (answered or not): proves caching.
    pub fn calls(&self) -> usize {
        self.shared.me_calls.load(Ordering::SeqCst)
    }

    /// How many refresh tokens were exchanged (rotations).
    pub fn refreshes(&self) -> usize {
        self.shared.lock().refreshes
    }

    /// How many requests of any kind arrived.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// While down, every request is answered `503 Service Unavailable`.
    pub fn set_down(&self, down: bool) {
        self.shared.lock().down = down;
    }

    /// Answers every request with this status and body (sent as `application/json`,
    /// whatever it is) until reset with `None`. For 401s, malformed bodies, null users...
    pub fn set_response(&self, response: Option<(u16, &str)>) {
        self.shared.lock().response_override =
            response.map(|(status, body)| (status, body.to_owned()));
    }

    /// Waits this long before answering each request (for timeouts).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().delay = delay;
    }

    /// A fresh access token for this user, as if they had logged in. Panics if unknown.
    pub fn issue_token(&self, email: &str) -> String {
        let mut inner = self.shared.lock();
        let user = inner.user(email);
        inner.mint(user, "access")
    }

    /// A fresh refresh token for this user. Panics if unknown.
    pub fn issue_refresh_token(&self, email: &str) -> String {
        let mut inner = self.shared.lock();
        let user = inner.user(email);
        inner.mint(user, "refresh")
    }

    /// Changes a user's role; tokens already issued report the new role. Panics if unknown.
    pub fn set_role(&self, email: &str, role: &str) {
        let mut inner = self.shared.lock();
        let user = inner.user(email);
        inner.users[user].role = role.to_owned();
    }

    /// Revokes an access or refresh token.
    pub fn revoke(&self, token: &str) {
        let mut inner = self.shared.lock();
        inner.access.remove(token);
        inner.refresh.remove(token);
    }

    /// Stops the server and waits for it: afterwards connections are refused.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

async fn graphql(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let request: Option<Value> = serde_json::from_slice(&body).ok();
    let document = request
        .as_ref()
        .and_then(|r| r["query"].as_str())
        .unwrap_or_default();
    let operation = Operation::of(document);
    let compact: String = document.chars().filter(|c| !c.is_whitespace()).collect();
    let with_user = compact.contains("user{");
    if operation == Operation::Me {
        shared.me_calls.fetch_add(1, Ordering::SeqCst);
    }
    let (down, response_override, delay) = {
        let inner = shared.lock();
        (inner.down, inner.response_override.clone(), inner.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if down {
        return (StatusCode::SERVICE_UNAVAILABLE, "identity service is down").into_response();
    }
    if let Some((status, body)) = response_override {
        let status = StatusCode::from_u16(status).expect("valid status code");
        return (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    let Some(request) = request else {
        return graphql_errors(
            StatusCode::BAD_REQUEST,
            "body is not a GraphQL JSON request",
        );
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let variables = &request["variables"];
    let mut inner = shared.lock();
    let answer = match operation {
        Operation::Login => inner.login(variables, with_user),
        Operation::Logout => inner.logout(variables, bearer),
        Operation::Refresh => inner.refresh(variables, with_user),
        Operation::Me => inner.me(bearer, compact.contains("auth{me{")),
        Operation::Unknown => Err("Unknown operation"),
    };
    match answer {
        Ok(data) => axum::Json(json!({ "data": data })).into_response(),
        Err(message) => graphql_errors(StatusCode::OK, message),
    }
}

fn graphql_errors(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "errors": [{ "message": message, "extensions": { "code": "UNAUTHENTICATED" } }],
        "data": null,
    });
    (status, axum::Json(body)).into_response()
}

/// Unpadded base64url, as in JWTs.
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}
