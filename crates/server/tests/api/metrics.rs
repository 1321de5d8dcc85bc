//! `GET /metrics` over HTTP: request counters and latency histograms labelled by route
//! template, object-store operations counted as the database works, commit batches.

use reqwest::Method;
use serde_json::json;

use crate::support::*;

async fn scrape(app: &TestApp) -> String {
    let r = app.client.get(app.at("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    r.text().await.unwrap()
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

fn store_ops(text: &str, op: &str) -> f64 {
    sample(
        text,
        &format!("bucketbase_store_operations_total{{op=\"{op}\"}}"),
    )
    .unwrap_or_else(|| panic!("no store count for {op} in\n{text}"))
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_store_operations() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.define(&admin, notes_definition()).await;
    let before = scrape(&app).await;

    let (s, created, _) = app
        .call(
            Method::POST,
            "/api/v1/notes",
            Some(&admin),
            Some(json!({"title": "Counted", "owner": "someone"})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["data"]["id"].as_str().unwrap().to_string();
    let one = format!("/api/v1/notes/{id}");
    for _ in 0..2 {
        let (s, _, _) = app.call(Method::GET, &one, Some(&admin), None).await;
        assert_eq!(s, 200);
    }
    let (s, _, _) = app
        .call(Method::GET, "/api/v1/notes/no-such-id", Some(&admin), None)
        .await;
    assert_eq!(s, 404);
    let (s, _, _) = app
        .call(Method::GET, "/not/a/route/secret-looking-path", None, None)
        .await;
    assert_eq!(s, 404);
    // Reading the audit trail goes to the log in the store.
    let (s, _, _) = app
        .call(Method::GET, &format!("{one}/history"), Some(&admin), None)
        .await;
    assert_eq!(s, 200);

    let text = scrape(&app).await;
    assert!(text.ends_with("# EOF\n"));
    let get_one = r#"method="GET",route="/api/v1/{collection}/{id}""#;
    assert_eq!(
        sample(
            &text,
            &format!("bucketbase_http_requests_total{{{get_one},status=\"200\"}}")
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("bucketbase_http_requests_total{{{get_one},status=\"404\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"bucketbase_http_requests_total{method="POST",route="/api/v1/{collection}",status="201"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"bucketbase_http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        Some(1.0)
    );
    // Latency histogram per route template: 3 GETs of one record, every bucket line there.
    assert_eq!(
        sample(
            &text,
            &format!("bucketbase_http_request_duration_seconds_count{{{get_one}}}")
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("bucketbase_http_request_duration_seconds_bucket{{le=\"+Inf\",{get_one}}}")
        ),
        Some(3.0)
    );
    assert!(text.contains("# TYPE bucketbase_http_request_duration_seconds histogram"));
    // Only templates: no ids, raw paths, users or tokens.
    for leak in [
        id.as_str(),
        "no-such-id",
        "secret-looking-path",
        ADMIN.0,
        admin.as_str(),
    ] {
        assert!(!text.contains(leak), "{leak} leaked into /metrics");
    }

    // The write went to the store: a create-if-absent log slot, and more reads.
    assert!(
        store_ops(&text, "put_if_absent") > store_ops(&before, "put_if_absent"),
        "{text}"
    );
    assert!(store_ops(&text, "get") > store_ops(&before, "get"));
    assert_eq!(
        sample(
            &text,
            r#"bucketbase_store_operation_errors_total{op="put_if_absent"}"#
        ),
        Some(0.0)
    );
    assert!(
        sample(
            &text,
            r#"bucketbase_store_operation_duration_seconds_count{op="put_if_absent"}"#
        )
        .unwrap()
            >= 1.0
    );
    // Commits: entries, transactions and the batch size histogram.
    let txns = sample(&text, "bucketbase_commit_transactions_total").unwrap();
    assert!(txns > sample(&before, "bucketbase_commit_transactions_total").unwrap());
    assert!(sample(&text, "bucketbase_commit_batch_size_count").unwrap() >= 1.0);
    for counter in [
        "bucketbase_commit_lost_slots_total",
        "bucketbase_commit_reruns_total",
        "bucketbase_commit_ambiguous_writes_total",
        "bucketbase_commit_applied_ahead_total",
        "bucketbase_commit_applied_ahead_unused_total",
        "bucketbase_view_write_errors_total",
    ] {
        assert_eq!(sample(&text, counter), Some(0.0), "{counter}");
    }
}

#[tokio::test]
async fn metrics_are_public_and_carry_security_headers() {
    let app = spawn_app().await;
    let r = app.client.get(app.at("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-request-id").is_some());
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    // Scrapes count themselves under their own template.
    let text = scrape(&app).await;
    assert_eq!(
        sample(
            &text,
            r#"bucketbase_http_requests_total{method="GET",route="/metrics",status="200"}"#
        ),
        Some(1.0),
        "{text}"
    );
}
