//! Reading an uploaded booking workbook into a plain [`Sheet`], safely.
//!
//! Uploads come from people, so the bytes are checked before any spreadsheet code sees
//! them: a size cap, then the type from the magic bytes and the zip's own table of contents
//! (never the file name), then every entry is actually decompressed through a capped reader,
//! because the sizes a zip declares can lie. Only then does calamine parse the first
//! worksheet, and it does so through its streaming cell reader rather than
//! `worksheet_range`: a range is dense, so a sheet with one cell in A1 and one in XFD1048576
//! would ask for billions of cells. Rows and cells are counted while streaming.
//!
//! Text is bounded twice while streaming, before the memory is spent. A workbook stores a
//! repeated text once (the shared-string table) and cells refer to it, so a 66 KB file can
//! hold one 10,000-character string used by 20,000 cells: the zip's size limits do not see
//! that expansion. So every cell's text is counted against [`Limits::max_text_bytes`] as
//! it is read (the workbook is refused past it), and a cell longer than
//! [`Limits::max_cell_bytes`] is kept only as its first bytes and its length
//! ([`Cell::LongText`]), which the mapping refuses with a short quote: no booking is made
//! from a cut value, and no error message carries the whole text.
//!
//! The result keeps enough of each cell to tell a date cell from text and numbers; what a
//! column *means* is [`super::mapping`]'s business.

use std::collections::BTreeMap;
use std::io::{self, Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::ErrorKind;
use calamine::{DataRef, Reader, SheetType, SheetVisible, Xlsx};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use zip::ZipArchive;

/// Caps on what one upload may cost. The defaults suit a booking export of a few
/// thousand rows with plenty of room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Size of the uploaded file itself.
    pub max_file_bytes: u64,
    /// Number of entries in the zip container.
    pub max_entries: usize,
    /// Total bytes of all entries once decompressed.
    pub max_uncompressed_bytes: u64,
    /// Data rows (the header row not counted; blank rows not counted).
    pub max_rows: usize,
    /// Cells kept in memory, counting the empty ones between filled cells of a row.
    pub max_cells: usize,
    /// Text of one cell kept in full; longer text becomes [`Cell::LongText`].
    pub max_cell_bytes: usize,
    /// Text of all cells together, shared strings counted once per cell that uses them.
    pub max_text_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_bytes: 10 * 1024 * 1024,
            max_entries: 1000,
            max_uncompressed_bytes: 100 * 1024 * 1024,
            max_rows: 50_000,
            max_cells: 4_000_000,
            max_cell_bytes: 4096,
            max_text_bytes: 64 * 1024 * 1024,
        }
    }
}

/// One cell's value, with dates kept apart from numbers and text.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    /// Text as written in the cell (not trimmed).
    Text(String),
    /// Text over [`Limits::max_cell_bytes`]: its start (cut on a character boundary,
    /// ending with `…`) and its full length in bytes. Never imported as a value.
    LongText {
        start: String,
        bytes: usize,
    },
    Number(f64),
    Bool(bool),
    /// A cell Excel formats as a date or date-time.
    Date(NaiveDateTime),
    /// An Excel error value such as `#REF!`.
    Error(String),
}

impl Cell {
    /// Empty, or text that is only whitespace.
    pub fn is_blank(&self) -> bool {
        match self {
            Cell::Empty => true,
            Cell::Text(text) => text.trim().is_empty(),
            _ => false,
        }
    }
}

/// A data row: its Excel row number (1-based, as shown in Excel) and its cells, indexed
/// like [`Sheet::headers`]. Trailing empty cells are not stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub number: u32,
    pub cells: Vec<Cell>,
}

impl Row {
    /// The cell under header `column`, [`Cell::Empty`] past the end of the row.
    pub fn cell(&self, column: usize) -> &Cell {
        self.cells.get(column).unwrap_or(&Cell::Empty)
    }
}

/// The first worksheet of a workbook: the first non-blank row gives the headers (indexed by
/// Excel column, so a sheet starting in column C has two empty headers first), every later
/// non-blank row is a data row.
#[derive(Debug, Clone, PartialEq)]
pub struct Sheet {
    pub name: String,
    pub headers: Vec<String>,
    pub rows: Vec<Row>,
}

