//! Typed reads of the engine's records ([`crate::flow_records`]).

use crate::error::{Result, StorageError};
use crate::flow_records::{
    CronFlowState, CronStateRecord, EnvironmentRecord, EventWaitRecord, IterationRecord,
    ReleaseRecord, RetryRecord, TimerRecord, WaitRecord,
};
use crate::keys;
use crate::records::FlowRecord;
use crate::store::{Ks, Store};

impl Store {
    /// The waiting steps of one execution, by step index.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn waits(&self, space: &str, tenant: &str, execution_id: &str) -> Result<Vec<WaitRecord>> {
        self.scan_prefix(
            Ks::Waits,
            &keys::journal_prefix(space, tenant, execution_id),
        )
    }

    /// The retry state of a step parked on a backoff.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn retry(
        &self,
        space: &str,
        tenant: &str,
        execution_id: &str,
        index: u32,
    ) -> Result<Option<RetryRecord>> {
        self.get(
            Ks::Retries,
            &keys::retry(space, tenant, execution_id, index),
        )
    }

    /// The finished iterations of a loop step, in iteration order.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn iterations(
        &self,
        space: &str,
        tenant: &str,
        execution_id: &str,
        index: u32,
    ) -> Result<Vec<IterationRecord>> {
        self.scan_prefix(
            Ks::Iterations,
            &keys::journal(space, tenant, execution_id, index),
        )
    }

    /// One waiting step.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn wait(
        &self,
        space: &str,
        tenant: &str,
        execution_id: &str,
        index: u32,
    ) -> Result<Option<WaitRecord>> {
        self.get(Ks::Waits, &keys::wait(space, tenant, execution_id, index))
    }

    /// The event waits of a tenant for one source and event name.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn event_waits(
        &self,
        space: &str,
        tenant: &str,
        source: &str,
        event: &str,
    ) -> Result<Vec<EventWaitRecord>> {
        self.scan_prefix(
            Ks::EventWaits,
            &keys::event_wait_prefix(space, tenant, source, event).build(),
        )
    }

    /// Timers due at or before `now_ms`, earliest first, at most `limit`.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerRecord>> {
        let end = keys::KeyBuilder::new()
            .u64(now_ms.saturating_add(1))
            .build();
        self.scan_range(Ks::Timers, &[], &end, limit)
    }

    /// The earliest timer, if any.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn next_timer(&self) -> Result<Option<TimerRecord>> {
        Ok(self.first_records(Ks::Timers, 1)?.into_iter().next())
    }

    /// A cron trigger's state.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn cron_state(
        &self,
        space: &str,
        tenant: &str,
        flow_id: &str,
    ) -> Result<Option<CronStateRecord>> {
        self.get(Ks::CronState, &keys::cron_state(space, tenant, flow_id))
    }

    /// Every cron trigger state, with the flow it belongs to, in key order: the index of the
    /// flows the scheduler looks at.
    ///
    /// # Errors
    /// Engine or decode errors, or a key that is not `space tenant flow-id`.
    pub fn cron_states(&self) -> Result<Vec<CronFlowState>> {
        self.scan_keyed::<CronStateRecord>(Ks::CronState)?
            .into_iter()
            .map(
                |(key, state)| match keys::ids(&key).map(<[String; 3]>::try_from) {
                    Some(Ok([space, tenant, flow_id])) => Ok(CronFlowState {
                        space,
                        tenant,
                        flow_id,
                        state,
                    }),
                    _ => Err(StorageError::Decode {
                        kind: "cron state key",
                        reason: format!("{key:?} is not space/tenant/flow-id"),
                    }),
                },
            )
            .collect()
    }

    /// True once the `cron_state` keyspace indexes every live cron flow
    /// ([`keys::META_CRON_INDEXED`]).
    ///
    /// # Errors
    /// Engine errors.
    pub fn cron_indexed(&self) -> Result<bool> {
        self.contains(Ks::Meta, keys::META_CRON_INDEXED)
    }

    /// One immutable release version of a flow.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn flow_version(
        &self,
        space: &str,
        tenant: &str,
        flow_id: &str,
        version: u32,
    ) -> Result<Option<FlowRecord>> {
        self.get(
            Ks::FlowVersions,
            &keys::flow_version(space, tenant, flow_id, version),
        )
    }

    /// Every release version of a flow, oldest first.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn flow_versions(
        &self,
        space: &str,
        tenant: &str,
        flow_id: &str,
    ) -> Result<Vec<FlowRecord>> {
        self.scan_prefix(Ks::FlowVersions, &keys::flow(space, tenant, flow_id))
    }

    /// One environment.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn environment(
        &self,
        space: &str,
        tenant: &str,
        name: &str,
    ) -> Result<Option<EnvironmentRecord>> {
        self.get(Ks::Environments, &keys::environment(space, tenant, name))
    }

    /// A tenant's environments, by name.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn environments(&self, space: &str, tenant: &str) -> Result<Vec<EnvironmentRecord>> {
        self.scan_prefix(
            Ks::Environments,
            &keys::tenant_prefix(space, tenant).build(),
        )
    }

    /// The release of a flow in an environment.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn release(
        &self,
        space: &str,
        tenant: &str,
        environment: &str,
        flow_id: &str,
    ) -> Result<Option<ReleaseRecord>> {
        self.get(
            Ks::Releases,
            &keys::release(space, tenant, environment, flow_id),
        )
    }

    /// A tenant's releases in every environment.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn releases(&self, space: &str, tenant: &str) -> Result<Vec<ReleaseRecord>> {
        self.scan_prefix(Ks::Releases, &keys::tenant_prefix(space, tenant).build())
    }
}
