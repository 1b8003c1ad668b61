//! The tenant supervisor: one per tenant. Normalizes the tenant's events, routes them to its
//! live flows, records the executions they start, and runs those executions — at most
//! `concurrency` at once, picked from four priority lanes ([`PriorityLanes`]).
//!
//! An execution that a synchronous execute call from one of the tenant's running executions
//! waits for ([`TenantMsg::RunCalled`]) runs at once, outside those slots: its caller holds a
//! slot while it waits, so queueing the callee behind the callers could leave it none (every
//! slot held by a caller waiting for an execution that cannot start) until the callers time
//! out. The execute API bounds how many run so per tenant (see [`super::slot_free`]).
//!
//! Routing one entry is one atomic batch: the new executions (`pending`), the event record,
//! and the deletion of the outbox entry (or, for an entry that cannot be normalized, its DLQ
//! item). So an entry is either still in the outbox (and will be routed again) or fully
//! routed; never half.
//!
//! The relay permit of an entry travels with the executions it created and is released when
//! the last of them starts running, so a tenant whose executions cannot keep up stops
//! receiving entries (the relay defers it) while the others keep flowing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use sluice_storage::{
    EventRecord, ExecutionRecord, ExecutionStatus, FlowRecord, FlowStatus, Ks, OutboxEntry, Store,
    WriteSet, keys,
};

use super::event_waits::{self, RecentEvents, SeenEvent};
use super::lanes::PriorityLanes;
use super::relay::{Dispatched, RelayPermit};
use crate::dlq;
use crate::engine::{Engine, RunOutcome};
use crate::flow::{FlowSpec, Plan, plan};
use crate::ids::{execution_id, now_ms};
use crate::pipeline::normalize::json_text;
use crate::pipeline::{normalize, router};

/// Events routed between two yields to the async runtime while a relay page is routed.
const ROUTE_YIELD_EVERY: usize = 16;

/// A pointer to an execution waiting to run (the record itself stays in storage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionRef {
    /// Space id.
    pub space: String,
    /// Tenant id.
    pub tenant: String,
    /// Execution id.
    pub id: String,
    /// Priority 1-4.
    pub priority: u8,
}

impl ExecutionRef {
    /// The reference of `exec`.
    pub fn of(exec: &ExecutionRecord) -> Self {
        Self {
            space: exec.space_id.clone(),
            tenant: exec.tenant_id.clone(),
            id: exec.id.clone(),
            priority: exec.priority,
        }
    }
}

/// Messages of a tenant supervisor.
#[derive(Debug)]
pub enum TenantMsg {
    /// Route outbox entries (in sequence order, one commit for all); each permit is released
    /// once the executions of its entry started.
    Route(Vec<Dispatched>),
    /// Reload the live flows from storage.
    FlowsChanged,
    /// Queue an existing execution (resumed at start-up, or a DLQ replay).
    Run(ExecutionRef),
    /// Run an execution that a synchronous call from one of this tenant's running executions
    /// waits for, outside the concurrency slots (the caller holds one). Until its caller
    /// stops waiting ([`TenantMsg::CallerGone`], or `until` at the latest) every later run of
    /// it, after a wait parked it, starts outside the slots too; a run under way when the
    /// caller stops waiting goes on outside the slots.
    RunCalled {
        /// The execution.
        exec: ExecutionRef,
        /// When its caller stops waiting.
        until: std::time::Instant,
        /// The call's place under the tenant's bound, held until the execution is counted
        /// here.
        reservation: super::slot_free::Reservation,
    },
    /// One synchronous caller of this execution stopped waiting for it (answered, timed
    /// out, or gone), after its [`TenantMsg::RunCalled`]: once the last one has, its later
    /// runs take a slot.
    CallerGone(String),
    /// An execution task ended (normally or not); `parked` when the execution is waiting
    /// and will run again.
    Finished {
        /// The execution id.
        id: String,
        /// It parked on a wait rather than ended.
        parked: bool,
    },
    /// An execution parked on a wait for an event: check the events that arrived as the wait
    /// began.
    Parked(ExecutionRef),
    /// Answers true when the supervisor has nothing running or queued and has had no other
    /// message for at least the given time (the root then stops it; its state is in storage).
    IdleFor(std::time::Duration, ractor::RpcReplyPort<bool>),
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
    /// Capacity of each priority lane.
    pub lane_capacity: usize,
    /// Where the executions it runs outside its slots are counted for the execute API.
    pub slot_free_counts: super::slot_free::SlotFreeCounts,
}

