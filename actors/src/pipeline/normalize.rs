//! Normalization: an outbox entry (raw bytes and headers) becomes a [`NormalizedEvent`] with a
//! source, a dotted event name and a parsed payload — or a [`NormalizeError`] that sends the
//! entry to the dead letter queue with its reason.
//!
//! Event names, per source:
//! - `shopify`: the `X-Shopify-Topic` header, `resource/verb` → singular resource and past-tense
//!   verb: `orders/create` → `order.created`, `inventory_levels/update` →
//!   `inventory_level.updated`, `orders/paid` → `order.paid`, `app/uninstalled` →
//!   `app.uninstalled`.
//! - `github`: the `X-GitHub-Event` header, plus the payload's `action` when present:
//!   `issues` + `opened` → `issues.opened`; `push` → `push`.
//! - `stripe`: the event's `type` (`charge.succeeded`).
//! - `slack`: the Events API envelope: `event_callback` → the inner `event.type`
//!   (`message`, `reaction_added`); other envelopes by their `type` (`url_verification`).
//! - `standard` / `http`: the payload's `type` field when it is a string, else
//!   `webhook.received`.
//! - app, schedule and polling events: the name they were submitted with
//!   ([`super::submit`]).

use serde_json::Value;
use sluice_storage::OutboxEntry;

use super::headers::Headers;

/// An event in the platform's own terms, ready for routing.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizedEvent {
    /// Event id (`eventId` returned at receipt).
    pub event_id: String,
    /// Space id.
    pub space_id: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Source connector, e.g. `shopify`.
    pub source: String,
    /// Dotted event name, e.g. `order.created`.
    pub event_type: String,
    /// When the provider says it happened, Unix ms (receipt time when it says nothing).
    pub occurred_at_ms: u64,
    /// Receipt time, Unix ms.
    pub received_at_ms: u64,
    /// The parsed body.
    pub payload: Value,
    /// SHA-256 idempotency key, hex.
    pub idempotency_key: String,
    /// Priority 1 (highest) to 4.
    pub priority: u8,
    /// Outbox sequence it came from.
    pub seq: u64,
    /// Where it stands in a chain of calls Sluice made to itself (its `CDN-Loop` header, see
    /// [`hops`](super::hops)); the default for events from outside.
    pub lineage: super::hops::Lineage,
}

/// Why an entry could not be normalized (the DLQ reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    /// The body is not JSON.
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    /// The source requires an event type and the request carried none.
    #[error("{connector} event has no event type ({hint})")]
    NoEventType {
        /// Source connector.
        connector: String,
        /// Where the type was expected.
        hint: &'static str,
    },
}

/// Normalizes an outbox entry whose body is `body` (the entry's own, or its claim-checked
/// blob).
///
/// # Errors
/// [`NormalizeError`] when the body is not JSON or the event type cannot be found.
pub fn normalize(entry: &OutboxEntry, body: &[u8]) -> Result<NormalizedEvent, NormalizeError> {
    let headers = Headers::new(entry.headers.iter().cloned());
    let payload: Value = serde_json::from_slice(json_text(body))
        .map_err(|e| NormalizeError::NotJson(e.to_string()))?;
    let source = entry.connector.as_str();
    let event_type = event_type(source, &headers, &payload)?;
    let occurred_at_ms = occurred_at_ms(source, &payload).unwrap_or(entry.received_at_ms);
    Ok(NormalizedEvent {
        event_id: entry.event_id.clone(),
        space_id: entry.space_id.clone(),
        tenant_id: entry.tenant_id.clone(),
        source: source.to_owned(),
        event_type,
        occurred_at_ms,
        received_at_ms: entry.received_at_ms,
        payload,
        idempotency_key: entry.idempotency_key.clone(),
        priority: entry.priority,
        seq: entry.seq,
        lineage: headers.lineage(),
    })
}

/// The JSON text of a delivery body, as [`normalize`] parses it: the body without a leading
/// UTF-8 byte order mark (RFC 8259 §8.1 lets a parser ignore one; some senders prepend it).
pub fn json_text(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
}

/// The dotted event name of a delivery (see the module docs for the rules).
///
/// # Errors
/// [`NormalizeError::NoEventType`] when a source that needs a type header lacks it.
pub fn event_type(
    source: &str,
    headers: &Headers,
    payload: &Value,
) -> Result<String, NormalizeError> {
    if let Some(name) = headers
        .get(super::submit::EVENT_HEADER)
        .filter(|n| !n.is_empty())
    {
        return Ok(name.to_owned());
    }
    let missing = |hint| NormalizeError::NoEventType {
        connector: source.to_owned(),
        hint,
    };
    match source {
        "shopify" => {
            let topic = headers
                .get("x-shopify-topic")
                .filter(|t| !t.is_empty())
                .ok_or_else(|| missing("X-Shopify-Topic header"))?;
            Ok(shopify_topic_to_event(topic))
        }
        "github" => {
            let event = headers
                .get("x-github-event")
                .filter(|t| !t.is_empty())
                .ok_or_else(|| missing("X-GitHub-Event header"))?;
            Ok(match payload.get("action").and_then(Value::as_str) {
                Some(action) if !action.is_empty() => format!("{event}.{action}"),
                _ => event.to_owned(),
            })
        }
        "stripe" => payload
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| missing("the event's type field")),
        "slack" => {
            let outer = payload
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| missing("the envelope's type field"))?;
            if outer == "event_callback" {
                payload
                    .pointer("/event/type")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| missing("event.type in an event_callback"))
            } else {
                Ok(outer.to_owned())
            }
        }
        _ => Ok(payload
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .unwrap_or("webhook.received")
            .to_owned()),
    }
}

