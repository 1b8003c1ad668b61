//! Type coercion, declared per target field of a mapping (see
//! [`field_map`](super::field_map) for the declaration form).
//!
//! | `type` | result | rules |
//! | --- | --- | --- |
//! | `string` | JSON string | numbers and booleans as their JSON text; arrays and objects refused |
//! | `integer` | JSON integer | [`number`] rules, then refused if there is a fractional part |
//! | `number` | JSON number | [`number`] rules; an integer when whole, else the `f64` nearest to the exact decimal |
//! | `decimal` | decimal string | [`number`] rules, exact (`"19.99"`); `scale` rounds half away from zero and pads |
//! | `money` | `{"amount", "currency"}` | [`money`] rules |
//! | `boolean` | JSON boolean | [`boolean`] rules |
//! | `datetime` | RFC 3339 UTC string | [`date`] rules |
//! | `date` | `YYYY-MM-DD` | [`date`] rules; the UTC calendar date of the instant |
//! | `enum` | the table's value | [`enumeration`] rules |
//! | `list` | array of strings | a string split at `separator` (default `,`), items trimmed, empty items dropped (`"a, b"` → `["a", "b"]`); an array of scalars as their text |
//!
//! `null` stays `null` for every type (a missing source value is not an error), and so does
//! an empty or all-space string for every type but `string`.

pub mod boolean;
pub mod date;
pub mod enumeration;
pub mod money;
pub mod number;

use jiff::tz::TimeZone;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Map, Number, Value};

pub use date::DateFormat;
pub use number::Locale;

/// A value that could not be coerced: the target type, the input (as JSON text, cut at 80
/// characters) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {input} as {target}: {reason}")]
pub struct CoerceError {
    /// The declared type (`datetime`, `number`, `enum`…).
    pub target: &'static str,
    /// The input as JSON text.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

impl CoerceError {
    /// An error for `input` coerced to `target`.
    pub fn new(target: &'static str, input: &Value, reason: &str) -> Self {
        let mut text = input.to_string();
        if text.chars().count() > 80 {
            text = text.chars().take(80).collect::<String>() + "…";
        }
        Self {
            target,
            input: text,
            reason: reason.to_owned(),
        }
    }

    /// The same error reported for another declared type.
    pub fn retype(self, target: &'static str) -> Self {
        Self { target, ..self }
    }
}

/// A declared coercion.
#[derive(Debug, Clone, PartialEq)]
pub enum Coercion {
    /// To a JSON string.
    String,
    /// To a JSON integer.
    Integer {
        /// Locale of numeric text.
        locale: Option<Locale>,
    },
    /// To a JSON number.
    Number {
        /// Locale of numeric text.
        locale: Option<Locale>,
    },
    /// To an exact decimal string.
    Decimal {
        /// Locale of numeric text.
        locale: Option<Locale>,
        /// Digits after the decimal point (rounded half away from zero, padded).
        scale: Option<u32>,
    },
    /// To `{"amount", "currency"}`; the currency comes from the field's `currency`.
    Money {
        /// Locale of numeric text.
        locale: Option<Locale>,
        /// The amount is in the currency's minor units (Stripe).
        minor_units: bool,
    },
    /// To a JSON boolean.
    Boolean,
    /// To RFC 3339 UTC.
    DateTime {
        /// Declared input format; `None` accepts only unambiguous text.
        format: Option<DateFormat>,
        /// Zone of naive inputs.
        timezone: TimeZone,
    },
    /// To `YYYY-MM-DD` (UTC).
    Date {
        /// Declared input format.
        format: Option<DateFormat>,
        /// Zone of naive inputs.
        timezone: TimeZone,
    },
    /// To an array of strings.
    List {
        /// Item separator of string input.
        separator: String,
    },
    /// Through a table.
    Enum {
        /// Source value → target value.
        values: Map<String, Value>,
    },
}

impl Coercion {
    /// The `type` name as declared in a mapping.
    pub fn name(&self) -> &'static str {
        match self {
            Coercion::String => "string",
            Coercion::Integer { .. } => "integer",
            Coercion::Number { .. } => "number",
            Coercion::Decimal { .. } => "decimal",
            Coercion::Money { .. } => "money",
            Coercion::Boolean => "boolean",
            Coercion::DateTime { .. } => "datetime",
            Coercion::Date { .. } => "date",
            Coercion::Enum { .. } => "enum",
            Coercion::List { .. } => "list",
        }
    }

