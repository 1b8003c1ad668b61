//! The nested types CDM entities share: addresses, line items, totals, payments, variants
//! and pricing tiers. Every field is optional: a connector fills what its system knows.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::values::{DecimalString, Money};

/// A postal address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Address {
    /// Addressee.
    pub name: Option<String>,
    /// Company at the address.
    pub company: Option<String>,
    /// First street line.
    pub line1: Option<String>,
    /// Second street line.
    pub line2: Option<String>,
    /// City or town.
    pub city: Option<String>,
    /// State, province or region (a code such as `KY` where the source has one).
    pub region: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2 country code where the source has one, else the country name.
    pub country: Option<String>,
    /// Phone number at the address.
    pub phone: Option<String>,
}

/// One line of an order, invoice or fulfillment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LineItem {
    /// Line id in the source system.
    pub id: Option<String>,
    /// Stock keeping unit.
    pub sku: Option<String>,
    /// Product or line title.
    pub name: Option<String>,
    /// Longer description.
    pub description: Option<String>,
    /// Product id in the source system.
    pub product_id: Option<String>,
    /// Variant id in the source system.
    pub variant_id: Option<String>,
    /// Quantity, exact (may be fractional in accounting systems).
    pub quantity: Option<DecimalString>,
    /// Price of one unit.
    pub unit_price: Option<Money>,
    /// Discount on the line.
    pub discount: Option<Money>,
    /// Tax on the line.
    pub tax: Option<Money>,
    /// Line total.
    pub total: Option<Money>,
}

/// Totals of an order or invoice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Totals {
    /// Sum of the lines before discounts, tax and shipping.
    pub subtotal: Option<Money>,
    /// Total discounts.
    pub discount: Option<Money>,
    /// Total tax.
    pub tax: Option<Money>,
    /// Shipping charged.
    pub shipping: Option<Money>,
    /// Grand total.
    pub total: Option<Money>,
    /// Amount paid so far.
    pub amount_paid: Option<Money>,
    /// Amount still due.
    pub amount_due: Option<Money>,
}

/// Status of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Not settled yet.
    Pending,
    /// Settled.
    Succeeded,
    /// Declined or errored.
    Failed,
    /// Returned to the payer (in full or in part).
    Refunded,
}

/// A payment against an order or invoice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Payment {
    /// Payment id in the source system.
    pub id: Option<String>,
    /// Amount paid.
    pub amount: Option<Money>,
    /// Method or gateway (`card`, `manual`, `shopify_payments`…).
    pub method: Option<String>,
    /// Status.
    pub status: Option<PaymentStatus>,
    /// When it was paid, RFC 3339 UTC.
    pub paid_at: Option<String>,
    /// Provider reference (charge id, receipt number).
    pub reference: Option<String>,
}

/// A variant of a product (size, colour…).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Variant {
    /// Variant id in the source system.
    pub id: Option<String>,
    /// Stock keeping unit.
    pub sku: Option<String>,
    /// Variant title.
    pub name: Option<String>,
    /// Unit price.
    pub price: Option<Money>,
    /// Units in stock.
    pub inventory: Option<i64>,
    /// Barcode (UPC, EAN, ISBN).
    pub barcode: Option<String>,
}

/// A quantity-dependent price.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PricingTier {
    /// Tier or price list name.
    pub name: Option<String>,
    /// Smallest quantity the price applies to.
    pub min_quantity: Option<DecimalString>,
    /// Unit price in this tier.
    pub price: Option<Money>,
}
