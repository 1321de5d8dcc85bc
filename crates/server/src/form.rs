//! Multipart forms (uploads): the fields of a form read with limits and parsed once, so
//! that a route turns a form into a typed value (`ImportForm`, `PhotoForm` in aristay)
//! and never handles raw chunks or parses a flag by itself.
//!
//! A field larger than its limit is a 413 as soon as the limit is passed (the rest is not
//! read); a broken form is a 400; flags are parsed by [`crate::params::flag`], so a form
//! flag means what the same flag means in a query.

use axum::extract::Multipart;
use axum::extract::multipart::{Field, MultipartError};
use axum::http::StatusCode;

use crate::error::{ApiError, Result};

/// The most a text field (a mapping, a caption, a flag) may hold.
pub const MAX_TEXT_BYTES: usize = 256 * 1024;

fn multipart_error(e: MultipartError) -> ApiError {
    let status = e.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "payload_too_large"
    } else {
        "bad_request"
    };
    ApiError::new(status, code, e.body_text())
}

/// 413 for a file over `max` bytes.
pub fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the file is larger than the limit of {max} bytes"),
    )
}

/// A multipart form, read field by field.
pub struct Form(Multipart);

impl From<Multipart> for Form {
    fn from(form: Multipart) -> Self {
        Form(form)
    }
}

impl Form {
    /// The next field, or `None` at the end of the form.
    pub async fn next(&mut self) -> Result<Option<FormField<'_>>> {
        let field = self.0.next_field().await.map_err(multipart_error)?;
        Ok(field.map(|field| FormField {
            name: field.name().unwrap_or_default().to_string(),
            field,
        }))
    }
}

/// One field of a [`Form`].
pub struct FormField<'a> {
    name: String,
    field: Field<'a>,
}

impl FormField<'_> {
    /// The field's name (empty when the part has none).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file name the client gave, if any (untrusted: sanitise before showing it).
    pub fn file_name(&self) -> Option<&str> {
        self.field.file_name()
    }

    /// The field's bytes, refusing more than `max` (413).
    pub async fn bytes(&mut self, max: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(chunk) = self.field.chunk().await.map_err(multipart_error)? {
            if out.len() + chunk.len() > max {
                return Err(too_large(max));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// The field as UTF-8 text (at most [`MAX_TEXT_BYTES`]).
    pub async fn text(&mut self) -> Result<String> {
        let bytes = self.bytes(MAX_TEXT_BYTES).await?;
        String::from_utf8(bytes)
            .map_err(|_| ApiError::bad_request(format!("{} must be UTF-8 text", self.name)))
    }

    /// The field as a flag (see [`crate::params::flag`]).
    pub async fn flag(&mut self) -> Result<bool> {
        let text = self.text().await?;
        crate::params::flag(&self.name, &text)
    }

    /// 400 for a field the form does not take, listing those it does.
    pub fn unknown(&self, expected: &str) -> ApiError {
        ApiError::bad_request(format!(
            "unknown form field {:?} (expected {expected})",
            self.name
        ))
    }
}
