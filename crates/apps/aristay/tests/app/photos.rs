//! Task photos: sniffed types, size limit, storage under _files/, served with nosniff.

use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::json;
use sha2::Digest;

use crate::support::*;

/// A real 1×1 PNG.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

pub fn photo(bytes: Vec<u8>, name: &str, mime: &str) -> Form {
    Form::new()
        .part(
            "file",
            Part::bytes(bytes)
                .file_name(name.to_string())
                .mime_str(mime)
                .unwrap(),
        )
        .text("caption", "Bathroom after cleaning")
}

/// A property with a task assigned to a new staff member; returns (task id, staff token).
pub async fn assigned_task(app: &TestApp) -> (String, String) {
    let loft = app.property("Loft").await;
    let (staff, staff_id) = app.user("sam@example.com", "staff").await;
    let task = app
        .create("tasks", json!({"title": "Clean", "property_id": loft, "type": "cleaning", "assigned_to": staff_id}))
        .await;
    (id(&task), staff)
}

#[tokio::test]
async fn png_accepted_html_refused_oversized_413() {
    let app = spawn().await;
    let (task, staff) = assigned_task(&app).await;
    let path = format!("/api/v1/aristay/tasks/{task}/images");

    let (s, body) = app
        .upload(
            &path,
            &staff,
            photo(PNG.to_vec(), "../../etc/IMG 1.png", "image/png"),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let image = &body["data"];
    assert_eq!(image["content_type"], "image/png");
    assert_eq!(image["size"], PNG.len());
    assert_eq!(image["sha256"], hex::encode(sha2::Sha256::digest(PNG)));
    assert_eq!(image["original_name"], "IMG 1.png");
    assert_eq!(image["task_id"], task.as_str());
    let key = image["file_key"].as_str().unwrap();
    assert!(key.starts_with("_files/") && key.ends_with(".png"), "{key}");

    // Served back byte for byte, never sniffed by the browser.
    let r = app
        .client
        .get(app.at(&format!("/api/v1/aristay/files/{}", id(image))))
        .bearer_auth(&staff)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline")
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), PNG);

    // HTML named .png and declared image/png: refused by its bytes.
    let html = b"<html><script>alert(document.cookie)</script></html>".to_vec();
    let (s, body) = app
        .upload(&path, &staff, photo(html, "cat.png", "image/png"))
        .await;
    assert_eq!(s, 415, "{body}");
    let svg = b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"><script>1</script></svg>".to_vec();
    let (s, _) = app
        .upload(&path, &staff, photo(svg, "cat.svg", "image/svg+xml"))
        .await;
    assert_eq!(s, 415);

    // Over the size limit: 413, whatever the bytes.
    let mut big = PNG.to_vec();
    big.resize(bucketbase_aristay::routes::photos::MAX_IMAGE_BYTES + 1, 0);
    let (s, body) = app
        .upload(&path, &staff, photo(big, "big.png", "image/png"))
        .await;
    assert_eq!(s, 413, "{body}");
    assert_eq!(body["success"], false);

    // Only the accepted photo was kept.
    assert_eq!(app.count("task_images", "").await, 1);
}

