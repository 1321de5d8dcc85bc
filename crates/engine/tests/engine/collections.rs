//! Records, constraints, soft delete, references, nested arrays, secrets and queries.

use bucketbase_engine::collection::Definition;
use bucketbase_engine::collection::query::{self, Deleted, Query};
use bucketbase_engine::{CollectionName, Database, Error, RecordId, Seq, ViolationCode};
use serde_json::{Value, json};

use crate::fixtures::*;
use crate::support::*;

async fn create(db: &Database, c: &str, body: Value) -> Result<Value, Error> {
    let c = coll(c);
    db.transact(&meta(), |tx| {
        tx.create(&c, body.clone()).map(|(_, record)| record)
    })
    .await
    .map(|r| r.value)
}

fn id_of(v: &Value) -> RecordId {
    rid(v["id"].as_str().unwrap())
}

fn code(e: &Error) -> &'static str {
    e.code().as_str()
}

async fn property(db: &Database, name: &str) -> RecordId {
    id_of(
        &create(db, "properties", json!({"name": name}))
            .await
            .unwrap(),
    )
}

async fn booking(db: &Database, p: &RecordId, from: &str, to: &str) -> Result<Value, Error> {
    create(db, "bookings", json!({"property_id": p.as_str(), "check_in": from, "check_out": to, "status": "confirmed"})).await
}

