//! Numbers as exact decimals, from JSON numbers or locale-formatted text.
//!
//! | locale | grouping | decimal mark | example |
//! | --- | --- | --- | --- |
//! | none (plain) | none | `.` | `-1234.56`, `1e3` |
//! | `en-US` (also `en`, `en-GB`) | `,` | `.` | `1,234.56` |
//! | `de-DE` (also `de`) | `.` | `,` | `1.234,56` |
//! | `fr-FR` (also `fr`) | U+202F narrow no-break space, U+00A0 no-break space or a space | `,` | `1 234,56` |
//!
//! Grouping is checked: the first group has one to three digits and every later group
//! exactly three (`1,23,456` is refused in `en-US`), grouping appears only before the
//! decimal mark, and a locale's decimal mark appears at most once — so `1.234,56` read as
//! `en-US` is an error, never 1.23456. A leading `-`, `+` or U+2212 minus sign is allowed.
//! Separators follow CLDR's conventions for these locales (as in ICU's number format tests,
//! `../shared/fixtures/icu-number-format`).

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

use super::CoerceError;

/// A number locale (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    /// `en-US`: `1,234.56`.
    EnUs,
    /// `de-DE`: `1.234,56`.
    DeDe,
    /// `fr-FR`: `1 234,56` (narrow no-break space).
    FrFr,
}

impl Locale {
    /// Parses a BCP 47 tag as written in a mapping.
    ///
    /// # Errors
    /// A message listing the supported tags.
    pub fn from_tag(tag: &str) -> Result<Locale, String> {
        Ok(match tag {
            "en-US" | "en" | "en-GB" => Locale::EnUs,
            "de-DE" | "de" => Locale::DeDe,
            "fr-FR" | "fr" => Locale::FrFr,
            other => {
                return Err(format!(
                    "unsupported locale {other:?} (supported: en-US, en-GB, en, de-DE, de, fr-FR, fr)"
                ));
            }
        })
    }

    fn decimal_mark(self) -> char {
        match self {
            Locale::EnUs => '.',
            Locale::DeDe | Locale::FrFr => ',',
        }
    }

    fn is_group(self, c: char) -> bool {
        match self {
            Locale::EnUs => c == ',',
            Locale::DeDe => c == '.',
            Locale::FrFr => matches!(c, '\u{202F}' | '\u{00A0}' | ' '),
        }
    }
}

/// Reads `value` as an exact decimal. JSON numbers are read from their shortest decimal
/// text (so `19.99` is exactly 19.99, never 19.990000000000002); strings follow `locale`
/// (plain `-1234.56` when `None`).
///
/// # Errors
/// [`CoerceError`] for text that is not a number in that locale, booleans, arrays,
/// objects, and numbers outside the decimal range (about ±7.9e28).
pub fn parse_decimal(value: &Value, locale: Option<Locale>) -> Result<Decimal, CoerceError> {
    let fail = |why: &str| CoerceError::new("number", value, why);
    match value {
        Value::Number(n) => {
            let text = n.to_string();
            Decimal::from_str(&text)
                .or_else(|_| Decimal::from_scientific(&text))
                .map_err(|_| fail("out of the decimal range"))
        }
        Value::String(s) => match locale {
            None => plain(s.trim()).ok_or_else(|| fail("expected a plain number like -1234.56")),
            Some(l) => localized(s.trim(), l).map_err(|why| fail(&why)),
        },
        _ => Err(fail("expected a number or a numeric string")),
    }
}

fn plain(s: &str) -> Option<Decimal> {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    if body.is_empty()
        || !body
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.')
    {
        return None;
    }
    Decimal::from_str(s)
        .ok()
        .or_else(|| Decimal::from_scientific(s).ok())
}

fn localized(s: &str, locale: Locale) -> Result<Decimal, String> {
    let (negative, body) = match s.chars().next() {
        Some('-' | '\u{2212}') => (true, &s[s.chars().next().map_or(0, char::len_utf8)..]),
        Some('+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (int_part, frac_part) = match body.split_once(locale.decimal_mark()) {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let mut digits = String::with_capacity(s.len());
    let groups: Vec<&str> = int_part.split(|c| locale.is_group(c)).collect();
    for (i, g) in groups.iter().enumerate() {
        let ok_len = if groups.len() == 1 {
            !g.is_empty()
        } else if i == 0 {
            (1..=3).contains(&g.len())
        } else {
            g.len() == 3
        };
        if !ok_len || !g.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "not a number in {}: bad digit grouping or character in {int_part:?}",
                tag(locale)
            ));
        }
        digits.push_str(g);
    }
    if let Some(f) = frac_part {
        if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "not a number in {}: bad fraction {f:?}",
                tag(locale)
            ));
        }
        digits.push('.');
        digits.push_str(f);
    }
    let d = Decimal::from_str(&digits).map_err(|e| format!("out of the decimal range: {e}"))?;
    Ok(if negative { -d } else { d })
}

fn tag(locale: Locale) -> &'static str {
    match locale {
        Locale::EnUs => "en-US",
        Locale::DeDe => "de-DE",
        Locale::FrFr => "fr-FR",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal")
    }

    #[test]
    fn table() {
        let en = Some(Locale::EnUs);
        let de = Some(Locale::DeDe);
        let fr = Some(Locale::FrFr);
        let ok = [
            (json!("1,234.56"), en, "1234.56"),
            (json!("1,234,567"), en, "1234567"),
            (json!("-0.5"), en, "-0.5"),
            (json!("1.234,56"), de, "1234.56"),
            (json!("1.234.567,891"), de, "1234567.891"),
            (json!("12,5"), de, "12.5"),
            (json!("1\u{202F}234,56"), fr, "1234.56"),
            (json!("1\u{00A0}234\u{00A0}567,5"), fr, "1234567.5"),
            (json!("1 234,56"), fr, "1234.56"),
            (json!("\u{2212}3,25"), fr, "-3.25"),
            (json!("19.99"), None, "19.99"),
            (json!(" -1234.5 "), None, "-1234.5"),
            (json!("1e3"), None, "1000"),
            (json!(19.99), None, "19.99"),
            (json!(0.1), de, "0.1"),
            (json!(-7), None, "-7"),
        ];
        for (input, locale, want) in ok {
            assert_eq!(
                parse_decimal(&input, locale),
                Ok(dec(want)),
                "{input} {locale:?}"
            );
        }
        let bad = [
            (json!("1.234,56"), en),
            (json!("1,234.56"), de),
            (json!("1,23,456"), en),
            (json!("1234,5678,9"), de),
            (json!("1.234"), fr),
            (json!("12,"), de),
            (json!("abc"), None),
            (json!("1,234.56"), None),
            (json!(""), en),
            (json!("-"), None),
            (json!(true), None),
            (json!([1]), en),
        ];
        for (input, locale) in bad {
            assert!(parse_decimal(&input, locale).is_err(), "{input} {locale:?}");
        }
        assert!(Locale::from_tag("xx-YY").is_err());
        assert_eq!(Locale::from_tag("de"), Ok(Locale::DeDe));
    }
}
