//! docsai's admin pages over real HTTP, for what a browser test cannot show well: the
//! Postman upload form passes the CSRF rule of every admin form before the import API
//! sees a byte, and a workflow's pages follow docsai's owner rule (another SuperAdmin's
//! workflow, its executions and its logs are 404 pages, never a 500 for an odd id).

use reqwest::Method;
use reqwest::redirect::Policy;
use serde_json::json;

use crate::support::{TestApp, id, spawn};

const CSRF: &str = "0123456789abcdef";
const BOUNDARY: &str = "docsai-admin-test-boundary";

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// A multipart body: the file, the dry-run box when asked, the CSRF field when given.
fn form(file: &[u8], dry_run: bool, csrf: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    let mut text = |name: &str, value: &str| {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    };
    if dry_run {
        text("dry_run", "true");
    }
    if let Some(t) = csrf {
        text("csrf_token", t);
    }
    body.extend_from_slice(
        format!("--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"pets.json\"\r\ncontent-type: application/json\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn postman() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "info": {"name": "Pets", "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"},
        "item": [{"name": "List pets", "request": {"method": "GET", "url": "https://pets.example/pets"}}]
    }))
    .unwrap()
}

async fn upload(app: &TestApp, token: &str, body: Vec<u8>) -> (u16, String) {
    let r = browser()
        .post(app.at("/admin/docsai/postman"))
        .header("cookie", format!("access_token={token}; csrf_token={CSRF}"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn collections(app: &TestApp, token: &str) -> usize {
    let (_, b) = app.get("/api/v1/api_collections", token).await;
    b["data"].as_array().unwrap().len()
}

#[tokio::test]
async fn the_postman_form_needs_the_csrf_token() {
    let app = spawn().await;
    let token = app.admin.0.clone();

    let (status, html) = upload(&app, &token, form(&postman(), false, None)).await;
    assert_eq!(status, 403);
    assert!(html.contains("csrf_failed"));
    let (status, _) = upload(
        &app,
        &token,
        form(&postman(), false, Some("not-the-cookie")),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(collections(&app, &token).await, 0, "nothing imported");

    // A dry run reports and writes nothing; the import writes one collection.
    let (status, html) = upload(&app, &token, form(&postman(), true, Some(CSRF))).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("nothing was written"));
    assert_eq!(collections(&app, &token).await, 0);
    let (status, html) = upload(&app, &token, form(&postman(), false, Some(CSRF))).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Imported pets.json"));
    assert_eq!(collections(&app, &token).await, 1);

    // A file of the wrong shape: the API's status and code on the form, not a 500.
    let (status, html) = upload(&app, &token, form(b"[1, 2", false, Some(CSRF))).await;
    assert_eq!(status, 400);
    assert!(html.contains("not_json") && html.contains("pets.json was not imported"));
}

#[tokio::test]
async fn a_workflows_pages_are_its_owners_alone() {
    let app = spawn().await;
    let (owner, other) = (app.admin.0.clone(), app.other.0.clone());
    let workflow = app
        .create(&owner, "workflows", json!({"name": "Nightly"}))
        .await;
    let w = id(&workflow);
    let (s, exec) = app
        .call(
            Method::POST,
            &format!("/api/v1/workflows/{w}/executions"),
            &owner,
            Some(json!({"status": "running"})),
        )
        .await;
    assert_eq!(s, 201, "{exec}");
    let e = exec["data"]["id"].as_str().unwrap().to_string();
    let (s, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/workflows/{w}/executions/{e}/logs"),
            &owner,
            Some(json!({"message": "started"})),
        )
        .await;
    assert_eq!(s, 201);

    let page = |token: String, path: String| {
        let url = app.at(&path);
        async move {
            let r = browser()
                .get(url)
                .header("cookie", format!("access_token={token}"))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let workflow_page = format!("/admin/docsai/workflows/{w}");
    let execution_page = format!("/admin/docsai/workflows/{w}/executions/{e}");
    let (s, html) = page(owner.clone(), workflow_page.clone()).await;
    assert_eq!(s, 200);
    assert!(html.contains("Nightly") && html.contains("running"));
    let (s, html) = page(owner.clone(), execution_page.clone()).await;
    assert_eq!(s, 200);
    assert!(html.contains("started"));
    // The feed the page follows starts at the position its lines were read at.
    let html = html.replace("&#x2f;", "/").replace("&amp;", "&");
    let seq = app.db.snapshot().seq().get();
    assert!(
        html.contains(&format!(
            "/api/v1/workflows/events?record_id={w}&since={seq}\""
        )),
        "{html}"
    );

    for path in [
        &workflow_page,
        &execution_page,
        &"/admin/docsai/workflows".to_string(),
    ] {
        let (s, html) = page(other.clone(), path.clone()).await;
        if path.ends_with("/workflows") {
            assert_eq!(s, 200);
            assert!(!html.contains("Nightly"), "another owner's list");
        } else {
            assert_eq!(s, 404, "{path}");
            assert!(!html.contains("started") && !html.contains("running"));
        }
    }
    // Odd ids and page numbers are answered, not failed.
    for path in [
        format!("/admin/docsai/workflows/{w}/executions/a%2Fb%3Fc%20d"),
        format!("/admin/docsai/workflows/{w}/executions/{e}?page=-3"),
        format!("/admin/docsai/workflows/{w}?page=x"),
        "/admin/docsai/workflows/not-an-id".to_string(),
    ] {
        let (s, _) = page(owner.clone(), path.clone()).await;
        assert!(s == 200 || s == 400 || s == 404, "{path}: {s}");
    }
}
