//! `/admin/aristay/import`: booking import from an .xlsx workbook, in three steps.
//!
//! 1. Upload: the file is checked by the importer's own reader ([`read_workbook`]: size,
//!    magic bytes, zip limits) to detect its headers, and kept in the [`Stash`].
//! 2. Mapping: a saved `booking_import_templates` record, or one built here from the
//!    detected headers (each booking field gets a header, guessed from its name); it may
//!    be saved as a template on the way.
//! 3. Dry run, then commit: both are the API's `POST /api/v1/aristay/bookings/import`
//!    (called in process with the stashed file), so every check, limit, mode and count is
//!    the importer's. The report is a table of rows by row number, the bad ones
//!    highlighted with their errors; the commit form repeats the mapping and the mode.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use bucketbase_server::AppState;
use bucketbase_server::access::Action;
use bucketbase_server::admin::upload::{CsrfMultipart, Part};
use bucketbase_server::admin::{AdminError, CsrfForm, Ctx, Failure, Form, with_query};
use serde_json::{Value, json};

use super::TEMPLATES;
use super::stash::{Stash, Upload};
use crate::import::mapping::{Field, default_date_formats};
use crate::import::xlsx::{Limits, read_workbook};

const API: &str = "/api/v1/aristay/bookings/import";
/// Room for the form's framing and fields around the file.
const FORM_SLACK: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/aristay/import", get(upload_page).post(upload))
        .route("/admin/aristay/import/run", post(run))
        .layer(Extension(Arc::new(Stash::default())))
}

/// The API's own refusal for a caller who may not create bookings, before any upload.
fn allowed(st: &AppState, ctx: &Ctx) -> Result<(), AdminError> {
    if super::could(st, ctx, "bookings", Action::Create) {
        return Ok(());
    }
    Err(AdminError::Api(Failure {
        status: StatusCode::FORBIDDEN,
        code: "forbidden".into(),
        message: "importing bookings needs the right to create bookings".into(),
        details: Value::Null,
    }))
}

async fn upload_page(State(st): State<AppState>, ctx: Ctx) -> Result<Response, AdminError> {
    allowed(&st, &ctx)?;
    upload_form(&ctx, None, StatusCode::OK)
}

