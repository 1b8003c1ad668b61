//! Routing: which flows does an event start?

use crate::flow::Trigger;

use super::normalize::NormalizedEvent;

/// True when `trigger` starts a flow for `event`, delivered through `webhook_id`.
///
/// - `event` triggers match on source and event name (`*` matches any name of the source);
/// - `webhook` triggers match every event received by that webhook endpoint;
/// - `cron` triggers match the scheduler's events: source `cron`, event name = `flow_name`;
/// - an event trigger's `condition` (CEL over `trigger`, the payload) must also hold; one
///   that cannot be evaluated (a missing field) does not.
pub fn matches(
    trigger: &Trigger,
    flow_name: &str,
    event: &NormalizedEvent,
    webhook_id: &str,
) -> bool {
    match trigger {
        Trigger::Event {
            source,
            event: name,
            condition,
        } => {
            source == &event.source
                && (name == "*" || name == &event.event_type)
                && condition.as_ref().is_none_or(|c| {
                    crate::flow::condition::evaluate(
                        c,
                        &serde_json::json!({"trigger": event.payload}),
                    )
                    .unwrap_or(false)
                })
        }
        Trigger::Webhook { webhook_id: id } => id == webhook_id,
        Trigger::Cron { .. } => {
            event.source == "cron" && event.event_type == flow_name && webhook_id.is_empty()
        }
        Trigger::Manual { .. } => false,
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
            lineage: crate::pipeline::hops::Lineage::default(),
        }
    }

    #[test]
    fn event_and_webhook_triggers() {
        let t = Trigger::Event {
            source: "shopify".into(),
            event: "order.created".into(),
            condition: None,
        };
        assert!(matches(&t, "f", &event("shopify", "order.created"), "w"));
        assert!(!matches(&t, "f", &event("shopify", "order.updated"), "w"));
        assert!(!matches(&t, "f", &event("github", "order.created"), "w"));
        let any = Trigger::Event {
            source: "github".into(),
            event: "*".into(),
            condition: None,
        };
        assert!(matches(&any, "f", &event("github", "push"), "w"));
        let hook = Trigger::Webhook {
            webhook_id: "w1".into(),
        };
        assert!(matches(&hook, "f", &event("github", "push"), "w1"));
        assert!(!matches(&hook, "f", &event("github", "push"), "w2"));
        let cond = Trigger::Event {
            source: "shopify".into(),
            event: "*".into(),
            condition: Some("trigger.total > 100".into()),
        };
        let mut big = event("shopify", "order.created");
        big.payload = json!({"total": 150});
        assert!(matches(&cond, "f", &big, "w"));
        big.payload = json!({"total": 50});
        assert!(!matches(&cond, "f", &big, "w"));
        big.payload = json!({});
        assert!(!matches(&cond, "f", &big, "w"), "missing field is not true");
        let cron = Trigger::Cron {
            schedule: "* * * * *".into(),
            timezone: None,
            catch_up: None,
            catch_up_window_ms: None,
            overlap: None,
        };
        assert!(matches(&cron, "nightly", &event("cron", "nightly"), ""));
        assert!(!matches(&cron, "nightly", &event("cron", "other"), ""));
    }
}
