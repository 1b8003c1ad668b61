//! The six CDM entities (the API reference's key fields, plus timestamps). JSON is
//! camelCase; unknown fields are refused; dates are RFC 3339 UTC strings
//! (`2022-01-01T00:00:00Z`) and calendar dates `YYYY-MM-DD`; money is
//! [`Money`](super::values::Money). Each entity carries `source`: the system, the record's
//! id there and a reference to the raw record.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::parts::{Address, LineItem, Payment, PricingTier, Totals, Variant};
use super::values::{CurrencyCode, SourceRef};

/// A person or organisation: a customer in e-commerce, a contact in CRM and accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "CDMContact")]
pub struct CdmContact {
    /// Id in the source system.
    pub id: Option<String>,
    /// Where it came from.
    pub source: Option<SourceRef>,
    /// Primary email address.
    pub email: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Organisation name.
    pub company: Option<String>,
    /// Primary phone number.
    pub phone: Option<String>,
    /// Postal addresses, default first.
    #[serde(default)]
    pub addresses: Vec<Address>,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Source fields without a CDM counterpart that the mapping chose to keep.
    #[serde(default)]
    pub custom_fields: Map<String, Value>,
    /// Created, RFC 3339 UTC.
    pub created_at: Option<String>,
    /// Last updated, RFC 3339 UTC.
    pub updated_at: Option<String>,
}

/// Product lifecycle status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    /// On sale.
    Active,
    /// Not published yet.
    Draft,
    /// Withdrawn.
    Archived,
}

/// A product of a catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "CDMProduct")]
pub struct CdmProduct {
    /// Id in the source system.
    pub id: Option<String>,
    /// Where it came from.
    pub source: Option<SourceRef>,
    /// Title.
    pub name: Option<String>,
    /// SKU of the product (of its only variant when it has one).
    pub sku: Option<String>,
    /// Description (may contain HTML, as the source has it).
    pub description: Option<String>,
    /// Variants.
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// Quantity-dependent prices.
    #[serde(default)]
    pub pricing_tiers: Vec<PricingTier>,
    /// Category or product type.
    pub category: Option<String>,
    /// Lifecycle status.
    pub status: Option<ProductStatus>,
    /// Units in stock across variants and locations.
    pub inventory: Option<i64>,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Created, RFC 3339 UTC.
    pub created_at: Option<String>,
    /// Last updated, RFC 3339 UTC.
    pub updated_at: Option<String>,
}

/// Order status (the payment side, as e-commerce systems report it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed, not paid.
    Pending,
    /// Payment authorized, not captured.
    Authorized,
    /// Paid in part.
    PartiallyPaid,
    /// Paid.
    Paid,
    /// Refunded in part.
    PartiallyRefunded,
    /// Refunded.
    Refunded,
    /// Voided or cancelled.
    Cancelled,
}

/// A sales order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "CDMOrder")]
pub struct CdmOrder {
    /// Id in the source system.
    pub id: Option<String>,
    /// Where it came from.
    pub source: Option<SourceRef>,
    /// Human-facing order number (`#1001`).
    pub number: Option<String>,
    /// The buyer.
    pub contact: Option<CdmContact>,
    /// Lines.
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    /// Totals.
    pub totals: Option<Totals>,
    /// Payments.
    #[serde(default)]
    pub payments: Vec<Payment>,
    /// Status.
    pub status: Option<OrderStatus>,
    /// Ship-to address.
    pub shipping_address: Option<Address>,
    /// Bill-to address.
    pub billing_address: Option<Address>,
    /// Currency of the order.
    pub currency: Option<CurrencyCode>,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Created, RFC 3339 UTC.
    pub created_at: Option<String>,
    /// Last updated, RFC 3339 UTC.
    pub updated_at: Option<String>,
}

/// Invoice status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    /// Being prepared.
    Draft,
    /// Issued, awaiting payment.
    Open,
    /// Paid in full.
    Paid,
    /// Cancelled or deleted.
    Void,
    /// Written off.
    Uncollectible,
}

/// An invoice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "CDMInvoice")]
pub struct CdmInvoice {
    /// Id in the source system.
    pub id: Option<String>,
    /// Where it came from.
    pub source: Option<SourceRef>,
    /// Invoice number.
    pub number: Option<String>,
    /// The customer billed.
    pub contact: Option<CdmContact>,
    /// Lines.
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    /// Totals.
    pub totals: Option<Totals>,
    /// Status.
    pub status: Option<InvoiceStatus>,
    /// Issue date, `YYYY-MM-DD`.
    pub issue_date: Option<String>,
    /// Due date, `YYYY-MM-DD`.
    pub due_date: Option<String>,
    /// Payments.
    #[serde(default)]
    pub payments: Vec<Payment>,
    /// Currency of the invoice.
    pub currency: Option<CurrencyCode>,
    /// Created, RFC 3339 UTC.
    pub created_at: Option<String>,
    /// Last updated, RFC 3339 UTC.
    pub updated_at: Option<String>,
}

/// Stock of one product variant at one location.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "CDMInventoryLevel")]
pub struct CdmInventoryLevel {
    /// Where it came from.
    pub source: Option<SourceRef>,
    /// Product id.
    pub product_id: Option<String>,
    /// Variant id (Shopify: the inventory item id, one per variant).
    pub variant_id: Option<String>,
    /// Location (warehouse, store) id.
    pub location_id: Option<String>,
    /// Units that can be sold.
    pub available: Option<i64>,
    /// Units physically present.
    pub on_hand: Option<i64>,
    /// Units promised to open orders.
    pub committed: Option<i64>,
    /// Units held back.
    pub reserved: Option<i64>,
    /// Last updated, RFC 3339 UTC.
    pub updated_at: Option<String>,
}

/// Fulfillment status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FulfillmentStatus {
    /// Not started.
    Pending,
    /// Being prepared.
    Open,
    /// Handed to the carrier.
    Shipped,
    /// Cancelled.
    Cancelled,
    /// Failed.
    Failed,
}

/// A shipment of (part of) an order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "CDMFulfillment")]
pub struct CdmFulfillment {
    /// Id in the source system.
    pub id: Option<String>,
    /// Where it came from.
    pub source: Option<SourceRef>,
    /// The order fulfilled.
    pub order_id: Option<String>,
    /// Status.
    pub status: Option<FulfillmentStatus>,
    /// Carrier tracking number.
    pub tracking_number: Option<String>,
    /// Carrier name.
    pub carrier: Option<String>,
    /// Tracking page.
    pub tracking_url: Option<String>,
    /// Lines shipped.
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    /// When it shipped, RFC 3339 UTC.
    pub shipped_at: Option<String>,
    /// Last updated, RFC 3339 UTC.
    pub updated_at: Option<String>,
}
