//! The flow template language: `{{ input.x }}`, `{{ trigger.x }}`,
//! `{{ steps.NAME.output.items[0].sku }}`, literals and the transform functions.
//!
//! A template string is literal text with `{{ expr }}` parts. A string that is exactly one
//! `{{ expr }}` keeps the JSON type of the value it evaluates to; anything else renders as
//! text. A missing path evaluates to `null`, never to an error. Unknown functions and wrong
//! argument counts are rejected by [`Template::parse`], so flows can be refused when saved.
//!
//! Grammar inside `{{ }}` (whitespace allowed between tokens; literal text outside may
//! contain single `{` and `}`):
//!
//! ```text
//! expr    := NAME "(" [ expr { "," expr } ] ")"       NAME directly followed by "("
//!          | number | string | "true" | "false" | "null" | path | jsonpath
//! number  := ["-"] digits [ "." digits ]
//! string  := '…' | "…"                                escapes: \\ \' \" \n \t
//! path    := (ident | bracket) { "." ident | bracket }
//! bracket := "[" digits "]" | "[" string "]"
//! ident   := [A-Za-z_][A-Za-z0-9_-]*
//! jsonpath := "$" …                                  RFC 9535, up to the first `,`, `)` or `}`
//!                                                     outside brackets, parentheses and quotes
//! ```
//!
//! A `jsonpath` selects from the whole context document (`$.trigger.customer.email`); what
//! it yields is described in [`jsonpath`](super::jsonpath): a singular query gives its node
//! or `null`, any other query the nodelist as an array.
//!
//! [`Template`] implements `Display`, writing a canonical source that parses back to a
//! template that renders the same (spacing inside `{{ }}` is normalized).
//!
//! Functions (case-sensitive): `UPPER(x)`, `LOWER(x)`, `TRIM(x)`, `ROUND(x[, places])`,
//! `MULTIPLY(a, b)`, `ADD(a, b)`, `CONCAT(a, …)`, `COALESCE(a, …)`; see [`Template::render`].

use std::str::FromStr;

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Number, Value};

use super::jsonpath::Selector;

/// Errors from parsing or rendering a template. Every variant names the template source and
/// the byte position in it of the offending token or function name.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum TemplateError {
    /// Malformed template: unterminated `{{`, empty `{{ }}`, trailing garbage, bad token.
    #[error("template {template:?}: parse error at byte {position}: {reason}")]
    Parse {
        /// The template source.
        template: String,
        /// Byte offset of the error.
        position: usize,
        /// What is wrong.
        reason: String,
    },
    /// A call names a function that does not exist (names are case-sensitive).
    #[error("template {template:?}: unknown function `{function}` at byte {position}")]
    UnknownFunction {
        /// The template source.
        template: String,
        /// Byte offset of the function name.
        position: usize,
        /// The unknown name.
        function: String,
    },
    /// A call has the wrong number of arguments (checked at parse time).
    #[error(
        "template {template:?}: `{function}` at byte {position} takes {expected} argument(s), found {found}"
    )]
    Arity {
        /// The template source.
        template: String,
        /// Byte offset of the function name.
        position: usize,
        /// The function name.
        function: String,
        /// Accepted count: `"exactly 2"`, `"1 to 2"`, `"at least 1"`.
        expected: String,
        /// Number of arguments given.
        found: usize,
    },
    /// At render time a function got a value it cannot use, e.g. `ADD(1, "abc")`.
    #[error(
        "template {template:?}: argument {argument} of `{function}` at byte {position} must be {expected}, found {found}"
    )]
    ArgumentType {
        /// The template source.
        template: String,
        /// Byte offset of the function name.
        position: usize,
        /// The function name.
        function: String,
        /// 1-based index of the argument.
        argument: usize,
        /// What the function accepts.
        expected: String,
        /// What it got (scalars as JSON text, otherwise `an array` / `an object`).
        found: String,
    },
    /// A JSONPath query whose filter reads the root, over a document too large for it
    /// ([`MAX_NODES_FOR_ROOT_FILTERS`](super::jsonpath::MAX_NODES_FOR_ROOT_FILTERS)).
    #[error("template {template:?}: {reason}")]
    TooCostly {
        /// The template source.
        template: String,
        /// Byte offset of the query in the template (0: not tracked).
        position: usize,
        /// The query and the limit.
        reason: String,
    },
    /// `ADD` / `MULTIPLY` overflowed the decimal range (about ±7.9e28).
    #[error("template {template:?}: `{function}` at byte {position} overflowed")]
    Overflow {
        /// The template source.
        template: String,
        /// Byte offset of the function name.
        position: usize,
        /// The function name.
        function: String,
    },
}

/// One step of a [`Path`].
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// An object key: `name` or `["some key"]`.
    Key(String),
    /// An array index: `[0]`.
    Index(usize),
}

/// A reference such as `steps.fetch.output.items[0].sku`: `[Key("steps"), Key("fetch"),
/// Key("output"), Key("items"), Index(0), Key("sku")]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    /// The segments, root first.
    pub segments: Vec<Segment>,
}

