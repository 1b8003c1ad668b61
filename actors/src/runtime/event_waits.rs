//! Ending event waits: an event routed in a tenant ends every `wait` for its source and name
//! whose condition holds. Events count from the execution's start: an event routed after the
//! one that triggered the execution (or, for executions not started by an event, received
//! after the execution was created) can end its waits, even if it arrived before the
//! execution reached the wait step.
//!
//! No race with a wait that begins as the event arrives: the tenant supervisor routes events
//! and checks newly parked executions one message at a time, and keeps the last
//! [`RECENT_EVENTS`] events it routed. An event routed before the wait's index entry existed
//! is found in that buffer when the execution parks; one routed after finds the index entry.
//! The buffer lives in memory: after a restart, only events routed from then on are seen.
//! Ending a wait twice is harmless (the second finds it already resolved).

use std::collections::VecDeque;

use serde_json::{Value, json};
use sluice_storage::{EventWaitRecord, StorageError, Store, WriteSet};

use crate::flow::condition;

/// Events a tenant remembers for waits that are just beginning.
pub const RECENT_EVENTS: usize = 256;

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

/// The last events a tenant routed.
#[derive(Debug, Default)]
pub struct RecentEvents(VecDeque<SeenEvent>);

impl RecentEvents {
    /// Remembers `e`, forgetting the oldest past [`RECENT_EVENTS`].
    pub fn push(&mut self, e: SeenEvent) {
        if self.0.len() >= RECENT_EVENTS {
            self.0.pop_front();
        }
        self.0.push_back(e);
    }

    /// Events of `source`/`event_type` routed after event `after_event` when it is
    /// remembered, else received at or after `since_ms`; oldest first.
    pub fn matching<'a>(
        &'a self,
        source: &'a str,
        event_type: &'a str,
        after_event: &str,
        since_ms: u64,
    ) -> impl Iterator<Item = &'a SeenEvent> + 'a {
        let start = self.0.iter().position(|e| e.event_id == after_event);
        self.0
            .iter()
            .enumerate()
            .filter(move |(i, e)| match start {
                Some(s) => *i > s,
                None => e.received_at_ms >= since_ms,
            })
            .map(|(_, e)| e)
            .filter(move |e| e.source == source && e.event_type == event_type)
    }
}

/// True when `event`, received after the wait's execution began, ends the wait `w`.
pub fn accepts(w: &EventWaitRecord, event: &SeenEvent) -> bool {
    let Some(cond) = &w.condition else {
        return true;
    };
    let mut vars: Value = serde_json::from_str(&w.context_json).unwrap_or_else(|_| json!({}));
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
