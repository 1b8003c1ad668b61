//! Booleans from JSON booleans, `0`/`1`, and the words `true`/`false`, `yes`/`no`,
//! `on`/`off`, `1`/`0` (case-insensitive, surrounding spaces ignored).

use serde_json::Value;

use super::CoerceError;

/// Reads `value` as a boolean.
///
/// # Errors
/// [`CoerceError`] for any other number, word or type.
pub fn parse_bool(value: &Value) -> Result<bool, CoerceError> {
    let fail = || {
        CoerceError::new(
            "boolean",
            value,
            "expected true/false, yes/no, on/off or 1/0",
        )
    };
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => match n.as_u64() {
            Some(1) => Ok(true),
            Some(0) => Ok(false),
            _ => Err(fail()),
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(fail()),
        },
        _ => Err(fail()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table() {
        let truthy = [
            json!(true),
            json!("yes"),
            json!("YES"),
            json!(" on "),
            json!("1"),
            json!(1),
            json!("True"),
        ];
        let falsy = [
            json!(false),
            json!("no"),
            json!("off"),
            json!("0"),
            json!(0),
            json!("FALSE"),
        ];
        for v in truthy {
            assert_eq!(parse_bool(&v), Ok(true), "{v}");
        }
        for v in falsy {
            assert_eq!(parse_bool(&v), Ok(false), "{v}");
        }
        for v in [
            json!("y"),
            json!(2),
            json!(-1),
            json!(""),
            json!("maybe"),
            json!([true]),
        ] {
            assert!(parse_bool(&v).is_err(), "{v}");
        }
    }
}