impl Path {
    /// The first segment when it is a key (`input`, `trigger`, `steps`…), else `None`.
    pub fn root(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// Walks `ctx` along the segments. `None` when a key is absent, an index is out of
    /// bounds, or a key meets a non-object / an index meets a non-array.
    pub fn resolve<'a>(&self, ctx: &'a Value) -> Option<&'a Value> {
        self.segments
            .iter()
            .try_fold(ctx, |value, segment| match (segment, value) {
                (Segment::Key(k), Value::Object(map)) => map.get(k),
                (Segment::Index(i), Value::Array(items)) => items.get(*i),
                _ => None,
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    Upper,
    Lower,
    Trim,
    Round,
    Multiply,
    Add,
    Concat,
    Coalesce,
}

/// Name, function, minimum and maximum (`None`: unbounded) argument count.
const FUNCTIONS: [(&str, Func, usize, Option<usize>); 8] = [
    ("UPPER", Func::Upper, 1, Some(1)),
    ("LOWER", Func::Lower, 1, Some(1)),
    ("TRIM", Func::Trim, 1, Some(1)),
    ("ROUND", Func::Round, 1, Some(2)),
    ("MULTIPLY", Func::Multiply, 2, Some(2)),
    ("ADD", Func::Add, 2, Some(2)),
    ("CONCAT", Func::Concat, 1, None),
    ("COALESCE", Func::Coalesce, 1, None),
];

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Literal(Value),
    Path(Path),
    Select(Selector),
    Call {
        func: Func,
        name: &'static str,
        position: usize,
        args: Vec<Expr>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Expr(Expr),
}

/// A parsed template string: literal text and `{{ expr }}` parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `src`. Every `{{` opens an expression that must be closed by `}}`.
    ///
    /// # Errors
    /// [`TemplateError::Parse`] for an unterminated `{{` (positioned at that `{{`), an empty
    /// `{{ }}`, trailing garbage or a malformed literal or path;
    /// [`TemplateError::UnknownFunction`] and [`TemplateError::Arity`] for bad calls.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut p = Parser {
            src,
            pos: 0,
            open: 0,
            depth: 0,
        };
        while let Some(offset) = src[p.pos..].find("{{") {
            p.open = p.pos + offset;
            if offset > 0 {
                parts.push(Part::Text(src[p.pos..p.open].to_owned()));
            }
            p.pos = p.open + 2;
            p.skip_ws();
            if src[p.pos..].starts_with("}}") {
                return Err(p.error(p.open, "empty expression"));
            }
            parts.push(Part::Expr(p.expr()?));
            p.skip_ws();
            if !p.eat("}}") {
                return Err(p.error(p.pos, "expected `}}`"));
            }
        }
        if p.pos < src.len() {
            parts.push(Part::Text(src[p.pos..].to_owned()));
        }
        Ok(Template {
            source: src.to_owned(),
            parts,
        })
    }

    /// Renders against `ctx`, a JSON object whose top-level keys are the path roots, e.g.
    /// `{"input": …, "trigger": …, "steps": {"NAME": {"output": …}}}`.
    ///
    /// If the source is exactly one `{{ expr }}` (nothing outside the braces) the result is
    /// the value itself, with its JSON type. Otherwise the parts are rendered as text and
    /// concatenated into a JSON string: strings unquoted, `null` empty, numbers and booleans
    /// as JSON text, arrays and objects as compact JSON.
    ///
    /// Functions:
    /// - `UPPER`, `LOWER`, `TRIM`: string out; numbers and booleans are converted to text
    ///   first; `null` gives `null`.
    /// - `ADD(a, b)`, `MULTIPLY(a, b)`: exact decimal arithmetic (never `f64`) on JSON numbers
    ///   or numeric strings. The result takes the type of `a`: a string gives the decimal's
    ///   text with the scale the arithmetic yields (`MULTIPLY("19.99", 3)` = `"59.97"`,
    ///   `MULTIPLY("404.95", 2)` = `"809.90"`); a number gives a JSON number with the
    ///   decimal's exact digits, trailing zeros dropped (`ADD(0.1, 0.2)` = `0.3`,
    ///   `MULTIPLY(12345678901234567890, 2)` = `24691357802469135780`). Any `null` argument
    ///   gives `null`.
    /// - `ROUND(x, places = 0)`: rounds half-up *away from zero* (`2.345` → `2.35`,
    ///   `-2.345` → `-2.35`, `2.5` → `3`). `places` is an integer 0..=28. Result type
    ///   follows `x` as above; a string result is padded to `places` (`"19.9"` → `"19.90"`).
    /// - `CONCAT(a, …)`: the text renderings joined (`null` as empty).
    /// - `COALESCE(a, …)`: the first non-null argument, else `null`.
    ///
    /// # Errors
    /// [`TemplateError::ArgumentType`] when a function gets an unusable value (a
    /// non-numeric string for `ADD`, an array for `UPPER`, a bad `places`…),
    /// [`TemplateError::Overflow`] when decimal arithmetic overflows.
    pub fn render(&self, ctx: &Value) -> Result<Value, TemplateError> {
        if let [Part::Expr(expr)] = self.parts.as_slice() {
            return self.eval(expr, ctx);
        }
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Expr(expr) => out.push_str(&to_text(&self.eval(expr, ctx)?)),
            }
        }
        Ok(Value::String(out))
    }

    /// Every path the template references, including inside function arguments, in source
    /// order (for static checks such as which steps a template reads).
    pub fn paths(&self) -> Vec<&Path> {
        fn collect<'a>(expr: &'a Expr, out: &mut Vec<&'a Path>) {
            match expr {
                Expr::Literal(_) | Expr::Select(_) => {}
                Expr::Path(p) => out.push(p),
                Expr::Call { args, .. } => args.iter().for_each(|a| collect(a, out)),
            }
        }
        let mut out = Vec::new();
        for part in &self.parts {
            if let Part::Expr(expr) = part {
                collect(expr, &mut out);
            }
        }
        out
    }

    /// Every JSONPath expression in the template, including inside function arguments, in
    /// source order.
    pub fn selectors(&self) -> Vec<&Selector> {
        fn collect<'a>(expr: &'a Expr, out: &mut Vec<&'a Selector>) {
            match expr {
                Expr::Literal(_) | Expr::Path(_) => {}
                Expr::Select(s) => out.push(s),
                Expr::Call { args, .. } => args.iter().for_each(|a| collect(a, out)),
            }
        }
        let mut out = Vec::new();
        for part in &self.parts {
            if let Part::Expr(expr) = part {
                collect(expr, &mut out);
            }
        }
        out
    }

    /// The source the template was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the string has no `{{` at all (pure literal text).
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    fn eval(&self, expr: &Expr, ctx: &Value) -> Result<Value, TemplateError> {
        match expr {
            Expr::Literal(v) => Ok(v.clone()),
            Expr::Path(p) => Ok(p.resolve(ctx).cloned().unwrap_or(Value::Null)),
            Expr::Select(s) => s.select(ctx).map_err(|reason| TemplateError::TooCostly {
                template: self.source.clone(),
                position: 0,
                reason,
            }),
            Expr::Call {
                func,
                name,
                position,
                args,
            } => {
                let args = args
                    .iter()
                    .map(|a| self.eval(a, ctx))
                    .collect::<Result<Vec<_>, _>>()?;
                self.apply(*func, name, *position, &args)
            }
        }
    }

    /// Applies a function to evaluated arguments; the arity was checked by `parse`.
    fn apply(
        &self,
        func: Func,
        name: &str,
        position: usize,
        args: &[Value],
    ) -> Result<Value, TemplateError> {
        let type_error = |argument: usize, expected: &str| TemplateError::ArgumentType {
            template: self.source.clone(),
            position,
            function: name.to_owned(),
            argument,
            expected: expected.to_owned(),
            found: match &args[argument - 1] {
                Value::Array(_) => "an array".to_owned(),
                Value::Object(_) => "an object".to_owned(),
                scalar => scalar.to_string(),
            },
        };
        let decimal = |i: usize| {
            to_decimal(&args[i]).ok_or_else(|| {
                // A number that does not fit the decimal arithmetic is a range error, not a
                // type error: say so instead of claiming it is not a number.
                let numeric = match &args[i] {
                    Value::Number(_) => true,
                    Value::String(s) => s.trim().parse::<f64>().is_ok_and(f64::is_finite),
                    _ => false,
                };
                let expected = if numeric {
                    "a number that 28-digit decimal arithmetic can hold \
                     (magnitude at most 7.9e28, at most 28 decimal places)"
                } else {
                    "a number or numeric string"
                };
                type_error(i + 1, expected)
            })
        };
        Ok(match func {
            Func::Upper | Func::Lower | Func::Trim => {
                let text = match &args[0] {
                    Value::Null => return Ok(Value::Null),
                    Value::Array(_) | Value::Object(_) => {
                        return Err(type_error(1, "a string, number or boolean"));
                    }
                    scalar => to_text(scalar),
                };
                Value::String(match func {
                    Func::Upper => text.to_uppercase(),
                    Func::Lower => text.to_lowercase(),
                    _ => text.trim().to_owned(),
                })
            }
            Func::Add | Func::Multiply if args.iter().any(Value::is_null) => Value::Null,
            Func::Add | Func::Multiply => {
                let (a, b) = (decimal(0)?, decimal(1)?);
                let result = if func == Func::Add {
                    a.checked_add(b)
                } else {
                    a.checked_mul(b)
                };
                let result = result.ok_or_else(|| TemplateError::Overflow {
                    template: self.source.clone(),
                    position,
                    function: name.to_owned(),
                })?;
                number_like(&args[0], result)
            }
            Func::Round if args[0].is_null() => Value::Null,
            Func::Round => {
                let places = match args.get(1) {
                    None => 0,
                    Some(v) => v
                        .as_u64()
                        .and_then(|p| u32::try_from(p).ok())
                        .filter(|p| *p <= 28)
                        .ok_or_else(|| type_error(2, "an integer from 0 to 28"))?,
                };
                let mut rounded = decimal(0)?
                    .round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero);
                if args[0].is_string() {
                    rounded.rescale(places);
                }
                number_like(&args[0], rounded)
            }
            Func::Concat => Value::String(args.iter().map(to_text).collect()),
            Func::Coalesce => args
                .iter()
                .find(|v| !v.is_null())
                .cloned()
                .unwrap_or(Value::Null),
        })
    }
}

