//! Test fixtures: store backends, database handles, small helpers.

use std::sync::atomic::{AtomicU64, Ordering};

use bucketbase_engine::{
    CollectionName, Database, DbOptions, DynStore, RecordId, StoreUrl, TxnMeta,
};
use serde_json::{Value, json};

/// One store root for one test.
pub struct Backend {
    pub name: &'static str,
    pub url: String,
    pub store: DynStore,
    /// Keeps a local root alive for the test's duration.
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    pub fn memory() -> Backend {
        Backend {
            name: "memory",
            url: "memory://".into(),
            store: StoreUrl::Memory.build().unwrap(),
            _dir: None,
        }
    }

    pub fn local() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().to_str().unwrap().to_string();
        Backend {
            name: "local",
            store: StoreUrl::parse(&url).unwrap().build().unwrap(),
            url,
            _dir: Some(dir),
        }
    }

    /// The S3 API servers the test script started: moto (`BUCKETBASE_TEST_S3_BUCKET` at
    /// `AWS_ENDPOINT_URL`) and SeaweedFS (`BUCKETBASE_TEST_SEAWEEDFS_BUCKET` at
    /// `BUCKETBASE_TEST_SEAWEEDFS_ENDPOINT`). Under `CI=true` a missing one is an error,
    /// never a silent skip.
    pub fn s3_servers() -> Vec<Backend> {
        let servers = [
            ("s3-moto", "BUCKETBASE_TEST_S3_BUCKET", "AWS_ENDPOINT_URL"),
            (
                "s3-seaweedfs",
                "BUCKETBASE_TEST_SEAWEEDFS_BUCKET",
                "BUCKETBASE_TEST_SEAWEEDFS_ENDPOINT",
            ),
        ];
        servers
            .into_iter()
            .filter_map(|(name, bucket, endpoint)| {
                let (Ok(bucket), Ok(endpoint)) = (std::env::var(bucket), std::env::var(endpoint))
                else {
                    assert!(
                        std::env::var("CI").as_deref() != Ok("true"),
                        "CI=true but {bucket} is unset: run the tests with scripts/test"
                    );
                    eprintln!("note: no {name} test server (run scripts/test); skipped");
                    return None;
                };
                Some(Backend::s3_at(name, &bucket, &endpoint))
            })
            .collect()
    }

    fn s3_at(name: &'static str, bucket: &str, endpoint: &str) -> Backend {
        static N: AtomicU64 = AtomicU64::new(0);
        let prefix = format!(
            "t{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            rand_suffix()
        );
        Backend {
            name,
            store: bucketbase_engine::store::s3_store(bucket, &prefix, Some(endpoint)).unwrap(),
            url: format!("s3://{bucket}/{prefix}"),
            _dir: None,
        }
    }

    /// Every object of the store (log, checkpoints, view) as text, concatenated: what a
    /// secret must never be found in.
    pub async fn all_text(&self) -> String {
        use futures::TryStreamExt;
        use object_store::ObjectStoreExt;
        let paths: Vec<_> = self
            .store
            .list(None)
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .unwrap();
        let mut out = String::new();
        for p in paths {
            let bytes = self.store.get(&p).await.unwrap().bytes().await.unwrap();
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
        out
    }

    pub fn is_s3(&self) -> bool {
        self.name.starts_with("s3")
    }

    pub async fn open(&self) -> Database {
        self.open_with(options()).await
    }

    pub async fn open_with(&self, opts: DbOptions) -> Database {
        bucketbase_engine::store::probe_conditional_create(
            &self.store,
            &self.url,
            opts.ids.as_ref(),
        )
        .await
        .unwrap();
        if self.name == "local" {
            // As the server opens it: the view through its own, non-fsyncing handle.
            return Database::open_url(&self.url, opts).await.unwrap();
        }
        Database::open(self.store.clone(), opts).await.unwrap()
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0u8)
}

/// Every backend available to this run.
pub fn backends() -> Vec<Backend> {
    let mut all = vec![Backend::memory(), Backend::local()];
    all.extend(Backend::s3_servers());
    all
}

/// Options for tests: no debounce, so views settle fast.
pub fn options() -> DbOptions {
    DbOptions {
        view_debounce: std::time::Duration::ZERO,
        ..DbOptions::default()
    }
}

pub fn coll(name: &str) -> CollectionName {
    CollectionName::parse(name).unwrap()
}

pub fn rid(id: impl AsRef<str>) -> RecordId {
    RecordId::parse(id.as_ref()).unwrap()
}

pub fn meta() -> TxnMeta {
    TxnMeta::new("tester", "test")
}

/// Puts one document in its own transaction.
pub async fn put(db: &Database, c: &str, id: &str, doc: Value) -> bucketbase_engine::Seq {
    let (c, id) = (coll(c), rid(id));
    db.transact(&meta(), |tx| tx.put(&c, &id, &doc))
        .await
        .unwrap()
        .seq
}

/// Reads a document from the handle's snapshot.
pub fn get(db: &Database, c: &str, id: &str) -> Option<Value> {
    db.snapshot().get(&coll(c), &rid(id)).map(|d| d.value())
}

pub fn doc(n: u64) -> Value {
    json!({"n": n, "name": format!("item {n}")})
}
