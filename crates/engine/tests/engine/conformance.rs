//! The storage conformance suite: the same behaviour on every backend.

use bucketbase_engine::{Consistency, Error, Seq, checkpoint, log, materialize, verify};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn commit_read_and_reopen() {
    for b in backends() {
        let db = b.open().await;
        assert_eq!(put(&db, "things", "a", json!({"x": 1})).await, Seq(1));
        assert_eq!(put(&db, "things", "b", json!({"x": 2})).await, Seq(2));
        let (c, a) = (coll("things"), rid("a"));
        let seq = db
            .transact(&meta(), |tx| {
                let mut v = tx.get_value(&c, &a).unwrap();
                v["x"] = json!(10);
                tx.put(&c, &a, &v)?;
                tx.delete_raw(&c, &rid("b"));
                Ok::<_, Error>(())
            })
            .await
            .unwrap()
            .seq;
        assert_eq!(seq, Seq(3), "{}", b.name);
        db.close().await;

        let db = b.open().await;
        let snap = db.snapshot();
        assert_eq!(snap.seq(), Seq(3), "{}", b.name);
        assert_eq!(
            get(&db, "things", "a"),
            Some(json!({"x": 10})),
            "{}",
            b.name
        );
        assert_eq!(get(&db, "things", "b"), None, "{}", b.name);
        assert_eq!(snap.get(&c, &a).unwrap().version, Seq(3));
        assert_eq!(snap.collection_version(&c), Seq(3));
        db.close().await;
    }
}

#[tokio::test]
async fn log_entries_are_create_only_and_chained() {
    for b in backends() {
        let db = b.open().await;
        put(&db, "things", "a", json!({})).await;
        put(&db, "things", "b", json!({})).await;
        let first = log::read_entry(&b.store, Seq(1)).await.unwrap().unwrap();
        let second = log::read_entry(&b.store, Seq(2)).await.unwrap().unwrap();
        assert_eq!(first.body.prev_hash, log::GENESIS_HASH);
        assert_eq!(second.body.prev_hash, first.hash, "{}", b.name);
        assert_eq!(first.body.txns[0].actor, "tester");
        assert_eq!(first.body.txns[0].source, "test");
        // The slot cannot be overwritten through the store's create-if-absent.
        let again = b
            .store
            .put_opts(
                &bucketbase_engine::store::log_path(Seq(1)),
                "{}".into(),
                object_store::PutMode::Create.into(),
            )
            .await;
        assert!(
            matches!(again, Err(object_store::Error::AlreadyExists { .. })),
            "{}: {again:?}",
            b.name
        );
        let report = verify::verify_chain(&b.store, &|_| {}).await.unwrap();
        assert!(report.is_intact(), "{}: {report:?}", b.name);
        assert_eq!(report.verified, 2);
        db.close().await;
    }
}

#[tokio::test]
async fn reads_that_changed_rerun_the_closure() {
    for b in backends() {
        let one = b.open().await;
        let two = b.open().await;
        put(&one, "counters", "c", json!({"n": 0})).await;
        two.catch_up().await.unwrap();
        let (c, id) = (coll("counters"), rid("c"));
        // `one` moves the counter; `two` still has the old snapshot and must re-run.
        put(&one, "counters", "c", json!({"n": 5})).await;
        let mut runs = 0;
        let committed = two
            .transact(&meta(), |tx| {
                runs += 1;
                let n = tx.get_value(&c, &id).unwrap()["n"].as_u64().unwrap();
                tx.put(&c, &id, &json!({"n": n + 1}))?;
                Ok::<_, Error>(n)
            })
            .await
            .unwrap();
        assert_eq!(
            committed.value, 5,
            "{}: the update must see the winner",
            b.name
        );
        assert!(runs >= 2, "{}", b.name);
        let latest = one.read(Consistency::Latest).await.unwrap();
        assert_eq!(latest.get(&c, &id).unwrap().value(), json!({"n": 6}));
        one.close().await;
        two.close().await;
    }
}

#[tokio::test]
async fn expect_version_reports_a_conflict() {
    for b in backends() {
        let db = b.open().await;
        let v1 = put(&db, "things", "a", json!({"x": 1})).await;
        put(&db, "things", "a", json!({"x": 2})).await;
        let (c, id) = (coll("things"), rid("a"));
        let err = db
            .transact(&meta(), |tx| {
                tx.expect_version(&c, &id, v1)?;
                tx.put(&c, &id, &json!({"x": 3}))
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::VersionConflict { expected, actual: Some(Seq(2)), .. } if expected == v1),
            "{}: {err}",
            b.name
        );
        db.close().await;
    }
}

