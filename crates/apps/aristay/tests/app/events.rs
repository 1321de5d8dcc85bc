//! The change feed with aristay's owner rules: an owner who loses a property mid-stream
//! is told it left (`removed`) and hears nothing more of it or of its tasks, while the
//! manager's stream goes on.

use std::time::Duration;

use bucketbase_testkit::sse::{EventStream, SseEvent};
use reqwest::Method;
use serde_json::json;

use crate::support::{id, spawn};

/// A guard against a hang, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);

async fn next(stream: &mut EventStream) -> SseEvent {
    stream.next_within(PATIENCE).await.expect("an event")
}

#[tokio::test]
async fn an_owner_losing_a_property_mid_stream_gets_removed_and_nothing_more() {
    let app = spawn().await;
    let (owner, owner_id) = app.user("olga@example.com", "owner").await;
    let mine = app.property("Mine").await;
    let other = app.property("Other").await;
    let ownership = id(&app
        .create(
            "property_ownerships",
            json!({"property_id": mine, "user_id": owner_id}),
        )
        .await);
    let url = app.at("/api/v1/events?collections=properties,tasks");
    let mut stream = EventStream::open(&app.client, &url, &owner, None)
        .await
        .unwrap();
    let task = |property: &str, title: &str| json!({"title": title, "property_id": property});
    let seen = id(&app.create("tasks", task(&mine, "seen")).await);
    app.create("tasks", task(&other, "never")).await;
    let created = next(&mut stream).await;
    assert_eq!(
        (created.event.as_str(), created.data["record_id"].as_str()),
        ("create", Some(seen.as_str()))
    );
    assert_eq!(created.data["collection"], json!("tasks"));

    // The manager ends the ownership: the property and its task leave the owner's view.
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/property_ownerships/{ownership}"),
            &app.manager,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut removed = [next(&mut stream).await, next(&mut stream).await];
    removed.sort_by(|a, b| {
        a.data["collection"]
            .as_str()
            .cmp(&b.data["collection"].as_str())
    });
    for (event, (collection, record)) in removed
        .iter()
        .zip([("properties", &mine), ("tasks", &seen)])
    {
        assert_eq!(event.event, "removed", "{:?}", event);
        assert_eq!(event.data["collection"], json!(collection));
        assert_eq!(event.data["record_id"], json!(record));
        assert!(event.data.get("record").is_none());
    }
    // Changes to what left, and to what was never visible, are not sent; the stream
    // stays open (a new ownership shows the next change).
    app.call(
        Method::PATCH,
        &format!("/api/v1/tasks/{seen}"),
        &app.manager,
        Some(json!({"title": "after"})),
    )
    .await;
    app.call(
        Method::PATCH,
        &format!("/api/v1/properties/{mine}"),
        &app.manager,
        Some(json!({"city": "Porto"})),
    )
    .await;
    app.create(
        "property_ownerships",
        json!({"property_id": other, "user_id": owner_id}),
    )
    .await;
    let later = id(&app.create("tasks", task(&other, "later")).await);
    let event = next(&mut stream).await;
    assert_eq!(
        (event.event.as_str(), event.data["record_id"].as_str()),
        ("create", Some(later.as_str())),
        "nothing about the property that left, or its task"
    );
}