/// The tenant supervisor actor.
pub struct TenantSupervisor;

/// A live flow, validated.
struct LiveFlow {
    record: FlowRecord,
    plan: Arc<Plan>,
}

/// An execution waiting for a slot; holds its entry's relay permit, if any.
struct Waiting {
    id: String,
    _permit: Option<Arc<RelayPermit>>,
}

/// How long after its callers' longest wait a `called` entry whose `CallerGone` never came is
/// dropped.
const PRUNE_CALLED_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// The synchronous callers waiting for one execution: several when they send one
/// `Idempotency-Key`.
#[derive(Debug, Clone, Copy)]
struct CalledBy {
    /// Callers still waiting (each `RunCalled` adds one, each `CallerGone` removes one).
    callers: usize,
    /// The end of the longest of their waits, at the latest.
    until: std::time::Instant,
}

/// Its state.
pub struct TenantState {
    args: TenantArgs,
    live: Vec<LiveFlow>,
    /// Running executions, with their flow id.
    running: HashMap<String, String>,
    /// The running executions that hold no concurrency slot (see [`TenantMsg::RunCalled`]).
    slot_free: HashSet<String>,
    /// Executions synchronous callers wait for; an entry goes when its execution ends or
    /// its last caller stops waiting.
    called: HashMap<String, CalledBy>,
    /// Executions in `slot_free` whose caller stopped waiting (so not in `called`).
    abandoned: usize,
    /// The count last published to `slot_free_counts` (`usize::MAX` before the first).
    published: usize,
    /// Executions in `flow_queue`.
    flow_held: HashSet<String>,
    /// When `called` is next pruned of entries past their caller's wait.
    prune_called_at: std::time::Instant,
    /// Called executions to start at once (outside the slots).
    called_ready: VecDeque<String>,
    /// Running executions per flow id (for the flows' concurrency limits).
    flow_running: HashMap<String, usize>,
    /// Executions held back by their flow's concurrency limit, per flow id, in order.
    flow_queue: HashMap<String, VecDeque<ExecutionRecord>>,
    /// The last events routed, for event waits that are just beginning.
    recent: RecentEvents,
    /// Executions asked to run while running: queued again when their run ends.
    rerun: HashMap<String, ExecutionRef>,
    queued: HashSet<String>,
    lanes: PriorityLanes<Waiting>,
    /// When the last message other than an idle check arrived.
    last_active: std::time::Instant,
    /// A lane was full and some executions were left in storage only; sweep for them when
    /// the lanes drain.
    overflowed: bool,
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
        let lanes = PriorityLanes::new(args.lane_capacity);
        let mut state = TenantState {
            args,
            live: Vec::new(),
            running: HashMap::new(),
            slot_free: HashSet::new(),
            called: HashMap::new(),
            abandoned: 0,
            published: usize::MAX,
            flow_held: HashSet::new(),
            prune_called_at: std::time::Instant::now(),
            called_ready: VecDeque::new(),
            flow_running: HashMap::new(),
            flow_queue: HashMap::new(),
            recent: RecentEvents::default(),
            rerun: HashMap::new(),
            queued: HashSet::new(),
            lanes,
            last_active: std::time::Instant::now(),
            overflowed: false,
        };
        state.reload_flows()?;
        // A supervisor that failed left its count behind; its runs report to nobody now.
        state.publish_slot_free();
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for p in 1..=4u8 {
            let depth = state.lanes.depth(p);
            if depth > 0 {
                metrics::gauge!("sluice_queue_depth", "priority" => priority_label(p))
                    .decrement(depth as f64);
            }
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let TenantMsg::IdleFor(quiet, reply) = message {
            let idle = state.running.is_empty()
                && state.lanes.is_empty()
                && state.called_ready.is_empty()
                && !state.awaits_callers()
                && state.rerun.is_empty()
                && state.flow_queue.values().all(VecDeque::is_empty)
                && state.last_active.elapsed() >= quiet;
            let _ = reply.send(idle);
            return Ok(());
        }
        state.last_active = std::time::Instant::now();
        match message {
            TenantMsg::IdleFor(..) => {}
            TenantMsg::Route(batch) => {
                let mut writes = WriteSet::new();
                let mut started = Vec::with_capacity(batch.len());
                let mut resumed = Vec::new();
                let mut routed = 0;
                for (n, dispatched) in batch.into_iter().enumerate() {
                    let Dispatched {
                        entry,
                        permit,
                        first_dispatch,
                    } = dispatched;
                    // Routing a page is CPU work (parse, match, encode) on the async workers
                    // that also answer webhooks: give them a turn every few events so a
                    // 256-entry page never holds a worker for milliseconds.
                    if n > 0 && n % ROUTE_YIELD_EVERY == 0 {
                        tokio::task::yield_now().await;
                    }
                    if let Some((created, woken)) =
                        state.route(&entry, first_dispatch, &mut writes).await?
                    {
                        routed += 1;
                        started.push((created, permit));
                        resumed.extend(woken);
                    }
                }
                // One durable commit for the whole batch: executions, event records, DLQ
                // items and the outbox deletions land together or not at all.
                state.args.store.commit(writes).await?;
                metrics::gauge!("sluice_outbox_pending").decrement(f64::from(routed));
                for (created, permit) in started {
                    let permit = Arc::new(permit);
                    for exec in created {
                        state.enqueue(ExecutionRef::of(&exec), Some(permit.clone()));
                    }
                }
                for exec in resumed {
                    state.enqueue(exec, None);
                }
            }
            TenantMsg::Parked(exec) => {
                if state.check_recent_events(&exec).await? {
                    state.enqueue(exec, None);
                }
            }
            TenantMsg::FlowsChanged => state.reload_flows()?,
            TenantMsg::Run(exec) => state.enqueue(exec, None),
            TenantMsg::RunCalled {
                exec,
                until,
                reservation,
            } => {
                // Entries past their callers' longest wait whose `CallerGone` never came (a
                // cast, lost if this supervisor was replaced meanwhile), at most once a second.
                // Only well past it: a caller that timed out sends its `CallerGone` right
                // after `until`, and pruned first, that late message would count against a
                // new caller's entry for the same execution.
                let now = std::time::Instant::now();
                if now >= state.prune_called_at {
                    let (slot_free, abandoned) = (&state.slot_free, &mut state.abandoned);
                    state.called.retain(|id, by| {
                        let waited_for = now < by.until + PRUNE_CALLED_AFTER;
                        if !waited_for && slot_free.contains(id) {
                            *abandoned += 1;
                        }
                        waited_for
                    });
                    state.prune_called_at = now + std::time::Duration::from_secs(1);
                }
                match state.called.get_mut(&exec.id) {
                    Some(by) => {
                        by.callers += 1;
                        by.until = by.until.max(until);
                    }
                    None => {
                        state
                            .called
                            .insert(exec.id.clone(), CalledBy { callers: 1, until });
                        if state.slot_free.contains(&exec.id) {
                            // Running outside the slots after an earlier caller stopped
                            // waiting.
                            state.abandoned = state.abandoned.saturating_sub(1);
                        }
                    }
                }
                state.enqueue(exec, None);
                state.start_ready(&myself);
                state.publish_slot_free();
                // Counted in `called` now.
                drop(reservation);
            }
            TenantMsg::CallerGone(id) => {
                let last = state.called.get_mut(&id).is_some_and(|by| {
                    by.callers = by.callers.saturating_sub(1);
                    by.callers == 0
                });
                if last {
                    state.called.remove(&id);
                    if state.slot_free.contains(&id) {
                        state.abandoned += 1;
                    }
                }
                state.publish_slot_free();
            }
            TenantMsg::Finished { id, parked } => {
                if state.slot_free.remove(&id) && !state.called.contains_key(&id) {
                    state.abandoned = state.abandoned.saturating_sub(1);
                }
                if !parked {
                    state.called.remove(&id);
                }
                state.publish_slot_free();
                if let Some(flow) = state.running.remove(&id) {
                    state.release_flow_slot(&myself, &flow);
                }
                if let Some(again) = state.rerun.remove(&id) {
                    state.enqueue(again, None);
                }
                if state.overflowed && state.lanes.is_empty() {
                    state.sweep()?;
                }
            }
        }
        state.start_ready(&myself);
        Ok(())
    }
}

