//! Documents written by record operations are validated against their collection's
//! schema and checks when the transaction is handed to the committer, and again at commit
//! whenever that first check failed or may no longer hold: a document that does not
//! travel parsed, a write that is not a record operation, or a definition that changed
//! in between. Whichever check finds it, the answer is the committer's.

use std::sync::atomic::{AtomicUsize, Ordering};

use bucketbase_engine::Result;
use serde_json::{Value, json};

use crate::fixtures::*;
use crate::support::*;

fn assert_invalid<T: std::fmt::Debug>(what: &str, answer: Result<T>) {
    match answer {
        Err(e) => assert_eq!(e.code().as_str(), "validation_failed", "{what}: {e}"),
        Ok(v) => panic!("{what}: accepted {v:?}"),
    }
}

#[tokio::test]
async fn an_invalid_document_is_refused_on_every_path() {
    let db = Backend::memory().open().await;
    rentals(&db).await;
    let c = coll("properties");
    let create = |body: Value| {
        let c = c.clone();
        let db = &db;
        async move {
            db.transact(&meta(), |tx| tx.create(&c, body.clone()).map(|(id, _)| id))
                .await
                .map(|r| r.value)
        }
    };
    assert_invalid("create", create(json!({"name": ""})).await);
    // A float makes the document travel as text: the committer validates it.
    assert_invalid(
        "create with a float",
        create(json!({"name": "x", "rooms": 2.5})).await,
    );
    let p = create(json!({"name": "Beach House", "rooms": 2}))
        .await
        .unwrap();
    let update = db
        .transact(&meta(), |tx| tx.update(&c, &p, &json!({"rooms": -1}), None))
        .await;
    assert_invalid("update", update);
    let float_update = db
        .transact(&meta(), |tx| {
            tx.update(&c, &p, &json!({"rooms": 0.5}), None)
        })
        .await;
    assert_invalid("update with a float", float_update);
    let replace = db
        .transact(&meta(), |tx| tx.replace(&c, &p, &json!({"name": ""}), None))
        .await;
    assert_invalid("replace", replace);
    let raw = db
        .transact(&meta(), |tx| tx.put(&c, &rid("raw"), &json!({"name": 7})))
        .await;
    assert_invalid("raw put", raw);
    let mut trial = db.trial(&meta());
    assert_invalid(
        "trial step",
        trial.step(|tx| tx.create(&c, json!({"name": ""}))),
    );
    // Created, then changed into an invalid document in the same transaction.
    let changed = db
        .transact(&meta(), |tx| {
            let (id, _) = tx.create(&c, json!({"name": "Lake House"}))?;
            tx.update(&c, &id, &json!({"name": ""}), None)
        })
        .await;
    assert_invalid("create then update", changed);

    let left = db.snapshot();
    let names: Vec<Value> = left
        .collection(&c)
        .map(|coll| {
            coll.docs
                .values()
                .map(|d| d.value()["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(names, [json!("Beach House")]);
    assert_eq!(get(&db, "properties", p.as_str()).unwrap()["rooms"], 2);
}

const NOTES: &str =
    "name = \"notes\"\n[schema]\ntype = \"object\"\nproperties.title = { type = \"string\" }\n";
const SHORT_NOTES: &str = "name = \"notes\"\n[schema]\ntype = \"object\"\nproperties.title = { type = \"string\", maxLength = 3 }\n";

/// A record operation's document is validated against the definition of its snapshot;
/// the committer trusts that only while the collection keeps that very definition. Here
/// a stricter one is committed while the transaction is being staged (which reads
/// nothing the definition changes, so it is not re-run): the commit refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_changed_after_staging_is_checked_again_at_commit() {
    let db = Backend::memory().open().await;
    define(&db, &[NOTES]).await;
    let c = coll("notes");
    let handle = tokio::runtime::Handle::current();
    let attempts = AtomicUsize::new(0);
    let answer = db
        .transact(&meta(), |tx| {
            let staged = tx.create(&c, json!({"title": "far too long"}));
            assert!(staged.is_ok(), "valid when staged: {staged:?}");
            if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                std::thread::scope(|s| {
                    s.spawn(|| handle.block_on(define(&db, &[SHORT_NOTES])))
                        .join()
                        .unwrap()
                });
            }
            staged.map(|(id, _)| id)
        })
        .await;
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        1,
        "refused by the committer, not by a second attempt"
    );
    assert_invalid("staged under the old definition", answer);
    assert!(
        db.snapshot()
            .collection(&c)
            .is_none_or(|n| n.docs.is_empty())
    );
    let e = db
        .transact(&meta(), |tx| tx.create(&c, json!({"title": "long"})))
        .await
        .unwrap_err();
    assert_eq!(e.code().as_str(), "validation_failed", "{e}");
    let ok = db
        .transact(&meta(), |tx| tx.create(&c, json!({"title": "ok"})))
        .await;
    assert!(ok.is_ok(), "{ok:?}");
}
