//! The rows of a sheet through a checked mapping: each row becomes a [`BookingRow`] or
//! its [`RowError`]s, cell by cell (see the parent module for what is checked here and
//! what is left to the database's constraints).

use super::*;

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
pub(super) struct Resolved {
    pub(super) columns: BTreeMap<Field, (usize, String)>,
    pub(super) defaults: BTreeMap<Field, Value>,
    pub(super) date_formats: Vec<String>,
    pub(super) statuses: BTreeMap<String, BookingStatus>,
}

/// A conversion failure: (code, message).
pub(super) type Failure = (&'static str, String);

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
    pub(super) fn convert(&self, field: Field, cell: &Cell) -> Result<Value, Failure> {
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