#[tokio::test]
async fn scans_catch_phantoms() {
    for b in backends() {
        let one = b.open().await;
        let two = b.open().await;
        put(&one, "items", "a", json!({})).await;
        two.catch_up().await.unwrap();
        put(&one, "items", "b", json!({})).await;
        let items = coll("items");
        let counted = two
            .transact(&meta(), |tx| {
                let n = tx.scan(&items).len();
                tx.put(&coll("counts"), &rid("items"), &json!({"n": n}))?;
                Ok::<_, Error>(n)
            })
            .await
            .unwrap();
        assert_eq!(counted.value, 2, "{}: the scan must include b", b.name);
        one.close().await;
        two.close().await;
    }
}

#[tokio::test]
async fn bounded_staleness_catches_up_only_when_stale() {
    for b in backends() {
        let one = b.open().await;
        // No log tailer: it would catch up on its own, whenever the machine lets it.
        let two = b
            .open_with(bucketbase_engine::DbOptions {
                tail_interval: Some(std::time::Duration::ZERO),
                ..options()
            })
            .await;
        put(&one, "things", "a", json!({})).await;
        let local = two.read(Consistency::Local).await.unwrap();
        assert_eq!(local.seq(), Seq(0));
        let fresh_enough = two
            .read(Consistency::BoundedStaleness(
                std::time::Duration::from_secs(3600),
            ))
            .await
            .unwrap();
        assert_eq!(
            fresh_enough.seq(),
            Seq(0),
            "{}: within bound, no catch-up",
            b.name
        );
        let strict = two
            .read(Consistency::BoundedStaleness(std::time::Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(strict.seq(), Seq(1), "{}", b.name);
        one.close().await;
        two.close().await;
    }
}

#[tokio::test]
async fn checkpoint_then_tail_replay() {
    for b in backends() {
        let opts = bucketbase_engine::DbOptions {
            checkpoint_every: 4,
            ..options()
        };
        let db = b.open_with(opts.clone()).await;
        for i in 0..10 {
            put(&db, "things", &format!("t{i}"), doc(i)).await;
        }
        db.close().await;
        // Let the background checkpoint writes (positions 4 and 8) finish.
        let mut found = vec![];
        for _ in 0..100 {
            found = checkpoint::list(&b.store).await.unwrap();
            if found.len() == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(found, vec![Seq(8), Seq(4)], "{}", b.name);
        let at8 = checkpoint::load(&b.store, Seq(8)).await.unwrap();
        assert_eq!(at8.len(), 8);
        // Remove the log prefix the checkpoint covers: start-up must not need it.
        for s in 1..=8 {
            b.store
                .delete(&bucketbase_engine::store::log_path(Seq(s)))
                .await
                .unwrap();
        }
        let db = b.open_with(opts).await;
        assert_eq!(db.snapshot().seq(), Seq(10), "{}", b.name);
        assert_eq!(db.snapshot().len(), 10);
        assert_eq!(get(&db, "things", "t9"), Some(doc(9)));
        db.close().await;
    }
}

#[tokio::test]
async fn damaged_checkpoint_falls_back() {
    for b in backends() {
        let db = b.open().await;
        for i in 0..3 {
            put(&db, "things", &format!("t{i}"), doc(i)).await;
        }
        assert!(checkpoint::write(&b.store, &db.snapshot()).await.unwrap());
        assert!(!checkpoint::write(&b.store, &db.snapshot()).await.unwrap());
        put(&db, "things", "t3", doc(3)).await;
        db.close().await;
        let part = bucketbase_engine::store::checkpoint_part_path(Seq(3), 0);
        b.store.put(&part, "garbage".into()).await.unwrap();
        let db = b.open().await;
        assert_eq!(db.snapshot().seq(), Seq(4), "{}", b.name);
        assert_eq!(db.snapshot().len(), 4);
        db.close().await;
    }
}

#[tokio::test]
async fn materialized_view_follows_commits() {
    for b in backends() {
        let db = b.open().await;
        put(&db, "things", "a", json!({"x": 1})).await;
        put(&db, "things", "b", json!({"x": 2})).await;
        let (c, bid) = (coll("things"), rid("b"));
        db.transact(&meta(), |tx| {
            tx.delete_raw(&c, &bid);
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        db.flush_view().await;
        let a = read_json(&b, "things/a.json").await.unwrap();
        assert_eq!(a, json!({"x": 1, "_seq": 1, "_version": 1}), "{}", b.name);
        assert!(read_json(&b, "things/b.json").await.is_none(), "{}", b.name);
        let index = read_json(&b, "things/index.json").await.unwrap();
        assert_eq!(index["_seq"], 3);
        assert_eq!(index["count"], 1);
        assert_eq!(index["records"][0]["id"], "a");
        db.close().await;
    }
}

/// The live `index.json` is rendered incrementally (rows of unchanged records are kept
/// between passes); through creates, updates and deletes over many passes it must stay
/// byte for byte what a full render of the same state gives, and the watermark must say
/// how far the durable view goes once `flush_view` returns.
#[tokio::test]
async fn live_index_stays_equal_to_a_full_render() {
    for b in backends() {
        let db = b.open().await;
        let c = coll("things");
        for round in 0..4u64 {
            for i in 0..25u64 {
                let id = rid(format!("r{:02}", (i * 7 + round * 3) % 40));
                let value = json!({"n": i, "round": round});
                db.transact(&meta(), |tx| {
                    if (i + round) % 5 == 0 {
                        tx.delete_raw(&c, &id);
                        Ok(())
                    } else {
                        tx.put(&c, &id, &value)
                    }
                })
                .await
                .unwrap();
                if i % 6 == 0 {
                    db.flush_view().await;
                }
            }
            db.flush_view().await;
            let snapshot = db.snapshot();
            let full = materialize::render_index(&c, snapshot.collection(&c).unwrap(), &[]);
            let live = b.store.get(&Path::from("things/index.json")).await.unwrap();
            let live = live.bytes().await.unwrap();
            assert_eq!(
                std::str::from_utf8(&live).unwrap(),
                std::str::from_utf8(&full).unwrap(),
                "{} round {round}",
                b.name
            );
            let watermark = read_json(&b, "_meta/view.json").await.unwrap();
            assert_eq!(watermark["_seq"], snapshot.seq().get(), "{}", b.name);
        }
        db.close().await;
    }
}

#[tokio::test]
async fn rebuild_restores_view_byte_for_byte() {
    for b in backends() {
        let db = b.open().await;
        for i in 0..20 {
            put(
                &db,
                if i % 2 == 0 { "even" } else { "odd" },
                &format!("r{i}"),
                doc(i),
            )
            .await;
        }
        db.flush_view().await;
        let before = view_files(&b).await;
        assert_eq!(
            before.len(),
            20 + 2 + 1,
            "{}: docs, indexes, watermark",
            b.name
        );
        for (path, _) in &before {
            b.store.delete(path).await.unwrap();
        }
        // A stray view file of a record that does not exist is removed.
        b.store
            .put(&Path::from("even/ghost.json"), "{}".into())
            .await
            .unwrap();
        let report = materialize::rebuild(&b.store, &db.snapshot(), &|_| {})
            .await
            .unwrap();
        assert_eq!((report.docs, report.indexes, report.removed), (20, 2, 1));
        let after = view_files(&b).await;
        assert_eq!(before, after, "{}", b.name);
        db.close().await;
    }
}

pub async fn read_json(b: &Backend, key: &str) -> Option<serde_json::Value> {
    let got = b.store.get(&Path::from(key)).await.ok()?;
    Some(serde_json::from_slice(&got.bytes().await.unwrap()).unwrap())
}

/// Every view file (not under `_log/`, `_checkpoints/`, `_probe/`) and its bytes.
pub async fn view_files(b: &Backend) -> Vec<(Path, bytes::Bytes)> {
    let mut paths: Vec<Path> = b
        .store
        .list(None)
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .unwrap();
    paths.retain(|p| {
        let s = p.as_ref();
        !s.starts_with("_log/") && !s.starts_with("_checkpoints/") && !s.starts_with("_probe/")
    });
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let bytes = b.store.get(&p).await.unwrap().bytes().await.unwrap();
        out.push((p, bytes));
    }
    out
}

#[tokio::test]
async fn conditional_view_writes_never_go_back() {
    for b in backends() {
        if b.name == "local" {
            // LocalFileSystem has no conditional update; one view writer per process.
            continue;
        }
        let opts = bucketbase_engine::DbOptions {
            view_write: materialize::ViewWriteMode::IfNewer,
            ..options()
        };
        let db = b.open_with(opts).await;
        put(&db, "things", "a", json!({"x": 1})).await;
        db.flush_view().await;
        assert_eq!(read_json(&b, "things/a.json").await.unwrap()["x"], 1);
        // Another process already wrote a newer rendering of the record.
        b.store
            .put(
                &Path::from("things/a.json"),
                r#"{"_seq":999,"x":"newer"}"#.into(),
            )
            .await
            .unwrap();
        put(&db, "things", "a", json!({"x": 2})).await;
        put(&db, "things", "b", json!({"x": 3})).await;
        db.flush_view().await;
        assert_eq!(
            read_json(&b, "things/a.json").await.unwrap()["x"],
            "newer",
            "{}",
            b.name
        );
        // An older file is replaced.
        let a_doc = read_json(&b, "things/b.json").await.unwrap();
        assert_eq!(a_doc["_seq"], 3, "{}", b.name);
        put(&db, "things", "b", json!({"x": 4})).await;
        db.flush_view().await;
        assert_eq!(
            read_json(&b, "things/b.json").await.unwrap()["x"],
            4,
            "{}",
            b.name
        );
        db.close().await;
    }
}
