//! The background lane: one OS thread at the lowest CPU and I/O priority, for derived
//! work that must never delay a commit (the materialized view's files, checkpoints).
//!
//! Why a thread of its own: a durable write waits for its log entry's fsync, and on one
//! disk that fsync shares the device queue, the filesystem journal and the device's cache
//! flushes with everything else the process writes; on a small machine the request
//! threads also share the CPUs with whatever renders the view. Tokio's blocking pool runs
//! the log's own writes, so its threads cannot be demoted. Work sent here runs on a
//! thread with nice 19 and, on Linux, the idle I/O class (`ioprio_set`), which the
//! kernel's mq-deadline and BFQ schedulers serve only when no request of a higher class
//! waits. Whoever writes from here pushes its data to the device and waits for it
//! (`sync_file_range`) before a file is renamed into place or synced, so that a commit
//! of the journal never has to wait for idle-class I/O (see `materialize::local`).
//!
//! Where the kernel refuses a priority (or it is not Linux), the lane still runs, at the
//! normal priority, and says so once in the log.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use parking_lot::Mutex;

type Job = Box<dyn FnOnce() + Send>;

/// A handle on the lane's thread; clones share it. The thread ends when the last
/// handle is dropped, after the jobs already sent.
#[derive(Clone, Debug)]
pub struct Lane {
    jobs: mpsc::Sender<Job>,
}

/// The lane's thread has gone (it panicked): the job did not run.
#[derive(Debug, thiserror::Error)]
#[error("the background lane stopped")]
pub struct LaneStopped;

/// The name of the lane's thread, as `/proc/<pid>/task/<tid>/comm` shows it.
pub const LANE_THREAD: &str = "bb-background";

/// The nice value of the lane's thread.
pub const LANE_NICE: i32 = 19;

impl Lane {
    /// Starts the lane's thread.
    pub fn spawn() -> Lane {
        let (jobs, queue) = mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name(LANE_THREAD.into())
            .spawn(move || {
                if let Err(e) = lower_priority() {
                    tracing::info!(error = %e, "the background lane runs at the normal priority");
                }
                for job in queue {
                    job();
                }
            });
        if let Err(e) = started {
            // Without a thread, jobs fail with `LaneStopped` and their work is retried.
            tracing::warn!(error = %e, "could not start the background lane");
        }
        Lane { jobs }
    }

    /// Runs `f` on the lane and waits for its result.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, LaneStopped> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| LaneStopped)?;
        rx.await.map_err(|_| LaneStopped)
    }
}

/// A local root, for what the lane writes there (the view, checkpoints).
#[derive(Debug)]
pub struct LocalRoot {
    /// object_store's mapping of keys to paths, so the files are where a
    /// `LocalFileSystem` on the root reads them.
    fs: object_store::local::LocalFileSystem,
    /// The thread that writes them, at low CPU and I/O priority.
    pub lane: Lane,
    /// Directories that view files were renamed into or removed from since the view's
    /// last sync (see `materialize::local`).
    pub(crate) unsynced_dirs: Mutex<BTreeSet<PathBuf>>,
    /// Files the view replaced, to be written again (see `store::spares`).
    pub(crate) spares: Mutex<super::spares::Spares>,
}

impl LocalRoot {
    pub fn new(root: &std::path::Path) -> crate::error::Result<LocalRoot> {
        Ok(LocalRoot {
            fs: object_store::local::LocalFileSystem::new_with_prefix(root)?,
            lane: Lane::spawn(),
            unsynced_dirs: Mutex::new(BTreeSet::new()),
            spares: Mutex::default(),
        })
    }

    /// Where the file of `key` lives.
    pub fn path(&self, key: &object_store::path::Path) -> crate::error::Result<PathBuf> {
        Ok(self.fs.path_to_filesystem(key)?)
    }
}

/// Gives the calling thread nice [`LANE_NICE`] and the idle I/O class.
#[cfg(target_os = "linux")]
fn lower_priority() -> std::io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_CLASS_IDLE: libc::c_long = 3;
    const IOPRIO_CLASS_SHIFT: libc::c_long = 13;
    // SAFETY: plain system calls on the calling thread, with integer arguments only. On
    // Linux both attributes belong to the thread (the task): `gettid` names it for
    // `setpriority`, and `ioprio_set` with who = 0 means the caller.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, LANE_NICE) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let idle = IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT;
        if libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, idle) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() -> std::io::Result<()> {
    Err(std::io::Error::other(
        "thread priorities are only set on Linux",
    ))
}