fn priority_label(p: u8) -> &'static str {
    match p {
        1 => "P1",
        2 => "P2",
        3 => "P3",
        _ => "P4",
    }
}

impl TenantState {
    fn reload_flows(&mut self) -> Result<(), ActorProcessingErr> {
        let flows = self.args.store.flows(&self.args.space, &self.args.tenant)?;
        let store = &self.args.store;
        let mut live = Vec::new();
        for f in flows.into_iter().filter(|f| f.status == FlowStatus::Live) {
            // What runs is the latest release version; a flow published before releases
            // were kept runs its record.
            let release =
                crate::flow::versions::live(store, &self.args.space, &self.args.tenant, &f.id)?
                    .unwrap_or(f);
            live.push(release);
        }
        self.live = live
            .into_iter()
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

    fn enqueue(&mut self, exec: ExecutionRef, permit: Option<Arc<RelayPermit>>) {
        if self.running.contains_key(&exec.id) {
            // Something changed while it runs (a wait ended as it was parking): run it again
            // once this run ends, so the change is not lost.
            self.rerun.insert(exec.id.clone(), exec);
            return;
        }
        if self.flow_held.contains(&exec.id) {
            // Held back by its flow's limit: it runs when its turn comes.
            return;
        }
        if self.is_called(&exec.id) {
            // Even when it is in a lane already (left by a previous process, resumed at
            // start-up): started now, that entry finds it running and is skipped.
            if !self.called_ready.contains(&exec.id) {
                self.called_ready.push_back(exec.id);
            }
            return;
        }
        if self.queued.contains(&exec.id) {
            return;
        }
        let waiting = Waiting {
            id: exec.id.clone(),
            _permit: permit,
        };
        match self.lanes.push(exec.priority, waiting) {
            Ok(()) => {
                self.queued.insert(exec.id);
                metrics::gauge!("sluice_queue_depth", "priority" => priority_label(exec.priority))
                    .increment(1.0);
            }
            // Still `pending` in storage; the sweep finds it when the lanes drain.
            Err(_) => self.overflowed = true,
        }
    }

    /// Re-queues this tenant's unfinished executions that are neither running nor queued.
    fn sweep(&mut self) -> Result<(), ActorProcessingErr> {
        self.overflowed = false;
        let unfinished = self
            .args
            .store
            .unfinished_executions_of(&self.args.space, &self.args.tenant)?;
        for exec in unfinished {
            self.enqueue(ExecutionRef::of(&exec), None);
        }
        Ok(())
    }

    /// Whether a synchronous caller still waits for execution `id`.
    fn is_called(&self, id: &str) -> bool {
        self.called
            .get(id)
            .is_some_and(|by| std::time::Instant::now() < by.until)
    }

    /// Whether a synchronous caller still waits for any execution of this tenant (one parked
    /// on a wait must find its entry when it resumes).
    fn awaits_callers(&self) -> bool {
        let now = std::time::Instant::now();
        self.called.values().any(|by| now < by.until)
    }

    /// Starts the called executions at once, then queued executions while slots are free.
    fn start_ready(&mut self, myself: &ActorRef<TenantMsg>) {
        while let Some(id) = self.called_ready.pop_front() {
            self.load_and_spawn(myself, &id);
        }
        while self.slots_in_use() < self.args.concurrency.max(1) {
            let Some((priority, waiting, waited)) = self.lanes.pop() else {
                return;
            };
            let label = priority_label(priority);
            metrics::gauge!("sluice_queue_depth", "priority" => label).decrement(1.0);
            metrics::histogram!("sluice_queue_wait_seconds", "priority" => label)
                .record(waited.as_secs_f64());
            self.queued.remove(&waiting.id);
            self.load_and_spawn(myself, &waiting.id);
            // `waiting` (and with it the entry's relay permit, once its last execution has
            // started) is dropped here.
        }
    }

    /// Loads queued execution `id` and runs it unless it is running already or has ended
    /// meanwhile.
    fn load_and_spawn(&mut self, myself: &ActorRef<TenantMsg>, id: &str) {
        if self.running.contains_key(id) {
            return;
        }
        match self
            .args
            .store
            .execution(&self.args.space, &self.args.tenant, id)
        {
            Ok(Some(exec)) if !exec.status.is_terminal() => self.spawn_run(myself, exec),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(execution = %id, error = %e, "cannot load a queued execution");
                self.overflowed = true;
            }
        }
    }

