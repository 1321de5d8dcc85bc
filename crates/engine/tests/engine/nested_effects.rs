//! Nested item operations beside the log: concurrent appends at two levels over two
//! handles, what hooks see of an item operation, and reverting a changeset of them.

use std::sync::Arc;

use bucketbase_engine::collection::Definition;
use bucketbase_engine::collection::ops::NestedPath;
use bucketbase_engine::{Database, DbOptions, StoreUrl};
use serde_json::json;

use crate::fixtures::define;
use crate::nested::{WORKFLOWS, ids, open, options};
use crate::support::{Backend, coll, meta};

const CONCURRENT: &str = r#"
name = "runs"
[nested.executions]
[nested.executions.nested.logs]
"#;

/// 32 writers append executions to one record while 32 append logs to one execution,
/// half through each of two handles on one store: every acknowledged item is there once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_writers_append_at_two_levels_over_two_handles() {
    for b in [Backend::memory(), Backend::local()] {
        let one = Arc::new(b.open().await);
        let two = Arc::new(b.open().await);
        define(&one, &[CONCURRENT]).await;
        let runs = coll("runs");
        let (id, record) = one
            .transact(&meta(), |tx| tx.create(&runs, json!({"executions": [{}]})))
            .await
            .unwrap()
            .value;
        let ex = record["executions"][0]["id"].as_str().unwrap().to_string();
        two.catch_up().await.unwrap();
        let mut writers = Vec::new();
        for w in 0..64 {
            let db = if w % 2 == 0 { one.clone() } else { two.clone() };
            let (runs, id) = (runs.clone(), id.clone());
            let target = if w < 32 {
                NestedPath::array("executions")
            } else {
                NestedPath::array("executions")
                    .then(ex.clone())
                    .then("logs")
            };
            writers.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..8 {
                    let item = db
                        .transact(&meta(), |tx| {
                            tx.nested_append_at(&runs, &id, &target, json!({"w": w, "i": i}))
                        })
                        .await
                        .unwrap()
                        .value;
                    acked.push((w < 32, item["id"].as_str().unwrap().to_string()));
                }
                acked
            }));
        }
        let mut acked = Vec::new();
        for w in writers {
            acked.extend(w.await.unwrap());
        }
        let snap = one
            .read(bucketbase_engine::Consistency::Latest)
            .await
            .unwrap();
        let record = snap.get(&runs, &id).unwrap().value();
        let executions = ids(&record["executions"]);
        let logs = ids(&record["executions"][0]["logs"]);
        for (top, item) in &acked {
            let found = if *top { &executions } else { &logs };
            assert_eq!(
                found.iter().filter(|i| *i == item).count(),
                1,
                "{} {item}",
                b.name
            );
        }
        assert_eq!(
            (executions.len(), logs.len()),
            (1 + 32 * 8, 32 * 8),
            "{}",
            b.name
        );
        for h in [one, two] {
            Arc::into_inner(h).unwrap().close().await;
        }
    }
}

/// Records what hooks are shown.
#[derive(Debug, Default)]
struct Seen(parking_lot::Mutex<Vec<bucketbase_engine::Change>>);

impl bucketbase_engine::Hook for Seen {
    fn on_changes(
        &self,
        _tx: &mut bucketbase_engine::Txn,
        changes: &[bucketbase_engine::Change],
    ) -> bucketbase_engine::Result<()> {
        self.0.lock().extend(changes.iter().cloned());
        Ok(())
    }
}

#[tokio::test]
async fn hooks_see_the_item_and_the_records_own_fields() {
    let store = StoreUrl::Memory.build().unwrap();
    let seen = Arc::new(Seen::default());
    let opts = DbOptions {
        hooks: vec![seen.clone()],
        ..options()
    };
    let db = Database::open(store, opts).await.unwrap();
    db.define_all(&meta(), &[Definition::from_toml(WORKFLOWS).unwrap()])
        .await
        .unwrap();
    let wf = coll("workflows");
    let (id, record) = db
        .transact(&meta(), |tx| {
            tx.create(
                &wf,
                json!({"name": "w", "executions": [{"status": "a"}, {"status": "b"}]}),
            )
        })
        .await
        .unwrap()
        .value;
    let first = record["executions"][0]["id"].as_str().unwrap().to_string();
    seen.0.lock().clear();
    db.transact(&meta(), |tx| {
        tx.nested_patch(&wf, &id, "executions", &first, &json!({"status": "A"}))?;
        tx.nested_remove(&wf, &id, "executions", &first)
    })
    .await
    .unwrap();
    let changes = seen.0.lock().clone();
    assert_eq!(changes.len(), 2);
    for change in &changes {
        for side in [&change.before, &change.after] {
            let side = side.as_ref().unwrap();
            assert_eq!(side["name"], "w");
            assert!(side.get("executions").is_none(), "{side}");
        }
    }
    let patched = changes[0].item.as_ref().unwrap();
    assert_eq!(patched.path, ["executions".to_string(), first.clone()]);
    assert_eq!(patched.item.as_ref().unwrap()["status"], "A");
    let removed = changes[1].item.as_ref().unwrap();
    assert_eq!((removed.path.len(), removed.item.is_none()), (2, true));
    db.close().await;
}

/// A changeset of item operations (an import appending, patching and removing
/// executions) reverts to the record as it was: revert reads prior states through
/// `as_of_many`, which applies item operations as replay does.
#[tokio::test]
async fn a_changeset_of_item_operations_reverts() {
    use bucketbase_engine::TxnMeta;
    use bucketbase_engine::revert::{self, Changeset};
    let store = StoreUrl::Memory.build().unwrap();
    let db = open(&store).await;
    let wf = coll("workflows");
    let (id, record) = db
        .transact(&meta(), |tx| {
            tx.create(
                &wf,
                json!({"name": "w", "executions": [{"status": "a"}, {"status": "b"}]}),
            )
        })
        .await
        .unwrap()
        .value;
    let before = db.snapshot().get(&wf, &id).unwrap().value();
    let (a, b) = (
        record["executions"][0]["id"].as_str().unwrap().to_string(),
        record["executions"][1]["id"].as_str().unwrap().to_string(),
    );
    let import = TxnMeta::new("importer", "import:i1");
    for step in 0..3 {
        db.transact(&import, |tx| match step {
            0 => tx
                .nested_append(&wf, &id, "executions", json!({"status": "c"}))
                .map(|_| ()),
            1 => tx
                .nested_patch(&wf, &id, "executions", &a, &json!({"status": "A"}))
                .map(|_| ()),
            _ => tx.nested_remove(&wf, &id, "executions", &b),
        })
        .await
        .unwrap();
    }
    let plan = revert::prepare(&db, &Changeset::Source("import:i1".into()))
        .await
        .unwrap();
    assert!(plan.conflicts.is_empty());
    let admin = TxnMeta::new("admin", "api");
    plan.apply(&db, &admin, false, &|_| Ok(())).await.unwrap();
    let mut after = db.snapshot().get(&wf, &id).unwrap().value();
    let mut expected = before;
    for doc in [&mut after, &mut expected] {
        let map = doc.as_object_mut().unwrap();
        map.remove("updated_at");
        map.remove("updated_by");
    }
    assert_eq!(after, expected);
    db.close().await;
}
