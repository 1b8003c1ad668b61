//! Key encoding for every keyspace.
//!
//! Keys are byte strings that sort the way they should be scanned:
//! - identifiers (space, tenant, flow, execution ids) are written as their UTF-8 bytes followed
//!   by one `0x00` terminator, so a shorter id never prefixes a longer one and ids still sort
//!   lexicographically (identifiers may not contain NUL, see [`check_id`]);
//! - integers (sequence numbers, millisecond times, step numbers) are fixed-width big-endian,
//!   so numeric order is byte order.
//!
//! Every tenant-owned key starts with the [`tenant_prefix`] (space id, tenant id), so one
//! tenant's data is one contiguous prefix in each keyspace; that is what lets a tenant move to
//! another node later without cross-tenant scans.

use crate::error::{Result, StorageError};

/// The longest identifier accepted in a key, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Checks that `id` can be embedded in a key: 1 to [`MAX_ID_LEN`] bytes and no NUL.
///
/// # Errors
/// [`StorageError::InvalidId`] otherwise.
pub fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ID_LEN || id.as_bytes().contains(&0) {
        return Err(StorageError::InvalidId(id.to_owned()));
    }
    Ok(())
}

/// Builds a key from segments.
#[derive(Debug, Default, Clone)]
pub struct KeyBuilder(Vec<u8>);

impl KeyBuilder {
    /// An empty key.
    pub fn new() -> Self {
        Self(Vec::with_capacity(48))
    }

    /// Appends an identifier and its `0x00` terminator.
    pub fn id(mut self, id: &str) -> Self {
        self.0.extend_from_slice(id.as_bytes());
        self.0.push(0);
        self
    }

    /// Appends a big-endian `u64`.
    pub fn u64(mut self, n: u64) -> Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }

    /// Appends a big-endian `u32`.
    pub fn u32(mut self, n: u32) -> Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }

    /// Appends raw bytes (used for fixed-width hashes).
    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }

    /// The finished key.
    pub fn build(self) -> Vec<u8> {
        self.0
    }
}

/// `space \0 tenant \0`: the prefix of every key a tenant owns.
pub fn tenant_prefix(space: &str, tenant: &str) -> KeyBuilder {
    KeyBuilder::new().id(space).id(tenant)
}