fn upload_form(
    ctx: &Ctx,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, AdminError> {
    ctx.render_with(
        &TEMPLATES,
        status,
        "aristay/import.html",
        json!({"title": "Import bookings", "error": error,
               "max_mib": Limits::default().max_file_bytes / (1024 * 1024)}),
    )
}

/// Step 1: the upload. A file the reader refuses is shown on the upload page.
async fn upload(
    State(st): State<AppState>,
    Extension(stash): Extension<Arc<Stash>>,
    ctx: Ctx,
    req: Request,
) -> Result<Response, AdminError> {
    allowed(&st, &ctx)?;
    let limits = Limits::default();
    let form = CsrfMultipart::read(&st, req, limits.max_file_bytes as usize + FORM_SLACK).await?;
    let Some(file) = form.file("file") else {
        return upload_form(
            &ctx,
            Some("Choose an .xlsx file.".into()),
            StatusCode::BAD_REQUEST,
        );
    };
    let sheet = match read_workbook(&file.bytes, &limits) {
        Ok(sheet) => sheet,
        Err(e) => {
            let status = crate::routes::status(e.kind());
            return upload_form(&ctx, Some(e.to_string()), status);
        }
    };
    let token = st.db.new_id().to_string();
    stash.put(Upload {
        token: token.clone(),
        owner: ctx.caller().uuid().to_string(),
        file_name: crate::files::sanitize_filename(file.file_name.as_deref().unwrap_or_default()),
        bytes: Arc::new(file.bytes.clone()),
        at: st.db.now(),
    });
    let chosen = guess(&sheet.headers);
    mapping_page(&ctx, &token, &sheet.headers, &chosen, None, StatusCode::OK).await
}

/// Which header feeds each booking field, guessed from the header's words.
fn guess(headers: &[String]) -> BTreeMap<String, String> {
    let words: &[(Field, &[&str])] = &[
        (Field::Property, &["listing", "property", "unit", "house"]),
        (
            Field::CheckIn,
            &["arrival", "checkin", "check in", "check-in", "start"],
        ),
        (
            Field::CheckOut,
            &["departure", "checkout", "check out", "check-out", "end"],
        ),
        (Field::GuestName, &["guest", "name"]),
        (Field::GuestEmail, &["email", "e-mail"]),
        (Field::GuestPhone, &["phone", "mobile"]),
        (Field::Guests, &["guests", "people", "pax"]),
        (Field::Source, &["channel", "source", "platform"]),
        (
            Field::ExternalId,
            &["confirmation", "reservation", "code", "booking id"],
        ),
        (Field::Status, &["status"]),
        (Field::Notes, &["notes", "comment"]),
        (Field::TotalPrice, &["price", "total", "amount"]),
    ];
    let mut out = BTreeMap::new();
    for (field, names) in words {
        let hit = names.iter().find_map(|n| {
            headers
                .iter()
                .find(|h| !out.values().any(|v| v == *h) && h.to_lowercase().contains(n))
        });
        if let Some(h) = hit {
            out.insert(field.name().to_string(), h.clone());
        }
    }
    out
}

/// Step 2: choose or build the mapping.
async fn mapping_page(
    ctx: &Ctx,
    token: &str,
    headers: &[String],
    chosen: &BTreeMap<String, String>,
    failure: Option<Value>,
    status: StatusCode,
) -> Result<Response, AdminError> {
    let saved = ctx
        .api
        .get(&with_query(
            "/api/v1/booking_import_templates",
            &[("sort", "name".into()), ("per_page", "200".into())],
        ))
        .await
        .map(|a| a.data)
        .unwrap_or(Value::Null);
    let fields: Vec<Value> = Field::ALL
        .iter()
        .map(|f| {
            json!({"name": f.name(), "required": f.is_required(),
                        "chosen": chosen.get(f.name())})
        })
        .collect();
    ctx.render_with(
        &TEMPLATES,
        status,
        "aristay/import_map.html",
        json!({"title": "Import bookings: mapping", "token": token, "headers": headers,
               "fields": fields, "saved": saved, "failure": failure,
               "date_formats": default_date_formats().join("\n")}),
    )
}

/// The mapping the form names: a saved template, or the columns chosen (with a default
/// source and the date formats), as the import API takes them.
fn mapping_of(form: &Form) -> (Option<String>, Option<Value>) {
    if let Some(id) = form.get("template_id").filter(|t| !t.is_empty()) {
        return (Some(id.to_string()), None);
    }
    if let Some(m) = form.get("mapping").filter(|m| !m.is_empty()) {
        return (None, serde_json::from_str(m).ok());
    }
    let columns: serde_json::Map<String, Value> = Field::ALL
        .iter()
        .filter_map(|f| {
            let header = form.get(&format!("col_{}", f.name()))?;
            (!header.is_empty()).then(|| (f.name().to_string(), json!(header)))
        })
        .collect();
    let mut mapping = json!({"columns": columns});
    if let Some(source) = form
        .get("default_source")
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        mapping["defaults"] = json!({"source": source});
    }
    let formats: Vec<&str> = form
        .get("date_formats")
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if !formats.is_empty() {
        mapping["date_formats"] = json!(formats);
    }
    (None, Some(mapping))
}

