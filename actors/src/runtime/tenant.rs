//! The tenant supervisor: one per tenant. Normalizes the tenant's events, routes them to its
//! live flows, records the executions they start, and runs those executions with a bounded
//! concurrency.
//!
//! Routing one entry is one atomic batch: the new executions (`pending`), the event record,
//! and the deletion of the outbox entry. So an entry is either still in the outbox (and will
//! be routed again) or fully routed; never half.

use std::collections::HashSet;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use sluice_storage::{
    DlqRecord, EventRecord, ExecutionRecord, ExecutionStatus, FlowRecord, FlowStatus, Ks,
    OutboxEntry, Store, WriteSet, keys,
};
use tokio::sync::Semaphore;

use super::relay::RelayPermit;
use crate::engine::Engine;
use crate::flow::{FlowSpec, Plan, plan};
use crate::ids::{execution_id, now_ms};
use crate::pipeline::{normalize, router};

/// Messages of a tenant supervisor.
#[derive(Debug)]
pub enum TenantMsg {
    /// Route one outbox entry; the permit is released once it is durably routed.
    Route(Box<OutboxEntry>, RelayPermit),
    /// Reload the live flows from storage.
    FlowsChanged,
    /// Run an execution found unfinished at start-up.
    Resume(Box<ExecutionRecord>),
    /// An execution task ended (normally or not).
    Finished(String),
}

/// Arguments of a tenant supervisor.
pub struct TenantArgs {
    /// Space id.
    pub space: String,
    /// Tenant id.
    pub tenant: String,
    /// The data directory.
    pub store: Store,
    /// The engine.
    pub engine: Arc<Engine>,
    /// Executions run at once.
    pub concurrency: usize,
}

/// The tenant supervisor actor.
pub struct TenantSupervisor;

/// A live flow, validated.
struct LiveFlow {
    record: FlowRecord,
    plan: Arc<Plan>,
}

/// Its state.
pub struct TenantState {
    args: TenantArgs,
    live: Vec<LiveFlow>,
    running: HashSet<String>,
    slots: Arc<Semaphore>,
}

impl Actor for TenantSupervisor {
    type Msg = TenantMsg;
    type State = TenantState;
    type Arguments = TenantArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let slots = Arc::new(Semaphore::new(args.concurrency.max(1)));
        let mut state = TenantState {
            args,
            live: Vec::new(),
            running: HashSet::new(),
            slots,
        };
        state.reload_flows()?;
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            TenantMsg::Route(entry, permit) => {
                let started = state.route(&entry).await?;
                drop(permit);
                for exec in started {
                    state.spawn_run(&myself, exec);
                }
            }
            TenantMsg::FlowsChanged => state.reload_flows()?,
            TenantMsg::Resume(exec) => state.spawn_run(&myself, *exec),
            TenantMsg::Finished(id) => {
                state.running.remove(&id);
            }
        }
        Ok(())
    }
}

impl TenantState {
    fn reload_flows(&mut self) -> Result<(), ActorProcessingErr> {
        let flows = self.args.store.flows(&self.args.space, &self.args.tenant)?;
        self.live = flows
            .into_iter()
            .filter(|f| f.status == FlowStatus::Live)
            .filter_map(|record| match load_plan(&record) {
                Ok(plan) => Some(LiveFlow {
                    record,
                    plan: Arc::new(plan),
                }),
                Err(e) => {
                    tracing::error!(flow = %record.id, error = %e, "live flow no longer validates");
                    None
                }
            })
            .collect();
        Ok(())
    }

