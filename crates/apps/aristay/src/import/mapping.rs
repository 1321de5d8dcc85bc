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

/// Map a sheet's rows to bookings. The mapping is checked against the headers first; rows
/// that are entirely blank are skipped.
pub fn parse_rows(sheet: &Sheet, mapping: &Mapping) -> Result<Parsed, MappingError> {
    let resolved = mapping.resolve(&sheet.headers)?;
    let mut parsed = Parsed::default();
    for row in sheet
        .rows
        .iter()
        .filter(|r| !r.cells.iter().all(Cell::is_blank))
    {
        match resolved.parse_row(row) {
            Ok(booking) => parsed.rows.push(booking),
            Err(errors) => parsed.errors.extend(errors),
        }
    }
    Ok(parsed)
}

/// A mapping checked against a sheet: field → (column index, header as written).
#[derive(Debug, Default)]
struct Resolved {
    columns: BTreeMap<Field, (usize, String)>,
    defaults: BTreeMap<Field, Value>,
    date_formats: Vec<String>,
    statuses: BTreeMap<String, BookingStatus>,
}

/// A conversion failure: (code, message).
type Failure = (&'static str, String);

impl Resolved {
    fn parse_row(&self, row: &Row) -> Result<BookingRow, Vec<RowError>> {
        let mut fields = Map::new();
        let mut errors = Vec::new();
        for field in Field::ALL {
            let column = self.columns.get(&field);
            let cell = column.map_or(&Cell::Empty, |(index, _)| row.cell(*index));
            let header = column.map(|(_, header)| header.clone());
            let value = if cell.is_blank() {
                self.defaults.get(&field).cloned()
            } else {
                match self.convert(field, cell) {
                    Ok(value) => Some(value),
                    Err((code, message)) => {
                        errors.push(row_error(row, header, field, code, message));
                        continue;
                    }
                }
            };
            match value {
                Some(value) => {
                    fields.insert(field.name().to_owned(), value);
                }
                None if field.is_required() => {
                    let message = match &header {
                        Some(h) => format!("{} is required; column \"{h}\" is empty", field.name()),
                        None => format!("{} is required", field.name()),
                    };
                    errors.push(row_error(row, header, field, "required", message));
                }
                None => {}
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let property = match fields.remove(Field::Property.name()) {
            Some(Value::String(name)) => name,
            _ => unreachable!("property is a required text field"),
        };
        Ok(BookingRow {
            row: row.number,
            property,
            fields,
        })
    }

    /// One non-blank cell (or default) to the field's JSON value.
    fn convert(&self, field: Field, cell: &Cell) -> Result<Value, Failure> {
        if let Cell::Error(error) = cell {
            return Err(("cell_error", format!("the cell holds {error}")));
        }
        if let Cell::LongText { start, bytes } = cell {
            return Err((
                "text_too_long",
                format!(
                    "the cell holds {bytes} bytes of text, more than a cell may; it starts {}",
                    quote(start)
                ),
            ));
        }
        match field.kind() {
            Kind::Text => text(cell).map(Value::String),
            Kind::Date => self.date(cell).map(|d| Value::String(d.to_string())),
            Kind::Integer => integer(cell).map(Value::from),
            Kind::Number => number(cell).map(Value::from),
            Kind::Status => self.status(cell).map(|s| Value::from(s.as_str())),
        }
    }

    fn date(&self, cell: &Cell) -> Result<NaiveDate, Failure> {
        let date = match cell {
            Cell::Date(dt) => Some(dt.date()),
            Cell::Number(serial) => excel_serial_date(*serial),
            Cell::Text(text) => self.parse_text_date(text.trim()),
            _ => None,
        };
        let shown = match cell {
            Cell::Text(text) => text.trim().to_owned(),
            other => text(other).unwrap_or_default(),
        };
        match date {
            Some(date) if (1900..2200).contains(&date.year()) => Ok(date),
            Some(date) => Err((
                "invalid_date",
                format!("{date} is outside the years 1900 to 2199"),
            )),
            None => Err((
                "invalid_date",
                format!(
                    "{} is not a date in any of the formats {}",
                    quote(&shown),
                    cut(&self.date_formats.join(", "), MAX_QUOTED_CHARS)
                ),
            )),
        }
    }

    /// The first format that reads the whole text, or reads a date followed by a time.
    fn parse_text_date(&self, text: &str) -> Option<NaiveDate> {
        self.date_formats.iter().find_map(|format| {
            let (date, rest) = NaiveDate::parse_and_remainder(text, format).ok()?;
            let time_like = |rest: &str| {
                rest.starts_with([' ', 'T'])
                    && rest[1..].trim().starts_with(|c: char| c.is_ascii_digit())
                    && rest[1..]
                        .chars()
                        .all(|c| c.is_ascii_digit() || ":.+-Z APMapm".contains(c))
            };
            (rest.is_empty() || time_like(rest)).then_some(date)
        })
    }

    fn status(&self, cell: &Cell) -> Result<BookingStatus, Failure> {
        let Cell::Text(word) = cell else {
            return Err(("invalid_status", "a status must be text".into()));
        };
        let word = normalize(word);
        let builtin = match word.as_str() {
            "confirmed" => Some(BookingStatus::Confirmed),
            "cancelled" | "canceled" => Some(BookingStatus::Cancelled),
            _ => None,
        };
        self.statuses.get(&word).copied().or(builtin).ok_or((
            "invalid_status",
            format!(
                "{} is not a known status (confirmed or cancelled)",
                quote(&word)
            ),
        ))
    }
}

fn text(cell: &Cell) -> Result<String, Failure> {
    let text = match cell {
        Cell::Text(text) => text.trim().to_owned(),
        Cell::LongText { start, .. } => start.trim().to_owned(),
        Cell::Number(n) => format_number(*n),
        Cell::Bool(b) => b.to_string(),
        Cell::Date(dt) if dt.time() == chrono::NaiveTime::MIN => dt.date().to_string(),
        Cell::Date(dt) => dt.format("%Y-%m-%dT%H:%M:%S").to_string(),
        Cell::Empty | Cell::Error(_) => String::new(),
    };
    if text.is_empty() {
        return Err(("invalid_text", "expected text".into()));
    }
    Ok(text)
}

fn integer(cell: &Cell) -> Result<i64, Failure> {
    let n = number(cell)?;
    if n.fract() != 0.0 || !(0.0..=1_000_000.0).contains(&n) {
        return Err((
            "invalid_number",
            format!("{n} is not a whole number of 0 or more"),
        ));
    }
    Ok(n as i64)
}

fn number(cell: &Cell) -> Result<f64, Failure> {
    let n = match cell {
        Cell::Number(n) => Some(*n),
        Cell::Text(text) => parse_amount(text),
        _ => None,
    };
    let shown = text(cell).unwrap_or_default();
    n.filter(|n| n.is_finite()).ok_or_else(|| {
        (
            "invalid_number",
            format!("{} is not a number", quote(&shown)),
        )
    })
}

/// A number typed as text: surrounding currency signs or codes and spaces are dropped, and
/// commas are accepted only as thousands separators (`1,234.50`); a lone decimal comma is
/// ambiguous and refused rather than guessed.
fn parse_amount(text: &str) -> Option<f64> {
    let trimmed = text
        .trim()
        .trim_matches(|c: char| c.is_whitespace() || "$€£¥".contains(c) || c.is_alphabetic());
    if let Ok(n) = trimmed.parse::<f64>() {
        return Some(n);
    }
    let (whole, fraction) = trimmed.split_once('.').unwrap_or((trimmed, ""));
    let digits = whole.trim_start_matches('-');
    let mut groups = digits.split(',');
    let first = groups.next()?;
    let grouped = (1..=3).contains(&first.len())
        && groups.all(|g| g.len() == 3)
        && digits.contains(',')
        && digits.chars().all(|c| c.is_ascii_digit() || c == ',');
    if !grouped || !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    format!("{}.{fraction}0", whole.replace(',', ""))
        .parse()
        .ok()
}

fn row_error(
    row: &Row,
    column: Option<String>,
    field: Field,
    code: &str,
    message: String,
) -> RowError {
    RowError {
        row: row.number,
        column,
        field: Some(field.name().to_owned()),
        message,
        code: code.to_owned(),
    }
    .bounded()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::xlsx::test_support::{W::*, workbook};
    use crate::import::xlsx::{Limits, read_workbook};
    use chrono::NaiveTime;
    use serde_json::json;

    fn mapping(value: Value) -> Mapping {
        serde_json::from_value(value).unwrap()
    }

    fn airbnb() -> Mapping {
        mapping(json!({
            "name": "Airbnb export",
            "columns": {
                "property": "Listing",
                "check_in": "Start date",
                "check_out": "End date",
                "external_id": "Confirmation code",
                "guest_name": "Guest",
                "guests": "# of guests",
                "status": "Status",
                "total_price": "Earnings"
            },
            "defaults": {"source": "airbnb"},
            "status_map": {"Cancelled by guest": "cancelled", "OK": "confirmed"}
        }))
    }

    fn sheet(headers: &[&str], rows: Vec<Vec<Cell>>) -> Sheet {
        Sheet {
            name: "Sheet1".into(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: rows
                .into_iter()
                .enumerate()
                .map(|(i, cells)| Row {
                    number: i as u32 + 2,
                    cells,
                })
                .collect(),
        }
    }

    fn t(text: &str) -> Cell {
        Cell::Text(text.into())
    }

    const HEADERS: [&str; 4] = ["Listing", "Start date", "End date", "Confirmation code"];

    fn minimal() -> Mapping {
        mapping(json!({
            "columns": {
                "property": "listing",
                "check_in": "START DATE",
                "check_out": "  End   date ",
                "external_id": "Confirmation code"
            },
            "defaults": {"source": "airbnb"}
        }))
    }

    fn errors_of(parsed: &Parsed) -> Vec<(u32, &str, Option<&str>)> {
        parsed
            .errors
            .iter()
            .map(|e| (e.row, e.code.as_str(), e.field.as_deref()))
            .collect()
    }

    #[test]
    fn a_real_workbook_with_date_cells_and_text_dates_mixed() {
        let bytes = workbook(&[
            &[
                T("Listing"),
                T("Start date"),
                T("End date"),
                T("Confirmation code"),
                T("Guest"),
                T("# of guests"),
                T("Status"),
                T("Earnings"),
            ],
            &[
                T(" Beach House "),
                D(2024, 5, 1),
                T("2024-05-04"),
                T("HMABC123"),
                T("Ana  Lima"),
                N(2.0),
                T("OK"),
                N(412.5),
            ],
            &[
                T("Loft"),
                T("13/05/2024"),
                T("05/16/2024"),
                N(4012345678.0),
                Blank,
                T("3"),
                T("Canceled"),
                T("€1,234.50"),
            ],
            &[],
            &[
                T("Loft"),
                N(45413.0),
                T("20.05.2024"),
                T("X9"),
                Blank,
                Blank,
                T("cancelled BY guest"),
            ],
        ]);
        let sheet = read_workbook(&bytes, &Limits::default()).unwrap();
        let parsed = parse_rows(&sheet, &airbnb()).unwrap();
        assert_eq!(parsed.errors, []);
        let [first, second, third] = &parsed.rows[..] else {
            panic!("{:?}", parsed.rows)
        };
        assert_eq!((first.row, first.property.as_str()), (2, "Beach House"));
        assert_eq!(
            Value::Object(first.fields.clone()),
            json!({
                "check_in": "2024-05-01",
                "check_out": "2024-05-04",
                "external_id": "HMABC123",
                "guest_name": "Ana  Lima",
                "guests": 2,
                "source": "airbnb",
                "status": "confirmed",
                "total_price": 412.5
            })
        );
        assert_eq!(second.fields["check_in"], "2024-05-13");
        assert_eq!(second.fields["check_out"], "2024-05-16");
        assert_eq!(second.fields["external_id"], "4012345678");
        assert_eq!(second.fields["guests"], 3);
        assert_eq!(second.fields["status"], "cancelled");
        assert_eq!(second.fields["total_price"], 1234.5);
        assert!(!second.fields.contains_key("guest_name"));
        assert_eq!(
            third.row, 5,
            "the blank row is skipped, numbering is Excel's"
        );
        assert_eq!(third.fields["check_in"], "2024-05-01", "serial number");
        assert_eq!(third.fields["check_out"], "2024-05-20");
        assert_eq!(third.fields["status"], "cancelled");
    }

    #[test]
    fn bad_dates_are_row_errors_naming_the_column() {
        let s = sheet(
            &HEADERS,
            vec![
                vec![t("A"), t("2024-02-30"), t("next week"), t("1")],
                vec![t("A"), t("01/05/24"), t("2024-05-03"), t("2")],
                vec![t("A"), Cell::Number(-5.0), t("2024-05-03"), t("3")],
                vec![
                    t("A"),
                    t("2024-05-01 15:00"),
                    t("2024-05-03T11:00:00"),
                    t("4"),
                ],
                vec![t("A"), t("2024-05-01 and more"), t("2024-05-03"), t("5")],
            ],
        );
        let parsed = parse_rows(&s, &minimal()).unwrap();
        assert_eq!(
            errors_of(&parsed),
            [
                (2, "invalid_date", Some("check_in")),
                (2, "invalid_date", Some("check_out")),
                (3, "invalid_date", Some("check_in")),
                (4, "invalid_date", Some("check_in")),
                (6, "invalid_date", Some("check_in")),
            ]
        );
        assert_eq!(parsed.errors[0].column.as_deref(), Some("Start date"));
        assert!(parsed.errors[0].message.contains("2024-02-30"));
        assert!(
            parsed.errors[2].message.contains("1900"),
            "{}",
            parsed.errors[2].message
        );
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rows[0].row, 5);
        assert_eq!(parsed.rows[0].fields["check_in"], "2024-05-01");
        assert_eq!(parsed.rows[0].fields["check_out"], "2024-05-03");
    }

    #[test]
    fn empty_required_cells_are_reported_and_defaults_fill_gaps() {
        let s = sheet(
            &HEADERS,
            vec![
                vec![Cell::Empty, t("2024-05-01"), t("2024-05-03"), t("  ")],
                vec![t("  "), Cell::Empty, Cell::Empty],
                vec![
                    t("A"),
                    t("2024-05-01"),
                    t("2024-05-03"),
                    Cell::Error("#REF!".into()),
                ],
            ],
        );
        let parsed = parse_rows(&s, &minimal()).unwrap();
        assert_eq!(
            errors_of(&parsed),
            [
                (2, "required", Some("property")),
                (2, "required", Some("external_id")),
                (4, "cell_error", Some("external_id")),
            ],
            "the all-blank row 3 is skipped"
        );
        assert_eq!(
            parsed.errors[1].column.as_deref(),
            Some("Confirmation code")
        );
        assert!(parsed.rows.is_empty());
    }

    #[test]
    fn a_default_property_serves_single_property_files() {
        let mut m = minimal();
        m.columns.remove("property");
        m.defaults.insert("property".into(), json!("Beach House"));
        let s = sheet(
            &HEADERS,
            vec![vec![t("ignored"), t("2024-05-01"), t("2024-05-02"), t("7")]],
        );
        let parsed = parse_rows(&s, &m).unwrap();
        assert_eq!(parsed.rows[0].property, "Beach House");
        assert_eq!(parsed.rows[0].fields["source"], "airbnb");
    }

    #[test]
    fn statuses_and_numbers_are_checked_per_cell() {
        let mut m = minimal();
        m.columns.insert("status".into(), "State".into());
        m.columns.insert("guests".into(), "Guests".into());
        m.columns.insert("total_price".into(), "Price".into());
        let headers = [&HEADERS[..], &["State", "Guests", "Price"]].concat();
        let row = |status: Cell, guests: Cell, price: Cell| {
            vec![
                t("A"),
                t("2024-05-01"),
                t("2024-05-02"),
                t("1"),
                status,
                guests,
                price,
            ]
        };
        let s = sheet(
            &headers,
            vec![
                row(t("pending"), Cell::Number(2.5), t("1,5")),
                row(Cell::Number(1.0), t("two"), t("12,34")),
                row(t(" CONFIRMED "), t(" 4 "), t("USD 1,000")),
            ],
        );
        let parsed = parse_rows(&s, &m).unwrap();
        assert_eq!(
            errors_of(&parsed),
            [
                (2, "invalid_number", Some("guests")),
                (2, "invalid_status", Some("status")),
                (2, "invalid_number", Some("total_price")),
                (3, "invalid_number", Some("guests")),
                (3, "invalid_status", Some("status")),
                (3, "invalid_number", Some("total_price")),
            ]
        );
        let fields = &parsed.rows[0].fields;
        assert_eq!(
            (fields["status"].clone(), fields["guests"].clone()),
            (json!("confirmed"), json!(4))
        );
        assert_eq!(fields["total_price"], 1000.0);
    }

    #[test]
    fn unknown_fields_and_missing_headers_are_named_all_at_once() {
        let mut m = airbnb();
        m.columns.insert("nights".into(), "Nights".into());
        m.defaults.insert("colour".into(), json!("blue"));
        let s = sheet(&["listing", "Start date", "Start date", "Guest"], vec![]);
        let err = parse_rows(&s, &m).unwrap_err();
        assert_eq!(
            err.issues,
            [
                MappingIssue::UnknownField {
                    field: "nights".into()
                },
                MappingIssue::UnknownField {
                    field: "colour".into()
                },
                MappingIssue::AmbiguousHeader {
                    field: "check_in",
                    header: "Start date".into()
                },
                MappingIssue::HeaderNotFound {
                    field: "check_out",
                    header: "End date".into()
                },
                MappingIssue::HeaderNotFound {
                    field: "external_id",
                    header: "Confirmation code".into()
                },
                MappingIssue::HeaderNotFound {
                    field: "guests",
                    header: "# of guests".into()
                },
                MappingIssue::HeaderNotFound {
                    field: "status",
                    header: "Status".into()
                },
                MappingIssue::HeaderNotFound {
                    field: "total_price",
                    header: "Earnings".into()
                },
            ]
        );
        assert_eq!(
            (err.code(), err.kind()),
            ("invalid_mapping", ErrorKind::BadInput)
        );
        let message = err.to_string();
        assert!(
            message.contains("\"nights\" is not a booking field"),
            "{message}"
        );
        assert!(message.contains("no column \"End date\""), "{message}");
        assert_eq!(
            serde_json::to_value(&err.issues[3]).unwrap(),
            json!({"code": "header_not_found", "field": "check_out", "header": "End date"})
        );
    }

    #[test]
    fn validate_checks_required_fields_defaults_and_formats_without_a_sheet() {
        assert_eq!(airbnb().validate(), Ok(()));
        let m = mapping(json!({
            "columns": {"property": "Listing", "check_out": " "},
            "date_formats": ["%Y-%m-%d", "%Q"],
            "defaults": {"check_in": "2024-01-01", "status": "maybe", "guests": "two"}
        }));
        let issues = m.validate().unwrap_err().issues;
        assert_eq!(
            issues,
            [
                MappingIssue::DefaultNotAllowed { field: "check_in" },
                MappingIssue::InvalidDefault {
                    field: "guests",
                    message: "\"two\" is not a number".into()
                },
                MappingIssue::InvalidDefault {
                    field: "status",
                    message: "\"maybe\" is not a known status (confirmed or cancelled)".into()
                },
                MappingIssue::MissingRequired { field: "source" },
                MappingIssue::MissingRequired {
                    field: "external_id"
                },
                MappingIssue::InvalidDateFormat {
                    format: "%Q".into()
                },
            ]
        );
        let s = sheet(&["Listing"], vec![]);
        let issues = parse_rows(&s, &m).unwrap_err().issues;
        assert!(issues.contains(&MappingIssue::EmptyHeader { field: "check_out" }));
        let empty = mapping(json!({"columns": {}, "date_formats": []}));
        assert!(
            empty
                .validate()
                .unwrap_err()
                .issues
                .contains(&MappingIssue::NoDateFormats)
        );
    }

    #[test]
    fn mapping_round_trips_with_default_date_formats() {
        let m = mapping(json!({"columns": {"property": "Listing"}}));
        assert_eq!(m.date_formats, default_date_formats());
        assert_eq!(m.status_map, None);
        let again: Mapping = serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(again, m);
        assert!(
            serde_json::from_value::<Mapping>(
                json!({"columns": {}, "status_map": {"x": "pending"}})
            )
            .is_err()
        );
    }

    #[test]
    fn text_fields_take_numbers_dates_and_trimmed_text() {
        let m = minimal();
        let dt = NaiveDate::from_ymd_opt(2024, 5, 1).unwrap();
        let s = sheet(
            &HEADERS,
            vec![vec![
                Cell::Number(12.0),
                Cell::Date(dt.and_time(NaiveTime::MIN)),
                Cell::Date(dt.and_hms_opt(23, 0, 0).unwrap()),
                Cell::Bool(true),
            ]],
        );
        let parsed = parse_rows(&s, &m).unwrap();
        let row = &parsed.rows[0];
        assert_eq!(row.property, "12");
        assert_eq!(row.fields["check_in"], "2024-05-01");
        assert_eq!(row.fields["check_out"], "2024-05-01");
        assert_eq!(row.fields["external_id"], "true");
    }

    #[test]
    fn long_cells_are_refused_and_quotes_are_cut() {
        let long = "é".repeat(3000);
        let s = sheet(
            &HEADERS,
            vec![
                vec![t("A"), t(&long), t("2024-05-03"), t("1")],
                vec![
                    t("A"),
                    Cell::LongText {
                        start: "x".repeat(4096) + "…",
                        bytes: 50_000,
                    },
                    t("2024-05-03"),
                    t("2"),
                ],
            ],
        );
        let parsed = parse_rows(&s, &minimal()).unwrap();
        assert_eq!(
            errors_of(&parsed),
            [
                (2, "invalid_date", Some("check_in")),
                (3, "text_too_long", Some("check_in"))
            ]
        );
        for e in &parsed.errors {
            assert!(
                e.message.chars().count() <= MAX_MESSAGE_CHARS + 1,
                "{}",
                e.message
            );
        }
        assert!(
            parsed.errors[0]
                .message
                .contains(&format!("{}…\"", "é".repeat(200)))
        );
        assert!(parsed.errors[1].message.contains("50000 bytes"));
        let wide = RowError {
            row: 1,
            column: Some("h".repeat(1000)),
            field: None,
            message: "m".repeat(1000),
            code: "x".into(),
        }
        .bounded();
        assert_eq!(wide.column.unwrap().chars().count(), MAX_QUOTED_CHARS + 1);
        assert_eq!(wide.message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }
}