/// Text rendering of a value: strings unquoted, `null` empty, everything else compact JSON.
fn to_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A JSON number (through its text, so `0.1` is exactly one tenth) or a numeric string
/// (surrounding whitespace ignored) as a decimal.
fn to_decimal(value: &Value) -> Option<Decimal> {
    match value {
        Value::Number(n) => {
            let text = n.to_string();
            Decimal::from_str(&text)
                .or_else(|_| Decimal::from_scientific(&text))
                .ok()
        }
        Value::String(s) => Decimal::from_str(s.trim()).ok(),
        _ => None,
    }
}

/// Shapes `d` like `model`: a string model gives the decimal's text, a number model a JSON
/// number with the decimal's exact digits (serde_json keeps a number's text with
/// `arbitrary_precision`, so results past 2^64 or with many digits are not rounded
/// through `f64`).
fn number_like(model: &Value, d: Decimal) -> Value {
    if model.is_string() {
        return Value::String(d.to_string());
    }
    d.normalize()
        .to_string()
        .parse::<Number>()
        .map_or(Value::Null, Value::Number)
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Recursive-descent parser over the template source; positions are byte offsets.
struct Parser<'a> {
    src: &'a str,
    pos: usize,
    /// Position of the `{{` that opened the current expression.
    open: usize,
    /// Function calls currently open (bounded by [`MAX_NESTING`]).
    depth: usize,
}

