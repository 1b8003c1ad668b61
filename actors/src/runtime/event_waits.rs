//! Ending event waits: an event routed in a tenant ends every `wait` for its source and name
//! whose condition holds. Events count from the execution's start: an event routed after the
//! one that triggered the execution (or, for executions not started by an event, received
//! after the execution was created) can end its waits, even if it arrived before the
//! execution reached the wait step.
//!
//! No race with a wait that begins as the event arrives: the tenant supervisor routes events
//! and checks newly parked executions one message at a time, and keeps the last
//! [`RECENT_EVENTS`] events it routed (at most [`RECENT_EVENT_BYTES`] of payload, kept as
//! JSON text and parsed only when a parked execution looks at them). An event routed before
//! the wait's index entry existed is found in that buffer when the execution parks; one routed
//! after finds the index entry. The buffer lives in memory: after a restart, only events
//! routed from then on are seen.
//! Ending a wait twice is harmless (the second finds it already resolved).

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::{Value, json};
use sluice_storage::{EventWaitRecord, StorageError, Store, WriteSet};

use crate::flow::condition;
use crate::json_depth::parse_stored;

/// Events a tenant remembers for waits that are just beginning.
pub const RECENT_EVENTS: usize = 256;

/// Payload bytes (JSON text) a tenant remembers at most for waits that are just beginning;
/// the oldest events are forgotten first. Bounds a tenant's memory whatever its payload sizes.
pub const RECENT_EVENT_BYTES: usize = 1024 * 1024;

/// An event as the waits see it.
#[derive(Debug, Clone)]
pub struct SeenEvent {
    /// Event id.
    pub event_id: String,
    /// Source connector.
    pub source: String,
    /// Normalized event name.
    pub event_type: String,
    /// Receipt time, Unix ms.
    pub received_at_ms: u64,
    /// Payload.
    pub payload: Value,
}

/// An event as the buffer of recent events keeps it: the payload as JSON text.
#[derive(Debug, Clone)]
struct RecentEvent {
    event_id: String,
    source: String,
    event_type: String,
    received_at_ms: u64,
    payload_json: Arc<str>,
}

/// The last events a tenant routed, oldest first, within [`RECENT_EVENTS`] and
/// [`RECENT_EVENT_BYTES`].
#[derive(Debug, Default)]
pub struct RecentEvents {
    events: VecDeque<RecentEvent>,
    bytes: usize,
}

impl RecentEvents {
    /// Remembers an event with its payload as JSON text, forgetting the oldest ones past
    /// either bound. A payload larger than the byte bound alone is not remembered.
    pub fn push(
        &mut self,
        event_id: &str,
        source: &str,
        event_type: &str,
        received_at_ms: u64,
        payload_json: Arc<str>,
    ) {
        if payload_json.len() > RECENT_EVENT_BYTES {
            return;
        }
        while self.events.len() >= RECENT_EVENTS
            || self.bytes + payload_json.len() > RECENT_EVENT_BYTES
        {
            match self.events.pop_front() {
                Some(old) => self.bytes -= old.payload_json.len(),
                None => break,
            }
        }
        self.bytes += payload_json.len();
        self.events.push_back(RecentEvent {
            event_id: event_id.to_owned(),
            source: source.to_owned(),
            event_type: event_type.to_owned(),
            received_at_ms,
            payload_json,
        });
    }

    /// Events of `source`/`event_type` routed after event `after_event` when it is
    /// remembered, else received at or after `since_ms`; oldest first, parsed.
    pub fn matching<'a>(
        &'a self,
        source: &'a str,
        event_type: &'a str,
        after_event: &str,
        since_ms: u64,
    ) -> impl Iterator<Item = SeenEvent> + 'a {
        let start = self.events.iter().position(|e| e.event_id == after_event);
        self.events
            .iter()
            .enumerate()
            .filter(move |(i, e)| match start {
                Some(s) => *i > s,
                None => e.received_at_ms >= since_ms,
            })
            .map(|(_, e)| e)
            .filter(move |e| e.source == source && e.event_type == event_type)
            .map(|e| SeenEvent {
                event_id: e.event_id.clone(),
                source: e.source.clone(),
                event_type: e.event_type.clone(),
                received_at_ms: e.received_at_ms,
                payload: serde_json::from_str(&e.payload_json).unwrap_or(Value::Null),
            })
    }

    /// Payload bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// True when `event`, received after the wait's execution began, ends the wait `w`.
