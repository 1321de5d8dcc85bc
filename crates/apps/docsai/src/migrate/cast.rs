//! SQLite values to JSON, as Django stored them. SQLite has five storage classes and
//! Django writes its field types onto them in fixed ways: BooleanField as 0/1,
//! DateTimeField as text (`2025-01-02 03:04:05.123456`, UTC when `USE_TZ`), JSONField as
//! text, DecimalField into a NUMERIC column (so an integer, a real or text), UUIDField
//! as 32 hex digits. Each cast accepts exactly those forms and says what it got
//! otherwise: a migration stops on a value it would have to guess about.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use rusqlite::types::ValueRef;
use serde_json::{Value, json};

use super::mapping::Cast;

/// A cast for `Cast::Auto`, from the column's declared type.
pub fn from_declared(declared: &str) -> Cast {
    let t = declared.to_ascii_lowercase();
    if t.contains("bool") {
        Cast::Bool
    } else if t.contains("datetime") || t.contains("timestamp") {
        Cast::Datetime
    } else if t.starts_with("date") {
        Cast::Date
    } else if t.contains("decimal") || t.contains("numeric") {
        Cast::Decimal
    } else if t.contains("int") {
        Cast::Integer
    } else if t.contains("real") || t.contains("floa") || t.contains("doub") {
        Cast::Number
    } else {
        Cast::Auto
    }
}

/// The text form of a value, for `values` translations and keys.
pub fn text_of(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Some(b.iter().map(|x| format!("{x:02x}")).collect()),
    }
}

/// Converts a non-null value. `Err` says why it does not fit.
pub fn cast(cast: Cast, v: ValueRef<'_>) -> Result<Value, String> {
    let text = |v: ValueRef<'_>| -> Result<String, String> {
        match v {
            ValueRef::Text(t) => std::str::from_utf8(t)
                .map(str::to_string)
                .map_err(|_| "text that is not UTF-8".to_string()),
            other => Err(format!("expected text, found {}", kind(other))),
        }
    };
    match cast {
        Cast::Auto => match v {
            ValueRef::Null => Ok(Value::Null),
            ValueRef::Integer(i) => Ok(json!(i)),
            ValueRef::Real(f) => number(f),
            ValueRef::Text(_) => text(v).map(Value::from),
            ValueRef::Blob(_) => Err("a blob (give the column a cast)".into()),
        },
        Cast::Text => match v {
            ValueRef::Integer(i) => Ok(json!(i.to_string())),
            ValueRef::Real(f) => Ok(json!(f.to_string())),
            other => text(other).map(Value::from),
        },
        Cast::Integer => match v {
            ValueRef::Integer(i) => Ok(json!(i)),
            ValueRef::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(json!(f as i64)),
            ValueRef::Text(_) => {
                let s = text(v)?;
                s.trim()
                    .parse::<i64>()
                    .map(Value::from)
                    .map_err(|_| format!("{s:?} is not an integer"))
            }
            other => Err(format!("expected an integer, found {}", kind(other))),
        },
        Cast::Number | Cast::Decimal => match v {
            ValueRef::Integer(i) => Ok(json!(i)),
            ValueRef::Real(f) => number(f),
            ValueRef::Text(_) => {
                let s = text(v)?;
                let t = s.trim();
                if let Ok(i) = t.parse::<i64>() {
                    return Ok(json!(i));
                }
                t.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| json!(f))
                    .ok_or_else(|| format!("{s:?} is not a number"))
            }
            other => Err(format!("expected a number, found {}", kind(other))),
        },
        Cast::Bool => match v {
            ValueRef::Integer(0) => Ok(json!(false)),
            ValueRef::Integer(1) => Ok(json!(true)),
            ValueRef::Text(b"0") | ValueRef::Text(b"false") => Ok(json!(false)),
            ValueRef::Text(b"1") | ValueRef::Text(b"true") => Ok(json!(true)),
            other => Err(format!("expected 0 or 1, found {}", describe(other))),
        },
        Cast::Json => {
            let s = text(v)?;
            serde_json::from_str(&s).map_err(|e| format!("not JSON text: {e}"))
        }
        Cast::Uuid => {
            let parsed = match v {
                ValueRef::Blob(b) => uuid::Uuid::from_slice(b).map_err(|e| e.to_string()),
                other => {
                    let s = text(other)?;
                    uuid::Uuid::try_parse(s.trim()).map_err(|_| format!("{s:?} is not a UUID"))
                }
            }?;
            Ok(json!(parsed.hyphenated().to_string()))
        }
        Cast::Datetime => datetime(&text(v)?).map(Value::from),
        Cast::Path => Ok(json!(
            text(v)?
                .split('/')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
        )),
        Cast::Date => {
            let s = text(v)?;
            NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .map(|d| json!(d.format("%Y-%m-%d").to_string()))
                .map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD)"))
        }
    }
}

