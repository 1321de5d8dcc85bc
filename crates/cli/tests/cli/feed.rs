//! The change feed across processes: subscribers on two `bucketbase serve` processes of
//! one root, with two roles, while 8 writers commit 2,000 changes through both. Each
//! subscriber receives exactly the changes it may see, at their log positions, in order,
//! none twice; the process that did not write a change still sends it (its tailer).

use std::time::Duration;

use bucketbase_testkit::process::{ADMIN, ADMIN_PASSWORD, Server, create_concurrently};
use bucketbase_testkit::sse::{EventStream, SseEvent};
use serde_json::json;

use super::processes::serve;

/// A guard against a hang, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(120);
const WRITERS: usize = 8;
const EACH: usize = 250;

async fn login_eventually(server: &Server, email: &str, password: &str) -> String {
    for _ in 0..400 {
        if let Some(token) = server.login(email, password).await {
            return token;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{email} never logged in");
}

async fn subscribe(server: &Server, path: &str, token: &str) -> EventStream {
    EventStream::open(
        &reqwest::Client::new(),
        &format!("{}{path}", server.url),
        token,
        None,
    )
    .await
    .unwrap_or_else(|(status, body)| panic!("{path}: {status} {body}"))
}

async fn take(mut stream: EventStream, n: usize) -> Vec<SseEvent> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let event = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no event for {PATIENCE:?} after {}", out.len()))
            .expect("the stream stays open");
        out.push(event);
    }
    out
}

/// `(seq, record id)` per event, after checking the positions strictly increase.
fn positions(events: &[SseEvent]) -> Vec<(u64, String)> {
    let pos: Vec<(u64, u32)> = events
        .iter()
        .map(|e| {
            let (s, i) = e.id.as_deref().unwrap().split_once('.').unwrap();
            (s.parse().unwrap(), i.parse().unwrap())
        })
        .collect();
    assert!(
        pos.windows(2).all(|w| w[0] < w[1]),
        "in log order, none twice"
    );
    let mut out: Vec<(u64, String)> = events
        .iter()
        .zip(&pos)
        .map(|(e, (s, _))| (*s, e.data["record_id"].as_str().unwrap().to_string()))
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscribers_on_two_processes_get_exactly_what_they_may_see() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let a = serve(root);
    let admin = a.login(ADMIN, ADMIN_PASSWORD).await.unwrap();
    let (status, _, body) = a
        .post(
            "/api/v1/collections",
            &admin,
            json!({"name": "notes", "schema": {"type": "object"}, "rules": {
                "list": "record.owner == auth.uuid", "view": "record.owner == auth.uuid"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let password = "a reader's long password";
    super::processes::cli_create_user(root, "reader@example.com", "reader", password);
    let b = serve(root);
    let reader = login_eventually(&a, "reader@example.com", password).await;
    let (_, me) = a.get("/api/auth/me", &reader).await;
    let reader_id = me["data"]["uuid"].as_str().unwrap().to_string();

    let streams = [
        subscribe(&a, "/api/v1/events?collections=notes", &admin).await,
        subscribe(&a, "/api/v1/notes/events", &reader).await,
        subscribe(&b, "/api/v1/notes/events", &admin).await,
        subscribe(&b, "/api/v1/notes/events", &reader).await,
    ];
    let note = {
        let reader_id = reader_id.clone();
        move |w: usize, i: usize| {
            let owner = if (w + i).is_multiple_of(3) {
                reader_id.as_str()
            } else {
                "someone"
            };
            json!({"title": format!("{w}-{i}"), "owner": owner})
        }
    };
    let urls = [
        format!("{}/api/v1/notes", a.url),
        format!("{}/api/v1/notes", b.url),
    ];
    let created = create_concurrently(&urls, &admin, WRITERS, EACH, note).await;
    let mut written: Vec<(u64, String, bool)> = created
        .iter()
        .map(|d| {
            let id = d["id"].as_str().unwrap().to_string();
            (
                d["_version"].as_u64().unwrap(),
                id,
                d["owner"] == json!(reader_id),
            )
        })
        .collect();
    written.sort();
    let expect = |only_reader: bool| -> Vec<(u64, String)> {
        written
            .iter()
            .filter(|(_, _, r)| !only_reader || *r)
            .map(|(s, id, _)| (*s, id.clone()))
            .collect()
    };
    let (all, mine) = (expect(false), expect(true));
    assert_eq!(all.len(), WRITERS * EACH);
    let [admin_a, reader_a, admin_b, reader_b] = streams;
    let (admin_a, reader_a, admin_b, reader_b) = tokio::join!(
        take(admin_a, all.len()),
        take(reader_a, mine.len()),
        take(admin_b, all.len()),
        take(reader_b, mine.len()),
    );
    assert_eq!(positions(&admin_a), all, "the admin on A: every change");
    assert_eq!(
        positions(&admin_b),
        all,
        "the admin on B: every change, A's too"
    );
    assert_eq!(
        positions(&reader_a),
        mine,
        "the reader on A: exactly its notes"
    );
    assert_eq!(
        positions(&reader_b),
        mine,
        "the reader on B: exactly its notes"
    );
    assert_eq!(
        admin_a, admin_b,
        "both processes send the same events, same ids"
    );
    assert_eq!(reader_a, reader_b);
}

/// SIGTERM with a change-feed stream open: the stream ends (the client would resume with
/// `Last-Event-ID`) and the process exits, instead of waiting on the stream forever.
#[tokio::test]
async fn a_graceful_shutdown_ends_open_feed_streams() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_string();
    let mut server = serve(&root);
    let token = login_eventually(&server, ADMIN, ADMIN_PASSWORD).await;
    server.define_notes(&token).await;
    let stream = subscribe(&server, "/api/v1/notes/events", &token).await;
    let status = server.terminate(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "with a feed stream open, the server did not stop: {status:?}"
    );
    drop(stream);
}
