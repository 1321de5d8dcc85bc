//! A Postman v2.1 collection of `requests` requests, shaped like a large real one:
//! folders three deep (10 top-level folders of 5 folders, each with a `v2` folder
//! holding half of its requests), every body mode (none, raw JSON, urlencoded,
//! formdata with a file, file, GraphQL), auth at the collection (bearer), on every
//! third folder (basic), on some requests (API key, OAuth 2, none, inherit), headers,
//! URLs with query parameters and path variables, test scripts, and saved responses
//! (one per request, two on every fourth).

use serde_json::{Value, json};

pub const POSTMAN_ID: &str = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9";

const TOP: usize = 10;
const SUB: usize = 5;

/// The collection file's bytes.
pub fn collection(requests: usize) -> Vec<u8> {
    let per_leaf = requests.div_ceil(TOP * SUB);
    let mut next = 0;
    let mut top = Vec::new();
    for t in 0..TOP {
        let mut subs = Vec::new();
        for s in 0..SUB {
            let mut items = Vec::new();
            let mut deeper = Vec::new();
            for k in 0..per_leaf {
                if next == requests {
                    break;
                }
                let item = request(next, &format!("area{t}/part{s}"));
                if k < per_leaf / 2 {
                    items.push(item);
                } else {
                    deeper.push(item);
                }
                next += 1;
            }
            items.push(json!({"name": "v2", "description": "Version 2 endpoints", "item": deeper}));
            let mut folder = json!({"name": format!("Part {s}"), "item": items});
            if (t * SUB + s).is_multiple_of(3) {
                folder["auth"] = json!({"type": "basic", "basic": [
                    {"key": "username", "value": format!("svc-{t}-{s}"), "type": "string"},
                    {"key": "password", "value": format!("folder-secret-{t}-{s}"), "type": "string"}]});
            }
            subs.push(folder);
        }
        top.push(json!({
            "name": format!("Area {t}"),
            "description": format!("Endpoints of area {t}"),
            "event": [{"listen": "prerequest", "script": {"type": "text/javascript",
                       "exec": [format!("pm.variables.set('area', {t});")]}}],
            "item": subs,
        }));
    }
    let file = json!({
        "info": {
            "_postman_id": POSTMAN_ID,
            "name": format!("Benchmark API ({requests} requests)"),
            "description": "A large generated collection for the docsai benchmark.",
            "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
        },
        "auth": {"type": "bearer", "bearer": [
            {"key": "token", "value": "collection-bearer-secret", "type": "string"}]},
        "variable": [
            {"key": "base", "value": "https://api.example.com", "type": "string"},
            {"key": "apiSecret", "value": "collection-variable-secret", "type": "secret"}
        ],
        "event": [{"listen": "test", "script": {"type": "text/javascript",
                   "exec": ["pm.test('status', () => pm.response.to.be.success);"]}}],
        "item": top,
    });
    serde_json::to_vec_pretty(&file).expect("a JSON value serializes")
}

fn request(i: usize, path: &str) -> Value {
    let methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "POST"];
    let method = methods[i % methods.len()];
    let mut request = json!({
        "method": method,
        "header": [
            {"key": "Accept", "value": "application/json"},
            {"key": "X-Request-Id", "value": format!("{{{{$guid}}}}-{i}")},
            {"key": "X-Off", "value": "1", "disabled": true}
        ],
        "url": {
            "raw": format!("{{{{base}}}}/v1/{path}/items/:id?page=2&q=term{i}"),
            "host": ["{{base}}"],
            "path": ["v1", path, "items", ":id"],
            "query": [{"key": "page", "value": "2"}, {"key": "q", "value": format!("term{i}")}],
            "variable": [{"key": "id", "value": i.to_string(), "description": "item id"}]
        },
        "description": format!("Request {i}: does the thing number {i} to the {path} items."),
    });
    if let Some(body) = body(i) {
        request["body"] = body;
    }
    match i % 14 {
        0 => {
            request["auth"] = json!({"type": "apikey", "apikey": [
                {"key": "key", "value": "X-Api-Key", "type": "string"},
                {"key": "value", "value": format!("request-apikey-secret-{i}"), "type": "string"},
                {"key": "in", "value": "header", "type": "string"}]})
        }
        5 => {
            request["auth"] = json!({"type": "oauth2", "oauth2": [
                {"key": "accessToken", "value": format!("request-oauth-secret-{i}"), "type": "string"},
                {"key": "tokenType", "value": "Bearer", "type": "string"},
                {"key": "addTokenTo", "value": "header", "type": "string"}]})
        }
        9 => request["auth"] = json!({"type": "noauth"}),
        _ => {}
    }
    let mut item = json!({
        "name": format!("{method} item {i}"),
        "id": format!("req-{i}"),
        "request": request,
        "response": responses(i, method),
    });
    if i.is_multiple_of(5) {
        item["event"] = json!([{"listen": "test", "script": {"type": "text/javascript", "exec": [
            "const body = pm.response.json();",
            format!("pm.test('item {i}', () => pm.expect(body.id).to.eql({i}));")]}}]);
    }
    item
}

/// Every body mode in turn (GET and DELETE send none).
fn body(i: usize) -> Option<Value> {
    Some(match i % 6 {
        1 => json!({"mode": "raw",
                    "raw": format!("{{\n  \"name\": \"Item {i}\",\n  \"tags\": [\"a\", \"b\"],\n  \"count\": {i}\n}}"),
                    "options": {"raw": {"language": "json"}}}),
        2 => json!({"mode": "urlencoded", "urlencoded": [
                    {"key": "name", "value": format!("item{i}"), "type": "text"},
                    {"key": "flag", "value": "1", "type": "text", "disabled": true}]}),
        3 => json!({"mode": "formdata", "formdata": [
                    {"key": "text", "value": "hello", "type": "text"},
                    {"key": "file", "src": format!("/tmp/upload-{i}.png"), "type": "file"}]}),
        5 if i % 12 == 5 => json!({"mode": "file", "file": {"src": format!("/tmp/blob-{i}.bin")}}),
        5 => json!({"mode": "graphql", "graphql": {
                    "query": format!("query Item {{ item(id: {i}) {{ id name tags }} }}"),
                    "variables": format!("{{\"id\": {i}}}")}}),
        _ => return None,
    })
}

fn responses(i: usize, method: &str) -> Value {
    let ok = json!({
        "name": "200 OK",
        "originalRequest": {"method": method, "header": [],
                            "url": {"raw": format!("https://api.example.com/v1/items/{i}"),
                                    "host": ["api", "example", "com"], "path": ["v1", "items", i.to_string()]}},
        "status": "OK",
        "code": 200,
        "_postman_previewlanguage": "json",
        "header": [{"key": "Content-Type", "value": "application/json"},
                   {"key": "X-Trace", "value": format!("trace-{i}")}],
        "cookie": [],
        "responseTime": 10 + i % 90,
        "body": json!({"id": i, "name": format!("Item {i}"), "tags": ["a", "b"],
                       "owner": {"id": i % 17, "name": "Ann"}, "created_at": "2025-01-02T03:04:05Z"})
                 .to_string(),
    });
    if i.is_multiple_of(4) {
        json!([ok, {"name": "404", "code": 404, "status": "Not Found",
                    "header": "Content-Type: text/plain", "body": "no such item"}])
    } else {
        json!([ok])
    }
}
