//! Dates and times in, RFC 3339 UTC out.
//!
//! Accepted inputs, by declared [`DateFormat`] (the `format` of a mapped field):
//!
//! | format | input | example |
//! | --- | --- | --- |
//! | `rfc3339` (alias `iso8601`) | ISO 8601 / RFC 3339 date-time, `T` or space, with an offset or `Z`, or without one (then read in the field's `timezone`, UTC by default); a bare `YYYY-MM-DD` is midnight | `2021-12-31T19:00:00-05:00`, `2019-01-01 00:00:00.000Z`, `2018-10-20T00:00:00` |
//! | `unix_s` | whole seconds since 1970-01-01T00:00:00Z, a JSON integer or a string of digits | `1614265330` |
//! | `unix_ms` | whole milliseconds since the epoch | `1614265330000` |
//! | `MM-DD-YYYY` | month first; separators `-`, `/` or `.` | `03-04-2024` = 4 March 2024 |
//! | `DD-MM-YYYY` | day first; same separators | `03-04-2024` = 3 April 2024 |
//! | `YYYY-MM-DD` | a calendar date | `2013-11-15` |
//! | `msjson` | Microsoft JSON date (Xero): epoch milliseconds, an optional `±HHMM` that does not change the instant | `/Date(1539993600000+0000)/` |
//!
//! Without a declared format, only unambiguous text is accepted: RFC 3339 / ISO 8601,
//! `YYYY-MM-DD` and Microsoft JSON dates. A number (seconds or milliseconds?) and a
//! `NN-NN-YYYY` string (month or day first?) are errors that ask for a format: the engine
//! never guesses. Sources: RFC 3339 §5.6; the Microsoft JSON date form as Xero documents it
//! (`../shared/fixtures/xero`).

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde_json::Value;

use super::CoerceError;

/// A declared date format (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateFormat {
    /// ISO 8601 / RFC 3339 text.
    Rfc3339,
    /// Unix seconds.
    UnixSeconds,
    /// Unix milliseconds.
    UnixMillis,
    /// `MM-DD-YYYY`.
    MonthDayYear,
    /// `DD-MM-YYYY`.
    DayMonthYear,
    /// `YYYY-MM-DD`.
    YearMonthDay,
    /// `/Date(ms±HHMM)/`.
    MsJson,
}

impl DateFormat {
    /// Every format, for documentation and tests.
    pub const ALL: [DateFormat; 7] = [
        DateFormat::Rfc3339,
        DateFormat::UnixSeconds,
        DateFormat::UnixMillis,
        DateFormat::MonthDayYear,
        DateFormat::DayMonthYear,
        DateFormat::YearMonthDay,
        DateFormat::MsJson,
    ];

    /// Parses a format name as written in a mapping (`"MM-DD-YYYY"`, `"unix_ms"`…).
    ///
    /// # Errors
    /// A message listing the known names.
    pub fn from_name(name: &str) -> Result<DateFormat, String> {
        Ok(match name {
            "rfc3339" | "iso8601" => DateFormat::Rfc3339,
            "unix_s" => DateFormat::UnixSeconds,
            "unix_ms" => DateFormat::UnixMillis,
            "MM-DD-YYYY" => DateFormat::MonthDayYear,
            "DD-MM-YYYY" => DateFormat::DayMonthYear,
            "YYYY-MM-DD" => DateFormat::YearMonthDay,
            "msjson" => DateFormat::MsJson,
            other => {
                return Err(format!(
                    "unknown date format {other:?} (known: rfc3339, iso8601, unix_s, unix_ms, MM-DD-YYYY, DD-MM-YYYY, YYYY-MM-DD, msjson)"
                ));
            }
        })
    }

