//! Automatic tasks from templates: the exact task set, idempotence, moving, cancelling,
//! reopening, and the automation's audit source.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

/// Two templates: a cleaning on check-out day for every confirmed booking, and an
/// inspection the day before check-in for stays of 3+ nights from airbnb.
pub async fn templates(app: &TestApp) -> (String, String) {
    let clean = app
        .create(
            "auto_task_templates",
            json!({
                "name": "Turnover clean",
                "trigger": "check_out",
                "offset_days": 0,
                "time_of_day": "11:00",
                "task_type": "cleaning",
                "title_pattern": "Clean {property.name} after {booking.guest_name}",
            }),
        )
        .await;
    let inspect = app
        .create(
            "auto_task_templates",
            json!({
                "name": "Pre-arrival inspection",
                "trigger": "check_in",
                "offset_days": -1,
                "task_type": "inspection",
                "title_pattern": "Inspect {property.name} ({nights} nights)",
                "conditions": {"min_nights": 3, "sources": ["airbnb"]},
            }),
        )
        .await;
    (id(&clean), id(&inspect))
}

fn titles(tasks: &[Value]) -> Vec<(String, String, String, String)> {
    let mut out: Vec<_> = tasks
        .iter()
        .map(|t| {
            (
                t["title"].as_str().unwrap().to_string(),
                t["due_at"].as_str().unwrap_or_default().to_string(),
                t["time_of_day"].as_str().unwrap().to_string(),
                t["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn t(title: &str, due: &str, time: &str, status: &str) -> (String, String, String, String) {
    (title.into(), due.into(), time.into(), status.into())
}

#[tokio::test]
async fn templates_create_the_exact_task_set() {
    let app = spawn().await;
    templates(&app).await;
    // A template that is switched off, and one for another property, create nothing.
    let loft = app.property("Loft").await;
    let barn = app.property("Barn").await;
    app.create(
        "auto_task_templates",
        json!({"name": "Off", "trigger": "check_in", "title_pattern": "never", "active": false}),
    )
    .await;
    app.create(
        "auto_task_templates",
        json!({"name": "Barn only", "trigger": "booking_created", "title_pattern": "Welcome pack for {booking.guest_name}",
               "conditions": {"property_ids": [barn]}}),
    )
    .await;
    app.create(
        "auto_task_templates",
        json!({"name": "Long stays", "trigger": "check_in", "offset_days": 2, "title_pattern": "Mid-stay check {property.name}",
               "task_type": "inspection", "conditions": {"expr": "nights >= 7 && booking.guests > 2"}}),
    )
    .await;

    let long = app
        .create(
            "bookings",
            json!({"property_id": loft, "check_in": "2026-07-01", "check_out": "2026-07-08",
                   "guest_name": "Ann", "guests": 4, "source": "airbnb", "external_id": "A1"}),
        )
        .await;
    let short = app
        .create(
            "bookings",
            json!({"property_id": loft, "check_in": "2026-07-08", "check_out": "2026-07-10",
                   "guest_name": "Bob", "source": "airbnb", "external_id": "A2"}),
        )
        .await;
    let cancelled = app
        .create(
            "bookings",
            json!({"property_id": loft, "check_in": "2026-08-01", "check_out": "2026-08-05",
                   "guest_name": "Cy", "status": "cancelled"}),
        )
        .await;

    let of = |b: &Value| format!("booking_id={}", id(b));
    assert_eq!(
        titles(&app.list("tasks", &of(&long)).await),
        vec![
            t("Clean Loft after Ann", "2026-07-08", "11:00", "pending"),
            t("Inspect Loft (7 nights)", "2026-06-30", "09:00", "pending"),
            t("Mid-stay check Loft", "2026-07-03", "09:00", "pending"),
        ]
    );
    assert_eq!(
        titles(&app.list("tasks", &of(&short)).await),
        vec![t("Clean Loft after Bob", "2026-07-10", "11:00", "pending")]
    );
    assert!(app.list("tasks", &of(&cancelled)).await.is_empty());
    // One ledger row per task.
    assert_eq!(app.list("auto_task_records", "").await.len(), 4);
    // Tasks carry their template and the booking's property; the automation is audited.
    for task in app.list("tasks", "").await {
        assert_eq!(task["property_id"], loft);
        assert!(task["template_id"].is_string());
    }
    let (s, audit) = app
        .call(
            Method::GET,
            "/api/v1/audit?collection=tasks",
            &app.admin,
            None,
        )
        .await;
    assert_eq!(s, 200);
    let events = audit["data"].as_array().unwrap();
    assert_eq!(events.len(), 4);
    assert!(
        events.iter().all(|e| e["source"] == "automation"),
        "{audit}"
    );
}

#[tokio::test]
async fn dates_move_untouched_tasks_and_cancel_delete_restore_follow_the_booking() {
    let app = spawn().await;
    templates(&app).await;
    let loft = app.property("Loft").await;
    let (staff, staff_id) = app.user("sam@example.com", "staff").await;
    let b = app
        .create(
            "bookings",
            json!({"property_id": loft, "check_in": "2026-07-01", "check_out": "2026-07-05",
                   "guest_name": "Ann", "source": "airbnb", "external_id": "A1"}),
        )
        .await;
    let bid = id(&b);
    let tasks = app.list("tasks", &format!("booking_id={bid}")).await;
    assert_eq!(tasks.len(), 2);
    let clean = tasks.iter().find(|t| t["type"] == "cleaning").unwrap();
    let inspect = tasks.iter().find(|t| t["type"] == "inspection").unwrap();

    // A person moves the inspection (and hands the cleaning to staff, which is no move).
    let (s, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/tasks/{}", id(inspect)),
            &app.manager,
            Some(json!({"due_at": "2026-06-29", "time_of_day": "15:30"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/tasks/{}", id(clean)),
            &app.manager,
            Some(json!({"assigned_to": staff_id})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    // Staff start the cleaning: status changes do not lock the schedule either.
    let (s, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/tasks/{}", id(clean)),
            &staff,
            Some(json!({"status": "in_progress"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");

    // The stay moves by two days: only the untouched task follows.
    let (s, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/bookings/{bid}"),
            &app.manager,
            Some(json!({"check_in": "2026-07-03", "check_out": "2026-07-07"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let get = |task: &Value| {
        let app = &app;
        let path = format!("/api/v1/tasks/{}", id(task));
        async move { app.call(Method::GET, &path, &app.admin, None).await.1["data"].clone() }
    };
    let c = get(clean).await;
    let i = get(inspect).await;
    assert_eq!(
        (c["due_at"].as_str(), c["status"].as_str()),
        (Some("2026-07-07"), Some("in_progress"))
    );
    assert_eq!(i["due_at"], "2026-06-29", "a task moved by hand stays");
    assert_eq!(i["time_of_day"], "15:30");
    assert_eq!(i["schedule_locked"], true);

    // Cancelling cancels the open automatic tasks; a finished one stays finished.
    app.call(
        Method::PATCH,
        &format!("/api/v1/tasks/{}", id(inspect)),
        &app.manager,
        Some(json!({"status": "done"})),
    )
    .await;
    let (s, _) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/bookings/{bid}"),
            &app.manager,
            Some(json!({"status": "cancelled"})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(get(clean).await["status"], "cancelled");
    assert_eq!(get(clean).await["auto_cancelled"], true);
    assert_eq!(get(inspect).await["status"], "done");
    // Confirming it again reopens exactly what was cancelled, and creates nothing new.
    app.call(
        Method::PATCH,
        &format!("/api/v1/bookings/{bid}"),
        &app.manager,
        Some(json!({"status": "confirmed"})),
    )
    .await;
    assert_eq!(get(clean).await["status"], "pending");
    assert!(get(clean).await.get("auto_cancelled").is_none());
    assert_eq!(
        app.list("tasks", &format!("booking_id={bid}")).await.len(),
        2
    );

    // Soft delete: the tasks stay linked and are cancelled; restore reopens them.
    let (s, body) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/bookings/{bid}"),
            &app.manager,
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let c = get(clean).await;
    assert_eq!(
        (c["status"].as_str(), c["booking_id"].as_str()),
        (Some("cancelled"), Some(bid.as_str()))
    );
    let (s, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/bookings/{bid}/restore"),
            &app.manager,
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(get(clean).await["status"], "pending");
    assert_eq!(get(inspect).await["status"], "done");
    assert_eq!(
        app.list("tasks", &format!("booking_id={bid}")).await.len(),
        2
    );
    assert_eq!(app.list("auto_task_records", "").await.len(), 2);
}

#[tokio::test]
async fn bad_templates_are_refused_with_the_problem_named() {
    let app = spawn().await;
    for (body, needle) in [
        (
            json!({"name": "x", "trigger": "check_in", "title_pattern": "Clean {owner.name}"}),
            "{owner.name}",
        ),
        (
            json!({"name": "y", "trigger": "check_in", "title_pattern": "ok", "conditions": {"expr": "nights >"}}),
            "conditions.expr",
        ),
        (
            json!({"name": "z", "trigger": "someday", "title_pattern": "ok"}),
            "trigger",
        ),
    ] {
        let (s, b) = app
            .call(
                Method::POST,
                "/api/v1/auto_task_templates",
                &app.manager,
                Some(body),
            )
            .await;
        assert!(s == 400 || s == 422, "{s} {b}");
        assert!(b.to_string().contains(needle), "{needle} in {b}");
    }
}

#[tokio::test]
async fn concurrent_retried_changes_never_duplicate_tasks() {
    let app = std::sync::Arc::new(spawn().await);
    templates(&app).await;
    let loft = app.property("Loft").await;
    let b = app
        .create(
            "bookings",
            json!({"property_id": loft, "check_in": "2026-07-01", "check_out": "2026-07-05",
                   "guest_name": "Ann", "source": "airbnb", "external_id": "A1"}),
        )
        .await;
    let bid = id(&b);
    // 16 clients change the same booking at once: their transactions overtake each other
    // and re-run (with their hooks) on newer snapshots; each also repeats its request, as
    // a client retrying after a timeout would.
    let mut clients = Vec::new();
    for c in 0..16u32 {
        let (app, bid) = (app.clone(), bid.clone());
        clients.push(tokio::spawn(async move {
            let day = 1 + c % 8;
            let body = json!({"check_in": format!("2026-07-{day:02}"), "check_out": format!("2026-07-{:02}", day + 4)});
            for _ in 0..2 {
                let (s, answer) = app
                    .call(Method::PATCH, &format!("/api/v1/bookings/{bid}"), &app.manager, Some(body.clone()))
                    .await;
                assert_eq!(s, 200, "{answer}");
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let (_, booking) = app
        .call(
            Method::GET,
            &format!("/api/v1/bookings/{bid}"),
            &app.admin,
            None,
        )
        .await;
    let booking = &booking["data"];
    let tasks = app.list("tasks", &format!("booking_id={bid}")).await;
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    assert_eq!(app.list("auto_task_records", "").await.len(), 2);
    // Both follow the booking's final dates.
    let clean = tasks.iter().find(|t| t["type"] == "cleaning").unwrap();
    assert_eq!(clean["due_at"], booking["check_out"]);
    let inspect = tasks.iter().find(|t| t["type"] == "inspection").unwrap();
    let check_in =
        chrono::NaiveDate::parse_from_str(booking["check_in"].as_str().unwrap(), "%Y-%m-%d")
            .unwrap();
    assert_eq!(
        inspect["due_at"],
        (check_in - chrono::Duration::days(1)).to_string()
    );
}
