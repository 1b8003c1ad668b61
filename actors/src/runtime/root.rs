//! The root supervisor: one per process. Spawns tenant supervisors on first use, forwards
//! work to them, and replaces one that dies without touching the others.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use sluice_storage::{ExecutionRecord, Store};

use super::relay::{Dispatched, DispatchedThrough, OutboxRelay, RelayLimits, RelayMsg};
use super::tenant::{ExecutionRef, TenantArgs, TenantMsg, TenantSupervisor};
use crate::engine::Engine;

/// Messages of the root supervisor.
#[derive(Debug)]
pub enum RootMsg {
    /// Route an outbox entry to its tenant.
    /// Route outbox entries of one tenant, in sequence order, each with its relay permit.
    Route(Vec<Dispatched>),
    /// A tenant's flows changed (created, published, archived): reload its routing table.
    FlowsChanged {
        /// Space id.
        space: String,
        /// Tenant id.
        tenant: String,
    },
    /// Stop the tenant supervisors that have been idle for `tenant_idle_after`.
    StopIdleTenants,
    /// Queue an execution to run: one left `pending` or `running` by a previous process, or a
    /// DLQ replay.
    Run(ExecutionRef),
    /// Run an execution that a synchronous call from a running execution waits for, outside
    /// its tenant's concurrency slots, until `until` (see [`TenantMsg::RunCalled`]).
    RunCalled {
        /// The execution.
        exec: ExecutionRef,
        /// When its caller stops waiting.
        until: std::time::Instant,
        /// The call's place under the tenant's bound (see [`TenantMsg::RunCalled`]).
        reservation: super::slot_free::Reservation,
    },
    /// The synchronous caller of an execution stopped waiting for it (see
    /// [`TenantMsg::CallerGone`]).
    CallerGone(ExecutionRef),
}

impl RootMsg {
    /// A [`RootMsg::Run`] for `exec`.
    pub fn run(exec: &ExecutionRecord) -> Self {
        RootMsg::Run(ExecutionRef::of(exec))
    }
}

/// Everything the root needs to build its children.
#[derive(Clone)]
pub struct RootArgs {
    /// The data directory.
    pub store: Store,
    /// Engine shared by all tenants.
    pub engine: Arc<Engine>,
    /// Executions one tenant runs at once.
    pub tenant_concurrency: usize,
    /// Capacity of each of a tenant's four priority lanes.
    pub lane_capacity: usize,
    /// Outbox entries in flight between the relay and the tenants.
    pub relay: RelayLimits,
    /// A tenant supervisor with nothing to do for this long is stopped (its state lives in
    /// storage; the next message for the tenant starts a new one).
    pub tenant_idle_after: std::time::Duration,
    /// Executions each tenant runs outside its slots (read by the execute API).
    pub slot_free_counts: super::slot_free::SlotFreeCounts,
}

/// The root supervisor actor.
pub struct RootSupervisor;

/// Its state: the live tenant supervisors.
pub struct RootState {
    args: RootArgs,
    tenants: HashMap<(String, String), ActorRef<TenantMsg>>,
    relay: Option<ActorRef<RelayMsg>>,
    /// Outlives each relay: a restarted relay reads the outbox from its start again.
    dispatched_through: DispatchedThrough,
}

impl RootState {
    async fn tenant(
        &mut self,
        myself: &ActorRef<RootMsg>,
        space: &str,
        tenant: &str,
    ) -> Result<ActorRef<TenantMsg>, ActorProcessingErr> {
        let key = (space.to_owned(), tenant.to_owned());
        if let Some(r) = self.tenants.get(&key) {
            return Ok(r.clone());
        }
        let args = TenantArgs {
            space: key.0.clone(),
            tenant: key.1.clone(),
            store: self.args.store.clone(),
            engine: self.args.engine.clone(),
            concurrency: self.args.tenant_concurrency,
            lane_capacity: self.args.lane_capacity,
            slot_free_counts: self.args.slot_free_counts.clone(),
        };
        let (actor, _) =
            Actor::spawn_linked(None, TenantSupervisor, args, myself.get_cell()).await?;
        self.tenants.insert(key, actor.clone());
        metrics::gauge!("sluice_tenant_supervisors").set(self.tenants.len() as f64);
        Ok(actor)
    }

