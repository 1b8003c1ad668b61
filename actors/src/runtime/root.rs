//! The root supervisor: one per process. Spawns tenant supervisors on first use, forwards
//! work to them, and replaces one that dies without touching the others.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use sluice_storage::{ExecutionRecord, OutboxEntry, Store};

use super::relay::{OutboxRelay, RelayLimits, RelayMsg, RelayPermit};
use super::tenant::{ExecutionRef, TenantArgs, TenantMsg, TenantSupervisor};
use crate::engine::Engine;

/// Messages of the root supervisor.
#[derive(Debug)]
pub enum RootMsg {
    /// Route an outbox entry to its tenant.
    Route(Box<OutboxEntry>, RelayPermit),
    /// A tenant's flows changed (created, published, archived): reload its routing table.
    FlowsChanged {
        /// Space id.
        space: String,
        /// Tenant id.
        tenant: String,
    },
    /// Queue an execution to run: one left `pending` or `running` by a previous process, or a
    /// DLQ replay.
    Run(ExecutionRef),
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
}

/// The root supervisor actor.
pub struct RootSupervisor;

/// Its state: the live tenant supervisors.
pub struct RootState {
    args: RootArgs,
    tenants: HashMap<(String, String), ActorRef<TenantMsg>>,
    relay: Option<ActorRef<RelayMsg>>,
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
            (self.args.store.clone(), myself.clone(), self.args.relay),
            myself.get_cell(),
        )
        .await?;
        self.relay = Some(relay);
        Ok(())
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
        };
        state.start_relay(&myself).await?;
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RootMsg::Route(entry, permit) => {
                let tenant = state
                    .tenant(&myself, &entry.space_id, &entry.tenant_id)
                    .await?;
                tenant.cast(TenantMsg::Route(entry, permit))?;
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
