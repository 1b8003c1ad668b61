//! [`WriteSet`]: the puts and deletes of one atomic batch, with typed helpers that know each
//! record's key layout so callers never build keys by hand.

use crate::codec::{Record, encode};
use crate::error::Result;
use crate::keys;
use crate::records::{
    ApiKeyRecord, EventRecord, ExecutionRecord, FlowRecord, SpaceRecord, StepRecord, TenantRecord,
    WebhookRecord,
};
use crate::store::Ks;

/// One write inside a batch.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Put(Ks, Vec<u8>, Vec<u8>),
    Delete(Ks, Vec<u8>),
}

/// The writes of one atomic batch. Build it, then hand it to
/// [`Store::commit`](crate::Store::commit): either every write lands or none does.
#[derive(Debug, Default, Clone)]
pub struct WriteSet {
    pub(crate) ops: Vec<Op>,
}

impl WriteSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Number of writes.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Encodes `record` and puts it at `key` in `ks`.
    ///
    /// # Errors
    /// [`crate::StorageError::Encode`].
    pub fn put<R: Record>(&mut self, ks: Ks, key: Vec<u8>, record: &R) -> Result<&mut Self> {
        self.ops.push(Op::Put(ks, key, encode(record)?));
        Ok(self)
    }

    /// Deletes `key` from `ks`.
    pub fn delete(&mut self, ks: Ks, key: Vec<u8>) -> &mut Self {
        self.ops.push(Op::Delete(ks, key));
        self
    }

    /// Puts a space.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_space(&mut self, r: &SpaceRecord) -> Result<&mut Self> {
        self.put(Ks::Spaces, keys::space(&r.id), r)
    }

    /// Puts a tenant.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_tenant(&mut self, r: &TenantRecord) -> Result<&mut Self> {
        self.put(Ks::Tenants, keys::tenant(&r.space_id, &r.id), r)
    }

    /// Puts API key metadata under the SHA-256 of the key.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_api_key(&mut self, sha256: &[u8; 32], r: &ApiKeyRecord) -> Result<&mut Self> {
        self.put(Ks::ApiKeys, keys::api_key(sha256), r)
    }

    /// Puts a webhook registration.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_webhook(&mut self, r: &WebhookRecord) -> Result<&mut Self> {
        self.put(Ks::Webhooks, keys::webhook(&r.id), r)
    }

    /// Puts a flow.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_flow(&mut self, space: &str, r: &FlowRecord) -> Result<&mut Self> {
        self.put(Ks::Flows, keys::flow(space, &r.tenant_id, &r.id), r)
    }

    /// Creates an execution: its state, its payload (trigger and input, never rewritten), its
    /// newest-first index entry and its entry in the open-executions index. Later changes go
    /// through [`WriteSet::put_execution_state`].
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_execution(&mut self, r: &ExecutionRecord) -> Result<&mut Self> {
        let key = keys::execution(&r.space_id, &r.tenant_id, &r.id);
        self.ops.push(Op::Put(
            Ks::ExecutionsByTime,
            keys::execution_by_time(&r.space_id, &r.tenant_id, r.created_at_ms, &r.id),
            Vec::new(),
        ));
        self.put(Ks::ExecutionPayloads, key.clone(), &r.payload())?;
        if !r.status.is_terminal() {
            self.ops
                .push(Op::Put(Ks::ExecutionsOpen, key.clone(), Vec::new()));
        }
        self.put_execution_state(r)
    }

    /// Records an execution's new state (status, times, error) without its payload, and takes
    /// it out of the open-executions index once the status is terminal (it entered the index
    /// when created, and a terminal execution never changes again). The execution must have
    /// been created with [`WriteSet::put_execution`]; `Store::open` moves the payloads of
    /// open executions written before the split, so this holds for every execution that can
    /// still change.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_execution_state(&mut self, r: &ExecutionRecord) -> Result<&mut Self> {
        let key = keys::execution(&r.space_id, &r.tenant_id, &r.id);
        if r.status.is_terminal() {
            self.ops.push(Op::Delete(Ks::ExecutionsOpen, key.clone()));
        }
        self.put(Ks::Executions, key, &r.state_only())
    }

    /// Puts a step's journal record.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_step(
        &mut self,
        space: &str,
        tenant: &str,
        execution_id: &str,
        r: &StepRecord,
    ) -> Result<&mut Self> {
        self.put(
            Ks::Journal,
            keys::journal(space, tenant, execution_id, r.index),
            r,
        )
    }

    /// Records what became of an event once routed.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_event(&mut self, space: &str, tenant: &str, r: &EventRecord) -> Result<&mut Self> {
        self.put(Ks::Events, keys::event(space, tenant, r.seq), r)
    }

    /// Puts a dead-lettered item.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_dlq(
        &mut self,
        space: &str,
        tenant: &str,
        r: &crate::DlqRecord,
    ) -> Result<&mut Self> {
        self.put(Ks::Dlq, keys::dlq(space, tenant, &r.id), r)
    }

    /// Puts a credential.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_credential(
        &mut self,
        space: &str,
        r: &crate::CredentialRecord,
    ) -> Result<&mut Self> {
        self.put(
            Ks::Credentials,
            keys::credential(space, &r.tenant_id, &r.id),
            r,
        )
    }

    /// Links two records both ways in this batch: `a` → `b` and `b` → `a`.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_id_link(
        &mut self,
        space: &str,
        tenant: &str,
        a: &crate::IdLinkRecord,
    ) -> Result<&mut Self> {
        let b = crate::IdLinkRecord {
            system: a.other_system.clone(),
            entity: a.other_entity.clone(),
            id: a.other_id.clone(),
            other_system: a.system.clone(),
            other_entity: a.entity.clone(),
            other_id: a.id.clone(),
            created_at_ms: a.created_at_ms,
            updated_at_ms: a.updated_at_ms,
        };
        for r in [a, &b] {
            self.put(
                Ks::IdMaps,
                keys::id_link(space, tenant, &r.system, &r.entity, &r.id, &r.other_system),
                r,
            )?;
        }
        Ok(self)
    }

    /// Puts a sync pair.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_sync_pair(&mut self, space: &str, r: &crate::SyncPairRecord) -> Result<&mut Self> {
        self.put(
            Ks::SyncPairs,
            keys::sync_pair(space, &r.tenant_id, &r.id),
            r,
        )
    }

    /// Puts a record's sync state.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_sync_state(
        &mut self,
        space: &str,
        tenant: &str,
        r: &crate::SyncStateRecord,
    ) -> Result<&mut Self> {
        self.put(
            Ks::SyncState,
            keys::sync_state(space, tenant, &r.pair_id, &r.source_id),
            r,
        )
    }

    /// Puts a sync conflict.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_sync_conflict(
        &mut self,
        space: &str,
        tenant: &str,
        r: &crate::SyncConflictRecord,
    ) -> Result<&mut Self> {
        self.put(
            Ks::SyncConflicts,
            keys::sync_conflict(space, tenant, &r.pair_id, &r.id),
            r,
        )
    }

    /// Deletes a DLQ item.
    pub fn delete_dlq(&mut self, space: &str, tenant: &str, id: &str) -> &mut Self {
        self.delete(Ks::Dlq, keys::dlq(space, tenant, id))
    }

    /// Removes an outbox entry once the work it caused is recorded (the "done" mark), and
    /// its claim-checked body if it had one.
    pub fn delete_outbox(&mut self, entry: &crate::OutboxEntry) -> &mut Self {
        if entry.body_in_blob {
            self.delete(
                Ks::Blobs,
                keys::blob(&entry.space_id, &entry.tenant_id, &entry.event_id),
            );
        }
        self.delete(Ks::Outbox, keys::outbox(entry.seq))
    }

    /// Puts a waiting step.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_wait(
        &mut self,
        space: &str,
        tenant: &str,
        execution_id: &str,
        r: &crate::WaitRecord,
    ) -> Result<&mut Self> {
        self.put(
            Ks::Waits,
            keys::wait(space, tenant, execution_id, r.index),
            r,
        )
    }

    /// Puts a step's retry state.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_retry(
        &mut self,
        space: &str,
        tenant: &str,
        execution_id: &str,
        r: &crate::RetryRecord,
    ) -> Result<&mut Self> {
        self.put(
            Ks::Retries,
            keys::retry(space, tenant, execution_id, r.index),
            r,
        )
    }

    /// Deletes a step's retry state.
    pub fn delete_retry(
        &mut self,
        space: &str,
        tenant: &str,
        execution_id: &str,
        index: u32,
    ) -> &mut Self {
        self.delete(Ks::Retries, keys::retry(space, tenant, execution_id, index))
    }

    /// Puts a finished loop iteration of step `index`.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_iteration(
        &mut self,
        space: &str,
        tenant: &str,
        execution_id: &str,
        index: u32,
        r: &crate::IterationRecord,
    ) -> Result<&mut Self> {
        self.put(
            Ks::Iterations,
            keys::iteration(space, tenant, execution_id, index, r.iteration),
            r,
        )
    }

    /// Deletes a finished loop iteration of step `index`.
    pub fn delete_iteration(
        &mut self,
        space: &str,
        tenant: &str,
        execution_id: &str,
        index: u32,
        iteration: u32,
    ) -> &mut Self {
        self.delete(
            Ks::Iterations,
            keys::iteration(space, tenant, execution_id, index, iteration),
        )
    }

    /// Deletes a waiting step.
    pub fn delete_wait(
        &mut self,
        space: &str,
        tenant: &str,
        execution_id: &str,
        index: u32,
    ) -> &mut Self {
        self.delete(Ks::Waits, keys::wait(space, tenant, execution_id, index))
    }

    /// Puts an event wait's index entry.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_event_wait(
        &mut self,
        space: &str,
        tenant: &str,
        source: &str,
        event: &str,
        r: &crate::EventWaitRecord,
    ) -> Result<&mut Self> {
        self.put(
            Ks::EventWaits,
            keys::event_wait(space, tenant, source, event, &r.execution_id, r.index),
            r,
        )
    }

    /// Deletes an event wait's index entry.
    pub fn delete_event_wait(
        &mut self,
        space: &str,
        tenant: &str,
        source: &str,
        event: &str,
        execution_id: &str,
        index: u32,
    ) -> &mut Self {
        self.delete(
            Ks::EventWaits,
            keys::event_wait(space, tenant, source, event, execution_id, index),
        )
    }

    /// Puts a durable timer.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_timer(&mut self, r: &crate::TimerRecord) -> Result<&mut Self> {
        self.put(
            Ks::Timers,
            keys::timer(r.due_ms, &r.space_id, &r.tenant_id, &r.execution_id),
            r,
        )
    }

    /// Deletes a durable timer.
    pub fn delete_timer(&mut self, r: &crate::TimerRecord) -> &mut Self {
        self.delete(
            Ks::Timers,
            keys::timer(r.due_ms, &r.space_id, &r.tenant_id, &r.execution_id),
        )
    }

    /// Puts a cron trigger's state.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_cron_state(
        &mut self,
        space: &str,
        tenant: &str,
        flow_id: &str,
        r: &crate::CronStateRecord,
    ) -> Result<&mut Self> {
        self.put(Ks::CronState, keys::cron_state(space, tenant, flow_id), r)
    }

    /// Records that the `cron_state` keyspace indexes every live cron flow
    /// ([`keys::META_CRON_INDEXED`]).
    pub fn mark_cron_indexed(&mut self) -> &mut Self {
        self.ops.push(Op::Put(
            Ks::Meta,
            keys::META_CRON_INDEXED.to_vec(),
            Vec::new(),
        ));
        self
    }

    /// Puts an immutable release version of a flow (`r.version`).
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_flow_version(&mut self, space: &str, r: &FlowRecord) -> Result<&mut Self> {
        self.put(
            Ks::FlowVersions,
            keys::flow_version(space, &r.tenant_id, &r.id, r.version),
            r,
        )
    }

    /// Puts an environment.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_environment(
        &mut self,
        space: &str,
        tenant: &str,
        r: &crate::EnvironmentRecord,
    ) -> Result<&mut Self> {
        self.put(
            Ks::Environments,
            keys::environment(space, tenant, &r.name),
            r,
        )
    }

    /// Puts a release.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn put_release(
        &mut self,
        space: &str,
        tenant: &str,
        r: &crate::ReleaseRecord,
    ) -> Result<&mut Self> {
        self.put(
            Ks::Releases,
            keys::release(space, tenant, &r.environment, &r.flow_id),
            r,
        )
    }
}