    async fn start_relay(&mut self, myself: &ActorRef<RootMsg>) -> Result<(), ActorProcessingErr> {
        let (relay, _) = Actor::spawn_linked(
            None,
            OutboxRelay,
            (
                self.args.store.clone(),
                myself.clone(),
                self.args.relay,
                self.dispatched_through.clone(),
            ),
            myself.get_cell(),
        )
        .await?;
        self.relay = Some(relay);
        Ok(())
    }

    /// Asks each tenant supervisor whether it is idle and stops those that are. Only the root
    /// sends to tenant supervisors, and it waits for each answer, so nothing can have been
    /// sent to a supervisor between its "idle" and its removal: no message is lost.
    async fn stop_idle_tenants(&mut self) {
        let quiet = self.args.tenant_idle_after;
        let mut idle = Vec::new();
        for (key, tenant) in &self.tenants {
            let answer = tenant
                .call(
                    |reply| TenantMsg::IdleFor(quiet, reply),
                    Some(std::time::Duration::from_secs(1)),
                )
                .await;
            if let Ok(ractor::rpc::CallResult::Success(true)) = answer {
                idle.push(key.clone());
            }
        }
        for key in idle {
            if let Some(tenant) = self.tenants.remove(&key) {
                tenant.stop(Some("idle".into()));
            }
        }
        metrics::gauge!("sluice_tenant_supervisors").set(self.tenants.len() as f64);
    }

    fn forget(&mut self, who: &ActorCell) -> bool {
        let before = self.tenants.len();
        self.tenants.retain(|_, r| r.get_id() != who.get_id());
        metrics::gauge!("sluice_tenant_supervisors").set(self.tenants.len() as f64);
        before != self.tenants.len()
    }
}

impl Actor for RootSupervisor {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = RootArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = RootState {
            args,
            tenants: HashMap::new(),
            relay: None,
            dispatched_through: DispatchedThrough::default(),
        };
        state.start_relay(&myself).await?;
        let me = myself.clone();
        let every = (state.args.tenant_idle_after / 2).max(std::time::Duration::from_secs(1));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if me.cast(RootMsg::StopIdleTenants).is_err() {
                    break;
                }
            }
        });
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RootMsg::Route(batch) => {
                let Some(first) = batch.first() else {
                    return Ok(());
                };
                let (space, tenant_id) =
                    (first.entry.space_id.clone(), first.entry.tenant_id.clone());
                let tenant = state.tenant(&myself, &space, &tenant_id).await?;
                tenant.cast(TenantMsg::Route(batch))?;
            }
            RootMsg::FlowsChanged { space, tenant } => {
                if let Some(t) = state.tenants.get(&(space, tenant)) {
                    t.cast(TenantMsg::FlowsChanged)?;
                }
            }
            RootMsg::Run(exec) => {
                let tenant = state.tenant(&myself, &exec.space, &exec.tenant).await?;
                tenant.cast(TenantMsg::Run(exec))?;
            }
            RootMsg::RunCalled {
                exec,
                until,
                reservation,
            } => {
                let tenant = state.tenant(&myself, &exec.space, &exec.tenant).await?;
                tenant.cast(TenantMsg::RunCalled {
                    exec,
                    until,
                    reservation,
                })?;
            }
            RootMsg::CallerGone(exec) => {
                // A stopped supervisor remembers no caller: nothing to tell it.
                if let Some(t) = state.tenants.get(&(exec.space, exec.tenant)) {
                    t.cast(TenantMsg::CallerGone(exec.id))?;
                }
            }
            RootMsg::StopIdleTenants => state.stop_idle_tenants().await,
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(who, reason) => {
                let is_relay = state
                    .relay
                    .as_ref()
                    .is_some_and(|r| r.get_id() == who.get_id());
                if is_relay {
                    tracing::error!(%reason, "outbox relay failed; restarting it");
                    state.start_relay(&myself).await?;
                } else if state.forget(&who) {
                    tracing::error!(%reason, "tenant supervisor failed; it restarts on next use");
                    metrics::counter!("sluice_actor_restarts_total", "actor" => "tenant")
                        .increment(1);
                    // Its mailbox is gone: read the outbox again so nothing it held is lost.
                    if let Some(relay) = &state.relay {
                        relay.cast(RelayMsg::Rewind)?;
                        relay.cast(RelayMsg::Pump)?;
                    }
                }
            }
            SupervisionEvent::ActorTerminated(who, _, _) => {
                state.forget(&who);
            }
            _ => {}
        }
        Ok(())
    }
}
