//! Reverting changesets: state before the changeset comes back, conflicts are refused
//! unless forced, a revert can be reverted, and a dry run writes nothing.

use std::collections::BTreeMap;

use bucketbase_engine::revert::{self, Changeset};
use bucketbase_engine::{Database, Error, RecordId, Seq, TxnMeta};
use serde_json::{Value, json};

use crate::fixtures::rentals;
use crate::support::*;

fn import_meta() -> TxnMeta {
    TxnMeta::new("importer", "import:batch-1")
}

/// The live records of the user collections, without the fields every write touches.
fn live(db: &Database) -> BTreeMap<String, Value> {
    let state = db.snapshot();
    let mut out = BTreeMap::new();
    for (c, coll) in state.collections() {
        if c.is_system() {
            continue;
        }
        for (id, doc) in coll.docs.iter() {
            let mut v = doc.value();
            if !v["deleted_at"].is_null() {
                continue;
            }
            let map = v.as_object_mut().unwrap();
            map.remove("updated_at");
            map.remove("updated_by");
            out.insert(format!("{c}/{id}"), v);
        }
    }
    out
}

fn live_as_of(
    db: &Database,
    at: Seq,
) -> impl std::future::Future<Output = BTreeMap<String, Value>> {
    let state = db.snapshot();
    let store = db.store().clone();
    async move {
        let mut out = BTreeMap::new();
        for (c, coll) in state.collections() {
            if c.is_system() {
                continue;
            }
            for (id, _) in coll.docs.iter() {
                let Some((_, mut v)) =
                    bucketbase_engine::collection::audit::as_of(&store, c, id, at)
                        .await
                        .unwrap()
                else {
                    continue;
                };
                if !v["deleted_at"].is_null() {
                    continue;
                }
                let map = v.as_object_mut().unwrap();
                map.remove("updated_at");
                map.remove("updated_by");
                out.insert(format!("{c}/{id}"), v);
            }
        }
        out
    }
}

async fn create(db: &Database, meta: &TxnMeta, c: &str, body: Value) -> RecordId {
    let c = coll(c);
    db.transact(meta, |tx| tx.create(&c, body.clone()))
        .await
        .unwrap()
        .value
        .0
}

/// Before: two properties, a booking. The import, in two transactions: three bookings
/// created and the old booking's guest changed; a property renamed.
async fn scene(db: &Database) -> (Seq, RecordId, RecordId, RecordId) {
    rentals(db).await;
    let loft = create(db, &meta(), "properties", json!({"name": "Loft"})).await;
    let barn = create(db, &meta(), "properties", json!({"name": "Barn"})).await;
    let old = create(
        db,
        &meta(),
        "bookings",
        json!({"property_id": loft.as_str(), "check_in": "2026-01-01", "check_out": "2026-01-03", "guest": "Ann"}),
    )
    .await;
    let before = db.snapshot().seq();
    let (bookings, props) = (coll("bookings"), coll("properties"));
    let imp = import_meta();
    db.transact(&imp, |tx| {
        for (i, p) in [&loft, &barn, &barn].into_iter().enumerate() {
            let day = 10 + 3 * i;
            tx.create(
                &bookings,
                json!({"property_id": p.as_str(), "check_in": format!("2026-02-{day}"), "check_out": format!("2026-02-{}", day + 2)}),
            )?;
        }
        tx.update(&bookings, &old, &json!({"guest": "Ann Lee"}), None)
    })
    .await
    .unwrap();
    db.transact(&imp, |tx| {
        tx.update(&props, &barn, &json!({"name": "Big Barn"}), None)
    })
    .await
    .unwrap();
    (before, loft, barn, old)
}

