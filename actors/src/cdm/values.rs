//! Scalar value types of the CDM: exact decimals carried as strings, ISO 4217 currency
//! codes, money, and the reference to the source record.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::mapping::coerce::money::exponent;

/// An exact decimal, serialized as a JSON string (`"19.99"`), never as a float.
/// Deserializing accepts only strings of the form `-?digits(.digits)?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DecimalString(pub Decimal);

impl Serialize for DecimalString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for DecimalString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let plain = text.strip_prefix('-').unwrap_or(&text);
        let well_formed = !plain.is_empty()
            && !plain.starts_with('.')
            && !plain.ends_with('.')
            && plain.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && plain.bytes().filter(|&b| b == b'.').count() <= 1;
        if !well_formed {
            return Err(serde::de::Error::custom(format!(
                "expected a decimal string like \"19.99\", found {text:?}"
            )));
        }
        Decimal::from_str(&text)
            .map(DecimalString)
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for DecimalString {
    fn schema_name() -> Cow<'static, str> {
        "DecimalString".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^-?[0-9]+(\\.[0-9]+)?$",
            "description": "An exact decimal number written as a string, e.g. \"19.99\"."
        })
    }
}

/// An ISO 4217 currency code: three upper-case ASCII letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct CurrencyCode(String);

impl CurrencyCode {
    /// Validates `code` (already upper-case).
    ///
    /// # Errors
    /// A message when it is not three upper-case ASCII letters.
    pub fn new(code: &str) -> Result<Self, String> {
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(code.to_owned()))
        } else {
            Err(format!(
                "currency must be a three-letter upper-case ISO 4217 code, found {code:?}"
            ))
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CurrencyCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        CurrencyCode::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for CurrencyCode {
    fn schema_name() -> Cow<'static, str> {
        "CurrencyCode".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "description": "ISO 4217 currency code, e.g. \"USD\"."
        })
    }
}

/// An amount of money: `{"amount": "19.99", "currency": "USD"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Money {
    /// Exact decimal amount in major units (dollars, not cents).
    pub amount: DecimalString,
    /// ISO 4217 code.
    pub currency: CurrencyCode,
}

/// Why money arithmetic failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The operands are in different currencies.
    #[error("cannot combine {0} and {1}")]
    CurrencyMismatch(String, String),
    /// The result left the decimal range (about ±7.9e28).
    #[error("money arithmetic overflowed")]
    Overflow,
}

impl Money {
    /// `amount` of `currency`.
    pub fn new(amount: Decimal, currency: CurrencyCode) -> Self {
        Self {
            amount: DecimalString(amount),
            currency,
        }
    }

    /// The sum, exact.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] or [`MoneyError::Overflow`].
    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(
                self.currency.to_string(),
                other.currency.to_string(),
            ));
        }
        let sum = self
            .amount
            .0
            .checked_add(other.amount.0)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(sum, self.currency.clone()))
    }

    /// The amount times `factor` (a quantity or a rate), exact.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`].
    pub fn checked_mul(&self, factor: Decimal) -> Result<Money, MoneyError> {
        let product = self
            .amount
            .0
            .checked_mul(factor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(product, self.currency.clone()))
    }

    /// Rounded to the currency's minor unit (ISO 4217 exponent), half away from zero — the
    /// same rule as the template function `ROUND` — and padded: `2.345 USD` → `2.35`.
    pub fn round_to_minor_unit(&self) -> Money {
        let scale = exponent(self.currency.as_str());
        let mut d = self
            .amount
            .0
            .round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero);
        d.rescale(scale);
        Money::new(d, self.currency.clone())
    }
}

/// Where a CDM record came from: `{"system": "shopify", "id": "820982911946154508",
/// "rawRef": "gid://shopify/Order/820982911946154508"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceRef {
    /// Connector name (`shopify`, `stripe`, `xero`…).
    pub system: String,
    /// The record's id in that system.
    pub id: Option<String>,
    /// A reference to the raw record: the provider's global id or API URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_ref: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn usd(s: &str) -> Money {
        Money::new(
            Decimal::from_str(s).expect("decimal"),
            CurrencyCode::new("USD").expect("code"),
        )
    }

    #[test]
    fn money_serializes_as_strings_and_rejects_floats() {
        let m = usd("19.99");
        assert_eq!(
            serde_json::to_value(&m).expect("ser"),
            json!({"amount": "19.99", "currency": "USD"})
        );
        let back: Money =
            serde_json::from_value(json!({"amount": "19.99", "currency": "USD"})).expect("de");
        assert_eq!(back, m);
        for bad in [
            json!({"amount": 19.99, "currency": "USD"}),
            json!({"amount": "19.99", "currency": "usd"}),
            json!({"amount": "1e3", "currency": "USD"}),
            json!({"amount": "19.", "currency": "USD"}),
            json!({"amount": "19.99", "currency": "USD", "x": 1}),
        ] {
            assert!(
                serde_json::from_value::<Money>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn arithmetic_is_exact() {
        let sum = usd("0.1").checked_add(&usd("0.2")).expect("add");
        assert_eq!(sum, usd("0.3"));
        let total = usd("19.99").checked_mul(Decimal::from(3)).expect("mul");
        assert_eq!(total.amount.0.to_string(), "59.97");
        assert_eq!(usd("2.345").round_to_minor_unit(), usd("2.35"));
        assert_eq!(usd("-2.345").round_to_minor_unit(), usd("-2.35"));
        assert_eq!(usd("5").round_to_minor_unit().amount.0.to_string(), "5.00");
        let eur = Money::new(Decimal::ONE, CurrencyCode::new("EUR").expect("eur"));
        assert!(matches!(
            usd("1").checked_add(&eur),
            Err(MoneyError::CurrencyMismatch(..))
        ));
        let max = Money::new(Decimal::MAX, CurrencyCode::new("USD").expect("usd"));
        assert_eq!(max.checked_add(&usd("1")), Err(MoneyError::Overflow));
    }
}
