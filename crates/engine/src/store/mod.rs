//! Opening a database root on an object store, and the layout of keys under it.
//!
//! Everything the engine persists goes through `object_store`, so one code path serves
//! memory, local disk and S3. A root is named by a URL:
//!
//! | URL | store |
//! |---|---|
//! | `memory://` | `InMemory` (tests, benchmarks) |
//! | `file:///abs/path` or a plain path | [`LocalStore`]: `LocalFileSystem`, fsync on |
//! | `s3://bucket/prefix` | `AmazonS3` from the `AWS_*` environment |
//!
//! The commit protocol rests on one primitive, create-if-absent. Some S3 clones accept
//! the `If-None-Match` header and then ignore it, so [`open`] probes the store and refuses
//! one that lets a second create of the same key succeed.

pub mod fault;
mod keys;
pub mod lane;
mod local;
pub mod metered;
pub(crate) mod spares;
pub mod staging;

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

pub use keys::*;
pub use local::LocalStore;

use crate::clock::IdSource;
use crate::error::{Error, Result};

/// A shared handle to any object store.
pub type DynStore = Arc<dyn ObjectStore>;

/// A parsed store location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Memory,
    Local(std::path::PathBuf),
    S3 { bucket: String, prefix: String },
}

impl StoreUrl {
    /// Parses `memory://`, `file:///abs/path`, `s3://bucket/prefix` or a filesystem path
    /// (relative paths are taken from the current directory).
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::invalid("store URL", "empty"));
        }
        if s == "memory://" || s == "memory:" {
            return Ok(StoreUrl::Memory);
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::invalid("store URL", format!("{s}: no bucket name")));
            }
            return Ok(StoreUrl::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if s.starts_with("file:") {
            let url =
                url::Url::parse(s).map_err(|e| Error::invalid("store URL", format!("{s}: {e}")))?;
            let path = url.to_file_path().map_err(|()| {
                Error::invalid("store URL", format!("{s}: use file:///absolute/path"))
            })?;
            return Ok(StoreUrl::Local(path));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(Error::invalid(
                "store URL",
                format!(
                    "{s}: unknown scheme {scheme:?} (use memory://, file:///path or s3://bucket/prefix)"
                ),
            ));
        }
        let path = std::path::Path::new(s);
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| Error::invalid("store URL", format!("{s}: {e}")))?
                .join(path)
        };
        Ok(StoreUrl::Local(abs))
    }

    /// Builds the store without probing it. Use [`open`] for a database root.
    pub fn build(&self) -> Result<DynStore> {
        match self {
            StoreUrl::Memory => Ok(Arc::new(InMemory::new())),
            StoreUrl::Local(path) => {
                std::fs::create_dir_all(path).map_err(|e| {
                    Error::invalid(
                        "store URL",
                        format!("cannot create {}: {e}", path.display()),
                    )
                })?;
                Ok(Arc::new(LocalStore::new(path)?))
            }
            StoreUrl::S3 { bucket, prefix } => {
                let endpoint = std::env::var("AWS_ENDPOINT_URL")
                    .or_else(|_| std::env::var("AWS_ENDPOINT"))
                    .ok();
                s3_store(bucket, prefix, endpoint.as_deref())
            }
        }
    }
}

