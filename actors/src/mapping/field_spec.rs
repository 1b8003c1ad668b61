//! One mapped field: the value side of a mapping entry, parsed once and evaluated per
//! document.
//!
//! A value is one of:
//!
//! - a string starting with `$`: JSONPath (RFC 9535) over the context, see
//!   [`jsonpath`](super::jsonpath) (write `{{ '$5' }}` for literal text starting with `$`);
//! - any other string: a template (`"{{trigger.customer.email}}"`, `"Order {{trigger.id}}"`,
//!   or plain literal text);
//! - an object with a `from` key: a *declared field* (below);
//! - anything else (numbers, booleans, `null`, arrays, other objects): rendered as a
//!   template document ([`render_value`](super::template::render_value)).
//!
//! A declared field:
//!
//! ```json
//! {"from": "$.created_at", "type": "datetime", "format": "MM-DD-YYYY",
//!  "timezone": "America/New_York", "locale": "de-DE", "scale": 2,
//!  "values": {"paid": "paid"}, "currency": "$.currency", "minorUnits": true,
//!  "default": null, "each": {"sku": "$.item.sku"}}
//! ```
//!
//! | key | meaning |
//! | --- | --- |
//! | `from` | required: the source, a JSONPath or a template |
//! | `type` | optional coercion: `string`, `integer`, `number`, `decimal`, `money`, `boolean`, `datetime`, `date`, `enum`, `list` ([`coerce`](super::coerce)) |
//! | `format` | `datetime` / `date` input format ([`DateFormat`]) |
//! | `timezone` | IANA zone for naive date-times (default UTC) |
//! | `locale` | `integer` / `number` / `decimal` / `money` text locale ([`Locale`]) |
//! | `scale` | `decimal`: digits after the point |
//! | `values` | `enum`: the table (required for `enum`) |
//! | `separator` | `list`: the item separator (default `,`) |
//! | `currency` | `money`: the currency, a JSONPath, template or literal code (required for `money`) |
//! | `minorUnits` | `money`: the amount is in minor units |
//! | `default` | the value used when the result is `null` |
//! | `each` | a nested mapping applied to every element of `from` (an array; a single object counts as one element), with the context `{"item": element, "index": i, "parent": outer context}` |
//!
//! Unknown keys, unknown types, formats, locales and zones, and options that do not belong
//! to the declared type are refused when the mapping is compiled.

use jiff::tz::TimeZone;
use serde_json::{Map, Value};

use super::coerce::{Coercion, DateFormat, Locale};
use super::jsonpath::{Selector, is_jsonpath};
use super::template::{Template, TemplateError};

/// A compile or evaluation problem of one target field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field:?}: {message}")]
pub struct FieldError {
    /// The target path (`totals.total`, `lineItems[2].sku` at run time).
    pub field: String,
    /// Byte offset in the field's expression, when the problem is in one.
    pub position: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// An error without a position.
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            position: None,
            message: message.into(),
        }
    }

    /// A template error, keeping its position.
    pub fn template(field: &str, e: &TemplateError) -> Self {
        let position = match e {
            TemplateError::Parse { position, .. }
            | TemplateError::UnknownFunction { position, .. }
            | TemplateError::Arity { position, .. }
            | TemplateError::ArgumentType { position, .. }
            | TemplateError::Overflow { position, .. }
            | TemplateError::TooCostly { position, .. } => *position,
        };
        Self {
            field: field.to_owned(),
            position: Some(position),
            message: e.to_string(),
        }
    }
}

/// A source expression: JSONPath or template.
#[derive(Debug, Clone, PartialEq)]
pub enum Expression {
    /// `$`-prefixed RFC 9535 query.
    Select(Selector),
    /// A `{{ }}` template or literal text.
    Template(Template),
}

impl Expression {
    /// Parses `src`: JSONPath when it starts with `$`, else a template.
    ///
    /// # Errors
    /// [`FieldError`] with the byte position of the problem, for `field`.
    pub fn parse(field: &str, src: &str) -> Result<Expression, FieldError> {
        if is_jsonpath(src) {
            let offset = src.len() - src.trim_start().len();
            Selector::parse(src.trim())
                .map(Expression::Select)
                .map_err(|e| FieldError {
                    field: field.to_owned(),
                    position: Some(offset + e.position),
                    message: e.to_string(),
                })
        } else {
            Template::parse(src)
                .map(Expression::Template)
                .map_err(|e| FieldError::template(field, &e))
        }
    }

