//! Fault injection for object stores.
//!
//! [`FaultStore`] wraps any `Arc<dyn ObjectStore>` and injects faults into chosen operations.
//! It exists to test the commit protocol against what real object stores do: requests that
//! fail, requests that are slow, and *ambiguous* requests whose outcome the client never
//! learns (a timeout after the store did, or did not, apply the write).
//!
//! Design:
//! - **Rule based.** A [`FaultRule`] names an [`OpKind`], an optional path prefix (a plain
//!   string prefix, e.g. `"_log/"`), a probability and a [`Fault`]. For each operation the
//!   matching rules are tried in insertion order; the first whose coin flip hits applies.
//! - **Seeded.** All coin flips come from one [`StdRng`] seeded with a `u64`: the same seed and
//!   the same order of operations give the same faults, so failing tests replay exactly.
//! - **Adapter.** Works around any store and can be switched off at runtime with
//!   [`FaultStore::set_enabled`], e.g. for verification reads.
//!
//! Injected errors are always [`object_store::Error::Generic`] with store `"FaultStore"` and an
//! [`InjectedFault`] source; real outcomes such as `AlreadyExists` or `NotFound` are never
//! injected. An injected [`Fault::Fail`] models a request the store refused before doing
//! anything (connection refused): [`InjectedFault::is_definite`] says so, and the engine
//! may treat it as "definitely not applied". The two timeouts are ambiguous, like a real
//! timeout or a 5xx after the bytes were sent. `copy`/`rename` match on
//! the destination, lists on their prefix (`""` for none) and are faulted once at call time,
//! multipart uploads are faulted at `complete`, and deletes per location (so `delete_stream`
//! hands locations to the inner store one at a time).

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    Result, UploadPart,
};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The kind of operation a [`FaultRule`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `put_opts` in any mode but [`PutMode::Create`]; multipart `complete`.
    Put,
    /// `put_opts` with [`PutMode::Create`].
    PutCreate,
    /// `get_opts` without `head`, `get_ranges`.
    Get,
    /// `get_opts` with `head: true`.
    Head,
    /// `list`, `list_with_offset`, `list_with_delimiter`.
    List,
    /// Each location passed to `delete_stream`.
    Delete,
    /// `copy_opts` and `rename_opts`.
    Copy,
}

/// What happens to an operation selected by a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Return an error without touching the inner store.
    Fail,
    /// Sleep, then perform the operation normally.
    Delay(Duration),
    /// Perform the operation, discard its result and return a timeout error.
    AmbiguousSuccess,
    /// Return a timeout error without performing the operation.
    AmbiguousFailure,
}

/// Inject `fault` into `op` on paths starting with `path_prefix` (any path if `None`) with
/// probability `probability`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    pub op: OpKind,
    pub path_prefix: Option<String>,
    pub probability: f64,
    pub fault: Fault,
}

impl FaultRule {
    /// A rule injecting `fault` into every `op` (probability 1, any path).
    pub fn new(op: OpKind, fault: Fault) -> Self {
        Self {
            op,
            path_prefix: None,
            probability: 1.0,
            fault,
        }
    }

    /// Always fail `op`.
    pub fn fail(op: OpKind) -> Self {
        Self::new(op, Fault::Fail)
    }

    /// Always delay `op` by `delay`.
    pub fn delay(op: OpKind, delay: Duration) -> Self {
        Self::new(op, Fault::Delay(delay))
    }

    /// Always perform `op`, then report a timeout.
    pub fn ambiguous_success(op: OpKind) -> Self {
        Self::new(op, Fault::AmbiguousSuccess)
    }

    /// Always report a timeout without performing `op`.
    pub fn ambiguous_failure(op: OpKind) -> Self {
        Self::new(op, Fault::AmbiguousFailure)
    }

    /// Restrict the rule to paths starting with `prefix`.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Inject with `probability` instead of always.
    pub fn with_probability(mut self, probability: f64) -> Self {
        self.probability = probability;
        self
    }

    fn matches(&self, op: OpKind, path: &str) -> bool {
        self.op == op
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
    }
}

/// Counters of operations seen (enabled or not) and faults injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    pub ops: u64,
    pub fail: u64,
    pub delay: u64,
    pub ambiguous_success: u64,
    pub ambiguous_failure: u64,
}

