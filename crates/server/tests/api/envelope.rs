//! Answers the server produces before any route runs (hyper's refusals of a request
//! head) or that axum's extractors produce, all in the one envelope with a code that
//! matches the status. Over a raw socket, so nothing in between cleans anything up.

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// Sends `head` (a request head without the final blank line) and reads the answer
/// until the server closes: (status, headers in lower case, body as JSON).
async fn raw(app: &TestApp, head: &str) -> (u16, String, Value) {
    let addr = app.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{head}\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    // The server may answer and close before reading everything: ignore write errors.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete answer");
    let status = head[9..12].parse().unwrap();
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, head.to_ascii_lowercase(), body)
}

fn assert_envelope(status: u16, head: &str, body: &Value, want: (u16, &str)) {
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (want.0, Some(want.1)),
        "{head}\n{body}"
    );
    assert_eq!(body["success"], false);
    assert!(body["error"]["message"].is_string());
    let request_id = body["meta"]["request_id"].as_str().unwrap();
    assert!(
        head.contains(&format!("x-request-id: {request_id}")),
        "{head}"
    );
    assert!(head.contains("content-type: application/json"), "{head}");
}

#[tokio::test]
async fn hyper_refusals_of_a_request_head_are_enveloped() {
    let app = spawn_app().await;
    let long_query = format!(
        "GET /api/v1/notes?filter={} HTTP/1.1",
        "a".repeat(70 * 1024)
    );
    let (s, head, body) = raw(&app, &long_query).await;
    assert_envelope(s, &head, &body, (414, "uri_too_long"));

    let many_headers: String = (0..150).map(|i| format!("\r\nx-h{i}: v")).collect();
    let (s, head, body) = raw(&app, &format!("GET /healthz HTTP/1.1{many_headers}")).await;
    assert_envelope(s, &head, &body, (431, "headers_too_large"));

    let (s, head, body) = raw(&app, "GET /healthz NOT-HTTP").await;
    assert_envelope(s, &head, &body, (400, "bad_request"));

    // The same connection handling still serves ordinary requests.
    let (s, _, body) = raw(&app, "GET /healthz HTTP/1.1").await;
    assert_eq!((s, body["data"]["status"].as_str()), (200, Some("ok")));
}

#[tokio::test]
async fn json_bodies_of_the_wrong_shape_are_bad_requests() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let cases = [
        (
            "login with an unknown field",
            "/api/auth/login",
            None,
            json!({"email": ADMIN.0, "password": ADMIN.1, "remember": true}),
        ),
        (
            "login with a wrong type",
            "/api/auth/login",
            None,
            json!({"email": ADMIN.0, "password": 12}),
        ),
        (
            "login without a field",
            "/api/auth/login",
            None,
            json!({"email": ADMIN.0}),
        ),
    ];
    for (what, path, token, body) in cases {
        let (s, answer, _) = app.call(Method::POST, path, token, Some(body)).await;
        assert_eq!(
            (s, answer["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{what}: {answer}"
        );
    }
    let broken = app
        .client
        .post(app.at("/api/v1/collections"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    let answer: Value = broken.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "bad_request");
}
