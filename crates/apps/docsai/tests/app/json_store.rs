//! `GET|PUT /api/v1/docsai/json_store/{key}`: one document per key and owner, created or
//! replaced by PUT (with If-Match), read by key, and another owner's key is theirs.

use reqwest::Method;
use serde_json::json;

use crate::support::spawn;

const PATH: &str = "/api/v1/docsai/json_store/settings";

#[tokio::test]
async fn put_creates_then_replaces_and_get_reads_by_key() {
    let app = spawn().await;
    let (mine, me) = app.admin.clone();
    let (s, b) = app.get(PATH, &mine).await;
    assert_eq!(s, 404, "{b}");
    assert_eq!(b["error"]["code"], "not_found");

    let (s, b) = app
        .call(
            Method::PUT,
            PATH,
            &mine,
            Some(json!({"data": {"theme": "dark"}})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["data"]["key"], "settings");
    assert_eq!(b["data"]["created_by"], me.as_str());
    let id = b["data"]["id"].clone();
    let v1 = b["data"]["_version"].as_u64().unwrap();

    let (s, b) = app
        .call(
            Method::PUT,
            PATH,
            &mine,
            Some(json!({"data": {"theme": "light"}})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["id"], id, "replaced in place");
    let (s, b) = app.get(PATH, &mine).await;
    assert_eq!(s, 200);
    assert_eq!(b["data"]["data"], json!({"theme": "light"}));
    let v2 = b["data"]["_version"].as_u64().unwrap();

    // If-Match: a stale version is refused, the current one accepted.
    let stale = app
        .client
        .put(app.at(PATH))
        .bearer_auth(&mine)
        .header("if-match", format!("\"{v1}\""))
        .json(&json!({"data": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    let fresh = app
        .client
        .put(app.at(PATH))
        .bearer_auth(&mine)
        .header("if-match", format!("\"{v2}\""))
        .json(&json!({"data": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 200);

    // A key in the body must be the path's; the body must be an object.
    let (s, b) = app
        .call(
            Method::PUT,
            PATH,
            &mine,
            Some(json!({"key": "other", "data": 1})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = app.call(Method::PUT, PATH, &mine, Some(json!([1]))).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = app
        .call(Method::PUT, PATH, &mine, Some(json!({"nope": 1})))
        .await;
    assert_eq!(s, 422, "{b}");
}

#[tokio::test]
async fn the_same_key_is_each_owners_own() {
    let app = spawn().await;
    let (mine, _) = app.admin.clone();
    let (theirs, _) = app.other.clone();
    let (s, _) = app
        .call(Method::PUT, PATH, &mine, Some(json!({"data": "mine"})))
        .await;
    assert_eq!(s, 201);
    let (s, _) = app.get(PATH, &theirs).await;
    assert_eq!(s, 404, "not theirs to read");
    let (s, b) = app
        .call(Method::PUT, PATH, &theirs, Some(json!({"data": "theirs"})))
        .await;
    assert_eq!(s, 201, "their own document of that key: {b}");
    let (_, b) = app.get(PATH, &mine).await;
    assert_eq!(b["data"]["data"], "mine");
    let (_, b) = app.get(PATH, &theirs).await;
    assert_eq!(b["data"]["data"], "theirs");
}

#[tokio::test]
async fn the_routes_are_documented() {
    let app = spawn().await;
    let r = app
        .client
        .get(app.at("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    let doc: serde_json::Value = r.json().await.unwrap();
    for (path, method) in [
        ("/api/v1/docsai/json_store/{key}", "get"),
        ("/api/v1/docsai/json_store/{key}", "put"),
        ("/api/v1/docsai/api_collections/import", "post"),
        ("/api/v1/docsai/api_collections/{id}/export", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    // Every route the app declares is documented (its contract is written once).
    use bucketbase_server::app::App;
    for routed in bucketbase_docsai::Docsai.routes().routed() {
        assert!(
            doc["paths"][&routed.path].is_object(),
            "{} missing",
            routed.path
        );
    }
    // And the document, docsai's paths in it, is valid OpenAPI 3.1.
    const OAS_31_SCHEMA: &str =
        include_str!("../../../../server/tests/support/openapi-3.1-schema.json");
    let oas: serde_json::Value = serde_json::from_str(OAS_31_SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&oas).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .take(5)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}
