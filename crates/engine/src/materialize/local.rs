//! The view on a local root, written from the background lane (`store::lane`: nice 19,
//! the idle I/O class), so that it never competes with a commit for the CPU or the disk.
//!
//! A pass's files are written to staging files beside their targets (`<name>#<n>`, the
//! names `LocalFileSystem` uses, so a crash's leftovers are swept at the next open),
//! one at a time: each file's data is pushed to the device and waited for
//! (`sync_file_range`) before the next file is staged, and only then is it renamed
//! into place (see [`write_files`] for why one at a time). So what the renames add to
//! the filesystem journal is metadata only: a commit of the journal (the log's next
//! fsync) never waits for the view's data, and the data went out at the lane's idle
//! priority.
//!
//! A large file (a collection's `index.json`) is written in steps, each waited for before
//! the next (`store::lane::write_paced`): a commit's fsync flushes the device's cache,
//! and so waits for whatever the view wrote before it; paced, that is at most one step
//! of an index, not the whole of it (session 9: the write tail's p99 fell from 4.3 to
//! 2.5–2.8 ms on the aristay bench). And a large file written over a spare (an index
//! version or two back, see `store::spares`) is written only where it changed
//! (`store::lane::write_changed`): an index lists records in id order and ids grow with
//! time, so that is its first page and its end, whatever the collection's size.
//!
//! Nothing is fsynced per file. [`sync`] fsyncs the directories that changed since the
//! last sync: on a journaling filesystem (ext4, XFS) that commits the journal up to
//! those renames (with the inodes and allocations of the files, which writeback logged
//! before their data was waited for) and flushes the device's cache, which holds the
//! data already written. Only then is the watermark written, so it never claims a file
//! a power cut could lose. This replaces one `syncfs(2)` of the root's filesystem,
//! which also flushed every other program's dirty data and took the journal for as long.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use crate::error::Result;
use crate::metrics::EngineMetrics;
use crate::names::{CollectionName, RecordId};
use crate::state::State;
use crate::store::doc_view_path;
use crate::store::lane::{LocalRoot, local_error, write_changed, write_paced};
use crate::store::spares::LARGE;

use super::render_doc;

type Key = (CollectionName, RecordId);

/// Renders and writes the records' files from the lane; returns those that failed (all
/// of them if the lane is gone), to be retried.
pub(super) async fn write_docs(
    local: &Arc<LocalRoot>,
    snapshot: Arc<State>,
    docs: BTreeSet<Key>,
    metrics: &EngineMetrics,
) -> BTreeSet<Key> {
    let keys: Vec<Key> = docs.into_iter().collect();
    let sent = (local.clone(), keys.clone());
    let written = local
        .lane
        .run(move || {
            let (local, keys) = sent;
            let mut results: Vec<io::Result<()>> = Vec::with_capacity(keys.len());
            let mut files = Vec::with_capacity(keys.len());
            let mut slots = Vec::with_capacity(keys.len());
            for (i, (c, id)) in keys.iter().enumerate() {
                match local.path(&doc_view_path(c, id)) {
                    Ok(path) => {
                        files.push((path, snapshot.get(c, id).map(render_doc)));
                        slots.push(i);
                        results.push(Ok(()));
                    }
                    Err(e) => results.push(Err(io::Error::other(e))),
                }
            }
            for (i, result) in slots.into_iter().zip(write_files(&local, files)) {
                results[i] = result;
            }
            results
        })
        .await;
    let Ok(results) = written else {
        return keys.into_iter().collect();
    };
    let mut failed = BTreeSet::new();
    for (key, result) in keys.into_iter().zip(results) {
        metrics.view_write(result.is_ok());
        if let Err(e) = result {
            tracing::debug!(collection = %key.0, id = %key.1, error = %e, "view write failed");
            failed.insert(key);
        }
    }
    failed
}

/// Writes one file (an index) from the lane.
pub(super) async fn write_file(
    local: &Arc<LocalRoot>,
    key: &object_store::path::Path,
    bytes: Vec<u8>,
) -> Result<()> {
    let (sent, path) = (local.clone(), local.path(key)?);
    let written = local
        .lane
        .run(move || write_files(&sent, vec![(path, Some(bytes))]).pop())
        .await
        .map_err(io::Error::other);
    match written {
        Ok(Some(Err(e))) | Err(e) => Err(local_error(e)),
        Ok(_) => Ok(()),
    }
}

