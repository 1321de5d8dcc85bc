//! `GET /api/openapi.json` and `GET /api/docs` over HTTP: a valid OpenAPI 3.1 document
//! built from the collections defined at request time, and the docs page under the
//! server's unchanged Content-Security-Policy.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

/// The OpenAPI 3.1 document schema (OpenAPI Initiative, 2022-10-07, Apache-2.0), as
/// shipped by the openapi-spec-validator package.
const OAS_31_SCHEMA: &str = include_str!("../support/openapi-3.1-schema.json");

fn tasks_definition() -> Value {
    json!({
        "name": "tasks",
        "description": "Things to do",
        "schema": {"type": "object", "required": ["title"], "additionalProperties": false,
            "properties": {"title": {"type": "string"}, "done": {"type": "boolean"},
                "due": {"type": "string", "format": "date"},
                "kind": {"enum": ["a", "b"]}, "code": {"const": "x"}}},
        "nested": {"comments": {"schema": {"type": "object", "required": ["text"],
            "properties": {"text": {"type": "string"}}}, "max_items": 50,
            "nested": {"reactions": {"schema": {"type": "object"}}}}},
        "rules": {"list": "auth.role == 'staff'", "view": "auth.role == 'staff'"}
    })
}

async fn document(app: &TestApp) -> Value {
    let r = app
        .client
        .get(app.at("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    r.json().await.unwrap()
}

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

fn pointer<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

#[tokio::test]
async fn openapi_document_is_valid_and_follows_the_collections() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.define(&admin, notes_definition()).await;
    app.define(&admin, tasks_definition()).await;
    let doc = document(&app).await;

    // Valid against the OpenAPI 3.1 document schema.
    let oas: Value = serde_json::from_str(OAS_31_SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&oas).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));

    // Every reference resolves; operation ids are unique.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 50);
    for r in &all {
        assert!(pointer(&doc, r).is_some(), "dangling {r}");
    }
    let mut ids = BTreeSet::new();
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_string()), "{id} twice ({method} {path})");
        }
    }

    // The collection's schema, verbatim (keywords utoipa does not model included).
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["tasks"], tasks_definition()["schema"]);
    assert_eq!(schemas["notes"], notes_definition()["schema"]);
    // Each component schema compiles as JSON Schema 2020-12 (with its references into
    // the document resolved) and accepts what it should.
    let component = |name: &str| {
        let wrapped = json!({"components": doc["components"], "$ref": format!("#/components/schemas/{name}")});
        jsonschema::validator_for(&wrapped)
            .unwrap_or_else(|e| panic!("components.schemas.{name} is not a JSON Schema: {e}"))
    };
    for name in schemas.as_object().unwrap().keys() {
        component(name);
    }
    // What the API really answers validates against `{name}.record`, even where the
    // collection's schema forbids other properties.
    let (_, task, _) = app
        .call(
            Method::POST,
            "/api/v1/tasks",
            Some(&admin),
            Some(json!({"title": "T", "done": false})),
        )
        .await;
    let task_id = task["data"]["id"].as_str().unwrap().to_string();
    let (s, item, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/tasks/{task_id}/comments"),
            Some(&admin),
            Some(json!({"text": "hi"})),
        )
        .await;
    assert_eq!(s, 201, "{item}");
    let (_, task, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/tasks/{task_id}"),
            Some(&admin),
            None,
        )
        .await;
    let tasks_record = component("tasks.record");
    assert!(tasks_record.is_valid(&task["data"]), "{}", task["data"]);
    assert!(
        !tasks_record.is_valid(&json!({"id": "t", "_version": 1})),
        "title is required"
    );
    assert!(!tasks_record.is_valid(&json!({"id": "t", "_version": 1, "title": "T", "other": 1})));

    // Paths of a defined collection, with its schema referenced.
    let create = &doc["paths"]["/api/v1/notes"]["post"];
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/notes"
    );
    let created = &create["responses"]["201"];
    assert_eq!(
        created["content"]["application/json"]["schema"]["properties"]["data"]["$ref"],
        "#/components/schemas/notes.record"
    );
    assert!(created["headers"]["ETag"].is_object());
    let list = &doc["paths"]["/api/v1/notes"]["get"];
    let params: BTreeSet<&str> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "filter",
        "sort",
        "page",
        "per_page",
        "include_deleted",
        "only_deleted",
        "owner",
        "topic",
    ] {
        assert!(params.contains(p), "list parameter {p} missing: {params:?}");
    }
    assert_eq!(
        list["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["meta"]["$ref"],
        "#/components/schemas/ListMeta"
    );
    let one = &doc["paths"]["/api/v1/notes/{id}"];
    for method in ["get", "patch", "put", "delete"] {
        assert!(one[method].is_object(), "{method} /api/v1/notes/{{id}}");
        assert!(one[method]["responses"]["404"].is_object());
    }
    let header_names = |op: &Value| -> Vec<String> {
        op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "header")
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(header_names(&one["patch"]), ["If-Match"]);
    assert_eq!(
        one["patch"]["responses"]["412"]["$ref"],
        "#/components/responses/PreconditionFailed"
    );
    assert!(
        one["delete"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "purge")
    );
    assert!(doc["paths"]["/api/v1/notes/{id}/restore"]["post"].is_object());
    assert!(doc["paths"]["/api/v1/notes/{id}/history"]["get"].is_object());
    // No soft delete on tasks: no restore, no deleted filters.
    assert!(doc["paths"].get("/api/v1/tasks/{id}/restore").is_none());
    // Nested arrays get item routes.
    let comments = &doc["paths"]["/api/v1/tasks/{id}/comments"];
    assert!(comments["get"].is_object() && comments["post"].is_object());
    let item = &doc["paths"]["/api/v1/tasks/{id}/comments/{item_id}"];
    assert!(item["patch"].is_object() && item["delete"].is_object());
    assert_eq!(
        comments["post"]["requestBody"]["content"]["application/json"]["schema"],
        tasks_definition()["nested"]["comments"]["schema"]
    );

    // Fixed routes; public ones say so; system collections and access rules stay out.
    for path in [
        "/api/auth/login",
        "/api/auth/me",
        "/api/v1/collections",
        "/api/v1/audit",
        "/api/v1/audit/verify",
        "/healthz",
        "/metrics",
        "/api/openapi.json",
        "/api/docs",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    assert_eq!(
        doc["paths"]["/api/auth/login"]["post"]["security"],
        json!([{}])
    );
    assert!(
        doc["paths"]["/api/auth/me"]["get"]
            .get("security")
            .is_none()
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let text = doc.to_string();
    assert!(
        !paths.keys().any(|p| p.contains("/_")),
        "system collections"
    );
    assert!(
        !text.contains("auth.role == 'staff'"),
        "access rules are not published"
    );
    assert!(!text.contains("record.owner == auth.uuid"));

    // Built at request time: a new collection appears without a restart.
    app.define(
        &admin,
        json!({"name": "later", "schema": {"type": "object"}}),
    )
    .await;
    let doc = document(&app).await;
    assert!(doc["paths"]["/api/v1/later/{id}"]["get"].is_object());
}

#[tokio::test]
async fn docs_page_is_served_from_this_origin_under_the_default_csp() {
    let app = spawn_app().await;
    let get = |path: &str| app.client.get(app.at(path)).send();
    let page = get("/api/docs").await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(
        headers["content-security-policy"], "default-src 'self'; frame-ancestors 'none'",
        "the page needs no CSP exception"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script src="/api/docs/docs.js""#));
    assert!(!html.contains("https://"), "no third-party resources");
    for (path, kind) in [
        ("/api/docs/docs.js", "text/javascript"),
        ("/api/docs/docs.css", "text/css"),
    ] {
        let r = get(path).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        let body = r.text().await.unwrap();
        assert!(
            !body.contains("https://"),
            "{path} loads nothing from elsewhere"
        );
    }
    // Public, like health: no token needed, and the JSON errors stay enveloped elsewhere.
    let (s, body, _) = app.call(Method::GET, "/api/docs/nope", None, None).await;
    assert_eq!((s, body["success"].as_bool()), (404, Some(false)));
}

/// The contract is written once per resource (`contract::Resource`): every path the
/// server routes is in the document (the generic record routes once per collection, with
/// the collection's name), except those a resource routes undocumented with a reason, and
/// every documented path is routed.
#[tokio::test]
async fn every_routed_path_is_documented_and_every_documented_path_routed() {
    use bucketbase_server::contract::Documented;

    let app = spawn_app().await;
    let admin = app.admin().await;
    // notes has soft delete (restore), tasks a nested array (comments).
    app.define(&admin, notes_definition()).await;
    app.define(&admin, tasks_definition()).await;
    let doc = document(&app).await;
    let paths = doc["paths"].as_object().unwrap();
    let resource = bucketbase_server::routes::resource();
    let mut fixed = BTreeSet::new();
    for routed in resource.routed() {
        match &routed.documented {
            Documented::Here => {
                assert!(paths.contains_key(&routed.path), "{} missing", routed.path);
                fixed.insert(routed.path.clone());
            }
            Documented::PerCollection => {
                let found = ["notes", "tasks"].iter().any(|c| {
                    let path = routed
                        .path
                        .replace("{collection}", c)
                        .replace("{nested}", "comments")
                        .replace("{sub}", "reactions");
                    paths.contains_key(&path)
                });
                assert!(found, "{} is documented for no collection", routed.path);
            }
            Documented::Not(why) => assert!(!why.is_empty(), "{}", routed.path),
        }
    }
    for path in paths.keys() {
        let per_collection = path.starts_with("/api/v1/notes") || path.starts_with("/api/v1/tasks");
        assert!(
            per_collection || fixed.contains(path),
            "{path} is documented but not routed"
        );
    }
    assert!(fixed.contains("/api/auth/login") && fixed.contains("/metrics"));
}
