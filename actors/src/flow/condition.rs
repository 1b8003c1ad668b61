//! Conditions: one expression language, CEL (the `cel` crate), for trigger conditions, gate
//! cases, `wait.until` and event waits.
//!
//! A condition sees the execution's template context as CEL variables: `trigger` (the event
//! payload), `input`, `steps` (`steps.NAME.output…`, `steps.NAME.status`) and, for event
//! waits, `event`. JSON maps to CEL maps, arrays to lists, integers to `int` (or `uint` past
//! `i64`), other numbers to `double`, `null` to `null`. A condition must evaluate to a bool;
//! anything else (including a missing field, which CEL reports as "no such key") is an error,
//! which the caller treats as "not true".

use serde_json::Value;

/// A syntax error in a condition, with the parser's explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid condition {expr:?}: {reason}")]
pub struct ConditionError {
    /// The expression.
    pub expr: String,
    /// Why it does not parse, or why it did not give a bool.
    pub reason: String,
}

/// Checks that `expr` parses as CEL (called at save time).
///
/// # Errors
/// [`ConditionError`] with the parser's message.
pub fn check(expr: &str) -> Result<(), ConditionError> {
    if expr.trim().is_empty() {
        return Err(ConditionError {
            expr: expr.to_owned(),
            reason: "empty expression".into(),
        });
    }
    compile(expr).map(|_| ())
}

/// Compiles `expr` after checking it against [`crate::limits`] (the CEL parser recurses per
/// nesting level and member access).
fn compile(expr: &str) -> Result<cel::Program, ConditionError> {
    let fail = |reason: String| ConditionError {
        expr: expr.chars().take(200).collect(),
        reason,
    };
    crate::limits::check_expression(expr).map_err(fail)?;
    cel::Program::compile(expr).map_err(|e| fail(e.to_string()))
}

/// Evaluates `expr` with the top-level keys of `vars` (a JSON object) as variables.
///
/// # Errors
/// [`ConditionError`] when it does not parse, fails at run time, or is not a bool.
pub fn evaluate(expr: &str, vars: &Value) -> Result<bool, ConditionError> {
    let fail = |reason: String| ConditionError {
        expr: expr.to_owned(),
        reason,
    };
    let program = compile(expr)?;
    let mut ctx = cel::Context::default();
    if let Value::Object(map) = vars {
        for (name, value) in map {
            ctx.add_variable(name.as_str(), Plain(value))
                .map_err(|e| fail(format!("variable {name}: {e}")))?;
        }
    }
    match program.execute(&ctx).map_err(|e| fail(e.to_string()))? {
        cel::Value::Bool(b) => Ok(b),
        other => Err(fail(format!("expected a bool, got {other:?}"))),
    }
}

/// A JSON value serialized with plain numbers. serde_json's `arbitrary_precision` (numbers kept
/// exactly as sent) serializes a `Number` as a private one-field map that CEL would see as a
/// map; here a number is an `int`, a `uint` past `i64`, else a `double`.
struct Plain<'a>(&'a Value);

impl serde::Serialize for Plain<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => s.serialize_i64(i),
                (None, Some(u)) => s.serialize_u64(u),
                _ => s.serialize_f64(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(t) => s.serialize_str(t),
            Value::Array(items) => s.collect_seq(items.iter().map(Plain)),
            Value::Object(map) => s.collect_map(map.iter().map(|(k, v)| (k, Plain(v)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_read_the_context() {
        let vars = json!({"trigger": {"total_price": 150.5, "tags": ["a"]},
                          "steps": {"check": {"output": {"body": {"paid": true}}}}});
        assert_eq!(evaluate("trigger.total_price > 100", &vars), Ok(true));
        assert_eq!(
            evaluate("steps.check.output.body.paid == true", &vars),
            Ok(true)
        );
        assert_eq!(evaluate("'a' in trigger.tags", &vars), Ok(true));
        assert_eq!(evaluate("trigger.total_price < 100.0", &vars), Ok(false));
        assert!(
            evaluate("trigger.total_price", &vars).is_err(),
            "not a bool"
        );
        assert!(evaluate("trigger.missing == 1", &vars).is_err());
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(check("trigger.x >").is_err());
        assert!(check("").is_err());
        assert!(check("trigger.x > 1 && has(trigger.y)").is_ok());
    }
}
