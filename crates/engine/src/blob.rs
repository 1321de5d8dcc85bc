//! Uploaded files ("blobs"): bytes stored beside the database as `_files/<id>.<ext>`,
//! immutable once written, and never part of the log (a record names its file; the
//! record is what is versioned, audited and access-checked).
//!
//! Apps store and serve files through [`Blobs`], never through the object store, so the
//! key layout lives here only and a key read back from a record is parsed before it is
//! used: [`BlobKey::parse`] accepts `_files/<uuid>.<ext>` and nothing else, so a record
//! whose key was tampered with can never make a download route serve `_log/`, `_keys/` or
//! another collection's documents. The layout is the one photos have always been stored
//! under (`_files/` + the record's UUID + `.` + a short lowercase extension); backups copy
//! `_files/` as it is.

use bytes::Bytes;
use object_store::ObjectStoreExt;
use object_store::path::Path as StorePath;

use crate::names::RecordId;
use crate::store::DynStore;
use crate::{Database, Error, Result};

/// The folder every blob lives in.
pub const PREFIX: &str = "_files/";

/// Longest extension a blob key carries.
const MAX_EXT: usize = 5;

/// Where a blob is stored: `_files/<uuid>.<ext>`, checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobKey(String);

/// A key that is not `_files/<uuid>.<ext>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a file key (expected _files/<uuid>.<ext>): {0:?}")]
pub struct BadBlobKey(pub String);

fn valid_ext(ext: &str) -> bool {
    (1..=MAX_EXT).contains(&ext.len())
        && ext
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl BlobKey {
    /// The key of a new blob named after `id` (the record that describes it).
    pub fn new(id: &RecordId, ext: &str) -> Result<Self, BadBlobKey> {
        let key = format!("{PREFIX}{id}.{ext}");
        if !valid_ext(ext) {
            return Err(BadBlobKey(key));
        }
        Ok(BlobKey(key))
    }

    /// A stored key, as a record keeps it.
    pub fn parse(key: &str) -> Result<Self, BadBlobKey> {
        let bad = || BadBlobKey(key.to_string());
        let name = key.strip_prefix(PREFIX).ok_or_else(bad)?;
        let (id, ext) = name.rsplit_once('.').ok_or_else(bad)?;
        let uuid_shaped = id.len() == 36
            && id
                .bytes()
                .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !uuid_shaped || !valid_ext(ext) {
            return Err(bad());
        }
        Ok(BlobKey(key.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn path(&self) -> StorePath {
        StorePath::from(self.0.as_str())
    }
}

impl std::fmt::Display for BlobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The blobs of one database.
#[derive(Clone)]
pub struct Blobs {
    store: DynStore,
}

impl Blobs {
    /// The blobs stored beside `db`.
    pub fn of(db: &Database) -> Self {
        Blobs {
            store: db.store().clone(),
        }
    }

    /// Stores `bytes` under `key` (a new key: blobs are never rewritten).
    pub async fn put(&self, key: &BlobKey, bytes: Bytes) -> Result<()> {
        self.store.put(&key.path(), bytes.into()).await?;
        Ok(())
    }

    /// The bytes under `key`, or `None` when there are none.
    pub async fn get(&self, key: &BlobKey) -> Result<Option<Bytes>> {
        match self.store.get(&key.path()).await {
            Ok(got) => Ok(Some(got.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::Store(e)),
        }
    }

    /// Removes the blob under `key` (absent already is fine).
    pub async fn delete(&self, key: &BlobKey) -> Result<()> {
        match self.store.delete(&key.path()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::Store(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "01890f3c-6a5e-7b3c-9d2e-0123456789ab";

    #[test]
    fn keys_keep_the_files_layout() {
        let id = RecordId::parse(ID).unwrap();
        let key = BlobKey::new(&id, "jpg").unwrap();
        assert_eq!(key.as_str(), format!("_files/{ID}.jpg"));
        assert_eq!(BlobKey::parse(key.as_str()).unwrap(), key);
        assert!(BlobKey::new(&id, "../x").is_err());
        assert!(BlobKey::new(&id, "").is_err());
    }

    #[test]
    fn only_files_keys_parse() {
        for bad in [
            "_log/00000000000000000001.json",
            "_keys/token.key",
            "tasks/index.json",
            "_files/../_keys/token.key",
            &format!("_files/{ID}"),
            &format!("_files/{ID}.JPG"),
            &format!("_files/x/{ID}.jpg"),
            &format!("/_files/{ID}.jpg"),
        ] {
            assert!(BlobKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn put_get_delete() {
        let db = Database::open_url("memory://", crate::DbOptions::default())
            .await
            .unwrap();
        let blobs = Blobs::of(&db);
        let key = BlobKey::new(&db.new_id(), "png").unwrap();
        assert_eq!(blobs.get(&key).await.unwrap(), None);
        blobs.put(&key, Bytes::from_static(b"bytes")).await.unwrap();
        assert_eq!(
            blobs.get(&key).await.unwrap(),
            Some(Bytes::from_static(b"bytes"))
        );
        blobs.delete(&key).await.unwrap();
        blobs.delete(&key).await.unwrap();
        assert_eq!(blobs.get(&key).await.unwrap(), None);
    }
}
