//! Content hashes that stop echo loops: a record the engine wrote to one side comes back as
//! a change event; if its content hashes to what the engine wrote, it is an echo, not a
//! change.
//!
//! The hash is SHA-256 (hex) over a canonical JSON form: object keys sorted at every level,
//! no whitespace, and only the synced fields at the top level when a field list is given, so
//! provider-side bookkeeping (`updated_at`, `SyncToken`) does not count as a change.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// `record` reduced to `fields` (all fields when empty), keys sorted recursively.
pub fn canonical(record: &Value, fields: &[String]) -> Value {
    let projected = match (record, fields.is_empty()) {
        (Value::Object(map), false) => Value::Object(
            map.iter()
                .filter(|(k, _)| fields.iter().any(|f| f == *k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        _ => record.clone(),
    };
    sort_keys(&projected)
}

fn sort_keys(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                if let Some(inner) = map.get(k) {
                    out.insert(k.clone(), sort_keys(inner));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

/// SHA-256 hex of the canonical form of `record` restricted to `fields`.
pub fn content_hash(record: &Value, fields: &[String]) -> String {
    let canon = canonical(record, fields);
    // Serializing a `Value` cannot fail; an empty string would only make every record differ.
    let text = serde_json::to_string(&canon).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_and_unsynced_fields_do_not_change_the_hash() {
        let fields = vec!["email".to_owned(), "name".to_owned()];
        let a = json!({"email": "a@x", "name": {"first": "A", "last": "B"}, "updated_at": 1});
        let b = json!({"updated_at": 2, "name": {"last": "B", "first": "A"}, "email": "a@x"});
        assert_eq!(content_hash(&a, &fields), content_hash(&b, &fields));
        let c = json!({"email": "b@x", "name": {"first": "A", "last": "B"}});
        assert_ne!(content_hash(&a, &fields), content_hash(&c, &fields));
        assert_ne!(content_hash(&a, &[]), content_hash(&b, &[]));
        assert_eq!(content_hash(&a, &[]).len(), 64);
    }
}
