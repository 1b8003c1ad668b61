//! Any string: parsing never panics; a template that parses prints to a source that parses
//! again and prints the same; rendering never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_actors::mapping::template::Template;

fuzz_target!(|src: &str| {
    let Ok(t) = Template::parse(src) else { return };
    let printed = t.to_string();
    let again = Template::parse(&printed).expect("printed template parses");
    assert_eq!(again.to_string(), printed);
    let ctx = serde_json::json!({"input": {"a": [1, "x", {"b": null}], "n": "19.99"}, "trigger": 3});
    let _ = t.render(&ctx);
});
