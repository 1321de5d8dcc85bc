//! The change feed (`/api/v1/{collection}/events`, `/api/v1/events`) over real HTTP:
//! exactly what each caller may see, in log order, none twice; resume after random
//! disconnects; a record leaving a caller's view; a subscriber that never reads.

use std::time::Duration;

use bucketbase_server::ServerSettings;
use bucketbase_server::feed::FeedSettings;
use bucketbase_testkit::process::create_concurrently;
use bucketbase_testkit::sse::{EventStream, SseEvent};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, spawn_app, spawn_with};

/// A guard against a hang, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(120);

/// `notes` readable by SuperAdmin and by `reader`s for the notes they own.
async fn define_notes(app: &TestApp, admin: &str) {
    app.define(
        admin,
        json!({
            "name": "notes",
            "schema": {"type": "object", "properties": {
                "title": {"type": "string"}, "owner": {"type": "string"}, "secret": {"type": "string"}}},
            "nested": {"comments": {"schema": {"type": "object"}}},
            "redact": ["secret"],
            "rules": {
                "list": "record.owner == auth.uuid",
                "view": "record.owner == auth.uuid",
                "update": "record.owner == auth.uuid"
            }
        }),
    )
    .await;
}

/// Creates a note as `token`; the answer's `data`.
async fn post_note(app: &TestApp, token: &str, note: Value) -> Value {
    let (status, body, _) = app
        .call(Method::POST, "/api/v1/notes", Some(token), Some(note))
        .await;
    assert_eq!(status, 201, "{body}");
    body["data"].clone()
}

async fn uuid_of(app: &TestApp, token: &str) -> String {
    let (_, me, _) = app
        .call(Method::GET, "/api/auth/me", Some(token), None)
        .await;
    me["data"]["uuid"].as_str().unwrap().to_string()
}

async fn open(app: &TestApp, path: &str, token: &str, last: Option<&str>) -> EventStream {
    EventStream::open(&app.client, &app.at(path), token, last)
        .await
        .unwrap_or_else(|(status, body)| panic!("{path}: {status} {body}"))
}

/// Reads events until `done` says so (or the stream ends).
async fn collect(stream: &mut EventStream, done: impl Fn(&[SseEvent]) -> bool) -> Vec<SseEvent> {
    let mut out = Vec::new();
    while !done(&out) {
        match tokio::time::timeout(PATIENCE, stream.next()).await {
            Ok(Some(event)) => out.push(event),
            Ok(None) => break,
            Err(_) => panic!("no event for {PATIENCE:?}; got {} so far", out.len()),
        }
    }
    out
}

/// Follows a stream until `n` changes arrived, reconnecting with `Last-Event-ID` whenever
/// the server drops it (a subscriber that fell behind); returns the changes.
async fn follow(client: reqwest::Client, url: String, token: String, n: usize) -> Vec<SseEvent> {
    let mut changes: Vec<SseEvent> = Vec::new();
    let mut last: Option<String> = None;
    while changes.len() < n {
        let mut stream = EventStream::open(&client, &url, &token, last.as_deref())
            .await
            .unwrap();
        while changes.len() < n {
            let Some(event) = tokio::time::timeout(PATIENCE, stream.next())
                .await
                .expect("an event")
            else {
                break;
            };
            last = event.id.clone().or(last);
            if event.event == "dropped" {
                break;
            }
            changes.push(event);
        }
    }
    changes
}

/// `(seq, index)` of an event id `seq.index`.
fn position(event: &SseEvent) -> (u64, u32) {
    let id = event.id.as_deref().expect("every change has an id");
    let (seq, index) = id.split_once('.').expect("seq.index");
    (seq.parse().unwrap(), index.parse().unwrap())
}

