//! Nested item operations in the log (entry format 2): an append, an item patch and an
//! item removal are logged as themselves, not as the whole record, and replay, `as_of`
//! and `rebuild` give what whole documents gave.

use std::collections::BTreeMap;

use bucketbase_engine::collection::Definition;
use bucketbase_engine::collection::audit;
use bucketbase_engine::log::read_entry;
use bucketbase_engine::{Database, DbOptions, Error, Seq, State, StoreUrl};
use serde_json::{Value, json};

use crate::support::{coll, meta};

const WORKFLOWS: &str = r#"
name = "workflows"
soft_delete = true
[schema]
type = "object"
properties.name = { type = "string" }
[nested.executions]
schema = { type = "object", properties = { status = { type = "string" } } }
"#;

fn options() -> DbOptions {
    DbOptions {
        materialize: false,
        checkpoint_every: 0,
        ..DbOptions::default()
    }
}

async fn open(store: &bucketbase_engine::DynStore) -> Database {
    let db = Database::open(store.clone(), options()).await.unwrap();
    if db.snapshot().definition(&coll("workflows")).is_none() {
        let def = Definition::from_toml(WORKFLOWS).unwrap();
        db.define_all(&meta(), &[def]).await.unwrap();
    }
    db
}

/// Every document of `state`, by collection and id.
fn dump(state: &State) -> BTreeMap<String, Value> {
    state
        .collections()
        .flat_map(|(c, coll)| {
            coll.docs.iter().map(move |(id, d)| {
                (
                    format!("{c}/{id}"),
                    json!({"v": d.version.get(), "doc": d.value()}),
                )
            })
        })
        .collect()
}

/// The bytes of the log entry at `seq`, as stored.
async fn entry_bytes(db: &Database, seq: Seq) -> Vec<u8> {
    let path = bucketbase_engine::store::log_path(seq);
    use object_store::ObjectStoreExt;
    db.store()
        .get(&path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn an_append_to_a_record_of_ten_thousand_items_logs_only_the_item() {
    let store = StoreUrl::Memory.build().unwrap();
    let db = open(&store).await;
    let wf = coll("workflows");
    let items: Vec<Value> = (0..10_000)
        .map(|i| json!({"status": format!("done {i}")}))
        .collect();
    let (id, _) = db
        .transact(&meta(), |tx| {
            tx.create(&wf, json!({"name": "big", "executions": items}))
        })
        .await
        .unwrap()
        .value;
    let item = json!({"status": "x".repeat(500)});
    let committed = db
        .transact(&meta(), |tx| {
            tx.nested_append(&wf, &id, "executions", item.clone())
        })
        .await
        .unwrap();
    let bytes = entry_bytes(&db, committed.seq).await;
    assert!(
        bytes.len() < 2048,
        "an append took {} bytes of log",
        bytes.len()
    );
    let entry = read_entry(db.store(), committed.seq)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.body.v, 2);
    let op = &entry.body.txns[0].ops[0];
    assert_eq!(serde_json::to_value(op.op).unwrap(), "append");
    assert!(op.doc.is_none());
    let record = db.snapshot().get(&wf, &id).unwrap().value();
    let executions = record["executions"].as_array().unwrap();
    assert_eq!(executions.len(), 10_001);
    assert_eq!(executions[10_000], committed.value);
    assert_eq!(record["updated_at"], committed.value["created_at"]);

    // An item patch and an item removal are logged as themselves too.
    let first = executions[0]["id"].as_str().unwrap().to_string();
    let patched = db
        .transact(&meta(), |tx| {
            tx.nested_patch(&wf, &id, "executions", &first, &json!({"status": "again"}))
        })
        .await
        .unwrap();
    let removed = db
        .transact(&meta(), |tx| {
            tx.nested_remove(&wf, &id, "executions", &first)
        })
        .await
        .unwrap();
    for seq in [patched.seq, removed.seq] {
        let bytes = entry_bytes(&db, seq).await;
        assert!(
            bytes.len() < 2048,
            "an item operation took {} bytes",
            bytes.len()
        );
    }
    db.close().await;
}

/// A mix of record and item operations, some in one transaction; every position's
/// document is kept to compare with `as_of` and with a replay.
#[tokio::test]
async fn item_operations_replay_and_read_as_of_like_whole_documents() {
    let store = StoreUrl::Memory.build().unwrap();
    let db = open(&store).await;
    let wf = coll("workflows");
    let mut seen: Vec<(Seq, Option<Value>)> = Vec::new();
    let (id, _) = db
        .transact(&meta(), |tx| {
            tx.create(&wf, json!({"name": "w", "executions": [{"status": "a"}]}))
        })
        .await
        .unwrap()
        .value;
    let snap = |db: &Database| db.snapshot().get(&wf, &id).map(|d| d.value());
    seen.push((db.snapshot().seq(), snap(&db)));
    let mut ids = Vec::new();
    for s in ["b", "c", "d"] {
        let item = db
            .transact(&meta(), |tx| {
                tx.nested_append(&wf, &id, "executions", json!({"status": s}))
            })
            .await
            .unwrap()
            .value;
        ids.push(item["id"].as_str().unwrap().to_string());
        seen.push((db.snapshot().seq(), snap(&db)));
    }
    // Patch, remove and two appends in one transaction; then the same after a rename.
    db.transact(&meta(), |tx| {
        tx.nested_patch(&wf, &id, "executions", &ids[0], &json!({"status": "B"}))?;
        tx.nested_remove(&wf, &id, "executions", &ids[1])?;
        tx.nested_append(&wf, &id, "executions", json!({"status": "e"}))?;
        tx.nested_append(&wf, &id, "executions", json!({"status": "f"}))
    })
    .await
    .unwrap();
    seen.push((db.snapshot().seq(), snap(&db)));
    db.transact(&meta(), |tx| {
        tx.update(&wf, &id, &json!({"name": "renamed"}), None)?;
        tx.nested_patch(&wf, &id, "executions", &ids[2], &json!({"status": "D"}))?;
        tx.nested_append(&wf, &id, "executions", json!({"status": "g"}))
    })
    .await
    .unwrap();
    seen.push((db.snapshot().seq(), snap(&db)));
    db.transact(&meta(), |tx| tx.delete(&wf, &id, None))
        .await
        .unwrap();
    seen.push((db.snapshot().seq(), snap(&db)));
    // A removed or deleted record refuses item operations.
    let refused = db
        .transact(&meta(), |tx| {
            tx.nested_append(&wf, &id, "executions", json!({"status": "late"}))
        })
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::NotFound { .. }), "{refused}");

    let expected = dump(&db.snapshot());
    let texts: Vec<&str> = seen[4].1.as_ref().unwrap()["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["a", "B", "d", "e", "f"]);

    for (seq, doc) in &seen {
        let got = audit::as_of(db.store(), &wf, &id, *seq).await.unwrap();
        assert_eq!(got.as_ref().map(|(_, d)| d), doc.as_ref(), "as_of {seq}");
        assert_eq!(got.map(|(v, _)| v), Some(*seq), "version as_of {seq}");
    }
    let many = audit::as_of_many(
        db.store(),
        &seen
            .iter()
            .map(|(seq, _)| (wf.clone(), id.clone(), *seq))
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    for ((seq, doc), got) in seen.iter().zip(many) {
        assert_eq!(got.map(|(_, d)| d), *doc, "as_of_many {seq}");
    }
    db.close().await;

    let replayed = open(&store).await;
    assert_eq!(dump(&replayed.snapshot()), expected);
    replayed.close().await;
}