#[tokio::test]
async fn a_revert_brings_back_the_state_before_the_changeset_and_can_be_reverted() {
    let db = Backend::memory().open().await;
    let (before, _, _, _) = scene(&db).await;
    let imported = live(&db);
    assert_eq!(imported.len(), 6);

    let plan = revert::prepare(&db, &Changeset::Source("import:batch-1".into()))
        .await
        .unwrap();
    assert_eq!(plan.transactions.len(), 2);
    assert!(plan.conflicts.is_empty());
    let admin = TxnMeta::new("admin", "api");
    let dry = plan.dry_run(&db, &admin, &|_| Ok(())).unwrap();
    assert_eq!(dry.len(), 5, "{dry:?}");
    assert_eq!(live(&db), imported, "a dry run writes nothing");

    let done = plan.apply(&db, &admin, false, &|_| Ok(())).await.unwrap();
    assert_eq!(done.value.len(), 5);
    assert_eq!(live(&db), live_as_of(&db, before).await);
    // Audited as a changeset of its own.
    let events = bucketbase_engine::collection::audit::query(
        db.store(),
        db.snapshot().seq(),
        &bucketbase_engine::collection::audit::AuditFilter {
            source: Some("revert:import:batch-1".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(events.len(), 5);

    let again = revert::prepare(&db, &Changeset::Source("revert:import:batch-1".into()))
        .await
        .unwrap();
    again.apply(&db, &admin, false, &|_| Ok(())).await.unwrap();
    assert_eq!(
        live(&db),
        imported,
        "reverting the revert restores the import"
    );
    db.close().await;
}

#[tokio::test]
async fn later_changes_are_conflicts_refused_unless_forced() {
    let db = Backend::memory().open().await;
    let (before, _, barn, _) = scene(&db).await;
    let props = coll("properties");
    let someone = TxnMeta::new("someone", "api");
    db.transact(&someone, |tx| {
        tx.update(&props, &barn, &json!({"city": "Oslo"}), None)
    })
    .await
    .unwrap();
    let plan = revert::prepare(&db, &Changeset::Source("import:batch-1".into()))
        .await
        .unwrap();
    assert_eq!(plan.conflicts.len(), 1);
    let conflict = &plan.conflicts[0];
    assert_eq!(
        (conflict.collection.as_str(), conflict.record_id.as_str()),
        ("properties", barn.as_str())
    );
    assert_eq!(conflict.actor, "someone");
    assert_eq!(conflict.fields, ["city"]);
    let admin = TxnMeta::new("admin", "api");
    let refused = plan
        .apply(&db, &admin, false, &|_| Ok(()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "revert_conflict");
    plan.apply(&db, &admin, true, &|_| Ok(())).await.unwrap();
    assert_eq!(
        live(&db),
        live_as_of(&db, before).await,
        "forced: the later change goes too"
    );
    db.close().await;
}

#[tokio::test]
async fn a_change_after_the_plan_is_a_conflict_and_a_collision_is_named() {
    let db = Backend::memory().open().await;
    let (_, loft, _, old) = scene(&db).await;
    let plan = revert::prepare(&db, &Changeset::Source("import:batch-1".into()))
        .await
        .unwrap();
    let bookings = coll("bookings");
    db.transact(&meta(), |tx| {
        tx.update(&bookings, &old, &json!({"guest": "Bo"}), None)
    })
    .await
    .unwrap();
    let admin = TxnMeta::new("admin", "api");
    let late = plan
        .apply(&db, &admin, false, &|_| Ok(()))
        .await
        .unwrap_err();
    assert!(
        matches!(late, Error::RevertConflict { records: 1, .. }),
        "{late}"
    );

    // A record deleted by a changeset, whose dates another booking took since: the
    // restore would overlap, and the commit names the booking in the way.
    let gone = revert::prepare(&db, &Changeset::Seq(db.snapshot().seq()))
        .await
        .unwrap();
    assert_eq!(gone.transactions.len(), 1);
    let cancel = TxnMeta::new("someone", "api").with_request_id("req-7");
    db.transact(&cancel, |tx| tx.delete(&bookings, &old, None))
        .await
        .unwrap();
    let taker = create(
        &db,
        &meta(),
        "bookings",
        json!({"property_id": loft.as_str(), "check_in": "2026-01-01", "check_out": "2026-01-02"}),
    )
    .await;
    let undo = revert::prepare(&db, &Changeset::RequestId("req-7".into()))
        .await
        .unwrap();
    assert!(undo.conflicts.is_empty());
    let refused = undo.dry_run(&db, &admin, &|_| Ok(())).unwrap_err();
    assert_eq!(refused.code(), "exclusion_violation");
    let Error::Violation(v) = &refused else {
        panic!("{refused}")
    };
    assert_eq!(v.conflicting.as_deref(), Some(taker.as_str()));
    let refused = undo
        .apply(&db, &admin, false, &|_| Ok(()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "exclusion_violation");
    db.close().await;
}

#[tokio::test]
async fn an_unknown_changeset_is_not_found() {
    let db = Backend::memory().open().await;
    rentals(&db).await;
    let missing = revert::prepare(&db, &Changeset::Source("import:nope".into()))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), "not_found");
    let future = revert::prepare(&db, &Changeset::Seq(Seq(999)))
        .await
        .unwrap_err();
    assert_eq!(future.code(), "bad_request");
    db.close().await;
}