impl FaultStats {
    /// Total number of injected faults.
    pub fn injected(&self) -> u64 {
        self.fail + self.delay + self.ambiguous_success + self.ambiguous_failure
    }
}

/// State shared with streams and uploads that outlive the call creating them.
#[derive(Debug)]
struct Shared {
    rng: Mutex<StdRng>,
    enabled: AtomicBool,
    /// ops, fail, delay, ambiguous_success, ambiguous_failure
    counters: [AtomicU64; 5],
}

#[derive(Debug, Clone)]
struct Injector {
    rules: Arc<Vec<FaultRule>>,
    shared: Arc<Shared>,
}

impl Injector {
    fn decide(&self, op: OpKind, path: &str) -> Option<Fault> {
        let counters = &self.shared.counters;
        counters[0].fetch_add(1, Ordering::Relaxed);
        if !self.shared.enabled.load(Ordering::Relaxed) {
            return None;
        }
        let fault = {
            let mut rng = self.shared.rng.lock();
            let mut hits = self.rules.iter().filter(|r| r.matches(op, path));
            hits.find(|r| rng.random::<f64>() < r.probability)?.fault
        };
        let i = match fault {
            Fault::Fail => 1,
            Fault::Delay(_) => 2,
            Fault::AmbiguousSuccess => 3,
            Fault::AmbiguousFailure => 4,
        };
        counters[i].fetch_add(1, Ordering::Relaxed);
        Some(fault)
    }

    /// Decide on a fault for `op` and apply it to the not yet started operation `fut`.
    async fn run<T>(
        &self,
        op: OpKind,
        path: &str,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        apply(self.decide(op, path), op, path.to_string(), fut).await
    }

    /// Fault a list stream once, at call time. Listing has no effect on the store, so
    /// `AmbiguousSuccess` behaves like `AmbiguousFailure` here.
    fn list(
        &self,
        prefix: Option<&Path>,
        inner: BoxStream<'static, Result<ObjectMeta>>,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let path = prefix.map_or("", |p| p.as_ref()).to_string();
        let fault = self.decide(OpKind::List, &path);
        let fut = apply(fault, OpKind::List, path, async { Ok(inner) });
        stream::once(fut).try_flatten().boxed()
    }
}

/// The source of every injected error: which fault, on which operation and path.
#[derive(Debug, Clone, thiserror::Error)]
#[error("injected {} {op:?} {path}", describe(*fault))]
pub struct InjectedFault {
    pub fault: Fault,
    pub op: OpKind,
    pub path: String,
}

impl InjectedFault {
    /// Whether the operation was definitely not performed and the caller knows it (a
    /// refusal), as opposed to a timeout whose outcome the caller cannot know.
    pub fn is_definite(&self) -> bool {
        self.fault == Fault::Fail
    }
}

fn describe(fault: Fault) -> &'static str {
    match fault {
        Fault::Fail => "failure of",
        Fault::Delay(_) => "delay of",
        Fault::AmbiguousFailure => "timeout before performing",
        Fault::AmbiguousSuccess => "timeout after performing",
    }
}

async fn apply<T>(
    fault: Option<Fault>,
    op: OpKind,
    path: String,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    let err = |fault: Fault| object_store::Error::Generic {
        store: "FaultStore",
        source: Box::new(InjectedFault { fault, op, path }),
    };
    match fault {
        None => fut.await,
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            fut.await
        }
        Some(fault @ (Fault::Fail | Fault::AmbiguousFailure)) => Err(err(fault)),
        Some(fault @ Fault::AmbiguousSuccess) => {
            let _discarded = fut.await;
            Err(err(fault))
        }
    }
}

/// An [`ObjectStore`] adapter injecting seeded, rule-based faults; see the module docs.
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    seed: u64,
    injector: Injector,
}

impl FaultStore {
    /// Wrap `inner` with no rules; coin flips come from a generator seeded with `seed`.
    pub fn new(inner: Arc<dyn ObjectStore>, seed: u64) -> Self {
        let shared = Arc::new(Shared {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            enabled: AtomicBool::new(true),
            counters: Default::default(),
        });
        let injector = Injector {
            rules: Arc::default(),
            shared,
        };
        Self {
            inner,
            seed,
            injector,
        }
    }

