//! Events that do not arrive as webhooks: app events sent through the API (P2), and the
//! internal entry point for schedules (P3) and polling (P4). They take the same path as
//! webhooks from the outbox on: one durable, deduplicated outbox entry, normalized by the
//! tenant, routed to live flows.
//!
//! The event name travels in the internal header [`EVENT_HEADER`], which webhook receipt never
//! keeps (see [`Headers::retained`](super::Headers::retained)), so a webhook sender cannot
//! forge it.

use sha2::{Digest, Sha256};
use sluice_storage::{IngestOutcome, OutboxEntry, StorageError, Store};

use super::hops::Lineage;
use super::idempotency::{DeliveryId, idempotency_key};
use crate::ids::now_ms;

/// Internal header carrying the event name of a submitted event.
pub const EVENT_HEADER: &str = "x-sluice-event";

/// Priority of user-triggered work (the execute API, widgets).
pub const P1_USER: u8 = 1;
/// Priority of event-driven work (webhooks, app events).
pub const P2_EVENT: u8 = 2;
/// Priority of scheduled work (cron).
pub const P3_SCHEDULE: u8 = 3;
/// Priority of polling work (synthetic events from polled changes).
pub const P4_POLLING: u8 = 4;

/// An event to put into the pipeline.
#[derive(Debug, Clone)]
pub struct Submission {
    /// Space id.
    pub space_id: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Source name (`myapp`, `shopify`, `cron`, …).
    pub source: String,
    /// Event name (`user.signup`).
    pub event: String,
    /// The payload, as JSON bytes.
    pub payload: Vec<u8>,
    /// Priority 1-4.
    pub priority: u8,
    /// Caller's idempotency key; when absent, the SHA-256 of the event name and the payload.
    pub idempotency_key: Option<String>,
    /// The caller's lineage (its `CDN-Loop` header, see [`hops`](super::hops)); the default
    /// from outside.
    pub lineage: Lineage,
}

/// Writes `submission` to the outbox durably, deduplicated like a webhook.
///
/// # Errors
/// Storage errors.
pub async fn submit(store: &Store, submission: Submission) -> Result<IngestOutcome, StorageError> {
    let delivery = match submission.idempotency_key {
        Some(k) if !k.is_empty() => DeliveryId::Provider(format!("{}:{k}", submission.event)),
        // The event name is part of what is hashed: the same payload under two names is two
        // events (an empty `{}` sent as `h1` and then as `reset` once deduplicated to one).
        _ => DeliveryId::BodyHash(hex::encode(
            Sha256::new()
                .chain_update(submission.event.as_bytes())
                .chain_update([0])
                .chain_update(&submission.payload)
                .finalize(),
        )),
    };
    let key = idempotency_key(&submission.tenant_id, &submission.source, &delivery);
    let mut headers = vec![
        (EVENT_HEADER.into(), submission.event),
        ("content-type".into(), "application/json".into()),
    ];
    // As a `CDN-Loop` header in Sluice's form, so normalization reads it like a webhook's.
    headers.extend(submission.lineage.stored_header());
    let entry = OutboxEntry {
        seq: 0,
        event_id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
        space_id: submission.space_id,
        tenant_id: submission.tenant_id,
        webhook_id: String::new(),
        connector: submission.source,
        headers,
        body: submission.payload,
        body_in_blob: false,
        received_at_ms: now_ms(),
        priority: submission.priority.clamp(P1_USER, P4_POLLING),
        idempotency_key: hex::encode(key),
        attempt: 1,
        replay_of: None,
    };
    store.ingest(key, entry).await
}