    /// The name [`from_name`](Self::from_name) accepts.
    pub fn name(self) -> &'static str {
        match self {
            DateFormat::Rfc3339 => "rfc3339",
            DateFormat::UnixSeconds => "unix_s",
            DateFormat::UnixMillis => "unix_ms",
            DateFormat::MonthDayYear => "MM-DD-YYYY",
            DateFormat::DayMonthYear => "DD-MM-YYYY",
            DateFormat::YearMonthDay => "YYYY-MM-DD",
            DateFormat::MsJson => "msjson",
        }
    }

    /// Writes `ts` in this format (the inverse of [`parse_instant`] for values at the
    /// format's precision): RFC 3339 UTC text, a JSON integer for Unix seconds and
    /// milliseconds, the UTC calendar date for the three date-only formats, and
    /// `/Date(ms+0000)/`.
    pub fn render(self, ts: Timestamp) -> Value {
        let date = ts.to_zoned(TimeZone::UTC).date();
        let (y, m, d) = (date.year(), date.month(), date.day());
        match self {
            DateFormat::Rfc3339 => Value::String(ts.to_string()),
            DateFormat::UnixSeconds => Value::from(ts.as_second()),
            DateFormat::UnixMillis => Value::from(ts.as_millisecond()),
            DateFormat::MonthDayYear => Value::String(format!("{m:02}-{d:02}-{y:04}")),
            DateFormat::DayMonthYear => Value::String(format!("{d:02}-{m:02}-{y:04}")),
            DateFormat::YearMonthDay => Value::String(format!("{y:04}-{m:02}-{d:02}")),
            DateFormat::MsJson => Value::String(format!("/Date({}+0000)/", ts.as_millisecond())),
        }
    }
}

/// Reads `value` as an instant. Naive inputs (no offset, or a date only) are read in `tz`.
///
/// # Errors
/// [`CoerceError`] when the input does not match the declared format, is out of range, or —
/// with no format — is a number or an `NN-NN-YYYY` date, which would need a guess.
pub fn parse_instant(
    value: &Value,
    format: Option<DateFormat>,
    tz: &TimeZone,
) -> Result<Timestamp, CoerceError> {
    let fail = |why: &str| CoerceError::new("datetime", value, why);
    match (format, value) {
        (Some(DateFormat::UnixSeconds), _) => {
            let n = integer(value).ok_or_else(|| fail("expected whole Unix seconds"))?;
            Timestamp::from_second(n).map_err(|e| fail(&e.to_string()))
        }
        (Some(DateFormat::UnixMillis), _) => {
            let n = integer(value).ok_or_else(|| fail("expected whole Unix milliseconds"))?;
            Timestamp::from_millisecond(n).map_err(|e| fail(&e.to_string()))
        }
        (None, Value::Number(_)) => Err(fail(
            "a numeric date needs a declared format: unix_s or unix_ms",
        )),
        (_, Value::String(s)) => parse_text(s.trim(), format, tz).map_err(|why| fail(&why)),
        _ => Err(fail("expected a date string")),
    }
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let s = s.trim();
            let digits = s.strip_prefix('-').unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        }
        _ => None,
    }
}

fn parse_text(s: &str, format: Option<DateFormat>, tz: &TimeZone) -> Result<Timestamp, String> {
    match format {
        Some(DateFormat::Rfc3339) => iso(s, tz),
        Some(DateFormat::YearMonthDay) => ymd(s, tz),
        Some(DateFormat::MonthDayYear) => numeric_date(s, true, tz),
        Some(DateFormat::DayMonthYear) => numeric_date(s, false, tz),
        Some(DateFormat::MsJson) => ms_json(s),
        Some(DateFormat::UnixSeconds | DateFormat::UnixMillis) => {
            Err("unreachable: unix formats are handled by the caller".into())
        }
        None if s.starts_with("/Date(") => ms_json(s),
        None if looks_numeric_date(s) => Err(
            "ambiguous date: NN-NN-YYYY needs a declared format, MM-DD-YYYY or DD-MM-YYYY".into(),
        ),
        None => iso(s, tz),
    }
}

/// RFC 3339 / ISO 8601 with or without an offset, or a bare date.
fn iso(s: &str, tz: &TimeZone) -> Result<Timestamp, String> {
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Ok(ts);
    }
    if let Ok(dt) = s.parse::<DateTime>() {
        return in_zone(dt, tz);
    }
    ymd(s, tz).map_err(|_| "expected an ISO 8601 / RFC 3339 date-time".into())
}

fn ymd(s: &str, tz: &TimeZone) -> Result<Timestamp, String> {
    let bytes = s.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return Err("expected YYYY-MM-DD".into());
    }
    let n = |r: std::ops::Range<usize>| -> Result<i16, String> {
        let part = &s[r];
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err("expected YYYY-MM-DD".into());
        }
        part.parse().map_err(|_| "expected YYYY-MM-DD".to_string())
    };
    civil(n(0..4)?, n(5..7)?, n(8..10)?, tz)
}