/// Which zip limit a file broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZipLimit {
    Entries { max: usize },
    UncompressedBytes { max: u64 },
}

impl std::fmt::Display for ZipLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ZipLimit::Entries { max } => write!(f, "it holds more than {max} entries"),
            ZipLimit::UncompressedBytes { max } => {
                write!(f, "it expands to more than {max} bytes")
            }
        }
    }
}

/// Why an upload was refused. Messages are meant for the person who uploaded the file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    #[error("the file is {size} bytes; the limit is {max} bytes")]
    TooLarge { size: u64, max: u64 },
    #[error("the file is not an .xlsx workbook{}", detected_suffix(.detected))]
    NotXlsx { detected: Option<&'static str> },
    #[error("the workbook was refused because {0}")]
    ZipBomb(ZipLimit),
    #[error("the file is not a readable .xlsx workbook: {0}")]
    Invalid(String),
    #[error("the sheet has more than {max} data rows")]
    TooManyRows { max: usize },
    #[error("the sheet has more than {max} cells")]
    TooManyCells { max: usize },
    #[error(
        "the cells of the sheet hold more than {max} bytes of text (a text repeated in many \
         cells counts once per cell)"
    )]
    TooMuchText { max: u64 },
    #[error("the first worksheet is empty: a header row is needed")]
    EmptySheet,
}

fn detected_suffix(detected: &Option<&'static str>) -> String {
    detected.map_or_else(String::new, |mime| format!(" (it looks like {mime})"))
}

impl FileError {
    /// Stable machine-readable code for API responses.
    pub fn code(&self) -> &'static str {
        match self {
            FileError::TooLarge { .. } => "file_too_large",
            FileError::NotXlsx { .. } => "not_xlsx",
            FileError::ZipBomb(_) => "zip_bomb",
            FileError::Invalid(_) => "invalid_xlsx",
            FileError::TooManyRows { .. } => "too_many_rows",
            FileError::TooManyCells { .. } => "too_many_cells",
            FileError::TooMuchText { .. } => "too_much_text",
            FileError::EmptySheet => "empty_sheet",
        }
    }

    /// What kind of failure it is: anything too big (including what only becomes too
    /// big once decompressed), the wrong type, or a broken file or a readable workbook
    /// with nothing to import (a record that fails its collection's rules is another
    /// matter: a row error).
    pub fn kind(&self) -> ErrorKind {
        match self {
            FileError::TooLarge { .. }
            | FileError::ZipBomb(_)
            | FileError::TooManyRows { .. }
            | FileError::TooManyCells { .. }
            | FileError::TooMuchText { .. } => ErrorKind::TooLarge,
            FileError::NotXlsx { .. } => ErrorKind::UnsupportedType,
            FileError::Invalid(_) | FileError::EmptySheet => ErrorKind::BadInput,
        }
    }
}

/// Check `bytes` against `limits` and read the first worksheet.
pub fn read_workbook(bytes: &[u8], limits: &Limits) -> Result<Sheet, FileError> {
    let size = bytes.len() as u64;
    if size > limits.max_file_bytes {
        return Err(FileError::TooLarge {
            size,
            max: limits.max_file_bytes,
        });
    }
    if !bytes.starts_with(b"PK\x03\x04") {
        return Err(FileError::NotXlsx {
            detected: infer::get(bytes).map(|kind| kind.mime_type()),
        });
    }
    check_archive(bytes, limits)?;
    // calamine should return errors for broken input, but it is a large parser fed with
    // untrusted bytes: a panic in it must become a refusal, not a dead request.
    catch_unwind(AssertUnwindSafe(|| read_first_sheet(bytes, limits))).unwrap_or_else(|_| {
        Err(FileError::Invalid(
            "the spreadsheet reader failed on this file".into(),
        ))
    })
}

fn invalid(error: impl std::fmt::Display) -> FileError {
    FileError::Invalid(error.to_string())
}

