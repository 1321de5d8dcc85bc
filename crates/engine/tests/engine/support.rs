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

    /// The S3 test server, if the test script started one. Under `CI=true` its absence
    /// is an error, never a silent skip.
    pub fn s3() -> Option<Backend> {
        static N: AtomicU64 = AtomicU64::new(0);
        let Ok(bucket) = std::env::var("BUCKETBASE_TEST_S3_BUCKET") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but BUCKETBASE_TEST_S3_BUCKET is unset: run the tests with scripts/test"
            );
            eprintln!("note: no S3 test server (run scripts/test); S3 backend skipped");
            return None;
        };
        let prefix = format!(
            "t{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            rand_suffix()
        );
        let url = format!("s3://{bucket}/{prefix}");
        Some(Backend {
            name: "s3",
            store: StoreUrl::parse(&url).unwrap().build().unwrap(),
            url,
            _dir: None,
        })
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
    all.extend(Backend::s3());
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