/// Deepest nesting of function calls accepted. Parsing and evaluation recurse once per level,
/// so the bound keeps a hostile template from exhausting the stack.
pub const MAX_NESTING: usize = 32;

impl<'a> Parser<'a> {
    /// A parse error at `position`; once the input is exhausted it is reported as an
    /// unterminated `{{` at the opening braces instead.
    fn error(&self, position: usize, reason: &str) -> TemplateError {
        let (position, reason) = if self.pos >= self.src.len() {
            (self.open, "unterminated `{{`, no closing `}}`")
        } else {
            (position, reason)
        };
        TemplateError::Parse {
            template: self.src.to_owned(),
            position,
            reason: reason.to_owned(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, s: &str) -> bool {
        let hit = self.src[self.pos..].starts_with(s);
        if hit {
            self.pos += s.len();
        }
        hit
    }

    /// Consumes bytes while `keep` holds and returns them.
    fn scan(&mut self, keep: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&keep) {
            self.pos += 1;
        }
        &self.src[start..self.pos]
    }

    fn skip_ws(&mut self) {
        self.scan(|b| b.is_ascii_whitespace());
    }

    fn expr(&mut self) -> Result<Expr, TemplateError> {
        self.skip_ws();
        let start = self.pos;
        let first = match self.peek() {
            Some(b'\'' | b'"') => return Ok(Expr::Literal(Value::String(self.string()?))),
            Some(b'-' | b'0'..=b'9') => return self.number(),
            Some(b'$') => return self.selector(),
            Some(b'[') => self.bracket()?,
            Some(b) if is_ident_start(b) => match self.scan(is_ident_continue) {
                name if self.peek() == Some(b'(') => return self.call(name, start),
                "true" => return Ok(Expr::Literal(Value::Bool(true))),
                "false" => return Ok(Expr::Literal(Value::Bool(false))),
                "null" => return Ok(Expr::Literal(Value::Null)),
                name => Segment::Key(name.to_owned()),
            },
            _ => return Err(self.error(start, "expected a path, literal or function call")),
        };
        let mut segments = vec![first];
        loop {
            if self.eat(".") {
                if !self.peek().is_some_and(is_ident_start) {
                    return Err(self.error(self.pos, "expected a key after `.`"));
                }
                segments.push(Segment::Key(self.scan(is_ident_continue).to_owned()));
            } else if self.peek() == Some(b'[') {
                segments.push(self.bracket()?);
            } else {
                return Ok(Expr::Path(Path { segments }));
            }
        }
    }

    /// A JSONPath expression; the parser is at the `$`. It ends before the first `,`, `)` or
    /// `}` that is outside brackets, parentheses and quoted strings.
    fn selector(&mut self) -> Result<Expr, TemplateError> {
        let start = self.pos;
        let bytes = self.src.as_bytes();
        let (mut depth, mut quote, mut escaped) = (0usize, None::<u8>, false);
        while let Some(&b) = bytes.get(self.pos) {
            match quote {
                Some(_) if escaped => escaped = false,
                Some(_) if b == b'\\' => escaped = true,
                Some(q) if b == q => quote = None,
                Some(_) => {}
                None => match b {
                    b'\'' | b'"' => quote = Some(b),
                    b'[' | b'(' => depth += 1,
                    b']' | b')' if depth > 0 => depth -= 1,
                    b',' | b')' | b'}' if depth == 0 => break,
                    _ => {}
                },
            }
            self.pos += 1;
        }
        let text = self.src[start..self.pos].trim_end();
        Selector::parse(text)
            .map(Expr::Select)
            .map_err(|e| TemplateError::Parse {
                template: self.src.to_owned(),
                position: start + e.position.min(text.len()),
                reason: format!("JSONPath: {}", e.message),
            })
    }

    /// The arguments of a call whose name starts at `start`; the parser is at the `(`.
    fn call(&mut self, name: &str, start: usize) -> Result<Expr, TemplateError> {
        let Some(&(name, func, min, max)) = FUNCTIONS.iter().find(|f| f.0 == name) else {
            return Err(TemplateError::UnknownFunction {
                template: self.src.to_owned(),
                position: start,
                function: name.to_owned(),
            });
        };
        if self.depth >= MAX_NESTING {
            return Err(TemplateError::Parse {
                template: self.src.to_owned(),
                position: start,
                reason: format!("function calls nested more than {MAX_NESTING} deep"),
            });
        }
        self.depth += 1;
        self.pos += 1;
        self.skip_ws();
        let mut args = Vec::new();
        while !self.eat(")") {
            if !args.is_empty() && !self.eat(",") {
                return Err(self.error(self.pos, "expected `,` or `)`"));
            }
            args.push(self.expr()?);
            self.skip_ws();
        }
        if args.len() < min || max.is_some_and(|m| args.len() > m) {
            let expected = match max {
                Some(m) if m == min => format!("exactly {min}"),
                Some(m) => format!("{min} to {m}"),
                None => format!("at least {min}"),
            };
            let found = args.len();
            return Err(TemplateError::Arity {
                template: self.src.to_owned(),
                position: start,
                function: name.to_owned(),
                expected,
                found,
            });
        }
        self.depth -= 1;
        Ok(Expr::Call {
            func,
            name,
            position: start,
            args,
        })
    }

    /// `[N]` or `["key"]`; the parser is at the `[`.
    fn bracket(&mut self) -> Result<Segment, TemplateError> {
        self.pos += 1;
        self.skip_ws();
        let start = self.pos;
        let segment = if matches!(self.peek(), Some(b'\'' | b'"')) {
            Segment::Key(self.string()?)
        } else {
            let digits = self.scan(|b| b.is_ascii_digit());
            Segment::Index(
                digits
                    .parse()
                    .map_err(|_| self.error(start, "expected an array index or a quoted key"))?,
            )
        };
        self.skip_ws();
        if !self.eat("]") {
            return Err(self.error(self.pos, "expected `]`"));
        }
        Ok(segment)
    }

    /// `-?digits(.digits)?` as a JSON number literal: an integer when it fits 64 bits, else
    /// the correctly rounded `f64` (Rust's parser, so printing and re-parsing is exact).
    fn number(&mut self) -> Result<Expr, TemplateError> {
        let start = self.pos;
        let text = self.scan(|b| b == b'-' || b == b'.' || b.is_ascii_digit());
        let value: Value =
            serde_json::from_str(text).map_err(|_| self.error(start, "malformed number"))?;
        let exact = match &value {
            Value::Number(n) if n.is_f64() => text
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number),
            _ => None,
        };
        Ok(Expr::Literal(exact.unwrap_or(value)))
    }