    /// Evaluates against `ctx`.
    ///
    /// # Errors
    /// A template render error (a function given an unusable value).
    pub fn eval(&self, field: &str, ctx: &Value) -> Result<Value, FieldError> {
        match self {
            Expression::Select(s) => s.select(ctx).map_err(|m| FieldError::new(field, m)),
            Expression::Template(t) => t.render(ctx).map_err(|e| FieldError::template(field, &e)),
        }
    }
}

/// A declared field (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    /// Where the value comes from.
    pub from: Expression,
    /// The declared coercion.
    pub coercion: Option<Coercion>,
    /// `money`: the currency expression.
    pub currency: Option<Expression>,
    /// Used when the result is `null`.
    pub default: Option<Value>,
    /// `each`: the nested mapping, raw (compiled by the caller).
    pub each: Option<Map<String, Value>>,
}

const KEYS: [&str; 12] = [
    "separator",
    "from",
    "type",
    "format",
    "timezone",
    "locale",
    "scale",
    "values",
    "currency",
    "minorUnits",
    "default",
    "each",
];

/// Which options each type accepts besides `from`, `type`, `default` and `each`.
fn allowed(kind: &str) -> &'static [&'static str] {
    match kind {
        "integer" | "number" => &["locale"],
        "decimal" => &["locale", "scale"],
        "money" => &["locale", "currency", "minorUnits"],
        "datetime" | "date" => &["format", "timezone"],
        "enum" => &["values"],
        "list" => &["separator"],
        _ => &[],
    }
}