/// Walk the zip's central directory: it must describe a workbook, hold few enough entries,
/// and decompress to few enough bytes, counted on the real output.
fn check_archive(bytes: &[u8], limits: &Limits) -> Result<(), FileError> {
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(invalid)?;
    if archive.len() > limits.max_entries {
        return Err(FileError::ZipBomb(ZipLimit::Entries {
            max: limits.max_entries,
        }));
    }
    let is_workbook = archive.index_for_name("[Content_Types].xml").is_some()
        && archive.index_for_name("xl/workbook.xml").is_some();
    if !is_workbook {
        return Err(FileError::NotXlsx {
            detected: Some("application/zip"),
        });
    }
    let max = limits.max_uncompressed_bytes;
    let mut budget = max;
    for index in 0..archive.len() {
        let entry = archive.by_index(index).map_err(invalid)?;
        let written = io::copy(&mut entry.take(budget.saturating_add(1)), &mut io::sink())
            .map_err(invalid)?;
        budget = budget
            .checked_sub(written)
            .ok_or(FileError::ZipBomb(ZipLimit::UncompressedBytes { max }))?;
    }
    Ok(())
}

fn read_first_sheet(bytes: &[u8], limits: &Limits) -> Result<Sheet, FileError> {
    let mut workbook: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(invalid)?;
    let name = first_worksheet(&workbook).ok_or_else(|| invalid("it has no worksheet"))?;
    let mut reader = workbook.worksheet_cells_reader(&name).map_err(invalid)?;

    // Sparse while streaming (row → (column, cell)), so memory follows the filled cells.
    let mut filled: BTreeMap<u32, Vec<(u32, Cell)>> = BTreeMap::new();
    let mut filled_cells = 0usize;
    let mut text_bytes = 0u64;
    while let Some(cell) = reader.next_cell().map_err(invalid)? {
        text_bytes += text_len(cell.get_value()) as u64;
        if text_bytes > limits.max_text_bytes {
            return Err(FileError::TooMuchText {
                max: limits.max_text_bytes,
            });
        }
        let value = to_cell(cell.get_value(), limits.max_cell_bytes);
        if value.is_blank() {
            continue;
        }
        let (row, column) = cell.get_position();
        filled_cells += 1;
        if filled_cells > limits.max_cells {
            return Err(FileError::TooManyCells {
                max: limits.max_cells,
            });
        }
        filled.entry(row).or_default().push((column, value));
        if filled.len() > limits.max_rows.saturating_add(1) {
            return Err(FileError::TooManyRows {
                max: limits.max_rows,
            });
        }
    }
    drop(reader);

    let mut rows = filled.into_iter();
    let (_, header_cells) = rows.next().ok_or(FileError::EmptySheet)?;
    let width = header_cells.iter().map(|(c, _)| *c as usize + 1).max();
    let mut headers = vec![String::new(); width.unwrap_or(0)];
    for (column, value) in header_cells {
        headers[column as usize] = header_text(&value);
    }

    let mut dense_cells = headers.len();
    let mut data = Vec::new();
    for (row, cells) in rows {
        let Some(last) = cells
            .iter()
            .map(|(c, _)| *c as usize)
            .filter(|c| *c < headers.len())
            .max()
        else {
            continue; // only cells under no header
        };
        dense_cells += last + 1;
        if dense_cells > limits.max_cells {
            return Err(FileError::TooManyCells {
                max: limits.max_cells,
            });
        }
        let mut dense = vec![Cell::Empty; last + 1];
        for (column, value) in cells {
            if let Some(slot) = dense.get_mut(column as usize) {
                *slot = value;
            }
        }
        data.push(Row {
            number: row + 1,
            cells: dense,
        });
    }
    Ok(Sheet {
        name,
        headers,
        rows: data,
    })
}

/// The first visible worksheet, else the first worksheet (chart sheets never count).
fn first_worksheet<R: Read + io::Seek>(workbook: &Xlsx<R>) -> Option<String> {
    let sheets = workbook.sheets_metadata();
    let worksheets = || sheets.iter().filter(|s| s.typ == SheetType::WorkSheet);
    worksheets()
        .find(|s| s.visible == SheetVisible::Visible)
        .or_else(|| worksheets().next())
        .map(|s| s.name.clone())
}

