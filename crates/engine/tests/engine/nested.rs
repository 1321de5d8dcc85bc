//! Nested item operations in the log (entry format 2): an append, an item patch and an
//! item removal are logged as themselves, not as the whole record, and replay, `as_of`
//! and `rebuild` give what whole documents gave.

use std::collections::BTreeMap;
use std::sync::Arc;

use bucketbase_engine::collection::Definition;
use bucketbase_engine::collection::audit;
use bucketbase_engine::collection::ops::NestedPath;
use bucketbase_engine::log::read_entry;
use bucketbase_engine::{Database, DbOptions, Error, ManualClock, Seq, State, StoreUrl};
use serde_json::{Value, json};

use crate::support::{coll, meta};

pub(crate) const WORKFLOWS: &str = r#"
name = "workflows"
soft_delete = true
[schema]
type = "object"
properties.name = { type = "string" }
[nested.executions]
schema = { type = "object", properties = { status = { type = "string" } } }
"#;

pub(crate) fn options() -> DbOptions {
    DbOptions {
        materialize: false,
        checkpoint_every: 0,
        ..DbOptions::default()
    }
}

pub(crate) async fn open(store: &bucketbase_engine::DynStore) -> Database {
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
    assert_eq!(entry.body.v, bucketbase_engine::log::ENTRY_FORMAT);
    let op = &entry.body.txns[0].ops[0];
    assert_eq!(serde_json::to_value(op.op).unwrap(), "append");
    assert!(op.doc.is_none());
    let record = db.snapshot().get(&wf, &id).unwrap().value();
    let executions = record["executions"].as_array().unwrap();
    assert_eq!(executions.len(), 10_001);
    assert_eq!(executions[10_000], committed.value);
    assert_eq!(record["updated_at"], committed.value["created_at"]);

    // A change of the record's own fields does not log its items (a `set`).
    let renamed = db
        .transact(&meta(), |tx| {
            tx.update(&wf, &id, &json!({"name": "renamed"}), None)
        })
        .await
        .unwrap();
    let bytes = entry_bytes(&db, renamed.seq).await;
    assert!(
        bytes.len() < 2048,
        "a rename took {} bytes of log",
        bytes.len()
    );
    let record = db.snapshot().get(&wf, &id).unwrap().value();
    assert_eq!(record["executions"].as_array().unwrap().len(), 10_001);
    assert_eq!(record["name"], "renamed");

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

const PIPELINES: &str = r#"
name = "pipelines"
[schema]
type = "object"
properties.name = { type = "string" }
[nested.executions]
max_items = 3
schema = { type = "object", properties = { status = { type = "string" } } }
[nested.executions.nested.logs]
max_age = "1h"
schema = { type = "object", required = ["line"], properties = { line = { type = "string" } } }
"#;

async fn pipelines(store: &bucketbase_engine::DynStore, clock: Arc<ManualClock>) -> Database {
    let opts = DbOptions { clock, ..options() };
    let db = Database::open(store.clone(), opts).await.unwrap();
    if db.snapshot().definition(&coll("pipelines")).is_none() {
        let def = Definition::from_toml(PIPELINES).unwrap();
        db.define_all(&meta(), &[def]).await.unwrap();
    }
    db
}

fn path(segments: &[&str]) -> NestedPath {
    NestedPath::parse(segments.iter().map(|s| s.to_string()).collect()).unwrap()
}

pub(crate) fn ids(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

async fn events_of(db: &Database, id: &str) -> Vec<Value> {
    let filter = audit::AuditFilter {
        record_id: Some(id.to_string()),
        limit: 1000,
        ..Default::default()
    };
    audit::query(db.store(), db.snapshot().seq(), &filter)
        .await
        .unwrap()
}

#[tokio::test]
async fn items_hold_their_own_arrays_changed_by_item_operations() {
    let store = StoreUrl::Memory.build().unwrap();
    let clock = Arc::new(ManualClock::new("2026-03-01T08:00:00Z".parse().unwrap()));
    let db = pipelines(&store, clock).await;
    let p = coll("pipelines");
    let (id, _) = db
        .transact(&meta(), |tx| {
            tx.create(
                &p,
                json!({"name": "p", "executions": [{"status": "old", "logs": [{"line": "x"}]}]}),
            )
        })
        .await
        .unwrap()
        .value;
    let mut seen = vec![(
        db.snapshot().seq(),
        db.snapshot().get(&p, &id).unwrap().value(),
    )];
    let record = |db: &Database| db.snapshot().get(&p, &id).unwrap().value();
    let created = record(&db)["executions"][0].clone();
    assert!(created["logs"][0]["id"].is_string(), "{created}");
    let ex = db
        .transact(&meta(), |tx| {
            tx.nested_append_at(
                &p,
                &id,
                &path(&["executions"]),
                json!({"status": "running"}),
            )
        })
        .await
        .unwrap()
        .value;
    let ex_id = ex["id"].as_str().unwrap().to_string();
    seen.push((db.snapshot().seq(), record(&db)));
    let logs = path(&["executions", &ex_id, "logs"]);
    let mut log_ids = Vec::new();
    for line in ["one", "two", "three"] {
        let committed = db
            .transact(&meta(), |tx| {
                tx.nested_append_at(&p, &id, &logs, json!({"line": line}))
            })
            .await
            .unwrap();
        log_ids.push(committed.value["id"].as_str().unwrap().to_string());
        let bytes = entry_bytes(&db, committed.seq).await;
        assert!(bytes.len() < 2048, "{} bytes", bytes.len());
        seen.push((db.snapshot().seq(), record(&db)));
    }
    let log = |i: usize| path(&["executions", &ex_id, "logs", &log_ids[i]]);
    let patched = db
        .transact(&meta(), |tx| {
            tx.nested_patch_at(&p, &id, &log(1), &json!({"line": "TWO"}))
        })
        .await
        .unwrap();
    seen.push((patched.seq, record(&db)));
    let removed = db
        .transact(&meta(), |tx| tx.nested_remove_at(&p, &id, &log(0)))
        .await
        .unwrap();
    seen.push((removed.seq, record(&db)));
    // The execution's own fields change; its logs stay, and are not logged again.
    let ex_path = path(&["executions", &ex_id]);
    let done = db
        .transact(&meta(), |tx| {
            tx.nested_patch_at(&p, &id, &ex_path, &json!({"status": "done"}))
        })
        .await
        .unwrap();
    let entry = read_entry(db.store(), done.seq).await.unwrap().unwrap();
    assert!(
        entry.body.txns[0].ops[0]
            .item
            .as_ref()
            .unwrap()
            .get()
            .find("three")
            .is_none()
    );
    seen.push((done.seq, record(&db)));
    let now = record(&db);
    let execution = &now["executions"][1];
    assert_eq!(execution["status"], "done");
    assert_eq!(
        ids(&execution["logs"]),
        [log_ids[1].clone(), log_ids[2].clone()]
    );
    assert_eq!(execution["logs"][0]["line"], "TWO");
    let read = db
        .transact(&meta(), |tx| tx.nested_item(&p, &id, &log(2)))
        .await
        .unwrap()
        .value;
    assert_eq!(read["line"], "three");

    // Refused: a patch of the logs through the execution, an append under a missing
    // execution, an invalid log.
    let err = db
        .transact(&meta(), |tx| {
            tx.nested_patch_at(&p, &id, &ex_path, &json!({"logs": []}))
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "validation_failed", "{err}");
    let missing = path(&["executions", "nope", "logs"]);
    let err = db
        .transact(&meta(), |tx| {
            tx.nested_append_at(&p, &id, &missing, json!({"line": "l"}))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = db
        .transact(&meta(), |tx| {
            tx.nested_append_at(&p, &id, &logs, json!({"line": 1}))
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "validation_failed", "{err}");

    // Audit events name the item under its execution.
    let events = events_of(&db, id.as_str()).await;
    let removal = events
        .iter()
        .find(|e| e["seq"] == removed.seq.get())
        .unwrap();
    assert_eq!(
        removal["changes"],
        json!({"executions": {"added": [], "removed": [], "changed": {ex_id.clone(): {
            "logs": {"added": [], "removed": [log_ids[0].clone()], "changed": {}}}}}})
    );
    let patch = events
        .iter()
        .find(|e| e["seq"] == patched.seq.get())
        .unwrap();
    assert_eq!(
        patch["changes"]["executions"]["changed"][&ex_id]["logs"]["changed"][&log_ids[1]],
        json!({"line": {"from": "two", "to": "TWO"}})
    );

    for (seq, doc) in &seen {
        let got = audit::as_of(db.store(), &p, &id, *seq).await.unwrap();
        assert_eq!(got.map(|(_, d)| d).as_ref(), Some(doc), "as_of {seq}");
    }
    let expected = dump(&db.snapshot());
    db.close().await;
    let clock = Arc::new(ManualClock::new("2026-03-01T08:00:00Z".parse().unwrap()));
    let replayed = pipelines(&store, clock).await;
    assert_eq!(dump(&replayed.snapshot()), expected);
    replayed.close().await;
}

#[tokio::test]
async fn retention_prunes_the_oldest_items_in_the_same_commit() {
    let store = StoreUrl::Memory.build().unwrap();
    let clock = Arc::new(ManualClock::new("2026-03-01T08:00:00Z".parse().unwrap()));
    let db = pipelines(&store, clock.clone()).await;
    let p = coll("pipelines");
    // A create past max_items keeps the newest.
    let (id, created) = db
        .transact(&meta(), |tx| {
            let five: Vec<Value> = (0..5).map(|i| json!({"status": format!("s{i}")})).collect();
            tx.create(&p, json!({"name": "p", "executions": five}))
        })
        .await
        .unwrap()
        .value;
    assert_eq!(created["executions"].as_array().unwrap().len(), 3);
    assert_eq!(created["executions"][0]["status"], "s2");
    let before = ids(&record_of(&db, &p, &id)["executions"]);
    // max_items: one more execution prunes the oldest, in the append's own commit.
    let appended = db
        .transact(&meta(), |tx| {
            tx.nested_append_at(&p, &id, &path(&["executions"]), json!({"status": "new"}))
        })
        .await
        .unwrap();
    let now = record_of(&db, &p, &id);
    let after = ids(&now["executions"]);
    assert_eq!(after[..2], before[1..]);
    assert_eq!(now["executions"][2]["status"], "new");
    assert_eq!(
        now["_version"],
        json!(null),
        "stored records carry no _version field"
    );
    let entry = read_entry(db.store(), appended.seq).await.unwrap().unwrap();
    let kinds: Vec<Value> = entry.body.txns[0]
        .ops
        .iter()
        .map(|o| serde_json::to_value(o.op).unwrap())
        .collect();
    assert_eq!(kinds, [json!("append"), json!("trim")]);
    let events = events_of(&db, id.as_str()).await;
    let retention: Vec<&Value> = events
        .iter()
        .filter(|e| e["source"] == "retention")
        .collect();
    assert_eq!(retention.len(), 1);
    assert_eq!(retention[0]["seq"], appended.seq.get());
    assert_eq!(retention[0]["actor"], "system");
    assert_eq!(
        retention[0]["changes"],
        json!({"executions": {"added": [], "removed": [before[0].clone()], "changed": {}}})
    );

    // max_age: logs older than an hour go when the next log is appended.
    let ex = after[2].clone();
    let logs = path(&["executions", &ex, "logs"]);
    for line in ["a", "b"] {
        db.transact(&meta(), |tx| {
            tx.nested_append_at(&p, &id, &logs, json!({"line": line}))
        })
        .await
        .unwrap();
        clock.advance(chrono::TimeDelta::minutes(40));
    }
    // Now "a" is 80 minutes old, "b" 40: the next append prunes "a" only.
    db.transact(&meta(), |tx| {
        tx.nested_append_at(&p, &id, &logs, json!({"line": "c"}))
    })
    .await
    .unwrap();
    let lines: Vec<String> = record_of(&db, &p, &id)["executions"][2]["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(lines, ["b", "c"]);

    let expected = dump(&db.snapshot());
    db.close().await;
    let replayed = pipelines(&store, clock).await;
    assert_eq!(dump(&replayed.snapshot()), expected);
    replayed.close().await;
}

fn record_of(
    db: &Database,
    c: &bucketbase_engine::CollectionName,
    id: &bucketbase_engine::RecordId,
) -> Value {
    db.snapshot().get(c, id).unwrap().value()
}