/// A local write's failure, as the store would report it.
pub(crate) fn local_error(
    e: impl std::error::Error + Send + Sync + 'static,
) -> crate::error::Error {
    crate::error::Error::Store(store_error(e))
}

/// A local write's failure as `object_store` reports its own.
pub(crate) fn store_error(
    e: impl std::error::Error + Send + Sync + 'static,
) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(e),
    }
}

/// A large file is written in steps of this many bytes, each pushed to the device and
/// waited for before the next, so the device's queue never holds much of it at once,
/// and a commit's fsync, whose cache flush covers everything written before it, finds
/// at most one step of it there.
const PACE_BYTES: usize = 256 << 10;

/// Writes `bytes` to `file` in steps of [`PACE_BYTES`], each pushed to the device and
/// waited for before the next is written: when it returns, the data is on the device.
pub(crate) fn write_paced(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    for step in bytes.chunks(PACE_BYTES) {
        file.write_all(step)?;
        wait_writeback(file)?;
    }
    Ok(())
}

/// Writes `bytes` to `file` in steps of [`PACE_BYTES`], each after the writeback of the
/// one before is done (`unwaited`: a step's writeback was started and not yet waited
/// for, carried from one call to the next), and starts the writeback of each.
fn append_paced(file: &mut File, bytes: &[u8], unwaited: &mut bool) -> io::Result<()> {
    for step in bytes.chunks(PACE_BYTES) {
        if *unwaited {
            wait_writeback(file)?;
        }
        file.write_all(step)?;
        start_writeback(file)?;
        *unwaited = true;
    }
    Ok(())
}

/// A disk page: [`write_changed`] compares and writes a file by pages of this many bytes,
/// and direct I/O aligns its buffers, offsets and lengths to it (`store::local`).
pub(crate) const PAGE: usize = 4096;

/// Makes `file`, which holds an earlier version of the same file, hold `bytes`: in each
/// step of [`PACE_BYTES`] it writes from the first page that differs from what the file
/// holds to the last, if any, paced as [`write_paced`] (each step's write is pushed to
/// the device and waited for), then truncates the file to `bytes`' length. Returns how
/// many bytes it wrote.
///
/// A collection's `index.json` lists its records in id order, and ids grow with time,
/// so a new version mostly differs from an earlier one in its first page (`_seq`,
/// `count`) and its end: written this way, its cost follows what changed, not the size
/// of the collection. The pages it leaves were made durable when the file was last
/// written and synced (see `store::spares`: a spare is written only after that sync).
pub(crate) fn write_changed(file: &mut File, bytes: &[u8]) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut old = vec![0u8; PACE_BYTES.min(bytes.len())];
    let mut written = 0u64;
    for (i, step) in bytes.chunks(PACE_BYTES).enumerate() {
        let offset = (i * PACE_BYTES) as u64;
        let held = read_up_to(file, &mut old[..step.len()], offset)?;
        let differs = |page: usize| {
            let range = page * PAGE..((page + 1) * PAGE).min(step.len());
            range.end > held || step[range.clone()] != old[range]
        };
        let pages = step.len().div_ceil(PAGE);
        let Some(first) = (0..pages).find(|&p| differs(p)) else {
            continue;
        };
        let last = (first..pages).rev().find(|&p| differs(p)).unwrap_or(first);
        let changed = &step[first * PAGE..((last + 1) * PAGE).min(step.len())];
        file.write_all_at(changed, offset + (first * PAGE) as u64)?;
        wait_writeback(file)?;
        written += changed.len() as u64;
    }
    file.set_len(bytes.len() as u64)?;
    Ok(written)
}

/// Reads from `offset` into `buf` until it is full or the file ends; how many bytes.
fn read_up_to(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut held = 0;
    while held < buf.len() {
        match file.read_at(&mut buf[held..], offset + held as u64) {
            Ok(0) => break,
            Ok(n) => held += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(held)
}

/// A file written durably as `LocalFileSystem` with fsync writes one (under a staging
/// name beside it, synced, renamed into place, its directory synced), but appended to
/// as its bytes come, in paced steps (see [`PACE_BYTES`]): the final sync then has only
/// the last step and the metadata left to commit, and a writer that renders as it goes
/// needs no buffer the size of the file. Dropped unpublished, it removes its staging file.
pub(crate) struct PacedFile {
    file: File,
    staging: PathBuf,
    path: PathBuf,
    /// See [`append_paced`].
    unwaited: bool,
    published: bool,
}

impl PacedFile {
    pub(crate) fn create(path: &Path) -> io::Result<PacedFile> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let (file, staging) = super::staging::create(path)?;
        Ok(PacedFile {
            file,
            staging,
            path: path.to_path_buf(),
            unwaited: false,
            published: false,
        })
    }

    /// Appends `bytes`, each step of [`PACE_BYTES`] after the writeback of the one
    /// before is done: the device's queue never holds more than one step of this file.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        append_paced(&mut self.file, bytes, &mut self.unwaited)
    }

    /// Syncs the file, renames it into place and syncs its directory.
    pub(crate) fn publish(mut self) -> io::Result<()> {
        self.file.sync_all()?;
        std::fs::rename(&self.staging, &self.path)?;
        self.published = true;
        match self.path.parent() {
            Some(dir) => File::open(dir)?.sync_all(),
            None => Ok(()),
        }
    }
}

