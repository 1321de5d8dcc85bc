//! Staging files on a local root: making one ([`create`]), and sweeping those a crash
//! leaves.
//!
//! `LocalFileSystem` writes every object to a staging file beside it (`_log/N.json#1`)
//! and then links or renames it into place. A process killed in between leaves the staging
//! file behind; listings skip such names, so nothing else would ever remove them. The
//! sweep removes staging files older than [`STAGING_MAX_AGE`] (a younger one may belong to
//! a write in flight in another process on the same root). It runs once per open, in the
//! background, and touches nothing but files named `<name>#<digits>`.

use std::fs::File;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A new staging file beside `path`, open for writing: `path#1`, or the next free number
/// (a concurrent writer of the same key, in this process or another, stages under its
/// own). `NotFound` when `path`'s directory does not exist.
pub fn create(path: &Path) -> io::Result<(File, PathBuf)> {
    for n in 1u32.. {
        let mut staging = path.as_os_str().to_owned();
        staging.push(format!("#{n}"));
        let staging = PathBuf::from(staging);
        match File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&staging)
        {
            Ok(file) => return Ok((file, staging)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free staging name"))
}

/// Staging files older than this are left over from a crash.
pub const STAGING_MAX_AGE: Duration = Duration::from_secs(60);

/// Removes stale staging files under `root`; returns how many it removed. `now` comes
/// from the engine's clock.
pub fn sweep(root: &Path, now: SystemTime) -> usize {
    let mut removed = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() && is_staging_name(&entry.file_name().to_string_lossy()) {
                let stale = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|at| now.duration_since(at).unwrap_or_default() > STAGING_MAX_AGE);
                if stale && std::fs::remove_file(&path).is_ok() {
                    tracing::info!(path = %path.display(), "removed a staging file left by a crash");
                    removed += 1;
                }
            }
        }
    }
    removed
}

/// `object_store`'s staging names: `<name>#<digits>`.
fn is_staging_name(name: &str) -> bool {
    name.rsplit_once('#').is_some_and(|(base, suffix)| {
        !base.is_empty() && !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_staging_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("_log");
        std::fs::create_dir_all(&log).unwrap();
        for name in [
            "00000000000000000001.json",
            "00000000000000000002.json#1",
            "a#b",
        ] {
            std::fs::write(log.join(name), b"x").unwrap();
        }
        let file_time = std::fs::metadata(log.join("a#b"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(sweep(dir.path(), file_time), 0, "young staging files stay");
        let later = file_time + STAGING_MAX_AGE + Duration::from_secs(1);
        assert_eq!(sweep(dir.path(), later), 1);
        let mut left: Vec<_> = std::fs::read_dir(&log)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["00000000000000000001.json", "a#b"]);
    }
}
