//! List filters as untrusted input: refused when they cannot compile cheaply or are
//! mistaken (400 `invalid_filter`), bounded by the query budget (400 `query_too_costly`),
//! run after the caller's access rule, and off the async workers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bucketbase_engine::{CollectionName, TxnMeta};
use bucketbase_server::ServerSettings;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

/// Percent-encodes a query-string value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn list(app: &TestApp, token: &str, filter: &str) -> (u16, Value) {
    let path = format!("/api/v1/notes?filter={}", encode(filter));
    let (status, body, _) = app.call(Method::GET, &path, Some(token), None).await;
    (status, body)
}

/// A `staff` user and their uuid.
async fn staff(app: &TestApp, email: &str) -> (String, String) {
    let token = app.user(email, "staff").await;
    let (_, me, _) = app
        .call(Method::GET, "/api/auth/me", Some(&token), None)
        .await;
    let uuid = me["data"]["uuid"].as_str().unwrap().to_string();
    (token, uuid)
}

/// Writes `n` notes straight into the database, 100 per transaction.
async fn seed(app: &TestApp, range: std::ops::Range<usize>, doc: impl Fn(usize) -> Value) {
    let notes = CollectionName::parse("notes").unwrap();
    let ids: Vec<usize> = range.collect();
    for chunk in ids.chunks(100) {
        app.db
            .transact(&TxnMeta::new("test", "test"), |tx| {
                for i in chunk {
                    tx.create(&notes, doc(*i))?;
                }
                Ok::<_, bucketbase_engine::Error>(())
            })
            .await
            .unwrap();
    }
}

/// A server with `query_budget_ms`, and `n` notes of one `staff` user titled
/// `title(i)`: the server, the SuperAdmin's token, the staff's token and uuid.
async fn notes_of_one_staff(
    query_budget_ms: u64,
    n: usize,
    title: impl Fn(usize) -> String,
) -> (TestApp, String, String, String) {
    let app = spawn_with(
        ServerSettings {
            cookie_secure: false,
            query_budget_ms,
            ..ServerSettings::default()
        },
        None,
    )
    .await;
    let admin = app.admin().await;
    app.define(&admin, notes_definition()).await;
    let (token, uuid) = staff(&app, "staff@example.com").await;
    seed(&app, 0..n, |i| json!({"title": title(i), "owner": uuid})).await;
    (app, admin, token, uuid)
}

fn assert_error(status: u16, body: &Value, code: &str, says: &str) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(says), "{message:?} should say {says:?}");
    assert!(body["meta"]["request_id"].is_string(), "{body}");
}

