//! Fixtures shared by the storage engine's integration tests.

use sluice_storage::OutboxEntry;

/// Outbox entry number `n` of a GitHub push webhook: event id `evt{n}`, tenant
/// `t{n % tenants}`, the given body kept inline, idempotency key `n` as 64 hex digits.
pub fn outbox_entry(n: u64, tenants: u64, body: Vec<u8>) -> OutboxEntry {
    OutboxEntry {
        seq: 0,
        event_id: format!("evt{n}"),
        space_id: "sp".into(),
        tenant_id: format!("t{}", n % tenants),
        webhook_id: "wh".into(),
        connector: "github".into(),
        headers: vec![("x-github-event".into(), "push".into())],
        body,
        body_in_blob: false,
        received_at_ms: n,
        priority: 2,
        idempotency_key: format!("{n:064x}"),
        attempt: 1,
        replay_of: None,
    }
}

/// The 32-byte deduplication key of entry `n`: `n` big-endian, then zeros.
pub fn dedup_key(n: u64) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&n.to_be_bytes());
    key
}
