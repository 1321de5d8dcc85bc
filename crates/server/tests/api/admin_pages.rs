//! The admin pages over real HTTP: a hidden record is a 404 page, the API's refusals of
//! an edit are shown beside the fields they name, nested arrays are paged.

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::json;

use crate::admin::Browser;
use crate::support::{ADMIN, notes_definition, spawn_app};

#[tokio::test]
async fn a_record_the_user_may_not_see_is_a_404_page() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.define(&admin, notes_definition()).await;
    for email in ["ann@example.com", "bob@example.com"] {
        app.users
            .create_user(email, "a long enough password", "user", "test")
            .await
            .unwrap();
    }
    let ann = app.token("ann@example.com", "a long enough password").await;
    let (_, me, _) = app
        .call(reqwest::Method::GET, "/api/auth/me", Some(&ann), None)
        .await;
    let (status, note, _) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/notes",
            Some(&ann),
            Some(json!({"title": "Ann's", "owner": me["data"]["uuid"]})),
        )
        .await;
    assert_eq!(status, 201, "{note}");
    let path = format!("/admin/c/notes/{}", note["data"]["id"].as_str().unwrap());

    let mut owner = Browser::new(&app);
    owner
        .login("ann@example.com", "a long enough password")
        .await;
    let (status, body, _) = owner.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("Ann&#x27;s") || body.contains("Ann's"),
        "{body}"
    );

    let mut other = Browser::new(&app);
    other
        .login("bob@example.com", "a long enough password")
        .await;
    let (status, body, headers) = other.get(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        headers[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        body.contains("Not found") && !body.contains("Ann"),
        "{body}"
    );
    // Nor does its list show it, nor its edit form take a change.
    let (_, body, _) = other.get("/admin/c/notes").await;
    assert!(
        body.contains("0 records") && !body.contains("Ann"),
        "{body}"
    );
    let csrf = other.csrf();
    let (status, _, _) = other
        .post(
            &path,
            &[("csrf_token", &csrf), ("title", "Bob's now")],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_edit_refused_by_the_api_is_shown_beside_its_fields() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.define(&admin, notes_definition()).await;
    let mut ids = Vec::new();
    for title in ["First", "Second"] {
        let (_, note, _) = app
            .call(
                reqwest::Method::POST,
                "/api/v1/notes",
                Some(&admin),
                Some(json!({"title": title})),
            )
            .await;
        ids.push(note["data"]["id"].as_str().unwrap().to_string());
    }
    let (_, note, _) = app
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/notes/{}", ids[0]),
            Some(&admin),
            None,
        )
        .await;
    let version = note["data"]["_version"].to_string();
    let mut b = Browser::new(&app);
    b.login(ADMIN.0, ADMIN.1).await;
    let csrf = b.csrf();
    let path = format!("/admin/c/notes/{}", ids[0]);

    // 409: the unique title names the field and links the record in the way.
    let (status, body, _) = b
        .post(
            &path,
            &[
                ("csrf_token", &csrf),
                ("_version", &version),
                ("title", "Second"),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("id=\"e-title\""), "{body}");
    assert!(
        body.contains(&format!("&#x2f;admin&#x2f;c&#x2f;notes&#x2f;{}\">", ids[1])),
        "{body}"
    );
    assert!(
        body.contains("value=\"Second\""),
        "what was typed is kept: {body}"
    );

    // 422: a required field emptied.
    let (status, body, _) = b
        .post(
            &path,
            &[("csrf_token", &csrf), ("_version", &version), ("title", "")],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("id=\"e-title\""), "{body}");

    // 412: someone else saved since the form was opened.
    app.call(
        reqwest::Method::PATCH,
        &format!("/api/v1/notes/{}", ids[0]),
        Some(&admin),
        Some(json!({"topic": "changed meanwhile"})),
    )
    .await;
    let (status, body, _) = b
        .post(
            &path,
            &[
                ("csrf_token", &csrf),
                ("_version", &version),
                ("title", "Mine"),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert!(
        body.contains("version_conflict") && body.contains("Someone changed this record"),
        "{body}"
    );
    let (_, note, _) = app
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/notes/{}", ids[0]),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        note["data"]["title"], "First",
        "no refused edit was written"
    );
}

#[tokio::test]
async fn nested_arrays_are_paged_on_the_record_page() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.define(
        &admin,
        json!({"name": "runs", "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
               "nested": {"logs": {"schema": {"type": "object", "properties": {"line": {"type": "string"}}}}}}),
    )
    .await;
    let (_, run, _) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/runs",
            Some(&admin),
            Some(json!({"name": "nightly"})),
        )
        .await;
    let id = run["data"]["id"].as_str().unwrap().to_string();
    for i in 1..=25 {
        let (status, _, _) = app
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/runs/{id}/logs"),
                Some(&admin),
                Some(json!({"line": format!("line-{i:02}")})),
            )
            .await;
        assert_eq!(status, 201);
    }
    let mut b = Browser::new(&app);
    b.login(ADMIN.0, ADMIN.1).await;
    let (_, first, _) = b.get(&format!("/admin/c/runs/{id}")).await;
    assert!(
        first.contains("logs (25)") && first.contains("Page 1 of 2"),
        "{first}"
    );
    assert!(first.contains("line-20") && !first.contains("line-21"));
    let (_, second, _) = b
        .get(&format!("/admin/c/runs/{id}?nested_page=logs:2"))
        .await;
    assert!(second.contains("line-21") && second.contains("line-25"));
    assert!(!second.contains("line-20"));
}

#[tokio::test]
async fn purge_is_offered_to_the_super_admin_only_and_asks_for_confirmation() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.define(&admin, notes_definition()).await;
    app.users
        .create_user("ann@example.com", "a long enough password", "user", "test")
        .await
        .unwrap();
    let ann = app.token("ann@example.com", "a long enough password").await;
    let (_, me, _) = app
        .call(reqwest::Method::GET, "/api/auth/me", Some(&ann), None)
        .await;
    let (_, note, _) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/notes",
            Some(&ann),
            Some(json!({"title": "Gone soon", "owner": me["data"]["uuid"]})),
        )
        .await;
    let id = note["data"]["id"].as_str().unwrap().to_string();
    let record = format!("/admin/c/notes/{id}");
    let purge = format!("{record}/purge");

    // The owner may delete and restore, not purge: no purge link, and the API refuses.
    let mut owner = Browser::new(&app);
    owner
        .login("ann@example.com", "a long enough password")
        .await;
    let (_, body, _) = owner.get(&record).await;
    assert!(
        body.contains(">Delete<") && !body.contains("Purge"),
        "{body}"
    );
    let csrf = owner.csrf();
    let (status, _, _) = owner
        .post(&purge, &[("csrf_token", &csrf), ("confirm", "yes")], None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let mut b = Browser::new(&app);
    b.login(ADMIN.0, ADMIN.1).await;
    let (status, body, _) = b.get(&purge).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("cannot be undone"), "{body}");
    let csrf = b.csrf();
    let (status, _, _) = b.post(&purge, &[("csrf_token", &csrf)], None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not confirmed");
    let (status, _, _) = app
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/notes/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "still there");
    let (status, _, headers) = b
        .post(&purge, &[("csrf_token", &csrf), ("confirm", "yes")], None)
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        crate::admin::location(&headers),
        "/admin/trash?notice=purged"
    );
    let (status, _, _) = app
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/notes/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 404);
}
