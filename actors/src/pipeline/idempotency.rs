//! Idempotency keys for received events.
//!
//! The key is SHA-256 over (tenant, source, provider delivery id), with each part
//! length-prefixed so that no two different triples hash the same bytes. Delivery ids come
//! from the provider's documented header or field:
//!
//! | source | delivery id |
//! |---|---|
//! | `shopify` | `X-Shopify-Webhook-Id` |
//! | `github` | `X-GitHub-Delivery` |
//! | `standard`, `http` | `webhook-id` |
//! | `stripe` | the event's `id` field (`evt_…`) |
//! | `slack` | the Events API envelope's `event_id` field |
//!
//! When the provider sends none, the raw body stands in: SHA-256 of the body, so a byte-for-byte
//! resend is still recognized.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::headers::Headers;

/// Where a delivery's identity came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryId {
    /// The provider's delivery id.
    Provider(String),
    /// No id was sent: the SHA-256 of the body, hex.
    BodyHash(String),
}

/// Finds the delivery id of a request for `source`. Only Stripe and Slack need the body (their
/// ids live in the JSON); for those the body is scanned for one top-level field, nothing more.
pub fn delivery_id(source: &str, headers: &Headers, body: &[u8]) -> DeliveryId {
    let from_header = match source {
        "shopify" => headers.get("x-shopify-webhook-id"),
        "github" => headers.get("x-github-delivery"),
        "standard" | "http" => headers.get("webhook-id"),
        _ => None,
    };
    if let Some(id) = from_header.filter(|s| !s.is_empty()) {
        return DeliveryId::Provider(id.to_owned());
    }
    let from_body = match source {
        "stripe" => top_level_string(body, |e: &Envelope| e.id.clone()),
        "slack" => top_level_string(body, |e: &Envelope| e.event_id.clone()),
        _ => None,
    };
    match from_body {
        Some(id) => DeliveryId::Provider(id),
        None => DeliveryId::BodyHash(hex::encode(Sha256::digest(body))),
    }
}

#[derive(Deserialize)]
struct Envelope {
    id: Option<String>,
    event_id: Option<String>,
}

fn top_level_string(body: &[u8], pick: impl Fn(&Envelope) -> Option<String>) -> Option<String> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    serde_json::from_slice::<Envelope>(body)
        .ok()
        .and_then(|e| pick(&e))
        .filter(|s| !s.is_empty())
}

/// SHA-256 over (tenant, source, delivery id), each part length-prefixed (u32 big-endian).
pub fn idempotency_key(tenant: &str, source: &str, delivery: &DeliveryId) -> [u8; 32] {
    let (kind, id): (&[u8], &str) = match delivery {
        DeliveryId::Provider(id) => (b"id", id),
        DeliveryId::BodyHash(h) => (b"body", h),
    };
    let mut hasher = Sha256::new();
    for part in [tenant.as_bytes(), source.as_bytes(), kind, id.as_bytes()] {
        hasher.update((part.len() as u32).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        Headers::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn provider_ids_are_found() {
        let gh = h(&[("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")]);
        assert_eq!(
            delivery_id("github", &gh, b"{}"),
            DeliveryId::Provider("72d3162e-cc78-11e3-81ab-4c9367dc0958".into())
        );
        assert_eq!(
            delivery_id(
                "stripe",
                &Headers::default(),
                br#"{"id":"evt_1","object":"event"}"#
            ),
            DeliveryId::Provider("evt_1".into())
        );
        assert_eq!(
            delivery_id(
                "slack",
                &Headers::default(),
                br#"{"event_id":"Ev1","type":"event_callback"}"#
            ),
            DeliveryId::Provider("Ev1".into())
        );
        assert!(matches!(
            delivery_id("shopify", &Headers::default(), b"not json"),
            DeliveryId::BodyHash(_)
        ));
    }

    #[test]
    fn keys_separate_tenants_sources_and_kinds() {
        let id = DeliveryId::Provider("abc".into());
        let k = idempotency_key("t1", "github", &id);
        assert_eq!(k, idempotency_key("t1", "github", &id));
        assert_ne!(k, idempotency_key("t2", "github", &id));
        assert_ne!(k, idempotency_key("t1", "shopify", &id));
        assert_ne!(
            k,
            idempotency_key("t1", "github", &DeliveryId::BodyHash("abc".into()))
        );
        // Length prefixes: ("ab","c") and ("a","bc") differ.
        assert_ne!(
            idempotency_key("ab", "c", &id),
            idempotency_key("a", "bc", &id)
        );
    }
}
