//! Running one execution: the scheduler. Steps start as soon as their dependencies have
//! finished (independent steps run concurrently); each outcome is journaled before any step
//! that depends on it starts. Step types live in [`super::steps`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_storage::{
    ExecutionRecord, ExecutionStatus, StepRecord, StepStatus, StorageError, Store, TimerRecord,
    WriteSet,
};
use tokio::sync::{Mutex, Notify, broadcast, watch};
use tokio::task::JoinSet;

use super::context::{self, failed_error, record_output, skipped};
use super::step_error::StepError;
use super::steps::action::ActionEnv;
use super::steps::{action, gate, loop_step, notification, wait};
use crate::connector::ActionInvoker;
use crate::dlq;
use crate::flow::{OnError, Plan, Trigger};
use crate::ids::{now_ms, step_idempotency_key};
use crate::json_depth::parse_stored;
use crate::pipeline::hops::Lineage;
use crate::sync::IdMaps;

/// How a call to [`Engine::run`] ended.
#[derive(Debug, Clone)]
pub enum RunOutcome {
    /// The execution reached a terminal status (or already had one).
    Finished(ExecutionRecord),
    /// The execution is `waiting`; `event_waits` is true when one of its steps waits for an
    /// event (the tenant then checks events that arrived as the wait began).
    Parked {
        /// The record.
        exec: ExecutionRecord,
        /// A step waits for an event.
        event_waits: bool,
    },
    /// The execution is running in another task already; nothing was done.
    AlreadyRunning,
}

/// Runs executions against a store (for the journal) and an invoker (for connector calls).
#[derive(Clone)]
pub struct Engine {
    store: Store,
    invoker: Arc<dyn ActionInvoker>,
    /// Executions running in this process, with their cancel switch.
    live: Arc<Mutex<HashMap<String, watch::Sender<bool>>>>,
    /// Woken when a timer is written, so the timer task re-reads the earliest due time.
    timers: Arc<Notify>,
    /// Execution ids, sent when an execution reaches a terminal status.
    done: broadcast::Sender<String>,
    /// Where `idMap` steps record their links.
    id_maps: IdMaps,
}

/// What the scheduler knows of one step.
enum Slot {
    NotStarted,
    Running,
    Waiting(Vec<u64>),
    Done(StepRecord),
}

/// What a step task hands back.
enum StepResult {
    Done(StepRecord),
    Pending(Vec<u64>),
}

impl Engine {
    /// An engine writing to `store` and calling out through `invoker`.
    pub fn new(store: Store, invoker: Arc<dyn ActionInvoker>) -> Self {
        let (done, _) = broadcast::channel(1024);
        let id_maps = IdMaps::new(store.clone());
        Self {
            store,
            invoker,
            live: Arc::default(),
            timers: Arc::new(Notify::new()),
            done,
            id_maps,
        }
    }

    /// The ID maps the engine records `idMap` links in.
    pub fn id_maps(&self) -> &IdMaps {
        &self.id_maps
    }

    /// The store the engine journals to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Notified whenever a durable timer is written (for the timer task).
    pub fn timer_wakeups(&self) -> Arc<Notify> {
        self.timers.clone()
    }

    /// A receiver of the ids of executions that reach a terminal status.
    pub fn completions(&self) -> broadcast::Receiver<String> {
        self.done.subscribe()
    }

    /// Runs (or resumes) `exec` until it is terminal or parks on a wait, and returns how it
    /// ended. Safe to call for an execution that is already terminal (returns it).
    ///
    /// # Errors
    /// Storage errors only: step failures are outcomes recorded in the journal, not errors.
    pub async fn run(
        &self,
        exec: ExecutionRecord,
        plan: &Plan,
    ) -> Result<RunOutcome, StorageError> {
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let mut exec = {
            let mut live = self.live.lock().await;
            if live.contains_key(&exec.id) {
                return Ok(RunOutcome::AlreadyRunning);
            }
            // Re-read under the lock: a cancel may have finished it meanwhile. Its state is
            // enough: the trigger and input never change once written.
            let fresh =
                match self
                    .store
                    .execution_state(&exec.space_id, &exec.tenant_id, &exec.id)?
                {
                    Some(mut state) => {
                        state.trigger_json = exec.trigger_json;
                        state.input_json = exec.input_json;
                        state
                    }
                    None => exec,
                };
            if fresh.status.is_terminal() {
                return Ok(RunOutcome::Finished(fresh));
            }
            live.insert(fresh.id.clone(), cancel_tx);
            fresh
        };
        let id = exec.id.clone();
        let outcome = self.drive(&mut exec, plan, cancel_rx).await;
        if outcome.is_err() {
            // Writes this run queued without awaiting (its `running` mark) land before the
            // execution can run again, so the next run never reads it back `pending`. The
            // committer applies requests in order, so an empty commit is the barrier.
            let _ = self.store.commit(WriteSet::new()).await;
        }
        self.live.lock().await.remove(&id);
        outcome
    }

