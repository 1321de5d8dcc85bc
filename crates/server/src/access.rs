//! Who may do what: the caller (from a token), CSRF for cookie sessions, the global
//! required role, and each collection's CEL rules.
//!
//! A collection's rule for an action is a CEL expression over `auth` (`uuid`, `email`,
//! `role`) and `record`. `SuperAdmin` passes every rule, unless the definition's rules
//! say `bind_super_admin` (docsai: records belong to their owner whatever the role;
//! decision 0021); without a rule, only `SuperAdmin` may act (closed by default). A record the caller may not see answers 404, never 403,
//! so its existence does not leak.
//!
//! Rules judge a record; [`Caller::check_write`] judges what a write through the generic
//! record routes changes, whatever the rules say ("Who writes what" in
//! docs/collections.md):
//! 1. system fields (a definition's `system_fields`: an upload's file key, an automation's
//!    marks) are written by app code through the engine only. A write that sets or
//!    changes one is refused for everyone, SuperAdmin included (400 `read_only_field`):
//!    a rule over the new record cannot tell the value the system wrote from a forged one.
//!    Sending the unchanged value is fine (clients echo records back).
//! 2. A reference the write sets or changes must point at a record the caller may see
//!    under the target collection's `view` rule (SuperAdmin sees everything). Otherwise
//!    the answer is the `reference_violation` a missing target gets, so it tells nothing
//!    about what exists. Without this, a rule like "staff update their own photo" lets
//!    them point the photo at anyone's task.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use bucketbase_engine::collection::Compiled;
use bucketbase_engine::collection::expr::Vars;
use bucketbase_engine::collection::keys::is_live;
use bucketbase_engine::{RecordId, Txn};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::renew::{RenewUnavailable, Verified};
use crate::auth::{AuthError, Principal};
use crate::error::ApiError;

/// The role that passes every rule (see [`Role::SUPER_ADMIN`]).
pub const SUPER_ADMIN: &str = "SuperAdmin";

/// Cookie carrying the access token.
pub const ACCESS_COOKIE: &str = "access_token";
/// Cookie carrying the refresh token (`Path=/`, see [`crate::auth::cookies`]).
pub const REFRESH_COOKIE: &str = "refresh_token";
/// Cookie carrying the CSRF token (readable by scripts, sent back as a header).
pub const CSRF_COOKIE: &str = "csrf_token";
/// Header that must echo the CSRF cookie on cookie-authenticated writes.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What a caller wants to do with records of a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    List,
    View,
    Create,
    Update,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::List => "list",
            Action::View => "view",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// An authenticated caller who passed the global role requirement.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// `auth` as CEL rules see it: `uuid`, `email`, `role`, plus what the app adds
    /// ([`AuthContext`]; aristay adds the properties an owner owns).
    pub auth: Value,
}

/// Facts an app adds to `auth` for its rules, computed per request from the snapshot.
pub trait AuthContext: Send + Sync {
    fn extend(
        &self,
        principal: &Principal,
        state: &bucketbase_engine::State,
        auth: &mut serde_json::Map<String, Value>,
    );
}

impl Caller {
    /// The caller, with what the app adds to `auth` (`state.auth_context`).
    pub fn new(principal: Principal, state: &AppState) -> Self {
        Self::at(principal, state, &state.db.snapshot())
    }

    /// The caller, with `auth` as of `snapshot` (the feed re-judges rights per entry).
    pub fn at(principal: Principal, state: &AppState, snapshot: &bucketbase_engine::State) -> Self {
        let mut auth = serde_json::Map::new();
        auth.insert("uuid".into(), json!(principal.uuid));
        auth.insert("email".into(), json!(principal.email));
        auth.insert("role".into(), json!(principal.role));
        if let Some(context) = &state.auth_context {
            context.extend(&principal, snapshot, &mut auth);
        }
        Caller {
            principal,
            auth: Value::Object(auth),
        }
    }

    pub fn uuid(&self) -> &str {
        &self.principal.uuid
    }

    /// Who and where, for the transactions of a request made through the API.
    pub fn txn_meta(&self, req: &crate::envelope::RequestId) -> bucketbase_engine::TxnMeta {
        bucketbase_engine::TxnMeta::new(self.uuid(), "api").with_request_id(req.0.clone())
    }

    pub fn is_super_admin(&self) -> bool {
        self.principal.role.is_super_admin()
    }

