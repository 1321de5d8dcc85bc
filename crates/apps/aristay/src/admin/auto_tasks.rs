//! `/admin/aristay/templates`: the auto-task templates, a list and an editor.
//!
//! The editor's "Preview" button shows, before anything is saved, the tasks the template
//! as typed would create for the bookings of the next 30 days (active bookings whose stay
//! overlaps today .. today + 30). The tasks are computed by
//! [`AutoTasks::planned_task`], the very function the automation calls when a booking
//! becomes active, and the template is checked by [`check_template`], the check the
//! automation runs when a template is written: the preview cannot drift from the rule.
//! The bookings and properties are read through the API as the signed-in user.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use bucketbase_engine::RecordId;
use bucketbase_server::AppState;
use bucketbase_server::access::Action;
use bucketbase_server::admin::{
    AdminError, CsrfForm, Ctx, Failure, Form, field_errors, with_query,
};
use chrono::Duration;
use serde_json::{Map, Value, json};

use super::{TEMPLATES, cel_string, could, notice, today};
use crate::automation::{AutoTasks, check_template};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/aristay/templates", get(list))
        .route("/admin/aristay/templates/new", get(new).post(submit_new))
        .route("/admin/aristay/templates/{id}", get(edit).post(submit_edit))
}

const API: &str = "/api/v1/auto_task_templates";
/// How far ahead the preview looks.
const PREVIEW_DAYS: i64 = 30;
/// The most bookings one preview reads (the rest are counted).
const PREVIEW_BOOKINGS: usize = 200;

#[derive(serde::Deserialize)]
struct Params {
    notice: Option<String>,
}

async fn list(
    State(st): State<AppState>,
    ctx: Ctx,
    Query(p): Query<Params>,
) -> Result<Response, AdminError> {
    let uri = with_query(API, &[("sort", "name".into()), ("per_page", "200".into())]);
    let templates = ctx.api.get(&uri).await?.data;
    ctx.render(
        &TEMPLATES,
        "aristay/templates.html",
        json!({"title": "Task templates", "templates": templates,
               "can_create": could(&st, &ctx, "auto_task_templates", Action::Create),
               "notice": notice(p.notice.as_deref())}),
    )
}

async fn new(State(st): State<AppState>, ctx: Ctx) -> Result<Response, AdminError> {
    let template = json!({"active": true, "trigger": "check_out", "offset_days": 0,
                          "time_of_day": "09:00", "task_type": "cleaning"});
    editor(
        &st,
        &ctx,
        None,
        template,
        None,
        Map::new(),
        None,
        StatusCode::OK,
    )
    .await
}

async fn edit(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let id = record_id(&id)?;
    let template = ctx.api.get(&format!("{API}/{id}")).await?.data;
    editor(
        &st,
        &ctx,
        Some(&id),
        template,
        None,
        Map::new(),
        None,
        StatusCode::OK,
    )
    .await
}

async fn submit_new(
    State(st): State<AppState>,
    ctx: Ctx,
    CsrfForm(form): CsrfForm,
) -> Result<Response, AdminError> {
    submit(&st, &ctx, None, form).await
}

async fn submit_edit(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm,
) -> Result<Response, AdminError> {
    let id = record_id(&id)?;
    submit(&st, &ctx, Some(&id), form).await
}

fn record_id(id: &str) -> Result<RecordId, AdminError> {
    RecordId::parse(id).map_err(|_| AdminError::NotFound(format!("no template {id:?}")))
}

/// Preview (nothing is written) or save, as the button pressed says.
async fn submit(
    st: &AppState,
    ctx: &Ctx,
    id: Option<&RecordId>,
    form: Form,
) -> Result<Response, AdminError> {
    let template = from_form(&form);
    let version = form.get("_version").and_then(|v| v.parse::<u64>().ok());
    let mut errors = local_errors(&template);
    if form.get("intent") == Some("preview") {
        let preview = if errors.is_empty() {
            Some(preview(st, ctx, id, &template).await?)
        } else {
            None
        };
        let mut shown = template;
        shown["_version"] = json!(version);
        return editor(st, ctx, id, shown, preview, errors, None, StatusCode::OK).await;
    }
    let failure = if errors.is_empty() {
        let answer = match id {
            Some(id) => {
                ctx.api
                    .call(
                        Method::PATCH,
                        &format!("{API}/{id}"),
                        Some(&template),
                        version,
                    )
                    .await
            }
            None => {
                ctx.api
                    .call(Method::POST, API, Some(&without_nulls(&template)), None)
                    .await
            }
        };
        match answer {
            Ok(_) => {
                return Ok(Redirect::to("/admin/aristay/templates?notice=saved").into_response());
            }
            Err(f) => {
                errors.extend(field_errors(&f.details, &f.message));
                Some(f)
            }
        }
    } else {
        None
    };
    let status = failure
        .as_ref()
        .map_or(StatusCode::UNPROCESSABLE_ENTITY, |f| f.status);
    let mut shown = template;
    shown["_version"] = json!(version);
    editor(st, ctx, id, shown, None, errors, failure, status).await
}