#[tokio::test]
async fn records_get_metadata_and_versions() {
    let db = Backend::memory().open().await;
    rentals(&db).await;
    let p = create(
        &db,
        "properties",
        json!({"name": "Beach House", "id": "ignored-not", "created_by": "x"}),
    )
    .await
    .unwrap();
    assert_eq!(
        p["id"], "ignored-not",
        "a given id is kept (imports, migrations)"
    );
    assert_eq!(
        p["created_by"], "tester",
        "metadata comes from the transaction"
    );
    assert!(p["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(p["deleted_at"], Value::Null);
    let generated = create(&db, "properties", json!({"name": "Lake"}))
        .await
        .unwrap();
    let id = uuid::Uuid::parse_str(generated["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7, "ids are UUIDv7");
    db.close().await;
}

#[tokio::test]
async fn every_error_code_is_produced() {
    let db = Backend::memory().open().await;
    rentals(&db).await;
    let p = property(&db, "Beach House").await;

    let dup = create(&db, "properties", json!({"name": "Beach House"}))
        .await
        .unwrap_err();
    assert_eq!(code(&dup), "unique_violation");
    let Error::Violation(v) = &dup else { panic!() };
    assert_eq!(
        (v.constraint.as_str(), v.fields.clone()),
        ("property_name", vec!["name".to_string()])
    );
    assert_eq!(
        v.conflicting.as_deref(),
        Some(p.as_str()),
        "names the record in the way"
    );

    let inverted = booking(&db, &p, "2026-05-10", "2026-05-01")
        .await
        .unwrap_err();
    assert_eq!(code(&inverted), "check_violation");
    let Error::Violation(v) = &inverted else {
        panic!()
    };
    assert_eq!(v.constraint, "check_out_after_check_in");

    let first = booking(&db, &p, "2026-05-01", "2026-05-05").await.unwrap();
    let overlap = booking(&db, &p, "2026-05-04", "2026-05-08")
        .await
        .unwrap_err();
    assert_eq!(code(&overlap), "exclusion_violation");
    let Error::Violation(v) = &overlap else {
        panic!()
    };
    assert_eq!(v.constraint, "no_overlapping_stays");
    assert_eq!(v.conflicting.as_deref(), first["id"].as_str());

    let dangling = booking(&db, &rid("no-such-property"), "2026-06-01", "2026-06-02")
        .await
        .unwrap_err();
    assert_eq!(code(&dangling), "reference_violation");

    let invalid = create(&db, "properties", json!({"name": "", "rooms": -1}))
        .await
        .unwrap_err();
    assert_eq!(code(&invalid), "validation_failed");
    let Error::Violation(v) = &invalid else {
        panic!()
    };
    assert_eq!(v.errors.len(), 2, "{:?}", v.errors);
    assert!(v.fields.contains(&"/rooms".to_string()), "{:?}", v.fields);

    let bad_date = booking(&db, &p, "05/01/2026", "2026-06-02")
        .await
        .unwrap_err();
    assert_eq!(
        code(&bad_date),
        "validation_failed",
        "format: date is enforced"
    );

    let c = coll("properties");
    let stale = db
        .transact(&meta(), |tx| {
            tx.update(&c, &p, &json!({"city": "Nice"}), Some(Seq(1)))
        })
        .await
        .unwrap_err();
    assert_eq!(code(&stale), "version_conflict");
    db.close().await;
}

#[tokio::test]
async fn same_day_turnover_and_cancelled_bookings_are_allowed() {
    let db = Backend::memory().open().await;
    rentals(&db).await;
    let p = property(&db, "Loft").await;
    let q = property(&db, "Barn").await;
    booking(&db, &p, "2026-07-01", "2026-07-05").await.unwrap();
    booking(&db, &p, "2026-07-05", "2026-07-09")
        .await
        .expect("same-day turnover");
    booking(&db, &p, "2026-06-25", "2026-07-01")
        .await
        .expect("ends as the next begins");
    booking(&db, &q, "2026-07-02", "2026-07-04")
        .await
        .expect("other property");
    let cancelled = create(&db, "bookings", json!({"property_id": p.as_str(), "check_in": "2026-07-02", "check_out": "2026-07-03", "status": "cancelled"})).await;
    cancelled.expect("cancelled bookings are outside the exclusion");
    db.close().await;
}

#[tokio::test]
async fn unique_with_soft_delete_restore_conflicts() {
    let db = Backend::memory().open().await;
    rentals(&db).await;
    let c = coll("properties");
    let old = property(&db, "Beach House").await;
    db.transact(&meta(), |tx| tx.delete(&c, &old, None))
        .await
        .unwrap();
    let deleted = get(&db, "properties", old.as_str()).unwrap();
    assert!(deleted["deleted_at"].is_string());
    assert_eq!(deleted["deleted_by"], "tester");
    let new = property(&db, "Beach House").await;
    let err = db
        .transact(&meta(), |tx| tx.restore(&c, &old, None))
        .await
        .unwrap_err();
    let Error::Violation(v) = &err else {
        panic!("{err}")
    };
    assert_eq!(v.code, ViolationCode::UniqueViolation);
    assert_eq!(v.conflicting.as_deref(), Some(new.as_str()));
    // Once the new one is renamed, the old one comes back.
    db.transact(&meta(), |tx| {
        tx.update(&c, &new, &json!({"name": "Beach House 2"}), None)
    })
    .await
    .unwrap();
    db.transact(&meta(), |tx| tx.restore(&c, &old, None))
        .await
        .unwrap();
    assert_eq!(
        get(&db, "properties", old.as_str()).unwrap()["deleted_at"],
        Value::Null
    );
    // Purge removes it for good.
    db.transact(&meta(), |tx| tx.purge(&c, &old, None))
        .await
        .unwrap();
    assert!(get(&db, "properties", old.as_str()).is_none());
    db.close().await;
}

#[tokio::test]
async fn references_restrict_cascade_and_set_null() {
    let db = Backend::memory().open().await;
    rentals(&db).await;
    let (props, books, tasks) = (coll("properties"), coll("bookings"), coll("tasks"));
    let p = property(&db, "Loft").await;
    let other = property(&db, "Barn").await;
    let b = id_of(&booking(&db, &p, "2026-07-01", "2026-07-05").await.unwrap());
    // A task's booking must be at the task's property.
    let wrong = create(
        &db,
        "tasks",
        json!({"title": "Clean", "property_id": other.as_str(), "booking_id": b.as_str()}),
    )
    .await
    .unwrap_err();
    let Error::Violation(v) = &wrong else {
        panic!()
    };
    assert_eq!(
        (v.code, v.fields.clone()),
        (
            ViolationCode::ReferenceViolation,
            vec!["property_id".to_string()]
        )
    );
    let t = id_of(
        &create(
            &db,
            "tasks",
            json!({"title": "Clean", "property_id": p.as_str(), "booking_id": b.as_str()}),
        )
        .await
        .unwrap(),
    );

    // tasks.property_id restricts deleting the property.
    let err = db
        .transact(&meta(), |tx| tx.delete(&props, &p, None))
        .await
        .unwrap_err();
    assert_eq!(code(&err), "reference_violation", "{err}");

    // Deleting the booking sets the task's booking_id to null (set_null), audited as cascade.
    db.transact(&meta(), |tx| tx.delete(&books, &b, None))
        .await
        .unwrap();
    let task = get(&db, "tasks", t.as_str()).unwrap();
    assert!(task.get("booking_id").is_none(), "{task}");

    // Without the task, deleting the property cascades to its bookings.
    db.transact(&meta(), |tx| tx.purge(&tasks, &t, None))
        .await
        .unwrap();
    let b2 = id_of(&booking(&db, &p, "2026-08-01", "2026-08-05").await.unwrap());
    db.transact(&meta(), |tx| tx.delete(&props, &p, None))
        .await
        .unwrap();
    assert!(get(&db, "bookings", b2.as_str()).unwrap()["deleted_at"].is_string());
    let events = bucketbase_engine::collection::audit::query(
        db.store(),
        db.snapshot().seq(),
        &bucketbase_engine::collection::audit::AuditFilter {
            source: Some("cascade".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let touched: Vec<&str> = events
        .iter()
        .map(|e| e["record_id"].as_str().unwrap())
        .collect();
    assert!(
        touched.contains(&b2.as_str()) && touched.contains(&t.as_str()),
        "{touched:?}"
    );
    db.close().await;
}

#[tokio::test]
async fn references_that_allow_deleted_records_survive_soft_delete_and_restore() {
    let db = Backend::memory().open().await;
    rentals(&db).await;
    // Tasks keep pointing at a soft-deleted booking; only a purge sets the link null.
    let mut tasks_def = Definition::from_toml(TASKS).unwrap();
    for r in &mut tasks_def.references {
        if r.field == "booking_id" {
            r.allow_deleted = true;
        }
    }
    tasks_def.schema["properties"]["time_of_day"] = json!({"type": "string", "default": "09:00"});
    db.transact(&meta(), |tx| tx.define(&tasks_def))
        .await
        .unwrap();
    let books = coll("bookings");
    let p = property(&db, "Loft").await;
    let b = id_of(&booking(&db, &p, "2026-07-01", "2026-07-05").await.unwrap());
    let t = create(
        &db,
        "tasks",
        json!({"title": "Clean", "property_id": p.as_str(), "booking_id": b.as_str()}),
    )
    .await
    .unwrap();
    assert_eq!(
        t["time_of_day"], "09:00",
        "schema defaults fill missing fields"
    );
    let t = id_of(&t);

    db.transact(&meta(), |tx| tx.delete(&books, &b, None))
        .await
        .unwrap();
    let task = get(&db, "tasks", t.as_str()).unwrap();
    assert_eq!(
        task["booking_id"],
        b.as_str(),
        "soft delete leaves the link"
    );
    // The task can still change while its booking is deleted...
    db.transact(&meta(), |tx| {
        tx.update(
            &coll("tasks"),
            &t,
            &json!({"title": "Cancelled clean"}),
            None,
        )
    })
    .await
    .unwrap();
    // ...but a new task cannot point at a deleted booking that does not exist at all.
    let ghost = create(
        &db,
        "tasks",
        json!({"title": "x", "property_id": p.as_str(), "booking_id": RecordId::parse("0190a0a0-0000-7000-8000-000000000000").unwrap().as_str()}),
    )
    .await
    .unwrap_err();
    assert_eq!(code(&ghost), "reference_violation");
    db.transact(&meta(), |tx| tx.restore(&books, &b, None))
        .await
        .unwrap();
    assert_eq!(
        get(&db, "tasks", t.as_str()).unwrap()["booking_id"],
        b.as_str()
    );

    // Purging the booking applies on_delete (set_null), even from the deleted state.
    db.transact(&meta(), |tx| tx.delete(&books, &b, None))
        .await
        .unwrap();
    db.transact(&meta(), |tx| tx.purge(&books, &b, None))
        .await
        .unwrap();
    assert!(
        get(&db, "tasks", t.as_str())
            .unwrap()
            .get("booking_id")
            .is_none()
    );
    db.close().await;
}

#[tokio::test]
async fn nested_item_operations() {
    let db = Backend::memory().open().await;
    rentals(&db).await;
    let (tasks, p) = (coll("tasks"), property(&db, "Loft").await);
    let t = id_of(
        &create(
            &db,
            "tasks",
            json!({"title": "Fix", "property_id": p.as_str(), "comments": [{"text": "first"}]}),
        )
        .await
        .unwrap(),
    );
    let item = db
        .transact(&meta(), |tx| {
            tx.nested_append(&tasks, &t, "comments", json!({"text": "second"}))
        })
        .await
        .unwrap()
        .value;
    let item_id = item["id"].as_str().unwrap().to_string();
    db.transact(&meta(), |tx| {
        tx.nested_patch(&tasks, &t, "comments", &item_id, &json!({"text": "edited"}))
    })
    .await
    .unwrap();
    let bad = db
        .transact(&meta(), |tx| {
            tx.nested_append(&tasks, &t, "comments", json!({"text": 5}))
        })
        .await
        .unwrap_err();
    assert_eq!(code(&bad), "validation_failed");
    let missing = db
        .transact(&meta(), |tx| {
            tx.nested_remove(&tasks, &t, "comments", "nope")
        })
        .await
        .unwrap_err();
    assert_eq!(code(&missing), "not_found");
    let record = get(&db, "tasks", t.as_str()).unwrap();
    let texts: Vec<&str> = record["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["first", "edited"]);
    // Whole-array writes through update are refused: items change through item operations.
    let err = db
        .transact(&meta(), |tx| {
            tx.update(&tasks, &t, &json!({"comments": []}), None)
        })
        .await
        .unwrap_err();
    assert_eq!(code(&err), "validation_failed");
    // The audit diff names items by id.
    let events = bucketbase_engine::collection::audit::query(
        db.store(),
        db.snapshot().seq(),
        &bucketbase_engine::collection::audit::AuditFilter {
            record_id: Some(t.to_string()),
            limit: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let change = &events[0]["changes"]["comments"];
    assert_eq!(
        change["changed"][&item_id]["text"],
        json!({"from": "second", "to": "edited"}),
        "{change}"
    );
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_writers_append_a_thousand_items() {
    for b in [Backend::memory(), Backend::local()] {
        let one = std::sync::Arc::new(b.open().await);
        let two = std::sync::Arc::new(b.open().await);
        rentals(&one).await;
        let p = property(&one, "Loft").await;
        let t = id_of(
            &create(
                &one,
                "tasks",
                json!({"title": "Busy", "property_id": p.as_str()}),
            )
            .await
            .unwrap(),
        );
        two.catch_up().await.unwrap();
        let mut writers = Vec::new();
        for w in 0..32 {
            let db = if w % 2 == 0 { one.clone() } else { two.clone() };
            let t = t.clone();
            writers.push(tokio::spawn(async move {
                let tasks = coll("tasks");
                for i in 0..1000 / 32 + usize::from(w < 1000 % 32) {
                    db.transact(&meta(), |tx| {
                        tx.nested_append(
                            &tasks,
                            &t,
                            "comments",
                            json!({"text": format!("{w}-{i}")}),
                        )
                    })
                    .await
                    .unwrap();
                }
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        let snap = one
            .read(bucketbase_engine::Consistency::Latest)
            .await
            .unwrap();
        let record = snap.get(&coll("tasks"), &t).unwrap().value();
        let items = record["comments"].as_array().unwrap();
        let distinct: std::collections::BTreeSet<&str> =
            items.iter().map(|i| i["text"].as_str().unwrap()).collect();
        assert_eq!((items.len(), distinct.len()), (1000, 1000), "{}", b.name);
        eprintln!(
            "{}: {:?} / {:?}",
            b.name,
            one.metrics().snapshot(),
            two.metrics().snapshot()
        );
        for h in [one, two] {
            std::sync::Arc::into_inner(h).unwrap().close().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_bookings_never_overlap() {
    for b in [Backend::memory(), Backend::local()] {
        let one = std::sync::Arc::new(b.open().await);
        let two = std::sync::Arc::new(b.open().await);
        rentals(&one).await;
        let props: Vec<RecordId> = vec![
            property(&one, "A").await,
            property(&one, "B").await,
            property(&one, "C").await,
        ];
        two.catch_up().await.unwrap();
        let mut writers = Vec::new();
        for w in 0..64u64 {
            let db = if w % 2 == 0 { one.clone() } else { two.clone() };
            let props = props.clone();
            writers.push(tokio::spawn(async move {
                let mut results = Vec::new();
                for i in 0..5u64 {
                    // Deterministic pseudo-random stays within one month.
                    let x = (w * 7919 + i * 104729) % 1000;
                    let p = &props[(x % 3) as usize];
                    let start = 1 + x % 25;
                    let nights = 1 + (x / 25) % 5;
                    let (from, to) = (
                        format!("2026-03-{start:02}"),
                        format!("2026-03-{:02}", start + nights),
                    );
                    let r = booking(&db, p, &from, &to).await;
                    results.push((p.clone(), from, to, r));
                }
                results
            }));
        }
        let mut acked = Vec::new();
        let mut rejected = 0;
        for w in writers {
            for (p, from, to, r) in w.await.unwrap() {
                match r {
                    Ok(v) => acked.push((p, from, to, v["id"].as_str().unwrap().to_string())),
                    Err(e) => {
                        assert_eq!(e.code(), "exclusion_violation", "{}: {e}", b.name);
                        rejected += 1;
                    }
                }
            }
        }
        assert!(
            rejected > 0 && !acked.is_empty(),
            "{}: the workload must contend",
            b.name
        );
        let snap = one
            .read(bucketbase_engine::Consistency::Latest)
            .await
            .unwrap();
        let bookings = snap.collection(&coll("bookings")).unwrap();
        for (_, _, _, id) in &acked {
            assert!(
                bookings.docs.contains_key(&rid(id)),
                "{}: acknowledged booking {id} lost",
                b.name
            );
        }
        let stays: Vec<(String, String, String)> = bookings
            .docs
            .values()
            .map(|d| d.value())
            .map(|v| {
                (
                    v["property_id"].as_str().unwrap().into(),
                    v["check_in"].as_str().unwrap().into(),
                    v["check_out"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(
            stays.len(),
            acked.len(),
            "{}: nothing unacknowledged",
            b.name
        );
        for (i, a) in stays.iter().enumerate() {
            for bb in &stays[i + 1..] {
                let overlap = a.0 == bb.0 && a.1 < bb.2 && bb.1 < a.2;
                assert!(!overlap, "{}: {a:?} overlaps {bb:?}", b.name);
            }
        }
        for h in [one, two] {
            std::sync::Arc::into_inner(h).unwrap().close().await;
        }
    }
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest_and_never_listed() {
    let b = Backend::memory();
    let key = std::sync::Arc::new(bucketbase_engine::collection::secret::SecretBox::new(
        [9; 32],
    ));
    let db = b
        .open_with(bucketbase_engine::DbOptions {
            secret_key: Some(key.clone()),
            ..options()
        })
        .await;
    define(&db, &[CREDENTIALS]).await;
    let c = coll("credentials");
    let created = create(
        &db,
        "credentials",
        json!({"name": "stripe", "secret": "sk_live_123"}),
    )
    .await
    .unwrap();
    let id = id_of(&created);
    let short = create(&db, "credentials", json!({"name": "x", "secret": "ab"}))
        .await
        .unwrap_err();
    assert_eq!(
        short.code(),
        "validation_failed",
        "plaintext is validated before encryption"
    );
    db.transact(&meta(), |tx| {
        tx.update(&c, &id, &json!({"secret": "sk_live_456"}), None)
    })
    .await
    .unwrap();
    db.flush_view().await;
    // Nowhere in the bucket in clear: log, view, index.
    assert!(!b.all_text().await.contains("sk_live"), "a secret in clear");
    // Lists leave it out; a masked single read shows it is set; reveal decrypts.
    let snap = db.snapshot();
    let page = query::list(&snap, &c, &Query::default(), &[], &|_| true, Some(&key)).unwrap();
    assert!(page.items[0].get("secret").is_none());
    let doc = snap.get(&c, &id).unwrap();
    use bucketbase_engine::collection::records::{Secrets, render};
    let def = snap.definition(&c).map(|d| d.as_ref());
    assert_eq!(
        render(def, &c, &id, doc.value(), doc.version, Secrets::Mask, None).unwrap()["secret"],
        "********"
    );
    assert_eq!(
        render(
            def,
            &c,
            &id,
            doc.value(),
            doc.version,
            Secrets::Reveal,
            Some(&key)
        )
        .unwrap()["secret"],
        "sk_live_456"
    );
    // Writing the mask back keeps the secret.
    db.transact(&meta(), |tx| {
        tx.update(
            &c,
            &id,
            &json!({"secret": "********", "name": "stripe2"}),
            None,
        )
    })
    .await
    .unwrap();
    let doc = db.snapshot().get(&c, &id).unwrap().clone();
    assert_eq!(
        render(
            def,
            &c,
            &id,
            doc.value(),
            doc.version,
            Secrets::Reveal,
            Some(&key)
        )
        .unwrap()["secret"],
        "sk_live_456"
    );
    db.close().await;
}

#[tokio::test]
async fn queries_filter_sort_and_page() {
    let db = Backend::memory().open().await;
    rentals(&db).await;
    let c = coll("properties");
    for i in 0..30 {
        let city = ["Nice", "Lyon", "Paris"][i % 3];
        create(
            &db,
            "properties",
            json!({"name": format!("P{i:02}"), "city": city, "rooms": i % 7}),
        )
        .await
        .unwrap();
    }
    let gone = db
        .snapshot()
        .collection(&c)
        .unwrap()
        .docs
        .keys()
        .next()
        .unwrap()
        .clone();
    db.transact(&meta(), |tx| tx.delete(&c, &gone, None))
        .await
        .unwrap();
    let snap = db.snapshot();
    let run = |q: Query| query::list(&snap, &c, &q, &[], &|_| true, None).unwrap();
    let nice = run(Query {
        equals: vec![("city".into(), json!("Nice"))],
        ..Default::default()
    });
    assert_eq!(nice.total, 9, "indexed equality filter, deleted one hidden");
    let with_deleted = run(Query {
        equals: vec![("city".into(), json!("Nice"))],
        deleted: Deleted::Include,
        ..Default::default()
    });
    assert_eq!(with_deleted.total, 10);
    let only = run(Query {
        deleted: Deleted::Only,
        ..Default::default()
    });
    assert_eq!(only.total, 1);
    let filtered = run(Query {
        filter: Some(
            bucketbase_engine::collection::expr::Expr::compile("record.rooms >= 5").unwrap(),
        ),
        sort: vec![("rooms".into(), true), ("name".into(), false)],
        per_page: 4,
        page: 2,
        ..Default::default()
    });
    let rooms: Vec<i64> = filtered
        .items
        .iter()
        .map(|r| r["rooms"].as_i64().unwrap())
        .collect();
    assert_eq!(filtered.total, 8);
    assert_eq!(rooms, [5, 5, 5, 5]);
    assert!(
        filtered
            .items
            .iter()
            .all(|r| r["_version"].as_u64().is_some())
    );
    let by_rooms_string = run(Query {
        equals: vec![("rooms".into(), json!("3"))],
        ..Default::default()
    });
    assert_eq!(
        by_rooms_string.total, 4,
        "query-string values match numbers"
    );
    db.close().await;
}

#[tokio::test]
async fn bad_definitions_are_rejected_with_the_problem_named() {
    let db = Backend::memory().open().await;
    let cases = [
        ("name = \"Bad Name\"", "collection name"),
        (
            "name = \"x\"\n[[check]]\nname = \"c\"\nexpr = \"record.a >\"",
            "check \"c\"",
        ),
        ("name = \"x\"\nschema = { type = 5 }", "schema"),
        (
            "name = \"x\"\n[[exclude]]\nname = \"e\"\nkey = []\nstart = \"a\"\nend = \"b\"",
            "key needs at least one field",
        ),
        ("name = \"x\"\nsoft_delet = true", "unknown field"),
    ];
    for (toml, expected) in cases {
        let err = Definition::from_toml(toml)
            .and_then(|d| d.compile().map(|_| ()))
            .unwrap_err();
        assert!(err.to_string().contains(expected), "{toml:?}: {err}");
        assert_eq!(err.code(), "invalid_definition");
    }
    // A definition the existing data breaks is refused at commit.
    define(&db, &[PROPERTIES]).await;
    create(&db, "properties", json!({"name": "A", "city": "Nice"}))
        .await
        .unwrap();
    create(&db, "properties", json!({"name": "B", "city": "Nice"}))
        .await
        .unwrap();
    let mut stricter = Definition::from_toml(PROPERTIES).unwrap();
    stricter
        .unique
        .push(bucketbase_engine::collection::definition::UniqueDef {
            name: "one_per_city".into(),
            fields: vec!["city".into()],
            include_deleted: false,
        });
    let err = db
        .transact(&meta(), |tx| tx.define(&stricter))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_definition", "{err}");
    assert!(err.to_string().contains("one_per_city"), "{err}");
    // Unknown collections are named.
    let c = CollectionName::parse("nothing").unwrap();
    let err = db
        .transact(&meta(), |tx| {
            tx.create(&c, json!({})).map(|(_, record)| record)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_found");
    db.close().await;
}

#[tokio::test]
async fn state_with_definitions_survives_restart_and_checkpoint() {
    let b = Backend::local();
    let db = b.open().await;
    rentals(&db).await;
    let p = property(&db, "Loft").await;
    booking(&db, &p, "2026-07-01", "2026-07-05").await.unwrap();
    bucketbase_engine::checkpoint::write(&b.store, &db.snapshot())
        .await
        .unwrap();
    db.close().await;
    let db = b.open().await;
    // Indexes were rebuilt from the checkpoint: the constraint still bites.
    let err = booking(&db, &p, "2026-07-03", "2026-07-04")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "exclusion_violation");
    let err = create(&db, "properties", json!({"name": "Loft"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unique_violation");
    db.close().await;
}

#[tokio::test]
async fn definitions_load_from_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("10-properties.toml"), PROPERTIES).unwrap();
    std::fs::write(dir.path().join("20-bookings.toml"), BOOKINGS).unwrap();
    std::fs::write(dir.path().join("README.md"), "not a definition").unwrap();
    let defs = bucketbase_engine::collection::definition::load_dir(dir.path()).unwrap();
    let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["properties", "bookings"]);
    let db = Backend::memory().open().await;
    let changed = db
        .transact(&meta(), |tx| {
            defs.iter()
                .map(|d| tx.define(d))
                .collect::<Result<Vec<bool>, Error>>()
        })
        .await
        .unwrap()
        .value;
    assert_eq!(changed, [true, true]);
    let again = db
        .transact(&meta(), |tx| {
            defs.iter()
                .map(|d| tx.define(d))
                .collect::<Result<Vec<bool>, Error>>()
        })
        .await
        .unwrap();
    assert_eq!(
        (again.value, again.txn_id),
        (vec![false, false], None),
        "unchanged: nothing written"
    );
    // A broken file is named.
    std::fs::write(
        dir.path().join("30-bad.toml"),
        "name = \"bad\"\nunknown = 1",
    )
    .unwrap();
    let err = bucketbase_engine::collection::definition::load_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("30-bad.toml"), "{err}");
    db.close().await;
}
