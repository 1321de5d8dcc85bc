//! `POST /api/v1/aristay/bookings/import` (multipart: `file`, `template_id` or `mapping`,
//! `dry_run`, `mode`, `run_automations`): see [`crate::import::run`]. The form is read
//! into an [`ImportForm`] after the caller is known to be allowed to import, so a caller
//! who may not import learns nothing about their form.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bucketbase_engine::collection::keys::is_live;
use bucketbase_server::AppState;
use bucketbase_server::access::{Action, Caller};
use bucketbase_server::contract::Resource;
use bucketbase_server::envelope::{Envelope, RequestId};
use bucketbase_server::error::{ApiError, Result};
use bucketbase_server::form::Form;
use bucketbase_server::routes::{definition, record_id};
use serde_json::{Value, json};

use super::{MULTIPART_SLACK, doc_error, doc_ok, domain_error};
use crate::coll;
use crate::files::sanitize_filename;
use crate::import::mapping::Mapping;
use crate::import::run::{ImportError, ImportStatus, Mode, Request, import_bookings};
use crate::import::xlsx::Limits;

const PATH: &str = "/api/v1/aristay/bookings/import";

pub fn resource() -> Resource {
    let limit = Limits::default().max_file_bytes as usize + MULTIPART_SLACK;
    Resource::new().route_json(
        PATH,
        post(import).layer(DefaultBodyLimit::max(limit)),
        openapi(),
    )
}

/// The import form, read and checked.
pub struct ImportForm {
    pub file_name: String,
    pub bytes: Vec<u8>,
    pub template_id: Option<String>,
    pub mapping: Option<Mapping>,
    pub dry_run: bool,
    pub mode: Mode,
    pub run_automations: bool,
}

fn invalid_mapping(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_mapping", message)
}

impl ImportForm {
    /// Reads the form; the file may hold at most `limits.max_file_bytes`.
    pub async fn read(form: Multipart, limits: &Limits) -> Result<ImportForm> {
        let mut form = Form::from(form);
        let mut file = None;
        let mut out = ImportForm {
            file_name: String::new(),
            bytes: Vec::new(),
            template_id: None,
            mapping: None,
            dry_run: false,
            mode: Mode::default(),
            run_automations: true,
        };
        while let Some(mut field) = form.next().await? {
            match field.name() {
                "file" => {
                    let name = sanitize_filename(field.file_name().unwrap_or("bookings.xlsx"));
                    file = Some((name, field.bytes(limits.max_file_bytes as usize).await?));
                }
                "template_id" => out.template_id = Some(field.text().await?),
                "mapping" => {
                    let text = field.text().await?;
                    out.mapping = Some(
                        serde_json::from_str::<Mapping>(&text)
                            .map_err(|e| invalid_mapping(format!("mapping: {e}")))?,
                    );
                }
                "dry_run" => out.dry_run = field.flag().await?,
                "run_automations" => out.run_automations = field.flag().await?,
                "mode" => {
                    out.mode = field
                        .text()
                        .await?
                        .trim()
                        .parse()
                        .map_err(ApiError::bad_request)?
                }
                _ => {
                    return Err(
                        field.unknown("file, template_id, mapping, dry_run, mode, run_automations")
                    );
                }
            }
        }
        (out.file_name, out.bytes) =
            file.ok_or_else(|| ApiError::bad_request("the form needs a file field"))?;
        Ok(out)
    }
}

/// A mapping from a saved `booking_import_templates` record.
fn saved_mapping(st: &AppState, caller: &Caller, id: &str) -> Result<Mapping> {
    let templates = coll("booking_import_templates");
    let def = definition(&st.db.snapshot(), &templates)?;
    let id = record_id(id)?;
    let template = st
        .db
        .snapshot()
        .get(&templates, &id)
        .map(|d| d.value())
        .filter(|t| is_live(t) && caller.may(&def, Action::View, t))
        .ok_or_else(|| ApiError::not_found(format!("booking_import_templates/{id} not found")))?;
    serde_json::from_value(template.get("mapping").cloned().unwrap_or(Value::Null))
        .map_err(|e| invalid_mapping(format!("the template's mapping is not usable: {e}")))
}