fn assert_ordered_once(events: &[SseEvent]) {
    let positions: Vec<(u64, u32)> = events.iter().map(position).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "events in log order, none twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_subscriber_gets_exactly_what_it_may_see_in_log_order() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    define_notes(&app, &admin).await;
    let reader = app.user("reader@example.com", "reader").await;
    let reader_id = uuid_of(&app, &reader).await;

    let mut all = open(&app, "/api/v1/events?collections=notes", &admin, None).await;
    let mut mine = open(&app, "/api/v1/notes/events", &reader, None).await;

    // 8 writers x 250 changes; every third note is the reader's.
    let owner_of = {
        let reader_id = reader_id.clone();
        move |w: usize, i: usize| {
            let owner = if (w * 250 + i).is_multiple_of(3) {
                reader_id.as_str()
            } else {
                "someone"
            };
            json!({"title": format!("{w}-{i}"), "owner": owner})
        }
    };
    let created = create_concurrently(&[app.at("/api/v1/notes")], &admin, 8, 250, owner_of).await;
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
    // The log order: by position (the transactions of one entry keep their order in
    // it, which the writers cannot know; the feed's sub-positions show it).
    written.sort();
    let expect = |only_mine: bool| -> Vec<(u64, String)> {
        written
            .iter()
            .filter(|(_, _, mine)| !only_mine || *mine)
            .map(|(seq, id, _)| (*seq, id.clone()))
            .collect()
    };
    let (expect_all, expect_mine) = (expect(false), expect(true));
    let got_all = collect(&mut all, |e| e.len() >= expect_all.len()).await;
    let got_mine = collect(&mut mine, |e| e.len() >= expect_mine.len()).await;
    assert_ordered_once(&got_all);
    assert_ordered_once(&got_mine);
    let seen = |events: &[SseEvent]| -> Vec<(u64, String)> {
        let mut out: Vec<(u64, String)> = events
            .iter()
            .map(|e| {
                (
                    position(e).0,
                    e.data["record_id"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        // Positions are already strictly increasing; sorting within an entry by id
        // only lines them up with `expect`.
        out.sort();
        out
    };
    assert_eq!(
        seen(&got_all),
        expect_all,
        "every change, each at its log position"
    );
    assert_eq!(seen(&got_mine), expect_mine, "exactly the reader's notes");
    assert!(
        got_mine
            .iter()
            .all(|e| e.event == "create" && e.data["record"]["owner"] == json!(reader_id))
    );
    // Nothing more for the reader: an admin-only note comes next, then one of the
    // reader's, which must be the very next event.
    let make = |owner: &str, title: &str| json!({"title": title, "owner": owner});
    post_note(&app, &admin, make("someone", "late")).await;
    let last = post_note(&app, &admin, make(&reader_id, "last")).await;
    let next = mine.next_within(PATIENCE).await.unwrap();
    assert_eq!(next.data["record_id"], last["id"]);
}

#[tokio::test]
async fn resuming_after_random_disconnects_gives_the_uninterrupted_stream() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    define_notes(&app, &admin).await;
    let mut whole = open(&app, "/api/v1/notes/events", &admin, None).await;
    let start = whole_start(&app, &admin).await;
    // Creates, updates, item appends, deletes: several changes per entry too (a note
    // created with items is one change; an append is an item change).
    let mut ids = Vec::new();
    for i in 0..40 {
        let r = post_note(
            &app,
            &admin,
            json!({"title": format!("n{i}"), "owner": "x", "secret": "s"}),
        )
        .await;
        let id = r["id"].as_str().unwrap().to_string();
        if i % 3 == 0 {
            app.call(
                Method::PATCH,
                &format!("/api/v1/notes/{id}"),
                Some(&admin),
                Some(json!({"title": format!("n{i}!")})),
            )
            .await;
        }
        if i % 4 == 0 {
            app.call(
                Method::POST,
                &format!("/api/v1/notes/{id}/comments"),
                Some(&admin),
                Some(json!({"text": "hi"})),
            )
            .await;
        }
        if i % 5 == 0 {
            app.call(
                Method::DELETE,
                &format!("/api/v1/notes/{id}"),
                Some(&admin),
                None,
            )
            .await;
        }
        ids.push(id);
    }
    let total = 40 + 14 + 10 + 8;
    let expected = collect(&mut whole, |e| e.len() >= total).await;
    assert_eq!(expected.len(), total);
    assert_ordered_once(&expected);
    assert!(expected.iter().any(|e| {
        e.event == "item_added"
            && e.data["item"]["path"]
                .as_str()
                .unwrap()
                .starts_with("comments/")
    }));

    // Cut the connection after a pseudo-random number of events each time, and resume
    // with the last id received (the first connection starts from the position
    // before the first change, with ?since=).
    let mut union: Vec<SseEvent> = Vec::new();
    let mut last: Option<String> = None;
    let mut cut = 7u64;
    while union.len() < total {
        let mut stream = match &last {
            None => {
                open(
                    &app,
                    &format!("/api/v1/notes/events?since={start}"),
                    &admin,
                    None,
                )
                .await
            }
            Some(id) => open(&app, "/api/v1/notes/events", &admin, Some(id)).await,
        };
        cut = (cut * 31 + 11) % 13 + 1;
        let got = collect(&mut stream, |e| {
            e.len() as u64 >= cut || union.len() + e.len() >= total
        })
        .await;
        last = got.last().and_then(|e| e.id.clone()).or(last);
        union.extend(got);
        drop(stream);
    }
    assert_eq!(union, expected);
}

/// The log position before the test's first change.
async fn whole_start(app: &TestApp, admin: &str) -> u64 {
    let (_, _, headers) = app
        .call(Method::GET, "/api/v1/notes", Some(admin), None)
        .await;
    headers["x-bucketbase-seq"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_record_leaving_the_view_sends_removed_and_nothing_more() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    define_notes(&app, &admin).await;
    let reader = app.user("reader@example.com", "reader").await;
    let reader_id = uuid_of(&app, &reader).await;
    let mut mine = open(&app, "/api/v1/notes/events", &reader, None).await;
    let note = |owner: &str, title: &str| json!({"title": title, "owner": owner, "secret": "s"});
    let never = post_note(&app, &admin, note("someone", "never")).await;
    let kept = post_note(&app, &admin, note(&reader_id, "kept")).await;
    let id = kept["id"].as_str().unwrap().to_string();
    let created = mine.next_within(PATIENCE).await.unwrap();
    assert_eq!(
        (created.event.as_str(), created.data["record_id"].as_str()),
        ("create", Some(id.as_str()))
    );
    // The owner hands it away: the reader is told it left, then hears nothing of it.
    let path = format!("/api/v1/notes/{id}");
    app.call(
        Method::PATCH,
        &path,
        Some(&admin),
        Some(json!({"owner": "someone"})),
    )
    .await;
    app.call(
        Method::PATCH,
        &path,
        Some(&admin),
        Some(json!({"title": "after"})),
    )
    .await;
    app.call(
        Method::PATCH,
        &format!("/api/v1/notes/{}", never["id"].as_str().unwrap()),
        Some(&admin),
        Some(json!({"owner": "nobody"})),
    )
    .await;
    let marker = post_note(&app, &admin, note(&reader_id, "marker")).await;
    let removed = mine.next_within(PATIENCE).await.unwrap();
    assert_eq!(removed.event, "removed");
    assert_eq!(removed.data["record_id"], json!(id));
    assert!(
        removed.data.get("record").is_none(),
        "an id, no record: {}",
        removed.data
    );
    let next = mine.next_within(PATIENCE).await.unwrap();
    assert_eq!(
        next.data["record_id"], marker["id"],
        "nothing of the note that left, nothing of the other"
    );
}

#[tokio::test]
async fn bad_subscriptions_are_refused_in_the_envelope_and_limits_hold() {
    let settings = ServerSettings {
        cookie_secure: false,
        feed: FeedSettings {
            max_per_user: 2,
            keepalive: Duration::from_secs(1),
            ..FeedSettings::default()
        },
        ..ServerSettings::default()
    };
    let app = spawn_with(settings, None).await;
    let admin = app.admin().await;
    define_notes(&app, &admin).await;
    let url = |path: &str| app.at(path);
    for (path, status, code) in [
        ("/api/v1/nothing/events", 404, "not_found"),
        ("/api/v1/_users/events", 404, "not_found"),
        ("/api/v1/events", 400, "bad_request"),
        ("/api/v1/events?collections=notes,nothing", 404, "not_found"),
        (
            "/api/v1/notes/events?filter=record.title%20%3D%3D",
            400,
            "invalid_filter",
        ),
        ("/api/v1/notes/events?since=abc", 400, "bad_request"),
        ("/api/v1/notes/events?owner=x", 400, "bad_request"),
        ("/api/v1/notes/events?record_id=..%2F..", 400, "bad_request"),
    ] {
        let Err((got, body)) = EventStream::open(&app.client, &url(path), &admin, None).await
        else {
            panic!("{path} was accepted");
        };
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
        assert_eq!(body["success"], json!(false));
    }
    let Err((got, _)) =
        EventStream::open(&app.client, &url("/api/v1/notes/events"), "bad-token", None).await
    else {
        panic!("a bad token was accepted");
    };
    assert_eq!(got, 401);
    // Two per user; the third is refused until one closes.
    let first = open(&app, "/api/v1/notes/events", &admin, None).await;
    let _second = open(&app, "/api/v1/notes/events", &admin, None).await;
    let Err((got, body)) =
        EventStream::open(&app.client, &url("/api/v1/notes/events"), &admin, None).await
    else {
        panic!("a third subscription was accepted");
    };
    assert_eq!(
        (got, body["error"]["code"].as_str()),
        (429, Some("too_many_subscriptions"))
    );
    drop(first);
    let mut reopened = None;
    for _ in 0..100 {
        if let Ok(s) =
            EventStream::open(&app.client, &url("/api/v1/notes/events"), &admin, None).await
        {
            reopened = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened.is_some(), "a closed subscription frees its place");
    let text = app
        .client
        .get(app.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("bucketbase_feed_subscribers 2"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_that_never_reads_is_dropped_and_never_holds_the_committer() {
    const BUFFER: usize = 16;
    let settings = ServerSettings {
        cookie_secure: false,
        feed: FeedSettings {
            buffer: BUFFER,
            keepalive: Duration::from_secs(1),
            ..FeedSettings::default()
        },
        ..ServerSettings::default()
    };
    let app = spawn_with(settings, None).await;
    let admin = app.admin().await;
    define_notes(&app, &admin).await;
    // A client that sends its request and never reads a byte, on a small receive buffer;
    // 2,000 events of 4 KB outgrow what the sockets hold.
    let addr = app.url.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(addr).await.unwrap();
    use tokio::io::AsyncWriteExt;
    stalled
        .write_all(format!("GET /api/v1/notes/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {admin}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // A reader that keeps up, to show the others are unaffected.
    let since = whole_start(&app, &admin).await;
    let follower = follow(
        app.client.clone(),
        app.at(&format!("/api/v1/notes/events?since={since}")),
        admin.clone(),
        2000,
    );
    let wait_subscribed = async {
        while app.db.feed_stats().live < 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, wait_subscribed)
        .await
        .unwrap();
    let body = "x".repeat(4000);
    let reader = tokio::spawn(follower);
    let note =
        move |w: usize, i: usize| json!({"title": format!("{w}-{i}"), "owner": "x", "text": body});
    create_concurrently(&[app.at("/api/v1/notes")], &admin, 8, 250, note).await;
    let got = reader.await.unwrap();
    assert_eq!(
        got.len(),
        2000,
        "a reading subscriber gets every change, resuming if dropped"
    );
    assert_ordered_once(&got);
    let stats = app.db.feed_stats();
    assert!(
        stats.high_water <= BUFFER,
        "no queue passed its limit: {stats:?}"
    );
    // The stalled one is cut off (its queue filled, or it took nothing for a keep-alive
    // interval while events waited): /metrics counts the drop once it happened.
    let drops = async {
        loop {
            let text = app
                .client
                .get(app.at("/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let drops: u64 = text
                .lines()
                .find_map(|l| l.strip_prefix("bucketbase_feed_drops_total "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if drops >= 1 {
                return drops;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert!(tokio::time::timeout(PATIENCE, drops).await.unwrap() >= 1);
    assert_eq!(app.db.feed_stats().live, 0, "nobody left subscribed");
    drop(stalled);
}

#[tokio::test]
async fn item_operations_carry_the_item_and_its_path_and_records_are_redacted_like_reads() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    define_notes(&app, &admin).await;
    let mut stream = open(
        &app,
        "/api/v1/notes/events?filter=record.title.startsWith(%22a%22)",
        &admin,
        None,
    )
    .await;
    let b = post_note(&app, &admin, json!({"title": "b", "owner": "x"})).await;
    let a = post_note(
        &app,
        &admin,
        json!({"title": "a", "owner": "x", "secret": "hunter2"}),
    )
    .await;
    let a_id = a["id"].as_str().unwrap();
    app.call(
        Method::POST,
        &format!("/api/v1/notes/{}/comments", b["id"].as_str().unwrap()),
        Some(&admin),
        Some(json!({"text": "not this"})),
    )
    .await;
    let (_, item, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/notes/{a_id}/comments"),
            Some(&admin),
            Some(json!({"text": "this"})),
        )
        .await;
    let item_id = item["data"]["id"].as_str().unwrap();
    let created = stream.next_within(PATIENCE).await.unwrap();
    assert_eq!(created.data["record_id"], json!(a_id));
    assert_eq!(created.data["record"]["title"], json!("a"));
    assert_eq!(created.data["record"]["secret"], json!("[redacted]"));
    let added = stream.next_within(PATIENCE).await.unwrap();
    assert_eq!(added.event, "item_added");
    assert_eq!(
        added.data["item"]["path"],
        json!(format!("comments/{item_id}"))
    );
    assert_eq!(added.data["item"]["item"]["text"], json!("this"));
    assert!(
        added.data.get("record").is_none(),
        "the item, not the whole record"
    );
}

#[tokio::test]
async fn a_token_that_expires_ends_the_stream_with_an_error_event() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let settings = ServerSettings {
        cookie_secure: false,
        feed: FeedSettings {
            keepalive: Duration::from_secs(1),
            ..FeedSettings::default()
        },
        ..ServerSettings::default()
    };
    let app = spawn_with(settings, None).await;
    let admin = app.admin().await;
    define_notes(&app, &admin).await;
    // The admin's own token, re-signed to expire two seconds from now.
    let payload = admin.split('.').nth(1).unwrap();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let now = crate::support::now()();
    claims["exp"] = json!(now + 2);
    let short = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(crate::support::JWT_SECRET),
    )
    .unwrap();
    let mut stream = open(&app, "/api/v1/notes/events", &short, None).await;
    let end = collect(&mut stream, |e| e.iter().any(|e| e.event == "error")).await;
    let error = end.last().expect("an error event before the end");
    assert_eq!(error.event, "error");
    assert_eq!(error.data["success"], json!(false));
    assert_eq!(error.data["error"]["code"], json!("unauthorized"));
    assert!(
        stream.next_within(PATIENCE).await.is_none(),
        "then the stream ends"
    );
}
