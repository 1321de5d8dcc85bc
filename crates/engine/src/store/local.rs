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

use std::fs::File;
use std::io::{self, ErrorKind, Write};
use std::ops::Range;
use std::path::Path as FsPath;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

use super::lane::store_error;

/// The local root's store; see the module docs.
#[derive(Debug)]
pub struct LocalStore {
    fs: LocalFileSystem,
}

impl LocalStore {
    /// The store of the directory `root` (which must exist), fsync on.
    pub fn new(root: &FsPath) -> Result<LocalStore> {
        Ok(LocalStore {
            fs: LocalFileSystem::new_with_prefix(root)?.with_fsync(true),
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
fn create(path: &FsPath, payload: &PutPayload) -> io::Result<Created> {
    let (mut file, staging) = match super::staging::create(path) {
        Ok(staged) => staged,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Created::NoDirectory),
        Err(e) => return Err(e),
    };
    let published = (|| {
        payload.iter().try_for_each(|chunk| file.write_all(chunk))?;
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
        let created = tokio::task::spawn_blocking(move || create(&path, &staged))
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
}
