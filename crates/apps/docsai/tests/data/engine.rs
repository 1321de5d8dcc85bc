//! docsai's definitions installed in a real (in-memory) engine: every collection takes a
//! record, json_store keys are unique per owner, a roadmap item cannot depend on
//! itself, nested arrays take items, references hold.

use std::sync::Arc;

use bucketbase_docsai::definitions::definitions;
use bucketbase_engine::collection::secret::SecretBox;
use bucketbase_engine::{CollectionName, Database, DbOptions, Error, RecordId, TxnMeta};
use serde_json::{Value, json};

async fn db() -> Database {
    let opts = DbOptions {
        secret_key: Some(Arc::new(SecretBox::new([7; 32]))),
        ..DbOptions::default()
    };
    let db = Database::open_url("memory://", opts).await.unwrap();
    db.define_all(&TxnMeta::new("setup", "test"), &definitions())
        .await
        .unwrap();
    db
}

fn c(name: &str) -> CollectionName {
    CollectionName::parse(name).unwrap()
}

async fn create(db: &Database, owner: &str, coll: &str, body: Value) -> Result<Value, Error> {
    let name = c(coll);
    db.transact(&TxnMeta::new(owner, "test"), |tx| {
        tx.create(&name, body.clone())
    })
    .await
    .map(|r| r.value.1)
}

const ANN: &str = "0195f0a0-0000-7000-8000-00000000000a";
const BOB: &str = "0195f0a0-0000-7000-8000-00000000000b";

#[tokio::test]
async fn every_collection_takes_a_minimal_record_owned_by_its_creator() {
    let db = db().await;
    let minimal = [
        ("knowledge", json!({"title": "Hello"})),
        ("ai_sessions", json!({"title": "Rust"})),
        ("operations", json!({"operation_type": "sync"})),
        ("roadmap_items", json!({"title": "v2"})),
        ("templates", json!({"name": "t", "content": "Hi {{name}}"})),
        (
            "accessibility_scans",
            json!({"url": "https://docs.example.com/"}),
        ),
        ("test_suites", json!({"name": "smoke"})),
        (
            "credentials",
            json!({"name": "svc", "credential_type": "httpBasicAuth", "data": {"password": "p"}}),
        ),
        ("workflows", json!({"name": "w"})),
        (
            "workflow_templates",
            json!({"name": "wt", "definition": {"nodes": []}}),
        ),
        (
            "api_collections",
            json!({"name": "API", "auth": {"type": "bearer"}}),
        ),
        ("environments", json!({"name": "dev"})),
        (
            "request_history",
            json!({"method": "GET", "url": "https://x"}),
        ),
        ("tasks", json!({"title": "Write docs"})),
        ("json_store", json!({"key": "settings", "data": [1, 2]})),
    ];
    assert_eq!(minimal.len(), definitions().len());
    for (coll, body) in minimal {
        let r = create(&db, ANN, coll, body)
            .await
            .unwrap_or_else(|e| panic!("{coll}: {e}"));
        assert_eq!(r["created_by"], ANN, "{coll}");
    }
}

#[tokio::test]
async fn json_store_keys_are_unique_per_owner() {
    let db = db().await;
    create(&db, ANN, "json_store", json!({"key": "k", "data": 1}))
        .await
        .unwrap();
    create(&db, BOB, "json_store", json!({"key": "k", "data": 2}))
        .await
        .unwrap();
    let e = create(&db, ANN, "json_store", json!({"key": "k", "data": 3}))
        .await
        .unwrap_err();
    assert_eq!(e.code().as_str(), "unique_violation");
}

#[tokio::test]
async fn a_roadmap_item_cannot_depend_on_itself() {
    let db = db().await;
    let a = create(&db, ANN, "roadmap_items", json!({"title": "a"}))
        .await
        .unwrap();
    let b = create(
        &db,
        ANN,
        "roadmap_items",
        json!({"title": "b", "dependencies": [a["id"]]}),
    )
    .await
    .unwrap();
    let id = RecordId::parse(b["id"].as_str().unwrap()).unwrap();
    let patch = json!({"dependencies": [a["id"], b["id"]]});
    let e = db
        .transact(&TxnMeta::new(ANN, "test"), |tx| {
            tx.update(&c("roadmap_items"), &id, &patch, None)
        })
        .await
        .unwrap_err();
    assert_eq!(e.code().as_str(), "check_violation");
}

#[tokio::test]
async fn nested_arrays_and_references() {
    let db = db().await;
    let w = create(&db, ANN, "workflows", json!({"name": "w"}))
        .await
        .unwrap();
    let wid = RecordId::parse(w["id"].as_str().unwrap()).unwrap();
    for (field, item) in [
        ("nodes", json!({"node_key": "n1", "node_type": "http"})),
        (
            "connections",
            json!({"source_node": "n1", "target_node": "n2"}),
        ),
        (
            "executions",
            json!({"status": "running", "external_id": "x"}),
        ),
    ] {
        db.transact(&TxnMeta::new(ANN, "test"), |tx| {
            tx.nested_append(&c("workflows"), &wid, field, item.clone())
        })
        .await
        .unwrap_or_else(|e| panic!("{field}: {e}"));
    }
    let bad = create(
        &db,
        ANN,
        "request_history",
        json!({"method": "GET", "url": "u", "collection_id": wid.as_str()}),
    )
    .await
    .unwrap_err();
    assert_eq!(bad.code().as_str(), "reference_violation");
    let a = create(&db, ANN, "api_collections", json!({"name": "API"}))
        .await
        .unwrap();
    create(
        &db,
        ANN,
        "request_history",
        json!({"method": "GET", "url": "u", "collection_id": a["id"]}),
    )
    .await
    .unwrap();
}
