//! The flow document (DESIGN.md, Flows): JSON with camelCase fields.
//!
//! ```json
//! {"name": "order_to_sink",
//!  "trigger": {"type": "event", "source": "shopify", "event": "order.created"},
//!  "steps": [{"name": "post", "type": "action", "connector": "http", "action": "request",
//!             "input": {"method": "POST", "url": "http://127.0.0.1:9/in",
//!                       "body": {"email": "{{trigger.customer.email}}"}},
//!             "retry": {"maxAttempts": 3, "backoff": "exponential", "initialDelayMs": 200},
//!             "onError": "halt"}]}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A whole flow definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlowSpec {
    /// Flow name: letters, digits and underscores (the `{flow_name}` of the execute API).
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What starts an execution.
    pub trigger: Trigger,
    /// The steps, in document order.
    pub steps: Vec<StepSpec>,
    /// What `POST /api/v1/{flow_name}` answers once the execution completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseSpec>,
    /// Longest time one execution may take, ms (waits included); past it the execution
    /// becomes `timed_out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Most executions of this flow running at once in a tenant; more wait in their queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

/// The success answer of the execute API: `{"status": 200, "body": {…templates…}}`, rendered
/// over `trigger`, `input` and `steps` once the execution completed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponseSpec {
    /// HTTP status, 200-299 (default 200).
    #[serde(default = "default_response_status")]
    pub status: u16,
    /// Body template; absent means `{"executionId", "status"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

fn default_response_status() -> u16 {
    200
}

/// What starts an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Trigger {
    /// An app event: a normalized event whose source and name match.
    Event {
        /// Source connector, e.g. `shopify`.
        source: String,
        /// Event name, e.g. `order.created`; `*` matches every event of the source.
        event: String,
        /// A CEL condition over `trigger` (the event payload); the flow starts only when it
        /// is true.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        condition: Option<String>,
    },
    /// Every verified delivery to one webhook endpoint.
    Webhook {
        /// The webhook registration's id.
        #[serde(rename = "webhookId")]
        webhook_id: String,
    },
    /// A schedule: 5 fields (minute hour day month weekday) or 6 (seconds first), in an
    /// IANA time zone (default `UTC`). See [`crate::schedule`] for the DST rule.
    Cron {
        /// Cron expression.
        schedule: String,
        /// IANA time zone, e.g. `America/New_York`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone: Option<String>,
        /// Runs missed while the server was down: `skip` (default), `once` (the latest
        /// missed run, once), `each` (every missed run within `catchUpWindowMs`).
        #[serde(default, rename = "catchUp", skip_serializing_if = "Option::is_none")]
        catch_up: Option<String>,
        /// How far back `each` catches up, ms (default one day).
        #[serde(
            default,
            rename = "catchUpWindowMs",
            skip_serializing_if = "Option::is_none"
        )]
        catch_up_window_ms: Option<u64>,
        /// A run due while the previous one is unfinished: `allow` (default) starts it
        /// anyway, `skip` drops it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        overlap: Option<String>,
    },
    /// The execute API `POST /api/v1/{flow_name}` with `{"input": {…}}`.
    Manual {
        /// JSON Schema of `input`.
        #[serde(
            default,
            rename = "requestSchema",
            skip_serializing_if = "Option::is_none"
        )]
        request_schema: Option<Value>,
    },
}

