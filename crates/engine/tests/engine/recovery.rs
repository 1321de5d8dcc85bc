//! Crash between commit and materialization; restart; rebuild.

use bucketbase_engine::{DbOptions, materialize};
use object_store::ObjectStoreExt;

use crate::conformance::view_files;
use crate::support::*;

#[tokio::test]
async fn crash_before_materialization_is_repaired_at_restart() {
    for b in backends() {
        // First life: commits land in the log, but the process "dies" before any view
        // file is written (the materializer never runs).
        let crashed = b
            .open_with(DbOptions {
                materialize: false,
                ..options()
            })
            .await;
        for i in 0..12 {
            put(&crashed, "things", &format!("t{i}"), doc(i)).await;
        }
        put(&crashed, "things", "t3", doc(33)).await;
        drop(crashed);
        assert!(view_files(&b).await.is_empty(), "{}", b.name);

        // Restart: the state is complete and the view is brought up to date.
        let db = b.open().await;
        assert_eq!(db.snapshot().len(), 12, "{}", b.name);
        assert_eq!(get(&db, "things", "t3"), Some(doc(33)));
        db.flush_view().await;
        let repaired = view_files(&b).await;
        assert_eq!(repaired.len(), 12 + 1 + 1, "{}", b.name);

        // And it is exactly what a rebuild from scratch produces.
        for (path, _) in &repaired {
            b.store.delete(path).await.unwrap();
        }
        materialize::rebuild(&b.store, &db.snapshot(), &|_| {})
            .await
            .unwrap();
        assert_eq!(view_files(&b).await, repaired, "{}", b.name);
        db.close().await;
    }
}

#[tokio::test]
async fn damaged_view_files_never_affect_state() {
    for b in backends() {
        let db = b.open().await;
        put(&db, "things", "a", doc(1)).await;
        db.flush_view().await;
        db.close().await;
        b.store
            .put(
                &object_store::path::Path::from("things/a.json"),
                "not json".into(),
            )
            .await
            .unwrap();
        b.store
            .put(
                &object_store::path::Path::from("things/index.json"),
                "{".into(),
            )
            .await
            .unwrap();
        let db = b.open().await;
        assert_eq!(get(&db, "things", "a"), Some(doc(1)), "{}", b.name);
        db.close().await;
    }
}
