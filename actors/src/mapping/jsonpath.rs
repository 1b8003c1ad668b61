//! JSONPath (RFC 9535) selection through `serde_json_path`, with the byte position of
//! syntax errors and the RFC's notion of a *singular query*.
//!
//! In field mappings and templates a `$`-prefixed expression is JSONPath over the mapping's
//! context document. What it yields there depends on its shape:
//!
//! - a singular query (only name and index selectors, one per segment, no `..`, e.g.
//!   `$.customer.email`, `$.line_items[0].sku`, `$['odd key']`) yields the one node it
//!   selects, or `null` when it selects nothing;
//! - any other query (`$.line_items[*].sku`, `$..id`, `$.items[?@.qty > 1]`) yields the
//!   nodelist as a JSON array, in document order, possibly empty.
//!
//! [`Selector::nodes`] always gives the nodelist (what the preview endpoint returns for an
//! expression).

use serde_json::Value;
use serde_json_path::JsonPath;

use super::template::Segment;

/// A JSONPath expression that does not parse: the expression, the byte position of the
/// problem in it, and the parser's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JSONPath {expression:?}: parse error at byte {position}: {message}")]
pub struct JsonPathError {
    /// The expression.
    pub expression: String,
    /// Byte offset of the error.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

/// A parsed JSONPath expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    source: String,
    path: JsonPath,
    prefix: Vec<Segment>,
    singular: bool,
    /// What bounds the documents it runs over.
    cost: Cost,
}

/// Most nodes a document may have for a query whose filter reads the root (`$.a[?@.x ==
/// $.y]`, RFC 9535 `value($..c)`): each element tested queries the whole document again,
/// so the work is the square of its size (10,000 nodes: about 10^8 steps, under a second).
pub const MAX_NODES_FOR_ROOT_FILTERS: usize = 10_000;

/// True when `s` is meant as JSONPath: it starts with `$` (after leading spaces).
pub fn is_jsonpath(s: &str) -> bool {
    s.trim_start().starts_with('$')
}