    async fn drive(
        &self,
        exec: &mut ExecutionRecord,
        plan: &Plan,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<RunOutcome, StorageError> {
        let (space, tenant) = (exec.space_id.clone(), exec.tenant_id.clone());
        // A pending execution has never started, so it has no journal to read: its `running`
        // mark (below) is queued before its first journal write and the committer applies
        // writes in order, so an execution with journal records is never read back pending.
        let journal: HashMap<u32, StepRecord> = if exec.status == ExecutionStatus::Pending {
            HashMap::new()
        } else {
            self.store
                .journal(&space, &tenant, &exec.id)?
                .into_iter()
                .map(|r| (r.index, r))
                .collect()
        };
        let mut ctx = context::initial(exec);
        // `kept[i]`: step `i` may have retry state in storage. A pending execution has run no
        // step yet, so none has until one of its steps backs off in this run; reading and
        // deleting retry state is then skipped for the others.
        let mut kept = vec![exec.status != ExecutionStatus::Pending; plan.spec.steps.len()];
        if matches!(
            exec.status,
            ExecutionStatus::Pending | ExecutionStatus::Waiting
        ) {
            if exec.started_at_ms.is_none() {
                exec.started_at_ms = Some(now_ms());
            }
            exec.status = ExecutionStatus::Running;
            let mut w = WriteSet::new();
            w.put_execution_state(exec)?;
            // Not awaited: the journal, not this mark, is what a restart resumes from, and
            // every later write of this execution is applied after it.
            self.store.commit_queued(w)?;
        }
        let deadline = plan
            .spec
            .timeout_ms
            .map(|t| exec.started_at_ms.unwrap_or_else(now_ms).saturating_add(t));
        let n = plan.spec.steps.len();
        let mut slots: Vec<Slot> = (0..n).map(|_| Slot::NotStarted).collect();
        let mut halted: Option<StepError> = None;
        for (i, step) in plan.spec.steps.iter().enumerate() {
            if let Some(done) = journal.get(&(i as u32)) {
                record_output(&mut ctx, &step.name, done);
                if done.status == StepStatus::Failed && step.on_error == OnError::Halt {
                    halted.get_or_insert_with(|| failed_error(done, &step.name));
                }
                slots[i] = Slot::Done(done.clone());
            }
        }
        let mut tasks: JoinSet<(usize, Result<StepResult, StorageError>)> = JoinSet::new();
        let mut end: Option<ExecutionStatus> = None;
        // The last step's journal record, committed with the terminal status (nothing runs
        // after it, so it need not be durable before anything else).
        let mut last_writes = WriteSet::new();
        loop {
            if end.is_none() {
                if *cancel.borrow() {
                    end = Some(ExecutionStatus::Cancelled);
                } else if deadline.is_some_and(|d| now_ms() >= d) {
                    end = Some(ExecutionStatus::TimedOut);
                }
            }
            if let Some(status) = end {
                // In-flight calls are abandoned; every step without an outcome is skipped.
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                let mut w = WriteSet::new();
                for (i, slot) in slots.iter().enumerate() {
                    if matches!(slot, Slot::Done(_)) {
                        continue;
                    }
                    let step = &plan.spec.steps[i];
                    // A step abandoned mid-call may have stored a backoff: always cleared.
                    self.clear_progress(&mut w, exec, i, plan, true)?;
                    w.put_step(&space, &tenant, &exec.id, &skipped(i as u32, &step.name))?;
                }
                self.store.commit(w).await?;
                exec.status = status;
                let (code, http, message) = if status == ExecutionStatus::Cancelled {
                    ("CANCELLED", 409, "the execution was cancelled".to_owned())
                } else {
                    (
                        "TIMED_OUT",
                        408,
                        format!(
                            "the execution exceeded its limit of {} ms",
                            plan.spec.timeout_ms.unwrap_or_default()
                        ),
                    )
                };
                exec.error_json = Some(
                    json!({"code": code, "statusCode": http, "isCustomAuthError": false, "message": message})
                        .to_string(),
                );
                return self
                    .finish(exec.clone(), plan, WriteSet::new())
                    .await
                    .map(RunOutcome::Finished);
            }
            // Start, skip or re-poll every step whose dependencies are settled.
            let mut progressed = false;
            for &i in &plan.order {
                if !matches!(slots[i], Slot::NotStarted) {
                    continue;
                }
                let Some(join) = join_state(plan, &slots, i) else {
                    continue;
                };
                let step = &plan.spec.steps[i];
                if halted.is_some() || join == Join::Skip {
                    let record = skipped(i as u32, &step.name);
                    self.journal(exec, i, &record, plan, kept[i]).await?;
                    record_output(&mut ctx, &step.name, &record);
                    slots[i] = Slot::Done(record);
                    progressed = true;
                    continue;
                }
                slots[i] = Slot::Running;
                self.spawn_step(&mut tasks, exec, plan, i, &ctx, kept[i]);
            }
            if progressed {
                continue;
            }
            if tasks.is_empty() {
                let waiting: Vec<u64> = slots
                    .iter()
                    .filter_map(|s| match s {
                        Slot::Waiting(t) => Some(t.clone()),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                let any_waiting = slots.iter().any(|s| matches!(s, Slot::Waiting(_)));
                if any_waiting && halted.is_none() {
                    return self.park(exec, plan, waiting, deadline).await;
                }
                if any_waiting {
                    // Halted while others wait: those waits end as skipped.
                    for (i, slot) in slots.iter_mut().enumerate() {
                        if matches!(slot, Slot::Waiting(_)) {
                            let step = &plan.spec.steps[i];
                            let record = skipped(i as u32, &step.name);
                            self.journal(exec, i, &record, plan, true).await?;
                            *slot = Slot::Done(record);
                        }
                    }
                    continue;
                }
                break;
            }
            let sleep_for = deadline.map_or(Duration::from_secs(3600), |d| {
                Duration::from_millis(d.saturating_sub(now_ms()))
            });
            tokio::select! {
                joined = tasks.join_next() => {
                    let Some(joined) = joined else { continue };
                    let (i, result) = match joined {
                        Ok(v) => v,
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        Err(_) => continue,
                    };
                    let step = &plan.spec.steps[i];
                    match result? {
                        StepResult::Done(record) => {
                            if record.status == StepStatus::Failed && step.on_error == OnError::Halt {
                                halted.get_or_insert_with(|| failed_error(&record, &step.name));
                            }
                            let last = tasks.is_empty()
                                && slots
                                    .iter()
                                    .enumerate()
                                    .all(|(j, s)| j == i || matches!(s, Slot::Done(_)));
                            if last {
                                self.journal_writes(&mut last_writes, exec, i, &record, plan, kept[i])?;
                                slots[i] = Slot::Done(record);
                                break;
                            }
                            self.journal(exec, i, &record, plan, kept[i]).await?;
                            record_output(&mut ctx, &step.name, &record);
                            slots[i] = Slot::Done(record);
                        }
                        StepResult::Pending(times) => {
                            kept[i] = true;
                            slots[i] = Slot::Waiting(times);
                        }
                    }
                }
                changed = cancel.changed() => {
                    if changed.is_err() {
                        // The sender is gone only if the engine forgot the execution; go on.
                        std::future::pending::<()>().await;
                    }
                }
                () = tokio::time::sleep(sleep_for) => {}
            }
        }
        exec.status = if halted.is_some() {
            ExecutionStatus::Failed
        } else {
            ExecutionStatus::Completed
        };
        exec.error_json = halted.map(|e| e.to_json().to_string());
        self.finish(exec.clone(), plan, last_writes)
            .await
            .map(RunOutcome::Finished)
    }

    fn spawn_step(
        &self,
        tasks: &mut JoinSet<(usize, Result<StepResult, StorageError>)>,
        exec: &ExecutionRecord,
        plan: &Plan,
        i: usize,
        ctx: &Value,
        kept: bool,
    ) {
        let step = plan.spec.steps[i].clone();
        let ctx = ctx.clone();
        let exec = exec.clone();
        let env = ActionEnv {
            invoker: self.invoker.clone(),
            id_maps: self.id_maps.clone(),
            space: exec.space_id.clone(),
            tenant: exec.tenant_id.clone(),
            lineage: Lineage {
                hops: exec.hops,
                correlation_id: exec.correlation_id.clone(),
            }
            .or_correlation(&exec.event_id),
            execution_id: exec.id.clone(),
        };
        let store = self.store.clone();
        let nested = plan.loops.get(&i).cloned();
        let index = i as u32;
        tasks.spawn(async move {
            let result = match step.kind.as_str() {
                "wait" | "approval" => {
                    wait::poll(&store, &exec, index, &step, &ctx)
                        .await
                        .map(|p| match p {
                            wait::Poll::Done(r) => StepResult::Done(r),
                            wait::Poll::Pending(t) => StepResult::Pending(t),
                        })
                }
                "gate" => Ok(StepResult::Done(gate::run(index, &step, &ctx))),
                "notification" => Ok(StepResult::Done(notification::run(index, &step, &ctx))),
                "loop" => match nested {
                    Some(nested) => {
                        loop_step::run(&store, env, &exec.id, index, &step, &nested, &ctx)
                            .await
                            .map(StepResult::Done)
                    }
                    None => Ok(StepResult::Done(context::failed(
                        index,
                        &step.name,
                        now_ms(),
                        &Value::Null,
                        &StepError::new("INTERNAL_ERROR", 500, &step.name, "loop has no plan"),
                    ))),
                },
                _ => action_step(&store, &env, &exec, index, &step, &ctx, kept).await,
            };
            (i, result)
        });
    }

    /// Adds to `w` the deletes of what step `i` kept while unfinished: its wait, its retry
    /// state (only when `kept`: it may have some) and its finished loop iterations.
    fn clear_progress(
        &self,
        w: &mut WriteSet,
        exec: &ExecutionRecord,
        i: usize,
        plan: &Plan,
        kept: bool,
    ) -> Result<(), StorageError> {
        let step = &plan.spec.steps[i];
        let (space, tenant, index) = (&exec.space_id, &exec.tenant_id, i as u32);
        match step.kind.as_str() {
            "wait" | "approval" => wait::clear(w, exec, index, step),
            "loop" => {
                for it in self.store.iterations(space, tenant, &exec.id, index)? {
                    w.delete_iteration(space, tenant, &exec.id, index, it.iteration);
                }
            }
            _ if kept => {
                w.delete_retry(space, tenant, &exec.id, index);
            }
            _ => {}
        }
        Ok(())
    }

    /// Journals a step's outcome (ending its wait, if it had one; `kept` as for
    /// [`Engine::clear_progress`]).
    async fn journal(
        &self,
        exec: &ExecutionRecord,
        i: usize,
        record: &StepRecord,
        plan: &Plan,
        kept: bool,
    ) -> Result<(), StorageError> {
        let mut w = WriteSet::new();
        self.journal_writes(&mut w, exec, i, record, plan, kept)?;
        self.store.commit(w).await
    }

    /// Adds to `w` what [`Engine::journal`] commits.
    fn journal_writes(
        &self,
        w: &mut WriteSet,
        exec: &ExecutionRecord,
        i: usize,
        record: &StepRecord,
        plan: &Plan,
        kept: bool,
    ) -> Result<(), StorageError> {
        self.clear_progress(w, exec, i, plan, kept)?;
        w.put_step(&exec.space_id, &exec.tenant_id, &exec.id, record)?;
        Ok(())
    }

    /// Records `waiting` and the timers that will wake the execution.
    async fn park(
        &self,
        exec: &mut ExecutionRecord,
        plan: &Plan,
        mut times: Vec<u64>,
        deadline: Option<u64>,
    ) -> Result<RunOutcome, StorageError> {
        times.extend(deadline);
        times.sort_unstable();
        times.dedup();
        exec.status = ExecutionStatus::Waiting;
        let mut w = WriteSet::new();
        w.put_execution_state(exec)?;
        for due_ms in times {
            w.put_timer(&TimerRecord {
                due_ms,
                space_id: exec.space_id.clone(),
                tenant_id: exec.tenant_id.clone(),
                execution_id: exec.id.clone(),
                priority: exec.priority,
            })?;
        }
        self.store.commit(w).await?;
        self.timers.notify_one();
        let event_waits = plan.spec.steps.iter().any(|s| s.event.is_some());
        Ok(RunOutcome::Parked {
            exec: exec.clone(),
            event_waits,
        })
    }

    /// Cancels an execution: a running one is stopped by its task (in-flight calls abandoned);
    /// a pending or waiting one is finished here. Remaining steps end as `skipped`. Returns the
    /// record as it stands (`None` for an unknown execution).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn cancel(
        &self,
        space: &str,
        tenant: &str,
        id: &str,
        plan: Option<&Plan>,
    ) -> Result<Option<ExecutionRecord>, StorageError> {
        let live = self.live.lock().await;
        let Some(mut exec) = self.store.execution(space, tenant, id)? else {
            return Ok(None);
        };
        if exec.status.is_terminal() {
            return Ok(Some(exec));
        }
        if let Some(switch) = live.get(id) {
            let _ = switch.send(true);
            drop(live);
            // Give the task a moment to record it, so the answer shows `cancelled`.
            let mut done = self.completions();
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    match done.recv().await {
                        Ok(x) if x == id => return,
                        Err(broadcast::error::RecvError::Closed) => return,
                        _ => {}
                    }
                }
            })
            .await;
            return self.store.execution(space, tenant, id);
        }
        let journal: HashSet<u32> = self
            .store
            .journal(space, tenant, id)?
            .into_iter()
            .map(|r| r.index)
            .collect();
        let mut w = WriteSet::new();
        if let Some(plan) = plan {
            for (i, step) in plan.spec.steps.iter().enumerate() {
                if !journal.contains(&(i as u32)) {
                    self.clear_progress(&mut w, &exec, i, plan, true)?;
                    w.put_step(space, tenant, id, &skipped(i as u32, &step.name))?;
                }
            }
        }
        self.store.commit(w).await?;
        exec.status = ExecutionStatus::Cancelled;
        exec.error_json = Some(
            json!({"code": "CANCELLED", "statusCode": 409, "isCustomAuthError": false,
                   "message": "the execution was cancelled"})
            .to_string(),
        );
        let exec = match plan {
            Some(plan) => self.finish(exec, plan, WriteSet::new()).await?,
            None => {
                exec.finished_at_ms = Some(now_ms());
                let mut w = WriteSet::new();
                w.put_execution_state(&exec)?;
                self.store.commit(w).await?;
                exec
            }
        };
        drop(live);
        Ok(Some(exec))
    }

    /// Records a terminal status, and with it (in the same batch, after `w`: the last step's
    /// journal record, or nothing) the DLQ bookkeeping: a failed or timed-out execution
    /// becomes a DLQ item, and a replay updates the item it replays.
    async fn finish(
        &self,
        mut exec: ExecutionRecord,
        plan: &Plan,
        mut w: WriteSet,
    ) -> Result<ExecutionRecord, StorageError> {
        exec.finished_at_ms = Some(now_ms());
        w.put_execution_state(&exec)?;
        let failed = matches!(
            exec.status,
            ExecutionStatus::Failed | ExecutionStatus::TimedOut
        );
        match &exec.replay_of {
            Some(item_id) => {
                if let Some(item) = self
                    .store
                    .dlq_item(&exec.space_id, &exec.tenant_id, item_id)?
                {
                    let detail = if failed { "failed" } else { "completed" };
                    let mut item = dlq::record_outcome(item, !failed, detail);
                    if failed {
                        item.error = exec.error_json.clone().unwrap_or_default();
                    } else {
                        metrics::gauge!("sluice_dlq_depth").decrement(1.0);
                    }
                    w.put_dlq(&exec.space_id, &exec.tenant_id, &item)?;
                }
            }
            None if failed => {
                let (source, event) = match &plan.spec.trigger {
                    Trigger::Event { source, event, .. } if event != "*" => {
                        (source.as_str(), event.as_str())
                    }
                    Trigger::Event { source, .. } => (source.as_str(), ""),
                    other => (other.kind(), ""),
                };
                w.put_dlq(
                    &exec.space_id,
                    &exec.tenant_id,
                    &dlq::for_execution(&exec, source, event),
                )?;
                metrics::gauge!("sluice_dlq_depth").increment(1.0);
                metrics::counter!("sluice_dlq_total", "kind" => "execution").increment(1);
            }
            None => {}
        }
        self.store.commit(w).await?;
        metrics::counter!("sluice_executions_total", "status" => exec.status.as_str()).increment(1);
        let _ = self.done.send(exec.id.clone());
        Ok(exec)
    }

    /// Marks an execution whose task panicked as failed with `INTERNAL_ERROR` (and
    /// dead-letters it like any failed execution).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn fail(
        &self,
        mut exec: ExecutionRecord,
        plan: &Plan,
        reason: &str,
    ) -> Result<ExecutionRecord, StorageError> {
        self.live.lock().await.remove(&exec.id);
        exec.status = ExecutionStatus::Failed;
        exec.error_json = Some(
            json!({"code": "INTERNAL_ERROR", "statusCode": 500, "isCustomAuthError": false,
                   "message": reason})
            .to_string(),
        );
        self.finish(exec, plan, WriteSet::new()).await
    }
}