    /// A quoted string; the parser is at the opening quote.
    fn string(&mut self) -> Result<String, TemplateError> {
        let start = self.pos;
        let quote = char::from(self.src.as_bytes()[start]);
        let mut out = String::new();
        let mut chars = self.src[start + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, e @ ('\\' | '\'' | '"'))) => out.push(e),
                    Some((j, _)) => return Err(self.error(start + 1 + j, "unknown escape")),
                    None => break,
                },
                c if c == quote => {
                    self.pos = start + 1 + i + 1;
                    return Ok(out);
                }
                c => out.push(c),
            }
        }
        Err(self.error(start, "unterminated string"))
    }
}

impl fmt::Display for Template {
    /// The canonical source: literal text as is, each expression inside `{{ … }}` with one
    /// space on each side, strings single-quoted, keys that are not identifiers bracketed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Text(text) => f.write_str(text)?,
                Part::Expr(expr) => write!(f, "{{{{ {} }}}}", ExprSource(expr))?,
            }
        }
        Ok(())
    }
}

struct ExprSource<'a>(&'a Expr);

impl fmt::Display for ExprSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Expr::Literal(Value::String(s)) => write_quoted(f, s),
            Expr::Literal(Value::Number(n)) => write_number(f, n),
            Expr::Literal(v) => write!(f, "{v}"),
            Expr::Select(s) => f.write_str(s.source()),
            Expr::Path(p) => {
                for (i, segment) in p.segments.iter().enumerate() {
                    match segment {
                        Segment::Index(n) => write!(f, "[{n}]")?,
                        Segment::Key(k) if is_plain_key(k, i == 0) => {
                            if i > 0 {
                                f.write_str(".")?;
                            }
                            f.write_str(k)?;
                        }
                        Segment::Key(k) => {
                            f.write_str("[")?;
                            write_quoted(f, k)?;
                            f.write_str("]")?;
                        }
                    }
                }
                Ok(())
            }
            Expr::Call { name, args, .. } => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", ExprSource(a))?;
                }
                f.write_str(")")
            }
        }
    }
}