    /// Does this caller pass `def`'s rules without them being evaluated? SuperAdmin does,
    /// unless the rules bind SuperAdmin too (`bind_super_admin`).
    pub fn passes_rules(&self, def: &Compiled) -> bool {
        self.is_super_admin() && !def.def.rules.bind_super_admin
    }

    /// May this caller do `action` on any record of `def`, when the answer does not
    /// depend on the record (no rule of `def` to evaluate for it)? `None` when it does.
    pub fn may_without_record(&self, def: &Compiled, action: Action) -> Option<bool> {
        if self.passes_rules(def) {
            return Some(true);
        }
        match def.rules.get(action.as_str()) {
            None => Some(self.is_super_admin()),
            Some(_) => None,
        }
    }

    /// May this caller do `action` on `record`?
    pub fn may(&self, def: &Compiled, action: Action, record: &Value) -> bool {
        if let Some(may) = self.may_without_record(def, action) {
            return may;
        }
        let Some(rule) = def.rules.get(action.as_str()) else {
            return self.is_super_admin();
        };
        let vars = Vars::new().with("auth", &self.auth).with("record", record);
        rule.eval_bool(&vars).unwrap_or(false)
    }

    /// Checks a write through the generic API: record `id` of `def` goes from `before`
    /// (`None` on create) to `after` (stored forms). See the module docs. Targets are read
    /// through `tx`, so the commit re-runs the check if one changes meanwhile.
    pub fn check_write(
        &self,
        tx: &mut Txn,
        def: &Compiled,
        id: &RecordId,
        before: Option<&Value>,
        after: &Value,
    ) -> Result<(), ApiError> {
        // Null and missing are the same "unset".
        let value = |record: Option<&Value>, field: &str| {
            record
                .and_then(|r| r.get(field))
                .filter(|v| !v.is_null())
                .cloned()
        };
        let changed = |field: &str| value(before, field) != value(Some(after), field);
        let system: Vec<&str> = def
            .def
            .system_fields
            .iter()
            .map(String::as_str)
            .filter(|f| changed(f))
            .collect();
        if !system.is_empty() {
            let (what, verb) = match system.len() {
                1 => ("field", "is"),
                _ => ("fields", "are"),
            };
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "read_only_field",
                format!(
                    "{} {what} of {} {verb} set by the system and cannot be written through the API",
                    system.join(", "),
                    def.name
                ),
            )
            .with_details(json!({"collection": def.name.as_str(), "fields": system})));
        }
        for r in def.references.iter().filter(|r| changed(&r.def.field)) {
            let target_def = tx.state().definition(&r.target).cloned();
            if target_def.as_ref().is_some_and(|d| self.passes_rules(d)) {
                continue;
            }
            // A malformed id is the engine's to refuse (that says nothing about others).
            let Some(target_id) = after
                .get(&r.def.field)
                .and_then(Value::as_str)
                .and_then(|s| RecordId::parse(s).ok())
            else {
                continue;
            };
            let visible = tx
                .get_value(&r.target, &target_id)
                .filter(|t| r.def.allow_deleted || is_live(t))
                .zip(target_def)
                .is_some_and(|(target, target_def)| self.may(&target_def, Action::View, &target));
            if !visible {
                let missing = r.missing_target(def.name.as_str(), id, target_id.as_str());
                return Err(ApiError::from(missing));
            }
        }
        Ok(())
    }

    pub fn require_super_admin(&self) -> Result<(), ApiError> {
        if self.is_super_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("this needs the SuperAdmin role"))
        }
    }
}

/// Where the token came from (cookie sessions need CSRF protection on writes).
enum TokenSource {
    Bearer,
    Cookie,
}

/// The access token a request carries, if any (not verified).
pub fn access_token(parts: &Parts) -> Option<String> {
    token(parts).map(|(t, _)| t).filter(|t| !t.is_empty())
}

fn token(parts: &Parts) -> Option<(String, TokenSource)> {
    if let Some(auth) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let token = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))?;
        return Some((token.trim().to_string(), TokenSource::Bearer));
    }
    cookie(parts, ACCESS_COOKIE).map(|t| (t, TokenSource::Cookie))
}

/// Reads one cookie.
pub fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A cookie-authenticated write must echo the CSRF cookie in a header, or come from a
/// trusted origin ([`trusted_origin`]). (The admin UI's forms put the token in a form
/// field, which it moves into the header before asking this.)
pub fn csrf_ok(parts: &Parts, settings: &crate::ServerSettings) -> bool {
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let header = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if let (Some(h), Some(c)) = (header, cookie(parts, CSRF_COOKIE))
        && !c.is_empty()
        && constant_time_eq(h.as_bytes(), c.as_bytes())
    {
        return true;
    }
    let origin = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    origin.is_some_and(|o| trusted_origin(o, host, settings))
}

