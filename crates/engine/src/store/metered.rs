//! Counting every object-store operation: [`MeteredStore`] wraps any store and records
//! each call's kind, latency and whether the store failed into [`EngineMetrics`].
//!
//! `Database::open` installs it around whatever store it is given, so the commit log,
//! checkpoints, catch-up reads, the materialized view and audit queries are all counted
//! without any of them knowing. Outcomes the protocol asks about (`NotFound`,
//! `AlreadyExists`, `Precondition`, `NotModified`) are answers, not errors: see
//! [`OpOutcome::of`]. Reads are timed to the start of the body (the store's latency,
//! not the body transfer); lists until the listing ends or is dropped; deletes per
//! location; multipart uploads once, at `complete`.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
    UploadPart,
};

use crate::metrics::{EngineMetrics, OpOutcome, StoreOp};

/// An [`ObjectStore`] adapter that counts into [`EngineMetrics`]; see the module docs.
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
    metrics: Arc<EngineMetrics>,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn ObjectStore>, metrics: Arc<EngineMetrics>) -> Self {
        MeteredStore { inner, metrics }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    async fn timed<T>(&self, op: StoreOp, fut: impl Future<Output = Result<T>>) -> Result<T> {
        timed(&self.metrics, op, fut).await
    }

    fn list_stream(
        &self,
        inner: BoxStream<'static, Result<ObjectMeta>>,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let mut timer = ListTimer {
            metrics: self.metrics.clone(),
            start: Instant::now(),
            outcome: OpOutcome::Ok,
        };
        inner
            .map(move |item| {
                timer.see(&item);
                item
            })
            .boxed()
    }
}

async fn timed<T>(
    metrics: &EngineMetrics,
    op: StoreOp,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    let start = Instant::now();
    let result = fut.await;
    metrics.store_op(op, start.elapsed(), OpOutcome::of(&result));
    result
}

/// Records a listing when its stream is dropped (finished or abandoned).
struct ListTimer {
    metrics: Arc<EngineMetrics>,
    start: Instant,
    outcome: OpOutcome,
}

impl ListTimer {
    fn see<T>(&mut self, item: &Result<T>) {
        if OpOutcome::of(item) == OpOutcome::Error {
            self.outcome = OpOutcome::Error;
        }
    }
}

impl Drop for ListTimer {
    fn drop(&mut self) {
        self.metrics
            .store_op(StoreOp::List, self.start.elapsed(), self.outcome);
    }
}

impl std::fmt::Display for MeteredStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The inner store's name: logs and errors read as before.
        self.inner.fmt(f)
    }
}

