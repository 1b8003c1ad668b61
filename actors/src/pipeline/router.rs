//! Routing: which flows does an event start?

use crate::flow::Trigger;

use super::normalize::NormalizedEvent;

/// True when `trigger` starts a flow for `event`, delivered through `webhook_id`.
///
/// - `event` triggers match on source and event name (`*` matches any name of the source);
/// - `webhook` triggers match every event received by that webhook endpoint.
pub fn matches(trigger: &Trigger, event: &NormalizedEvent, webhook_id: &str) -> bool {
    match trigger {
        Trigger::Event {
            source,
            event: name,
            ..
        } => source == &event.source && (name == "*" || name == &event.event_type),
        Trigger::Webhook { webhook_id: id } => id == webhook_id,
        Trigger::Cron { .. } | Trigger::Manual { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(source: &str, name: &str) -> NormalizedEvent {
        NormalizedEvent {
            event_id: "e".into(),
            space_id: "s".into(),
            tenant_id: "t".into(),
            source: source.into(),
            event_type: name.into(),
            occurred_at_ms: 0,
            received_at_ms: 0,
            payload: json!({}),
            idempotency_key: "k".into(),
            priority: 2,
            seq: 1,
        }
    }

    #[test]
    fn event_and_webhook_triggers() {
        let t = Trigger::Event {
            source: "shopify".into(),
            event: "order.created".into(),
            condition: None,
        };
        assert!(matches(&t, &event("shopify", "order.created"), "w"));
        assert!(!matches(&t, &event("shopify", "order.updated"), "w"));
        assert!(!matches(&t, &event("github", "order.created"), "w"));
        let any = Trigger::Event {
            source: "github".into(),
            event: "*".into(),
            condition: None,
        };
        assert!(matches(&any, &event("github", "push"), "w"));
        let hook = Trigger::Webhook {
            webhook_id: "w1".into(),
        };
        assert!(matches(&hook, &event("github", "push"), "w1"));
        assert!(!matches(&hook, &event("github", "push"), "w2"));
    }
}
