//! Turning the rows of an uploaded [`Sheet`] into booking fields, through a column mapping.
//!
//! A [`Mapping`] is data, saved in a `booking_import_templates` record or sent inline: which
//! header feeds which booking field, how text dates are written, defaults for what the file
//! lacks, and how the file spells statuses. It is checked as a whole before any row is read
//! ([`MappingError`] lists every problem at once, so a person can fix the template in one go);
//! then each row either becomes a [`BookingRow`] or yields [`RowError`]s, never both.
//!
//! Error messages quote cells, never more than [`MAX_QUOTED_CHARS`] of one, and a
//! [`RowError`] is bounded as a whole ([`RowError::bounded`]): a file's text must not be
//! copied into every row error of a report and of the import log.
//!
//! Only what a single cell can tell is checked here (a date that is no date, an empty
//! required cell). Rules that relate fields or records, such as `check_out > check_in` or
//! overlapping stays, belong to the database's constraints, so they hold however a booking
//! arrives.

use std::collections::BTreeMap;

use chrono::format::{Item, StrftimeItems};
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::xlsx::{Cell, Row, Sheet, excel_serial_date, format_number};
use crate::error::ErrorKind;

/// Most characters of a cell quoted in an error message.
pub const MAX_QUOTED_CHARS: usize = 200;
/// Most characters of a row error's message (engine messages quote values too).
pub const MAX_MESSAGE_CHARS: usize = 500;

/// `text` cut to `max` characters, with `…` where it was cut.
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// A cell's text in quotes, for a message, cut to [`MAX_QUOTED_CHARS`].
fn quote(text: &str) -> String {
    format!("\"{}\"", cut(text, MAX_QUOTED_CHARS))
}

/// A booking field a mapping can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    /// A property *name*; the importer resolves it to a record id.
    Property,
    CheckIn,
    CheckOut,
    GuestName,
    GuestEmail,
    GuestPhone,
    Guests,
    Source,
    ExternalId,
    Status,
    Notes,
    TotalPrice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Date,
    Integer,
    Number,
    Status,
}

impl Field {
    pub const ALL: [Field; 12] = [
        Field::Property,
        Field::CheckIn,
        Field::CheckOut,
        Field::GuestName,
        Field::GuestEmail,
        Field::GuestPhone,
        Field::Guests,
        Field::Source,
        Field::ExternalId,
        Field::Status,
        Field::Notes,
        Field::TotalPrice,
    ];

    /// The booking record's field name.
    pub fn name(self) -> &'static str {
        match self {
            Field::Property => "property",
            Field::CheckIn => "check_in",
            Field::CheckOut => "check_out",
            Field::GuestName => "guest_name",
            Field::GuestEmail => "guest_email",
            Field::GuestPhone => "guest_phone",
            Field::Guests => "guests",
            Field::Source => "source",
            Field::ExternalId => "external_id",
            Field::Status => "status",
            Field::Notes => "notes",
            Field::TotalPrice => "total_price",
        }
    }

    pub fn parse(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Every imported booking needs these, from a column or a default.
    pub fn is_required(self) -> bool {
        matches!(
            self,
            Field::Property | Field::CheckIn | Field::CheckOut | Field::ExternalId | Field::Source
        )
    }

    /// Per-booking values: one default for every row would make no sense.
    fn needs_column(self) -> bool {
        matches!(self, Field::CheckIn | Field::CheckOut | Field::ExternalId)
    }

    fn kind(self) -> Kind {
        match self {
            Field::CheckIn | Field::CheckOut => Kind::Date,
            Field::Guests => Kind::Integer,
            Field::TotalPrice => Kind::Number,
            Field::Status => Kind::Status,
            _ => Kind::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BookingStatus {
    Confirmed,
    Cancelled,
}

impl BookingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Confirmed => "confirmed",
            BookingStatus::Cancelled => "cancelled",
        }
    }
}