/// The template a submitted editor stands for: every field it has, an emptied one as
/// `null` (so that saving an edit removes it).
fn from_form(form: &Form) -> Value {
    let text = |name: &str| {
        form.get(name)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| json!(t))
            .unwrap_or(Value::Null)
    };
    // A number that does not parse goes as text, for the API to refuse by name.
    let number = |name: &str| match form.get(name).map(str::trim).filter(|t| !t.is_empty()) {
        None => Value::Null,
        Some(t) => t
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| json!(t)),
    };
    let lines = |name: &str| -> Vec<Value> {
        form.get(name)
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| json!(l))
            .collect()
    };
    let properties: Vec<Value> = form
        .0
        .iter()
        .filter(|(k, v)| k == "property_ids" && !v.is_empty())
        .map(|(_, v)| json!(v))
        .collect();
    let mut conditions = Map::new();
    if !properties.is_empty() {
        conditions.insert("property_ids".into(), Value::Array(properties));
    }
    for (key, value) in [
        ("min_nights", number("min_nights")),
        ("max_nights", number("max_nights")),
        ("expr", text("expr")),
    ] {
        if !value.is_null() {
            conditions.insert(key.into(), value);
        }
    }
    let sources = lines("sources");
    if !sources.is_empty() {
        conditions.insert("sources".into(), Value::Array(sources));
    }
    json!({
        "name": text("name"),
        "active": form.get("active").is_some(),
        "trigger": text("trigger"),
        "offset_days": number("offset_days"),
        "time_of_day": text("time_of_day"),
        "task_type": text("task_type"),
        "title_pattern": text("title_pattern"),
        "description": text("description"),
        "assign_to": text("assign_to"),
        "conditions": if conditions.is_empty() { Value::Null } else { Value::Object(conditions) },
    })
}

fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// What the automation's own check says of the template, by field.
fn local_errors(template: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let Err(reason) = check_template(template) {
        let field = if reason.starts_with("conditions.expr") {
            "expr"
        } else {
            "title_pattern"
        };
        out.insert(field.into(), json!(reason));
    }
    for required in ["name", "trigger", "title_pattern"] {
        if template[required].is_null() {
            out.entry(required.to_string())
                .or_insert_with(|| json!("required"));
        }
    }
    out
}

/// The tasks `template` would create for the active bookings of the next 30 days.
async fn preview(
    st: &AppState,
    ctx: &Ctx,
    id: Option<&RecordId>,
    template: &Value,
) -> Result<Value, AdminError> {
    let from = today(st);
    let to = from + Duration::days(PREVIEW_DAYS);
    let (from, to) = (
        from.format("%Y-%m-%d").to_string(),
        to.format("%Y-%m-%d").to_string(),
    );
    let filter = format!(
        "record.check_in < {} && record.check_out > {} && \
         (!has(record.status) || record.status != \"cancelled\")",
        cel_string(&to),
        cel_string(&from)
    );
    let uri = with_query(
        "/api/v1/bookings",
        &[
            ("filter", filter),
            ("sort", "check_in".into()),
            ("per_page", PREVIEW_BOOKINGS.to_string()),
        ],
    );
    let answer = ctx.api.get(&uri).await?;
    let total = answer.meta["total"].as_u64().unwrap_or(0);
    let mut template = without_nulls(template);
    if let Some(id) = id {
        template["id"] = json!(id.as_str());
    }
    let automation = AutoTasks::default();
    let mut properties: HashMap<String, Value> = HashMap::new();
    let (mut tasks, mut unmatched) = (Vec::new(), 0usize);
    let bookings = answer.data.as_array().cloned().unwrap_or_default();
    for booking in &bookings {
        let Some(booking_id) = booking["id"].as_str().and_then(|s| RecordId::parse(s).ok()) else {
            continue;
        };
        let property_id = booking["property_id"].as_str().unwrap_or_default();
        if !properties.contains_key(property_id) {
            let property = ctx
                .api
                .get(&format!("/api/v1/properties/{property_id}"))
                .await
                .map(|a| a.data)
                .unwrap_or(Value::Null);
            properties.insert(property_id.to_string(), property);
        }
        let property = &properties[property_id];
        match automation.planned_task(&template, &booking_id, booking, property) {
            Some(task) => tasks.push(json!({
                "booking_id": booking_id.as_str(),
                "guest": booking["guest_name"],
                "property": property["name"].as_str().unwrap_or(property_id),
                "check_in": booking["check_in"], "check_out": booking["check_out"],
                "title": task["title"], "type": task["type"], "due_at": task["due_at"],
                "time_of_day": task["time_of_day"], "assigned_to": task["assigned_to"],
            })),
            None => unmatched += 1,
        }
    }
    Ok(json!({
        "from": from, "to": to, "tasks": tasks, "unmatched": unmatched,
        "bookings": bookings.len(), "left_out": (total as usize).saturating_sub(bookings.len()),
        "inactive": template["active"] == json!(false),
    }))
}

