//! The audit trail: complete, queryable, and readable as of a past position; hooks.

use std::sync::Arc;

use bucketbase_engine::collection::audit::{self, AuditFilter};
use bucketbase_engine::collection::{Change, Hook};
use bucketbase_engine::{Database, DbOptions, Error, ManualClock, Seq, Txn, TxnMeta};
use serde_json::{Value, json};

use crate::fixtures::*;
use crate::support::*;

async fn events(db: &Database, filter: AuditFilter) -> Vec<Value> {
    audit::query(db.store(), db.snapshot().seq(), &filter)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_write_path_is_audited_and_queryable() {
    let clock = Arc::new(ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap()));
    let db = Backend::memory()
        .open_with(DbOptions {
            clock: clock.clone(),
            ..options()
        })
        .await;
    rentals(&db).await;
    let c = coll("properties");
    let alice = TxnMeta::new("alice", "api").with_request_id("req-1");
    let created = db
        .transact(&alice, |tx| {
            tx.create(&c, json!({"name": "Loft", "city": "Nice"}))
                .map(|(_, record)| record)
        })
        .await
        .unwrap();
    let id = rid(created.value["id"].as_str().unwrap());
    clock.advance(chrono::TimeDelta::hours(1));
    let bob = TxnMeta::new("bob", "import:42");
    db.transact(&bob, |tx| {
        tx.update(&c, &id, &json!({"city": "Lyon"}), None)
    })
    .await
    .unwrap();
    clock.advance(chrono::TimeDelta::hours(1));
    db.transact(&alice, |tx| tx.delete(&c, &id, None))
        .await
        .unwrap();
    db.transact(&alice, |tx| tx.restore(&c, &id, None))
        .await
        .unwrap();
    db.transact(&alice, |tx| tx.purge(&c, &id, None))
        .await
        .unwrap();

    let all = events(
        &db,
        AuditFilter {
            record_id: Some(id.to_string()),
            ..Default::default()
        },
    )
    .await;
    let actions: Vec<&str> = all.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        ["purge", "restore", "delete", "update", "create"],
        "newest first"
    );
    let update = &all[3];
    assert_eq!(
        update["changes"],
        json!({"city": {"from": "Nice", "to": "Lyon"}})
    );
    assert_eq!(
        (update["actor"].as_str(), update["source"].as_str()),
        (Some("bob"), Some("import:42"))
    );
    assert_eq!(all[4]["request_id"], "req-1");
    assert!(all.iter().all(|e| e["seq"].as_u64().is_some()));

    let by_actor = events(
        &db,
        AuditFilter {
            actor: Some("bob".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_actor.len(), 1);
    let imports = events(
        &db,
        AuditFilter {
            source: Some("import:".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(imports.len(), 1, "source prefix");
    let first_hour = events(
        &db,
        AuditFilter {
            collection: Some("properties".into()),
            from: Some("2026-01-01T00:00:00Z".parse().unwrap()),
            to: Some("2026-01-01T00:59:59Z".parse().unwrap()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(first_hour.len(), 1, "time range");
    assert_eq!(first_hour[0]["action"], "create");
    db.close().await;
}

#[tokio::test]
async fn records_read_as_of_a_past_position() {
    let db = Backend::memory().open().await;
    rentals(&db).await;
    let c = coll("properties");
    let v1 = db
        .transact(&meta(), |tx| {
            tx.create(&c, json!({"name": "Loft"}))
                .map(|(_, record)| record)
        })
        .await
        .unwrap();
    let id = rid(v1.value["id"].as_str().unwrap());
    let v2 = db
        .transact(&meta(), |tx| {
            tx.update(&c, &id, &json!({"name": "Loft 2"}), None)
        })
        .await
        .unwrap();
    put(&db, "other", "x", json!({})).await;
    let at = |seq: Seq| audit::as_of(db.store(), &c, &id, seq);
    assert!(
        at(Seq(v1.seq.get() - 1)).await.unwrap().is_none(),
        "did not exist yet"
    );
    assert_eq!(at(v1.seq).await.unwrap().unwrap().1["name"], "Loft");
    assert_eq!(
        at(Seq(v2.seq.get() + 1)).await.unwrap().unwrap(),
        (v2.seq, get(&db, "properties", id.as_str()).unwrap())
    );
    db.close().await;
}

#[tokio::test]
async fn a_raw_write_beside_audited_ones_is_refused_by_name() {
    let db = Backend::memory().open().await;
    rentals(&db).await;
    let c = coll("properties");
    let err = db
        .transact(&meta(), |tx| {
            tx.create(&c, json!({"name": "Loft", "city": "Nice"}))?;
            tx.put(&c, &rid("sneaky"), &json!({"name": "no audit"}))?;
            tx.create(&c, json!({"name": "Barn", "city": "Arles"}))?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("writes properties/sneaky without an audit event"),
        "{err}"
    );
    db.close().await;
}

#[tokio::test]
async fn raw_writes_to_defined_collections_are_refused() {
    let db = Backend::memory().open().await;
    rentals(&db).await;
    let c = coll("properties");
    let err = db
        .transact(&meta(), |tx| {
            tx.put(&c, &rid("sneaky"), &json!({"name": "no audit"}))
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("without an audit event"), "{err}");
    db.close().await;
}

/// Creates a cleaning task for every new booking, in the same transaction.
#[derive(Debug)]
struct CleaningTasks;

impl Hook for CleaningTasks {
    fn on_changes(&self, tx: &mut Txn, changes: &[Change]) -> bucketbase_engine::Result<()> {
        let tasks = coll("tasks");
        for ch in changes
            .iter()
            .filter(|c| c.collection.as_str() == "bookings")
        {
            if ch.before.is_none()
                && let Some(after) = &ch.after
            {
                let task = json!({"title": "Clean", "property_id": after["property_id"], "booking_id": after["id"]});
                tx.with_source("automation", |tx| tx.create(&tasks, task).map(|_| ()))?;
            }
        }
        Ok(())
    }
}

#[tokio::test]
async fn hooks_add_writes_to_the_same_transaction() {
    let db = Backend::memory()
        .open_with(DbOptions {
            hooks: vec![Arc::new(CleaningTasks)],
            ..options()
        })
        .await;
    rentals(&db).await;
    let props = coll("properties");
    let p = db
        .transact(&meta(), |tx| {
            tx.create(&props, json!({"name": "Loft"}))
                .map(|(_, record)| record)
        })
        .await
        .unwrap()
        .value;
    let bookings = coll("bookings");
    let booking =
        json!({"property_id": p["id"], "check_in": "2026-02-01", "check_out": "2026-02-03"});
    let committed = db
        .transact(&meta(), |tx| {
            tx.create(&bookings, booking.clone())
                .map(|(_, record)| record)
        })
        .await
        .unwrap();
    let entry = bucketbase_engine::log::read_entry(db.store(), committed.seq)
        .await
        .unwrap()
        .unwrap();
    let written: Vec<&str> = entry.body.txns[0]
        .ops
        .iter()
        .map(|o| o.collection.as_str())
        .collect();
    assert_eq!(
        written,
        ["bookings", "tasks"],
        "booking and its task in one transaction"
    );
    let task_events = events(
        &db,
        AuditFilter {
            collection: Some("tasks".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(task_events[0]["source"], "automation");
    assert_eq!(task_events[0]["seq"], committed.seq.get());
    // A hook failure fails the whole transaction.
    let overlapping =
        json!({"property_id": p["id"], "check_in": "2026-02-02", "check_out": "2026-02-04"});
    let err = db
        .transact(&meta(), |tx| {
            tx.create(&bookings, overlapping.clone())
                .map(|(_, record)| record)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "exclusion_violation");
    assert_eq!(
        db.snapshot().collection(&coll("tasks")).unwrap().docs.len(),
        1,
        "no orphan task"
    );
    db.close().await;
    let _: Option<Error> = None;
}
