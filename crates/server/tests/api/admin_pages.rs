//! The admin pages over real HTTP: a hidden record is a 404 page, the API's refusals of
//! an edit are shown beside the fields they name, nested arrays are paged, purge is the
//! SuperAdmin's and asks for confirmation.

use reqwest::Method;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use crate::admin::{Browser, location};
use crate::support::{ADMIN, TestApp, notes_definition, spawn_app};

const PASSWORD: &str = "a long enough password";

/// A user with the role `user`: their token and uuid.
async fn member(app: &TestApp, email: &str) -> (String, String) {
    app.users
        .create_user(email, PASSWORD, "user", "test")
        .await
        .unwrap();
    let token = app.token(email, PASSWORD).await;
    let (_, me, _) = app
        .call(Method::GET, "/api/auth/me", Some(&token), None)
        .await;
    (token, me["data"]["uuid"].as_str().unwrap().to_string())
}

/// Creates a record through the API; its id.
async fn create(app: &TestApp, token: &str, collection: &str, body: Value) -> String {
    let path = format!("/api/v1/{collection}");
    let (status, answer, _) = app.call(Method::POST, &path, Some(token), Some(body)).await;
    assert_eq!(status, 201, "{answer}");
    answer["data"]["id"].as_str().unwrap().to_string()
}

/// A record through the API: the status and the record.
async fn read(app: &TestApp, token: &str, collection: &str, id: &str) -> (u16, Value) {
    let path = format!("/api/v1/{collection}/{id}");
    let (status, answer, _) = app.call(Method::GET, &path, Some(token), None).await;
    (status, answer["data"].clone())
}

fn is_html(headers: &reqwest::header::HeaderMap) -> bool {
    headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html")
}

#[tokio::test]
async fn a_record_the_user_may_not_see_is_a_404_page() {
    let app = spawn_app().await;
    app.define(&app.admin().await, notes_definition()).await;
    let (ann, ann_uuid) = member(&app, "ann@example.com").await;
    member(&app, "bob@example.com").await;
    let id = create(
        &app,
        &ann,
        "notes",
        json!({"title": "Ann's", "owner": ann_uuid}),
    )
    .await;
    let path = format!("/admin/c/notes/{id}");

    let mut owner = Browser::new(&app);
    owner.login("ann@example.com", PASSWORD).await;
    let (status, body, _) = owner.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Ann&#x27;s"), "{body}");

    let mut other = Browser::new(&app);
    other.login("bob@example.com", PASSWORD).await;
    let (status, body, headers) = other.get(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(is_html(&headers));
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
    let fields = [("csrf_token", csrf.as_str()), ("title", "Bob's now")];
    let (status, _, _) = other.post(&path, &fields, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_edit_refused_by_the_api_is_shown_beside_its_fields() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.define(&admin, notes_definition()).await;
    let first = create(&app, &admin, "notes", json!({"title": "First"})).await;
    let second = create(&app, &admin, "notes", json!({"title": "Second"})).await;
    let version = read(&app, &admin, "notes", &first).await.1["_version"].to_string();
    let mut b = Browser::new(&app);
    b.login(ADMIN.0, ADMIN.1).await;
    let csrf = b.csrf();
    let path = format!("/admin/c/notes/{first}");
    let edit = async |b: &mut Browser<'_>, title: &str| {
        let fields = [
            ("csrf_token", csrf.as_str()),
            ("_version", &version),
            ("title", title),
        ];
        b.post(&path, &fields, None).await
    };

    // 409: the unique title names the field and links the record in the way.
    let (status, body, _) = edit(&mut b, "Second").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("id=\"e-title\""), "{body}");
    let link = format!("&#x2f;admin&#x2f;c&#x2f;notes&#x2f;{second}\">");
    assert!(body.contains(&link), "{body}");
    assert!(
        body.contains("value=\"Second\""),
        "what was typed is kept: {body}"
    );

    // 422: a required field emptied.
    let (status, body, _) = edit(&mut b, "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("id=\"e-title\""), "{body}");

    // 412: someone else saved since the form was opened.
    let change = json!({"topic": "changed meanwhile"});
    let notes_first = format!("/api/v1/notes/{first}");
    app.call(Method::PATCH, &notes_first, Some(&admin), Some(change))
        .await;
    let (status, body, _) = edit(&mut b, "Mine").await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert!(body.contains("version_conflict"), "{body}");
    assert!(body.contains("Someone changed this record"), "{body}");
    let (_, note) = read(&app, &admin, "notes", &first).await;
    assert_eq!(note["title"], "First", "no refused edit was written");
}

