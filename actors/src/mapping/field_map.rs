//! Field mappings: `{"target.path": "<template>"}` → a nested JSON document.
//!
//! Each key is a dot path in the target (`Contact.EmailAddress` builds
//! `{"Contact": {"EmailAddress": …}}`); each value is rendered with
//! [`render_value`](super::template::render_value), so a whole-value template keeps its JSON
//! type. Keys are applied in document order; a later key writing under an earlier scalar
//! replaces it with an object.

use serde_json::{Map, Value};

use super::template::{TemplateError, render_value};

/// Renders `mapping` against `ctx` into a new document.
///
/// # Errors
/// The first [`TemplateError`] met.
pub fn apply(mapping: &Map<String, Value>, ctx: &Value) -> Result<Value, TemplateError> {
    let mut out = Value::Object(Map::new());
    for (path, template) in mapping {
        let value = render_value(template, ctx)?;
        set_path(&mut out, path, value);
    }
    Ok(out)
}

fn set_path(root: &mut Value, path: &str, value: Value) {
    let mut cur = root;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(obj) = cur else { return };
        if parts.peek().is_none() {
            obj.insert(part.to_owned(), value);
            return;
        }
        cur = obj
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_nested_targets_and_keeps_types() {
        let mapping = json!({
            "Contact.EmailAddress": "{{trigger.customer.email}}",
            "Contact.Name": "{{trigger.customer.first_name}} {{trigger.customer.last_name}}",
            "LineItems": "{{trigger.line_items}}",
            "Fixed": 3
        });
        let ctx = json!({"trigger": {"customer": {"email": "a@b.c", "first_name": "Ada", "last_name": "L"},
                                     "line_items": [{"sku": "X"}]}});
        let Value::Object(m) = mapping else { panic!() };
        let out = apply(&m, &ctx).expect("apply");
        assert_eq!(
            out,
            json!({"Contact": {"EmailAddress": "a@b.c", "Name": "Ada L"},
                   "LineItems": [{"sku": "X"}], "Fixed": 3})
        );
    }
}
