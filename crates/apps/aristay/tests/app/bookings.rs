//! Bookings through HTTP: no overlaps under 64 concurrent clients, same-day turnover,
//! the (source, external_id) rule, check_out after check_in.

use std::sync::Arc;

use reqwest::Method;
use serde_json::json;

use crate::support::*;

fn day(n: u32) -> String {
    // Days of July and August 2026 from a number 0..62.
    let (month, d) = if n < 31 { (7, n + 1) } else { (8, n - 30) };
    format!("2026-{month:02}-{d:02}")
}

#[tokio::test]
async fn sixty_four_clients_never_overlap_and_lose_nothing() {
    let app = Arc::new(spawn().await);
    let loft = app.property("Loft").await;
    // 64 clients, each trying 5 stays of 1-4 nights in the same 40 days.
    let mut tasks = Vec::new();
    for client in 0..64u32 {
        let (app, loft) = (app.clone(), loft.clone());
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for attempt in 0..5u32 {
                let seed = client.wrapping_mul(2_654_435_761).wrapping_add(attempt * 40_503);
                let start = seed % 38;
                let nights = 1 + (seed / 38) % 4;
                let end = (start + nights).min(40);
                let body = json!({"property_id": loft, "check_in": day(start), "check_out": day(end),
                                  "guest_name": format!("c{client}a{attempt}")});
                let (status, answer) = app.call(Method::POST, "/api/v1/bookings", &app.manager, Some(body)).await;
                outcomes.push((status, answer, start, end));
            }
            outcomes
        }));
    }
    let mut accepted = Vec::new();
    let mut rejected = 0;
    for t in tasks {
        for (status, answer, start, end) in t.await.unwrap() {
            match status {
                201 => accepted.push((
                    answer["data"]["id"].as_str().unwrap().to_string(),
                    start,
                    end,
                )),
                409 => {
                    assert_eq!(answer["error"]["code"], "exclusion_violation", "{answer}");
                    rejected += 1;
                }
                other => panic!("unexpected {other}: {answer}"),
            }
        }
    }
    assert_eq!(accepted.len() + rejected, 320);
    assert!(rejected > 0 && !accepted.is_empty());
    // Survivors are pairwise disjoint (half-open), and exactly the acknowledged ones exist.
    let mut ranges: Vec<(u32, u32)> = accepted.iter().map(|(_, s, e)| (*s, *e)).collect();
    ranges.sort();
    for w in ranges.windows(2) {
        assert!(w[0].1 <= w[1].0, "overlap: {w:?}");
    }
    let stored = app.list("bookings", &format!("property_id={loft}")).await;
    let mut stored_ids: Vec<String> = stored
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    let mut acked: Vec<String> = accepted.into_iter().map(|(id, _, _)| id).collect();
    stored_ids.sort();
    acked.sort();
    assert_eq!(stored_ids, acked);
}

#[tokio::test]
async fn turnover_days_external_ids_and_dates() {
    let app = spawn().await;
    let loft = app.property("Loft").await;
    let book = |ci: &str, co: &str, ext: Option<&str>| {
        let mut body =
            json!({"property_id": loft, "check_in": ci, "check_out": co, "source": "airbnb"});
        if let Some(e) = ext {
            body["external_id"] = json!(e);
        }
        let app = &app;
        async move {
            app.call(Method::POST, "/api/v1/bookings", &app.manager, Some(body))
                .await
        }
    };
    assert_eq!(book("2026-07-01", "2026-07-05", Some("X1")).await.0, 201);
    // Same-day turnover: the next guest arrives the day the last one leaves.
    assert_eq!(book("2026-07-05", "2026-07-07", Some("X2")).await.0, 201);
    let (s, b) = book("2026-07-04", "2026-07-06", None).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("exclusion_violation")),
        "{b}"
    );
    // The same external booking twice.
    let (s, b) = book("2026-09-01", "2026-09-03", Some("X1")).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("unique_violation")),
        "{b}"
    );
    // check_out must be after check_in.
    let (s, b) = book("2026-10-05", "2026-10-05", None).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("check_violation")),
        "{b}"
    );
    // A cancelled booking does not block its dates.
    let (s, b) = app
        .call(
            Method::POST,
            "/api/v1/bookings",
            &app.manager,
            Some(json!({"property_id": loft, "check_in": "2026-07-02", "check_out": "2026-07-03", "status": "cancelled"})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    // Unknown fields and bad dates are validation errors.
    let (s, b) = app
        .call(
            Method::POST,
            "/api/v1/bookings",
            &app.manager,
            Some(json!({"property_id": loft, "check_in": "2026-13-01", "check_out": "2026-07-03", "colour": "red"})),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (422, Some("validation_failed")),
        "{b}"
    );
    // Property names are unique among live properties.
    let (s, b) = app
        .call(
            Method::POST,
            "/api/v1/properties",
            &app.manager,
            Some(json!({"name": "Loft"})),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("unique_violation")),
        "{b}"
    );
}
