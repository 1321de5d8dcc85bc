//! The store goes away and comes back (issue 14, item 8), through the real server.
//!
//! The database sits on two fault stores the test switches on and off: the outer one
//! fails every operation (a store that refuses connections), the inner one times out
//! log writes without performing them (an ambiguous outcome). While the store is away,
//! writes answer 503 with `Retry-After`, reads are answered from memory with the
//! pre-outage `X-Bucketbase-Seq`, and `/readyz` says why it is not ready; once it is
//! back, the server recovers without a restart and every acknowledged write is there.

use std::sync::Arc;
use std::time::Duration;

use bucketbase_engine::store::DynStore;
use bucketbase_engine::store::fault::{FaultRule, FaultStore, OpKind};
use bucketbase_engine::{DbOptions, StoreUrl};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::support::*;

const ALL_OPS: [OpKind; 7] = [
    OpKind::Put,
    OpKind::PutCreate,
    OpKind::Get,
    OpKind::Head,
    OpKind::List,
    OpKind::Delete,
    OpKind::Copy,
];

struct Faults {
    /// Every operation fails: the store is unreachable.
    down: Arc<FaultStore>,
    /// Log writes time out before being performed: the writer cannot know.
    ambiguous: Arc<FaultStore>,
}

async fn spawn_with_faults() -> (TestApp, Faults) {
    let memory: DynStore = StoreUrl::Memory.build().unwrap();
    let ambiguous = FaultStore::new(memory, 1)
        .with_rule(FaultRule::ambiguous_failure(OpKind::PutCreate).with_prefix("_log/"));
    ambiguous.set_enabled(false);
    let ambiguous = Arc::new(ambiguous);
    let down = ALL_OPS
        .into_iter()
        .fold(FaultStore::new(ambiguous.clone(), 2), |store, op| {
            store.with_rule(FaultRule::fail(op))
        });
    down.set_enabled(false);
    let down = Arc::new(down);
    let opts = DbOptions {
        // Short, so that the ambiguous phase settles quickly (the server's default is
        // `settle_timeout_ms`).
        settle_timeout: Duration::from_millis(300),
        tail_interval: Some(Duration::from_millis(20)),
        ..DbOptions::default()
    };
    let app = spawn_on_store(down.clone(), opts).await;
    (app, Faults { down, ambiguous })
}