#[tokio::test]
async fn nested_arrays_are_paged_on_the_record_page() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let runs = json!({"name": "runs",
        "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
        "nested": {"logs": {"schema": {"type": "object", "properties": {"line": {"type": "string"}}}}}});
    app.define(&admin, runs).await;
    let id = create(&app, &admin, "runs", json!({"name": "nightly"})).await;
    for i in 1..=25 {
        let line = json!({"line": format!("line-{i:02}")});
        create(&app, &admin, &format!("runs/{id}/logs"), line).await;
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
    let (ann, ann_uuid) = member(&app, "ann@example.com").await;
    let note = json!({"title": "Gone soon", "owner": ann_uuid});
    let id = create(&app, &ann, "notes", note).await;
    let record = format!("/admin/c/notes/{id}");
    let purge = format!("{record}/purge");

    // The owner may delete and restore, not purge: no purge link, and the API refuses.
    let mut owner = Browser::new(&app);
    owner.login("ann@example.com", PASSWORD).await;
    let (_, body, _) = owner.get(&record).await;
    assert!(
        body.contains(">Delete<") && !body.contains("Purge"),
        "{body}"
    );
    let csrf = owner.csrf();
    let fields = [("csrf_token", csrf.as_str()), ("confirm", "yes")];
    let (status, _, _) = owner.post(&purge, &fields, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let mut b = Browser::new(&app);
    b.login(ADMIN.0, ADMIN.1).await;
    let (status, body, _) = b.get(&purge).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("cannot be undone"), "{body}");
    let csrf = b.csrf();
    let (status, _, _) = b.post(&purge, &[("csrf_token", &csrf)], None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not confirmed");
    assert_eq!(read(&app, &admin, "notes", &id).await.0, 200, "still there");
    let fields = [("csrf_token", csrf.as_str()), ("confirm", "yes")];
    let (status, _, headers) = b.post(&purge, &fields, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/admin/trash?notice=purged");
    assert_eq!(read(&app, &admin, "notes", &id).await.0, 404);
}

/// The audit page links each event to the revert of its log entry; the revert page shows
/// the API's dry run, reverts on its form, and refuses to overwrite a later change unless
/// "revert over these changes" is ticked.
#[tokio::test]
async fn the_audit_page_offers_a_revert_with_its_dry_run() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.define(&admin, notes_definition()).await;
    let note = create(&app, &admin, "notes", json!({"title": "Wrong one"})).await;
    let (_, record) = read(&app, &admin, "notes", &note).await;
    let seq = record["_version"].as_u64().unwrap();

    let mut browser = Browser::new(&app);
    browser.login(ADMIN.0, ADMIN.1).await;
    let (status, audit, _) = browser.get("/admin/audit?collection=notes").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        audit.contains(&format!("revert?seq={seq}\">log entry {seq}")),
        "{audit}"
    );
    let page = format!("/admin/revert?seq={seq}");
    let (status, dry, _) = browser.get(&page).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert!(dry.contains("What the revert would change"), "{dry}");
    assert!(
        dry.contains("<td>notes</td><td>deleted</td><td>1</td>"),
        "{dry}"
    );
    assert_eq!(
        read(&app, &admin, "notes", &note).await.0,
        200,
        "a dry run writes nothing"
    );

    let csrf = browser.csrf();
    let seq_text = seq.to_string();
    let (status, done, _) = browser
        .post(
            "/admin/revert",
            &[("csrf_token", &csrf), ("seq", &seq_text)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(done.contains("Reverted at log position"), "{done}");
    let (_, after) = read(&app, &admin, "notes", &note).await;
    assert!(after.is_null() || !after["deleted_at"].is_null(), "{after}");

    // A change after the changeset is in the way: listed, refused, then forced.
    let other = create(&app, &admin, "notes", json!({"title": "Kept"})).await;
    let (_, record) = read(&app, &admin, "notes", &other).await;
    let seq = record["_version"].as_u64().unwrap().to_string();
    let path = format!("/api/v1/notes/{other}");
    let (status, _, _) = app
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"topic": "later"})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, dry, _) = browser.get(&format!("/admin/revert?seq={seq}")).await;
    assert!(
        dry.contains("Changed since") && dry.contains("<td>topic</td>"),
        "{dry}"
    );
    let (status, refused, _) = browser
        .post(
            "/admin/revert",
            &[("csrf_token", &csrf), ("seq", &seq)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(refused.contains("revert_conflict"), "{refused}");
    assert_eq!(
        read(&app, &admin, "notes", &other).await.1["topic"],
        "later"
    );
    let (status, forced, _) = browser
        .post(
            "/admin/revert",
            &[("csrf_token", &csrf), ("seq", &seq), ("force", "true")],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{forced}");
    let (_, after) = read(&app, &admin, "notes", &other).await;
    assert!(after.is_null() || !after["deleted_at"].is_null(), "{after}");
}