    /// A flow's execution ended: frees its place under the flow's limit and starts the next
    /// one held back, if the tenant has a slot for it (the one that ended may have run
    /// outside the slots); otherwise that one queues for a slot again.
    fn release_flow_slot(&mut self, myself: &ActorRef<TenantMsg>, flow: &str) {
        if let Some(n) = self.flow_running.get_mut(flow) {
            *n = n.saturating_sub(1);
        }
        let next = self.flow_queue.get_mut(flow).and_then(VecDeque::pop_front);
        if let Some(exec) = next {
            self.flow_held.remove(&exec.id);
            if self.is_called(&exec.id) || self.slots_in_use() < self.args.concurrency.max(1) {
                self.spawn_run(myself, exec);
            } else {
                self.enqueue(ExecutionRef::of(&exec), None);
            }
        }
    }

    /// Publishes how many executions this tenant runs, or will run, outside its slots: those
    /// callers wait for (running, parked, or held by their flow's limit) and those still
    /// running after their caller stopped waiting.
    fn publish_slot_free(&mut self) {
        let count = self.called.len() + self.abandoned;
        // Every execution's end comes here: publish only changes.
        if count != self.published {
            self.args
                .slot_free_counts
                .publish(&self.args.space, &self.args.tenant, count);
            self.published = count;
        }
    }