/// Parses a declared field `spec` of target `field`, collecting every problem.
///
/// # Errors
/// Every [`FieldError`] found.
pub fn parse_declared(field: &str, spec: &Map<String, Value>) -> Result<Declared, Vec<FieldError>> {
    let mut errors = Vec::new();
    let err = |m: String| FieldError::new(field, m);
    for key in spec.keys() {
        if !KEYS.contains(&key.as_str()) {
            errors.push(err(format!(
                "unknown key {key:?} in a declared field (known: {})",
                KEYS.join(", ")
            )));
        }
    }
    let from = match spec.get("from") {
        Some(Value::String(s)) => Expression::parse(field, s).map_err(|e| errors.push(e)).ok(),
        _ => {
            errors.push(err("\"from\" must be a JSONPath or template string".into()));
            None
        }
    };
    let kind = match spec.get("type") {
        None => None,
        Some(Value::String(t)) => Some(t.as_str()),
        Some(_) => {
            errors.push(err("\"type\" must be a string".into()));
            None
        }
    };
    for key in [
        "format",
        "timezone",
        "locale",
        "scale",
        "values",
        "currency",
        "minorUnits",
        "separator",
    ] {
        if spec.contains_key(key) && !kind.is_some_and(|k| allowed(k).contains(&key)) {
            errors.push(err(format!(
                "{key:?} does not apply to type {}",
                kind.map_or("(none)".to_owned(), |k| format!("{k:?}"))
            )));
        }
    }
    let text = |key: &str, errors: &mut Vec<FieldError>| match spec.get(key) {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(err(format!("{key:?} must be a string")));
            None
        }
    };
    let locale = text("locale", &mut errors)
        .and_then(|t| Locale::from_tag(&t).map_err(|m| errors.push(err(m))).ok());
    let format = text("format", &mut errors).and_then(|t| {
        DateFormat::from_name(&t)
            .map_err(|m| errors.push(err(m)))
            .ok()
    });
    let timezone = match text("timezone", &mut errors) {
        None => TimeZone::UTC,
        Some(name) => TimeZone::get(&name).unwrap_or_else(|e| {
            errors.push(err(format!("unknown time zone {name:?}: {e}")));
            TimeZone::UTC
        }),
    };
    let coercion = match kind {
        None => None,
        Some("string") => Some(Coercion::String),
        Some("integer") => Some(Coercion::Integer { locale }),
        Some("number") => Some(Coercion::Number { locale }),
        Some("decimal") => {
            let scale = match spec.get("scale") {
                None => None,
                Some(v) => match v.as_u64().filter(|s| *s <= 28) {
                    Some(s) => u32::try_from(s).ok(),
                    None => {
                        errors.push(err("\"scale\" must be an integer 0..=28".into()));
                        None
                    }
                },
            };
            Some(Coercion::Decimal { locale, scale })
        }
        Some("money") => {
            if !spec.contains_key("currency") {
                errors.push(err("type \"money\" needs \"currency\"".into()));
            }
            let minor_units = match spec.get("minorUnits") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    errors.push(err("\"minorUnits\" must be true or false".into()));
                    false
                }
            };
            Some(Coercion::Money {
                locale,
                minor_units,
            })
        }
        Some("boolean") => Some(Coercion::Boolean),
        Some("list") => Some(Coercion::List {
            separator: text("separator", &mut errors).unwrap_or_else(|| ",".to_owned()),
        }),
        Some("datetime") => Some(Coercion::DateTime { format, timezone }),
        Some("date") => Some(Coercion::Date { format, timezone }),
        Some("enum") => match spec.get("values") {
            Some(Value::Object(values)) if !values.is_empty() => Some(Coercion::Enum {
                values: values.clone(),
            }),
            _ => {
                errors.push(err(
                    "type \"enum\" needs \"values\", a non-empty object".into()
                ));
                None
            }
        },
        Some(other) => {
            errors.push(err(format!(
                "unknown type {other:?} (known: string, integer, number, decimal, money, boolean, datetime, date, enum, list)"
            )));
            None
        }
    };
    let currency = text("currency", &mut errors).and_then(|c| {
        Expression::parse(field, &c)
            .map_err(|e| errors.push(e))
            .ok()
    });
    let each = match spec.get("each") {
        None => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(_) => {
            errors.push(err("\"each\" must be a mapping object".into()));
            None
        }
    };
    if each.is_some() && coercion.is_some() {
        errors.push(err("\"each\" and \"type\" cannot be combined".into()));
    }
    match from {
        Some(from) if errors.is_empty() => Ok(Declared {
            from,
            coercion,
            currency,
            default: spec.get("default").cloned(),
            each,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Declared, Vec<FieldError>> {
        let Value::Object(m) = v else {
            panic!("object")
        };
        parse_declared("f", &m)
    }

    #[test]
    fn accepts_the_documented_form() {
        let d = parse(
            json!({"from": "$.created_at", "type": "datetime", "format": "MM-DD-YYYY",
                             "timezone": "Europe/Paris", "default": "n/a"}),
        )
        .expect("valid");
        assert!(matches!(
            d.coercion,
            Some(Coercion::DateTime {
                format: Some(DateFormat::MonthDayYear),
                ..
            })
        ));
        assert_eq!(d.default, Some(json!("n/a")));
        let d = parse(json!({"from": "{{trigger.total}}", "type": "money", "currency": "usd", "minorUnits": true}))
            .expect("money");
        assert!(matches!(d.from, Expression::Template(_)));
        assert!(d.currency.is_some());
    }

    #[test]
    fn reports_every_problem() {
        let errors = parse(
            json!({"from": "$.a[", "type": "datetime", "format": "YY", "locale": "xx",
                                  "timezone": "Mars/Base", "fromat": 1}),
        )
        .expect_err("bad");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        for needle in [
            "unknown key \"fromat\"",
            "JSONPath",
            "\"locale\" does not apply",
            "unknown date format",
            "unsupported locale",
            "unknown time zone",
        ] {
            assert!(
                text.iter().any(|t| t.contains(needle)),
                "{needle}: {text:?}"
            );
        }
        assert!(
            errors.iter().any(|e| e.position.is_some()),
            "the JSONPath error has a position"
        );
        for bad in [
            json!({"from": "$.x", "type": "money"}),
            json!({"from": "$.x", "type": "enum"}),
            json!({"from": "$.x", "type": "enum", "values": {}}),
            json!({"from": "$.x", "type": "colour"}),
            json!({"from": "$.x", "type": "decimal", "scale": 40}),
            json!({"from": 3}),
            json!({"from": "$.x", "each": {}, "type": "string"}),
            json!({"from": "{{ NOPE(1) }}"}),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
    }
}