#[tokio::test]
async fn a_photo_keeps_its_file_and_moves_only_to_tasks_its_writer_sees() {
    let app = spawn().await;
    let (task, staff) = assigned_task(&app).await;
    let dune = app.property("Dune").await;
    let (kim, kim_id) = app.user("kim@example.com", "staff").await;
    let kims_task = id(&app
        .create(
            "tasks",
            json!({"title": "Clean", "property_id": dune, "assigned_to": kim_id}),
        )
        .await);
    let upload = |task: String, token: String, bytes: Vec<u8>| {
        let app = &app;
        async move {
            let path = format!("/api/v1/aristay/tasks/{task}/images");
            let (s, b) = app
                .upload(&path, &token, photo(bytes, "p.png", "image/png"))
                .await;
            assert_eq!(s, 201, "{b}");
            b["data"].clone()
        }
    };
    let mine = upload(task.clone(), staff.clone(), PNG.to_vec()).await;
    let kims_bytes = [PNG, b"kim's"].concat();
    let kims = upload(kims_task.clone(), kim.clone(), kims_bytes).await;
    let path = format!("/api/v1/task_images/{}", id(&mine));

    // The file key (and what the upload learnt about the file) is the system's: no
    // caller may point their record at another upload's file.
    for (token, body) in [
        (&staff, json!({"file_key": kims["file_key"]})),
        (&staff, json!({"sha256": kims["sha256"], "size": 1})),
        (&staff, json!({"uploaded_by": kim_id})),
        (&app.admin, json!({"file_key": kims["file_key"]})),
    ] {
        let (s, b) = app
            .call(Method::PATCH, &path, token, Some(body.clone()))
            .await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (400, Some("read_only_field")),
            "{body}: {b}"
        );
    }
    let served = app
        .client
        .get(app.at(&format!("/api/v1/aristay/files/{}", id(&mine))))
        .bearer_auth(&staff)
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.unwrap().as_ref(), PNG);

    // References move only to what the writer may see: kim's task and a property (staff
    // see none) answer as a missing task does.
    let nowhere = "0190a0a0-0000-7000-8000-000000000000";
    for body in [
        json!({"task_id": kims_task}),
        json!({"task_id": nowhere}),
        json!({"task_id": kims_task, "property_id": dune}),
        json!({"property_id": dune}),
    ] {
        let (s, b) = app
            .call(Method::PATCH, &path, &staff, Some(body.clone()))
            .await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (409, Some("reference_violation")),
            "{body}: {b}"
        );
    }

    // Echoing the record back with a new caption is fine, by PUT and PATCH.
    let (_, got) = app.call(Method::GET, &path, &staff, None).await;
    let mut echo = got["data"].clone();
    echo["caption"] = json!("Tiles");
    let (s, b) = app
        .call(Method::PUT, &path, &staff, Some(echo.clone()))
        .await;
    assert_eq!(
        (s, b["data"]["caption"].as_str()),
        (200, Some("Tiles")),
        "{b}"
    );
    let (s, b) = app.call(Method::PATCH, &path, &staff, Some(echo)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["file_key"], mine["file_key"]);

    // The SuperAdmin may move it anywhere (the file stays its own).
    let (s, b) = app
        .call(
            Method::PATCH,
            &path,
            &app.admin,
            Some(json!({"task_id": kims_task, "property_id": dune})),
        )
        .await;
    assert_eq!(
        (s, b["data"]["task_id"].as_str()),
        (200, Some(kims_task.as_str())),
        "{b}"
    );
    assert_eq!(b["data"]["file_key"], mine["file_key"]);
}

/// Photos stored before the engine's blob API (written straight to the object store under
/// `_files/<uuid>.<ext>`) are served as before: the layout did not change.
#[tokio::test]
async fn photos_stored_under_the_old_layout_are_still_served() {
    use object_store::ObjectStoreExt;

    let app = spawn().await;
    let (task, _staff) = assigned_task(&app).await;
    let id = app.db.new_id();
    let key = format!("_files/{id}.png");
    app.db
        .store()
        .put(
            &object_store::path::Path::from(key.as_str()),
            PNG.to_vec().into(),
        )
        .await
        .unwrap();
    let tasks = bucketbase_engine::CollectionName::parse("tasks").unwrap();
    let images = bucketbase_engine::CollectionName::parse("task_images").unwrap();
    let task_id = bucketbase_engine::RecordId::parse(&task).unwrap();
    let property = app.db.snapshot().get(&tasks, &task_id).unwrap().value()["property_id"].clone();
    let record = json!({
        "id": id.as_str(), "task_id": task, "property_id": property, "file_key": key,
        "content_type": "image/png", "size": PNG.len(),
        "sha256": hex::encode(sha2::Sha256::digest(PNG)), "uploaded_by": "someone-earlier",
    });
    app.db
        .transact(
            &bucketbase_engine::TxnMeta::new("test", "old-upload"),
            |tx| tx.create(&images, record.clone()).map(|_| ()),
        )
        .await
        .unwrap();
    let r = app
        .client
        .get(app.at(&format!("/api/v1/aristay/files/{id}")))
        .bearer_auth(&app.manager)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.bytes().await.unwrap().as_ref(), PNG);
}
