//! A database root on a local disk: `LocalFileSystem` with fsync, except for the commit
//! protocol's create-if-absent, which publishes its file by a rename that refuses to
//! replace (`renameat2` with `RENAME_NOREPLACE`) instead of a hard link and an unlink.
//!
//! `LocalFileSystem` writes a staging file, links it to its key and unlinks the staging
//! name, so every log entry frees an inode. Publishing by rename frees nothing, makes one
//! system call fewer and leaves the directory unchanged after its fsync, and keeps each
//! step that makes a write durable: the file is written and fsynced under a staging name
//! (`key#N`, which `LocalFileSystem` lists as no object), renamed into place only if the
//! key is free, then its directory is fsynced. (On ext4 without a journal, freed inodes
//! slow later file creations near them for minutes: decision 0024.)
//!
//! Where the filesystem cannot rename without replacing (`EINVAL`), the staging file is
//! linked and unlinked as before. Everything else is `LocalFileSystem`'s own.
//!
//! A create of [`DIRECT_FROM`] bytes or more (a large import's log entry) is written
//! around the page cache (`O_DIRECT`, through one reused page-aligned buffer): copying
//! megabytes into fresh page-cache pages cost 40–60 ms where the disk wrote them in 4
//! (docs/benchmarks.md, session 11). The file, its fsync and its publication are the same.

use std::fs::File;
use std::io::{self, ErrorKind, Write};
use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

use super::lane::{PAGE, store_error};

/// The local root's store; see the module docs.
#[derive(Debug)]
pub struct LocalStore {
    fs: LocalFileSystem,
    /// The buffer large creates are written through; see [`write_direct`].
    direct: Arc<Mutex<DirectBuffer>>,
}

impl LocalStore {
    /// The store of the directory `root` (which must exist), fsync on.
    pub fn new(root: &FsPath) -> Result<LocalStore> {
        Ok(LocalStore {
            fs: LocalFileSystem::new_with_prefix(root)?.with_fsync(true),
            direct: Arc::default(),
        })
    }
}

impl std::fmt::Display for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.fs.fmt(f)
    }
}

/// What a create found.
enum Created {
    Done(PutResult),
    Exists,
    /// The key's directory does not exist yet: `LocalFileSystem` creates (and syncs) it.
    NoDirectory,
}

/// Writes `payload` at `path` unless a file is there, durably; see the module docs.
fn create(
    path: &FsPath,
    payload: &PutPayload,
    direct: &Mutex<DirectBuffer>,
) -> io::Result<Created> {
    let (mut file, staging) = match super::staging::create(path) {
        Ok(staged) => staged,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Created::NoDirectory),
        Err(e) => return Err(e),
    };
    let published = (|| {
        if !write_direct(&staging, payload, direct)? {
            payload.iter().try_for_each(|chunk| file.write_all(chunk))?;
        }
        file.sync_all()?;
        let e_tag = e_tag(&file.metadata()?);
        drop(file);
        if !publish(&staging, path)? {
            return Ok(Created::Exists);
        }
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(Created::Done(PutResult {
            e_tag: Some(e_tag),
            version: None,
            extensions: Default::default(),
        }))
    })();
    if !matches!(published, Ok(Created::Done(_))) {
        let _ = std::fs::remove_file(&staging);
    }
    published
}

/// Creates at least this large are written with direct I/O.
const DIRECT_FROM: usize = 1 << 20;

#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Page([u8; PAGE]);

/// One mebibyte of page-aligned memory, allocated on first use and kept: its pages stay
/// mapped, so each large create copies into warm memory.
#[derive(Default)]
struct DirectBuffer(Vec<Page>);

impl std::fmt::Debug for DirectBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DirectBuffer({} bytes)", self.0.len() * PAGE)
    }
}

impl DirectBuffer {
    fn bytes_mut(&mut self) -> &mut [u8] {
        if self.0.is_empty() {
            self.0 = vec![Page([0; PAGE]); DIRECT_FROM / PAGE];
        }
        let len = self.0.len() * PAGE;
        // SAFETY: a `Page` is exactly PAGE initialized bytes without padding (its size
        // equals its alignment), so the vector's pages are one contiguous byte slice of
        // `len` bytes, borrowed mutably for as long as `self` is.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<u8>(), len) }
    }
}

