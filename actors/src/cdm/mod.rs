//! The Canonical Data Model: the neutral shape an order from Shopify and an invoice for
//! Xero meet in.
//!
//! - [`values`]: exact decimals as strings, ISO 4217 codes, [`Money`](values::Money), the
//!   [`SourceRef`](values::SourceRef) every entity keeps;
//! - [`parts`]: addresses, line items, totals, payments, variants, pricing tiers;
//! - [`entities`]: `CDMContact`, `CDMProduct`, `CDMOrder`, `CDMInvoice`,
//!   `CDMInventoryLevel`, `CDMFulfillment`;
//! - [`kind`]: the entity names, their JSON Schemas and field lists;
//! - [`connectors`]: each built-in connector's mappings to and from the CDM (data, in
//!   `mappings/*.json`), the pure mapping functions and coverage scores.

pub mod connectors;
pub mod entities;
pub mod kind;
pub mod parts;
pub mod values;

pub use connectors::{CdmError, Coverage, coverage, from_cdm, mapped_fields, to_cdm};
pub use entities::{
    CdmContact, CdmFulfillment, CdmInventoryLevel, CdmInvoice, CdmOrder, CdmProduct,
};
pub use kind::{CdmEntity, EntityKind};
