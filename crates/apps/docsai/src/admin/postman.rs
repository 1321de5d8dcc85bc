//! `/admin/docsai/postman`: import a Postman collection file (v2.0 / v2.1) from the
//! browser, with a dry run, and read what the import did (or would do).
//!
//! The form is a plain multipart upload (file + dry-run checkbox + the CSRF field); the
//! page hands the file, as it is, to the API's `POST /api/v1/docsai/api_collections/import`
//! in process, so the size limit, the format checks, the re-import by `_postman_id` and
//! the report are the API's, written once. A file the API refuses (not JSON, not a
//! Postman collection, a part of the wrong shape, too large) is shown on the form with the
//! API's code and message; a refusal that is not about the file (403) is an error page.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use bucketbase_server::AppState;
use bucketbase_server::access::Action;
use bucketbase_server::admin::upload::CsrfMultipart;
use bucketbase_server::admin::{AdminError, Ctx, Failure, with_query};
use serde_json::{Value, json};

use super::TEMPLATES;
use crate::postman::Limits;

const API: &str = "/api/v1/docsai/api_collections/import";
/// Room for the form's framing and fields around the file.
const FORM_SLACK: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/docsai/postman", get(form_page).post(upload))
}

/// The API's own refusal for a caller who may not create api_collections, before any
/// upload is read.
fn allowed(st: &AppState, ctx: &Ctx) -> Result<(), AdminError> {
    let snap = st.db.snapshot();
    let may = snap
        .definition(&crate::coll("api_collections"))
        .is_some_and(|def| bucketbase_server::admin::could(ctx.caller(), def, Action::Create));
    if may {
        return Ok(());
    }
    Err(AdminError::Api(Failure {
        status: StatusCode::FORBIDDEN,
        code: "forbidden".into(),
        message: "importing a Postman collection needs the right to create api_collections".into(),
        details: Value::Null,
    }))
}

async fn form_page(State(st): State<AppState>, ctx: Ctx) -> Result<Response, AdminError> {
    allowed(&st, &ctx)?;
    render(&ctx, StatusCode::OK, json!({"dry_run": true}))
}

fn render(ctx: &Ctx, status: StatusCode, mut page: Value) -> Result<Response, AdminError> {
    page["title"] = json!("Import a Postman collection");
    page["max_mib"] = json!(Limits::default().max_bytes / (1024 * 1024));
    ctx.render_with(&TEMPLATES, status, "docsai/postman.html", page)
}

async fn upload(
    State(st): State<AppState>,
    ctx: Ctx,
    req: Request,
) -> Result<Response, AdminError> {
    allowed(&st, &ctx)?;
    let form = CsrfMultipart::read(&st, req, Limits::default().max_bytes + FORM_SLACK).await?;
    let dry_run = form.text("dry_run").is_some();
    let Some(file) = form.file("file") else {
        let error = json!({"message": "Choose a Postman collection file (.json) to import."});
        return render(
            &ctx,
            StatusCode::BAD_REQUEST,
            json!({"dry_run": dry_run, "failure": error}),
        );
    };
    let file_name = file.file_name.clone().unwrap_or_default();
    let uri = with_query(
        API,
        &[("dry_run", if dry_run { "true" } else { "" }.into())],
    );
    match ctx
        .api
        .post_bytes(&uri, "application/json", file.bytes.clone())
        .await
    {
        Ok(answer) => render(
            &ctx,
            StatusCode::OK,
            // After a dry run the form offers the real import (the file is chosen again).
            json!({"dry_run": false, "file": file_name, "report": report(&answer.data)}),
        ),
        // The file's fault: shown on the form, with the API's status.
        Err(f) if is_about_the_file(f.status) => render(
            &ctx,
            f.status,
            json!({"dry_run": dry_run, "file": file_name,
                   "failure": {"status": f.status.as_u16(), "code": f.code, "message": f.message}}),
        ),
        Err(f) => Err(f.into()),
    }
}

fn is_about_the_file(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNPROCESSABLE_ENTITY
    )
}

/// The API's report, with one row per nested array for the template's table.
fn report(data: &Value) -> Value {
    let mut report = data.clone();
    report["parts"] = json!(
        [("Requests", "requests"), ("Mocks", "mocks")]
            .iter()
            .map(|(label, key)| {
                let c = &data[*key];
                json!({"label": label, "added": c["added"], "updated": c["updated"],
                       "removed": c["removed"], "unchanged": c["unchanged"]})
            })
            .collect::<Vec<_>>()
    );
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_has_a_row_per_array() {
        let data = json!({"outcome": "created", "requests": {"added": 2, "updated": 0, "removed": 0, "unchanged": 0},
                          "mocks": {"added": 0, "updated": 0, "removed": 0, "unchanged": 1}});
        let r = report(&data);
        assert_eq!(r["parts"][0]["label"], "Requests");
        assert_eq!(r["parts"][0]["added"], 2);
        assert_eq!(r["parts"][1]["unchanged"], 1);
        assert_eq!(r["outcome"], "created");
    }

    #[test]
    fn only_a_bad_file_stays_on_the_form() {
        assert!(is_about_the_file(StatusCode::BAD_REQUEST));
        assert!(is_about_the_file(StatusCode::PAYLOAD_TOO_LARGE));
        assert!(!is_about_the_file(StatusCode::FORBIDDEN));
    }
}