/// A key that can be written bare: an identifier, and at the start of a path not one of
/// the literal words.
fn is_plain_key(k: &str, first: bool) -> bool {
    let b = k.as_bytes();
    !b.is_empty()
        && is_ident_start(b[0])
        && b[1..].iter().all(|&c| is_ident_continue(c))
        && !(first && matches!(k, "true" | "false" | "null"))
}

/// A number in the grammar's `-?digits(.digits)?` form: JSON text unless that uses an
/// exponent (`3.3e29`), then Rust's exponent-free shortest form of the `f64`.
fn write_number(f: &mut fmt::Formatter<'_>, n: &Number) -> fmt::Result {
    let text = n.to_string();
    match n.as_f64() {
        Some(x) if text.contains(['e', 'E']) => {
            let plain = x.to_string();
            if plain.contains('.') {
                f.write_str(&plain)
            } else {
                write!(f, "{plain}.0")
            }
        }
        _ => f.write_str(&text),
    }
}

fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("'")?;
    for c in s.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '\'' => f.write_str("\\'")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("'")
}

/// Renders every string inside `value` as a template, recursing through arrays and object
/// values (object keys are not templated); non-strings are returned unchanged.
///
/// # Errors
/// The first parse or render error of any string.
pub fn render_value(value: &Value, ctx: &Value) -> Result<Value, TemplateError> {
    Ok(match value {
        Value::String(s) => Template::parse(s)?.render(ctx)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(v, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, ctx)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => other.clone(),
    })
}

