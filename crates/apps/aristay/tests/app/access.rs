//! The authorization matrix: role × aristay collection or route × expected status.
//!
//! Roles: SuperAdmin and manager see everything (only SuperAdmin purges and defines);
//! staff see and update only the tasks assigned to them (and upload their photos);
//! owners read only their properties and those properties' bookings, tasks, photos and
//! inventory. Anything else a role asks for about a record answers 404; a collection it
//! may not create in answers 403.

use reqwest::Method;
use serde_json::{Value, json};

use crate::photos::{PNG, photo};
use crate::support::*;

#[tokio::test]
async fn four_roles_over_every_collection_and_route() {
    let app = spawn().await;
    let (staff, staff_id) = app.user("sam@example.com", "staff").await;
    let (other_staff, _) = app.user("kim@example.com", "staff").await;
    let (owner, owner_id) = app.user("olga@example.com", "owner").await;
    let admin = app.admin.clone();
    let manager = app.manager.clone();

    let mine = app.property("Olga's flat").await;
    let theirs = app.property("Someone else's").await;
    let ownership = id(&app
        .create(
            "property_ownerships",
            json!({"property_id": mine, "user_id": owner_id}),
        )
        .await);
    let my_booking = id(&app
        .create(
            "bookings",
            json!({"property_id": mine, "check_in": "2026-07-01", "check_out": "2026-07-04"}),
        )
        .await);
    let their_booking = id(&app
        .create(
            "bookings",
            json!({"property_id": theirs, "check_in": "2026-07-01", "check_out": "2026-07-04"}),
        )
        .await);
    let my_task = id(&app
        .create(
            "tasks",
            json!({"title": "Clean", "property_id": mine, "assigned_to": staff_id}),
        )
        .await);
    let their_task = id(&app
        .create("tasks", json!({"title": "Fix tap", "property_id": theirs}))
        .await);
    let image = {
        let (s, b) = app
            .upload(
                &format!("/api/v1/aristay/tasks/{my_task}/images"),
                &staff,
                photo(PNG.to_vec(), "a.png", "image/png"),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        id(&b["data"])
    };
    let template = id(&app
        .create(
            "auto_task_templates",
            json!({"name": "T", "trigger": "check_out", "title_pattern": "Clean"}),
        )
        .await);
    let import_template = id(&app
        .create(
            "booking_import_templates",
            json!({"name": "I", "mapping": {"columns": {}}}),
        )
        .await);
    let checklist = id(&app
        .create(
            "checklist_templates",
            json!({"name": "C", "items": ["Towels"]}),
        )
        .await);
    let my_item = id(&app
        .create(
            "inventory_items",
            json!({"property_id": mine, "name": "Towels"}),
        )
        .await);
    let their_item = id(&app
        .create(
            "inventory_items",
            json!({"property_id": theirs, "name": "Towels"}),
        )
        .await);
    let staff_note = id(&app
        .create(
            "notifications",
            json!({"user_id": staff_id, "title": "New task"}),
        )
        .await);
    let staff_profile = id(&app
        .create("profiles", json!({"user_id": staff_id, "full_name": "Sam"}))
        .await);

    let roles: [(&str, &str); 5] = [
        ("SuperAdmin", &admin),
        ("manager", &manager),
        ("staff", &staff),
        ("other staff", &other_staff),
        ("owner", &owner),
    ];
    // (method, path, body, [SuperAdmin, manager, staff, other staff, owner])
    let one = |c: &str, id: &str| format!("/api/v1/{c}/{id}");
    let cases: Vec<(Method, String, Option<Value>, [u16; 5])> = vec![
        (
            Method::GET,
            one("properties", &mine),
            None,
            [200, 200, 404, 404, 200],
        ),
        (
            Method::GET,
            one("properties", &theirs),
            None,
            [200, 200, 404, 404, 404],
        ),
        (
            Method::PATCH,
            one("properties", &mine),
            Some(json!({"notes": "n"})),
            [200, 200, 404, 404, 404],
        ),
        (
            Method::POST,
            "/api/v1/properties".into(),
            Some(json!({"name": "New"})),
            [201, 409, 403, 403, 403],
        ),
        (
            Method::GET,
            one("property_ownerships", &ownership),
            None,
            [200, 200, 404, 404, 200],
        ),
        (
            Method::GET,
            one("bookings", &my_booking),
            None,
            [200, 200, 404, 404, 200],
        ),
        (
            Method::GET,
            one("bookings", &their_booking),
            None,
            [200, 200, 404, 404, 404],
        ),
        (
            Method::GET,
            format!("{}/history", one("bookings", &my_booking)),
            None,
            [200, 200, 404, 404, 200],
        ),
        (
            Method::PATCH,
            one("bookings", &my_booking),
            Some(json!({"guest_name": "G"})),
            [200, 200, 404, 404, 404],
        ),
        (
            Method::POST,
            "/api/v1/bookings".into(),
            Some(json!({"property_id": mine, "check_in": "2026-09-01", "check_out": "2026-09-02"})),
            [201, 409, 403, 403, 403],
        ),
        (
            Method::GET,
            one("tasks", &my_task),
            None,
            [200, 200, 200, 404, 200],
        ),
        (
            Method::GET,
            one("tasks", &their_task),
            None,
            [200, 200, 404, 404, 404],
        ),
        (
            Method::PATCH,
            one("tasks", &my_task),
            Some(json!({"status": "in_progress"})),
            [200, 200, 200, 404, 404],
        ),
        (
            Method::POST,
            format!("/api/v1/aristay/tasks/{their_task}/images"),
            None,
            [201, 201, 404, 404, 404],
        ),
        (
            Method::DELETE,
            one("tasks", &their_task),
            None,
            [200, 404, 404, 404, 404],
        ),
        (
            Method::GET,
            one("task_images", &image),
            None,
            [200, 200, 200, 404, 200],
        ),
        (
            Method::GET,
            format!("/api/v1/aristay/files/{image}"),
            None,
            [200, 200, 200, 404, 200],
        ),
        // The upload's file is the system's: nobody re-points a photo at another file.
        (
            Method::PATCH,
            one("task_images", &image),
            Some(json!({"file_key": "_files/0190a0a0-0000-7000-8000-000000000000.png"})),
            [400, 400, 400, 404, 404],
        ),
        (
            Method::POST,
            "/api/v1/auto_task_records".into(),
            Some(json!({"booking_id": my_booking, "template_id": template, "task_id": my_task})),
            [400, 403, 403, 403, 403],
        ),
        (
            Method::GET,
            one("auto_task_templates", &template),
            None,
            [200, 200, 404, 404, 404],
        ),
        (
            Method::GET,
            "/api/v1/auto_task_records".into(),
            None,
            [200, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            one("booking_import_templates", &import_template),
            None,
            [200, 200, 404, 404, 404],
        ),
        (
            Method::POST,
            "/api/v1/aristay/bookings/import".into(),
            None,
            [400, 400, 403, 403, 403],
        ),
        (
            Method::GET,
            one("checklist_templates", &checklist),
            None,
            [200, 200, 200, 200, 404],
        ),
        (
            Method::GET,
            one("inventory_items", &my_item),
            None,
            [200, 200, 404, 404, 200],
        ),
        (
            Method::GET,
            one("inventory_items", &their_item),
            None,
            [200, 200, 404, 404, 404],
        ),
        (
            Method::GET,
            one("notifications", &staff_note),
            None,
            [200, 200, 200, 404, 404],
        ),
        (
            Method::PATCH,
            one("notifications", &staff_note),
            Some(json!({"read": true})),
            [200, 200, 200, 404, 404],
        ),
        (
            Method::GET,
            one("profiles", &staff_profile),
            None,
            [200, 200, 200, 404, 404],
        ),
        (
            Method::PATCH,
            one("profiles", &staff_profile),
            Some(json!({"full_name": "Sam S"})),
            [200, 200, 200, 404, 404],
        ),
        (
            Method::DELETE,
            format!("{}?purge=true", one("checklist_templates", &checklist)),
            None,
            [200, 403, 403, 403, 403],
        ),
        (
            Method::GET,
            "/api/v1/audit".into(),
            None,
            [200, 403, 403, 403, 403],
        ),
    ];
    for (method, path, body, expected) in cases {
        for ((role, token), want) in roles.iter().zip(expected) {
            let (status, answer) = if path.ends_with("/images") {
                app.upload(&path, token, photo(PNG.to_vec(), "b.png", "image/png"))
                    .await
            } else if path.ends_with("/import") {
                app.upload(
                    &path,
                    token,
                    reqwest::multipart::Form::new().text("dry_run", "true"),
                )
                .await
            } else {
                app.call(method.clone(), &path, token, body.clone()).await
            };
            assert_eq!(status, want, "{role} {method} {path}: {answer}");
        }
    }

    // An update must stay within what the caller may update: staff cannot hand their
    // task to someone else, nor their profile to another user.
    for (path, body) in [
        (one("tasks", &my_task), json!({"assigned_to": "someone"})),
        (
            one("profiles", &staff_profile),
            json!({"user_id": "me-now"}),
        ),
    ] {
        let (s, b) = app.call(Method::PATCH, &path, &staff, Some(body)).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{path}: {b}"
        );
    }

    // Lists show each role only its own share.
    let listed = |token: &str, c: &str| {
        let (app, token, path) = (
            &app,
            token.to_string(),
            format!("/api/v1/{c}?per_page=1000"),
        );
        async move {
            let (s, b) = app.call(Method::GET, &path, &token, None).await;
            assert_eq!(s, 200, "{b}");
            let mut ids: Vec<String> = b["data"].as_array().unwrap().iter().map(id).collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(listed(&owner, "properties").await, vec![mine.clone()]);
    // (The matrix added a booking at the owner's property.)
    let at_mine: Vec<String> = {
        let mut ids: Vec<String> = app
            .list("bookings", &format!("property_id={mine}"))
            .await
            .iter()
            .map(id)
            .collect();
        ids.sort();
        ids
    };
    assert!(at_mine.contains(&my_booking) && at_mine.len() == 2);
    assert_eq!(listed(&owner, "bookings").await, at_mine);
    // (Including the automatic task of that booking, from template T.)
    let tasks_at_mine: Vec<String> = {
        let mut ids: Vec<String> = app
            .list("tasks", &format!("property_id={mine}"))
            .await
            .iter()
            .map(id)
            .collect();
        ids.sort();
        ids
    };
    assert!(tasks_at_mine.contains(&my_task) && tasks_at_mine.len() == 2);
    assert_eq!(listed(&owner, "tasks").await, tasks_at_mine);
    assert_eq!(listed(&staff, "tasks").await, vec![my_task.clone()]);
    assert!(listed(&other_staff, "tasks").await.is_empty());
    assert!(listed(&staff, "bookings").await.is_empty());
    assert!(listed(&owner, "auto_task_templates").await.is_empty());
    // Mine, theirs, and "New" from the matrix.
    assert_eq!(listed(&manager, "properties").await.len(), 3);

    // An owner who stops owning loses sight at once.
    let (s, _) = app
        .call(
            Method::DELETE,
            &one("property_ownerships", &ownership),
            &manager,
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = app
        .call(Method::GET, &one("properties", &mine), &owner, None)
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn openapi_documents_the_aristay_routes_and_collections() {
    const OAS_31_SCHEMA: &str =
        include_str!("../../../../server/tests/support/openapi-3.1-schema.json");
    let app = spawn().await;
    let doc: Value = app
        .client
        .get(app.at("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/aristay/bookings/import",
        "/api/v1/aristay/tasks/{id}/images",
        "/api/v1/aristay/files/{id}",
        "/api/v1/bookings",
        "/api/v1/tasks/{id}",
        "/api/v1/auto_task_templates",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    // Every route the app declares is documented (its contract is written once).
    use bucketbase_server::app::App;
    for routed in bucketbase_aristay::Aristay.routes().routed() {
        assert!(paths.contains_key(&routed.path), "{} missing", routed.path);
    }
    let oas: Value = serde_json::from_str(OAS_31_SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&oas).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .take(5)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

/// What a write may change, whatever the rules allow: system fields never (the
/// automation's and the import's records, a task's automation marks), references only
/// towards records the writer may see (answered as if they did not exist).
#[tokio::test]
async fn writes_keep_to_system_fields_and_visible_references() {
    let app = spawn().await;
    let (staff, staff_id) = app.user("sam@example.com", "staff").await;
    let (owner, owner_id) = app.user("olga@example.com", "owner").await;
    let (admin, manager) = (app.admin.clone(), app.manager.clone());
    let mine = app.property("Olga's flat").await;
    let theirs = app.property("Someone else's").await;
    app.create(
        "property_ownerships",
        json!({"property_id": mine, "user_id": owner_id}),
    )
    .await;
    let their_booking = id(&app
        .create(
            "bookings",
            json!({"property_id": theirs, "check_in": "2026-07-01", "check_out": "2026-07-04"}),
        )
        .await);
    let template = id(&app
        .create(
            "auto_task_templates",
            json!({"name": "T", "trigger": "check_out", "title_pattern": "Clean", "active": false}),
        )
        .await);
    let task = id(&app
        .create(
            "tasks",
            json!({"title": "Clean", "property_id": mine, "assigned_to": staff_id}),
        )
        .await);
    let task_path = format!("/api/v1/tasks/{task}");
    let code = |b: &Value| b["error"]["code"].as_str().map(String::from);

    // Staff may update their task, but not move it to a property or booking they cannot
    // see (they see none), nor make it look automatic.
    for body in [
        json!({"property_id": theirs}),
        json!({"property_id": theirs, "booking_id": their_booking}),
    ] {
        let (s, b) = app
            .call(Method::PATCH, &task_path, &staff, Some(body.clone()))
            .await;
        assert_eq!(
            (s, code(&b).as_deref()),
            (409, Some("reference_violation")),
            "{body}: {b}"
        );
    }
    for (token, body) in [
        (&staff, json!({"template_id": template})),
        (&manager, json!({"template_id": template})),
        (&manager, json!({"auto_cancelled": true})),
    ] {
        let (s, b) = app
            .call(Method::PATCH, &task_path, token, Some(body.clone()))
            .await;
        assert_eq!(
            (s, code(&b).as_deref()),
            (400, Some("read_only_field")),
            "{body}: {b}"
        );
    }
    let (s, b) = app
        .call(
            Method::PATCH,
            &task_path,
            &staff,
            Some(json!({"status": "done", "property_id": mine})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    // The manager sees every property and may move it.
    let (s, b) = app
        .call(
            Method::PATCH,
            &task_path,
            &manager,
            Some(json!({"property_id": theirs})),
        )
        .await;
    assert_eq!(s, 200, "{b}");

    // The automation's ledger and the import logs are the system's, even for the
    // SuperAdmin.
    for (collection, body) in [
        (
            "auto_task_records",
            json!({"booking_id": their_booking, "template_id": template, "task_id": task}),
        ),
        (
            "booking_import_logs",
            json!({"file_name": "x.xlsx", "status": "committed", "counts": {}}),
        ),
    ] {
        let path = format!("/api/v1/{collection}");
        let (s, b) = app
            .call(Method::POST, &path, &admin, Some(body.clone()))
            .await;
        assert_eq!(
            (s, code(&b).as_deref()),
            (400, Some("read_only_field")),
            "{collection}: {b}"
        );
        let (s, b) = app.call(Method::POST, &path, &manager, Some(body)).await;
        assert_eq!(s, 403, "{collection}: {b}");
    }

    // An operator's own collection that owners may write: an owner can point a record
    // only at a property they own; another one answers as a missing one does.
    let (s, b) = app
        .call(
            Method::POST,
            "/api/v1/collections",
            &admin,
            Some(json!({
                "name": "owner_requests",
                "schema": {"type": "object", "required": ["property_id", "text"], "properties": {
                    "property_id": {"type": "string"}, "text": {"type": "string"}}},
                "references": [{"field": "property_id", "collection": "properties"}],
                "rules": {"create": "auth.role == \"owner\"",
                          "view": "record.created_by == auth.uuid",
                          "update": "record.created_by == auth.uuid"}
            })),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let request = |property: &str| json!({"property_id": property, "text": "Fix the door"});
    for property in [theirs.as_str(), "0190a0a0-0000-7000-8000-000000000000"] {
        let (s, b) = app
            .call(
                Method::POST,
                "/api/v1/owner_requests",
                &owner,
                Some(request(property)),
            )
            .await;
        assert_eq!(
            (s, code(&b).as_deref()),
            (409, Some("reference_violation")),
            "{property}: {b}"
        );
        assert_eq!(b["error"]["details"]["fields"], json!(["property_id"]));
    }
    let (s, b) = app
        .call(
            Method::POST,
            "/api/v1/owner_requests",
            &owner,
            Some(request(&mine)),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let path = format!("/api/v1/owner_requests/{}", id(&b["data"]));
    let (s, b) = app
        .call(
            Method::PATCH,
            &path,
            &owner,
            Some(json!({"property_id": theirs})),
        )
        .await;
    assert_eq!(
        (s, code(&b).as_deref()),
        (409, Some("reference_violation")),
        "{b}"
    );
    let (s, b) = app
        .call(
            Method::PATCH,
            &path,
            &admin,
            Some(json!({"property_id": theirs})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
}

/// The review's request: a `staff` user's list filter with a regex too costly to compile
/// is refused as `invalid_filter` (it used to be compiled, and fail, once per task, then
/// answer 200 with nothing), as is a filter that divides by zero.
#[tokio::test]
async fn a_staff_filter_with_a_costly_regex_is_refused() {
    let app = spawn().await;
    let (staff, staff_id) = app.user("sam@example.com", "staff").await;
    let property = app.property("Seaside").await;
    for (title, assigned) in [("Clean", Some(&staff_id)), ("Fix tap", None)] {
        let mut task = json!({"title": title, "property_id": property});
        if let Some(who) = assigned {
            task["assigned_to"] = json!(who);
        }
        app.create("tasks", task).await;
    }
    let (s, b) = list_tasks(
        &app,
        &staff,
        r#"record.title.matches("a{1000}{1000}{1000}")"#,
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_filter")),
        "{b}"
    );
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("size limit"),
        "{b}"
    );
    let (s, b) = list_tasks(&app, &staff, r#"record.title.matches("^Cl")"#).await;
    assert_eq!((s, &b["meta"]["total"]), (200, &json!(1)), "{b}");
    let (s, b) = list_tasks(&app, &staff, "1 / 0 == 1").await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_filter")),
        "{b}"
    );
}

/// `GET /api/v1/tasks?filter=...` as `token`.
async fn list_tasks(app: &TestApp, token: &str, filter: &str) -> (u16, Value) {
    let filter: String = filter
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let path = format!("/api/v1/tasks?filter={filter}");
    app.call(Method::GET, &path, token, None).await
}