/// How a sheet's columns become booking fields. Unknown keys are ignored, so the whole
/// data of a `booking_import_templates` record deserialises into it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mapping {
    /// Booking field name → header, matched ignoring case and surrounding/repeated spaces.
    pub columns: BTreeMap<String, String>,
    /// chrono strftime formats tried in order on text dates (the first that fits wins, so
    /// put the file's own convention first: "03/04/2024" is 3 April under `%d/%m/%Y`).
    #[serde(default = "default_date_formats")]
    pub date_formats: Vec<String>,
    /// Values for fields that have no column, or whose cell is empty.
    #[serde(default)]
    pub defaults: Map<String, Value>,
    /// The file's status words (matched ignoring case) → booking status. "confirmed",
    /// "cancelled" and "canceled" are understood without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_map: Option<BTreeMap<String, BookingStatus>>,
}

pub fn default_date_formats() -> Vec<String> {
    ["%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y"]
        .map(String::from)
        .to_vec()
}

impl Default for Mapping {
    fn default() -> Self {
        Self {
            columns: BTreeMap::new(),
            date_formats: default_date_formats(),
            defaults: Map::new(),
            status_map: None,
        }
    }
}

/// One thing wrong with a mapping. Serialises as `{"code": "...", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum MappingIssue {
    UnknownField {
        field: String,
    },
    MissingRequired {
        field: &'static str,
    },
    DefaultNotAllowed {
        field: &'static str,
    },
    InvalidDefault {
        field: &'static str,
        message: String,
    },
    InvalidDateFormat {
        format: String,
    },
    NoDateFormats,
    EmptyHeader {
        field: &'static str,
    },
    HeaderNotFound {
        field: &'static str,
        header: String,
    },
    AmbiguousHeader {
        field: &'static str,
        header: String,
    },
}

impl std::fmt::Display for MappingIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownField { field } => write!(f, "\"{field}\" is not a booking field"),
            Self::MissingRequired { field } => {
                write!(f, "{field} needs a column or a default")
            }
            Self::DefaultNotAllowed { field } => {
                write!(f, "{field} differs per booking: map it to a column")
            }
            Self::InvalidDefault { field, message } => {
                write!(f, "the default for {field} is invalid: {message}")
            }
            Self::InvalidDateFormat { format } => {
                write!(f, "\"{format}\" is not a valid date format")
            }
            Self::NoDateFormats => write!(f, "at least one date format is needed"),
            Self::EmptyHeader { field } => write!(f, "the column for {field} has no header"),
            Self::HeaderNotFound { field, header } => {
                write!(f, "no column \"{header}\" in the sheet (for {field})")
            }
            Self::AmbiguousHeader { field, header } => {
                write!(f, "several columns are named \"{header}\" (for {field})")
            }
        }
    }
}

/// A mapping that cannot be used, with everything wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid column mapping: {}", join(.issues))]
pub struct MappingError {
    pub issues: Vec<MappingIssue>,
}

fn join(issues: &[MappingIssue]) -> String {
    let messages: Vec<String> = issues.iter().map(ToString::to_string).collect();
    messages.join("; ")
}

impl MappingError {
    pub fn code(&self) -> &'static str {
        "invalid_mapping"
    }

    /// A mapping that does not fit the workbook is bad input.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::BadInput
    }
}

/// A row that became a booking: its Excel row number, the property name to resolve, and
/// the other fields as the booking record will hold them (dates as `YYYY-MM-DD`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BookingRow {
    pub row: u32,
    pub property: String,
    pub fields: Map<String, Value>,
}

/// Why a row (or one of its cells) cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub row: u32,
    /// The header of the offending column, as written in the sheet.
    pub column: Option<String>,
    pub field: Option<String>,
    pub message: String,
    /// `required`, `invalid_date`, `invalid_number`, `invalid_status`, `invalid_text`
    /// or `cell_error`.
    pub code: String,
}