/// Runs (or resumes) an `action` step. A backoff longer than
/// [`action::INLINE_BACKOFF_MS`] is persisted as the step's retry state and the step is
/// pending until it is due; when the execution runs again the step resumes at its next
/// attempt, with the same Idempotency-Key. `kept`: the step may have retry state stored.
async fn action_step(
    store: &Store,
    env: &ActionEnv,
    exec: &ExecutionRecord,
    index: u32,
    step: &crate::flow::StepSpec,
    ctx: &Value,
    kept: bool,
) -> Result<StepResult, StorageError> {
    let (space, tenant) = (&exec.space_id, &exec.tenant_id);
    // Without `kept`, this step has not run before in this execution: no retry state.
    let resume = if kept {
        store.retry(space, tenant, &exec.id, index)?
    } else {
        None
    };
    if let Some(r) = &resume {
        let left = r.due_ms.saturating_sub(now_ms());
        if left > action::INLINE_BACKOFF_MS {
            return Ok(StepResult::Pending(vec![r.due_ms]));
        }
        tokio::time::sleep(Duration::from_millis(left)).await;
    }
    let key = step_idempotency_key(&exec.id, &step.name);
    match action::run_durable(env, key, index, step, ctx, resume).await {
        action::ActionOutcome::Done(record) => Ok(StepResult::Done(record)),
        action::ActionOutcome::Backoff(state) => {
            let mut w = WriteSet::new();
            w.put_retry(space, tenant, &exec.id, &state)?;
            store.commit(w).await?;
            Ok(StepResult::Pending(vec![state.due_ms]))
        }
    }
}

/// Whether a step whose dependencies are all settled runs or is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Join {
    Run,
    Skip,
}

/// `None` while a dependency is unsettled. A step runs once every dependency has finished,
/// if at least one of them counts as completed for it (failed under `continue` counts); it is
/// skipped when every dependency was skipped, where a gate counts as skipped for the steps
/// on the branches it did not take. A step without dependencies runs.
fn join_state(plan: &Plan, slots: &[Slot], i: usize) -> Option<Join> {
    let deps = &plan.deps[i];
    if deps.is_empty() {
        return Some(Join::Run);
    }
    let mut any_ran = false;
    for &d in deps {
        let Slot::Done(record) = &slots[d] else {
            return None;
        };
        let mut skipped_for_me = record.status == StepStatus::Skipped;
        if let Some((gate_index, branch)) = plan.branch_of[i]
            && gate_index == d
            && !skipped_for_me
        {
            let taken = gate::taken_branch(&parse_stored(&record.output_json));
            skipped_for_me = taken != Some(branch);
        }
        if !skipped_for_me {
            any_ran = true;
        }
    }
    Some(if any_ran { Join::Run } else { Join::Skip })
}