/// Bytes of text a cell holds (a shared string counts in full for every cell using it).
fn text_len(value: &DataRef<'_>) -> usize {
    match value {
        DataRef::String(text) | DataRef::DurationIso(text) | DataRef::DateTimeIso(text) => {
            text.len()
        }
        DataRef::SharedString(text) => text.len(),
        _ => 0,
    }
}

/// A cell's text, or its start when it is longer than `max` bytes (copied only that far).
fn text_cell(text: &str, max: usize) -> Cell {
    if text.len() <= max {
        return Cell::Text(text.to_owned());
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cell::LongText {
        start: format!("{}…", &text[..end]),
        bytes: text.len(),
    }
}

fn to_cell(value: &DataRef<'_>, max_cell_bytes: usize) -> Cell {
    match value {
        DataRef::Empty => Cell::Empty,
        DataRef::String(text) | DataRef::DurationIso(text) => text_cell(text, max_cell_bytes),
        DataRef::SharedString(text) => text_cell(text, max_cell_bytes),
        DataRef::Int(n) => Cell::Number(*n as f64),
        DataRef::Float(n) => Cell::Number(*n),
        DataRef::Bool(b) => Cell::Bool(*b),
        DataRef::DateTime(dt) if dt.is_datetime() => {
            let (y, mo, d, h, mi, s, ms) = dt.to_ymd_hms_milli();
            NaiveDate::from_ymd_opt(y.into(), mo.into(), d.into())
                .zip(NaiveTime::from_hms_milli_opt(
                    h.into(),
                    mi.into(),
                    s.into(),
                    ms.into(),
                ))
                .map_or(Cell::Number(dt.as_f64()), |(date, time)| {
                    Cell::Date(date.and_time(time))
                })
        }
        DataRef::DateTime(duration) => Cell::Number(duration.as_f64()),
        DataRef::DateTimeIso(text) => {
            parse_iso(text).map_or_else(|| text_cell(text, max_cell_bytes), Cell::Date)
        }
        DataRef::Error(error) => Cell::Error(error.to_string()),
    }
}

fn parse_iso(text: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_time(NaiveTime::MIN))
        })
}

fn header_text(cell: &Cell) -> String {
    match cell {
        Cell::Empty => String::new(),
        Cell::Text(text) => text.trim().to_owned(),
        Cell::LongText { start, .. } => start.trim().to_owned(),
        Cell::Number(n) => format_number(*n),
        Cell::Bool(b) => b.to_string(),
        Cell::Date(dt) => dt.date().to_string(),
        Cell::Error(e) => e.clone(),
    }
}

/// A number as a person would type it: whole numbers without a trailing `.0`.
pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// The date of an Excel serial number (1900 date system), if it is within Excel's range.
pub fn excel_serial_date(serial: f64) -> Option<NaiveDate> {
    if !(1.0..2_958_466.0).contains(&serial) {
        return None;
    }
    let dt = calamine::ExcelDateTime::new(serial, calamine::ExcelDateTimeType::DateTime, false);
    let (y, m, d, ..) = dt.to_ymd_hms_milli();
    NaiveDate::from_ymd_opt(y.into(), m.into(), d.into())
}

/// Workbook generators shared by the import tests.
#[cfg(test)]
pub(crate) mod test_support {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

    /// A cell to write: text, number, date cell (y, m, d), or nothing.
    pub enum W {
        T(&'static str),
        N(f64),
        D(u16, u8, u8),
        Blank,
    }

    pub fn workbook(rows: &[&[W]]) -> Vec<u8> {
        workbook_at(0, 0, rows)
    }

