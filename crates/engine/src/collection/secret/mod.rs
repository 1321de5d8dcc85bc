//! Secret fields: encrypted at rest with AES-256-GCM.
//!
//! A secret's value (any JSON) is stored as the string `"enc:v1:<base64>"` where the
//! payload is a random 96-bit nonce followed by the ciphertext and tag. The associated
//! data binds the ciphertext to its place, `collection/id/field` (inside an object or a
//! nested item: `collection/id/variables/<item id>/value`, see [`paths`]), so a
//! ciphertext copied into another record or place does not decrypt. The log,
//! checkpoints, the materialized view and audit diffs only ever see the encrypted form.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::error::{Error, Result};

mod fields;
mod paths;

pub use fields::{SECRET_CHANGE, SealError, SecretFields, mask_sealed};
pub use paths::{Location, SecretPath};

const PREFIX: &str = "enc:v1:";

/// How secret fields appear when a record is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// Left out (lists, index.json).
    Omit,
    /// Shown as `"********"` when set.
    Mask,
    /// Decrypted (needs the key).
    Reveal,
}

/// The value a masked secret shows; writing it back leaves the secret unchanged.
pub const MASK: &str = "********";

/// The key for secret fields.
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<key hidden>)")
    }
}

impl SecretBox {
    /// A key from 32 raw bytes.
    pub fn new(key: [u8; 32]) -> Self {
        SecretBox {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
        }
    }

    /// A key from its base64 form (what configuration holds).
    pub fn from_base64(text: &str) -> Result<Self> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| Error::invalid("secret key", format!("not base64: {e}")))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::invalid("secret key", "must be 32 bytes (44 base64 characters)"))?;
        Ok(SecretBox::new(key))
    }

    /// Encrypts a value for `aad` (`collection/id/field`).
    pub fn seal(&self, value: &Value, aad: &str) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let plain = serde_json::to_vec(value).expect("values serialize");
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plain,
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of in-memory data cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", STANDARD.encode(out))
    }

    /// Decrypts what [`SecretBox::seal`] produced for the same `aad`.
    pub fn open(&self, sealed: &str, aad: &str) -> Result<Value> {
        let bad = || Error::corrupt(aad, "secret field does not decrypt with this key");
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| STANDARD.decode(b).ok())
            .filter(|b| b.len() > 12)
            .ok_or_else(bad)?;
        let (nonce, ct) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| bad())?;
        serde_json::from_slice(&plain).map_err(|_| bad())
    }

    /// Is this a sealed value?
    pub fn is_sealed(value: &Value) -> bool {
        value.as_str().is_some_and(|s| s.starts_with(PREFIX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_and_binding() {
        let key = SecretBox::new([7; 32]);
        let sealed = key.seal(&json!({"token": "abc"}), "credentials/c1/secret");
        assert!(SecretBox::is_sealed(&json!(sealed)));
        assert!(!sealed.contains("abc"));
        assert_eq!(
            key.open(&sealed, "credentials/c1/secret").unwrap(),
            json!({"token": "abc"})
        );
        // Bound to its place, and to its key.
        assert!(key.open(&sealed, "credentials/c2/secret").is_err());
        assert!(
            SecretBox::new([8; 32])
                .open(&sealed, "credentials/c1/secret")
                .is_err()
        );
        // Random nonces: the same value seals differently.
        assert_ne!(
            sealed,
            key.seal(&json!({"token": "abc"}), "credentials/c1/secret")
        );
    }

    #[test]
    fn key_parsing() {
        assert!(SecretBox::from_base64(&STANDARD.encode([1u8; 32])).is_ok());
        assert!(SecretBox::from_base64("short").is_err());
        assert!(SecretBox::from_base64(&STANDARD.encode([1u8; 16])).is_err());
    }
}
