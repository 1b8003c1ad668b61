//! CDM coverage for discovery: for each entity a connector holds, which of the CDM entity's
//! key fields (the API reference's table) its mapping fills, and the share as a score.
//!
//! The connector-to-CDM mappings are owned by the CDM/mapping layer. Until a mapping for a
//! (connector, entity) is registered there, [`entity_coverage`] reports the key fields with
//! `mapped: None` and `score: None` — "unknown", never a made-up number.

use serde::Serialize;

/// Key fields of each CDM entity, as the API reference lists them.
pub const CDM_KEY_FIELDS: &[(&str, &[&str])] = &[
    (
        "CDMContact",
        &[
            "id",
            "email",
            "firstName",
            "lastName",
            "company",
            "phone",
            "addresses",
            "tags",
            "customFields",
        ],
    ),
    (
        "CDMProduct",
        &[
            "id",
            "name",
            "sku",
            "description",
            "variants",
            "pricingTiers",
            "category",
            "status",
            "inventory",
        ],
    ),
    (
        "CDMOrder",
        &[
            "id",
            "contact",
            "lineItems",
            "totals",
            "payments",
            "status",
            "shippingAddress",
            "billingAddress",
        ],
    ),
    (
        "CDMInvoice",
        &[
            "id",
            "contact",
            "lineItems",
            "totals",
            "status",
            "dueDate",
            "payments",
            "currency",
        ],
    ),
    (
        "CDMInventoryLevel",
        &[
            "productId",
            "variantId",
            "locationId",
            "available",
            "onHand",
            "committed",
            "reserved",
        ],
    ),
    (
        "CDMFulfillment",
        &[
            "id",
            "orderId",
            "status",
            "trackingNumber",
            "carrier",
            "lineItems",
            "shippedAt",
        ],
    ),
];

/// Coverage of one entity.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityCoverage {
    /// The CDM entity (`CDMOrder`).
    pub cdm: String,
    /// Its key fields.
    pub key_fields: Vec<&'static str>,
    /// Key fields the registered mapping fills; `None` when no mapping is registered.
    pub mapped: Option<Vec<String>>,
    /// `mapped / key fields`, 0.0 to 1.0, rounded to 2 places; `None` when unknown.
    pub score: Option<f64>,
}

/// The key fields of a CDM entity.
pub fn key_fields(cdm: &str) -> Option<&'static [&'static str]> {
    CDM_KEY_FIELDS
        .iter()
        .find(|(name, _)| *name == cdm)
        .map(|(_, f)| *f)
}

/// Share of `key` fields present in `mapped`, rounded to two places.
pub fn score(key: &[&str], mapped: &[String]) -> f64 {
    if key.is_empty() {
        return 0.0;
    }
    let hits = key
        .iter()
        .filter(|k| mapped.iter().any(|m| m == *k))
        .count();
    ((hits as f64 / key.len() as f64) * 100.0).round() / 100.0
}

/// Coverage of a connector entity mapped to `cdm`, given the CDM fields its mapping fills
/// (`None` when no mapping is registered for it).
pub fn entity_coverage(cdm: &str, mapped: Option<Vec<String>>) -> Option<EntityCoverage> {
    let key = key_fields(cdm)?;
    let score = mapped.as_deref().map(|m| score(key, m));
    Some(EntityCoverage {
        cdm: cdm.to_owned(),
        key_fields: key.to_vec(),
        mapped,
        score,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_counts_key_fields_only() {
        let key = key_fields("CDMInvoice").expect("invoice");
        let mapped: Vec<String> = ["id", "contact", "lineItems", "totals", "extra"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(score(key, &mapped), 0.5);
        let c = entity_coverage("CDMInvoice", None).expect("known");
        assert_eq!(c.score, None);
        assert!(entity_coverage("CDMNope", None).is_none());
    }
}
