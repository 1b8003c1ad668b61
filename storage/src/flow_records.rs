//! Records of the workflow engine beyond the journal: durable waits, timers, cron state, flow
//! release versions, environments and releases. Same rules as [`crate::records`]: plain data,
//! JSON documents as text, times in Unix milliseconds.

use serde::{Deserialize, Serialize};

use crate::codec::Record;

/// A step that is waiting (a `wait`, an `approval`, or an event wait), keyed by (space,
/// tenant, execution id, step index) in [`crate::Ks::Waits`]. Written when the step starts
/// waiting; deleted in the batch that journals the step's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitRecord {
    /// Step index in the flow.
    pub index: u32,
    /// Step name.
    pub name: String,
    /// `duration`, `until`, `event` or `approval`.
    pub kind: String,
    /// When the step began waiting, Unix ms.
    pub started_at_ms: u64,
    /// For `duration`: when it ends, Unix ms.
    pub due_ms: Option<u64>,
    /// When the step gives up (its `timeoutMs`), Unix ms.
    pub deadline_ms: Option<u64>,
    /// For `until`: the next time the condition is checked, Unix ms.
    pub next_check_ms: Option<u64>,
    /// How many times an `until` condition was checked.
    pub checks: u32,
    /// What ended the wait, as JSON text: the matching event (`event`), or the decision
    /// `{"approved", "approver", "comment", "at"}` (`approval`). `None` while waiting.
    pub resolution: Option<String>,
}

/// The index entry of an event wait, keyed by (space, tenant, source, event name, execution
/// id, step index) in [`crate::Ks::EventWaits`], so routing an event reads only the waits for
/// its source and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventWaitRecord {
    /// Execution waiting.
    pub execution_id: String,
    /// Its step index.
    pub index: u32,
    /// Execution priority (the resumed run keeps it).
    pub priority: u8,
    /// CEL condition over `event`, `trigger`, `input`, `steps`; `None` accepts any event.
    pub condition: Option<String>,
    /// The execution's template context when the wait began (`{"trigger", "input",
    /// "steps"}`), as JSON text; the condition is evaluated against it plus `event`.
    pub context_json: String,
    /// When the execution began (Unix ms): events received before it do not end the wait.
    pub since_ms: u64,
}

/// A durable timer, keyed by (due ms, space, tenant, execution id) in [`crate::Ks::Timers`]:
/// when due, the execution is queued to run again. Firing a timer for an execution that has
/// nothing due does no harm (the engine checks its waits and goes back to waiting).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerRecord {
    /// When it fires, Unix ms.
    pub due_ms: u64,
    /// Space id.
    pub space_id: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Execution to resume.
    pub execution_id: String,
    /// Its priority.
    pub priority: u8,
}

/// Where a cron-triggered flow stands, keyed by (space, tenant, flow id) in
/// [`crate::Ks::CronState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronStateRecord {
    /// The schedule the state belongs to (a changed schedule starts afresh).
    pub schedule: String,
    /// The last scheduled time handled (fired or deliberately skipped), Unix ms.
    pub last_scheduled_ms: u64,
}

/// A cron trigger's state with the flow it belongs to, from [`crate::Store::cron_states`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronFlowState {
    /// Space id.
    pub space: String,
    /// Tenant id.
    pub tenant: String,
    /// Flow id.
    pub flow_id: String,
    /// The stored state.
    pub state: CronStateRecord,
}

/// A deployment environment of a tenant (`production`, `staging`), keyed by (space, tenant,
/// name) in [`crate::Ks::Environments`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentRecord {
    /// Name, the value of the `stage` header that selects it.
    pub name: String,
    /// Creation time, Unix ms.
    pub created_at_ms: u64,
}

/// Which release version of a flow is live in an environment, keyed by (space, tenant,
/// environment, flow id) in [`crate::Ks::Releases`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// Environment name.
    pub environment: String,
    /// Flow id.
    pub flow_id: String,
    /// Flow name.
    pub flow_name: String,
    /// The immutable release version it runs.
    pub version: u32,
    /// When it was released, Unix ms.
    pub created_at_ms: u64,
}

/// The attempts made so far by an `action` step that is parked on a retry backoff, keyed by
/// (space, tenant, execution id, step index) in [`crate::Ks::Retries`]. Written when the
/// execution parks; deleted in the batch that journals the step's outcome. A restart resumes
/// the step at attempt `attempts.len() + 1` once `due_ms` has passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryRecord {
    /// Step index in the flow.
    pub index: u32,
    /// Step name.
    pub name: String,
    /// When the first attempt started, Unix ms.
    pub started_at_ms: u64,
    /// Every attempt so far, in order (all failed).
    pub attempts: Vec<crate::AttemptRecord>,
    /// The last attempt's error as JSON text.
    pub error_json: Option<String>,
    /// When the next attempt may start, Unix ms.
    pub due_ms: u64,
}

/// One finished iteration of a loop step that has not finished yet, keyed by (space, tenant,
/// execution id, loop step index, iteration) in [`crate::Ks::Iterations`]. Deleted in the
/// batch that journals the loop's outcome; a restart runs only the iterations without one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IterationRecord {
    /// Iteration number (the item's index), from 0.
    pub iteration: u32,
    /// Whether every nested step completed (or failed under `continue`).
    pub ok: bool,
    /// The nested outputs by name when `ok`, else the error body, as JSON text.
    pub value_json: String,
}

impl Record for RetryRecord {
    const KIND: &'static str = "retry";
}
impl Record for IterationRecord {
    const KIND: &'static str = "iteration";
}
impl Record for WaitRecord {
    const KIND: &'static str = "wait";
}
impl Record for EventWaitRecord {
    const KIND: &'static str = "event wait";
}
impl Record for TimerRecord {
    const KIND: &'static str = "timer";
}
impl Record for CronStateRecord {
    const KIND: &'static str = "cron state";
}
impl Record for EnvironmentRecord {
    const KIND: &'static str = "environment";
}
impl Record for ReleaseRecord {
    const KIND: &'static str = "release";
}