    /// Add a rule; rules are tried in the order they were added.
    pub fn with_rule(mut self, rule: FaultRule) -> Self {
        Arc::make_mut(&mut self.injector.rules).push(rule);
        self
    }

    /// Turn fault injection on or off at runtime (on initially).
    pub fn set_enabled(&self, enabled: bool) {
        self.injector
            .shared
            .enabled
            .store(enabled, Ordering::Relaxed);
    }

    /// Whether fault injection is on.
    pub fn is_enabled(&self) -> bool {
        self.injector.shared.enabled.load(Ordering::Relaxed)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> FaultStats {
        let c = |i: usize| self.injector.shared.counters[i].load(Ordering::Relaxed);
        let (ops, fail, delay) = (c(0), c(1), c(2));
        let (ambiguous_success, ambiguous_failure) = (c(3), c(4));
        FaultStats {
            ops,
            fail,
            delay,
            ambiguous_success,
            ambiguous_failure,
        }
    }

    /// The wrapped store, for access that bypasses fault injection.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }
}

impl std::fmt::Debug for FaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultStore")
            .field("inner", &self.inner)
            .field("seed", &self.seed)
            .field("rules", &self.injector.rules)
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

impl std::fmt::Display for FaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let op = match opts.mode {
            PutMode::Create => OpKind::PutCreate,
            _ => OpKind::Put,
        };
        let fut = self.inner.put_opts(location, payload, opts);
        self.injector.run(op, location.as_ref(), fut).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        let (injector, path) = (self.injector.clone(), location.clone());
        Ok(Box::new(FaultUpload {
            upload,
            injector,
            path,
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head {
            OpKind::Head
        } else {
            OpKind::Get
        };
        let fut = self.inner.get_opts(location, options);
        self.injector.run(op, location.as_ref(), fut).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let fut = self.inner.get_ranges(location, ranges);
        self.injector.run(OpKind::Get, location.as_ref(), fut).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let (inner, injector) = (Arc::clone(&self.inner), self.injector.clone());
        let delete_one = move |location: Result<Path>| {
            let (inner, injector) = (Arc::clone(&inner), injector.clone());
            async move {
                let path = location?;
                let fut = async { inner.delete(&path).await.map(|()| path.clone()) };
                injector.run(OpKind::Delete, path.as_ref(), fut).await
            }
        };
        locations.then(delete_one).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.injector.list(prefix, self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.injector
            .list(prefix, self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let fut = self.inner.list_with_delimiter(prefix);
        self.injector
            .run(OpKind::List, prefix.map_or("", |p| p.as_ref()), fut)
            .await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let fut = self.inner.copy_opts(from, to, options);
        self.injector.run(OpKind::Copy, to.as_ref(), fut).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let fut = self.inner.rename_opts(from, to, options);
        self.injector.run(OpKind::Copy, to.as_ref(), fut).await
    }
}

/// A multipart upload whose `complete` (when the object appears) is a faultable `Put`.
#[derive(Debug)]
struct FaultUpload {
    upload: Box<dyn MultipartUpload>,
    injector: Injector,
    path: Path,
}

#[async_trait]
impl MultipartUpload for FaultUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.upload.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let fut = self.upload.complete();
        self.injector
            .run(OpKind::Put, self.path.as_ref(), fut)
            .await
    }

    async fn abort(&mut self) -> Result<()> {
        self.upload.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn store(seed: u64, rule: FaultRule) -> (Arc<dyn ObjectStore>, FaultStore) {
        let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        (Arc::clone(&mem), FaultStore::new(mem, seed).with_rule(rule))
    }

    async fn create(s: &dyn ObjectStore, path: &str) -> Result<PutResult> {
        s.put_opts(&Path::from(path), "x".into(), PutMode::Create.into())
            .await
    }

    async fn exists(s: &dyn ObjectStore, path: &str) -> bool {
        match s.head(&Path::from(path)).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn assert_injected(r: Result<impl std::fmt::Debug>, needle: &str) {
        match r {
            Err(object_store::Error::Generic {
                store: "FaultStore",
                source,
            }) => {
                assert!(source.to_string().contains(needle), "{source}")
            }
            other => panic!("expected injected error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn put_create_faults() {
        let cases = [
            (Fault::Fail, "failure of PutCreate _log/1", false),
            (Fault::AmbiguousSuccess, "timeout after performing", true),
            (Fault::AmbiguousFailure, "timeout before performing", false),
        ];
        for (fault, message, exists_after) in cases {
            let (mem, fs) = store(1, FaultRule::new(OpKind::PutCreate, fault));
            assert_injected(create(&fs, "_log/1").await, message);
            assert_eq!(exists(&*mem, "_log/1").await, exists_after, "{fault:?}");
        }
        // An overwriting put is a different OpKind.
        let (_, fs) = store(1, FaultRule::fail(OpKind::PutCreate));
        fs.put(&Path::from("_log/1"), "y".into()).await.unwrap();
    }

    #[tokio::test]
    async fn path_prefix_restricts() {
        let (mem, fs) = store(1, FaultRule::fail(OpKind::PutCreate).with_prefix("_log/"));
        assert_injected(create(&fs, "_log/1").await, "_log/1");
        create(&fs, "data/1").await.unwrap();
        assert!(exists(&*mem, "data/1").await);
        assert_eq!(fs.stats().fail, 1);
    }

    #[tokio::test]
    async fn same_seed_same_faults() {
        async fn run(seed: u64) -> Vec<bool> {
            let (_, fs) = store(seed, FaultRule::fail(OpKind::Put).with_probability(0.5));
            let mut out = Vec::new();
            for i in 0..100 {
                out.push(
                    fs.put(&Path::from(format!("k/{i}")), "x".into())
                        .await
                        .is_err(),
                );
            }
            out
        }
        let a = run(42).await;
        assert_eq!(a, run(42).await);
        assert_ne!(a, run(43).await);
        let n = a.iter().filter(|e| **e).count();
        assert!((20..80).contains(&n), "{n} faults in 100 ops");
    }

    #[tokio::test]
    async fn disable_and_reenable() {
        let (_, fs) = store(1, FaultRule::fail(OpKind::PutCreate));
        fs.set_enabled(false);
        assert!(!fs.is_enabled());
        create(&fs, "a").await.unwrap();
        fs.set_enabled(true);
        assert_injected(create(&fs, "b").await, "failure");
        assert_eq!(
            fs.stats(),
            FaultStats {
                ops: 2,
                fail: 1,
                ..Default::default()
            }
        );
    }

    #[tokio::test]
    async fn stats_and_other_ops() {
        let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let fs = FaultStore::new(Arc::clone(&mem), 7)
            .with_rule(FaultRule::fail(OpKind::Get))
            .with_rule(FaultRule::delay(OpKind::Head, Duration::from_millis(1)))
            .with_rule(FaultRule::ambiguous_success(OpKind::Delete))
            .with_rule(FaultRule::ambiguous_failure(OpKind::List))
            .with_rule(FaultRule::ambiguous_failure(OpKind::Put).with_prefix("mp"));
        let (a, b) = (Path::from("a"), Path::from("b"));
        fs.put(&a, "x".into()).await.unwrap();
        assert_injected(fs.get(&a).await, "failure of Get a");
        assert!(exists(&fs, "a").await);
        assert_injected(
            fs.list(None).try_collect::<Vec<_>>().await,
            "before performing List",
        );
        fs.copy(&a, &b).await.unwrap();
        assert_injected(fs.delete(&b).await, "after performing Delete b");
        assert!(!exists(&*mem, "b").await);
        let mut up = fs.put_multipart(&Path::from("mp/1")).await.unwrap();
        up.put_part("x".into()).await.unwrap();
        assert_injected(up.complete().await, "before performing Put mp/1");
        assert!(!exists(&*mem, "mp/1").await);
        let stats = fs.stats();
        let expected = FaultStats {
            ops: 7,
            fail: 1,
            delay: 1,
            ambiguous_success: 1,
            ambiguous_failure: 2,
        };
        assert_eq!(stats, expected);
        assert_eq!(stats.injected(), 5);
        assert_eq!(fs.to_string(), format!("FaultStore({mem})"));
    }
}