/// Writes `payload` into the (empty) file at `staging` with direct I/O, in aligned
/// chunks through `buffer`, the last one padded and the file then cut to its length;
/// `false`, with nothing written, where it does not apply: a small payload, the buffer
/// in use by another create, a filesystem without direct I/O.
#[cfg(target_os = "linux")]
fn write_direct(
    staging: &FsPath,
    payload: &PutPayload,
    buffer: &Mutex<DirectBuffer>,
) -> io::Result<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    let len = payload.content_length();
    if len < DIRECT_FROM {
        return Ok(false);
    }
    let Ok(mut buffer) = buffer.try_lock() else {
        return Ok(false);
    };
    let unsupported = |e: &io::Error| e.raw_os_error() == Some(libc::EINVAL);
    let file = match File::options()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(staging)
    {
        Ok(file) => file,
        Err(e) if unsupported(&e) => return Ok(false),
        Err(e) => return Err(e),
    };
    match write_through(&file, buffer.bytes_mut(), payload) {
        Ok(()) => {
            file.set_len(len as u64)?;
            Ok(true)
        }
        Err(e) if unsupported(&e) => {
            file.set_len(0)?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Writes `payload` into `file` from its start, in chunks of `buf`'s size copied into
/// `buf` (page-aligned, as direct I/O needs), the last one padded to a whole page.
#[cfg(target_os = "linux")]
fn write_through(file: &File, buf: &mut [u8], payload: &PutPayload) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let (mut offset, mut filled) = (0u64, 0usize);
    for chunk in payload.iter() {
        let mut rest: &[u8] = chunk;
        while !rest.is_empty() {
            let n = rest.len().min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&rest[..n]);
            (filled, rest) = (filled + n, &rest[n..]);
            if filled == buf.len() {
                file.write_all_at(buf, offset)?;
                (offset, filled) = (offset + filled as u64, 0);
            }
        }
    }
    if filled > 0 {
        let padded = filled.next_multiple_of(PAGE);
        buf[filled..padded].fill(0);
        file.write_all_at(&buf[..padded], offset)?;
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn write_direct(_: &FsPath, _: &PutPayload, _: &Mutex<DirectBuffer>) -> io::Result<bool> {
    Ok(false)
}

/// Moves `staging` to `path` if nothing is there: `false` when something is.
#[cfg(target_os = "linux")]
fn publish(staging: &FsPath, path: &FsPath) -> io::Result<bool> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, staging, CWD, path, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::EXIST) => Ok(false),
        // The filesystem cannot refuse to replace: link, which can, then unlink.
        Err(rustix::io::Errno::INVAL) => link(staging, path),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn publish(staging: &FsPath, path: &FsPath) -> io::Result<bool> {
    link(staging, path)
}

fn link(staging: &FsPath, path: &FsPath) -> io::Result<bool> {
    match std::fs::hard_link(staging, path) {
        Ok(()) => {
            let _ = std::fs::remove_file(staging);
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// The entity tag `LocalFileSystem` gives the same file (inode, 0 where there is none,
/// modification time in microseconds and size), so a put's answer and a later head agree.
fn e_tag(metadata: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(metadata);
    #[cfg(not(unix))]
    let inode = 0u64;
    let mtime = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    let size = metadata.len();
    format!("\"{inode:x}-{mtime:x}-{size:x}\"")
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if !matches!(opts.mode, PutMode::Create) || !opts.attributes.is_empty() {
            return self.fs.put_opts(location, payload, opts).await;
        }
        let path = self.fs.path_to_filesystem(location)?;
        let staged = payload.clone();
        let direct = Arc::clone(&self.direct);
        let created = tokio::task::spawn_blocking(move || create(&path, &staged, &direct))
            .await
            .map_err(store_error)?;
        match created {
            Ok(Created::Done(result)) => Ok(result),
            Ok(Created::Exists) => Err(object_store::Error::AlreadyExists {
                path: location.to_string(),
                source: "the key exists".into(),
            }),
            Ok(Created::NoDirectory) => self.fs.put_opts(location, payload, opts).await,
            Err(e) => Err(store_error(e)),
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.fs.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.fs.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.fs.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.fs.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.fs.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.fs.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.fs.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.fs.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.fs.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::create_if_absent;
    use object_store::ObjectStoreExt;
    use std::sync::Arc;

    fn store(dir: &tempfile::TempDir) -> crate::store::DynStore {
        Arc::new(LocalStore::new(dir.path()).unwrap())
    }

    #[tokio::test]
    async fn creates_once_and_leaves_no_staging_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let key = Path::from("_log/00000000000000000001.json");
        assert!(
            create_if_absent(&s, &key, Bytes::from_static(b"first"))
                .await
                .unwrap()
        );
        assert!(
            !create_if_absent(&s, &key, Bytes::from_static(b"second"))
                .await
                .unwrap()
        );
        let got = s.get(&key).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], b"first");
        let names: Vec<String> = std::fs::read_dir(dir.path().join("_log"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["00000000000000000001.json"]);
    }

    #[tokio::test]
    async fn a_put_answers_the_tag_a_head_reads() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let key = Path::from("a/b.json");
        let put = s
            .put_opts(&key, PutPayload::from_static(b"x"), PutMode::Create.into())
            .await
            .unwrap();
        let head = s.head(&key).await.unwrap();
        assert_eq!(put.e_tag, head.e_tag);
    }

    #[tokio::test]
    async fn concurrent_creates_of_one_key_have_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let key = Path::from("_log/00000000000000000007.json");
        let racers = (0..8u8).map(|i| {
            let (s, key) = (s.clone(), key.clone());
            tokio::spawn(async move { create_if_absent(&s, &key, vec![i; 100]).await.unwrap() })
        });
        let won = futures::future::join_all(racers)
            .await
            .into_iter()
            .filter(|r| *r.as_ref().unwrap())
            .count();
        assert_eq!(won, 1);
        let names = std::fs::read_dir(dir.path().join("_log")).unwrap().count();
        assert_eq!(names, 1, "no staging file is left behind");
    }

    /// Bytes that differ at every offset, so a chunk written at the wrong place shows.
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
    }

    #[tokio::test]
    async fn a_large_create_is_written_directly_and_reads_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        for (n, len) in [DIRECT_FROM, 3 * DIRECT_FROM + 17, DIRECT_FROM + PAGE]
            .into_iter()
            .enumerate()
        {
            let bytes = pattern(len, n as u8);
            // In uneven parts, so chunks and the payload's parts do not line up.
            let parts: Vec<Bytes> = bytes.chunks(300_001).map(Bytes::copy_from_slice).collect();
            let key = Path::from(format!("_log/{n:020}.json"));
            let put = s
                .put_opts(&key, PutPayload::from_iter(parts), PutMode::Create.into())
                .await
                .unwrap();
            let got = s.get(&key).await.unwrap().bytes().await.unwrap();
            assert_eq!(got.len(), len);
            assert!(got[..] == bytes[..], "create {n} reads back as written");
            assert_eq!(put.e_tag, s.head(&key).await.unwrap().e_tag);
        }
        let names = std::fs::read_dir(dir.path().join("_log")).unwrap().count();
        assert_eq!(names, 3, "no staging file is left behind");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn direct_io_applies_to_large_payloads_only_and_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let buffer = Mutex::new(DirectBuffer::default());
        let file = |name: &str| {
            let path = dir.path().join(name);
            File::create(&path).unwrap();
            path
        };
        let large = PutPayload::from(pattern(2 * DIRECT_FROM + 5, 7));
        let path = file("large");
        assert!(
            write_direct(&path, &large, &buffer).unwrap(),
            "the test directory's filesystem takes direct I/O"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            pattern(2 * DIRECT_FROM + 5, 7)
        );
        let small = PutPayload::from(pattern(DIRECT_FROM - 1, 1));
        assert!(!write_direct(&file("small"), &small, &buffer).unwrap());
        let _busy = buffer.lock().unwrap();
        assert!(!write_direct(&file("busy"), &large, &buffer).unwrap());
        assert_eq!(std::fs::metadata(dir.path().join("busy")).unwrap().len(), 0);
    }
}