/// An origin as browsers send it: scheme (`http` or `https` only), host, port (the
/// scheme's default when absent). Anything else (`null`, `evil://...`, paths) is `None`.
fn parse_origin(origin: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    let authority: axum::http::uri::Authority = rest.parse().ok()?;
    let port = authority.port_u16().unwrap_or(default_port);
    Some((scheme, authority.host().to_ascii_lowercase(), port))
}

/// Is `origin` the server's own or a configured CORS origin? Scheme, host and port are
/// all compared. The server's own origin is the `Host` the request was sent to, with
/// `https` when cookies are `Secure` (they only travel over https) and `http` when they
/// are not (plain-http localhost).
fn trusted_origin(origin: &str, host: Option<&str>, settings: &crate::ServerSettings) -> bool {
    let Some(origin) = parse_origin(origin) else {
        return false;
    };
    let configured = settings
        .cors_origins
        .iter()
        .filter_map(|o| o.to_str().ok().and_then(parse_origin))
        .any(|o| o == origin);
    let scheme = if settings.cookie_secure {
        "https"
    } else {
        "http"
    };
    let own = host.and_then(|h| parse_origin(&format!("{scheme}://{h}")));
    configured || own == Some(origin)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // A session the identity service could not renew is an outage (503), not a
        // logout (401): see `auth::renew`.
        let outage = parts.extensions.get::<RenewUnavailable>().cloned();
        let refused = |e: AuthError| match (&e, outage.clone()) {
            (AuthError::InvalidToken(_), Some(RenewUnavailable(m))) => {
                ApiError::from(AuthError::Unavailable(m))
            }
            _ => ApiError::from(e),
        };
        let (token, source) = token(parts)
            .filter(|(t, _)| !t.is_empty())
            .ok_or_else(|| refused(AuthError::InvalidToken("missing or invalid token".into())))?;
        if matches!(source, TokenSource::Cookie) && !csrf_ok(parts, &state.settings) {
            return Err(ApiError::forbidden(
                "cookie-authenticated writes need the X-CSRF-Token header or a same-origin Origin",
            )
            .with_code("csrf_failed"));
        }
        let verified = parts
            .extensions
            .get::<Verified>()
            .filter(|v| v.token == token)
            .map(|v| v.principal.clone());
        let principal = match verified {
            Some(principal) => principal,
            None => state.auth.authenticate(&token).await.map_err(refused)?,
        };
        if let Some(required) = &state.settings.require_role
            && principal.role != *required
        {
            return Err(ApiError::forbidden(format!(
                "this server requires the {required} role"
            )));
        }
        Ok(Caller::new(principal, state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(cookie_secure: bool, cors: &[&str]) -> crate::ServerSettings {
        crate::ServerSettings {
            cookie_secure,
            cors_origins: cors.iter().map(|o| o.parse().unwrap()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let plain = settings(false, &[]);
        let host = Some("127.0.0.1:8080");
        assert!(trusted_origin("http://127.0.0.1:8080", host, &plain));
        assert!(trusted_origin("HTTP://127.0.0.1:8080/", host, &plain));
        for bad in [
            "evil://127.0.0.1:8080",
            "https://127.0.0.1:8080",
            "http://127.0.0.1:8081",
            "http://127.0.0.1",
            "http://127.0.0.1:8080.evil.com",
            "http://user@127.0.0.1:8080",
            "null",
            "",
        ] {
            assert!(!trusted_origin(bad, host, &plain), "{bad}");
        }
        assert!(!trusted_origin("http://127.0.0.1:8080", None, &plain));
        let tls = settings(true, &["https://app.example.com"]);
        assert!(trusted_origin(
            "https://api.example.com",
            Some("api.example.com"),
            &tls
        ));
        assert!(trusted_origin(
            "https://api.example.com:443",
            Some("api.example.com"),
            &tls
        ));
        assert!(!trusted_origin(
            "http://api.example.com",
            Some("api.example.com"),
            &tls
        ));
        assert!(trusted_origin(
            "https://app.example.com",
            Some("api.example.com"),
            &tls
        ));
        assert!(!trusted_origin(
            "http://app.example.com",
            Some("api.example.com"),
            &tls
        ));
    }
}