    /// Rows written from (first_row, first_col), both 0-based.
    pub fn workbook_at(first_row: u32, first_col: u16, rows: &[&[W]]) -> Vec<u8> {
        let mut book = Workbook::new();
        let sheet = book.add_worksheet();
        let date = Format::new().set_num_format("yyyy-mm-dd");
        for (r, cells) in rows.iter().enumerate() {
            for (c, cell) in cells.iter().enumerate() {
                let (r, c) = (first_row + r as u32, first_col + c as u16);
                match cell {
                    W::T(text) => sheet.write_string(r, c, *text).map(drop),
                    W::N(n) => sheet.write_number(r, c, *n).map(drop),
                    W::D(y, m, d) => {
                        let day = ExcelDateTime::from_ymd(*y, *m, *d).unwrap();
                        sheet.write_datetime_with_format(r, c, day, &date).map(drop)
                    }
                    W::Blank => Ok(()),
                }
                .unwrap();
            }
        }
        book.save_to_buffer().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{W::*, workbook, workbook_at};
    use super::*;
    use std::io::Write;
    use zip::write::{SimpleFileOptions, ZipWriter};

    fn date(y: i32, m: u32, d: u32) -> Cell {
        Cell::Date(
            NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .and_time(NaiveTime::MIN),
        )
    }

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            zip.start_file(*name, SimpleFileOptions::default()).unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    const WORKBOOK_MARKERS: [(&str, &[u8]); 2] = [
        ("[Content_Types].xml", b"<Types/>"),
        ("xl/workbook.xml", b"<workbook/>"),
    ];

    #[test]
    fn reads_headers_and_typed_cells_skipping_blank_rows() {
        let bytes = workbook(&[
            &[T(" Listing "), T("Check-in"), T("Nights"), T("Code")],
            &[T("Beach"), D(2024, 5, 1), N(3.0), N(123456789.0)],
            &[],
            &[T("  "), Blank, Blank],
            &[T("Loft"), T("02/05/2024"), N(2.5)],
        ]);
        let sheet = read_workbook(&bytes, &Limits::default()).unwrap();
        assert_eq!(sheet.name, "Sheet1");
        assert_eq!(sheet.headers, ["Listing", "Check-in", "Nights", "Code"]);
        assert_eq!(sheet.rows.len(), 2);
        let first = &sheet.rows[0];
        assert_eq!(first.number, 2);
        assert_eq!(first.cell(0), &Cell::Text("Beach".into()));
        assert_eq!(first.cell(1), &date(2024, 5, 1));
        assert_eq!(first.cell(2), &Cell::Number(3.0));
        assert_eq!(first.cell(3), &Cell::Number(123456789.0));
        let second = &sheet.rows[1];
        assert_eq!(second.number, 5);
        assert_eq!(second.cell(1), &Cell::Text("02/05/2024".into()));
        assert_eq!(second.cell(3), &Cell::Empty, "past the end of the row");
    }

    #[test]
    fn a_sheet_not_starting_in_a1_keeps_excel_row_numbers_and_columns() {
        let bytes = workbook_at(2, 1, &[&[T("A"), T("B")], &[T("x"), T("y")]]);
        let sheet = read_workbook(&bytes, &Limits::default()).unwrap();
        assert_eq!(sheet.headers, ["", "A", "B"]);
        assert_eq!(sheet.rows[0].number, 4);
        assert_eq!(sheet.rows[0].cell(2), &Cell::Text("y".into()));
    }

    #[test]
    fn cells_under_no_header_are_dropped() {
        let bytes = workbook(&[&[T("A")], &[T("x"), T("stray")], &[Blank, T("only stray")]]);
        let sheet = read_workbook(&bytes, &Limits::default()).unwrap();
        assert_eq!(sheet.rows.len(), 1);
        assert_eq!(sheet.rows[0].cells, [Cell::Text("x".into())]);
    }

    #[test]
    fn other_file_types_are_not_xlsx_whatever_their_name() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
        let err = read_workbook(png, &Limits::default()).unwrap_err();
        assert_eq!(
            err,
            FileError::NotXlsx {
                detected: Some("image/png")
            }
        );
        assert_eq!(
            (err.code(), err.kind()),
            ("not_xlsx", ErrorKind::UnsupportedType)
        );
        assert!(err.to_string().contains("image/png"), "{err}");

        for other in [&b"<html><body>bookings</body></html>"[..], b"", b"PK"] {
            let err = read_workbook(other, &Limits::default()).unwrap_err();
            assert!(matches!(err, FileError::NotXlsx { .. }), "{err:?}");
        }
    }

