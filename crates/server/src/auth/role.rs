//! A caller's role, as a type of its own rather than a bare string, so that a role cannot be
//! mixed up with an email, a uuid or a collection name on its way from an identity provider
//! to an access rule, and the one role the server itself gives meaning to
//! ([`Role::SUPER_ADMIN`]) is named in one place.
//!
//! Roles are otherwise the identity provider's vocabulary (`manager`, `staff`, `owner`...):
//! the server does not know the list, rules compare against them as text (`auth.role`), so
//! any name the provider sends is kept as sent.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// A role name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Role(Cow<'static, str>);

impl Role {
    /// The role that passes every rule and may manage definitions, purge and audit.
    pub const SUPER_ADMIN: Role = Role(Cow::Borrowed("SuperAdmin"));

    /// A role by name, as the identity provider spells it.
    pub fn new(name: impl Into<String>) -> Self {
        Role(Cow::Owned(name.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_super_admin(&self) -> bool {
        *self == Role::SUPER_ADMIN
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Read-only access to the name (a role is compared and shown as text by rules and logs).
impl std::ops::Deref for Role {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Role {
    fn from(name: &str) -> Self {
        Role::new(name)
    }
}

impl From<String> for Role {
    fn from(name: String) -> Self {
        Role::new(name)
    }
}

impl PartialEq<str> for Role {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Role {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Role {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_compare_by_name_and_serialize_as_text() {
        assert!(Role::new("SuperAdmin").is_super_admin());
        assert!(!Role::new("superadmin").is_super_admin());
        assert_eq!(Role::from("staff"), "staff");
        assert_eq!(serde_json::to_value(Role::new("owner")).unwrap(), "owner");
        let back: Role = serde_json::from_str("\"manager\"").unwrap();
        assert_eq!(back, Role::new("manager"));
    }
}
