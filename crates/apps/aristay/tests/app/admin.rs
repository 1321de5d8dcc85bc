//! aristay's admin pages over real HTTP, for what a browser test cannot show well: the
//! uploads (a task photo, a workbook) pass the CSRF rule of every admin form before the
//! API sees a byte, a too-large upload is a 413 page that writes nothing, and a stashed
//! workbook is its uploader's alone.

use reqwest::multipart::{Form, Part};
use reqwest::redirect::Policy;

use crate::photos::{PNG, assigned_task};
use crate::support::*;

const CSRF: &str = "0123456789abcdef";

/// A browser-like client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// The admin session's cookies for `token`.
fn cookies(token: &str) -> String {
    format!("access_token={token}; csrf_token={CSRF}")
}

fn photo_form(csrf: Option<&str>, bytes: Vec<u8>) -> Form {
    let form = Form::new().part(
        "file",
        Part::bytes(bytes)
            .file_name("tap.png")
            .mime_str("image/png")
            .unwrap(),
    );
    match csrf {
        Some(t) => form.text("csrf_token", t.to_string()),
        None => form,
    }
}

#[tokio::test]
async fn a_photo_form_needs_the_csrf_token_and_its_size_limit() {
    let app = spawn().await;
    let (task, staff) = assigned_task(&app).await;
    let url = app.at(&format!("/admin/aristay/my-tasks/{task}/photo"));
    let post = |form: Form| {
        browser()
            .post(&url)
            .header("cookie", cookies(&staff))
            .multipart(form)
            .send()
    };

    // No token (and no same-origin Origin): refused, nothing stored.
    let r = post(photo_form(None, PNG.to_vec())).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("csrf_failed"));
    let r = post(photo_form(Some("not-the-cookie"), PNG.to_vec()))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Over the photo limit: a 413 page before anything reaches the API.
    let big = vec![0u8; bucketbase_aristay::routes::photos::MAX_IMAGE_BYTES + 128 * 1024];
    let r = post(photo_form(Some(CSRF), big)).await.unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("payload_too_large"));
    assert_eq!(app.count("task_images", "").await, 0);

    // With the token: stored through the photo API, then back to the list.
    let r = post(photo_form(Some(CSRF), PNG.to_vec())).await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/admin/aristay/my-tasks?notice=photo"
    );
    let images = app.list("task_images", &format!("task_id={task}")).await;
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["content_type"], "image/png");
    // The API's own checks hold behind the page: an HTML file is refused by type.
    let r = post(
        Form::new()
            .part(
                "file",
                Part::bytes(b"<html><script>alert(1)</script></html>".to_vec())
                    .file_name("x.png")
                    .mime_str("image/png")
                    .unwrap(),
            )
            .text("csrf_token", CSRF),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(app.count("task_images", "").await, 1);
}

#[tokio::test]
async fn an_uploaded_workbook_is_its_uploaders_alone() {
    let app = spawn().await;
    app.property("Property 01").await;
    let (other, _) = app.user("other.manager@example.com", "manager").await;
    let upload = Form::new()
        .part(
            "file",
            Part::bytes(workbook_bytes())
                .file_name("b.xlsx")
                .mime_str("application/octet-stream")
                .unwrap(),
        )
        .text("csrf_token", CSRF);
    let r = browser()
        .post(app.at("/admin/aristay/import"))
        .header("cookie", cookies(&app.manager))
        .multipart(upload)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let token = page
        .split("name=\"token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the mapping page carries the upload's token")
        .to_string();
    let mapping = crate::workbook::mapping().to_string();
    // A urlencoded form body (reqwest's `form` feature is off here).
    let body = reqwest::Url::parse_with_params(
        "http://form/",
        [
            ("csrf_token", CSRF),
            ("token", token.as_str()),
            ("mapping", mapping.as_str()),
            ("mode", "partial"),
            ("intent", "commit"),
        ],
    )
    .unwrap()
    .query()
    .unwrap()
    .to_string();
    let run = |who: &str| {
        browser()
            .post(app.at("/admin/aristay/import/run"))
            .header("cookie", cookies(who))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
    };
    // Another manager with the token: the upload is not theirs.
    let r = run(&other).await.unwrap();
    assert_eq!(r.status(), 410);
    assert_eq!(app.count("bookings", "").await, 0);
    // The uploader commits it.
    let r = run(&app.manager).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("created: 2"));
    assert_eq!(app.count("bookings", "").await, 2);
}

/// Two bookings of "Property 01" in the workbook module's format.
fn workbook_bytes() -> Vec<u8> {
    crate::workbook::xlsx(&crate::workbook::rows(2, 1))
}
