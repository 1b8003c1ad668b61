//! Money: an exact decimal amount with an ISO 4217 currency code.
//!
//! Amounts come as decimal strings or numbers (`"404.95"`, `148.50`), or in minor units
//! (Stripe's `2000` with `usd` is 20.00 USD). Minor units are scaled by the currency's
//! ISO 4217 exponent: 0 for the zero-decimal currencies in [`ZERO_DECIMAL`], 3 for those in
//! [`THREE_DECIMAL`], 2 otherwise. Currency codes are upper-cased and must be three ASCII
//! letters.

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::CoerceError;
use super::number::{Locale, parse_decimal};

/// ISO 4217 currencies whose minor unit exponent is 0.
pub const ZERO_DECIMAL: [&str; 17] = [
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
    "VUV", "XAF", "XOF", "XPF",
];

/// ISO 4217 currencies whose minor unit exponent is 3.
pub const THREE_DECIMAL: [&str; 7] = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];

/// The ISO 4217 minor unit exponent of an upper-case currency code.
pub fn exponent(currency: &str) -> u32 {
    if ZERO_DECIMAL.contains(&currency) {
        0
    } else if THREE_DECIMAL.contains(&currency) {
        3
    } else {
        2
    }
}

/// Normalizes a currency code: trimmed, upper-cased, exactly three ASCII letters.
///
/// # Errors
/// [`CoerceError`] for anything else.
pub fn currency_code(value: &Value) -> Result<String, CoerceError> {
    let code = value.as_str().map(|s| s.trim().to_ascii_uppercase());
    match code {
        Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => Ok(c),
        _ => Err(CoerceError::new(
            "money",
            value,
            "currency must be a three-letter ISO 4217 code",
        )),
    }
}

/// Builds `{"amount": "<decimal>", "currency": "<ISO 4217>"}`.
///
/// With `minor_units`, `amount` must be an integer count of minor units and the result has
/// exactly the currency's exponent as scale (`2000` `usd` → `"20.00"`). Otherwise the amount
/// keeps the scale it was written with (`"404.95"`, `148.5` → `"148.5"`).
///
/// # Errors
/// [`CoerceError`] for a non-numeric amount, a fractional minor-unit amount, or a bad
/// currency code.
pub fn money(
    amount: &Value,
    currency: &Value,
    minor_units: bool,
    locale: Option<Locale>,
) -> Result<Value, CoerceError> {
    let code = currency_code(currency)?;
    let mut d = parse_decimal(amount, locale).map_err(|e| e.retype("money"))?;
    if minor_units {
        if !d.fract().is_zero() {
            return Err(CoerceError::new(
                "money",
                amount,
                "minor units must be a whole number",
            ));
        }
        let scale = exponent(&code);
        d = Decimal::from_i128_with_scale(d.trunc().mantissa(), 0);
        d.set_scale(scale).map_err(|e| {
            CoerceError::new(
                "money",
                amount,
                &format!("cannot scale to minor units: {e}"),
            )
        })?;
    }
    Ok(json!({"amount": d.to_string(), "currency": code}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases = [
            (
                json!(2000),
                json!("usd"),
                true,
                json!({"amount": "20.00", "currency": "USD"}),
            ),
            (
                json!(2000),
                json!("jpy"),
                true,
                json!({"amount": "2000", "currency": "JPY"}),
            ),
            (
                json!(2000),
                json!("KWD"),
                true,
                json!({"amount": "2.000", "currency": "KWD"}),
            ),
            (
                json!(-150),
                json!("eur"),
                true,
                json!({"amount": "-1.50", "currency": "EUR"}),
            ),
            (
                json!("404.95"),
                json!("USD"),
                false,
                json!({"amount": "404.95", "currency": "USD"}),
            ),
            (
                json!(148.50),
                json!(" nzd "),
                false,
                json!({"amount": "148.5", "currency": "NZD"}),
            ),
            (
                json!(19.99),
                json!("usd"),
                false,
                json!({"amount": "19.99", "currency": "USD"}),
            ),
        ];
        for (amount, currency, minor, want) in cases {
            assert_eq!(
                money(&amount, &currency, minor, None),
                Ok(want),
                "{amount} {currency}"
            );
        }
        let de = money(&json!("1.234,50"), &json!("EUR"), false, Some(Locale::DeDe));
        assert_eq!(de, Ok(json!({"amount": "1234.50", "currency": "EUR"})));
        assert!(money(&json!(20.5), &json!("usd"), true, None).is_err());
        assert!(money(&json!("1"), &json!("US"), false, None).is_err());
        assert!(money(&json!("1"), &json!("U$D"), false, None).is_err());
        assert!(money(&json!("abc"), &json!("USD"), false, None).is_err());
        assert_eq!(exponent("CLP"), 0);
    }
}