    /// Coerces `value`. `currency` is the evaluated currency of a `money` field (ignored by
    /// the other types).
    ///
    /// # Errors
    /// [`CoerceError`] as the module table describes.
    pub fn apply(&self, value: &Value, currency: Option<&Value>) -> Result<Value, CoerceError> {
        let blank = value.as_str().is_some_and(|s| s.trim().is_empty());
        if value.is_null() || (blank && *self != Coercion::String) {
            return Ok(Value::Null);
        }
        match self {
            Coercion::String => match value {
                Value::String(_) => Ok(value.clone()),
                Value::Number(_) | Value::Bool(_) => Ok(Value::String(value.to_string())),
                _ => Err(CoerceError::new("string", value, "expected a scalar")),
            },
            Coercion::Integer { locale } => {
                let d = number::parse_decimal(value, *locale).map_err(|e| e.retype("integer"))?;
                match d.fract().is_zero().then(|| d.to_i64()).flatten() {
                    Some(i) => Ok(Value::from(i)),
                    None => Err(CoerceError::new(
                        "integer",
                        value,
                        "not a whole 64-bit number",
                    )),
                }
            }
            Coercion::Number { locale } => {
                let d = number::parse_decimal(value, *locale)?;
                Ok(json_number(d))
            }
            Coercion::Decimal { locale, scale } => {
                let mut d =
                    number::parse_decimal(value, *locale).map_err(|e| e.retype("decimal"))?;
                if let Some(s) = scale {
                    d = d.round_dp_with_strategy(*s, RoundingStrategy::MidpointAwayFromZero);
                    d.rescale(*s);
                }
                Ok(Value::String(d.to_string()))
            }
            Coercion::Money {
                locale,
                minor_units,
            } => {
                let currency = currency.unwrap_or(&Value::Null);
                money::money(value, currency, *minor_units, *locale)
            }
            Coercion::Boolean => boolean::parse_bool(value).map(Value::Bool),
            Coercion::DateTime { format, timezone } => {
                date::parse_instant(value, *format, timezone)
                    .map(|ts| Value::String(date::rfc3339_utc(ts)))
            }
            Coercion::Date { format, timezone } => date::parse_instant(value, *format, timezone)
                .map(|ts| Value::String(date::utc_date(ts)))
                .map_err(|e| e.retype("date")),
            Coercion::Enum { values } => enumeration::lookup(value, values),
            Coercion::List { separator } => list(value, separator),
        }
    }
}

fn list(value: &Value, separator: &str) -> Result<Value, CoerceError> {
    let items: Vec<Value> = match value {
        Value::String(s) => s
            .split(separator)
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(|i| Value::String(i.to_owned()))
            .collect(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(_) => Ok(i.clone()),
                Value::Number(_) | Value::Bool(_) => Ok(Value::String(i.to_string())),
                _ => Err(CoerceError::new("list", value, "items must be scalars")),
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(CoerceError::new(
                "list",
                value,
                "expected a string or an array",
            ));
        }
    };
    Ok(Value::Array(items))
}

/// A JSON number for `d`: an integer when whole and in `i64`, else the nearest `f64`.
fn json_number(d: Decimal) -> Value {
    if d.fract().is_zero()
        && let Some(i) = d.to_i64()
    {
        return Value::from(i);
    }
    d.normalize()
        .to_string()
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_type_and_null_passthrough() {
        let utc = TimeZone::UTC;
        let cases: Vec<(Coercion, Value, Value)> = vec![
            (Coercion::String, json!(12), json!("12")),
            (Coercion::String, json!(""), json!("")),
            (Coercion::Integer { locale: None }, json!("42"), json!(42)),
            (
                Coercion::Integer {
                    locale: Some(Locale::DeDe),
                },
                json!("1.234"),
                json!(1234),
            ),
            (
                Coercion::Number {
                    locale: Some(Locale::FrFr),
                },
                json!("1\u{202F}234,5"),
                json!(1234.5),
            ),
            (Coercion::Number { locale: None }, json!("7"), json!(7)),
            (
                Coercion::Decimal {
                    locale: None,
                    scale: None,
                },
                json!(19.99),
                json!("19.99"),
            ),
            (
                Coercion::Decimal {
                    locale: None,
                    scale: Some(2),
                },
                json!("2.345"),
                json!("2.35"),
            ),
            (
                Coercion::Decimal {
                    locale: None,
                    scale: Some(2),
                },
                json!("-2.345"),
                json!("-2.35"),
            ),
            (
                Coercion::Decimal {
                    locale: None,
                    scale: Some(2),
                },
                json!(5),
                json!("5.00"),
            ),
            (Coercion::Boolean, json!("off"), json!(false)),
            (
                Coercion::DateTime {
                    format: Some(DateFormat::UnixMillis),
                    timezone: utc.clone(),
                },
                json!(0),
                json!("1970-01-01T00:00:00Z"),
            ),
            (
                Coercion::Date {
                    format: None,
                    timezone: utc.clone(),
                },
                json!("2021-12-31T19:00:00-05:00"),
                json!("2022-01-01"),
            ),
        ];
        for (c, input, want) in cases {
            assert_eq!(c.apply(&input, None), Ok(want), "{} {input}", c.name());
            assert_eq!(c.apply(&Value::Null, None), Ok(Value::Null), "{}", c.name());
        }
        let money = Coercion::Money {
            locale: None,
            minor_units: true,
        };
        assert_eq!(
            money.apply(&json!(1999), Some(&json!("usd"))),
            Ok(json!({"amount": "19.99", "currency": "USD"}))
        );
        assert!(
            money.apply(&json!(1999), None).is_err(),
            "money needs a currency"
        );
        assert_eq!(Coercion::Boolean.apply(&json!("  "), None), Ok(Value::Null));
        let e = Coercion::Integer { locale: None }
            .apply(&json!("1.5"), None)
            .expect_err("fraction");
        assert_eq!(e.target, "integer");
        assert!(Coercion::String.apply(&json!([1]), None).is_err());
        let list = Coercion::List {
            separator: ",".into(),
        };
        assert_eq!(
            list.apply(&json!("tag1, tag2,, "), None),
            Ok(json!(["tag1", "tag2"]))
        );
        assert_eq!(list.apply(&json!(["a", 1]), None), Ok(json!(["a", "1"])));
        assert!(list.apply(&json!({"a": 1}), None).is_err());
        let long = json!("x".repeat(200));
        let e = Coercion::Boolean.apply(&long, None).expect_err("long");
        assert!(e.input.chars().count() <= 81, "{}", e.input);
    }
}
