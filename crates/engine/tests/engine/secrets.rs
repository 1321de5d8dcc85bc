//! Secrets below the top level: at paths inside an own field (an auth block's password,
//! the value of a variable of type `secret` in an array) and in nested items, two levels
//! deep. Encrypted at rest, masked, omitted or revealed when shown, kept when the mask is
//! written back, in clear again when a filter stops holding, and never in clear in the
//! bucket or in audit changes.

use std::sync::Arc;

use bucketbase_engine::collection::Definition;
use bucketbase_engine::collection::audit::{self, AuditFilter};
use bucketbase_engine::collection::ops::NestedPath;
use bucketbase_engine::collection::records::{Secrets, render, render_item};
use bucketbase_engine::collection::secret::SecretBox;
use bucketbase_engine::{Database, DbOptions, RecordId};
use serde_json::{Value, json};

use crate::support::{Backend, coll, meta, options};

const VAULTS: &str = r#"
name = "vaults"
secret = ["settings.password", "vars[type=secret].value"]
[schema]
type = "object"
additionalProperties = false
properties.name = { type = "string" }
properties.settings = { type = "object", properties = { user = { type = "string" }, password = { type = "string", minLength = 3 } } }
properties.vars = { type = "array", items = { type = "object", properties = { key = { type = "string" }, type = { type = "string" }, value = { type = "string" } } } }
[nested.envs]
schema = { type = "object", additionalProperties = false, properties = { key = { type = "string" }, type = { type = "string" }, value = { type = "string", minLength = 3 } } }
secret = ["[type=secret].value"]
[nested.envs.nested.history]
schema = { type = "object", properties = { token = { type = "string" } } }
secret = ["token"]
"#;

async fn open(b: &Backend, key: &Arc<SecretBox>) -> Database {
    let db = b
        .open_with(DbOptions {
            secret_key: Some(key.clone()),
            ..options()
        })
        .await;
    let def = Definition::from_toml(VAULTS).unwrap();
    db.define_all(&meta(), &[def]).await.unwrap();
    db
}

fn shown(db: &Database, id: &RecordId, how: Secrets, key: &SecretBox) -> Value {
    let c = coll("vaults");
    let snap = db.snapshot();
    let doc = snap.get(&c, id).unwrap();
    let def = snap.definition(&c).map(|d| d.as_ref());
    render(def, &c, id, doc.value(), doc.version, how, Some(key)).unwrap()
}