pub fn accepts(w: &EventWaitRecord, event: &SeenEvent) -> bool {
    let Some(cond) = &w.condition else {
        return true;
    };
    let mut vars = match parse_stored(&w.context_json) {
        Value::Null => json!({}),
        v => v,
    };
    if let Value::Object(o) = &mut vars {
        o.insert("event".into(), event.payload.clone());
    }
    condition::evaluate(cond, &vars).unwrap_or(false)
}

/// Records `event` as the end of wait `w` (if it is still open); returns true when it was.
///
/// # Errors
/// Storage errors.
pub async fn resolve(
    store: &Store,
    space: &str,
    tenant: &str,
    w: &EventWaitRecord,
    event: &SeenEvent,
) -> Result<bool, StorageError> {
    let Some(mut rec) = store.wait(space, tenant, &w.execution_id, w.index)? else {
        return Ok(false);
    };
    if rec.resolution.is_some() {
        return Ok(false);
    }
    rec.resolution = Some(event.payload.to_string());
    let mut writes = WriteSet::new();
    writes.put_wait(space, tenant, &w.execution_id, &rec)?;
    writes.delete_event_wait(
        space,
        tenant,
        &event.source,
        &event.event_type,
        &w.execution_id,
        w.index,
    );
    store.commit(writes).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(r: &mut RecentEvents, id: &str, bytes: usize) {
        let payload = format!("\"{}\"", "x".repeat(bytes - 2));
        r.push(id, "github", "push", 10, payload.into());
    }

    #[test]
    fn keeps_the_newest_within_the_count_bound() {
        let mut r = RecentEvents::default();
        for i in 0..RECENT_EVENTS + 10 {
            push(&mut r, &format!("evt_{i}"), 10);
        }
        assert_eq!(r.len(), RECENT_EVENTS);
        let ids: Vec<String> = r
            .matching("github", "push", "none", 0)
            .map(|e| e.event_id)
            .collect();
        assert_eq!(ids.first().map(String::as_str), Some("evt_10"));
        assert_eq!(
            ids.last().map(String::as_str),
            Some(format!("evt_{}", RECENT_EVENTS + 9).as_str())
        );
    }

    #[test]
    fn keeps_the_newest_within_the_byte_bound() {
        let mut r = RecentEvents::default();
        let big = RECENT_EVENT_BYTES / 4;
        for i in 0..10 {
            push(&mut r, &format!("evt_{i}"), big);
        }
        assert_eq!(r.len(), 4);
        assert!(r.bytes() <= RECENT_EVENT_BYTES);
        push(&mut r, "too_big", RECENT_EVENT_BYTES + 1);
        assert_eq!(r.len(), 4, "a payload over the bound alone is not kept");
        let ids: Vec<String> = r
            .matching("github", "push", "evt_7", 0)
            .map(|e| e.event_id)
            .collect();
        assert_eq!(
            ids,
            ["evt_8", "evt_9"],
            "only events after the trigger event"
        );
    }

    #[test]
    fn gives_back_the_parsed_payload_of_matching_events() {
        let mut r = RecentEvents::default();
        r.push("e1", "shopify", "order.created", 5, r#"{"id":1}"#.into());
        r.push("e2", "github", "push", 6, r#"{"id":2}"#.into());
        r.push("e3", "shopify", "order.created", 7, r#"{"id":3}"#.into());
        let seen: Vec<SeenEvent> = r
            .matching("shopify", "order.created", "unknown", 6)
            .collect();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].payload, json!({"id": 3}));
    }
}