/// `orders/create` → `order.created`: singular resource, past-tense verb.
pub fn shopify_topic_to_event(topic: &str) -> String {
    let (resource, verb) = topic.split_once('/').unwrap_or((topic, ""));
    let resource = singular(resource);
    if verb.is_empty() {
        return resource;
    }
    let verb = match verb {
        "create" => "created".to_owned(),
        "update" => "updated".to_owned(),
        "delete" => "deleted".to_owned(),
        "cancel" => "cancelled".to_owned(),
        "connect" => "connected".to_owned(),
        "disconnect" => "disconnected".to_owned(),
        "fulfill" => "fulfilled".to_owned(),
        "edit" => "edited".to_owned(),
        "request" => "requested".to_owned(),
        other => other.to_owned(),
    };
    format!("{resource}.{verb}")
}

fn singular(resource: &str) -> String {
    if let Some(stem) = resource.strip_suffix("ies") {
        format!("{stem}y")
    } else if resource.ends_with("ss") || resource.ends_with("us") {
        resource.to_owned()
    } else if let Some(stem) = resource.strip_suffix("sses") {
        format!("{stem}ss")
    } else if let Some(stem) = resource.strip_suffix("xes") {
        format!("{stem}x")
    } else if let Some(stem) = resource.strip_suffix('s') {
        stem.to_owned()
    } else {
        resource.to_owned()
    }
}

fn occurred_at_ms(source: &str, payload: &Value) -> Option<u64> {
    let secs = match source {
        "stripe" => payload.get("created").and_then(Value::as_u64),
        "slack" => payload.get("event_time").and_then(Value::as_u64),
        _ => None,
    }?;
    secs.checked_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn normalize_entry(e: &OutboxEntry) -> Result<NormalizedEvent, NormalizeError> {
        normalize(e, &e.body)
    }

    fn entry(connector: &str, headers: &[(&str, &str)], body: &str) -> OutboxEntry {
        OutboxEntry {
            seq: 3,
            event_id: "evt".into(),
            space_id: "sp".into(),
            tenant_id: "t".into(),
            webhook_id: "wh".into(),
            connector: connector.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
            body_in_blob: false,
            received_at_ms: 5,
            priority: 2,
            idempotency_key: "k".into(),
            attempt: 1,
            replay_of: None,
        }
    }

    #[test]
    fn shopify_topics() {
        for (topic, name) in [
            ("orders/create", "order.created"),
            ("orders/updated", "order.updated"),
            ("orders/paid", "order.paid"),
            ("inventory_levels/update", "inventory_level.updated"),
            ("inventory_items/update", "inventory_item.updated"),
            ("draft_orders/create", "draft_order.created"),
            ("app/uninstalled", "app.uninstalled"),
            ("refunds/create", "refund.created"),
            ("customers/delete", "customer.deleted"),
            ("fulfillments/create", "fulfillment.created"),
            ("addresses/create", "address.created"),
        ] {
            assert_eq!(shopify_topic_to_event(topic), name, "{topic}");
        }
    }

    #[test]
    fn github_event_and_action() {
        let e = normalize_entry(&entry(
            "github",
            &[("X-GitHub-Event", "issues")],
            r#"{"action":"opened","issue":{"number":1}}"#,
        ))
        .expect("normalize");
        assert_eq!(e.event_type, "issues.opened");
        assert_eq!(e.payload["issue"]["number"], json!(1));
        let push = normalize_entry(&entry(
            "github",
            &[("x-github-event", "push")],
            r#"{"ref":"x"}"#,
        ))
        .expect("normalize");
        assert_eq!(push.event_type, "push");
    }

    #[test]
    fn stripe_slack_and_standard() {
        let s = normalize_entry(&entry(
            "stripe",
            &[],
            r#"{"id":"evt_1","type":"charge.succeeded","created":1700000000}"#,
        ))
        .expect("stripe");
        assert_eq!(s.event_type, "charge.succeeded");
        assert_eq!(s.occurred_at_ms, 1_700_000_000_000);
        let sl = normalize_entry(&entry(
            "slack",
            &[],
            r#"{"type":"event_callback","event":{"type":"reaction_added"}}"#,
        ))
        .expect("slack");
        assert_eq!(sl.event_type, "reaction_added");
        let st = normalize_entry(&entry("standard", &[], r#"{"data":{}}"#)).expect("standard");
        assert_eq!(st.event_type, "webhook.received");
    }

    #[test]
    fn failures_name_the_reason() {
        let err = normalize_entry(&entry(
            "shopify",
            &[("x-shopify-topic", "orders/create")],
            "<xml/>",
        ))
        .expect_err("not json");
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        let bom = normalize_entry(&entry(
            "shopify",
            &[("x-shopify-topic", "orders/create")],
            "\u{feff}{\"id\": 1}",
        ))
        .expect("a leading BOM is ignored");
        assert_eq!(bom.payload["id"], 1);
        let err = normalize_entry(&entry("shopify", &[], "{}")).expect_err("no topic");
        assert!(err.to_string().contains("X-Shopify-Topic"), "{err}");
    }
}