impl Trigger {
    /// The trigger kind as spelled in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Event { .. } => "event",
            Trigger::Webhook { .. } => "webhook",
            Trigger::Cron { .. } => "cron",
            Trigger::Manual { .. } => "manual",
        }
    }
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepSpec {
    /// Unique within the flow; referenced as `{{steps.NAME.output}}`.
    pub name: String,
    /// Step type: `action`, `wait`, `approval`, `notification`, `gate` or `loop`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Connector to call; absent for a data-mapping step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// The connector's action, e.g. `request` for `http`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The action's parameters; strings are templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// Field mapping `"target.path": "template"`: the body of a connector call, or the whole
    /// output of a step without a connector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<Map<String, Value>>,
    /// Names of steps that must finish first; absent means "the step before".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
    /// Retry policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    /// What a failure does to the execution.
    #[serde(default)]
    pub on_error: OnError,
    /// Per-attempt time limit in ms (`action`); how long a `wait` or `approval` may last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Id of the tenant's credential for the connector (`POST …/credentials`); checked at
    /// save: it must exist and be for this step's connector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// Upsert through the ID map: the source record this step's target record stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_map: Option<IdMapSpec>,
    /// `wait`: how long to pause, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// `wait`: a CEL condition over `trigger`, `input`, `steps`; the wait ends when it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// `wait` with `until`: how often the condition is checked, ms (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_every_ms: Option<u64>,
    /// `wait`: the event that ends the wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventWaitSpec>,
    /// `gate`: ordered cases; the first whose condition holds is taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cases: Option<Vec<GateCase>>,
    /// `gate`: steps of the branch taken when no case holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Vec<String>>,
    /// `loop`: a template giving the collection (an array) to iterate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over: Option<String>,
    /// `loop`: most iterations running at once (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// `loop`: the nested steps run for each item (`{{item}}`, `{{index}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepSpec>>,
    /// `notification`: the channel (`in_app`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// `notification`: the message template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `"idMap": {"system": "shopify", "entity": "order", "id": "{{trigger.id}}"}`: the engine
/// links that source record to the id the step's create action returns; when a link exists,
/// it calls the entity's update action with `input.id` = the linked id instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdMapSpec {
    /// Source system (`shopify`).
    pub system: String,
    /// Source entity (`order`).
    pub entity: String,
    /// Template of the source record's id.
    pub id: String,
}

/// An event wait: `{"source", "event", "condition"?}`; the condition (CEL) sees `event` (the
/// payload) beside `trigger`, `input` and `steps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventWaitSpec {
    /// Source connector (`stripe`).
    pub source: String,
    /// Normalized event name (`invoice.paid`).
    pub event: String,
    /// CEL condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// One case of a gate: `{"when": "<CEL>", "steps": ["…"]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GateCase {
    /// Condition (CEL).
    pub when: String,
    /// Steps of this branch.
    pub steps: Vec<String>,
}

/// A step's retry policy. Only errors the connector marks retryable (timeouts, 429, 5xx) are
/// retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetrySpec {
    /// Total attempts including the first (1 = no retry).
    pub max_attempts: u32,
    /// `fixed` or `exponential`.
    #[serde(default)]
    pub backoff: Backoff,
    /// Delay before the second attempt, ms.
    #[serde(default = "default_initial_delay")]
    pub initial_delay_ms: u64,
    /// Upper bound of any delay, ms.
    #[serde(default = "default_max_delay")]
    pub max_delay_ms: u64,
    /// Randomize each delay to between half and all of its value ("equal jitter"), so
    /// retries of many executions do not arrive together.
    #[serde(default)]
    pub jitter: bool,
}

fn default_initial_delay() -> u64 {
    200
}
fn default_max_delay() -> u64 {
    30_000
}

/// Delay growth between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    /// The same delay every time.
    Fixed,
    /// Doubling from `initialDelayMs`.
    #[default]
    Exponential,
}

impl RetrySpec {
    /// Delay before attempt `attempt` (2 = first retry), capped at `max_delay_ms`, with
    /// jitter applied when enabled.
    pub fn jittered_delay_ms(&self, attempt: u32) -> u64 {
        let d = self.delay_ms(attempt);
        if !self.jitter || d < 2 {
            return d;
        }
        let half = d / 2;
        half + rand::random_range(0..=d - half)
    }

    /// Delay before attempt `attempt` (2 = first retry), capped at `max_delay_ms`, without
    /// jitter.
    pub fn delay_ms(&self, attempt: u32) -> u64 {
        let exp = attempt.saturating_sub(2).min(30);
        let d = match self.backoff {
            Backoff::Fixed => self.initial_delay_ms,
            Backoff::Exponential => self.initial_delay_ms.saturating_mul(1u64 << exp),
        };
        d.min(self.max_delay_ms)
    }
}

/// A step's error strategy (the reference's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop the whole flow (default).
    #[default]
    Halt,
    /// Record the error and go on.
    Continue,
}