impl Drop for PacedFile {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_file(&self.staging);
        }
    }
}

#[cfg(target_os = "linux")]
fn sync_range(file: &File, flags: libc::c_uint) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: an open descriptor owned by `file`; offset 0 and length 0 name the whole
    // file. The call only starts or waits for writeback of its pages.
    let r = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, flags) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(target_os = "linux")]
fn start_writeback(file: &File) -> io::Result<()> {
    sync_range(file, libc::SYNC_FILE_RANGE_WRITE)
}

#[cfg(target_os = "linux")]
fn wait_writeback(file: &File) -> io::Result<()> {
    sync_range(
        file,
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER,
    )
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File) -> io::Result<()> {
    Ok(())
}

/// Without `sync_file_range`, each file's data is synced (slower, as durable).
#[cfg(not(target_os = "linux"))]
fn wait_writeback(file: &File) -> io::Result<()> {
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paced_write_writes_every_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.json");
        let bytes: Vec<u8> = (0..3 * PACE_BYTES + 17).map(|i| (i % 251) as u8).collect();
        let mut paced = PacedFile::create(&path).unwrap();
        paced.append(&bytes[..PACE_BYTES / 2]).unwrap();
        paced.append(&bytes[PACE_BYTES / 2..]).unwrap();
        assert!(!path.exists(), "published before its time");
        paced.publish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        // One dropped unpublished leaves nothing behind.
        let other = dir.path().join("dropped.json");
        PacedFile::create(&other).unwrap().append(&bytes).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let mut file = File::options().write(true).open(&path).unwrap();
        write_paced(&mut file, &bytes[..PACE_BYTES + 1]).unwrap();
        file.set_len(PACE_BYTES as u64 + 1).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes[..PACE_BYTES + 1]);
    }

    #[test]
    fn a_changed_write_writes_only_the_pages_that_differ() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        let old: Vec<u8> = (0..3 * PACE_BYTES + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &old).unwrap();
        let open = || File::options().read(true).write(true).open(&path).unwrap();

        // The same bytes: nothing written.
        assert_eq!(write_changed(&mut open(), &old).unwrap(), 0);
        assert_eq!(std::fs::read(&path).unwrap(), old);

        // A changed header and rows appended: the first page and the end.
        let mut new = old.clone();
        new[7] ^= 1;
        new.extend((0..3000).map(|i| (i % 7) as u8));
        let written = write_changed(&mut open(), &new).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), new);
        let tail = new.len() - (old.len() / PAGE) * PAGE;
        assert_eq!(written, (PAGE + tail) as u64, "one page and the new end");

        // Shorter: the file is cut to the new length; a change in the middle is its page.
        let mut shorter = new[..2 * PACE_BYTES + 5].to_vec();
        shorter[PACE_BYTES + 3 * PAGE + 1] ^= 1;
        let written = write_changed(&mut open(), &shorter).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), shorter);
        assert_eq!(
            written, PAGE as u64,
            "the changed page; the rest is cut off"
        );

        // Everything different, into an empty file: all of it.
        let other: Vec<u8> = (0..PACE_BYTES + 9).map(|i| (i % 13) as u8).collect();
        std::fs::write(&path, b"").unwrap();
        assert_eq!(
            write_changed(&mut open(), &other).unwrap(),
            other.len() as u64
        );
        assert_eq!(std::fs::read(&path).unwrap(), other);
    }

    #[tokio::test]
    async fn runs_jobs_in_order_and_returns_their_results() {
        let lane = Lane::spawn();
        let a = lane.run(|| 1 + 1).await.unwrap();
        let name = lane
            .run(|| std::thread::current().name().map(str::to_string))
            .await
            .unwrap();
        assert_eq!((a, name.as_deref()), (2, Some(LANE_THREAD)));
    }
}