impl RowError {
    /// The error with its message and column cut to a size fit for a report (see the
    /// module docs); what it says is unchanged otherwise.
    pub fn bounded(mut self) -> Self {
        if self.message.len() > MAX_MESSAGE_CHARS {
            self.message = cut(&self.message, MAX_MESSAGE_CHARS);
        }
        if let Some(column) = &self.column
            && column.len() > MAX_QUOTED_CHARS
        {
            self.column = Some(cut(column, MAX_QUOTED_CHARS));
        }
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Parsed {
    pub rows: Vec<BookingRow>,
    pub errors: Vec<RowError>,
}

impl Mapping {
    /// Check everything that does not need a sheet (for saving a template).
    pub fn validate(&self) -> Result<(), MappingError> {
        let (_, issues) = self.check();
        if issues.is_empty() {
            Ok(())
        } else {
            Err(MappingError { issues })
        }
    }

    fn check(&self) -> (Resolved, Vec<MappingIssue>) {
        let mut issues = Vec::new();
        let mut resolved = Resolved {
            date_formats: self.date_formats.clone(),
            ..Resolved::default()
        };
        for (word, status) in self.status_map.iter().flatten() {
            resolved.statuses.insert(normalize(word), *status);
        }
        for name in self.columns.keys().chain(self.defaults.keys()) {
            if Field::parse(name).is_none() {
                issues.push(MappingIssue::UnknownField {
                    field: name.clone(),
                });
            }
        }
        for (name, value) in &self.defaults {
            let Some(field) = Field::parse(name) else {
                continue;
            };
            if field.needs_column() {
                issues.push(MappingIssue::DefaultNotAllowed {
                    field: field.name(),
                });
                continue;
            }
            match resolved.convert(field, &json_cell(value)) {
                Ok(value) => {
                    resolved.defaults.insert(field, value);
                }
                Err((_, message)) => issues.push(MappingIssue::InvalidDefault {
                    field: field.name(),
                    message,
                }),
            }
        }
        for field in Field::ALL {
            // A default that is invalid or not allowed has its own issue already.
            let mapped = self.columns.contains_key(field.name());
            if field.is_required() && !mapped && !self.defaults.contains_key(field.name()) {
                issues.push(MappingIssue::MissingRequired {
                    field: field.name(),
                });
            }
        }
        if self.date_formats.is_empty() {
            issues.push(MappingIssue::NoDateFormats);
        }
        for format in &self.date_formats {
            if StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
                issues.push(MappingIssue::InvalidDateFormat {
                    format: format.clone(),
                });
            }
        }
        (resolved, issues)
    }

    /// Check the mapping against a sheet's headers and find each mapped column.
    fn resolve(&self, headers: &[String]) -> Result<Resolved, MappingError> {
        let (mut resolved, mut issues) = self.check();
        for (name, header) in &self.columns {
            let Some(field) = Field::parse(name) else {
                continue;
            };
            let wanted = normalize(header);
            if wanted.is_empty() {
                issues.push(MappingIssue::EmptyHeader {
                    field: field.name(),
                });
                continue;
            }
            let found: Vec<usize> = (0..headers.len())
                .filter(|&i| normalize(&headers[i]) == wanted)
                .collect();
            match found[..] {
                [column] => {
                    resolved
                        .columns
                        .insert(field, (column, headers[column].clone()));
                }
                [] => issues.push(MappingIssue::HeaderNotFound {
                    field: field.name(),
                    header: header.clone(),
                }),
                _ => issues.push(MappingIssue::AmbiguousHeader {
                    field: field.name(),
                    header: header.clone(),
                }),
            }
        }
        if issues.is_empty() {
            Ok(resolved)
        } else {
            Err(MappingError { issues })
        }
    }
}

/// Header and status matching: case, surrounding and repeated whitespace don't matter.
fn normalize(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A JSON default seen as a cell, so defaults and cells go through the same conversion.
fn json_cell(value: &Value) -> Cell {
    match value {
        Value::String(text) => Cell::Text(text.clone()),
        Value::Number(n) => n.as_f64().map_or(Cell::Empty, Cell::Number),
        Value::Bool(b) => Cell::Bool(*b),
        Value::Null => Cell::Empty,
        other => Cell::Error(format!("a JSON {}", json_type(other))),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        _ => "scalar",
    }
}

mod rows;

use rows::Resolved;
pub use rows::parse_rows;

#[cfg(test)]
mod tests;