/// Writes (`Some`) or removes (`None`) each file; the result of each, in order.
///
/// One file at a time: a file's data is written and waited for before the next file is
/// staged, so the device holds at most one of the view's writes when a commit's cache
/// flush comes, and that flush waits for little. (Session 17 staged 64 files and started
/// their writeback together: the view's lag after a stream of bookings fell from ~400
/// to ~65 ms, but every write workload's p99 rose by 1–2 ms; docs/benchmarks.md.)
pub(super) fn write_files(
    view: &LocalRoot,
    files: Vec<(PathBuf, Option<Vec<u8>>)>,
) -> Vec<io::Result<()>> {
    let mut dirs = BTreeSet::new();
    let results = files
        .into_iter()
        .map(|(path, bytes)| {
            let done = match bytes {
                Some(bytes) => {
                    stage(view, &path, &bytes).and_then(|staging| publish(view, &staging, &path))
                }
                None => match std::fs::remove_file(&path) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    other => other,
                },
            };
            if done.is_ok() {
                dirs.extend(path.parent().map(Path::to_path_buf));
            }
            done
        })
        .collect();
    view.unsynced_dirs.lock().extend(dirs);
    results
}

/// Writes `bytes` to a spare file in `path`'s directory, or else to a new staging file
/// there, and waits until its data is written; returns the staging file's name.
fn stage(view: &LocalRoot, path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("a view file without a directory"))?;
    let spare = view.spares.lock().take(dir, bytes.len());
    let opened = match spare {
        // Another process's sweep may have removed it: then a new file.
        Some(spare) => match File::options().read(true).write(true).open(&spare) {
            Ok(file) => Some((file, spare)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    let opened_spare = opened.is_some();
    let (mut file, staging) = match opened {
        Some(opened) => opened,
        None => {
            let staging = view.spares.lock().name(dir);
            match create_new(&staging) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    std::fs::create_dir_all(dir)?;
                    (create_new(&staging)?, staging)
                }
                created => (created?, staging),
            }
        }
    };
    // A large spare held an earlier version of the same file (an index): only what
    // changed since is written.
    let written = if opened_spare && bytes.len() as u64 > LARGE {
        write_changed(&mut file, bytes).map(|written| {
            tracing::debug!(path = %path.display(), len = bytes.len(), written, "view file written where it changed");
        })
    } else {
        // A new file holds exactly what was written; a spare may hold more.
        write_paced(&mut file, bytes).and_then(|()| {
            if opened_spare {
                file.set_len(bytes.len() as u64)
            } else {
                Ok(())
            }
        })
    };
    // The file is closed when this returns: its data is on the device already.
    match written {
        Ok(()) => Ok(staging),
        Err(e) => {
            let _ = std::fs::remove_file(&staging);
            Err(e)
        }
    }
}

fn create_new(path: &Path) -> io::Result<File> {
    File::options().write(true).create_new(true).open(path)
}

/// Puts a staged file in place: swapped with the file there, which becomes a spare, or
/// renamed if there is none.
fn publish(view: &LocalRoot, staging: &Path, path: &Path) -> io::Result<()> {
    match swap(staging, path) {
        Ok(true) => {
            let dir = path.parent().unwrap_or(Path::new(""));
            let len = std::fs::metadata(staging).map_or(u64::MAX, |m| m.len());
            if !view.spares.lock().keep(dir, staging.to_path_buf(), len) {
                let _ = std::fs::remove_file(staging);
            }
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(staging);
            Err(e)
        }
    }
}