/// Step 3: a dry run or the import, through the API with the stashed file.
async fn run(
    State(st): State<AppState>,
    Extension(stash): Extension<Arc<Stash>>,
    ctx: Ctx,
    CsrfForm(form): CsrfForm,
) -> Result<Response, AdminError> {
    let token = form.get("token").unwrap_or_default();
    let Some(upload) = stash.get(token, ctx.caller().uuid(), st.db.now()) else {
        return upload_form(
            &ctx,
            Some(
                "The uploaded file has expired (or the server restarted): upload it again.".into(),
            ),
            StatusCode::GONE,
        );
    };
    let (mut template_id, mapping) = mapping_of(&form);
    let dry_run = form.get("intent") != Some("commit");
    let mode = match form.get("mode") {
        Some("partial") => "partial",
        _ => "all_or_nothing",
    };
    let automations = form.get("run_automations").is_some();
    if let (Some(name), Some(mapping)) = (
        form.get("save_as").map(str::trim).filter(|n| !n.is_empty()),
        &mapping,
    ) {
        let body = json!({"name": name, "mapping": mapping});
        match ctx
            .api
            .call(
                Method::POST,
                "/api/v1/booking_import_templates",
                Some(&body),
                None,
            )
            .await
        {
            Ok(a) => template_id = a.data["id"].as_str().map(str::to_string),
            Err(f) => return again(&ctx, &upload, &form, f).await,
        }
    }
    let mut parts = vec![Part::file(
        "file",
        &upload.file_name,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        upload.bytes.as_ref().clone(),
    )];
    match (&template_id, &mapping) {
        (Some(id), _) => parts.push(Part::text("template_id", id)),
        (None, Some(m)) => parts.push(Part::text("mapping", &m.to_string())),
        (None, None) => {
            return Err(AdminError::BadRequest(
                "choose a saved mapping or build one".into(),
            ));
        }
    }
    parts.push(Part::text(
        "dry_run",
        if dry_run { "true" } else { "false" },
    ));
    parts.push(Part::text("mode", mode));
    parts.push(Part::text(
        "run_automations",
        if automations { "true" } else { "false" },
    ));
    let (report, status) = match ctx.api.post_multipart(API, &parts).await {
        Ok(answer) => (answer.data, StatusCode::OK),
        // An all-or-nothing import with bad rows: the report is the refusal's details.
        Err(f) if f.code == "validation_failed" && f.details.is_object() => {
            (f.details, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(f) => return again(&ctx, &upload, &form, f).await,
    };
    let commit = json!({"token": token, "template_id": template_id,
                        "mapping": if template_id.is_none() { mapping.map(|m| m.to_string()) } else { None },
                        "mode": mode, "run_automations": automations});
    ctx.render_with(
        &TEMPLATES,
        status,
        "aristay/import_report.html",
        json!({"title": if dry_run { "Import bookings: dry run" } else { "Import bookings: result" },
               "file": upload.file_name, "report": report, "rows": rows(&report),
               "commit": commit}),
    )
}

/// Back to the mapping step with the API's refusal (a mapping that does not fit, a
/// file the importer refuses), the choices kept.
async fn again(
    ctx: &Ctx,
    upload: &Upload,
    form: &Form,
    f: Failure,
) -> Result<Response, AdminError> {
    let headers = read_workbook(&upload.bytes, &Limits::default())
        .map(|s| s.headers)
        .unwrap_or_default();
    let chosen: BTreeMap<String, String> = Field::ALL
        .iter()
        .filter_map(|field| {
            let h = form.get(&format!("col_{}", field.name()))?;
            Some((field.name().to_string(), h.to_string()))
        })
        .collect();
    let failure = json!({"status": f.status.as_u16(), "code": f.code, "message": f.message,
                         "issues": f.details.get("issues")});
    mapping_page(
        ctx,
        &upload.token,
        &headers,
        &chosen,
        Some(failure),
        f.status,
    )
    .await
}

/// One line per row of the report (its results and its errors, by row number).
fn rows(report: &Value) -> Vec<Value> {
    let mut rows: BTreeMap<u64, Value> = BTreeMap::new();
    for r in report["results"].as_array().into_iter().flatten() {
        let n = r["row"].as_u64().unwrap_or(0);
        rows.insert(
            n,
            json!({"row": n, "outcome": r["outcome"], "booking_id": r["booking_id"], "errors": []}),
        );
    }
    for e in report["errors"].as_array().into_iter().flatten() {
        let n = e["row"].as_u64().unwrap_or(0);
        let row = rows
            .entry(n)
            .or_insert_with(|| json!({"row": n, "outcome": "failed", "errors": []}));
        let what = e["column"]
            .as_str()
            .or(e["field"].as_str())
            .unwrap_or_default();
        let message = e["message"].as_str().unwrap_or_default();
        if let Some(list) = row["errors"].as_array_mut() {
            list.push(json!({"column": what, "message": message}));
        }
    }
    rows.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_guessed_from_the_headers_once_each() {
        let headers: Vec<String> = [
            "Listing",
            "Arrival",
            "Departure",
            "Guest",
            "Confirmation code",
            "Channel",
            "Guest email",
        ]
        .map(String::from)
        .to_vec();
        let g = guess(&headers);
        assert_eq!(g["property"], "Listing");
        assert_eq!(g["check_in"], "Arrival");
        assert_eq!(g["check_out"], "Departure");
        assert_eq!(g["guest_name"], "Guest");
        assert_eq!(g["guest_email"], "Guest email");
        assert_eq!(g["external_id"], "Confirmation code");
        assert_eq!(g["source"], "Channel");
        assert!(!g.contains_key("total_price"));
    }

    #[test]
    fn report_rows_join_results_and_errors_by_row_number() {
        let report = json!({
            "results": [{"row": 2, "outcome": "created"}, {"row": 3, "outcome": "failed"}],
            "errors": [{"row": 3, "column": "Arrival", "message": "not a date"},
                       {"row": 3, "field": "check_out", "message": "required"},
                       {"row": 9, "column": "Listing", "message": "no property"}]});
        let rows = rows(&report);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["errors"], json!([]));
        assert_eq!(rows[1]["errors"].as_array().unwrap().len(), 2);
        assert_eq!(rows[1]["errors"][1]["column"], "check_out");
        assert_eq!(rows[2]["row"], 9);
        assert_eq!(rows[2]["outcome"], "failed");
    }
}