/// Parses every string inside `value` (recursively; object keys excluded) — as JSONPath when
/// it starts with `$`, else as a template — and returns the names `NAME` of all
/// `steps.NAME…` references (`$.steps.NAME…` for JSONPath), deduplicated, in first-seen order (object
/// values in the map's iteration order).
///
/// # Errors
/// The first parse error of any string.
pub fn referenced_steps(value: &Value) -> Result<Vec<String>, TemplateError> {
    fn walk(value: &Value, out: &mut Vec<String>) -> Result<(), TemplateError> {
        match value {
            Value::String(s) if super::jsonpath::is_jsonpath(s) => {
                // A field-mapping JSONPath; a malformed one is reported by the mapping's own
                // compilation.
                if let Ok(selector) = Selector::parse(s.trim())
                    && let [Segment::Key(root), Segment::Key(name), ..] = selector.prefix()
                    && root == "steps"
                    && !out.contains(name)
                {
                    out.push(name.clone());
                }
                Ok(())
            }
            Value::String(s) => {
                let template = Template::parse(s)?;
                let paths = template.paths().into_iter().map(|p| p.segments.as_slice());
                let selectors = template.selectors().into_iter().map(Selector::prefix);
                for segments in paths.chain(selectors) {
                    if let [Segment::Key(root), Segment::Key(name), ..] = segments
                        && root == "steps"
                        && !out.contains(name)
                    {
                        out.push(name.clone());
                    }
                }
                Ok(())
            }
            Value::Array(items) => items.iter().try_for_each(|v| walk(v, out)),
            Value::Object(map) => map.values().try_for_each(|v| walk(v, out)),
            _ => Ok(()),
        }
    }
    let mut out = Vec::new();
    walk(value, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Value {
        json!({
            "input": {"name": "Ada", "qty": 3, "price": "19.99", "ok": true, "none": null,
                      "tags": ["a", "b"], "obj": {"k": 1}, "pad": "  hi  ", "x": 2.345,
                      "a": [[0], [1, 2]], "sp ace": {"d.ot": 7}},
            "trigger": {"id": 42},
            "steps": {"fetch": {"output": {"items": [{"sku": "S1"}, {"sku": "S2"}], "total": "404.95"}}}
        })
    }

    fn render(src: &str) -> Result<Value, TemplateError> {
        Template::parse(src)?.render(&ctx())
    }

    fn check(cases: &[(&str, Value)]) {
        for (src, want) in cases {
            assert_eq!(render(src).as_ref(), Ok(want), "{src}");
        }
    }

    #[test]
    fn whole_values_text_and_paths() {
        check(&[
            // A lone template keeps the JSON type.
            ("{{input.tags}}", json!(["a", "b"])),
            ("{{ input.obj }}", json!({"k": 1})),
            ("{{input.qty}}", json!(3)),
            ("{{input.ok}}", json!(true)),
            ("{{input.none}}", Value::Null),
            (
                "{{steps.fetch.output}}",
                ctx()["steps"]["fetch"]["output"].clone(),
            ),
            ("{{ -1.5 }}", json!(-1.5)),
            ("{{ false }}", json!(false)),
            ("{{ 'a\\nb' }}", json!("a\nb")),
            // Anything else renders as text.
            ("Hi {{input.name}}!", json!("Hi Ada!")),
            (
                "{{input.qty}} {{input.ok}} [{{input.none}}]",
                json!("3 true []"),
            ),
            ("{{input.tags}}{{input.obj}}", json!(r#"["a","b"]{"k":1}"#)),
            (" {{input.qty}}", json!(" 3")),
            ("{a} } { {{trigger.id}}", json!("{a} } { 42")),
            ("", json!("")),
            // Indices, bracket keys, missing paths.
            ("{{steps.fetch.output.items[0].sku}}", json!("S1")),
            ("{{ steps.fetch.output.items[1].sku }}", json!("S2")),
            ("{{input.a[1][0]}}", json!(1)),
            (r#"{{input["sp ace"]['d.ot']}}"#, json!(7)),
            ("{{input.nope.deeper}}", Value::Null),
            ("{{steps.fetch.output.items[9].sku}}", Value::Null),
            ("{{input.name[0]}}", Value::Null),
            ("{{input.tags.first}}", Value::Null),
            ("x{{nothing}}y", json!("xy")),
        ]);
    }

    #[test]
    fn functions() {
        check(&[
            ("{{UPPER(input.name)}}", json!("ADA")),
            ("{{LOWER('ÀB')}}", json!("àb")),
            ("{{TRIM(input.pad)}}", json!("hi")),
            ("{{UPPER(input.none)}}", Value::Null),
            ("{{UPPER(input.ok)}}", json!("TRUE")),
            ("{{LOWER(1.5)}}", json!("1.5")),
            (
                r#"{{CONCAT("a\"\\", 'it\'s', input.none, 1)}}"#,
                json!("a\"\\it's1"),
            ),
            (
                "{{UPPER(CONCAT(input.name, '-', trigger.id))}}",
                json!("ADA-42"),
            ),
            ("é {{ CONCAT('}}', input.name) }}", json!("é }}Ada")),
            (
                "{{COALESCE(input.missing, input.none, trigger.id, 1)}}",
                json!(42),
            ),
            ("{{COALESCE(nothing, 'fallback')}}", json!("fallback")),
            ("{{COALESCE(nothing, null)}}", Value::Null),
            ("{{ROUND(2.345, 2)}}", json!(2.35)),
            ("{{ROUND(-2.345, 2)}}", json!(-2.35)),
            ("{{ROUND(input.x, 2)}}", json!(2.35)),
            ("{{ROUND(2.5)}}", json!(3)),
            ("{{ROUND(-2.5)}}", json!(-3)),
            ("{{ROUND('2.345', 2)}}", json!("2.35")),
            ("{{ROUND('19.9', 2)}}", json!("19.90")),
            ("{{ROUND(input.none, 2)}}", Value::Null),
            ("{{MULTIPLY(\"19.99\", 3)}}", json!("59.97")),
            ("{{MULTIPLY(steps.fetch.output.total, 2)}}", json!("809.90")),
            ("{{MULTIPLY(input.price, input.qty)}}", json!("59.97")),
            ("{{ADD(0.1, 0.2)}}", json!(0.3)),
            ("{{ADD(input.qty, '2')}}", json!(5)),
            ("{{MULTIPLY(1.5, 2)}}", json!(3)),
            // Past 2^64 the digits stay exact (no rounding through f64).
            (
                "{{MULTIPLY(12345678901234567890, 2)}}",
                serde_json::from_str::<Value>("24691357802469135780").expect("number"),
            ),
            (
                "{{ADD(12345678901234567890, 1)}}",
                serde_json::from_str::<Value>("12345678901234567891").expect("number"),
            ),
            ("{{ADD(-1.5, 0.25)}}", json!(-1.25)),
            ("{{ADD(input.none, 1)}}", Value::Null),
            ("{{MULTIPLY(2, nothing)}}", Value::Null),
            ("total: {{ADD(input.price, 0.01)}}", json!("total: 20.00")),
        ]);
    }

    #[test]
    fn render_errors() {
        let e = render("{{ADD(1, input.name)}}").expect_err("non-numeric");
        let want = TemplateError::ArgumentType {
            template: "{{ADD(1, input.name)}}".into(),
            position: 2,
            function: "ADD".into(),
            argument: 2,
            expected: "a number or numeric string".into(),
            found: "\"Ada\"".into(),
        };
        assert_eq!(e, want);
        assert!(
            e.to_string().contains("argument 2 of `ADD` at byte 2"),
            "{e}"
        );
        for (src, arg) in [("{{UPPER(input.tags)}}", 1), ("{{ROUND(1, -1)}}", 2)] {
            let e = render(src).expect_err(src);
            assert!(matches!(e, TemplateError::ArgumentType { argument, .. } if argument == arg));
        }
        let e = render("{{MULTIPLY('79228162514264337593543950335', 10)}}");
        assert!(matches!(e, Err(TemplateError::Overflow { .. })), "{e:?}");
        // A number past the decimal range is out of range, not "not a number", as a JSON
        // number or as a numeric string.
        for src in [
            "{{MULTIPLY(123456789012345678901234567890, 2)}}",
            "{{MULTIPLY('123456789012345678901234567890', 2)}}",
        ] {
            let e = render(src).expect_err(src);
            assert!(
                matches!(&e, TemplateError::ArgumentType { expected, .. } if expected.contains("28-digit")),
                "{src}: {e:?}"
            );
        }
    }

    #[test]
    fn parse_errors_carry_positions() {
        let cases = [
            ("ab {{ input.x", 3, "unterminated `{{`"),
            ("ab {{ UPPER(input.x", 3, "unterminated `{{`"),
            ("{{ }}", 0, "empty expression"),
            ("x {{ input.x y }}", 13, "expected `}}`"),
            ("{{ input. }}", 9, "key after `.`"),
            ("{{ input[x] }}", 9, "array index or a quoted key"),
            ("{{ 'abc }}", 3, "unterminated string"),
            ("{{ 1. }}", 3, "malformed number"),
            ("{{ CONCAT(a b) }}", 12, "expected `,` or `)`"),
        ];
        for (src, at, reason) in cases {
            let e = Template::parse(src).expect_err(src);
            let ok = matches!(&e, TemplateError::Parse { template, position, reason: r }
                if template == src && *position == at && r.contains(reason));
            assert!(ok, "{src}: {e:?}");
        }
        let e = Template::parse("ab {{ input.x").expect_err("unterminated");
        assert!(
            e.to_string()
                .starts_with("template \"ab {{ input.x\": parse error at byte 3")
        );

        let src = "x {{ upper(input.name) }}";
        let want = TemplateError::UnknownFunction {
            template: src.into(),
            position: 5,
            function: "upper".into(),
        };
        assert_eq!(Template::parse(src), Err(want));
        let e = Template::parse("{{ CONCAT(a, ADD(1)) }}").expect_err("arity");
        let ok = matches!(&e, TemplateError::Arity { function, found: 1, position: 13, .. } if function == "ADD");
        assert!(
            ok && e
                .to_string()
                .contains("takes exactly 2 argument(s), found 1"),
            "{e}"
        );
        for src in ["{{ROUND(1,2,3)}}", "{{COALESCE()}}"] {
            assert!(
                matches!(Template::parse(src), Err(TemplateError::Arity { .. })),
                "{src}"
            );
        }
    }

    #[test]
    fn static_inspection() {
        assert!(
            Template::parse("plain { text }")
                .expect("parses")
                .is_literal()
        );
        assert!(!Template::parse("{{ 1 }}").expect("parses").is_literal());
        let t = Template::parse("{{ CONCAT(input.a, steps.s.output) }} {{ trigger.id }}");
        let t = t.expect("parses");
        let roots: Vec<_> = t.paths().iter().map(|p| p.root()).collect();
        assert_eq!(roots, [Some("input"), Some("steps"), Some("trigger")]);
        assert_eq!(t.paths()[1].segments[1], Segment::Key("s".into()));

        let v = json!([
            "https://x/{{ steps.fetch.output.id }}",
            {"body": ["{{ COALESCE(steps.enrich.output, steps.fetch.output) }}", 3]},
            {"{{steps.keyonly.output}}": "{{ steps[\"my step\"].output }}"},
            "{{ input.steps.fake }}"
        ]);
        let steps = referenced_steps(&v).expect("parses");
        assert_eq!(steps, ["fetch", "enrich", "my step"]);
        // Printing keeps numbers in the grammar (no exponents), found by the fuzzer.
        for src in [
            "{{ 333333333333333333333333333333 }}",
            "{{ 0.00000001 }}",
            "{{ 3.0 }}",
            "{{ -12 }}",
        ] {
            let t = Template::parse(src).expect(src);
            let again = Template::parse(&t.to_string()).expect("reparses");
            assert_eq!(again.render(&json!({})), t.render(&json!({})), "{src}");
            assert_eq!(again.to_string(), t.to_string(), "{src}");
        }
        assert!(referenced_steps(&json!({"a": ["{{ BAD(1) }}"]})).is_err());
        let v = json!({"a": "$.steps.first.output[*].id", "b": {"from": "$['steps']['second'].output"},
                       "c": "{{ UPPER($.steps.third.output.name) }}"});
        assert_eq!(
            referenced_steps(&v).expect("parses"),
            ["first", "second", "third"]
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!(
            "{{{{{}trigger.x{}}}}}",
            "UPPER(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        );
        assert!(Template::parse(&ok).is_ok());
        let deep = format!(
            "{{{{{}trigger.x{}}}}}",
            "UPPER(".repeat(10_000),
            ")".repeat(10_000)
        );
        let err = Template::parse(&deep).expect_err("too deep");
        assert!(err.to_string().contains("nested more than"), "{err}");
    }

    #[test]
    fn render_value_recurses() {
        let v = json!({
            "sku": "{{ steps.fetch.output.items[0].sku }}",
            "items": "{{ steps.fetch.output.items }}",
            "nested": [{"msg": "qty={{input.qty}}"}, 5, true, null],
            "{{input.name}}": "key untouched"
        });
        let want = json!({
            "sku": "S1",
            "items": [{"sku": "S1"}, {"sku": "S2"}],
            "nested": [{"msg": "qty=3"}, 5, true, null],
            "{{input.name}}": "key untouched"
        });
        assert_eq!(render_value(&v, &ctx()).expect("renders"), want);
        assert!(render_value(&json!(["{{ x"]), &ctx()).is_err());
    }
}
