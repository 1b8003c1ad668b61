//! Field mappings: `{"target.path": <source>}` → a nested JSON document.
//!
//! Each key is a target path: dot-separated keys with optional array indices
//! (`Contact.EmailAddress` builds `{"Contact": {"EmailAddress": …}}`, `addresses[0].city`
//! builds `{"addresses": [{"city": …}]}`). Each value is a source as described in
//! [`field_spec`](super::field_spec): a `$` JSONPath, a template, a declared field with a
//! type coercion (`{"from": "$.created_at", "type": "datetime"}`), or a template document.
//! Keys are applied in the map's order (sorted by key); a later key writing under an
//! earlier scalar replaces it with an object.
//!
//! [`FieldMap::compile`] parses everything once and reports every problem with its field and
//! position; [`FieldMap::apply`] evaluates against a context and also reports every failing
//! field rather than the first.

use std::fmt;

use serde_json::{Map, Value, json};

use super::field_spec::{Declared, Expression, FieldError, parse_declared};
use super::template::{Template, render_value};
use crate::json_depth;

/// Every problem of a mapping, in key order. `Display` joins them with `; `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct MappingErrors(pub Vec<FieldError>);

impl fmt::Display for MappingErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Source {
    Expr(Expression),
    Declared(Box<Declared>, Option<FieldMap>),
    Document(Value),
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A compiled mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMap {
    fields: Vec<(String, Vec<Step>, Source)>,
}

impl FieldMap {
    /// Parses `mapping`.
    ///
    /// # Errors
    /// [`MappingErrors`] with every bad target path, expression and declaration.
    pub fn compile(mapping: &Map<String, Value>) -> Result<FieldMap, MappingErrors> {
        let mut errors = Vec::new();
        let mut fields = Vec::with_capacity(mapping.len());
        let mut padded = 0usize;
        for (target, value) in mapping {
            let steps = match parse_target(target) {
                Ok(s) => s,
                Err(m) => {
                    errors.push(FieldError::new(target, m));
                    continue;
                }
            };
            padded += steps
                .iter()
                .map(|s| match s {
                    Step::Index(n) => *n,
                    Step::Key(_) => 0,
                })
                .sum::<usize>();
            if padded > MAX_MAPPING_INDEX_TOTAL {
                errors.push(FieldError::new(
                    target,
                    format!(
                        "the mapping's target indices add up to more than {MAX_MAPPING_INDEX_TOTAL}"
                    ),
                ));
                break;
            }
            match compile_source(target, value) {
                Ok(source) => fields.push((target.clone(), steps, source)),
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            Ok(FieldMap { fields })
        } else {
            Err(MappingErrors(errors))
        }
    }

    /// The first key of every target path, deduplicated, in order (what a coverage score
    /// counts).
    pub fn top_level_targets(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (_, steps, _) in &self.fields {
            if let Some(Step::Key(k)) = steps.first()
                && !out.contains(&k.as_str())
            {
                out.push(k);
            }
        }
        out
    }

    /// Evaluates the mapping against `ctx` into a new document.
    ///
    /// # Errors
    /// [`MappingErrors`] with every field whose template or coercion failed.
    pub fn apply(&self, ctx: &Value) -> Result<Value, MappingErrors> {
        let mut out = Value::Object(Map::new());
        let mut errors = Vec::new();
        let has_each = self
            .fields
            .iter()
            .any(|(_, _, source)| matches!(source, Source::Declared(_, Some(_))));
        if has_each {
            // One copy of the context for the whole mapping, lent to each `each` in turn.
            let mut owned = ctx.clone();
            self.apply_into(&mut Scope::Lent(&mut owned), "", &mut out, &mut errors);
        } else {
            self.apply_into(&mut Scope::Shared(ctx), "", &mut out, &mut errors);
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(MappingErrors(errors))
        }
    }

    fn apply_into(
        &self,
        ctx: &mut Scope<'_>,
        prefix: &str,
        out: &mut Value,
        errors: &mut Vec<FieldError>,
    ) {
        for (target, steps, source) in &self.fields {
            let field = format!("{prefix}{target}");
            match eval_source(&field, source, ctx) {
                // The document nests as deep as its deepest path plus what that path holds;
                // checked before the value is placed, so no document outgrows the bound.
                Ok(v) => match json_depth::depth(&v) + steps.len() {
                    d if d > json_depth::MAX_DEPTH => errors.push(FieldError::new(
                        &field,
                        format!(
                            "the mapped value nests {d} levels deep; values are limited to {} levels",
                            json_depth::MAX_DEPTH
                        ),
                    )),
                    _ => set_path(out, steps, v),
                },
                Err(mut e) => errors.append(&mut e),
            }
        }
    }
}

fn compile_source(target: &str, value: &Value) -> Result<Source, Vec<FieldError>> {
    match value {
        Value::String(s) => Expression::parse(target, s)
            .map(Source::Expr)
            .map_err(|e| vec![e]),
        Value::Object(spec) if spec.contains_key("from") => {
            let declared = parse_declared(target, spec)?;
            let each = match &declared.each {
                None => None,
                Some(inner) => Some(FieldMap::compile(inner).map_err(|e| {
                    e.0.into_iter()
                        .map(|fe| FieldError {
                            field: format!("{target}[*].{}", fe.field),
                            ..fe
                        })
                        .collect::<Vec<_>>()
                })?),
            };
            Ok(Source::Declared(Box::new(declared), each))
        }
        other => {
            check_document(target, other)?;
            Ok(Source::Document(other.clone()))
        }
    }
}

/// Parses every string of a template document so that errors surface at compile time.
fn check_document(target: &str, value: &Value) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    fn walk(target: &str, v: &Value, errors: &mut Vec<FieldError>) {
        match v {
            Value::String(s) => {
                if let Err(e) = Template::parse(s) {
                    errors.push(FieldError::template(target, &e));
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(target, i, errors)),
            Value::Object(m) => m.values().for_each(|i| walk(target, i, errors)),
            _ => {}
        }
    }
    walk(target, value, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The context a mapping reads: the caller's, or the item scope of an enclosing `each`
/// (`{"item", "index", "parent"}`), which that `each` owns and lends to the one inside it.
enum Scope<'a> {
    Shared(&'a Value),
    Lent(&'a mut Value),
}

impl Scope<'_> {
    fn value(&self) -> &Value {
        match self {
            Scope::Shared(v) => v,
            Scope::Lent(v) => v,
        }
    }
}

fn eval_source(
    field: &str,
    source: &Source,
    scope: &mut Scope<'_>,
) -> Result<Value, Vec<FieldError>> {
    let ctx = scope.value();
    match source {
        Source::Expr(e) => e.eval(field, ctx).map_err(|e| vec![e]),
        Source::Document(doc) => {
            render_value(doc, ctx).map_err(|e| vec![FieldError::template(field, &e)])
        }
        Source::Declared(d, each) => {
            let raw = d.from.eval(field, ctx).map_err(|e| vec![e])?;
            let value = match (each, &d.coercion) {
                (Some(inner), _) => each_item(field, inner, raw, scope)?,
                (None, Some(c)) => {
                    let currency = match &d.currency {
                        Some(e) => Some(e.eval(field, ctx).map_err(|e| vec![e])?),
                        None => None,
                    };
                    c.apply(&raw, currency.as_ref())
                        .map_err(|e| vec![FieldError::new(field, e.to_string())])?
                }
                (None, None) => raw,
            };
            Ok(match (&value, &d.default) {
                (Value::Null, Some(default)) => default.clone(),
                _ => value,
            })
        }
    }
}

/// Applies `inner` to each item of `raw` in the scope `{"item", "index", "parent"}`.
///
/// One scope serves every item: `parent` is the enclosing context, borrowed (moved in, then
/// back) from the mapping's own copy or from an enclosing `each`'s scope.
/// A copy per item made an `each` over n items cost n copies of the whole context, the
/// trigger included: minutes of CPU for a 40,000-item array in an 80 KB event.
fn each_item(
    field: &str,
    inner: &FieldMap,
    raw: Value,
    scope: &mut Scope<'_>,
) -> Result<Value, Vec<FieldError>> {
    let items = match raw {
        Value::Null => return Ok(Value::Null),
        Value::Array(items) => items,
        single => vec![single],
    };
    let parent = match scope {
        Scope::Shared(v) => (*v).clone(),
        Scope::Lent(v) => std::mem::take(*v),
    };
    // Built by hand: `json!` would serialize `parent`, a copy of the whole context.
    let mut slots = Map::new();
    slots.insert("item".into(), Value::Null);
    slots.insert("index".into(), Value::from(0));
    slots.insert("parent".into(), parent);
    let mut item_scope = Value::Object(slots);
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        if let Value::Object(slots) = &mut item_scope {
            slots.insert("item".into(), item);
            slots.insert("index".into(), json!(index));
        }
        let mut doc = Value::Object(Map::new());
        inner.apply_into(
            &mut Scope::Lent(&mut item_scope),
            &format!("{field}[{index}]."),
            &mut doc,
            &mut errors,
        );
        out.push(doc);
    }
    if let (Scope::Lent(v), Value::Object(mut slots)) = (scope, item_scope) {
        **v = slots.remove("parent").unwrap_or_default();
    }
    if errors.is_empty() {
        Ok(Value::Array(out))
    } else {
        Err(errors)
    }
}

/// Largest array index in a target path, and largest sum of a path's indices (each pads
/// its array with nulls up to it: 250 levels of `[10000]` padded 2.5 million).
pub const MAX_TARGET_INDEX: usize = 10_000;

/// Largest sum of target indices over a whole mapping.
pub const MAX_MAPPING_INDEX_TOTAL: usize = 100_000;

/// `a.b[0].c` → `[Key(a), Key(b), Index(0), Key(c)]`.
fn parse_target(path: &str) -> Result<Vec<Step>, String> {
    let bad =
        || format!("bad target path {path:?}: expected keys separated by '.', with optional [N]");
    let mut steps = Vec::new();
    let mut padded = 0usize;
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => part.split_at(i),
            None => (part, ""),
        };
        if key.is_empty() {
            return Err(bad());
        }
        steps.push(Step::Key(key.to_owned()));
        while !rest.is_empty() {
            let close = rest.find(']').ok_or_else(bad)?;
            let n = rest[1..close].parse().map_err(|_| bad())?;
            if n > MAX_TARGET_INDEX {
                return Err(format!(
                    "target index {n} in {path:?} is above {MAX_TARGET_INDEX}"
                ));
            }
            // Each index pads its array with nulls up to it, at every level of the path.
            padded += n;
            if padded > MAX_TARGET_INDEX {
                return Err(format!(
                    "the target indices in {path:?} add up to more than {MAX_TARGET_INDEX}"
                ));
            }
            steps.push(Step::Index(n));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(bad());
            }
        }
    }
    if steps.len() > json_depth::MAX_DEPTH {
        return Err(format!(
            "the target path has {} levels; values are limited to {} levels",
            steps.len(),
            json_depth::MAX_DEPTH
        ));
    }
    Ok(steps)
}

