//! File uploads in the admin UI: a multipart form from the browser, checked by the same
//! CSRF rule as every admin form, and handed on to an upload route of the JSON API
//! (aristay's booking import, task photos) as a multipart request in process.
//!
//! Why pages do not post straight to the API: the API answers JSON, and a person needs a
//! page (the dry run's table, the task list again). Why the bytes are read whole: the
//! CSRF token travels as a form field, which may come after the file, and nothing of an
//! unchecked form may reach the API. The whole body is bounded by the limit the page
//! gives (the API's own limit for that upload plus room for the form's framing), so a
//! too-large file is a 413 page before anything else happens.

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};

use super::api::Failure;
use super::error::AdminError;
use crate::AppState;
use crate::access::{CSRF_HEADER, csrf_ok};

/// One field of a multipart form: text, or a file with its name and declared type.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

impl Part {
    /// A text field.
    pub fn text(name: &str, value: &str) -> Part {
        Part {
            name: name.into(),
            file_name: None,
            content_type: None,
            bytes: value.as_bytes().to_vec(),
        }
    }

    /// A file field.
    pub fn file(name: &str, file_name: &str, content_type: &str, bytes: Vec<u8>) -> Part {
        Part {
            name: name.into(),
            file_name: Some(file_name.into()),
            content_type: Some(content_type.into()),
            bytes,
        }
    }
}

/// A multipart form that passed the CSRF check (the `csrf_token` field or a same-origin
/// `Origin`), its fields in order.
#[derive(Debug, Default)]
pub struct CsrfMultipart(pub Vec<Part>);

impl CsrfMultipart {
    /// Reads the form of `req`, at most `limit` bytes in all.
    pub async fn read(st: &AppState, req: Request, limit: usize) -> Result<Self, AdminError> {
        let (mut parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
            AdminError::Api(Failure {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "payload_too_large".into(),
                message: format!("the upload is larger than the limit of {limit} bytes"),
                details: serde_json::Value::Null,
            })
        })?;
        let content_type = parts
            .headers
            .get(CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("text/plain"));
        let inner = Request::builder()
            .header(CONTENT_TYPE, content_type)
            .body(Body::from(bytes))
            .map_err(|e| AdminError::Internal(e.to_string()))?;
        let mut form = Multipart::from_request(inner, &())
            .await
            .map_err(|e| AdminError::BadRequest(e.body_text()))?;
        let mut fields = Vec::new();
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| AdminError::BadRequest(e.body_text()))?
        {
            let name = field.name().unwrap_or_default().to_string();
            let file_name = field.file_name().map(str::to_string);
            let content_type = field.content_type().map(str::to_string);
            let bytes = field
                .bytes()
                .await
                .map_err(|e| AdminError::BadRequest(e.body_text()))?
                .to_vec();
            fields.push(Part {
                name,
                file_name,
                content_type,
                bytes,
            });
        }
        let form = CsrfMultipart(fields);
        if let Some(token) = form.text("csrf_token")
            && let Ok(value) = HeaderValue::from_str(&token)
        {
            parts.headers.insert(CSRF_HEADER, value);
        }
        if !csrf_ok(&parts, &st.settings) {
            return Err(AdminError::Csrf);
        }
        Ok(form)
    }

    /// A text field's value (UTF-8, lossy).
    pub fn text(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|p| p.name == name)
            .map(|p| String::from_utf8_lossy(&p.bytes).into_owned())
    }

    /// A file field that holds a file (a file input left empty sends an empty part).
    pub fn file(&self, name: &str) -> Option<&Part> {
        self.0
            .iter()
            .find(|p| p.name == name && p.file_name.as_deref().is_some_and(|n| !n.is_empty()))
    }
}

/// The `multipart/form-data` body of `parts`, and its content type.
pub fn encode(parts: &[Part]) -> (String, Vec<u8>) {
    // A boundary that none of the bytes contain (checked, not hoped for).
    let mut n = 0u32;
    let boundary = loop {
        let b = format!("bucketbase-admin-boundary-{n}");
        if !parts.iter().any(|p| contains(&p.bytes, b.as_bytes())) {
            break b;
        }
        n += 1;
    };
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let name = quoted(&p.name);
        match &p.file_name {
            Some(file) => out.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{}\"\r\n",
                    quoted(file)
                )
                .as_bytes(),
            ),
            None => out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n").as_bytes(),
            ),
        }
        if let Some(t) = &p.content_type {
            out.extend_from_slice(format!("Content-Type: {}\r\n", quoted(t)).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&p.bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), out)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A header parameter value without the characters that would end it.
fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '"' | '\r' | '\n' | '\\'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_encoded_form_reads_back() {
        let parts = vec![
            Part::text("mode", "partial"),
            Part::file(
                "file",
                "a\"b.xlsx",
                "application/octet-stream",
                b"--bucketbase-admin-boundary-0 inside".to_vec(),
            ),
        ];
        let (content_type, body) = encode(&parts);
        assert!(content_type.ends_with("boundary-1"), "{content_type}");
        let req = Request::builder()
            .header(CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap();
        let mut form = Multipart::from_request(req, &()).await.unwrap();
        let f = form.next_field().await.unwrap().unwrap();
        assert_eq!(f.name(), Some("mode"));
        assert_eq!(f.text().await.unwrap(), "partial");
        let f = form.next_field().await.unwrap().unwrap();
        assert_eq!(f.file_name(), Some("ab.xlsx"));
        assert_eq!(
            f.bytes().await.unwrap().as_ref(),
            b"--bucketbase-admin-boundary-0 inside"
        );
    }
}