    /// Normalizes and routes one entry; returns the executions it created.
    async fn route(
        &mut self,
        entry: &OutboxEntry,
    ) -> Result<Vec<ExecutionRecord>, ActorProcessingErr> {
        let store = &self.args.store;
        // Already routed (a rewind re-read it while it was in flight): nothing to do.
        if !store.contains(Ks::Outbox, &keys::outbox(entry.seq))? {
            return Ok(Vec::new());
        }
        let (space, tenant) = (&self.args.space, &self.args.tenant);
        let mut w = WriteSet::new();
        let mut created = Vec::new();
        let mut event = EventRecord {
            event_id: entry.event_id.clone(),
            seq: entry.seq,
            source: entry.connector.clone(),
            event_type: String::new(),
            received_at_ms: entry.received_at_ms,
            idempotency_key: entry.idempotency_key.clone(),
            execution_ids: Vec::new(),
            error: None,
        };
        match normalize(entry) {
            Ok(normalized) => {
                event.event_type = normalized.event_type.clone();
                let trigger_json = normalized.payload.to_string();
                for flow in &self.live {
                    if !router::matches(&flow.plan.spec.trigger, &normalized, &entry.webhook_id) {
                        continue;
                    }
                    let id =
                        execution_id(&entry.idempotency_key, &flow.record.id, flow.record.version);
                    event.execution_ids.push(id.clone());
                    if store.execution(space, tenant, &id)?.is_some() {
                        continue;
                    }
                    let exec = ExecutionRecord {
                        id,
                        space_id: space.clone(),
                        tenant_id: tenant.clone(),
                        flow_id: flow.record.id.clone(),
                        flow_name: flow.record.name.clone(),
                        flow_version: flow.record.version,
                        status: ExecutionStatus::Pending,
                        event_id: entry.event_id.clone(),
                        trigger_kind: flow.plan.spec.trigger.kind().to_owned(),
                        trigger_json: trigger_json.clone(),
                        input_json: trigger_json.clone(),
                        created_at_ms: now_ms(),
                        started_at_ms: None,
                        finished_at_ms: None,
                        error_json: None,
                    };
                    w.put_execution(&exec)?;
                    created.push(exec);
                }
                metrics::counter!("sluice_events_routed_total", "source" => entry.connector.clone())
                    .increment(1);
            }
            Err(e) => {
                tracing::warn!(event = %entry.event_id, error = %e, "event dead-lettered");
                event.error = Some(e.to_string());
                w.put_dlq(
                    space,
                    tenant,
                    &DlqRecord {
                        seq: entry.seq,
                        kind: "event".into(),
                        event_id: entry.event_id.clone(),
                        execution_id: None,
                        source: entry.connector.clone(),
                        headers: entry.headers.clone(),
                        body: entry.body.clone(),
                        error: e.to_string(),
                        attempts: 1,
                        failed_at_ms: now_ms(),
                    },
                )?;
                metrics::counter!("sluice_dlq_total", "kind" => "event").increment(1);
            }
        }
        w.put_event(space, tenant, &event)?;
        w.delete_outbox(entry.seq);
        store.commit(w).await?;
        Ok(created)
    }

    fn spawn_run(&mut self, myself: &ActorRef<TenantMsg>, exec: ExecutionRecord) {
        if !self.running.insert(exec.id.clone()) {
            return;
        }
        let plan = match self.plan_for(&exec) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(execution = %exec.id, error = %e, "cannot load the flow of an execution");
                self.running.remove(&exec.id);
                return;
            }
        };
        let engine = self.args.engine.clone();
        let slots = self.slots.clone();
        let me = myself.clone();
        let store = self.args.store.clone();
        tokio::spawn(async move {
            let id = exec.id.clone();
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            let fallback = exec.clone();
            let outcome = tokio::spawn(async move { engine.run(exec, &plan).await }).await;
            match outcome {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::error!(execution = %id, error = %e, "storage failed during execution; it resumes at next start");
                }
                Err(join) => {
                    tracing::error!(execution = %id, error = %join, "execution task panicked");
                    mark_failed(&store, fallback, &join.to_string()).await;
                }
            }
            let _ = me.cast(TenantMsg::Finished(id));
        });
    }

    fn plan_for(&self, exec: &ExecutionRecord) -> Result<Arc<Plan>, ActorProcessingErr> {
        if let Some(f) = self
            .live
            .iter()
            .find(|f| f.record.id == exec.flow_id && f.record.version == exec.flow_version)
        {
            return Ok(f.plan.clone());
        }
        let record = self
            .args
            .store
            .flow(&exec.space_id, &exec.tenant_id, &exec.flow_id)?
            .ok_or("flow deleted")?;
        Ok(Arc::new(load_plan(&record)?))
    }
}

fn load_plan(record: &FlowRecord) -> Result<Plan, ActorProcessingErr> {
    let spec: FlowSpec = serde_json::from_str(&record.spec_json)?;
    Ok(plan(spec)?)
}

async fn mark_failed(store: &Store, mut exec: ExecutionRecord, reason: &str) {
    exec.status = ExecutionStatus::Failed;
    exec.finished_at_ms = Some(now_ms());
    exec.error_json = Some(
        serde_json::json!({"code": "INTERNAL_ERROR", "statusCode": 500, "message": reason})
            .to_string(),
    );
    let mut w = WriteSet::new();
    if w.put_execution(&exec).is_ok()
        && let Err(e) = store.commit(w).await
    {
        tracing::error!(execution = %exec.id, error = %e, "could not record a panicked execution");
    }
    metrics::counter!("sluice_executions_total", "status" => "failed").increment(1);
}
