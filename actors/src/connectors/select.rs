//! Dot paths into a provider's answer: `orders`, `Invoices[0].InvoiceID`, `[0].id`,
//! `response_metadata.next_cursor`. A small subset on purpose: definitions only need to point
//! at one value; JSONPath proper belongs to the mapping layer.

use serde_json::Value;

/// The value at `path` in `root`, or `None` when any step is missing. An empty path is the
/// root itself.
pub fn select<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = root;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            cur = cur.get(key)?;
        }
        while let Some(stripped) = rest.strip_prefix('[') {
            let end = stripped.find(']')?;
            let index: usize = stripped[..end].parse().ok()?;
            cur = cur.get(index)?;
            rest = &stripped[end + 1..];
        }
    }
    Some(cur)
}

/// A scalar id as text: strings as they are, integers in full (never through f64).
pub fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_with_indices() {
        let v = json!({"Invoices": [{"InvoiceID": "abc"}], "meta": {"next": "c2"}});
        assert_eq!(select(&v, "Invoices[0].InvoiceID"), Some(&json!("abc")));
        assert_eq!(select(&v, "meta.next"), Some(&json!("c2")));
        assert_eq!(select(&v, "Invoices[1].InvoiceID"), None);
        assert_eq!(select(&json!([{"id": 7}]), "[0].id"), Some(&json!(7)));
        assert_eq!(select(&v, ""), Some(&v));
        assert_eq!(
            id_text(&json!(820982911946154508u64)).as_deref(),
            Some("820982911946154508")
        );
        assert_eq!(id_text(&json!(null)), None);
    }
}