/// Puts `staging` at `path`: `true` when it swapped places with a file that was there
/// (which `staging` now names), `false` when it was renamed (nothing was there, or the
/// filesystem cannot swap: then the old file is freed, as by any rename).
#[cfg(target_os = "linux")]
fn swap(staging: &Path, path: &Path) -> io::Result<bool> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, staging, CWD, path, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(true),
        // `NOENT`: no file at `path` (or `staging` is gone, which the rename reports).
        // `INVAL`: the filesystem cannot swap.
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::INVAL) => {
            std::fs::rename(staging, path).map(|()| false)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn swap(staging: &Path, path: &Path) -> io::Result<bool> {
    std::fs::rename(staging, path).map(|()| false)
}

/// Makes every file written since the last sync durable, then writes the watermark
/// (`bytes` at `watermark`) and makes it durable too. Directories that fail to sync stay
/// queued for the next sync.
pub(super) fn sync(view: &LocalRoot, watermark: PathBuf, bytes: Vec<u8>) -> io::Result<()> {
    sync_dirs(view)?;
    if let Some(Err(e)) = write_files(view, vec![(watermark, Some(bytes))]).pop() {
        return Err(e);
    }
    sync_dirs(view)
}

fn sync_dirs(view: &LocalRoot) -> io::Result<()> {
    let dirs = std::mem::take(&mut *view.unsynced_dirs.lock());
    let mut left = dirs.iter();
    for dir in left.by_ref() {
        if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
            let mut unsynced = view.unsynced_dirs.lock();
            unsynced.insert(dir.clone());
            unsynced.extend(left.cloned());
            return Err(e);
        }
        view.spares.lock().synced(dir);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn inode(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().ino()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn write(view: &LocalRoot, path: &Path, bytes: &str) {
        let written = write_files(view, vec![(path.to_path_buf(), Some(bytes.into()))]);
        assert!(written.into_iter().all(|r| r.is_ok()));
        assert_eq!(std::fs::read_to_string(path).unwrap(), bytes);
    }

    #[test]
    fn replaced_files_are_written_again_only_after_their_swap_is_synced() {
        let root = tempfile::tempdir().unwrap();
        let view = LocalRoot::new(root.path()).unwrap();
        let dir = root.path().join("things");
        let (a, b, c) = (dir.join("a.json"), dir.join("b.json"), dir.join("c.json"));
        let watermark = root.path().join("_meta/view.json");

        write(&view, &a, "a1 and some more bytes");
        let first = inode(&a);
        write(&view, &a, "a2");
        assert_eq!(names(&dir).len(), 2, "a.json and the file it replaced");
        // Not yet synced: the replaced file must not be written.
        write(&view, &b, "b1");
        assert_ne!(inode(&b), first);
        sync(&view, watermark.clone(), b"{}".to_vec()).unwrap();

        let second = inode(&a);
        write(&view, &a, "a3");
        assert_eq!(inode(&a), first, "the replaced file was written again");
        assert_eq!(
            std::fs::read_to_string(&a).unwrap(),
            "a3",
            "and cut to length"
        );
        write(&view, &c, "c1");
        assert_ne!(inode(&c), second, "a2's file is not synced yet");
        sync(&view, watermark.clone(), b"{}".to_vec()).unwrap();

        // Another process's sweep removes the spare: the next write makes a new file.
        let spares: Vec<_> = names(&dir)
            .into_iter()
            .filter(|n| n.contains('#'))
            .collect();
        assert_eq!(spares.len(), 1, "{spares:?}");
        std::fs::remove_file(dir.join(&spares[0])).unwrap();
        write(&view, &b, "b2");
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "a3");
        assert_eq!(std::fs::read_to_string(&c).unwrap(), "c1");
        let visible: Vec<_> = names(&dir)
            .into_iter()
            .filter(|n| !n.contains('#'))
            .collect();
        assert_eq!(visible, ["a.json", "b.json", "c.json"]);
    }

    #[test]
    fn a_large_file_written_again_holds_exactly_its_new_bytes() {
        let root = tempfile::tempdir().unwrap();
        let view = LocalRoot::new(root.path()).unwrap();
        let index = root.path().join("things/index.json");
        let watermark = root.path().join("_meta/view.json");
        // An index whose rows grow at the end and whose header changes, as ids do.
        let version = |n: usize| {
            let rows: Vec<String> = (0..n).map(|i| format!("{{\"id\":\"{i:08}\"}}")).collect();
            format!("{{\"_seq\":{n},\"records\":[{}]}}", rows.join(","))
        };
        let mut inodes = BTreeSet::new();
        for n in [5000, 5100, 5200, 4000, 6000, 6000] {
            write(&view, &index, &version(n));
            inodes.insert(inode(&index));
            sync(&view, watermark.clone(), b"{}".to_vec()).unwrap();
        }
        assert!(version(4000).len() as u64 > LARGE);
        assert_eq!(inodes.len(), 2, "two files take turns: {inodes:?}");
    }
}