/// An S3 (or S3-compatible) store: credentials and region from the `AWS_*` variables,
/// the endpoint given (plain http only to a loopback address).
pub fn s3_store(bucket: &str, prefix: &str, endpoint: Option<&str>) -> Result<DynStore> {
    // object_store retries a failing request for up to 3 minutes by default; the commit
    // protocol settles ambiguous writes itself (`settle_timeout`), so a store that is down
    // should surface in seconds: a few quick retries, bounded at 10 s.
    let retry = object_store::RetryConfig {
        max_retries: 4,
        retry_timeout: std::time::Duration::from_secs(10),
        ..Default::default()
    };
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry);
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        builder = builder.with_region("us-east-1");
    }
    if let Some(endpoint) = endpoint {
        if is_loopback_http(endpoint) {
            builder = builder.with_allow_http(true);
        }
        builder = builder.with_endpoint(endpoint);
    }
    let s3: DynStore = Arc::new(builder.build()?);
    if prefix.is_empty() {
        Ok(s3)
    } else {
        Ok(Arc::new(PrefixStore::new(s3, prefix)))
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Memory => f.write_str("memory://"),
            StoreUrl::Local(p) => write!(f, "file://{}", p.display()),
            StoreUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Plain http is only allowed without asking to a loopback endpoint (a local S3 server).
fn is_loopback_http(endpoint: &str) -> bool {
    let Ok(url) = url::Url::parse(endpoint) else {
        return false;
    };
    url.scheme() == "http"
        && match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
}

/// Writes `bytes` at `path` unless something is there already: `true` when this call
/// created it, `false` when the key existed (left as it was).
pub async fn create_if_absent(
    store: &DynStore,
    path: &Path,
    bytes: impl Into<PutPayload>,
) -> Result<bool> {
    match store
        .put_opts(path, bytes.into(), PutOptions::from(PutMode::Create))
        .await
    {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Parses, builds and probes a database root.
pub async fn open(url: &str, ids: &dyn IdSource) -> Result<DynStore> {
    let parsed = StoreUrl::parse(url)?;
    let store = parsed.build()?;
    probe_conditional_create(&store, &parsed.to_string(), ids).await?;
    Ok(store)
}

/// Creates a probe key twice: the second create must fail, or the store is refused.
pub async fn probe_conditional_create(
    store: &DynStore,
    url: &str,
    ids: &dyn IdSource,
) -> Result<()> {
    let probe = Path::from(format!("_probe/{}", ids.new_id()));
    let create = PutOptions::from(PutMode::Create);
    store
        .put_opts(&probe, PutPayload::from_static(b"1"), create.clone())
        .await
        .map_err(|e| match e {
            object_store::Error::NotImplemented { .. } => Error::UnsafeStore {
                url: url.to_string(),
                probe: probe.to_string(),
            },
            other => Error::Store(other),
        })?;
    let second = store
        .put_opts(&probe, PutPayload::from_static(b"2"), create)
        .await;
    // Best effort: the probe key is garbage either way.
    let _ = store.delete(&probe).await;
    match second {
        Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
        Ok(_) => Err(Error::UnsafeStore {
            url: url.to_string(),
            probe: probe.to_string(),
        }),
        Err(other) => Err(Error::Store(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(StoreUrl::parse("memory://").unwrap(), StoreUrl::Memory);
        assert_eq!(
            StoreUrl::parse("s3://bucket/a/b/").unwrap(),
            StoreUrl::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            StoreUrl::parse("file:///tmp/x").unwrap(),
            StoreUrl::Local("/tmp/x".into())
        );
        let rel = StoreUrl::parse("./data").unwrap();
        assert!(matches!(rel, StoreUrl::Local(p) if p.is_absolute() && p.ends_with("data")));
        for bad in ["", "s3://", "ftp://x/y", "file://relative"] {
            assert!(StoreUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback_http("http://127.0.0.1:9000"));
        assert!(is_loopback_http("http://localhost:9000"));
        assert!(is_loopback_http("http://[::1]:9000"));
        assert!(!is_loopback_http("http://10.0.0.1:9000"));
        assert!(!is_loopback_http("https://127.0.0.1:9000"));
    }

    /// A store that ignores create-if-absent, like some S3 clones do.
    #[derive(Debug)]
    struct IgnoresConditions(InMemory);

    impl std::fmt::Display for IgnoresConditions {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("IgnoresConditions")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for IgnoresConditions {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            _opts: PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            self.0.put(location, payload).await
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.0.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &Path,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.0.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
            self.0.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
        {
            self.0.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<object_store::ListResult> {
            self.0.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.0.copy_opts(from, to, options).await
        }
    }

    #[tokio::test]
    async fn refuses_store_that_ignores_conditions() {
        let store: DynStore = Arc::new(IgnoresConditions(InMemory::new()));
        let err = probe_conditional_create(&store, "test://", &crate::clock::UuidV7Ids)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::UnsafeStore { .. }), "{err}");
    }

    #[tokio::test]
    async fn accepts_memory_and_local() {
        let ids = crate::clock::UuidV7Ids;
        open("memory://", &ids).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path().to_str().unwrap(), &ids).await.unwrap();
        // The probe leaves nothing behind.
        use futures::TryStreamExt;
        let left: Vec<_> = store.list(None).try_collect().await.unwrap();
        assert!(left.is_empty(), "{left:?}");
    }
}
