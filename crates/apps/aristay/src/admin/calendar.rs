//! `/admin/aristay/calendar?month=YYYY-MM&property=<id>`: bookings per property as bars
//! over the days of a month (server-rendered; no script), with links to the previous and
//! next month and the same bookings as a table.
//!
//! A bar covers the nights of a stay, from the check-in day up to (not including) the
//! check-out day, so a same-day turnover shows as two bars that touch. Positions are CSS
//! classes (`cs-N`, `ce-N` in admin.css), because the Content-Security-Policy allows no
//! inline style. Only active (not cancelled) bookings are drawn: those are the ones the
//! overlap rule keeps apart. Properties and bookings are what the API lists for the
//! caller (an owner sees their own).

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use bucketbase_server::AppState;
use bucketbase_server::admin::{AdminError, Ctx, with_query};
use chrono::{Datelike, Months, NaiveDate, Weekday};
use serde_json::{Value, json};

use super::{TEMPLATES, cel_string, today};

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/aristay/calendar", get(calendar))
}

/// The most properties and bookings one month's page reads (the rest are counted).
const MAX_PROPERTIES: usize = 200;
const MAX_BOOKINGS: usize = 1000;

#[derive(serde::Deserialize)]
struct Params {
    month: Option<String>,
    property: Option<String>,
}

fn month_start(text: Option<&str>, today: NaiveDate) -> Result<NaiveDate, AdminError> {
    match text.filter(|t| !t.is_empty()) {
        None => Ok(today.with_day(1).unwrap_or(today)),
        Some(t) => NaiveDate::parse_from_str(&format!("{t}-01"), "%Y-%m-%d")
            .map_err(|_| AdminError::BadRequest(format!("month must be YYYY-MM, not {t:?}"))),
    }
}

fn ymd(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// The day columns a stay covers in the month: `[start, end)` as day numbers (1-based,
/// `end` at most the month's length + 1), or `None` when it is outside the month.
fn span(booking: &Value, first: NaiveDate, next: NaiveDate) -> Option<(u32, u32)> {
    let date =
        |f: &str| NaiveDate::parse_from_str(booking[f].as_str()?.get(..10)?, "%Y-%m-%d").ok();
    let (check_in, check_out) = (date("check_in")?, date("check_out")?);
    if check_out <= first || check_in >= next || check_out <= check_in {
        return None;
    }
    let start = check_in.max(first).day();
    let end = if check_out >= next {
        (next - first).num_days() as u32 + 1
    } else {
        check_out.day()
    };
    Some((start, end))
}

async fn calendar(
    State(st): State<AppState>,
    ctx: Ctx,
    Query(p): Query<Params>,
) -> Result<Response, AdminError> {
    let first = month_start(p.month.as_deref(), super::today(&st))?;
    let next = first
        .checked_add_months(Months::new(1))
        .ok_or_else(|| AdminError::BadRequest("no such month".into()))?;
    let prev = first
        .checked_sub_months(Months::new(1))
        .ok_or_else(|| AdminError::BadRequest("no such month".into()))?;
    let chosen = p.property.clone().filter(|s| !s.is_empty());
    let properties = ctx
        .api
        .get(&with_query(
            "/api/v1/properties",
            &[
                ("sort", "name".into()),
                ("per_page", MAX_PROPERTIES.to_string()),
            ],
        ))
        .await?
        .data;
    let mut filter = format!(
        "record.check_in < {} && record.check_out > {} && \
         (!has(record.status) || record.status != \"cancelled\")",
        cel_string(&ymd(next)),
        cel_string(&ymd(first))
    );
    if let Some(id) = &chosen {
        filter.push_str(&format!(" && record.property_id == {}", cel_string(id)));
    }
    let answer = ctx
        .api
        .get(&with_query(
            "/api/v1/bookings",
            &[
                ("filter", filter),
                ("sort", "check_in".into()),
                ("per_page", MAX_BOOKINGS.to_string()),
            ],
        ))
        .await?;
    let bookings = answer.data.as_array().cloned().unwrap_or_default();
    let left_out = answer.meta["total"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(bookings.len() as u64);
    let days = (next - first).num_days() as u32;
    let today = today(&st);
    let day_cells: Vec<Value> = (1..=days)
        .filter_map(|d| first.with_day(d))
        .map(|d| {
            json!({"day": d.day(), "weekend": matches!(d.weekday(), Weekday::Sat | Weekday::Sun),
                        "today": d == today})
        })
        .collect();
    let mut rows = Vec::new();
    let mut table = Vec::new();
    for property in properties.as_array().into_iter().flatten() {
        let pid = property["id"].as_str().unwrap_or_default();
        if chosen.as_deref().is_some_and(|c| c != pid) {
            continue;
        }
        let name = property["name"].as_str().unwrap_or(pid);
        let mut bars = Vec::new();
        for b in bookings
            .iter()
            .filter(|b| b["property_id"].as_str() == Some(pid))
        {
            let guest = b["guest_name"].as_str().unwrap_or("(no name)");
            table.push(json!({"property": name, "id": b["id"], "guest": guest,
                              "check_in": b["check_in"], "check_out": b["check_out"], "source": b["source"]}));
            if let Some((start, end)) = span(b, first, next) {
                bars.push(
                    json!({"id": b["id"], "guest": guest, "start": start, "end": end,
                                 "check_in": b["check_in"], "check_out": b["check_out"]}),
                );
            }
        }
        rows.push(json!({"id": pid, "name": name, "bars": bars}));
    }
    let link = |month: NaiveDate| {
        with_query(
            "/admin/aristay/calendar",
            &[
                ("month", month.format("%Y-%m").to_string()),
                ("property", chosen.clone().unwrap_or_default()),
            ],
        )
    };
    let all: Vec<Value> = properties
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| json!({"id": p["id"], "name": p["name"]}))
        .collect();
    ctx.render(
        &TEMPLATES,
        "aristay/calendar.html",
        json!({"title": format!("Bookings, {}", first.format("%B %Y")),
               "month": first.format("%Y-%m").to_string(), "days": day_cells, "rows": rows,
               "bookings": table, "left_out": left_out, "properties": all, "property": chosen,
               "prev": link(prev), "next": link(next)}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stay_covers_its_nights_within_the_month() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let (first, next) = (d("2026-07-01"), d("2026-08-01"));
        let b = |i: &str, o: &str| json!({"check_in": i, "check_out": o});
        assert_eq!(
            span(&b("2026-07-03", "2026-07-06"), first, next),
            Some((3, 6))
        );
        assert_eq!(
            span(&b("2026-06-28", "2026-07-02"), first, next),
            Some((1, 2))
        );
        assert_eq!(
            span(&b("2026-07-30", "2026-08-04"), first, next),
            Some((30, 32))
        );
        assert_eq!(span(&b("2026-08-01", "2026-08-04"), first, next), None);
        assert_eq!(span(&b("2026-06-20", "2026-07-01"), first, next), None);
    }
}
