//! Enums through declared tables: `{"values": {"paid": "paid", "partially_paid": "partially_paid",
//! "pending": "pending"}}` maps a source value to a target value.

use serde_json::{Map, Value};

use super::CoerceError;

/// Looks `value` up in `table`. Keys are compared with the source value's text (a string
/// as is, a number or boolean as its JSON text): an exact match first, then an ASCII
/// case-insensitive one.
///
/// # Errors
/// [`CoerceError`] naming the unknown value and every accepted key.
pub fn lookup(value: &Value, table: &Map<String, Value>) -> Result<Value, CoerceError> {
    let key = match value {
        Value::String(s) => s.clone(),
        Value::Number(_) | Value::Bool(_) => value.to_string(),
        _ => {
            return Err(CoerceError::new(
                "enum",
                value,
                "expected a string, number or boolean",
            ));
        }
    };
    if let Some(v) = table.get(&key) {
        return Ok(v.clone());
    }
    if let Some((_, v)) = table.iter().find(|(k, _)| k.eq_ignore_ascii_case(&key)) {
        return Ok(v.clone());
    }
    let known: Vec<&str> = table.keys().map(String::as_str).collect();
    Err(CoerceError::new(
        "enum",
        value,
        &format!("unknown value; expected one of: {}", known.join(", ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table() {
        let Value::Object(t) = json!({"paid": "PAID", "pending": "OPEN", "1": true}) else {
            panic!("object")
        };
        assert_eq!(lookup(&json!("paid"), &t), Ok(json!("PAID")));
        assert_eq!(lookup(&json!("Pending"), &t), Ok(json!("OPEN")));
        assert_eq!(lookup(&json!(1), &t), Ok(json!(true)));
        let e = lookup(&json!("refunded"), &t).expect_err("unknown");
        for key in ["1", "paid", "pending"] {
            assert!(e.reason.contains(key), "{e}");
        }
        assert!(e.to_string().contains("\"refunded\""), "{e}");
        assert!(lookup(&json!({"a": 1}), &t).is_err());
    }
}
