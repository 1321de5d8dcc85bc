//! Keys kept beside a local root, outside the log: `<root>/_keys/<name>` (mode 0600, in a
//! 0700 folder).
//!
//! A local root needs keys that survive restarts and that every process on it shares
//! (the key that signs access tokens; the key of `secret` fields), without an operator
//! having to configure them. They must never be in the log, the view, a backup or an
//! answer: the log is the audit trail and is copied around, and a key in it would be a key
//! in every copy. So they live in `_keys/`, which no collection can name (`_` prefixes are
//! the system's), which the materializer and `rebuild` never touch, and which backups skip.
//! On S3 there is no such place with the right permissions: keys are configured there.
//!
//! Creation is atomic across processes: the key is written to a private temporary file and
//! hard-linked to its name, which fails if another process got there first; then the
//! winner's key is read.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{Error, Result};

/// The folder of a local root that holds its keys.
pub const KEYS_DIR: &str = "_keys";

/// Length of a generated key, in bytes.
pub const KEY_LEN: usize = 32;

/// Reads the key `name` of the local root, creating a random one first if there is none.
/// Returns the key and whether this call created it.
pub fn load_or_create(root: &Path, name: &str) -> Result<(Vec<u8>, bool)> {
    let dir = root.join(KEYS_DIR);
    let path = dir.join(name);
    if let Some(key) = read(&path)? {
        return Ok((key, false));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| io_error(&dir, e))?;
    let key: [u8; KEY_LEN] = rand::random();
    let temp = dir.join(format!(".{name}.{:016x}", rand::random::<u64>()));
    let written = write_private(&temp, STANDARD.encode(key).as_bytes());
    let linked = written.and_then(|()| match std::fs::hard_link(&temp, &path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_error(&path, e)),
    });
    let _ = std::fs::remove_file(&temp);
    if linked? {
        return Ok((key.to_vec(), true));
    }
    let key = read(&path)?.ok_or_else(|| Error::corrupt(path.display(), "vanished"))?;
    Ok((key, false))
}

fn read(path: &PathBuf) -> Result<Option<Vec<u8>>> {
    match std::fs::read_to_string(path) {
        Ok(text) => STANDARD
            .decode(text.trim())
            .ok()
            .filter(|k| k.len() >= KEY_LEN)
            .map(Some)
            .ok_or_else(|| {
                Error::corrupt(
                    path.display(),
                    format!("not a base64 key of at least {KEY_LEN} bytes"),
                )
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, e)),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Invalid {
        what: "key file",
        reason: format!("{}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn created_once_private_and_shared() {
        let root = tempfile::tempdir().unwrap();
        let (key, created) = load_or_create(root.path(), "token.key").unwrap();
        assert!(created);
        assert_eq!(key.len(), KEY_LEN);
        let (again, created) = load_or_create(root.path(), "token.key").unwrap();
        assert_eq!((again, created), (key, false));
        let path = root.path().join("_keys/token.key");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1,
            "no temp left"
        );
    }

    #[test]
    fn racing_processes_agree_on_one_key() {
        let root = tempfile::tempdir().unwrap();
        let keys: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create(root.path(), "k").unwrap().0))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn a_damaged_key_is_an_error_not_a_new_key() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join(KEYS_DIR)).unwrap();
        std::fs::write(root.path().join("_keys/k"), "short").unwrap();
        assert!(load_or_create(root.path(), "k").is_err());
    }
}
