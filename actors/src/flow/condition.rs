//! Conditions: one expression language, CEL (the `cel` crate), for trigger conditions, gate
//! cases, `wait.until` and event waits.
//!
//! A condition sees the execution's template context as CEL variables: `trigger` (the event
//! payload), `input`, `steps` (`steps.NAME.output…`, `steps.NAME.status`) and, for event
//! waits, `event`. JSON maps to CEL maps, arrays to lists, integers to `int` (or `uint` past
//! `i64`), other numbers to `double`, `null` to `null`. A condition must evaluate to a bool;
//! anything else (including a missing field, which CEL reports as "no such key") is an error,
//! which the caller treats as "not true".

use std::collections::BTreeSet;

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use serde_json::Value;

/// Variables of a trigger condition.
pub const TRIGGER_ROOTS: &[&str] = &["trigger"];
/// Variables of a gate case.
pub const GATE_ROOTS: &[&str] = &["trigger", "input", "steps"];
/// Variables of a `wait … until` condition.
pub const UNTIL_ROOTS: &[&str] = &["trigger", "input", "steps", "now"];
/// Variables of an event wait's condition.
pub const EVENT_ROOTS: &[&str] = &["trigger", "input", "steps", "event"];

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

/// Checks that `expr` parses and reads only the variables in `roots` (names bound by a
/// macro, such as `x` in `items.all(x, x > 1)`, are local to it), and returns the step names
/// it reads (`steps.NAME…` or `steps['NAME']…`), for the caller to check against the steps
/// that can have run before it.
///
/// # Errors
/// [`ConditionError`] for a syntax error or a variable outside `roots`.
pub fn check_references(expr: &str, roots: &[&str]) -> Result<BTreeSet<String>, ConditionError> {
    check(expr)?;
    let program = compile(expr)?;
    let mut walk = Walk::default();
    walk.expr(program.expression());
    if let Some(unknown) = walk.unknown_roots(roots) {
        return Err(ConditionError {
            expr: expr.chars().take(200).collect(),
            reason: format!(
                "unknown variable {unknown:?} (a condition here can read {})",
                roots.join(", ")
            ),
        });
    }
    Ok(walk.steps)
}

/// What a walk over a compiled expression found.
#[derive(Default)]
struct Walk {
    /// Free variables, in order of name.
    roots: BTreeSet<String>,
    /// Step names read through `steps`.
    steps: BTreeSet<String>,
    /// Names bound by the comprehensions being walked (innermost last).
    bound: Vec<String>,
}

impl Walk {
    fn unknown_roots(&self, roots: &[&str]) -> Option<&str> {
        self.roots
            .iter()
            .map(String::as_str)
            .find(|r| !roots.contains(r))
    }

    fn is_free(&self, name: &str) -> bool {
        !self.bound.iter().any(|b| b == name)
    }

    /// `steps` itself, as a free variable.
    fn is_steps(&self, e: &IdedExpr) -> bool {
        matches!(&e.expr, Expr::Ident(n) if n == "steps" && self.is_free(n))
    }

    fn expr(&mut self, e: &IdedExpr) {
        match &e.expr {
            Expr::Unspecified | Expr::Literal(_) => {}
            Expr::Ident(name) => {
                // `@`-names are the parser's own (comprehension accumulators).
                if !name.starts_with('@') && self.is_free(name) {
                    self.roots.insert(name.clone());
                }
            }
            Expr::Select(select) => {
                if self.is_steps(&select.operand) {
                    self.steps.insert(select.field.clone());
                }
                self.expr(&select.operand);
            }
            Expr::Call(call) => {
                if call.func_name == "_[_]"
                    && let [operand, key] = call.args.as_slice()
                    && self.is_steps(operand)
                    && let Expr::Literal(LiteralValue::String(name)) = &key.expr
                {
                    self.steps.insert(name.inner().to_owned());
                }
                if let Some(target) = &call.target {
                    self.expr(target);
                }
                for arg in &call.args {
                    self.expr(arg);
                }
            }
            Expr::Comprehension(comp) => {
                // The range and the accumulator's start are outside the bound names.
                self.expr(&comp.iter_range);
                self.expr(&comp.accu_init);
                let before = self.bound.len();
                self.bound.push(comp.iter_var.clone());
                if let Some(v) = &comp.iter_var2 {
                    self.bound.push(v.clone());
                }
                self.bound.push(comp.accu_var.clone());
                self.expr(&comp.loop_cond);
                self.expr(&comp.loop_step);
                self.expr(&comp.result);
                self.bound.truncate(before);
            }
            Expr::List(list) => {
                for elem in &list.elements {
                    self.expr(elem);
                }
            }
            Expr::Map(map) => self.entries(map.entries.iter().map(|e| &e.expr)),
            Expr::Struct(st) => self.entries(st.entries.iter().map(|e| &e.expr)),
        }
    }

    fn entries<'a>(&mut self, entries: impl Iterator<Item = &'a EntryExpr>) {
        for entry in entries {
            match entry {
                EntryExpr::StructField(field) => self.expr(&field.value),
                EntryExpr::MapEntry(m) => {
                    self.expr(&m.key);
                    self.expr(&m.value);
                }
            }
        }
    }
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
    fn references_are_checked_against_the_roots() {
        let steps =
            |e: &str| check_references(e, GATE_ROOTS).map(|s| s.into_iter().collect::<Vec<_>>());
        assert_eq!(steps("trigger.x > 1 && input.y == 2"), Ok(vec![]));
        let e = steps("inptu.x > 1").expect_err("unknown root");
        assert!(e.reason.contains("\"inptu\""), "{e}");
        assert!(steps("now > 1").is_err(), "no clock in a gate");
        assert!(check_references("now > 1", UNTIL_ROOTS).is_ok());
        assert!(check_references("event.id == trigger.id", EVENT_ROOTS).is_ok());
        assert!(check_references("event.id == 1", GATE_ROOTS).is_err());
        // Names bound by macros are local to them; outside they are unknown.
        assert_eq!(steps("trigger.items.all(x, x > 1)"), Ok(vec![]));
        assert_eq!(steps("trigger.items.exists(i, i.sku == 'a')"), Ok(vec![]));
        assert_eq!(steps("trigger.items.map(x, x * 2).size() > 0"), Ok(vec![]));
        assert!(steps("trigger.items.all(x, y > 1)").is_err());
        assert!(steps("trigger.items.all(x, x > 1) && x > 1").is_err());
        // Steps read by field, by index and under has().
        assert_eq!(
            steps("steps.a.output.ok && steps['b'].status == 'completed' && has(steps.c.output)"),
            Ok(vec!["a".to_owned(), "b".to_owned(), "c".to_owned()])
        );
        // A macro variable named `steps` is not the steps.
        assert_eq!(steps("trigger.l.all(steps, steps.x > 1)"), Ok(vec![]));
        assert!(steps("trigger.x >").is_err());
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(check("trigger.x >").is_err());
        assert!(check("").is_err());
        assert!(check("trigger.x > 1 && has(trigger.y)").is_ok());
    }
}