#[async_trait]
impl ObjectStore for MeteredStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let op = match opts.mode {
            PutMode::Overwrite => StoreOp::Put,
            PutMode::Create => StoreOp::PutIfAbsent,
            PutMode::Update(_) => StoreOp::PutIfMatch,
        };
        self.timed(op, self.inner.put_opts(location, payload, opts))
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(MeteredUpload {
            upload,
            metrics: self.metrics.clone(),
            start: Instant::now(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head {
            StoreOp::Head
        } else {
            StoreOp::Get
        };
        self.timed(op, self.inner.get_opts(location, options)).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.timed(StoreOp::Get, self.inner.get_ranges(location, ranges))
            .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        // Each location is timed from when the inner store asks for it to its answer,
        // which is per request for stores that delete one at a time and spread over the
        // batch for bulk deletes.
        let metrics = self.metrics.clone();
        let started = Arc::new(parking_lot::Mutex::new(Instant::now()));
        let start_next = started.clone();
        let locations = locations
            .map(move |location| {
                *start_next.lock() = Instant::now();
                location
            })
            .boxed();
        self.inner
            .delete_stream(locations)
            .map(move |result| {
                let elapsed = started.lock().elapsed();
                metrics.store_op(StoreOp::Delete, elapsed, OpOutcome::of(&result));
                result
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.list_stream(self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.list_stream(self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.timed(StoreOp::List, self.inner.list_with_delimiter(prefix))
            .await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.timed(StoreOp::Copy, self.inner.copy_opts(from, to, options))
            .await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.timed(StoreOp::Rename, self.inner.rename_opts(from, to, options))
            .await
    }
}

/// A multipart upload counted once, at `complete`, timed from its start.
#[derive(Debug)]
struct MeteredUpload {
    upload: Box<dyn MultipartUpload>,
    metrics: Arc<EngineMetrics>,
    start: Instant,
}

#[async_trait]
impl MultipartUpload for MeteredUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.upload.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let result = self.upload.complete().await;
        self.metrics.store_op(
            StoreOp::PutMultipart,
            self.start.elapsed(),
            OpOutcome::of(&result),
        );
        result
    }

    async fn abort(&mut self) -> Result<()> {
        self.upload.abort().await
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    use super::*;
    use crate::store::fault::{FaultRule, FaultStore, OpKind};

    fn count(m: &EngineMetrics, op: StoreOp) -> (u64, u64) {
        let s = m.store_ops().into_iter().find(|s| s.op == op).unwrap();
        (s.count, s.errors)
    }

    #[tokio::test]
    async fn counts_every_kind() {
        let metrics = Arc::new(EngineMetrics::default());
        let store = MeteredStore::new(Arc::new(InMemory::new()), metrics.clone());
        let (a, b) = (Path::from("d/a"), Path::from("d/b"));
        store.put(&a, "1".into()).await.unwrap();
        let create = PutOptions::from(PutMode::Create);
        store
            .put_opts(&b, "2".into(), create.clone())
            .await
            .unwrap();
        let taken = store.put_opts(&b, "3".into(), create).await;
        assert!(matches!(
            taken,
            Err(object_store::Error::AlreadyExists { .. })
        ));
        store.get(&a).await.unwrap().bytes().await.unwrap();
        assert!(store.get(&Path::from("nope")).await.is_err());
        store.head(&a).await.unwrap();
        let listed: Vec<_> = store
            .list(Some(&Path::from("d")))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(listed.len(), 2);
        store.list_with_delimiter(None).await.unwrap();
        store.copy(&a, &Path::from("d/c")).await.unwrap();
        store
            .rename(&Path::from("d/c"), &Path::from("d/e"))
            .await
            .unwrap();
        store.delete(&a).await.unwrap();
        let mut upload = store.put_multipart(&Path::from("m")).await.unwrap();
        upload.put_part("x".into()).await.unwrap();
        upload.complete().await.unwrap();

        let m = &metrics;
        assert_eq!(count(m, StoreOp::Put), (1, 0));
        assert_eq!(
            count(m, StoreOp::PutIfAbsent),
            (2, 0),
            "AlreadyExists is an answer"
        );
        assert_eq!(count(m, StoreOp::Get), (2, 0), "NotFound is an answer");
        assert_eq!(count(m, StoreOp::Head), (1, 0));
        assert_eq!(count(m, StoreOp::List), (2, 0));
        assert_eq!(count(m, StoreOp::Copy), (1, 0));
        assert_eq!(count(m, StoreOp::Rename), (1, 0));
        assert_eq!(count(m, StoreOp::Delete), (1, 0));
        assert_eq!(count(m, StoreOp::PutMultipart), (1, 0));
        assert_eq!(count(m, StoreOp::PutIfMatch), (0, 0));
        assert_eq!(store.to_string(), store.inner().to_string());
    }

    #[tokio::test]
    async fn store_failures_are_errors() {
        let metrics = Arc::new(EngineMetrics::default());
        let faulty = FaultStore::new(Arc::new(InMemory::new()), 1)
            .with_rule(FaultRule::fail(OpKind::PutCreate))
            .with_rule(FaultRule::fail(OpKind::List));
        let store = MeteredStore::new(Arc::new(faulty), metrics.clone());
        let create = PutOptions::from(PutMode::Create);
        assert!(
            store
                .put_opts(&Path::from("x"), "1".into(), create)
                .await
                .is_err()
        );
        let listed: Result<Vec<_>> = store.list(None).try_collect().await;
        assert!(listed.is_err());
        assert_eq!(count(&metrics, StoreOp::PutIfAbsent), (1, 1));
        assert_eq!(count(&metrics, StoreOp::List), (1, 1));
    }
}