    /// Running executions that hold a slot.
    fn slots_in_use(&self) -> usize {
        self.running.len().saturating_sub(self.slot_free.len())
    }

    /// Checks the remembered events against the open event waits of a parked execution and
    /// ends those that match; true when one did.
    async fn check_recent_events(
        &mut self,
        exec: &ExecutionRef,
    ) -> Result<bool, ActorProcessingErr> {
        let store = self.args.store.clone();
        let Some(record) = store.execution(&exec.space, &exec.tenant, &exec.id)? else {
            return Ok(false);
        };
        let plan = self.plan_for(&record)?;
        let mut resolved = false;
        for wait in store.waits(&exec.space, &exec.tenant, &exec.id)? {
            if wait.kind != "event" || wait.resolution.is_some() {
                continue;
            }
            let Some(ev) = plan
                .spec
                .steps
                .get(wait.index as usize)
                .and_then(|s| s.event.clone())
            else {
                continue;
            };
            let Some(ew) = store
                .event_waits(&exec.space, &exec.tenant, &ev.source, &ev.event)?
                .into_iter()
                .find(|w| w.execution_id == exec.id && w.index == wait.index)
            else {
                continue;
            };
            let hit = self
                .recent
                .matching(&ev.source, &ev.event, &record.event_id, ew.since_ms)
                .find(|e| event_waits::accepts(&ew, e));
            if let Some(event) = hit {
                resolved |=
                    event_waits::resolve(&store, &exec.space, &exec.tenant, &ew, &event).await?;
            }
        }
        Ok(resolved)
    }