fn import_error(e: ImportError) -> ApiError {
    match e {
        ImportError::File(e) => domain_error(e.kind(), e.code(), e.to_string()),
        ImportError::Mapping(e) => domain_error(e.kind(), e.code(), e.to_string())
            .with_details(json!({"issues": e.issues})),
        ImportError::Engine(e) => ApiError::from(e),
        ImportError::TooLarge {
            rows,
            rows_fit,
            limit,
        } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
            .with_details(json!({"rows": rows, "rows_fit": rows_fit, "max_entry_bytes": limit})),
        ImportError::Internal(message) => {
            tracing::error!(%message, "booking import failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        }
    }
}

async fn import(
    State(st): State<AppState>,
    req: RequestId,
    caller: Caller,
    form: Multipart,
) -> Result<Response> {
    let bookings = definition(&st.db.snapshot(), &coll("bookings"))?;
    if !caller.may(&bookings, Action::Create, &json!({})) {
        return Err(ApiError::forbidden(
            "importing bookings needs the right to create bookings",
        ));
    }
    let limits = Limits::default();
    let form = ImportForm::read(form, &limits).await?;
    let mapping = match (form.mapping, &form.template_id) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "send either template_id or mapping, not both",
            ));
        }
        (Some(m), None) => m,
        (None, Some(id)) => saved_mapping(&st, &caller, id)?,
        (None, None) => {
            return Err(ApiError::bad_request(
                "the form needs template_id or mapping",
            ));
        }
    };
    let request = Request {
        file_name: form.file_name,
        bytes: form.bytes,
        mapping,
        template_id: form.template_id,
        dry_run: form.dry_run,
        mode: form.mode,
        run_automations: form.run_automations,
        limits,
    };
    let report = import_bookings(
        &st.db,
        caller.uuid(),
        Some(&req.0),
        request,
        Arc::new(|_, _| {}),
    )
    .await
    .map_err(import_error)?;
    if report.status == ImportStatus::Rejected {
        let message = format!(
            "{} of {} rows cannot be imported; nothing was written (mode all_or_nothing)",
            report.counts.failed, report.rows
        );
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
        .with_details(serde_json::to_value(&report).unwrap_or_default()));
    }
    let envelope = if report.dry_run {
        Envelope::ok(&req, &report)
    } else {
        Envelope::created(&req, &report)
    };
    Ok(envelope.into_response())
}

fn openapi() -> Value {
    json!({"post": {
    "tags": ["aristay"],
    "summary": "Import bookings from an .xlsx workbook",
    "description": "Upsert by (source, external_id); every row checked against every booking rule; a dry run, all_or_nothing or partial. Answers the report (counts, the first row errors with errors_truncated, per-row outcomes with results_truncated); an import-log record keeps it. See docs/aristay.md.",
    "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "the .xlsx workbook (at most 10 MiB)"},
            "template_id": {"type": "string", "description": "a booking_import_templates record"},
            "mapping": {"type": "string", "description": "an inline column mapping (JSON), instead of template_id"},
            "dry_run": {"type": "boolean", "default": false},
            "mode": {"enum": ["all_or_nothing", "partial"], "default": "all_or_nothing"},
            "run_automations": {"type": "boolean", "default": true}
        }}}}},
    "responses": {
        "200": doc_ok("The dry run's report"),
        "201": doc_ok("The import's report (committed or partial)"),
        "400": doc_error("A malformed form, or a mapping that does not fit the workbook (invalid_mapping), or a workbook with nothing to import (empty_sheet)"),
        "403": doc_error("Not allowed to create bookings"),
        "404": doc_error("Unknown template"),
        "413": doc_error("File too large, a zip bomb, too much cell text (too_much_text), or rows that do not fit in one log entry (too_large; error.details.rows_fit)"),
        "415": doc_error("Not an .xlsx workbook"),
        "422": doc_error("Rows refused in all_or_nothing mode: validation_failed, with the report in error.details")
    }}})
}