#[tokio::test]
async fn secrets_inside_objects_arrays_and_nested_items() {
    let b = Backend::local();
    let key = Arc::new(SecretBox::new([5; 32]));
    let db = open(&b, &key).await;
    let c = coll("vaults");
    let record = json!({
        "name": "prod",
        "settings": {"user": "admin", "password": "pw-secret-1"},
        "vars": [
            {"key": "token", "type": "secret", "value": "var-secret-2"},
            {"key": "base", "type": "default", "value": "plain-3"},
        ],
        "envs": [{"key": "a", "type": "secret", "value": "env-secret-4",
                  "history": [{"token": "hist-secret-5"}]}],
    });
    let (id, _) = db
        .transact(&meta(), |tx| tx.create(&c, record.clone()))
        .await
        .unwrap()
        .value;
    let envs = NestedPath::array("envs");
    let appended = db
        .transact(&meta(), |tx| {
            tx.nested_append_at(
                &c,
                &id,
                &envs,
                json!({"key": "b", "type": "secret", "value": "env-secret-6"}),
            )?;
            tx.nested_append_at(&c, &id, &envs, json!({"key": "c", "value": "plain-7"}))
        })
        .await
        .unwrap();
    assert_eq!(
        appended.value["value"], "plain-7",
        "not secret: no filter match"
    );

    // Plaintext is checked before it is sealed, at every level.
    let short = db
        .transact(&meta(), |tx| {
            tx.update(&c, &id, &json!({"settings": {"password": "ab"}}), None)
        })
        .await
        .unwrap_err();
    assert_eq!(short.code(), "validation_failed", "{short}");
    let short = db
        .transact(&meta(), |tx| {
            tx.nested_append_at(&c, &id, &envs, json!({"type": "secret", "value": "ab"}))
        })
        .await
        .unwrap_err();
    assert_eq!(short.code(), "validation_failed", "{short}");

    let masked = shown(&db, &id, Secrets::Mask, &key);
    assert_eq!(
        masked["settings"],
        json!({"user": "admin", "password": "********"})
    );
    assert_eq!(masked["vars"][0]["value"], "********");
    assert_eq!(masked["vars"][1]["value"], "plain-3");
    assert_eq!(masked["envs"][0]["value"], "********");
    assert_eq!(masked["envs"][0]["history"][0]["token"], "********");
    assert_eq!(masked["envs"][1]["value"], "********");
    assert_eq!(masked["envs"][2]["value"], "plain-7");
    let omitted = shown(&db, &id, Secrets::Omit, &key);
    assert_eq!(omitted["settings"], json!({"user": "admin"}));
    assert!(omitted["vars"][0].get("value").is_none());
    assert!(omitted["envs"][0].get("value").is_none());
    let revealed = shown(&db, &id, Secrets::Reveal, &key);
    assert_eq!(revealed["settings"]["password"], "pw-secret-1");
    assert_eq!(revealed["vars"][0]["value"], "var-secret-2");
    assert_eq!(revealed["envs"][0]["value"], "env-secret-4");
    assert_eq!(revealed["envs"][0]["history"][0]["token"], "hist-secret-5");
    assert_eq!(revealed["envs"][1]["value"], "env-secret-6");

    // One item, shown as item answers show it.
    let b_id = revealed["envs"][1]["id"].as_str().unwrap().to_string();
    let snap = db.snapshot();
    let def = snap.definition(&c).unwrap();
    let mut item = snap.get(&c, &id).unwrap().value()["envs"][1].clone();
    let path = vec!["envs".to_string(), b_id.clone()];
    let mut plain = item.clone();
    render_item(def, &id, &path, &mut item, Secrets::Mask, None).unwrap();
    assert_eq!(item["value"], "********");
    render_item(def, &id, &path, &mut plain, Secrets::Reveal, Some(&key)).unwrap();
    assert_eq!(plain["value"], "env-secret-6");
    // Bound to its place: the ciphertext of one item does not open as another's.
    let mut moved = snap.get(&c, &id).unwrap().value()["envs"][1].clone();
    let other = vec!["envs".to_string(), "elsewhere".to_string()];
    assert!(render_item(def, &id, &other, &mut moved, Secrets::Reveal, Some(&key)).is_err());
    drop(snap);

    // The mask written back keeps the secret, in an own field and in an item.
    db.transact(&meta(), |tx| {
        tx.update(
            &c,
            &id,
            &json!({"name": "prod2", "settings": {"password": "********"}}),
            None,
        )?;
        tx.nested_patch_at(
            &c,
            &id,
            &envs.clone().then(&b_id),
            &json!({"key": "b2", "value": "********"}),
        )
    })
    .await
    .unwrap();
    let revealed = shown(&db, &id, Secrets::Reveal, &key);
    assert_eq!(revealed["name"], "prod2");
    assert_eq!(revealed["settings"]["password"], "pw-secret-1");
    assert_eq!(revealed["envs"][1]["key"], "b2");
    assert_eq!(revealed["envs"][1]["value"], "env-secret-6");

    // Nowhere in clear: log (records and audit), checkpoints, view.
    db.flush_view().await;
    let bucket = b.all_text().await;
    for s in [
        "pw-secret-1",
        "var-secret-2",
        "env-secret-4",
        "hist-secret-5",
        "env-secret-6",
    ] {
        assert!(!bucket.contains(s), "{s} is in clear in the bucket");
    }
    assert!(bucket.contains("plain-3") && bucket.contains("plain-7"));
    // Audit changes show "[secret]", not the ciphertext either.
    let events = audit::query(
        &b.store,
        db.snapshot().seq(),
        &AuditFilter {
            collection: Some("vaults".into()),
            ..AuditFilter::default()
        },
    )
    .await
    .unwrap();
    let events = serde_json::to_string(&events).unwrap();
    assert!(events.contains("[secret]"), "{events}");
    assert!(!events.contains("enc:v1:"), "{events}");

    // A place whose filter stops holding holds its value in clear again.
    db.transact(&meta(), |tx| {
        tx.nested_patch_at(
            &c,
            &id,
            &envs.clone().then(&b_id),
            &json!({"type": "default"}),
        )
    })
    .await
    .unwrap();
    let masked = shown(&db, &id, Secrets::Mask, &key);
    assert_eq!(masked["envs"][1]["value"], "env-secret-6");
    db.close().await;
}

#[tokio::test]
async fn bad_secret_paths_are_refused() {
    for (secret, nested_secret) in [
        (r#"["settings."]"#, "[]"),
        (r#"["vars[]"]"#, "[]"),
        (r#"["id"]"#, "[]"),
        (r#"["envs"]"#, "[]"),
        (r#"["name", "name"]"#, "[]"),
        ("[]", r#"["history"]"#),
        ("[]", r#"["id"]"#),
    ] {
        let text = format!(
            "name = \"v\"\nsecret = {secret}\n[nested.envs]\nsecret = {nested_secret}\n[nested.envs.nested.history]\n"
        );
        let err = Definition::from_toml(&text)
            .map_err(|e| e.to_string())
            .and_then(|d| d.compile().map(|_| ()).map_err(|e| e.to_string()))
            .unwrap_err();
        assert!(err.contains("secret"), "{secret} / {nested_secret}: {err}");
    }
}