fn number(f: f64) -> Result<Value, String> {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| format!("{f} is not a finite number"))
}

/// Django's datetime text (with or without fraction, `T` or space, with or without an
/// offset; naive means UTC) as RFC 3339 in UTC.
pub fn datetime(s: &str) -> Result<String, String> {
    let t = s.trim();
    let utc: DateTime<Utc> = if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        d.with_timezone(&Utc)
    } else if let Ok(d) = DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%:z") {
        d.with_timezone(&Utc)
    } else {
        [
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M",
        ]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
        .map(|n| n.and_utc())
        .ok_or_else(|| format!("{s:?} is not a datetime"))?
    };
    Ok(utc.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

fn kind(v: ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "null",
        ValueRef::Integer(_) => "an integer",
        ValueRef::Real(_) => "a real",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "a blob",
    }
}

fn describe(v: ValueRef<'_>) -> String {
    match text_of(v) {
        Some(t) => format!("{} {t:?}", kind(v)),
        None => "null".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_datetimes() {
        assert_eq!(
            datetime("2025-09-26 04:47:24").unwrap(),
            "2025-09-26T04:47:24Z"
        );
        assert_eq!(
            datetime("2025-07-30 03:52:32.761610").unwrap(),
            "2025-07-30T03:52:32.761610Z"
        );
        assert_eq!(
            datetime("2025-07-30 05:52:32+02:00").unwrap(),
            "2025-07-30T03:52:32Z"
        );
        assert_eq!(
            datetime("2025-07-30T03:52:32Z").unwrap(),
            "2025-07-30T03:52:32Z"
        );
        assert!(datetime("yesterday").is_err());
    }

    #[test]
    fn casts() {
        assert_eq!(cast(Cast::Bool, ValueRef::Integer(1)).unwrap(), json!(true));
        assert!(cast(Cast::Bool, ValueRef::Integer(2)).is_err());
        assert_eq!(
            cast(
                Cast::Uuid,
                ValueRef::Text(b"87751d4ca8504e2c84dcda6a797d76de")
            )
            .unwrap(),
            json!("87751d4c-a850-4e2c-84dc-da6a797d76de")
        );
        assert_eq!(
            cast(Cast::Decimal, ValueRef::Text(b"12.50")).unwrap(),
            json!(12.5)
        );
        assert_eq!(cast(Cast::Decimal, ValueRef::Integer(3)).unwrap(), json!(3));
        assert_eq!(
            cast(Cast::Decimal, ValueRef::Real(6388.93)).unwrap(),
            json!(6388.93)
        );
        assert_eq!(
            cast(Cast::Json, ValueRef::Text(br#"{"a": [1, null]}"#)).unwrap(),
            json!({"a": [1, null]})
        );
        assert!(cast(Cast::Json, ValueRef::Text(b"{")).is_err());
        assert_eq!(from_declared("decimal"), Cast::Decimal);
        assert_eq!(from_declared("datetime"), Cast::Datetime);
        assert_eq!(from_declared("date"), Cast::Date);
        assert_eq!(from_declared("bool"), Cast::Bool);
        assert_eq!(from_declared("varchar(20)"), Cast::Auto);
    }
}
