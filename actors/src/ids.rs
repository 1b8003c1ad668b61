//! Derived identifiers and the clock.

use sha2::{Digest, Sha256};

/// Execution id from (event idempotency key, flow id, flow version): a redelivered event finds
/// its execution instead of starting a second. Format: `exe_` + 32 hex digits (128 bits of
/// SHA-256).
pub fn execution_id(idempotency_key: &str, flow_id: &str, flow_version: u32) -> String {
    let mut h = Sha256::new();
    for part in [idempotency_key.as_bytes(), flow_id.as_bytes()] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part);
    }
    h.update(flow_version.to_be_bytes());
    let digest = h.finalize();
    format!("exe_{}", hex::encode(&digest[..16]))
}

/// Execution id for attempt `attempt` (from 0) of an execute API call carrying an
/// `Idempotency-Key`, from (tenant, flow id, key, attempt): a repeated call (a client's
/// retry, or a calling execution's step run again after a restart, which sends the same key)
/// finds the execution the first one started. Format as [`execution_id`]; the parts are
/// length-prefixed under their own domain tag, so no event's execution id can equal one.
pub fn keyed_execution_id(tenant: &str, flow_id: &str, key: &str, attempt: u32) -> String {
    let mut h = Sha256::new();
    for part in [
        b"execute".as_slice(),
        tenant.as_bytes(),
        flow_id.as_bytes(),
        key.as_bytes(),
    ] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part);
    }
    h.update(attempt.to_be_bytes());
    format!("exe_{}", hex::encode(&h.finalize()[..16]))
}

/// Idempotency key for a step's outbound call: SHA-256 of (execution id, step name), hex.
pub fn step_idempotency_key(execution_id: &str, step: &str) -> String {
    let mut h = Sha256::new();
    h.update(execution_id.as_bytes());
    h.update([0]);
    h.update(step.as_bytes());
    hex::encode(h.finalize())
}

/// Idempotency key for one iteration of a nested step in a loop: SHA-256 of (execution id,
/// `loop/step`, iteration index), hex. Stable across restarts, distinct per item.
pub fn iteration_idempotency_key(execution_id: &str, step: &str, iteration: usize) -> String {
    step_idempotency_key(execution_id, &format!("{step}#{iteration}"))
}

/// Now, Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_ids_are_stable_and_distinct() {
        let a = execution_id("k", "flow", 1);
        assert_eq!(a, execution_id("k", "flow", 1));
        assert_ne!(a, execution_id("k", "flow", 2));
        assert_ne!(a, execution_id("k", "flow2", 1));
        assert_eq!(a.len(), 4 + 32);
    }

    #[test]
    fn keyed_execution_ids_are_stable_and_scoped() {
        let a = keyed_execution_id("t", "flow", "key-1", 0);
        assert_eq!(a, keyed_execution_id("t", "flow", "key-1", 0));
        assert_ne!(a, keyed_execution_id("t", "flow", "key-1", 1));
        assert_ne!(a, keyed_execution_id("t", "flow", "key-2", 0));
        assert_ne!(a, keyed_execution_id("t", "flow2", "key-1", 0));
        assert_ne!(a, keyed_execution_id("u", "flow", "key-1", 0));
        // Length prefixes: moving a character between parts changes the id.
        assert_ne!(a, keyed_execution_id("t", "flowk", "ey-1", 0));
        assert!(a.starts_with("exe_") && a.len() == 4 + 32);
    }
}
