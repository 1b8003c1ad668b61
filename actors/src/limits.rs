//! Bounds on user-written expressions (CEL conditions, JSONPath queries) checked before they
//! reach a parser. The parsers recurse once per nesting level or member access, so without
//! these bounds a few kilobytes of `((((…` or `a.a.a.…` overflow the stack and abort the
//! whole process; with them such input is an ordinary 400 naming the limit.

/// Longest expression accepted, bytes.
pub const MAX_EXPRESSION_LEN: usize = 2048;
/// Deepest nesting of `(`, `[` and `{` accepted.
pub const MAX_NESTING: usize = 32;
/// Most member accesses (`.`) accepted in one expression.
pub const MAX_MEMBERS: usize = 256;

/// Follows quoted strings through a text scanned byte by byte, so that scans of expressions
/// and JSON skip what is inside them. A backslash escapes the next byte.
pub(crate) struct QuotedStrings {
    quotes: &'static [u8],
    open: Option<u8>,
    escaped: bool,
}

impl QuotedStrings {
    /// Strings delimited by any of `quotes` (`b"\"'"` for CEL and JSONPath, `b"\""` for JSON).
    pub(crate) fn new(quotes: &'static [u8]) -> Self {
        Self {
            quotes,
            open: None,
            escaped: false,
        }
    }

    /// True when `b`, the next byte, belongs to a string (its quotes included).
    pub(crate) fn skip(&mut self, b: u8) -> bool {
        if let Some(q) = self.open {
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == q {
                self.open = None;
            }
            return true;
        }
        if self.quotes.contains(&b) {
            self.open = Some(b);
            return true;
        }
        false
    }
}

/// Checks `src` against the bounds, ignoring what is inside quoted strings.
///
/// # Errors
/// A message naming the bound that was exceeded.
pub fn check_expression(src: &str) -> Result<(), String> {
    if src.len() > MAX_EXPRESSION_LEN {
        return Err(format!(
            "expression is longer than {MAX_EXPRESSION_LEN} bytes"
        ));
    }
    let (mut depth, mut deepest, mut members) = (0usize, 0usize, 0usize);
    let mut strings = QuotedStrings::new(b"'\"");
    for b in src.bytes() {
        if strings.skip(b) {
            continue;
        }
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'.' => members += 1,
            _ => {}
        }
    }
    if deepest > MAX_NESTING {
        return Err(format!("expression nests deeper than {MAX_NESTING} levels"));
    }
    if members > MAX_MEMBERS {
        return Err(format!(
            "expression has more than {MAX_MEMBERS} member accesses"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_enforced_outside_strings() {
        assert!(check_expression("trigger.total > 100 && steps.a.output.ok").is_ok());
        assert!(check_expression(&format!("$[?{}@.a{}]", "(".repeat(33), ")".repeat(33))).is_err());
        assert!(check_expression(&format!("trigger{} == 1", ".a".repeat(300))).is_err());
        assert!(check_expression(&"x".repeat(MAX_EXPRESSION_LEN + 1)).is_err());
        // Brackets and dots inside strings do not count.
        let quoted = format!("trigger.name == '{}'", "((((.".repeat(100));
        assert!(check_expression(&quoted).is_ok(), "{quoted}");
    }
}
