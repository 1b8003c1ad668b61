//! The request JSON Schema of a manual trigger (jsonschema with default features off, so a
//! schema can never make the server fetch a remote `$ref`).

use serde_json::Value;

/// One violation: where in the input (a JSON Pointer, empty for the root) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON Pointer into the input.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Checks that `schema` is a usable JSON Schema.
///
/// # Errors
/// The compiler's message.
pub fn check(schema: &Value) -> Result<(), String> {
    jsonschema::validator_for(schema)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Every violation of `schema` by `input` (empty when it is valid).
///
/// # Errors
/// When `schema` does not compile (refused at save, so only for stored data gone bad).
pub fn violations(schema: &Value, input: &Value) -> Result<Vec<Violation>, String> {
    let validator = jsonschema::validator_for(schema).map_err(|e| e.to_string())?;
    Ok(validator
        .iter_errors(input)
        .map(|e| Violation {
            path: e.instance_path().to_string(),
            message: e.to_string(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn violations_name_the_field() {
        let schema = json!({"type": "object", "required": ["since"],
                            "properties": {"since": {"type": "string"}, "n": {"type": "integer"}}});
        assert!(
            violations(&schema, &json!({"since": "2026-03-01"}))
                .expect("ok")
                .is_empty()
        );
        let v = violations(&schema, &json!({"n": "x"})).expect("ok");
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v.iter().any(|x| x.path == "/n"));
        assert!(check(&json!({"type": 12})).is_err());
    }
}