fn seq_of(h: &HeaderMap) -> u64 {
    h.get("x-bucketbase-seq")
        .expect("every answer carries X-Bucketbase-Seq")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A 503 in the one envelope, with `Retry-After`, and nothing internal in it.
fn assert_unavailable(status: u16, body: &Value, h: &HeaderMap, code: &str) {
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["meta"]["request_id"].is_string(), "{body}");
    let retry: u64 = h
        .get("retry-after")
        .expect("a 503 carries Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let text = body.to_string();
    assert!(
        !text.contains("FaultStore") && !text.contains("injected"),
        "no internals in {text}"
    );
}

async fn create(app: &TestApp, token: &str, title: &str) -> (u16, Value, HeaderMap) {
    app.call(
        Method::POST,
        "/api/v1/items",
        Some(token),
        Some(json!({ "title": title })),
    )
    .await
}

/// The titles of every record, as the server lists them.
async fn titles(app: &TestApp, token: &str) -> Vec<String> {
    let (s, body, _) = app
        .call(Method::GET, "/api/v1/items?per_page=100", Some(token), None)
        .await;
    assert_eq!(s, 200, "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_store_goes_away_and_comes_back() {
    let (app, faults) = spawn_with_faults().await;
    let admin = app.admin().await;
    app.define(
        &admin,
        json!({"name": "items", "schema": {"type": "object", "required": ["title"],
            "properties": {"title": {"type": "string"}}}}),
    )
    .await;
    let mut acknowledged = Vec::new();
    let mut id = String::new();
    for i in 0..3 {
        let title = format!("before {i}");
        let (s, body, _) = create(&app, &admin, &title).await;
        assert_eq!(s, 201, "{body}");
        id = body["data"]["id"].as_str().unwrap().to_string();
        acknowledged.push(title);
    }
    let (_, _, h) = app.call(Method::GET, "/readyz", None, None).await;
    let head = seq_of(&h);

    // The store goes away: every operation fails.
    faults.down.set_enabled(true);
    let (s, body, h) = create(&app, &admin, "during the outage").await;
    assert_unavailable(s, &body, &h, "unavailable");
    let (s, body, h) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/items/{id}"),
            Some(&admin),
            Some(json!({"title": "changed during the outage"})),
        )
        .await;
    assert_unavailable(s, &body, &h, "unavailable");

    // Reads are answered from memory, at the position reached before the outage.
    let (s, body, h) = app
        .call(
            Method::GET,
            &format!("/api/v1/items/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((s, body["data"]["title"].as_str()), (200, Some("before 2")));
    assert_eq!(seq_of(&h), head);
    let (s, body, h) = app
        .call(Method::GET, "/api/v1/items", Some(&admin), None)
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 3);
    assert_eq!(seq_of(&h), head);
    for path in ["/healthz", "/metrics"] {
        let (s, _, _) = app.call(Method::GET, path, None, None).await;
        assert_eq!(s, 200, "{path}");
    }

    // What needs the store answers 503, never 500: the history and the audit (read from
    // the log), a read that must catch up first, readiness (with its reason), a login (it
    // writes a session).
    let (s, body, h) = app
        .call(
            Method::GET,
            &format!("/api/v1/items/{id}/history"),
            Some(&admin),
            None,
        )
        .await;
    assert_unavailable(s, &body, &h, "unavailable");
    for path in ["/api/v1/audit?collection=items", "/api/v1/audit/verify"] {
        let (s, body, h) = app.call(Method::GET, path, Some(&admin), None).await;
        assert_unavailable(s, &body, &h, "unavailable");
    }
    let r = app
        .client
        .get(app.at(&format!("/api/v1/items/{id}")))
        .bearer_auth(&admin)
        .header("x-bucketbase-consistency", "latest")
        .send()
        .await
        .unwrap();
    let h = r.headers().clone();
    let (s, body) = (r.status().as_u16(), r.json::<Value>().await.unwrap());
    assert_unavailable(s, &body, &h, "unavailable");
    let (s, body, h) = app.call(Method::GET, "/readyz", None, None).await;
    assert_unavailable(s, &body, &h, "not_ready");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("store")),
        "readyz says why: {body}"
    );
    let r = app.login(ADMIN.0, ADMIN.1).await;
    assert_ne!(r.status().as_u16(), 500);
    if r.status() == 503 {
        assert!(r.headers().contains_key("retry-after"));
    }

    // A second phase: the store answers reads, but log writes time out without being
    // performed. The writer cannot know: after settling, 503 outcome_unknown.
    faults.down.set_enabled(false);
    faults.ambiguous.set_enabled(true);
    let (s, body, h) = create(&app, &admin, "ambiguous").await;
    assert_unavailable(s, &body, &h, "outcome_unknown");
    let (s, body, h) = app
        .call(
            Method::GET,
            &format!("/api/v1/items/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(seq_of(&h), head);

    // The store comes back: writes succeed, the server is ready again, no restart.
    faults.ambiguous.set_enabled(false);
    let (s, body, h) = create(&app, &admin, "after").await;
    assert_eq!(s, 201, "{body}");
    assert!(seq_of(&h) > head);
    acknowledged.push("after".to_string());
    let mut ready = None;
    for _ in 0..200 {
        let (s, body, _) = app.call(Method::GET, "/readyz", None, None).await;
        if s == 200 && body["data"]["tail"]["failing"] == false {
            ready = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let ready = ready.expect("ready again once the store is back");
    assert_eq!(ready["data"]["status"], "ready");

    // Every acknowledged write is there, none of the refused ones, the ambiguous one at
    // most once; the audit chain is intact.
    let (s, body, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/items/{id}/history"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 200, "history is served again: {body}");
    let listed = titles(&app, &admin).await;
    for title in &acknowledged {
        assert_eq!(listed.iter().filter(|t| *t == title).count(), 1, "{title}");
    }
    assert!(!listed.iter().any(|t| t.contains("during the outage")));
    assert!(listed.iter().filter(|t| *t == "ambiguous").count() <= 1);
    let (s, body, _) = app
        .call(Method::GET, "/api/v1/audit/verify", Some(&admin), None)
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["intact"], true, "{body}");
}

/// A store that refuses the connection fails a write at once as `unavailable`: nothing
/// can have been written, so there is nothing to settle, and the client learns the write
/// definitely did not happen (not `outcome_unknown`).
#[tokio::test]
async fn a_refused_log_write_is_definitely_not_written() {
    let memory: DynStore = StoreUrl::Memory.build().unwrap();
    let down = Arc::new(FaultStore::new(memory, 3).with_rule(FaultRule::fail(OpKind::PutCreate)));
    down.set_enabled(false);
    let opts = DbOptions {
        settle_timeout: Duration::from_millis(300),
        ..DbOptions::default()
    };
    let app = spawn_on_store(down.clone(), opts).await;
    let admin = app.admin().await;
    app.define(
        &admin,
        json!({"name": "items", "schema": {"type": "object"}}),
    )
    .await;
    down.set_enabled(true);
    let (s, body, h) = create(&app, &admin, "refused").await;
    assert_unavailable(s, &body, &h, "unavailable");
    assert_eq!(
        body["error"]["message"],
        "the store is unavailable; nothing was written"
    );
    down.set_enabled(false);
    let (s, body, _) = create(&app, &admin, "accepted").await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(titles(&app, &admin).await, ["accepted"]);
}
