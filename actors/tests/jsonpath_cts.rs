//! The JSONPath Compliance Test Suite sample (`../shared/fixtures/jsonpath-cts`, relative to
//! the repository root) through the library's [`Selector`]: every valid selector gives the
//! expected nodelist (or one of the allowed ones), every invalid one is refused.

use std::path::PathBuf;

use serde_json::Value;
use sluice_actors::mapping::jsonpath::Selector;

fn suite() -> Option<Vec<Value>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/jsonpath-cts/cts.sample.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("skipped: {} is absent", path.display());
        return None;
    };
    let doc: Value = serde_json::from_str(&text).expect("cts json");
    Some(doc["tests"].as_array().expect("tests").clone())
}

#[test]
fn compliance_suite_sample_passes_in_full() {
    let Some(tests) = suite() else { return };
    let mut failures = Vec::new();
    for t in &tests {
        let name = t["name"].as_str().unwrap_or("?");
        let selector = t["selector"].as_str().expect("selector");
        let parsed = Selector::parse(selector);
        if t.get("invalid_selector").is_some() {
            if parsed.is_ok() {
                failures.push(format!("{name}: {selector:?} should be invalid"));
            }
            continue;
        }
        let Ok(s) = parsed else {
            failures.push(format!("{name}: {selector:?} did not parse"));
            continue;
        };
        let got = Value::Array(s.nodes(&t["document"]).expect("a small document"));
        let ok = match (t.get("result"), t.get("results")) {
            (Some(want), _) => &got == want,
            (None, Some(Value::Array(any))) => any.contains(&got),
            _ => false,
        };
        if !ok {
            failures.push(format!("{name}: {selector:?} gave {got}"));
        }
    }
    println!(
        "JSONPath CTS sample: {} passed, {} failed",
        tests.len() - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(tests.len(), 213, "the manifest lists 213 tests");
}