fn set_path(root: &mut Value, steps: &[Step], value: Value) {
    let Some((last, parents)) = steps.split_last() else {
        return;
    };
    let mut cur = root;
    for step in parents {
        cur = child(cur, step);
    }
    *child(cur, last) = value;
}

/// The slot for `step` in `cur`, turning `cur` into an object or array as needed.
fn child<'a>(cur: &'a mut Value, step: &Step) -> &'a mut Value {
    match step {
        Step::Key(k) => {
            if !cur.is_object() {
                *cur = Value::Object(Map::new());
            }
            match cur {
                Value::Object(obj) => obj.entry(k.clone()).or_insert(Value::Null),
                _ => unreachable!("made an object above"),
            }
        }
        Step::Index(i) => {
            if !cur.is_array() {
                *cur = Value::Array(Vec::new());
            }
            match cur {
                Value::Array(items) => {
                    if items.len() <= *i {
                        items.resize(i + 1, Value::Null);
                    }
                    &mut items[*i]
                }
                _ => unreachable!("made an array above"),
            }
        }
    }
}

/// Compiles and applies `mapping` against `ctx` (what the engine's mapping steps call).
///
/// # Errors
/// [`MappingErrors`] from compiling or evaluating.
pub fn apply(mapping: &Map<String, Value>, ctx: &Value) -> Result<Value, MappingErrors> {
    FieldMap::compile(mapping)?.apply(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        let Value::Object(m) = v else {
            panic!("object")
        };
        m
    }

    #[test]
    fn builds_nested_targets_and_keeps_types() {
        let mapping = map(json!({
            "Contact.EmailAddress": "{{trigger.customer.email}}",
            "Contact.Name": "{{trigger.customer.first_name}} {{trigger.customer.last_name}}",
            "LineItems": "{{trigger.line_items}}",
            "Fixed": 3
        }));
        let ctx = json!({"trigger": {"customer": {"email": "a@b.c", "first_name": "Ada", "last_name": "L"},
                                     "line_items": [{"sku": "X"}]}});
        let out = apply(&mapping, &ctx).expect("apply");
        assert_eq!(
            out,
            json!({"Contact": {"EmailAddress": "a@b.c", "Name": "Ada L"},
                   "LineItems": [{"sku": "X"}], "Fixed": 3})
        );
    }

    #[test]
    fn jsonpath_declared_fields_each_and_indices() {
        let mapping = map(json!({
            "email": "$.customer.email",
            "skus": "$.line_items[*].sku",
            "createdAt": {"from": "$.created", "type": "datetime", "format": "unix_s"},
            "total": {"from": "$.amount", "type": "money", "currency": "$.currency", "minorUnits": true},
            "paid": {"from": "{{ paid }}", "type": "boolean"},
            "status": {"from": "$.status", "type": "enum", "values": {"open": "open", "done": "paid"}},
            "note": {"from": "$.missing", "default": "none"},
            "addresses[1].city": "$.city",
            "lines": {"from": "$.line_items", "each": {
                "sku": "$.item.sku", "n": "{{ index }}",
                "price": {"from": "$.item.price", "type": "money", "currency": "$.parent.currency"}}}
        }));
        let ctx = json!({"customer": {"email": "e@x"}, "line_items": [{"sku": "A", "price": "1.50"}, {"sku": "B", "price": 2}],
                         "created": 1614265330, "amount": 2000, "currency": "usd", "paid": "yes",
                         "status": "done", "city": "Paris"});
        let out = apply(&mapping, &ctx).expect("apply");
        assert_eq!(
            out,
            json!({
                "email": "e@x", "skus": ["A", "B"], "createdAt": "2021-02-25T15:02:10Z",
                "total": {"amount": "20.00", "currency": "USD"}, "paid": true, "status": "paid",
                "note": "none", "addresses": [null, {"city": "Paris"}],
                "lines": [{"sku": "A", "n": 0, "price": {"amount": "1.50", "currency": "USD"}},
                          {"sku": "B", "n": 1, "price": {"amount": "2", "currency": "USD"}}]
            })
        );
        let fm = FieldMap::compile(&mapping).expect("compile");
        assert_eq!(fm.top_level_targets().len(), 9);
    }

    #[test]
    fn every_error_is_reported_with_field_and_position() {
        let bad = map(json!({
            "a": "$.x[",
            "b": "{{ NOPE(1) }}",
            "c": {"from": "$.d", "type": "datetime", "format": "?"},
            "d..e": "$.x",
            "f": {"body": ["{{ x"]},
            "g": {"from": "$.l", "each": {"h": "{{ UPPER() }}"}}
        }));
        let e = FieldMap::compile(&bad).expect_err("bad");
        let fields: Vec<&str> = e.0.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["a", "b", "c", "d..e", "f", "g[*].h"]);
        assert_eq!(e.0[1].position, Some(3));
        assert!(e.0[0].position.is_some());

        let runtime = map(json!({
            "when": {"from": "$.d", "type": "datetime"},
            "n": {"from": "$.n", "type": "integer"},
            "lines": {"from": "$.l", "each": {"q": {"from": "$.item", "type": "boolean"}}},
            "ok": "$.ok"
        }));
        let ctx = json!({"d": "03-04-2024", "n": "x", "l": [true, "maybe"], "ok": 1});
        let e = apply(&runtime, &ctx).expect_err("runtime");
        let fields: Vec<&str> = e.0.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["lines[1].q", "n", "when"]);
        assert!(e.to_string().contains("ambiguous"), "{e}");
    }

    /// `each` lends one item scope to every item (and to an `each` inside it), so the
    /// context is copied once per mapping, not once per item; `parent` still reads it.
    #[test]
    fn each_reads_item_index_and_parent_at_every_level() {
        let mapping = map(json!({
            "orders": {"from": "$.trigger.orders", "each": {
                "n": "{{index}}",
                "who": "{{parent.trigger.customer}}",
                "lines": {"from": "$.item.lines", "each": {
                    "sku": "{{item}}",
                    "order": "{{parent.index}}",
                    "who": "{{parent.parent.trigger.customer}}"
                }}
            }},
            "after": "{{trigger.customer}}"
        }));
        let ctx = json!({"trigger": {"customer": "ada",
                                     "orders": [{"lines": ["a", "b"]}, {"lines": ["c"]}]}});
        let out = apply(&mapping, &ctx).expect("apply");
        assert_eq!(
            out,
            json!({"after": "ada", "orders": [
                {"n": 0, "who": "ada", "lines": [{"sku": "a", "order": 0, "who": "ada"},
                                                 {"sku": "b", "order": 0, "who": "ada"}]},
                {"n": 1, "who": "ada", "lines": [{"sku": "c", "order": 1, "who": "ada"}]}
            ]})
        );
    }

    #[test]
    fn target_indices_are_bounded_per_path_and_per_mapping() {
        assert!(FieldMap::compile(&map(json!({"a[10000]": 1}))).is_ok());
        let e = FieldMap::compile(&map(json!({"a[6000].b[6000]": 1}))).expect_err("path");
        assert!(e.to_string().contains("add up to more than 10000"), "{e}");
        let many: Map<String, Value> = (0..11)
            .map(|i| (format!("f{i}[10000]"), json!(1)))
            .collect();
        let e = FieldMap::compile(&many).expect_err("mapping");
        assert!(e.to_string().contains("add up to more than 100000"), "{e}");
    }

    /// A path deeper than the bound is refused when compiled; a value that would make the
    /// document deeper is refused before it is placed (a 50,000-level path used to build a
    /// document whose drop overflowed the stack).
    #[test]
    fn documents_stay_within_the_depth_bound() {
        let bound = crate::json_depth::MAX_DEPTH;
        let path = |levels: usize| vec!["k"; levels].join(".");
        let e = FieldMap::compile(&map(json!({path(bound + 1): "x"}))).expect_err("too long");
        assert!(e.to_string().contains("257 levels"), "{e}");
        let fits =
            FieldMap::compile(&map(json!({path(bound - 2): "{{trigger.v}}"}))).expect("compile");
        let ctx = |levels: usize| {
            let mut v = json!(1);
            for _ in 0..levels {
                v = json!([v]);
            }
            json!({"trigger": {"v": v}})
        };
        let out = fits.apply(&ctx(2)).expect("at the bound");
        assert_eq!(crate::json_depth::depth(&out), bound);
        let e = fits.apply(&ctx(3)).expect_err("one past the bound");
        assert_eq!(e.0[0].field, path(bound - 2));
        assert!(e.to_string().contains("257 levels"), "{e}");
    }
}
