//! The view's spare files: files it replaced, written again instead of new ones
//! (decision 0025).
//!
//! Replacing a file by renaming a new one over it frees the old file's inode and blocks.
//! On ext4 without a journal every freed inode slows each file creation near it for
//! minutes (decision 0024), and on a filesystem mounted with `discard` every freed block
//! is a discard request queued on the device that the log's next fsync waits behind. The
//! view replaces a file per record per write, so it freed as many inodes as the log wrote
//! records. Instead, `materialize::local` stages each file under a name of this process
//! ([`Spares::name`]) and swaps it with the old file (`renameat2(RENAME_EXCHANGE)`): the
//! old file, now under the staging name, becomes a spare, and a later write in the same
//! directory fills it ([`Spares::take`]) instead of creating a file. In a steady state
//! the view then neither allocates nor frees an inode or a block.
//!
//! **A spare is written only after the directory sync that made its swap durable**
//! ([`Spares::synced`]). Before, a power cut could undo the swap and put the spare back
//! under its record's name, holding whatever was being written into it.
//!
//! The names are `<dir>/<token>-<n>#1`: the token is random per process, so no other
//! process (which may write the same view) ever stages under one of them, and `#<digits>`
//! is a staging name, which listings skip and the sweep at open removes once it is a
//! minute old (`store::staging`). If another process's sweep removes a spare, opening or
//! swapping it fails with `NotFound` and the write falls back to a new file. Spares left
//! when the process ends are such leftovers too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Spares kept at most, per root: about 16 MiB of disk for files of one block.
const MAX_SPARES: usize = 4096;

/// A file above this size is "large" (a collection's `index.json`): it is only reused for
/// a large file, so a record's file does not truncate (and free) an index's blocks.
pub(crate) const LARGE: u64 = 64 * 1024;

/// Large spares kept at most, per directory.
const MAX_LARGE_PER_DIR: usize = 2;

/// A file above this size is removed rather than kept.
const MAX_SPARE_LEN: u64 = 64 << 20;

/// The spares of one root, by directory. Used from the background lane only.
#[derive(Debug)]
pub struct Spares {
    token: String,
    next: u64,
    dirs: HashMap<PathBuf, Dir>,
    count: usize,
}

#[derive(Debug, Default)]
struct Dir {
    /// May be written: their swaps are durable.
    ready: Vec<Spare>,
    /// Swapped since the directory's last sync.
    pending: Vec<Spare>,
}

#[derive(Debug)]
struct Spare {
    path: PathBuf,
    large: bool,
}

impl Default for Spares {
    fn default() -> Self {
        Spares {
            token: format!("{:016x}", rand::random::<u64>()),
            next: 0,
            dirs: HashMap::new(),
            count: 0,
        }
    }
}

impl Spares {
    /// A new staging name in `dir`, never used before by any process.
    pub fn name(&mut self, dir: &Path) -> PathBuf {
        self.next += 1;
        dir.join(format!("{}-{}#1", self.token, self.next))
    }

    /// A spare in `dir` that may be written with a file of `len` bytes, if one is ready.
    /// It leaves the pool: [`Spares::keep`] takes back what a swap gives.
    pub fn take(&mut self, dir: &Path, len: usize) -> Option<PathBuf> {
        let large = len as u64 > LARGE;
        let ready = &mut self.dirs.get_mut(dir)?.ready;
        let at = ready.iter().rposition(|s| s.large == large)?;
        self.count -= 1;
        Some(ready.swap_remove(at).path)
    }

    /// `path`, in `dir`, holds a file a swap replaced, of `len` bytes. Whether it is
    /// kept as a spare; if not, the caller removes it.
    pub fn keep(&mut self, dir: &Path, path: PathBuf, len: u64) -> bool {
        if self.count >= MAX_SPARES || len > MAX_SPARE_LEN {
            return false;
        }
        let large = len > LARGE;
        let entry = self.dirs.entry(dir.to_path_buf()).or_default();
        if large {
            let held = entry.ready.iter().chain(&entry.pending);
            if held.filter(|s| s.large).count() >= MAX_LARGE_PER_DIR {
                return false;
            }
        }
        entry.pending.push(Spare { path, large });
        self.count += 1;
        true
    }

    /// `dir` was synced: the swaps of its spares are durable, so they may be written.
    pub fn synced(&mut self, dir: &Path) {
        if let Some(entry) = self.dirs.get_mut(dir) {
            let pending = std::mem::take(&mut entry.pending);
            entry.ready.extend(pending);
        }
    }

    /// How many spares are held, ready or not.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no spare is held.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spare_is_taken_only_after_its_directory_is_synced() {
        let mut spares = Spares::default();
        let (a, b) = (Path::new("/r/a"), Path::new("/r/b"));
        let name = spares.name(a);
        assert!(name.starts_with(a) && name.to_string_lossy().ends_with("#1"));
        assert_ne!(spares.name(a), name, "names are never reused");
        assert!(spares.keep(a, name.clone(), 100));
        assert_eq!(spares.take(a, 100), None, "the swap is not durable yet");
        spares.synced(b);
        assert_eq!(spares.take(a, 100), None, "another directory's sync");
        spares.synced(a);
        assert_eq!(spares.take(b, 100), None, "a spare stays in its directory");
        assert_eq!(spares.take(a, 100), Some(name));
        assert_eq!(spares.take(a, 100), None, "taken once");
        assert!(spares.is_empty());
    }

    #[test]
    fn large_and_small_files_reuse_their_own_kind_and_the_pool_is_bounded() {
        let mut spares = Spares::default();
        let dir = Path::new("/r/c");
        let small = spares.name(dir);
        let large = spares.name(dir);
        assert!(spares.keep(dir, small.clone(), 900));
        assert!(spares.keep(dir, large.clone(), 2 << 20));
        spares.synced(dir);
        assert_eq!(spares.take(dir, 3 << 20), Some(large));
        assert_eq!(spares.take(dir, 3 << 20), None);
        assert_eq!(spares.take(dir, 10), Some(small));

        for _ in 0..MAX_LARGE_PER_DIR {
            let name = spares.name(dir);
            assert!(spares.keep(dir, name, 1 << 20));
        }
        let name = spares.name(dir);
        assert!(
            !spares.keep(dir, name, 1 << 20),
            "large spares per directory"
        );
        let name = spares.name(dir);
        assert!(
            !spares.keep(dir, name, MAX_SPARE_LEN + 1),
            "too large to keep"
        );
        while spares.len() < MAX_SPARES {
            let name = spares.name(dir);
            assert!(spares.keep(dir, name, 10));
        }
        let name = spares.name(dir);
        assert!(!spares.keep(dir, name, 10), "the pool is bounded");
    }
}
