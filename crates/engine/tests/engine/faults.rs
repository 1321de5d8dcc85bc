//! The commit protocol under injected faults: failed, slow and ambiguous log writes and
//! failed reads. The same invariants as without faults must hold.

use std::sync::Arc;
use std::time::Duration;

use bucketbase_engine::store::fault::{Fault, FaultRule, FaultStore, OpKind};
use bucketbase_engine::{Database, DynStore};

use crate::concurrency::*;
use crate::support::*;

fn faulty(inner: &DynStore, seed: u64) -> Arc<FaultStore> {
    Arc::new(
        FaultStore::new(inner.clone(), seed)
            .with_rule(
                FaultRule::ambiguous_success(OpKind::PutCreate)
                    .with_prefix("_log/")
                    .with_probability(0.08),
            )
            .with_rule(
                FaultRule::ambiguous_failure(OpKind::PutCreate)
                    .with_prefix("_log/")
                    .with_probability(0.08),
            )
            .with_rule(
                FaultRule::fail(OpKind::PutCreate)
                    .with_prefix("_log/")
                    .with_probability(0.04),
            )
            .with_rule(
                FaultRule::fail(OpKind::Get)
                    .with_prefix("_log/")
                    .with_probability(0.05),
            )
            .with_rule(
                FaultRule::new(OpKind::PutCreate, Fault::Delay(Duration::from_millis(3)))
                    .with_probability(0.1),
            )
            .with_rule(FaultRule::fail(OpKind::Put).with_probability(0.05)),
    )
}

async fn faulty_handles(b: &Backend, seeds: &[u64]) -> (Vec<Arc<Database>>, Vec<Arc<FaultStore>>) {
    let mut handles = Vec::new();
    let mut stores = Vec::new();
    for seed in seeds {
        let store = faulty(&b.store, *seed);
        let dyn_store: DynStore = store.clone();
        // Faults start once the handle is open.
        store.set_enabled(false);
        // Small batches: more log writes, so more of them meet a fault.
        let opts = bucketbase_engine::DbOptions {
            max_batch: 4,
            ..options()
        };
        handles.push(Arc::new(Database::open(dyn_store, opts).await.unwrap()));
        store.set_enabled(true);
        stores.push(store);
    }
    (handles, stores)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn set_holds_under_faults() {
    for b in [Backend::memory(), Backend::local()] {
        let (handles, stores) = faulty_handles(&b, &[1, 2]).await;
        let outcome = set_workload(&handles, 64, 10, "f").await;
        let injected: u64 = stores.iter().map(|s| s.stats().injected()).sum();
        let ambiguous: u64 = handles
            .iter()
            .map(|h| h.metrics().snapshot().ambiguous_writes)
            .sum();
        assert!(
            injected > 50,
            "{}: faults were injected ({injected})",
            b.name
        );
        assert!(ambiguous > 0, "{}: some log writes were ambiguous", b.name);
        for h in handles {
            Arc::into_inner(h).unwrap().close().await;
        }
        check_set(&b, &outcome).await;
        // With a 30 s settle window every outcome gets settled.
        assert!(
            outcome.unknown.is_empty(),
            "{}: {:?}",
            b.name,
            outcome.unknown
        );
        assert_eq!(outcome.acked.len(), 640, "{}", b.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_holds_under_faults() {
    for b in [Backend::memory(), Backend::local()] {
        let (handles, stores) = faulty_handles(&b, &[7, 8]).await;
        open_accounts(&handles[0]).await;
        while handles[1].catch_up().await.is_err() {}
        let acked = bank_workload(&handles, 64, 8).await;
        assert!(stores.iter().map(|s| s.stats().injected()).sum::<u64>() > 20);
        for h in handles {
            Arc::into_inner(h).unwrap().close().await;
        }
        check_bank(&b, acked).await;
    }
}

#[tokio::test]
async fn an_unreachable_log_reports_unknown_not_failure() {
    let b = Backend::memory();
    let store = Arc::new(
        FaultStore::new(b.store.clone(), 3)
            .with_rule(FaultRule::ambiguous_success(OpKind::PutCreate).with_prefix("_log/"))
            .with_rule(FaultRule::fail(OpKind::Get).with_prefix("_log/")),
    );
    let dyn_store: DynStore = store.clone();
    let opts = bucketbase_engine::DbOptions {
        settle_timeout: Duration::from_millis(200),
        ..options()
    };
    store.set_enabled(false);
    let db = Database::open(dyn_store, opts).await.unwrap();
    store.set_enabled(true);
    let (c, id) = (coll("things"), rid("x"));
    let err = db
        .transact(&meta(), |tx| tx.put(&c, &id, &serde_json::json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, bucketbase_engine::Error::OutcomeUnknown { .. }),
        "{err}"
    );
    // It did land (AmbiguousSuccess): once the store heals, the handle finds it.
    store.set_enabled(false);
    let (c2, id2) = (coll("things"), rid("y"));
    let seq = db
        .transact(&meta(), |tx| tx.put(&c2, &id2, &serde_json::json!({})))
        .await
        .unwrap()
        .seq;
    assert_eq!(seq.get(), 2, "the unknown entry took position 1");
    assert!(db.snapshot().get(&c, &id).is_some());
    db.close().await;
}
