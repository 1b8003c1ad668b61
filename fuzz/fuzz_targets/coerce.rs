//! Any bytes: the first byte picks a coercion, the rest is the input (as JSON when it
//! parses, else as a string). Coercion returns a value or an error, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use sluice_actors::mapping::field_map::apply;

const SPECS: [&str; 14] = [
    r#"{"from": "$.v", "type": "datetime"}"#,
    r#"{"from": "$.v", "type": "datetime", "format": "MM-DD-YYYY"}"#,
    r#"{"from": "$.v", "type": "datetime", "format": "DD-MM-YYYY"}"#,
    r#"{"from": "$.v", "type": "datetime", "format": "unix_s"}"#,
    r#"{"from": "$.v", "type": "date", "format": "unix_ms"}"#,
    r#"{"from": "$.v", "type": "datetime", "format": "msjson", "timezone": "America/New_York"}"#,
    r#"{"from": "$.v", "type": "number", "locale": "de-DE"}"#,
    r#"{"from": "$.v", "type": "decimal", "locale": "fr-FR", "scale": 2}"#,
    r#"{"from": "$.v", "type": "integer", "locale": "en-US"}"#,
    r#"{"from": "$.v", "type": "money", "currency": "$.v", "minorUnits": true}"#,
    r#"{"from": "$.v", "type": "money", "currency": "usd"}"#,
    r#"{"from": "$.v", "type": "boolean"}"#,
    r#"{"from": "$.v", "type": "enum", "values": {"a": 1, "B": 2}}"#,
    r#"{"from": "$.v", "type": "list", "separator": ";"}"#,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let value = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text.into_owned()));
    let spec: Value = serde_json::from_str(SPECS[usize::from(pick) % SPECS.len()]).expect("spec");
    let Value::Object(mapping) = json!({"out": spec}) else { return };
    let _ = apply(&mapping, &json!({"v": value}));
});