/// The editor page, with the template as typed, an optional preview, and the errors
/// beside their fields.
#[allow(clippy::too_many_arguments)]
async fn editor(
    st: &AppState,
    ctx: &Ctx,
    id: Option<&RecordId>,
    template: Value,
    preview: Option<Value>,
    errors: Map<String, Value>,
    failure: Option<Failure>,
    status: StatusCode,
) -> Result<Response, AdminError> {
    let action_needed = if id.is_some() {
        Action::Update
    } else {
        Action::Create
    };
    let can_save = could(st, ctx, "auto_task_templates", action_needed);
    let uri = with_query(
        "/api/v1/properties",
        &[("sort", "name".into()), ("per_page", "500".into())],
    );
    let chosen: Vec<&str> = template
        .pointer("/conditions/property_ids")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let properties: Vec<Value> = ctx
        .api
        .get(&uri)
        .await
        .map(|a| a.data)
        .unwrap_or(Value::Null)
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let pid = p["id"].as_str().unwrap_or_default();
            json!({"id": pid, "name": p["name"], "selected": chosen.contains(&pid)})
        })
        .collect();
    let sources = template
        .pointer("/conditions/sources")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let title = match (id, template["name"].as_str()) {
        (Some(_), Some(name)) => format!("Template {name}"),
        _ => "New task template".to_string(),
    };
    let action = match id {
        Some(id) => format!("/admin/aristay/templates/{id}"),
        None => "/admin/aristay/templates/new".to_string(),
    };
    let failure =
        failure.map(|f| json!({"status": f.status.as_u16(), "code": f.code, "message": f.message}));
    ctx.render_with(
        &TEMPLATES,
        status,
        "aristay/template.html",
        json!({"title": title, "action": action, "id": id.map(|i| i.as_str()), "t": template,
               "sources": sources, "properties": properties, "errors": errors,
               "failure": failure, "preview": preview, "can_save": can_save,
               "triggers": ["booking_created", "check_in", "check_out"],
               "task_types": ["cleaning", "inspection", "maintenance", "other"]}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)]) -> Form {
        Form(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn an_editor_form_is_the_template_it_shows() {
        let t = from_form(&form(&[
            ("name", " Turnover "),
            ("trigger", "check_out"),
            ("offset_days", "-1"),
            ("title_pattern", "Clean {property.name}"),
            ("property_ids", "p1"),
            ("property_ids", "p2"),
            ("min_nights", "2"),
            ("sources", "airbnb\n\n booking \n"),
            ("description", ""),
        ]));
        assert_eq!(t["name"], "Turnover");
        assert_eq!(t["active"], false, "an unticked box");
        assert_eq!(t["offset_days"], -1);
        assert_eq!(t["description"], Value::Null, "emptied: removed on save");
        assert_eq!(
            t["conditions"],
            json!({"property_ids": ["p1", "p2"], "min_nights": 2, "sources": ["airbnb", "booking"]})
        );
        assert!(local_errors(&t).is_empty());
        // A number that is no number goes as text, for the API to refuse by name.
        let t = from_form(&form(&[("offset_days", "soon")]));
        assert_eq!(t["offset_days"], "soon");
        assert_eq!(t["conditions"], Value::Null);
        let errors = local_errors(&t);
        assert_eq!(errors.len(), 3, "{errors:?}");
    }
}
