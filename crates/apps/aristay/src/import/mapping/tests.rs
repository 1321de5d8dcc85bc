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
        serde_json::from_value::<Mapping>(json!({"columns": {}, "status_map": {"x": "pending"}}))
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
