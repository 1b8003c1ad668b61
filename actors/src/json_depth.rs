//! How deep JSON values nest: measured without recursion, bounded where Sluice builds them,
//! and read back from stored text at every depth Sluice can have stored.
//!
//! serde_json parses at most 127 nested levels (its recursion limit), so a payload that
//! arrives nests at most 127 levels. Values Sluice builds from payloads can nest deeper: a
//! step's input wraps the trigger (`{"body": …}`), a connector's output wraps the response
//! body, a mapping puts a value under a target path (`a.b.c` adds three levels). Two rules
//! follow:
//!
//! - **Built values are bounded by [`MAX_DEPTH`]** where they are built (a mapping, a step's
//!   input, a step's output): a deeper value fails its step with `MAPPING_ERROR`. Cloning,
//!   serializing and dropping a `Value` recurse once per level, and a few thousand levels
//!   overflow a thread's stack, which aborts the whole process (and, for a stored execution,
//!   every restart after it).
//! - **Stored text is read back with [`parse_stored`]**, which accepts every depth up to
//!   [`MAX_STORED_DEPTH`], not only serde_json's 127: a step input that ran is shown, and
//!   resumed after a restart, as it ran.

use serde::Deserialize;
use serde_json::Value;

use crate::limits::QuotedStrings;

/// Deepest nesting of a value Sluice builds and stores, in levels (`[]` and `{"a": 1}` are
/// one level, a scalar none). Twice the parser's limit, so that every payload that parses
/// fits with room for the levels flows add around it; a quarter of what a debug build's
/// 2 MiB thread stack survives when serde_json walks the value.
pub const MAX_DEPTH: usize = 256;

/// Deepest stored text [`parse_stored`] reads: a bounded value plus the few levels an
/// execution's context puts around it (`{"steps": {"name": {"output": …}}}`, a loop's
/// `{"item", "parent"}`), as stored with an event wait.
pub const MAX_STORED_DEPTH: usize = MAX_DEPTH + 16;

/// Nesting depth of `value` (0 for a scalar), counted with an explicit stack.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(items) => {
                deepest = deepest.max(d + 1);
                stack.extend(items.iter().map(|item| (item, d + 1)));
            }
            Value::Object(map) => {
                deepest = deepest.max(d + 1);
                stack.extend(map.values().map(|item| (item, d + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// Whether `value` nests at most [`MAX_DEPTH`] levels.
///
/// # Errors
/// A message giving the value's depth and the limit, for a step error.
pub fn check(value: &Value) -> Result<(), String> {
    match depth(value) {
        d if d > MAX_DEPTH => Err(format!(
            "the value nests {d} levels deep; values are limited to {MAX_DEPTH} levels"
        )),
        _ => Ok(()),
    }
}

/// Nesting depth of JSON `text`: the deepest run of open `[` and `{` outside strings. Text
/// that is not JSON gets a number too; only the depth is meant.
pub fn text_depth(text: &str) -> usize {
    let (mut open, mut deepest) = (0usize, 0usize);
    let mut strings = QuotedStrings::new(b"\"");
    for b in text.bytes() {
        if strings.skip(b) {
            continue;
        }
        match b {
            b'[' | b'{' => {
                open += 1;
                deepest = deepest.max(open);
            }
            b']' | b'}' => open = open.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// JSON text that Sluice stored (a trigger, a step's input, output or error) as a value;
/// `null` when it does not parse or nests deeper than [`MAX_STORED_DEPTH`].
///
/// Text within serde_json's limit parses as usual; only deeper text is scanned for its depth
/// and then parsed without the recursion limit, which that scan makes safe.
pub fn parse_stored(text: &str) -> Value {
    match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) if is_recursion_limit(&e) && text_depth(text) <= MAX_STORED_DEPTH => {
            let mut de = serde_json::Deserializer::from_str(text);
            de.disable_recursion_limit();
            match Value::deserialize(&mut de).and_then(|v| de.end().map(|()| v)) {
                Ok(v) => v,
                Err(_) => Value::Null,
            }
        }
        Err(_) => Value::Null,
    }
}

/// serde_json reports its recursion limit as a syntax error; its message is the only mark.
fn is_recursion_limit(e: &serde_json::Error) -> bool {
    e.is_syntax() && e.to_string().starts_with("recursion limit exceeded")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(levels: usize) -> String {
        format!(
            "{}1{}",
            "{\"a\":[".repeat(levels / 2),
            "]}".repeat(levels / 2)
        )
    }

    #[test]
    fn depth_counts_arrays_and_objects_and_agrees_with_the_text() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!([])), 1);
        assert_eq!(depth(&json!({"a": [1, {"b": {}}], "c": 2})), 4);
        for text in [r#"{"a": [1, {"b": {}}]}"#, r#"["[{", {"\"]": [[]]}]"#, "7"] {
            let v: Value = serde_json::from_str(text).expect("json");
            assert_eq!(text_depth(text), depth(&v), "{text}");
        }
        assert_eq!(text_depth(&nested(10_000)), 10_000);
    }

    #[test]
    fn stored_text_deeper_than_the_parser_limit_reads_back_up_to_the_bound() {
        let small = nested(6);
        assert_eq!(
            parse_stored(&small),
            serde_json::from_str::<Value>(&small).expect("json")
        );
        // 130 levels: serde_json alone gives up (the bug this module fixes showed such a step
        // input as null).
        assert!(serde_json::from_str::<Value>(&nested(130)).is_err());
        let v = parse_stored(&nested(130));
        assert_eq!(depth(&v), 130);
        assert_eq!(v.to_string(), nested(130));
        let v = parse_stored(&nested(MAX_STORED_DEPTH));
        assert_eq!(depth(&v), MAX_STORED_DEPTH);
        assert_eq!(parse_stored(&nested(MAX_STORED_DEPTH + 2)), Value::Null);
        assert_eq!(parse_stored(&nested(100_000)), Value::Null);
        assert_eq!(parse_stored("{\"a\": "), Value::Null);
        let mut trailing = nested(130);
        trailing.push_str(" x");
        assert_eq!(parse_stored(&trailing), Value::Null);
    }

    #[test]
    fn check_names_the_depth_and_the_limit() {
        assert!(check(&parse_stored(&nested(MAX_DEPTH))).is_ok());
        let mut deep = json!(1);
        for _ in 0..=MAX_DEPTH {
            deep = json!([deep]);
        }
        let message = check(&deep).expect_err("too deep");
        assert!(message.contains("257 levels"), "{message}");
        assert!(message.contains("256"), "{message}");
    }

    /// Stored text at the bound is walked by serde_json's recursive code (parse, clone, serialize,
    /// drop) on a thread with tokio's default 2 MiB stack, in whatever build runs the tests.
    #[test]
    fn a_value_at_the_bound_is_safe_on_a_worker_sized_stack() {
        let walked = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let v = parse_stored(&nested(MAX_STORED_DEPTH));
                assert_eq!(depth(&v), MAX_STORED_DEPTH);
                let wrapped = json!({"input": v.clone(), "output": v});
                wrapped.to_string().len()
            })
            .expect("spawn")
            .join()
            .expect("no stack overflow");
        assert!(walked > 2 * MAX_STORED_DEPTH);
    }
}