    /// Normalizes and routes one entry into `w`; returns the executions it creates and those
    /// whose event wait it ended, or `None` when the entry was already routed (a rewind re-read
    /// it while it was in flight; only an entry that is not at its `first_dispatch` is looked
    /// up in the outbox for that). Ending an event wait is committed on its own.
    async fn route(
        &mut self,
        entry: &OutboxEntry,
        first_dispatch: bool,
        w: &mut WriteSet,
    ) -> Result<Option<(Vec<ExecutionRecord>, Vec<ExecutionRef>)>, ActorProcessingErr> {
        let store = &self.args.store.clone();
        if !first_dispatch && !store.contains(Ks::Outbox, &keys::outbox(entry.seq))? {
            return Ok(None);
        }
        let mut resumed = Vec::new();
        let (space, tenant) = (&self.args.space, &self.args.tenant);
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
        let replayed = match &entry.replay_of {
            Some(id) => store.dlq_item(space, tenant, id)?,
            None => None,
        };
        let body = store.entry_body(entry)?;
        match normalize(entry, &body) {
            Ok(normalized) => {
                event.event_type = normalized.event_type.clone();
                let trigger_json = trigger_text(&body, &normalized.payload);
                for flow in &self.live {
                    if !router::matches(
                        &flow.plan.spec.trigger,
                        &flow.record.name,
                        &normalized,
                        &entry.webhook_id,
                    ) {
                        continue;
                    }
                    let id =
                        execution_id(&entry.idempotency_key, &flow.record.id, flow.record.version);
                    event.execution_ids.push(id.clone());
                    if store.contains(Ks::Executions, &keys::execution(space, tenant, &id))? {
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
                        trigger_json: trigger_json.to_string(),
                        // The input is the trigger: stored once (see `ExecutionRecord`).
                        input_json: String::new(),
                        created_at_ms: now_ms(),
                        started_at_ms: None,
                        finished_at_ms: None,
                        error_json: None,
                        priority: entry.priority,
                        attempt: 1,
                        replay_of: None,
                        idempotency_key: entry.idempotency_key.clone(),
                        hops: normalized.lineage.hops,
                        correlation_id: normalized.lineage.correlation_id.clone(),
                    };
                    w.put_execution(&exec)?;
                    created.push(exec);
                }
                if let Some(item) = replayed {
                    let detail = format!("routed to {} execution(s)", event.execution_ids.len());
                    w.put_dlq(space, tenant, &dlq::record_outcome(item, true, &detail))?;
                }
                metrics::counter!("sluice_events_routed_total", "source" => entry.connector.clone())
                    .increment(1);
                self.recent.push(
                    &normalized.event_id,
                    &normalized.source,
                    &normalized.event_type,
                    normalized.received_at_ms,
                    trigger_json,
                );
                let waits =
                    store.event_waits(space, tenant, &normalized.source, &normalized.event_type)?;
                if !waits.is_empty() {
                    let seen = SeenEvent {
                        event_id: normalized.event_id,
                        source: normalized.source,
                        event_type: normalized.event_type,
                        received_at_ms: normalized.received_at_ms,
                        payload: normalized.payload,
                    };
                    for w in waits {
                        if event_waits::accepts(&w, &seen)
                            && event_waits::resolve(store, space, tenant, &w, &seen).await?
                        {
                            resumed.push(ExecutionRef {
                                space: space.clone(),
                                tenant: tenant.clone(),
                                id: w.execution_id.clone(),
                                priority: w.priority,
                            });
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(event = %entry.event_id, error = %e, "event dead-lettered");
                event.error = Some(e.to_string());
                let item = match replayed {
                    Some(item) => dlq::record_outcome(item, false, &format!("failed: {e}")),
                    None => {
                        metrics::gauge!("sluice_dlq_depth").increment(1.0);
                        dlq::for_event(entry, &body, &e.to_string())
                    }
                };
                w.put_dlq(space, tenant, &item)?;
                metrics::counter!("sluice_dlq_total", "kind" => "event").increment(1);
            }
        }
        w.put_event(space, tenant, &event)?;
        w.delete_outbox(entry);
        Ok(Some((created, resumed)))
    }

    fn spawn_run(&mut self, myself: &ActorRef<TenantMsg>, exec: ExecutionRecord) {
        // Asked again while it runs or waits for its flow's limit (a repeated call, a sweep):
        // that run covers it.
        if self.running.contains_key(&exec.id) || self.flow_held.contains(&exec.id) {
            return;
        }
        let plan = match self.plan_for(&exec) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(execution = %exec.id, error = %e, "cannot load the flow of an execution");
                return;
            }
        };
        if let Some(limit) = plan.spec.concurrency {
            let n = self.flow_running.entry(exec.flow_id.clone()).or_default();
            if *n >= limit as usize {
                // Held back by the flow's limit; started when one of its executions ends.
                self.flow_held.insert(exec.id.clone());
                self.flow_queue
                    .entry(exec.flow_id.clone())
                    .or_default()
                    .push_back(exec);
                return;
            }
            *n += 1;
        }
        if self.is_called(&exec.id) {
            // Already counted (in `called`).
            self.slot_free.insert(exec.id.clone());
        }
        self.running.insert(exec.id.clone(), exec.flow_id.clone());
        let engine = self.args.engine.clone();
        let me = myself.clone();
        let parked_ref = ExecutionRef::of(&exec);
        tokio::spawn(async move {
            let id = exec.id.clone();
            let fallback = exec.clone();
            let run_engine = engine.clone();
            let run_plan = plan.clone();
            let outcome = tokio::spawn(async move { run_engine.run(exec, &run_plan).await }).await;
            // Still to run again (or running elsewhere): keeps its place outside the slots.
            let parked = matches!(
                outcome,
                Ok(Ok(RunOutcome::Parked { .. } | RunOutcome::AlreadyRunning))
            );
            match outcome {
                Ok(Ok(RunOutcome::Parked {
                    event_waits: true, ..
                })) => {
                    let _ = me.cast(TenantMsg::Parked(parked_ref));
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::error!(execution = %id, error = %e, "storage failed during execution; it resumes at next start");
                }
                Err(join) => {
                    tracing::error!(execution = %id, error = %join, "execution task panicked");
                    if let Err(e) = engine.fail(fallback, &plan, &join.to_string()).await {
                        tracing::error!(execution = %id, error = %e, "could not record a panicked execution");
                    }
                }
            }
            let _ = me.cast(TenantMsg::Finished { id, parked });
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
        let record = crate::flow::versions::find(
            &self.args.store,
            &exec.space_id,
            &exec.tenant_id,
            &exec.flow_id,
            exec.flow_version,
        )?
        .ok_or("flow version no longer stored")?;
        Ok(Arc::new(load_plan(&record)?))
    }
}

fn load_plan(record: &FlowRecord) -> Result<Plan, ActorProcessingErr> {
    let spec: FlowSpec = serde_json::from_str(&record.spec_json)?;
    Ok(plan(spec)?)
}

/// The trigger of an event's executions as JSON text: the body's own text, which
/// [`normalize`] parsed into `payload`, so it parses to the same value (numbers exact, the
/// last of duplicate keys winning, as before). Serializing `payload` again instead cost more
/// instructions than parsing it (callgrind: ~17 k per 1.7 KB webhook, over a third of
/// routing). A body that parsed is UTF-8; serializing remains only as a fallback.
fn trigger_text(body: &[u8], payload: &serde_json::Value) -> Arc<str> {
    match std::str::from_utf8(json_text(body)) {
        Ok(text) => {
            debug_assert_eq!(
                serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .as_ref(),
                Some(payload),
                "the body's text parses to the normalized payload"
            );
            text.into()
        }
        Err(_) => payload.to_string().into(),
    }
}
