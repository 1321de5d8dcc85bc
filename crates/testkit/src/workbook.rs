//! Booking workbooks written with rust_xlsxwriter, as a channel manager would export them:
//! a mix of real Excel date cells and text dates. Shared with the import benchmark.

use std::io::Write;

use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
use serde_json::{Value, json};

pub const HEADERS: [&str; 6] = [
    "Listing",
    "Arrival",
    "Departure",
    "Guest",
    "Confirmation code",
    "Channel",
];

/// The inline mapping for [`HEADERS`].
pub fn mapping() -> Value {
    json!({
        "columns": {
            "property": "Listing",
            "check_in": "Arrival",
            "check_out": "Departure",
            "guest_name": "Guest",
            "external_id": "Confirmation code",
            "source": "Channel",
        },
        "date_formats": ["%d/%m/%Y", "%Y-%m-%d"],
    })
}

pub fn property_name(p: usize) -> String {
    format!("Property {p:02}")
}

/// A date as (y, m, d), `days` after 2026-01-01.
fn ymd(days: u32) -> (u16, u8, u8) {
    let d =
        chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Duration::days(days.into());
    use chrono::Datelike;
    (d.year() as u16, d.month() as u8, d.day() as u8)
}

/// A date cell or a text date in the sheet.
#[derive(Debug, Clone)]
pub enum Date {
    Cell(u32),
    Text(String),
}

#[derive(Debug, Clone)]
pub struct Row {
    pub property: String,
    pub check_in: Date,
    pub check_out: Date,
    pub guest: String,
    pub code: String,
    pub channel: String,
}

/// `n` bookings over `properties` properties: each property's stays are 3 nights, 4 days
/// apart, so none overlap. Even rows use date cells, odd rows text dates (dd/mm/yyyy).
pub fn rows(n: usize, properties: usize) -> Vec<Row> {
    (0..n)
        .map(|i| {
            let (p, k) = (i % properties, (i / properties) as u32);
            let start = 10 + 4 * k;
            let date = |days: u32| {
                if i % 2 == 0 {
                    Date::Cell(days)
                } else {
                    let (y, m, d) = ymd(days);
                    Date::Text(format!("{d:02}/{m:02}/{y}"))
                }
            };
            Row {
                property: property_name(p + 1),
                check_in: date(start),
                check_out: date(start + 3),
                guest: format!("Guest {i}"),
                code: format!("HM{i:05}"),
                channel: "airbnb".into(),
            }
        })
        .collect()
}

/// The .xlsx bytes of `rows` under [`HEADERS`].
pub fn xlsx(rows: &[Row]) -> Vec<u8> {
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    let date_format = Format::new().set_num_format("yyyy-mm-dd");
    for (c, h) in HEADERS.iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    for (i, r) in rows.iter().enumerate() {
        let row = i as u32 + 1;
        sheet.write_string(row, 0, &r.property).unwrap();
        for (col, date) in [(1u16, &r.check_in), (2, &r.check_out)] {
            match date {
                Date::Cell(days) => {
                    let (y, m, d) = ymd(*days);
                    let dt = ExcelDateTime::from_ymd(y, m, d).unwrap();
                    sheet
                        .write_datetime_with_format(row, col, &dt, &date_format)
                        .unwrap();
                }
                Date::Text(t) => {
                    sheet.write_string(row, col, t).unwrap();
                }
            }
        }
        sheet.write_string(row, 3, &r.guest).unwrap();
        sheet.write_string(row, 4, &r.code).unwrap();
        sheet.write_string(row, 5, &r.channel).unwrap();
    }
    book.save_to_buffer().unwrap()
}

/// A zip that looks like a workbook but expands to `mib` MiB.
pub fn zip_bomb(mib: usize) -> Vec<u8> {
    use zip::write::{SimpleFileOptions, ZipWriter};
    let mut zip = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in [
        ("[Content_Types].xml", &b"<Types/>"[..]),
        ("xl/workbook.xml", b"<workbook/>"),
    ] {
        zip.start_file(name, SimpleFileOptions::default()).unwrap();
        zip.write_all(data).unwrap();
    }
    let options = SimpleFileOptions::default().large_file(true);
    zip.start_file("xl/worksheets/sheet1.xml", options).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..mib {
        zip.write_all(&zeros).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// The hostile workbook of issue 9, scaled: `rows` bookings whose Arrival cell is one
/// shared string of `chars` characters, so the file stays small while every row quotes it.
pub fn hostile(rows: usize, chars: usize) -> Vec<u8> {
    let long = "A".repeat(chars);
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in HEADERS.iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    for i in 0..rows {
        let row = i as u32 + 1;
        sheet.write_string(row, 0, property_name(1)).unwrap();
        sheet.write_string(row, 1, &long).unwrap();
        sheet.write_string(row, 2, "20/01/2026").unwrap();
        sheet.write_string(row, 3, format!("Guest {i}")).unwrap();
        sheet.write_string(row, 4, format!("HM{i:05}")).unwrap();
        sheet.write_string(row, 5, "airbnb").unwrap();
    }
    book.save_to_buffer().unwrap()
}