/// The review's filter: `a{1000}{1000}{1000}` is refused when the filter is compiled,
/// naming the size limit (it used to be compiled, and fail, once per record, and answer
/// 200 with nothing).
#[tokio::test]
async fn a_costly_regex_is_refused_at_compile() {
    let (app, admin, token, _) = notes_of_one_staff(1000, 300, |i| format!("a{i}")).await;
    for who in [&token, &admin] {
        let (status, body) =
            list(&app, who, r#"record.title.matches("a{1000}{1000}{1000}")"#).await;
        assert_error(
            status,
            &body,
            "invalid_filter",
            "size limit of 1048576 bytes",
        );
    }
    // A pattern within the limits works, on every record, compiled once.
    let (status, body) = list(&app, &token, r#"record.title.matches("^a1[0-9]$")"#).await;
    assert_eq!(
        (status, &body["meta"]["total"]),
        (200, &json!(10)),
        "{body}"
    );
}

/// A filter that does not compile, fails for a reason of its own, or is not a boolean is
/// a 400 `invalid_filter` naming the problem; a record that lacks a field the filter
/// reads just does not match.
#[tokio::test]
async fn mistaken_filters_are_400() {
    let (app, _, token, _) = notes_of_one_staff(1000, 3, |i| format!("t{i}")).await;
    let cases = [
        ("1/0 == 1", "Division by zero"),
        ("record.title", "must evaluate to a bool"),
        ("record.title.matches('(')", "invalid regex"),
        ("record.title.matches('(' + record.title)", "invalid regex"),
        ("record.>", "invalid expression"),
        ("nobody == 1", "nobody"),
    ];
    for (filter, says) in cases {
        let (status, body) = list(&app, &token, filter).await;
        assert_error(status, &body, "invalid_filter", says);
    }
    // No note has a topic: the filter does not apply to them.
    let (status, body) = list(&app, &token, "record.topic == 'x' || record.title == 't1'").await;
    assert_eq!((status, &body["meta"]["total"]), (200, &json!(1)), "{body}");
    let (status, body) = list(&app, &token, "record.topic > 'x'").await;
    assert_eq!((status, &body["meta"]["total"]), (200, &json!(0)), "{body}");
}

/// The access rule runs before the filter: a filter that fails on someone else's note
/// (a zero divisor) is never run on it, so the caller gets their own notes.
#[tokio::test]
async fn the_filter_only_runs_on_records_the_caller_may_see() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.define(&admin, notes_definition()).await;
    let (ann, ann_id) = staff(&app, "ann@example.com").await;
    let (_, bob_id) = staff(&app, "bob@example.com").await;
    seed(&app, 0..4, |i| {
        let (owner, divisor) = if i % 2 == 0 {
            (&ann_id, 1)
        } else {
            (&bob_id, 0)
        };
        json!({"title": format!("t{i}"), "owner": owner, "divisor": divisor})
    })
    .await;
    let filter = "10 / record.divisor > 1";
    let (status, body) = list(&app, &ann, filter).await;
    assert_eq!((status, &body["meta"]["total"]), (200, &json!(2)), "{body}");
    // Seen by someone who may see Bob's notes, the same filter is a mistake.
    let (status, body) = list(&app, &admin, filter).await;
    assert_error(status, &body, "invalid_filter", "Division by zero");
}

/// Past `query_budget_ms` of evaluation a list stops with 400 `query_too_costly`, which
/// points at the indexed fields.
#[tokio::test]
async fn a_spent_budget_is_400_query_too_costly() {
    let (app, admin, token, uuid) = notes_of_one_staff(1, 3000, |i| {
        format!("{i} {}", "lorem ipsum dolor sit amet ".repeat(40))
    })
    .await;
    let (status, body) = list(&app, &token, r#"record.title.matches("amet z")"#).await;
    assert_error(status, &body, "query_too_costly", "1 ms");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("owner, topic")
    );
    // What the indexes answer alone is not evaluated record by record.
    let path = format!("/api/v1/notes?owner={uuid}&per_page=1");
    let (status, body, _) = app.call(Method::GET, &path, Some(&admin), None).await;
    assert_eq!(
        (status, &body["meta"]["total"]),
        (200, &json!(3000)),
        "{body}"
    );
}

/// Costly filters run off the async workers: while four of them are still being
/// evaluated, `/healthz` is answered.
#[tokio::test]
async fn healthz_answers_while_costly_filters_run() {
    let (app, _, token, _) = notes_of_one_staff(600_000, COSTLY_RECORDS, |i| {
        format!("{i} {}", "naïve café crème brûlée ".repeat(100))
    })
    .await;
    let url = app.at(&format!("/api/v1/notes?filter={}", encode(COSTLY_FILTER)));
    let finished = Arc::new(AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let slow: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, token) = (app.client.clone(), url.clone(), token.clone());
            let finished = finished.clone();
            tokio::spawn(async move {
                let r = client.get(url).bearer_auth(token).send().await.unwrap();
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap();
                finished.fetch_add(1, Ordering::SeqCst);
                eprintln!("costly list answered after {:?}", started.elapsed());
                (status, body)
            })
        })
        .collect();
    // Let the four reach the server.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let health = app.client.get(app.at("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    eprintln!("healthz answered after {:?}", started.elapsed());
    assert_eq!(
        finished.load(Ordering::SeqCst),
        0,
        "/healthz was answered only after a costly list"
    );
    for task in slow {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["meta"]["total"], 0, "{body}");
    }
}

/// Enough records, and a regex the fast engines give up on (Unicode word boundaries on
/// non-ASCII text), for each list to take seconds.
const COSTLY_RECORDS: usize = 1000;
const COSTLY_FILTER: &str = r#"record.title.matches("\\b(\\w+\\s+){20}\\bzz\\b")"#;
