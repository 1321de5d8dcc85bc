//! The generic record routes on docsai's collections.

use reqwest::Method;
use serde_json::json;

use crate::support::{id, spawn};

/// A record whose secret field holds an object (a credential's data) can be patched
/// without touching the secret: the sealed value is kept, not re-checked against the
/// object schema (it was a 422 before).
#[tokio::test]
async fn a_record_with_a_secret_object_can_be_patched() {
    let app = spawn().await;
    let (mine, _) = app.admin.clone();
    let cred = app
        .create(
            &mine,
            "credentials",
            json!({"name": "GitHub", "credential_type": "token", "data": {"token": "gh-secret"}}),
        )
        .await;
    assert_eq!(cred["data"], "********");
    let path = format!("/api/v1/credentials/{}", id(&cred));
    let (s, b) = app
        .call(
            Method::PATCH,
            &path,
            &mine,
            Some(json!({"name": "GitHub (work)"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["name"], "GitHub (work)");
    assert_eq!(b["data"]["data"], "********", "the secret is still set");
    // A new value is still checked against the field's schema.
    let (s, b) = app
        .call(
            Method::PATCH,
            &path,
            &mine,
            Some(json!({"data": "not an object"})),
        )
        .await;
    assert_eq!(s, 422, "{b}");
}

/// An environment's variables: the value of a variable of type `secret` is sealed in the
/// nested item (the definition's `[type=secret].value`), shown masked by the item
/// routes and the record, kept when the mask is written back, and never in clear in
/// the bucket; a default variable's value stays readable.
#[tokio::test]
async fn secret_variables_are_sealed_inside_nested_items() {
    let app = spawn().await;
    let (mine, _) = app.admin.clone();
    let env = app
        .create(&mine, "environments", json!({"name": "staging"}))
        .await;
    let vars = format!("/api/v1/environments/{}/variables", id(&env));
    let (s, secret) = app
        .call(
            Method::POST,
            &vars,
            &mine,
            Some(json!({"key": "token", "type": "secret", "value": "env-token-secret"})),
        )
        .await;
    assert_eq!(s, 201, "{secret}");
    assert_eq!(secret["data"]["value"], "********");
    let (s, plain) = app
        .call(
            Method::POST,
            &vars,
            &mine,
            Some(json!({"key": "base_url", "value": "https://staging.example"})),
        )
        .await;
    assert_eq!(s, 201, "{plain}");
    assert_eq!(plain["data"]["value"], "https://staging.example");

    let item = format!("{vars}/{}", secret["data"]["id"].as_str().unwrap());
    let (s, b) = app
        .call(
            Method::PATCH,
            &item,
            &mine,
            Some(json!({"key": "api_token", "value": "********"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["key"], "api_token");
    assert_eq!(b["data"]["value"], "********");
    let (_, page) = app.get(&vars, &mine).await;
    assert_eq!(page["data"][0]["value"], "********", "{page}");
    assert_eq!(page["data"][1]["value"], "https://staging.example");
    let (_, record) = app
        .get(&format!("/api/v1/environments/{}", id(&env)), &mine)
        .await;
    assert_eq!(record["data"]["variables"][0]["value"], "********");
    let (_, audit) = app
        .get("/api/v1/audit?collection=environments", &mine)
        .await;
    app.db.flush_view().await;
    let bucket = app.bucket_text();
    for (what, text) in [
        ("bucket", bucket),
        ("page", page.to_string()),
        ("audit", audit.to_string()),
    ] {
        assert!(!text.contains("env-token-secret"), "in clear in the {what}");
    }
    assert!(!audit.to_string().contains("enc:v1:"), "{audit}");

    // The key kept the value: an export-style reveal is the engine's; here, the stored
    // item opens to the value written first.
    let key = crate::support::secret_box();
    let c = bucketbase_engine::CollectionName::parse("environments").unwrap();
    let rid = bucketbase_engine::RecordId::parse(&id(&env)).unwrap();
    let snap = app.db.snapshot();
    let doc = snap.get(&c, &rid).unwrap();
    let shown = bucketbase_engine::collection::records::render(
        snap.definition(&c).map(|d| d.as_ref()),
        &c,
        &rid,
        doc.value(),
        doc.version,
        bucketbase_engine::collection::records::Secrets::Reveal,
        Some(&key),
    )
    .unwrap();
    assert_eq!(shown["variables"][0]["value"], "env-token-secret");
}