/// Reads a big-endian `u64` from the last 8 bytes of a key.
pub fn trailing_u64(key: &[u8]) -> Option<u64> {
    let start = key.len().checked_sub(8)?;
    let bytes: [u8; 8] = key.get(start..)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Splits a key made only of `0x00`-terminated identifiers back into its identifiers.
pub fn split_ids(key: &[u8]) -> Vec<String> {
    key.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Key of a space: `space`.
pub fn space(space: &str) -> Vec<u8> {
    KeyBuilder::new().id(space).build()
}

/// Key of a tenant: `space tenant`.
pub fn tenant(space: &str, tenant: &str) -> Vec<u8> {
    tenant_prefix(space, tenant).build()
}

/// Key of an API key record: the 32-byte SHA-256 of the key.
pub fn api_key(sha256: &[u8; 32]) -> Vec<u8> {
    KeyBuilder::new().bytes(sha256).build()
}

/// Key of a webhook registration: `webhook id` (ids are globally unique, the receipt URL
/// carries only the id).
pub fn webhook(id: &str) -> Vec<u8> {
    KeyBuilder::new().id(id).build()
}

/// Key of a flow: `space tenant flow-id`.
pub fn flow(space: &str, tenant: &str, flow_id: &str) -> Vec<u8> {
    tenant_prefix(space, tenant).id(flow_id).build()
}

/// Key of an outbox entry: the big-endian sequence number alone, so the relay reads the
/// outbox in commit order across all tenants.
pub fn outbox(seq: u64) -> Vec<u8> {
    KeyBuilder::new().u64(seq).build()
}

/// Key of a dedup record: `space tenant sha256(idempotency material)`.
pub fn dedup(space: &str, tenant: &str, idempotency_key: &[u8; 32]) -> Vec<u8> {
    tenant_prefix(space, tenant).bytes(idempotency_key).build()
}

/// Key of a routed event: `space tenant seq`.
pub fn event(space: &str, tenant: &str, seq: u64) -> Vec<u8> {
    tenant_prefix(space, tenant).u64(seq).build()
}

/// Key of an execution: `space tenant execution-id`.
pub fn execution(space: &str, tenant: &str, execution_id: &str) -> Vec<u8> {
    tenant_prefix(space, tenant).id(execution_id).build()
}

/// Key of the time index of executions: `space tenant created-ms execution-id`; scanned in
/// reverse for "newest first".
pub fn execution_by_time(space: &str, tenant: &str, created_at_ms: u64, id: &str) -> Vec<u8> {
    tenant_prefix(space, tenant)
        .u64(created_at_ms)
        .id(id)
        .build()
}

/// Key of a journal record: `space tenant execution-id step-index`. DESIGN.md keys the journal
/// by execution id; the tenant prefix is added so that all of a tenant's data is one prefix.
pub fn journal(space: &str, tenant: &str, execution_id: &str, step_index: u32) -> Vec<u8> {
    tenant_prefix(space, tenant)
        .id(execution_id)
        .u32(step_index)
        .build()
}

/// Prefix of all journal records of one execution.
pub fn journal_prefix(space: &str, tenant: &str, execution_id: &str) -> Vec<u8> {
    tenant_prefix(space, tenant).id(execution_id).build()
}

/// Key of a credential: `space tenant credential-id`.
pub fn credential(space: &str, tenant: &str, id: &str) -> Vec<u8> {
    tenant_prefix(space, tenant).id(id).build()
}

/// Key of one direction of an ID map link: `space tenant system entity id other-system`.
pub fn id_link(
    space: &str,
    tenant: &str,
    system: &str,
    entity: &str,
    id: &str,
    other_system: &str,
) -> Vec<u8> {
    id_links_prefix(space, tenant, system, entity, id)
        .into_iter()
        .chain(KeyBuilder::new().id(other_system).build())
        .collect()
}

/// Prefix of every link from one record: `space tenant system entity id`.
pub fn id_links_prefix(space: &str, tenant: &str, system: &str, entity: &str, id: &str) -> Vec<u8> {
    tenant_prefix(space, tenant)
        .id(system)
        .id(entity)
        .id(id)
        .build()
}

/// Key of a sync pair: `space tenant pair-id`.
pub fn sync_pair(space: &str, tenant: &str, id: &str) -> Vec<u8> {
    tenant_prefix(space, tenant).id(id).build()
}

/// Key of a record's sync state: `space tenant pair-id source-id`.
pub fn sync_state(space: &str, tenant: &str, pair: &str, source_id: &str) -> Vec<u8> {
    tenant_prefix(space, tenant).id(pair).id(source_id).build()
}

/// Key of a sync conflict: `space tenant pair-id conflict-id` (ids are time-ordered).
pub fn sync_conflict(space: &str, tenant: &str, pair: &str, id: &str) -> Vec<u8> {
    tenant_prefix(space, tenant).id(pair).id(id).build()
}

/// Prefix of a pair's records in `sync_state` and `sync_conflicts`: `space tenant pair-id`.
pub fn sync_pair_prefix(space: &str, tenant: &str, pair: &str) -> Vec<u8> {
    tenant_prefix(space, tenant).id(pair).build()
}

/// Key of the dedup expiry index: `first-seen-ms` then the dedup key, so pruning reads only
/// the expired range.
pub fn dedup_by_time(first_seen_ms: u64, dedup_key: &[u8]) -> Vec<u8> {
    KeyBuilder::new()
        .u64(first_seen_ms)
        .bytes(dedup_key)
        .build()
}

/// Key of a DLQ item: `space tenant dlq-id` (ids are time-ordered, so keys are too).
pub fn dlq(space: &str, tenant: &str, id: &str) -> Vec<u8> {
    tenant_prefix(space, tenant).id(id).build()
}

/// Key of a large body kept outside its outbox entry: `space tenant event-id`.
pub fn blob(space: &str, tenant: &str, event_id: &str) -> Vec<u8> {
    tenant_prefix(space, tenant).id(event_id).build()
}

/// Key of a step's retry state: `space tenant execution-id step-index`.
pub fn retry(space: &str, tenant: &str, execution_id: &str, step_index: u32) -> Vec<u8> {
    journal(space, tenant, execution_id, step_index)
}

/// Key of a finished loop iteration: `space tenant execution-id step-index iteration`. The
/// iterations of one loop are the contiguous prefix [`journal`] of the loop step, in
/// iteration order.
pub fn iteration(
    space: &str,
    tenant: &str,
    execution_id: &str,
    step_index: u32,
    iteration: u32,
) -> Vec<u8> {
    tenant_prefix(space, tenant)
        .id(execution_id)
        .u32(step_index)
        .u32(iteration)
        .build()
}

/// Key of a waiting step: `space tenant execution-id step-index`.
pub fn wait(space: &str, tenant: &str, execution_id: &str, step_index: u32) -> Vec<u8> {
    journal(space, tenant, execution_id, step_index)
}

/// Key of an event wait: `space tenant source event execution-id step-index`.
pub fn event_wait(
    space: &str,
    tenant: &str,
    source: &str,
    event: &str,
    execution_id: &str,
    step_index: u32,
) -> Vec<u8> {
    event_wait_prefix(space, tenant, source, event)
        .id(execution_id)
        .u32(step_index)
        .build()
}

/// Prefix of the event waits for one source and event name.
pub fn event_wait_prefix(space: &str, tenant: &str, source: &str, event: &str) -> KeyBuilder {
    tenant_prefix(space, tenant).id(source).id(event)
}

/// Key of a timer: `due-ms space tenant execution-id`, so the earliest timers come first.
pub fn timer(due_ms: u64, space: &str, tenant: &str, execution_id: &str) -> Vec<u8> {
    KeyBuilder::new()
        .u64(due_ms)
        .id(space)
        .id(tenant)
        .id(execution_id)
        .build()
}

/// Key of a cron trigger's state: `space tenant flow-id`.
pub fn cron_state(space: &str, tenant: &str, flow_id: &str) -> Vec<u8> {
    flow(space, tenant, flow_id)
}

/// Key of a release version of a flow: `space tenant flow-id version`.
pub fn flow_version(space: &str, tenant: &str, flow_id: &str, version: u32) -> Vec<u8> {
    tenant_prefix(space, tenant)
        .id(flow_id)
        .u32(version)
        .build()
}

/// Key of an environment: `space tenant name`.
pub fn environment(space: &str, tenant: &str, name: &str) -> Vec<u8> {
    tenant_prefix(space, tenant).id(name).build()
}

/// Key of a release: `space tenant environment flow-id`.
pub fn release(space: &str, tenant: &str, environment: &str, flow_id: &str) -> Vec<u8> {
    tenant_prefix(space, tenant)
        .id(environment)
        .id(flow_id)
        .build()
}

/// Key in the `meta` keyspace holding the highest outbox sequence ever assigned (big-endian
/// u64), so sequence numbers and event ids are never reused after the outbox drains.
pub const META_OUTBOX_SEQ: &[u8] = b"outbox_seq";

/// Key in the `meta` keyspace holding the data directory's layout version (one byte; absent
/// means layout 1). See `layout_upgrade` in this crate.
pub const META_LAYOUT_VERSION: &[u8] = b"layout_version";

/// Present once every live cron flow has a [`cron_state`] entry, so the `cron_state` keyspace
/// can serve as the index of scheduled flows (data directories from before the index get it
/// built once).
pub const META_CRON_INDEXED: &[u8] = b"cron_indexed";

/// The identifiers of a key made of identifiers only (`space \0 tenant \0 flow-id \0`), in
/// order; `None` when the key does not end with a terminator or holds invalid UTF-8.
pub fn ids(key: &[u8]) -> Option<Vec<String>> {
    let body = key.strip_suffix(&[0])?;
    body.split(|b| *b == 0)
        .map(|part| String::from_utf8(part.to_vec()).ok())
        .collect()
}

/// Key of a poll registration: `space tenant poll-id`.
pub fn poll(space: &str, tenant: &str, poll_id: &str) -> Vec<u8> {
    tenant_prefix(space, tenant).id(poll_id).build()
}

/// Key of the last content hash a poll saw for one record: `space tenant poll-id record-id`.
pub fn poll_seen(space: &str, tenant: &str, poll_id: &str, record_id: &str) -> Vec<u8> {
    tenant_prefix(space, tenant)
        .id(poll_id)
        .id(record_id)
        .build()
}

/// Key of a pending OAuth2 authorization: its `state` value.
pub fn oauth_pending(state: &str) -> Vec<u8> {
    KeyBuilder::new().id(state).build()
}

#[cfg(test)]
mod tests {

    #[test]
    fn identifier_keys_split_back_into_their_ids() {
        let key = cron_state("sp_1", "acme", "flw_9");
        assert_eq!(
            ids(&key),
            Some(vec![
                "sp_1".to_owned(),
                "acme".to_owned(),
                "flw_9".to_owned()
            ])
        );
        assert_eq!(ids(b"no-terminator"), None);
        assert_eq!(ids(&[0xff, 0]), None);
    }

    use super::*;

    #[test]
    fn tenant_prefixes_do_not_overlap() {
        let a = tenant_prefix("sp", "acme").build();
        let b = tenant_prefix("sp", "acme2").id("x").build();
        assert!(!b.starts_with(&a));
    }

    #[test]
    fn integers_sort_numerically() {
        let k = |n| KeyBuilder::new().id("t").u64(n).build();
        assert!(k(2) < k(256));
        assert!(k(255) < k(256));
        assert_eq!(trailing_u64(&k(77)), Some(77));
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("acme").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("a\0b").is_err());
        assert!(check_id(&"x".repeat(MAX_ID_LEN + 1)).is_err());
        assert_eq!(split_ids(&tenant_prefix("sp", "t").build()), ["sp", "t"]);
    }
}