    #[test]
    fn a_zip_that_is_not_a_workbook_is_not_xlsx() {
        let bytes = zip_of(&[("bookings.csv", b"a,b\n1,2\n")]);
        let err = read_workbook(&bytes, &Limits::default()).unwrap_err();
        assert_eq!(
            err,
            FileError::NotXlsx {
                detected: Some("application/zip")
            }
        );
    }

    #[test]
    fn a_zip_bomb_is_refused_by_its_real_decompressed_size() {
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in WORKBOOK_MARKERS {
            zip.start_file(name, SimpleFileOptions::default()).unwrap();
            zip.write_all(data).unwrap();
        }
        let options = SimpleFileOptions::default().large_file(true);
        zip.start_file("xl/worksheets/sheet1.xml", options).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..200 {
            zip.write_all(&zeros).unwrap();
        }
        let bytes = zip.finish().unwrap().into_inner();
        assert!(
            bytes.len() < 1 << 20,
            "200 MiB deflate to {} bytes",
            bytes.len()
        );

        let err = read_workbook(&bytes, &Limits::default()).unwrap_err();
        let max = Limits::default().max_uncompressed_bytes;
        assert_eq!(err, FileError::ZipBomb(ZipLimit::UncompressedBytes { max }));
        assert_eq!((err.code(), err.kind()), ("zip_bomb", ErrorKind::TooLarge));
    }

    #[test]
    fn a_zip_that_understates_its_sizes_is_still_refused() {
        let big = vec![0u8; 4 << 20];
        let mut bytes = zip_of(&[
            ("xl/big.xml", &big),
            WORKBOOK_MARKERS[0],
            WORKBOOK_MARKERS[1],
        ]);
        // Declare 100 bytes for the big entry, in its local header and its directory record.
        bytes[22..26].copy_from_slice(&100u32.to_le_bytes());
        let central = bytes.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        bytes[central + 24..central + 28].copy_from_slice(&100u32.to_le_bytes());
        let limits = Limits {
            max_uncompressed_bytes: 1 << 20,
            ..Limits::default()
        };
        let err = read_workbook(&bytes, &limits).unwrap_err();
        assert!(
            matches!(err, FileError::ZipBomb(_) | FileError::Invalid(_)),
            "{err:?}"
        );
    }

    #[test]
    fn too_many_zip_entries_is_a_zip_bomb() {
        let names: Vec<String> = (0..20).map(|i| format!("xl/media/{i}.bin")).collect();
        let mut entries = WORKBOOK_MARKERS.to_vec();
        entries.extend(names.iter().map(|n| (n.as_str(), &b"x"[..])));
        let limits = Limits {
            max_entries: 10,
            ..Limits::default()
        };
        let err = read_workbook(&zip_of(&entries), &limits).unwrap_err();
        assert_eq!(err, FileError::ZipBomb(ZipLimit::Entries { max: 10 }));
    }

    #[test]
    fn a_file_over_the_size_limit_is_refused_before_reading() {
        let bytes = workbook(&[&[T("A")], &[T("x")]]);
        let limits = Limits {
            max_file_bytes: 100,
            ..Limits::default()
        };
        let err = read_workbook(&bytes, &limits).unwrap_err();
        assert_eq!(
            err,
            FileError::TooLarge {
                size: bytes.len() as u64,
                max: 100
            }
        );
        assert_eq!(
            (err.code(), err.kind()),
            ("file_too_large", ErrorKind::TooLarge)
        );
    }

    #[test]
    fn a_truncated_workbook_is_invalid() {
        let bytes = workbook(&[&[T("A")], &[T("x")]]);
        let err = read_workbook(&bytes[..bytes.len() / 2], &Limits::default()).unwrap_err();
        assert!(matches!(err, FileError::Invalid(_)), "{err:?}");
        assert_eq!(
            (err.code(), err.kind()),
            ("invalid_xlsx", ErrorKind::BadInput)
        );
    }