impl Selector {
    /// Parses an RFC 9535 query.
    ///
    /// # Errors
    /// [`JsonPathError`] with the parser's position and message.
    pub fn parse(src: &str) -> Result<Selector, JsonPathError> {
        crate::limits::check_expression(src).map_err(|message| JsonPathError {
            expression: src.chars().take(200).collect(),
            position: 0,
            message,
        })?;
        let path = JsonPath::parse(src).map_err(|e| JsonPathError {
            expression: src.to_owned(),
            position: e.position(),
            message: e.message().to_owned(),
        })?;
        let cost = check_cost(src).map_err(|(position, message)| JsonPathError {
            expression: src.to_owned(),
            position,
            message,
        })?;
        let (prefix, singular) = singular_prefix(src);
        Ok(Selector {
            source: src.to_owned(),
            path,
            prefix,
            singular,
            cost,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True for a singular query (see the module docs).
    pub fn is_singular(&self) -> bool {
        self.singular
    }

    /// The leading name and index selectors of the query, up to the first other segment:
    /// `$.steps.fetch.output[*]` gives `[Key("steps"), Key("fetch"), Key("output")]`. Used for
    /// static checks (which steps a mapping reads).
    pub fn prefix(&self) -> &[Segment] {
        &self.prefix
    }

    /// The nodelist, in document order.
    ///
    /// # Errors
    /// The reason, when `doc` is too large for the query's filter (it reads the root and
    /// `doc` has more than [`MAX_NODES_FOR_ROOT_FILTERS`] nodes, or it matches a regex and
    /// `doc` has more than [`MAX_NODES_FOR_REGEX_FILTERS`]), or when the nodes selected
    /// hold more than [`MAX_SELECTED_BYTES`].
    pub fn nodes(&self, doc: &Value) -> Result<Vec<Value>, String> {
        self.affordable(doc)?;
        let selected = self.path.query(doc).all();
        let mut budget = MAX_SELECTED_BYTES;
        for node in &selected {
            if !spend(node, &mut budget) {
                return Err(format!(
                    "JSONPath {:?} selects more than {} MiB",
                    self.source,
                    MAX_SELECTED_BYTES >> 20
                ));
            }
        }
        Ok(selected.into_iter().cloned().collect())
    }

    /// A singular query's node (or `null`); any other query's nodelist as an array.
    ///
    /// # Errors
    /// As [`Selector::nodes`].
    pub fn select(&self, doc: &Value) -> Result<Value, String> {
        if self.singular {
            Ok(self.path.query(doc).first().cloned().unwrap_or(Value::Null))
        } else {
            self.nodes(doc).map(Value::Array)
        }
    }

    fn affordable(&self, doc: &Value) -> Result<(), String> {
        let (limit, what) = match self.cost {
            Cost { regex: true, .. } => (MAX_NODES_FOR_REGEX_FILTERS, "calls match or search"),
            Cost {
                root_in_filter: true,
                ..
            } => (MAX_NODES_FOR_ROOT_FILTERS, "reads the root ($)"),
            _ => return Ok(()),
        };
        // Counted with an explicit stack, stopping past the limit.
        let (mut seen, mut stack) = (0usize, vec![doc]);
        while let Some(v) = stack.pop() {
            seen += 1;
            if seen > limit {
                return Err(format!(
                    "JSONPath {:?}: a filter that {what} runs over documents of at most \
                     {limit} nodes; this one has more",
                    self.source
                ));
            }
            match v {
                Value::Array(items) => stack.extend(items),
                Value::Object(map) => stack.extend(map.values()),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Most descendant segments (`..`) in one query.
pub const MAX_DESCENDANT_SEGMENTS: usize = 1;

/// Most copies of one node a query's selection lists can make: the product, over every
/// bracketed list in the query, of its number of selectors (`[0,1]` counts 2).
pub const MAX_SELECTION_FANOUT: usize = 16;

/// Most bytes (string bytes, plus 16 per node) a query may select, counted before they are
/// copied out of the document.
pub const MAX_SELECTED_BYTES: usize = 32 << 20;

/// Most nodes a document may have for a query that calls `match` or `search`:
/// `serde_json_path` compiles the regular expression again for every node it tests (a
/// pattern such as `\\w{30}\\w{30}` takes ~9 ms to compile).
pub const MAX_NODES_FOR_REGEX_FILTERS: usize = 1_000;

/// What [`check_cost`] found that makes a query's work depend on the document's size
/// beyond linearly; [`Selector::nodes`] bounds the document for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Cost {
    /// A filter reads the root: its work is the square of the document.
    root_in_filter: bool,
    /// A filter calls `match` or `search`: a regex compiled per node tested.
    regex: bool,
}

/// One open `[` while scanning: the parenthesis depth it opened at, its selectors so far,
/// and whether the selector being read is a filter.
struct Bracket {
    parens: usize,
    selectors: usize,
    filter: bool,
}

/// Refuses the query shapes whose work grows as a power of the document's or the query's
/// size, and reports the ones bounded at run time. The evaluator is exact and unbounded:
/// - every descendant segment multiplies the nodelist by the document's depth
///   (`$..*..*..*` over a 120-level, 1.3 KB event selected millions of subtrees), so a
///   query has at most [`MAX_DESCENDANT_SEGMENTS`];
/// - every selection list multiplies it by its length (`[0,0,0,0,0,0,0,0,0,0]` seven
///   times made 10^7 copies from a 197-byte query), so the product of the lists' lengths is
///   at most [`MAX_SELECTION_FANOUT`];
/// - a filter inside a filter costs the cube of the document (13 s for a 696-byte body):
///   refused;
/// - a filter that reads the root (RFC 9535 allows `value($..c)` there) costs its square,
///   and `match` / `search` compile a regex per node: both accepted and run only over small
///   documents ([`Selector::nodes`]).
///
/// Works on the text `serde_json_path` has accepted (its syntax tree is private); strings
/// are skipped. `Err` holds the byte position and the reason.
fn check_cost(src: &str) -> Result<Cost, (usize, String)> {
    let bytes = src.as_bytes();
    let (mut descendants, mut parens, mut fanout) = (0usize, 0usize, 1usize);
    let mut open: Vec<Bracket> = Vec::new();
    let mut cost = Cost::default();
    let mut strings = crate::limits::QuotedStrings::new(b"'\"");
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if strings.skip(b) {
            i += 1;
            continue;
        }
        let in_filter = open.iter().any(|br| br.filter);
        match b {
            b'[' => open.push(Bracket {
                parens,
                selectors: 1,
                filter: false,
            }),
            b']' => {
                if let Some(closed) = open.pop() {
                    fanout = fanout.saturating_mul(closed.selectors);
                    if fanout > MAX_SELECTION_FANOUT {
                        return Err((
                            i,
                            format!(
                                "selection lists that copy a node more than \
                                 {MAX_SELECTION_FANOUT} times (the product of their lengths)"
                            ),
                        ));
                    }
                }
            }
            b'(' => parens += 1,
            b')' => parens = parens.saturating_sub(1),
            b',' => {
                if let Some(br) = open.last_mut().filter(|br| br.parens == parens) {
                    br.selectors += 1;
                    br.filter = false;
                }
            }
            b'?' if in_filter => return Err((i, "a filter inside a filter".into())),
            b'?' => {
                if let Some(br) = open.last_mut() {
                    br.filter = true;
                }
            }
            b'$' if in_filter => cost.root_in_filter = true,
            b'm' | b's' if src[i..].starts_with("match(") || src[i..].starts_with("search(") => {
                cost.regex = true;
            }
            b'.' if bytes.get(i + 1) == Some(&b'.') => {
                descendants += 1;
                if descendants > MAX_DESCENDANT_SEGMENTS {
                    return Err((
                        i,
                        format!("more than {MAX_DESCENDANT_SEGMENTS} descendant segment (`..`)"),
                    ));
                }
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(cost)
}

/// Takes the size of `node` (string bytes plus 16 per node) from `budget`, walking it with an
/// explicit stack; false once the budget is spent.
fn spend(node: &Value, budget: &mut usize) -> bool {
    let mut stack = vec![node];
    while let Some(v) = stack.pop() {
        let size = 16
            + match v {
                Value::String(s) => s.len(),
                Value::Array(items) => {
                    stack.extend(items);
                    0
                }
                Value::Object(map) => {
                    stack.extend(map.values());
                    map.keys().map(String::len).sum()
                }
                _ => 0,
            };
        match budget.checked_sub(size) {
            Some(left) => *budget = left,
            None => return false,
        }
    }
    true
}

/// Reads the leading singular segments of a query that `serde_json_path` accepted, and
/// whether they make up the whole query (RFC 9535 §2.3.5.1, singular queries).
fn singular_prefix(src: &str) -> (Vec<Segment>, bool) {
    let s = src.trim();
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 1; // past `$`
    let skip_ws = |i: &mut usize| {
        while chars
            .get(*i)
            .is_some_and(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
        {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        match chars.get(i) {
            None => return (out, true),
            Some('.') if chars.get(i + 1) == Some(&'.') => return (out, false),
            Some('.') if chars.get(i + 1) == Some(&'*') => return (out, false),
            Some('.') => {
                let start = i + 1;
                i = start;
                while chars
                    .get(i)
                    .is_some_and(|c| !matches!(c, '.' | '[' | ' ' | '\t' | '\n' | '\r'))
                {
                    i += 1;
                }
                out.push(Segment::Key(chars[start..i].iter().collect()));
            }
            Some('[') => {
                i += 1;
                skip_ws(&mut i);
                let segment = match chars.get(i) {
                    Some(&q @ ('\'' | '"')) => {
                        let mut name = String::new();
                        i += 1;
                        while let Some(&c) = chars.get(i) {
                            i += 1;
                            match c {
                                '\\' => {
                                    let e = chars.get(i).copied().unwrap_or('\\');
                                    i += 1;
                                    match e {
                                        'n' => name.push('\n'),
                                        't' => name.push('\t'),
                                        'r' => name.push('\r'),
                                        'b' => name.push('\u{8}'),
                                        'f' => name.push('\u{c}'),
                                        // \uXXXX and surrogates: leave the query non-static.
                                        'u' => return (out, false),
                                        other => name.push(other),
                                    }
                                }
                                c if c == q => break,
                                c => name.push(c),
                            }
                        }
                        Segment::Key(name)
                    }
                    Some(c) if c.is_ascii_digit() => {
                        let start = i;
                        while chars.get(i).is_some_and(char::is_ascii_digit) {
                            i += 1;
                        }
                        let digits: String = chars[start..i].iter().collect();
                        match digits.parse() {
                            Ok(n) => Segment::Index(n),
                            Err(_) => return (out, false),
                        }
                    }
                    // Negative indices, wildcards, slices and filters.
                    _ => return (out, false),
                };
                skip_ws(&mut i);
                if chars.get(i) != Some(&']') {
                    return (out, false);
                }
                i += 1;
                out.push(segment);
            }
            Some(_) => return (out, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_shapes_whose_cost_is_a_power_of_the_document_are_refused() {
        for ok in [
            "$..a",
            "$.a[?@.x, ?@.y]",
            "$.a[?match(@.b, 'x,y')]",
            "$['a','b'][0,1,2,3]",
            "$.items[?@.price < $.max]",
            "$.items[?@.price < $.limits[0] && count(@.tags[*]) > 1]",
            "$.items[?@.name == '$..*[?*']",
            "$.a[?@.b]..c",
            "$.a[1:3]",
        ] {
            assert!(Selector::parse(ok).is_ok(), "{ok}");
        }
        for (bad, reason) in [
            ("$..*..*", "descendant"),
            ("$.a[?@.b[?@.c]]", "filter inside a filter"),
            ("$.a[?@.x, ?@.y[?@.z]]", "filter inside a filter"),
            (
                "$[0,0,0,0,0,0,0,0,0,0][0,0]",
                "selection lists that copy a node more than 16 times",
            ),
        ] {
            let e = Selector::parse(bad).expect_err(bad);
            assert!(e.message.contains(reason), "{bad}: {e}");
        }
        // A filter that reads the root runs over small documents only.
        let quadratic = Selector::parse("$.a[?count($.a[*]) == 3]").expect("parse");
        let small = json!({"a": [1, 2, 3]});
        assert_eq!(
            quadratic.nodes(&small),
            Ok(vec![json!(1), json!(2), json!(3)])
        );
        let large = json!({"a": vec![0; MAX_NODES_FOR_ROOT_FILTERS]});
        let e = quadratic.select(&large).expect_err("too large");
        assert!(e.contains("at most 10000 nodes"), "{e}");
        let linear = Selector::parse("$.a[?@ == 0]").expect("parse");
        assert!(linear.nodes(&large).is_ok());
        // A regex is compiled per node tested: small documents only.
        let regex = Selector::parse("$.a[?match(@, '0')]").expect("parse");
        assert!(regex.nodes(&json!({"a": ["0", 1]})).is_ok());
        let e = regex.nodes(&large).expect_err("too large");
        assert!(
            e.contains("match or search") && e.contains("1000 nodes"),
            "{e}"
        );
        // What a query selects is measured before it is copied.
        let big = "x".repeat(MAX_SELECTED_BYTES / 2 + 1);
        let doc = json!({"a": {"b": big}});
        let e = Selector::parse("$..*")
            .expect("parse")
            .nodes(&doc)
            .expect_err("over");
        assert!(e.contains("selects more than 32 MiB"), "{e}");
        assert!(
            Selector::parse("$.a.b")
                .expect("parse")
                .select(&doc)
                .is_ok()
        );
    }

    #[test]
    fn singular_queries_yield_a_value_others_a_nodelist() {
        let doc = json!({"a": {"b c": [10, 20, {"d": 1}]}, "items": [{"q": 1}, {"q": 3}]});
        let cases = [
            ("$", doc.clone(), true),
            ("$.a['b c'][1]", json!(20), true),
            ("$[\"a\"][ 'b c' ][2].d", json!(1), true),
            ("$.nope", Value::Null, true),
            ("$.a['b c'][-1]", json!([{"d": 1}]), false),
            ("$.items[*].q", json!([1, 3]), false),
            ("$.items[?@.q > 1]", json!([{"q": 3}]), false),
            ("$..q", json!([1, 3]), false),
            ("$.a['b c'][0,1]", json!([10, 20]), false),
            ("$.items.*", json!([{"q": 1}, {"q": 3}]), false),
            ("$.nope.*", json!([]), false),
        ];
        for (src, want, singular) in cases {
            let s = Selector::parse(src).expect(src);
            assert_eq!(s.is_singular(), singular, "{src}");
            assert_eq!(s.select(&doc), Ok(want), "{src}");
        }
        let s = Selector::parse("$.steps.fetch.output[*].id").expect("parse");
        assert_eq!(
            s.prefix(),
            [
                Segment::Key("steps".into()),
                Segment::Key("fetch".into()),
                Segment::Key("output".into())
            ]
        );
    }

    #[test]
    fn errors_carry_positions() {
        let e = Selector::parse("$.a[").expect_err("bad");
        assert_eq!(e.expression, "$.a[");
        assert!(e.position <= 4, "{e}");
        assert!(Selector::parse("a.b").is_err());
        assert!(is_jsonpath("  $.x") && !is_jsonpath("{{ x }}"));
    }
}