fn looks_numeric_date(s: &str) -> bool {
    split_numeric_date(s).is_some()
}

/// `NN?NN?YYYY` with one separator kind out of `-`, `/`, `.`.
fn split_numeric_date(s: &str) -> Option<(i16, i16, i16)> {
    let b = s.as_bytes();
    if b.len() != 10 || b[2] != b[5] || !matches!(b[2], b'-' | b'/' | b'.') {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<i16> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    Some((digits(0..2)?, digits(3..5)?, digits(6..10)?))
}

fn numeric_date(s: &str, month_first: bool, tz: &TimeZone) -> Result<Timestamp, String> {
    let want = if month_first {
        "MM-DD-YYYY"
    } else {
        "DD-MM-YYYY"
    };
    let (a, b, year) = split_numeric_date(s).ok_or_else(|| format!("expected {want}"))?;
    let (month, day) = if month_first { (a, b) } else { (b, a) };
    civil(year, month, day, tz).map_err(|e| format!("{e} (read as {want})"))
}

fn civil(year: i16, month: i16, day: i16, tz: &TimeZone) -> Result<Timestamp, String> {
    let month = i8::try_from(month).map_err(|_| format!("month {month} out of range"))?;
    let day = i8::try_from(day).map_err(|_| format!("day {day} out of range"))?;
    let date = Date::new(year, month, day).map_err(|e| format!("invalid date: {e}"))?;
    in_zone(date.to_datetime(jiff::civil::Time::midnight()), tz)
}

fn in_zone(dt: DateTime, tz: &TimeZone) -> Result<Timestamp, String> {
    dt.to_zoned(tz.clone())
        .map(|z: Zoned| z.timestamp())
        .map_err(|e| e.to_string())
}

/// `/Date(1539993600000+0000)/` or `/Date(1552326816230)/`.
fn ms_json(s: &str) -> Result<Timestamp, String> {
    let bad = || "expected a Microsoft JSON date /Date(ms±HHMM)/".to_string();
    let inner = s
        .strip_prefix("/Date(")
        .and_then(|r| r.strip_suffix(")/"))
        .ok_or_else(bad)?;
    let sign_at = inner
        .char_indices()
        .skip(1)
        .find(|&(_, c)| c == '+' || c == '-')
        .map(|(i, _)| i);
    let (ms, offset) = match sign_at {
        Some(i) => inner.split_at(i),
        None => (inner, ""),
    };
    let offset_ok =
        offset.is_empty() || (offset.len() == 5 && offset[1..].bytes().all(|b| b.is_ascii_digit()));
    let digits = ms.strip_prefix('-').unwrap_or(ms);
    if !offset_ok || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let ms: i64 = ms.parse().map_err(|_| bad())?;
    Timestamp::from_millisecond(ms).map_err(|e| e.to_string())
}

/// RFC 3339 UTC text of `ts`: `2024-03-04T00:00:00Z`, fractional seconds only when present.
pub fn rfc3339_utc(ts: Timestamp) -> String {
    ts.to_string()
}

/// The UTC calendar date of `ts` as `YYYY-MM-DD`.
pub fn utc_date(ts: Timestamp) -> String {
    ts.to_zoned(TimeZone::UTC).date().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn utc(v: Value, f: Option<&str>) -> Result<String, CoerceError> {
        let f = f.map(|n| DateFormat::from_name(n).expect("format"));
        parse_instant(&v, f, &TimeZone::UTC).map(rfc3339_utc)
    }

    #[test]
    fn table() {
        let ok = [
            (
                json!("03-04-2024"),
                Some("MM-DD-YYYY"),
                "2024-03-04T00:00:00Z",
            ),
            (
                json!("03-04-2024"),
                Some("DD-MM-YYYY"),
                "2024-04-03T00:00:00Z",
            ),
            (
                json!("12/31/1999"),
                Some("MM-DD-YYYY"),
                "1999-12-31T00:00:00Z",
            ),
            (
                json!("31.12.1999"),
                Some("DD-MM-YYYY"),
                "1999-12-31T00:00:00Z",
            ),
            (json!(1614265330), Some("unix_s"), "2021-02-25T15:02:10Z"),
            (json!("1614265330"), Some("unix_s"), "2021-02-25T15:02:10Z"),
            (
                json!(1614265330123_i64),
                Some("unix_ms"),
                "2021-02-25T15:02:10.123Z",
            ),
            (
                json!(1614265330),
                Some("unix_ms"),
                "1970-01-19T16:24:25.33Z",
            ),
            (
                json!("2021-12-31T19:00:00-05:00"),
                None,
                "2022-01-01T00:00:00Z",
            ),
            (
                json!("2021-12-31T19:00:00-05:00"),
                Some("rfc3339"),
                "2022-01-01T00:00:00Z",
            ),
            (
                json!("2019-01-01 00:00:00.000Z"),
                None,
                "2019-01-01T00:00:00Z",
            ),
            (
                json!("2013-11-15T15:22:43-08:00"),
                Some("iso8601"),
                "2013-11-15T23:22:43Z",
            ),
            (json!("2018-10-20T00:00:00"), None, "2018-10-20T00:00:00Z"),
            (json!("2013-11-15"), None, "2013-11-15T00:00:00Z"),
            (
                json!("2013-11-15"),
                Some("YYYY-MM-DD"),
                "2013-11-15T00:00:00Z",
            ),
            (
                json!("/Date(1539993600000+0000)/"),
                None,
                "2018-10-20T00:00:00Z",
            ),
            (
                json!("/Date(1552326816230)/"),
                Some("msjson"),
                "2019-03-11T17:53:36.23Z",
            ),
            (json!("/Date(-86400000)/"), None, "1969-12-31T00:00:00Z"),
        ];
        for (input, format, want) in ok {
            assert_eq!(
                utc(input.clone(), format).as_deref(),
                Ok(want),
                "{input} {format:?}"
            );
        }
        let bad = [
            (json!("03-04-2024"), None, "ambiguous"),
            (json!("13-04-2024"), None, "ambiguous"),
            (json!(1614265330), None, "unix_s or unix_ms"),
            (
                json!("13-04-2024"),
                Some("MM-DD-YYYY"),
                "read as MM-DD-YYYY",
            ),
            (json!("02-30-2024"), Some("MM-DD-YYYY"), "invalid date"),
            (
                json!("2024-03-04"),
                Some("MM-DD-YYYY"),
                "expected MM-DD-YYYY",
            ),
            (json!("1.5"), Some("unix_s"), "whole Unix seconds"),
            (json!("yesterday"), None, "ISO 8601"),
            (json!("/Date(12ab)/"), None, "Microsoft JSON"),
            (json!(true), None, "date string"),
            (json!(i64::MAX), Some("unix_s"), ""),
        ];
        for (input, format, reason) in bad {
            let e = utc(input.clone(), format).expect_err("must fail");
            assert!(e.reason.contains(reason), "{input} {format:?}: {e}");
        }
    }

    #[test]
    fn naive_times_read_in_the_declared_zone() {
        let tz = TimeZone::get("America/New_York").expect("tzdb");
        let ts = parse_instant(&json!("2024-07-01T12:00:00"), None, &tz).expect("parse");
        assert_eq!(rfc3339_utc(ts), "2024-07-01T16:00:00Z");
        let ts = parse_instant(&json!("2024-07-01T12:00:00Z"), None, &tz).expect("parse");
        assert_eq!(
            rfc3339_utc(ts),
            "2024-07-01T12:00:00Z",
            "an explicit offset wins"
        );
    }

    #[test]
    fn render_is_the_inverse_at_each_precision() {
        let ts: Timestamp = "2024-03-04T00:00:00Z".parse().expect("ts");
        let cases = [
            (DateFormat::MonthDayYear, json!("03-04-2024")),
            (DateFormat::DayMonthYear, json!("04-03-2024")),
            (DateFormat::YearMonthDay, json!("2024-03-04")),
            (DateFormat::UnixSeconds, json!(1709510400)),
            (DateFormat::UnixMillis, json!(1709510400000_i64)),
            (DateFormat::MsJson, json!("/Date(1709510400000+0000)/")),
            (DateFormat::Rfc3339, json!("2024-03-04T00:00:00Z")),
        ];
        for (f, want) in cases {
            assert_eq!(f.render(ts), want, "{}", f.name());
            assert_eq!(DateFormat::from_name(f.name()), Ok(f));
        }
        assert!(DateFormat::from_name("MM/DD/YY").is_err());
    }
}