    #[test]
    fn a_workbook_with_broken_sheet_xml_is_invalid() {
        let good = workbook(&[&[T("A")], &[T("x")]]);
        let mut archive = ZipArchive::new(Cursor::new(&good[..])).unwrap();
        let mut entries = Vec::new();
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).unwrap();
            let name = entry.name().unwrap().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            if name.starts_with("xl/worksheets/") {
                data = b"<worksheet><sheetData><row r=\"1\"><c r=\"A1\" t=\"s\"><v>99".to_vec();
            }
            entries.push((name, data));
        }
        let entries: Vec<(&str, &[u8])> = entries
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        let err = read_workbook(&zip_of(&entries), &Limits::default()).unwrap_err();
        assert!(matches!(err, FileError::Invalid(_)), "{err:?}");
    }

    #[test]
    fn row_and_cell_limits_are_enforced_while_reading() {
        let bytes = workbook(&[
            &[T("A"), T("B")],
            &[T("1"), T("1")],
            &[T("2"), T("2")],
            &[T("3"), T("3")],
        ]);
        let rows = Limits {
            max_rows: 2,
            ..Limits::default()
        };
        assert_eq!(
            read_workbook(&bytes, &rows),
            Err(FileError::TooManyRows { max: 2 })
        );
        let exact = Limits {
            max_rows: 3,
            ..Limits::default()
        };
        assert_eq!(read_workbook(&bytes, &exact).unwrap().rows.len(), 3);
        let cells = Limits {
            max_cells: 5,
            ..Limits::default()
        };
        assert_eq!(
            read_workbook(&bytes, &cells),
            Err(FileError::TooManyCells { max: 5 })
        );
    }

    #[test]
    fn a_sparse_sheet_spanning_the_whole_grid_is_cheap() {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write_string(0, 0, "A").unwrap();
        sheet.write_string(1_048_575, 16_383, "far").unwrap();
        let bytes = book.save_to_buffer().unwrap();
        let sheet = read_workbook(&bytes, &Limits::default()).unwrap();
        assert_eq!(sheet.headers, ["A"]);
        assert!(sheet.rows.is_empty());
    }

    #[test]
    fn long_shared_text_is_cut_per_cell_and_bounded_in_total() {
        let long = format!("{}é", "x".repeat(4999));
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write_string(0, 0, "A").unwrap();
        for r in 1..=100 {
            sheet.write_string(r, 0, &long).unwrap();
        }
        let bytes = book.save_to_buffer().unwrap();
        let sheet = read_workbook(&bytes, &Limits::default()).unwrap();
        let Cell::LongText { start, bytes: len } = sheet.rows[99].cell(0) else {
            panic!("{:?}", sheet.rows[99].cell(0))
        };
        assert_eq!(*len, long.len());
        assert!(start.ends_with('…') && start.len() <= 4096 + '…'.len_utf8());

        // 100 cells x 5,001 bytes, from one shared string of 5,001.
        let limits = Limits {
            max_text_bytes: 400_000,
            ..Limits::default()
        };
        let err = read_workbook(&bytes, &limits).unwrap_err();
        assert_eq!(err, FileError::TooMuchText { max: 400_000 });
        assert_eq!(
            (err.code(), err.kind()),
            ("too_much_text", ErrorKind::TooLarge)
        );
    }

    #[test]
    fn an_empty_sheet_has_no_header() {
        let bytes = workbook(&[]);
        let err = read_workbook(&bytes, &Limits::default()).unwrap_err();
        assert_eq!(err, FileError::EmptySheet);
        assert_eq!(err.kind(), ErrorKind::BadInput);
    }

    #[test]
    fn serial_dates_and_numbers() {
        assert_eq!(
            excel_serial_date(45413.0),
            NaiveDate::from_ymd_opt(2024, 5, 1)
        );
        assert_eq!(
            excel_serial_date(45413.75),
            NaiveDate::from_ymd_opt(2024, 5, 1)
        );
        assert_eq!(excel_serial_date(-1.0), None);
        assert_eq!(excel_serial_date(3e6), None);
        assert_eq!(format_number(4012345678.0), "4012345678");
        assert_eq!(format_number(12.5), "12.5");
    }
}
